"""equalize_hist and clahe equal OpenCV to the last bit on both backends; edge cases of the histogram ops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from zrenie.errors import ShapeError
from zrenie.imgproc import histogram

BACKENDS = ("torch", "auto")


def _as_float(image8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image8).float().div(255)[None]


def test_equalize_hist_equals_opencv_on_random_small_images():
    # Few levels on few pixels make float32 products land next to .5: float64 was off by one on 1-3%.
    generator = np.random.default_rng(0)
    for _ in range(200):
        height, width = generator.integers(1, 10, 2)
        count = generator.integers(1, 7)
        values = generator.choice(256, count, replace=False)
        image = values[generator.integers(0, count, (height, width))].astype(np.uint8)
        ref = cv2.equalizeHist(image).astype(np.float32) / 255
        for backend in BACKENDS:
            assert np.array_equal(histogram.equalize_hist(_as_float(image), backend=backend)[0].numpy(), ref)


@pytest.mark.parametrize("size", [(8, 9), (9, 8), (8, 8), (17, 9), (4, 4), (1, 1), (3, 2)])
@pytest.mark.parametrize("grid", [8, 2, (3, 5)])
def test_clahe_equals_opencv_at_any_size(size, grid):
    gy, gx = (grid, grid) if isinstance(grid, int) else grid
    image = np.random.default_rng(size[0] * 31 + size[1]).integers(0, 256, size).astype(np.uint8)
    for clip_limit in (40.0, 2.0, 0.0):
        ref = cv2.createCLAHE(clip_limit, (gx, gy)).apply(image).astype(np.float32) / 255
        for backend in BACKENDS:
            assert np.array_equal(histogram.clahe(_as_float(image), clip_limit, grid, backend=backend)[0].numpy(), ref)


def test_auto_equals_torch_for_every_mode_and_dtype():
    image = torch.rand(3, 3, 20, 28, generator=torch.Generator().manual_seed(4))  # off the 8-bit grid
    for dtype in (torch.float32, torch.float64, torch.float16):
        x = image.to(dtype)
        for mode in ("channel", "luminance"):
            for op in (histogram.equalize_hist, lambda im, **kw: histogram.clahe(im, 2.0, 4, **kw)):
                auto = op(x, mode=mode)
                assert auto.dtype == dtype
                assert torch.equal(auto, op(x, mode=mode, backend="torch"))


def test_empty_batches():
    empty = torch.rand(0, 3, 6, 7)
    for backend in BACKENDS:
        assert histogram.equalize_hist(empty, backend=backend).shape == (0, 3, 6, 7)
        assert histogram.clahe(empty, backend=backend).shape == (0, 3, 6, 7)
    assert histogram.quantize_colors(empty).shape == (0, 3, 6, 7)
    assert histogram.image_histogram(empty).shape == (0, 3, 256)


@pytest.mark.parametrize("op", [histogram.equalize_hist, histogram.clahe, histogram.quantize_colors,
                                histogram.image_histogram])
def test_values_outside_unit_range_are_one_line(op):
    huge = torch.rand(1, 3, 8, 8)
    huge[0, 0, 0, 0] = 3e38  # finite: k-means crashed on it before
    with pytest.raises(ShapeError, match=r"expected values in \[0, 1\], found .* to 3e\+38") as info:
        op(huge)
    assert "\n" not in str(info.value)
