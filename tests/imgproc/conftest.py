"""Fixtures: each real photo as a 192x192 crop (pointwise ops) and a 128x128 crop (neighbourhood ops).

Crops of the area-downscaled photos keep the real content while the whole suite stays within its
time budget on two CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from ._photos import PHOTOS, photo_uint8, small_uint8


@pytest.fixture(params=PHOTOS)
def photo(request) -> np.ndarray:
    return small_uint8(request.param, 192)


@pytest.fixture(params=PHOTOS)
def small(request) -> np.ndarray:
    return small_uint8(request.param)
