"""Canny against OpenCV's cv2.Canny on the bundled photos (more cases in test_edges_opencv.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from zrenie.errors import ShapeError
from zrenie.imgproc import edges, filters

from ._photos import to_numpy, to_tensor


@pytest.mark.parametrize("low, high, l2", [(0.1, 0.2, True), (0.3, 0.6, True), (0.2, 0.5, False)])
def test_canny_matches_opencv(photo, low, high, l2):
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    ours = to_numpy(edges.canny(to_tensor(gray), low, high, sigma=0, l2_gradient=l2)) > 0
    ref = cv2.Canny(gray, 255 * low, 255 * high, L2gradient=l2) > 0
    assert np.array_equal(ours, ref)  # an 8-bit image gets OpenCV's integer arithmetic: no tie differs
    assert ref.any()


def test_canny_smoothing_is_a_replicate_gaussian_first(small):
    gray = to_tensor(small)[:1]
    blurred = edges._blur(gray.unsqueeze(0), 1.4)[0]
    for backend in ("torch", "auto"):
        assert torch.equal(edges.canny(gray, 0.1, 0.3, sigma=1.4, backend=backend),
                           edges.canny(blurred, 0.1, 0.3, sigma=0, backend=backend))
    size = filters.gaussian_kernel_size(1.4)
    ref = cv2.GaussianBlur(small[..., 0].astype(np.float64) / 255, (size, size), 1.4, borderType=cv2.BORDER_REPLICATE)
    assert np.abs(to_numpy(blurred) - ref).max() <= 1e-6


def test_canny_colour_input_goes_through_gray(small):
    image = to_tensor(small)
    out = edges.canny(torch.stack([image, image]))
    assert out.shape == (2, 1, *image.shape[-2:])
    assert set(out.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("grow", [edges._hysteresis_by_labels, edges._hysteresis_by_dilation])
def test_hysteresis_follows_long_weak_chains(grow):
    weak = torch.zeros(1, 1, 5, 200, dtype=torch.bool)
    weak[0, 0, 2, :] = True
    weak[0, 0, 3, 150] = True  # a diagonal step is still connected
    strong = torch.zeros_like(weak)
    strong[0, 0, 2, 0] = True
    assert grow(strong, weak).sum() == 201
    weak[0, 0, 2, 100] = False  # a gap stops the chain
    assert grow(strong, weak).sum() == 100


def test_hysteresis_labels_equal_dilation_on_random_masks():
    generator = torch.Generator().manual_seed(6)
    weak = torch.rand(3, 1, 60, 70, generator=generator) > 0.45
    strong = weak & (torch.rand(3, 1, 60, 70, generator=generator) > 0.97)
    assert torch.equal(edges._hysteresis_by_labels(strong, weak), edges._hysteresis_by_dilation(strong, weak))


def test_canny_rejects_bad_thresholds_and_shapes():
    with pytest.raises(ShapeError, match="low"):
        edges.canny(torch.rand(1, 16, 16), low=0.5, high=0.1)
    with pytest.raises(ShapeError, match=r"\(B, 1\|3, H, W\)"):
        edges.canny(torch.rand(2, 16, 16))
