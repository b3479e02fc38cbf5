"""Fixtures: each real photo at full size (pointwise ops) and as a 128x128 crop (neighbourhood ops).

The crops come from the area-downscaled photos, so they keep real content while the heavier
comparisons stay within the suite's time budget on two CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from ._photos import PHOTOS, photo_uint8, small_uint8


@pytest.fixture(params=PHOTOS)
def photo(request) -> np.ndarray:
    return photo_uint8(request.param)


@pytest.fixture(params=PHOTOS)
def small(request) -> np.ndarray:
    return small_uint8(request.param)


@pytest.fixture(autouse=True, scope="package")
def single_thread():
    """Runs the imgproc tests on one thread, then restores the caller's settings.

    The inputs here are small, and on a busy two-core runner every tiny op's parallel region waits
    for a preempted worker: gradcheck of box_blur took 17 s on 2 threads and 0.04 s on 1.
    """
    import cv2
    import torch

    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)
