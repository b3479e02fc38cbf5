"""The faster OpenCV routes of backend="auto": each against the PyTorch path and OpenCV, on tiny images.

HSV and HLS from the image times 2^126 (no FLT_EPSILON in H and S), gamma by cv2.log and cv2.exp
in any memory layout, grayscale of a channels_last image by cvtColor in place, linear maps on the
planes (YCbCr, sepia), the fused unsharp mask, bilateral filtering through one interleaving
buffer, filters and morphology on channels_last batches in place, and check_image's one pass.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from zrenie.errors import ShapeError
from zrenie.imgproc import adjust, color, filters, morphology
from zrenie.imgproc._checks import check_image, memory_view
from zrenie.imgproc._cvpixels import dense_flat, interleaved, power


def _hue_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    gap = (a - b).abs()
    return float(torch.minimum(gap, 1 - gap).max())


def _tiny_differences() -> torch.Tensor:
    """Tensor[1, 3, 4, 6]: channels one float apart (delta <= FLT_EPSILON) and dark pixels down to 1e-30."""
    below = float(np.nextafter(np.float32(0.5), np.float32(0)))
    pixels = [[0.5, 0.5, below], [below, 0.5, 0.5], [0.5, below, 0.5], [1e-30, 3e-31, 0.0], [1e-20, 0.0, 5e-21],
              [2e-4, 1e-4, 1.5e-4], [1.0, 1.0, 0.99999994], [0.3, 0.3, 0.3]]
    rng = torch.Generator().manual_seed(7)
    image = torch.rand(1, 3, 4, 6, generator=rng)
    for index, pixel in enumerate(pixels):
        image[0, :, index // 6, index % 6] = torch.tensor(pixel)
    return image


@pytest.mark.parametrize("op", [color.rgb_to_hsv, color.rgb_to_hls])
def test_hue_conversions_agree_where_opencvs_epsilon_would_bite(op):
    image = _tiny_differences()
    ours, theirs = op(image, backend="opencv"), op(image, backend="torch")
    assert _hue_gap(ours[:, 0], theirs[:, 0]) <= 2e-7
    assert (ours[:, 1:] - theirs[:, 1:]).abs().max() <= 2e-7
    assert torch.equal(op(image), ours)
    assert 0 <= float(ours[:, 0].min()) and float(ours[:, 0].max()) < 1


def test_plain_cvtcolor_hsv_is_what_the_gain_fixes():
    # The reason for the 2^126: on a pixel whose channels differ by one float, COLOR_RGB2HSV's
    # 60 (g - b) / (delta + FLT_EPSILON) is a third of the hue the formula gives.
    image = _tiny_differences()
    plain = cv2.cvtColor(image[0].permute(1, 2, 0).numpy().copy(), cv2.COLOR_RGB2HSV)[..., 0] / 360
    exact = color.rgb_to_hsv(image, backend="torch")[0, 0].numpy()
    assert np.abs(plain - exact).max() > 0.05
    assert _hue_gap(color.rgb_to_hsv(image)[0, 0], torch.from_numpy(exact)) <= 2e-7


def test_power_matches_float64():
    x = np.concatenate([np.linspace(0, 1, 1001), [1e-30, 1.00001]]).astype(np.float32)
    for exponent in (2.4, 1 / 2.4, 0.45, 3.0):
        assert np.abs(power(x, exponent) - x.astype(np.float64) ** exponent).max() <= 2e-7


@pytest.mark.parametrize("gamma, gain", [(2.2, 1.0), (0.45, 0.9), (0.5, 1.5), (0.0, 0.7)])
def test_gamma_keeps_the_layout_and_matches_torch(gamma, gain):
    image = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(8))
    image[0, 0, 0, :3] = torch.tensor([0.0, -1e-6, 1 + 1e-6])  # within the range tolerance: clamped
    expected = adjust.adjust_gamma(image, gamma, gain, backend="torch")
    for layout in (torch.contiguous_format, torch.channels_last):
        source = image.contiguous(memory_format=layout)
        ours = adjust.adjust_gamma(source, gamma, gain)
        assert ours.is_contiguous(memory_format=layout)
        assert (ours - expected).abs().max() <= 3e-7
    reference = np.clip(gain * cv2.pow(np.maximum(image[1].numpy(), 0).reshape(3, -1), gamma), 0, 1)
    assert np.abs(adjust.adjust_gamma(image[1], gamma, gain).numpy().reshape(3, -1) - reference).max() <= 3e-7


def test_dense_flat_reads_channels_last_in_place():
    image = torch.rand(1, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    flat_in, flat_out, out = dense_flat(image)
    assert np.shares_memory(flat_in, image.numpy()) and out.stride() == image.stride()
    flat_out[:] = flat_in
    assert torch.equal(out, image)
    assert interleaved(image).shape == (1, 4, 5, 3) and interleaved(image.contiguous()) is None


def test_grayscale_of_channels_last_is_cvtcolor_in_place():
    image = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(9))
    hwc = image.permute(0, 2, 3, 1).contiguous()
    ours = color.rgb_to_grayscale(hwc.permute(0, 3, 1, 2))  # channels_last, as torch.from_numpy(hwc).permute
    assert torch.equal(ours[:, 0], torch.from_numpy(np.stack([cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
                                                             for x in hwc.numpy()])))
    assert (ours - color.rgb_to_grayscale(image, backend="torch")).abs().max() <= 1e-6
    assert (color.rgb_to_grayscale(image) - ours).abs().max() <= 1e-6


def test_sepia_and_ycbcr_on_the_planes():
    image = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(10))
    image[0, :, 0, 0] = torch.tensor([-1e-6, -1e-6, -1e-6])  # sepia clips the result at 0 too
    assert (adjust.sepia(image) - adjust.sepia(image, backend="torch")).abs().max() <= 1e-6
    assert float(adjust.sepia(image).min()) == 0
    for color_range in ("full", "studio"):
        ours = color.rgb_to_ycbcr(image.clamp(0, 1), color_range)
        assert (ours - color.rgb_to_ycbcr(image.clamp(0, 1), color_range, backend="torch")).abs().max() <= 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unsharp_mask_in_one_pass_per_plane(dtype):
    image = torch.rand(2, 3, 9, 8, generator=torch.Generator().manual_seed(11), dtype=dtype)
    ours = filters.unsharp_mask(image, 1.2, 0.8, backend="opencv")
    assert ours.dtype == dtype
    assert (ours - filters.unsharp_mask(image, 1.2, 0.8, backend="torch")).abs().max() <= 1e-6
    hwc = image[0].permute(1, 2, 0).numpy()
    reference = np.clip(1.8 * hwc - 0.8 * cv2.GaussianBlur(hwc, (0, 0), 1.2), 0, 1)
    assert np.abs(ours[0].permute(1, 2, 0).numpy() - reference).max() <= 1e-6


@pytest.mark.parametrize("channels", [1, 3])
def test_bilateral_through_one_buffer(channels):
    image = torch.rand(2, channels, 7, 9, generator=torch.Generator().manual_seed(12))
    ours = filters.bilateral_filter(image, 5, 0.2, 1.5, backend="opencv")
    for one, out in zip(image, ours):
        hwc = one.permute(1, 2, 0).numpy().copy()
        reference = cv2.bilateralFilter(hwc, 5, 0.2, 1.5, borderType=cv2.BORDER_REFLECT_101)
        assert np.abs(out.permute(1, 2, 0).numpy() - reference.reshape(hwc.shape)).max() <= 1e-6


def test_check_image_returns_the_range_it_checked():
    image = torch.tensor([0.25, 0.5, 1.0]).view(1, 3, 1, 1)
    assert check_image(image, unit_range=True) == (0.25, 1.0)
    assert check_image(image) is None
    assert check_image(torch.rand(0, 3, 2, 2), unit_range=True) == (0.0, 0.0)


def test_check_image_reads_a_channels_last_tensor_as_one_row():
    image = torch.rand(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    view = memory_view(image)
    assert view.dim() == 1 and view.data_ptr() == image.data_ptr()
    assert memory_view(image[:, :2]).dim() == 4  # not dense: the tensor itself
    image[1, 2, 3, 4] = float("nan")
    with pytest.raises(ShapeError, match="expected values in \\[0, 1\\]|NaN"):
        check_image(image, unit_range=True)
    with pytest.raises(ShapeError, match="NaN"):
        check_image(image)


FILTERS = {
    "box_blur": lambda x, b: filters.box_blur(x, (3, 5), backend=b),
    "gaussian_blur": lambda x, b: filters.gaussian_blur(x, 1.1, border="replicate", backend=b),
    "median_blur": lambda x, b: filters.median_blur(x, 5, backend=b),
    "laplacian": lambda x, b: filters.laplacian(x, 3, border="constant", backend=b),
    "sobel": lambda x, b: filters.sobel(x, backend=b),
    "unsharp_mask": lambda x, b: filters.unsharp_mask(x, 1.0, 0.5, backend=b),
    "bilateral_filter": lambda x, b: filters.bilateral_filter(x, 5, 0.2, 1.5, backend=b),
    "erode": lambda x, b: morphology.erode(x, 3, backend=b),
    "closing": lambda x, b: morphology.closing(x, morphology.structuring_element("ellipse", 5), backend=b),
}


@pytest.mark.parametrize("name", FILTERS)
def test_channels_last_batches_are_filtered_in_place(name):
    op = FILTERS[name]
    image = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(13))
    expected = op(image, "torch")
    ours = op(image.contiguous(memory_format=torch.channels_last), "opencv")
    assert ours.is_contiguous(memory_format=torch.channels_last) and ours.dtype == torch.float32
    assert (ours - expected).abs().max() <= 1e-5
    # OpenCV's 3-channel loops sum in another order than its 1-channel ones: equal to float32 rounding.
    assert (ours - op(image, "opencv")).abs().max() <= 1e-6


CONVERSIONS = {
    "rgb_to_hsv": color.rgb_to_hsv, "rgb_to_hls": color.rgb_to_hls, "rgb_to_xyz": color.rgb_to_xyz,
    "rgb_to_lab": color.rgb_to_lab, "rgb_to_ycbcr": color.rgb_to_ycbcr, "sepia": adjust.sepia,
    "rgb_to_bgr": lambda x: color.rgb_to_bgr(x, backend="opencv"),
    "hsv_to_rgb": lambda x: color.hsv_to_rgb(color.rgb_to_hsv(x, backend="torch").contiguous(
        memory_format=torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else
        torch.contiguous_format)),
}


@pytest.mark.parametrize("name", CONVERSIONS)
def test_conversions_read_channels_last_pixels_in_place(name):
    op = CONVERSIONS[name]
    image = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(14))
    ours = op(image.contiguous(memory_format=torch.channels_last))
    scale = 100 if name == "rgb_to_lab" else 1  # L*a*b* spans +-100: float32 rounding is 1e-5 there
    assert (ours - op(image)).abs().max() <= 1e-6 * scale
