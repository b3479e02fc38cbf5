"""Colour spaces and colour processing against OpenCV, scikit-image and torchvision on real photos."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np
import pytest
import skimage.color
import skimage.exposure
import torch
import torchvision.transforms.v2.functional as TF

from ._photos import to_numpy, to_tensor
from zrenie.errors import ShapeError
from zrenie.imgproc import adjust, color

BYTE = 1 / 255


def test_grayscale_bt601_matches_opencv(photo):
    ours = to_numpy(color.rgb_to_grayscale(to_tensor(photo)))
    ref = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) / 255
    assert np.abs(ours - ref).max() <= BYTE


def test_grayscale_bt709_matches_skimage(photo):
    ours = to_numpy(color.rgb_to_grayscale(to_tensor(photo), standard="bt709"))
    assert np.abs(ours - skimage.color.rgb2gray(photo)).max() <= BYTE


def test_hsv_matches_skimage_and_opencv(photo):
    ours = to_numpy(color.rgb_to_hsv(to_tensor(photo)))
    assert np.abs(ours - skimage.color.rgb2hsv(photo)).max() <= 1e-5
    ref = cv2.cvtColor(photo.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    hue_gap = np.abs(ours[..., 0] - ref[..., 0] / 360)
    assert np.minimum(hue_gap, 1 - hue_gap).max() <= 1e-5  # 0 and 1 are the same hue
    assert np.abs(ours[..., 1:] - ref[..., 1:]).max() <= 1e-4  # float32 rounding in OpenCV's division


def test_hsv_to_rgb_inverts_opencv_hsv(photo):
    hsv = cv2.cvtColor(photo.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    hsv[..., 0] /= 360
    assert np.abs(to_numpy(color.hsv_to_rgb(to_tensor(hsv))) - photo / 255).max() <= BYTE


def test_hls_matches_opencv(photo):
    ours = to_numpy(color.rgb_to_hls(to_tensor(photo)))
    ref = cv2.cvtColor(photo.astype(np.float32) / 255, cv2.COLOR_RGB2HLS)
    hue_gap = np.abs(ours[..., 0] - ref[..., 0] / 360)
    assert np.minimum(hue_gap, 1 - hue_gap).max() <= 1e-5
    assert np.abs(ours[..., 1:] - ref[..., 1:]).max() <= 1e-4
    back = cv2.cvtColor(ref, cv2.COLOR_HLS2RGB)
    assert np.abs(to_numpy(color.hls_to_rgb(to_tensor(ours))) - back).max() <= BYTE


def test_hls_matches_colorsys_on_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.random((50, 3))
    ours = to_numpy(color.rgb_to_hls(to_tensor(pixels.reshape(5, 10, 3).astype(np.float32)))).reshape(-1, 3)
    ref = np.array([colorsys.rgb_to_hls(*p) for p in pixels])
    assert np.abs(ours - ref).max() <= 1e-5


def test_lab_matches_skimage_and_opencv(photo):
    ours = to_numpy(color.rgb_to_lab(to_tensor(photo)))
    assert np.abs(ours - skimage.color.rgb2lab(photo)).max() <= 0.5
    # OpenCV's D65 white (0.950456, 1, 1.088754) differs in the 5th digit: ~0.4 units at most.
    ref = cv2.cvtColor(photo.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    assert np.abs(ours - ref).max() <= 0.5


def test_lab_to_rgb_matches_skimage(photo):
    lab = skimage.color.rgb2lab(photo).astype(np.float32)
    ours = to_numpy(color.lab_to_rgb(to_tensor(lab)))
    assert np.abs(ours - skimage.color.lab2rgb(lab)).max() <= BYTE
    assert np.abs(ours - photo / 255).max() <= BYTE


def test_xyz_matches_skimage_and_opencv_on_linear_input(photo):
    image = to_tensor(photo)
    ours = to_numpy(color.rgb_to_xyz(image))
    assert np.abs(ours - skimage.color.rgb2xyz(photo)).max() <= 1e-5
    # OpenCV skips the sRGB curve (see the docstring), so feed it linear light.
    linear = to_numpy(color.rgb_to_linear_rgb(image))
    assert np.abs(ours - cv2.cvtColor(linear, cv2.COLOR_RGB2XYZ)).max() <= 1e-4
    assert np.abs(to_numpy(color.xyz_to_rgb(to_tensor(ours))) - skimage.color.xyz2rgb(ours)).max() <= 1e-5


def test_ycbcr_full_matches_opencv(photo):
    ours = to_numpy(color.rgb_to_ycbcr(to_tensor(photo)))
    # OpenCV's float path; its 8-bit fixed-point path differs from its own float path by 1.3/255.
    ycrcb = cv2.cvtColor(photo.astype(np.float32) / 255, cv2.COLOR_RGB2YCrCb)
    assert np.abs(ours - ycrcb[..., [0, 2, 1]]).max() <= BYTE
    back = to_numpy(color.ycbcr_to_rgb(to_tensor(ycrcb[..., [0, 2, 1]])))
    assert np.abs(back - cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)).max() <= BYTE


def test_ycbcr_studio_matches_skimage(photo):
    ours = to_numpy(color.rgb_to_ycbcr(to_tensor(photo), color_range="studio"))
    assert np.abs(ours - skimage.color.rgb2ycbcr(photo) / 255).max() <= BYTE
    back = to_numpy(color.ycbcr_to_rgb(to_tensor(ours), color_range="studio"))
    assert np.abs(back - photo / 255).max() <= 1e-5


def test_bgr_matches_opencv(photo):
    assert np.array_equal(to_numpy(color.rgb_to_bgr(to_tensor(photo))) * 255, cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))


ROUND_TRIPS = [
    (color.rgb_to_hsv, color.hsv_to_rgb), (color.rgb_to_hls, color.hls_to_rgb),
    (color.rgb_to_lab, color.lab_to_rgb), (color.rgb_to_xyz, color.xyz_to_rgb),
    (color.rgb_to_ycbcr, color.ycbcr_to_rgb), (color.rgb_to_bgr, color.bgr_to_rgb),
    (color.rgb_to_linear_rgb, color.linear_rgb_to_rgb),
    (lambda x: color.rgb_to_ycbcr(x, "studio"), lambda x: color.ycbcr_to_rgb(x, "studio")),
]


@pytest.mark.parametrize("forward, backward", ROUND_TRIPS)
def test_round_trip_on_random_images(forward, backward):
    image = torch.rand(4, 3, 33, 17, generator=torch.Generator().manual_seed(0))
    assert (backward(forward(image)) - image).abs().max() <= 1e-5
    assert backward(forward(image[0])).shape == image[0].shape  # (C, H, W) stays (C, H, W)


GRADCHECKED = [color.rgb_to_grayscale, color.rgb_to_hsv, color.hsv_to_rgb, color.rgb_to_hls, color.hls_to_rgb,
               color.rgb_to_lab, color.lab_to_rgb, color.rgb_to_xyz, color.xyz_to_rgb, color.rgb_to_ycbcr,
               color.ycbcr_to_rgb, adjust.sepia, adjust.white_balance_gray_world,
               lambda x: adjust.adjust_saturation(x, 0.7), lambda x: adjust.adjust_hue(x, 0.1),
               lambda x: adjust.adjust_gamma(x, 0.8), lambda x: adjust.adjust_contrast(x, 0.8)]


@pytest.mark.parametrize("op", GRADCHECKED)
def test_gradcheck(op):
    image = (0.2 + 0.6 * torch.rand(1, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    if op is color.lab_to_rgb:  # a Lab image well inside the sRGB gamut
        image = color.rgb_to_lab(image).detach()
    assert torch.autograd.gradcheck(op, (image.requires_grad_(),))


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.7])
def test_brightness_contrast_saturation_match_torchvision(small, factor):
    image = to_tensor(small)
    assert torch.allclose(adjust.adjust_brightness(image, factor), TF.adjust_brightness(image, factor), atol=1e-6)
    # torchvision's gray uses 0.2989 for red, not BT.601's 0.299: its mean differs by ~1e-4.
    assert torch.allclose(adjust.adjust_contrast(image, factor), TF.adjust_contrast(image, factor), atol=2e-4)
    assert torch.allclose(adjust.adjust_saturation(image, factor), TF.adjust_saturation(image, factor), atol=2e-4)


@pytest.mark.parametrize("shift", [-0.4, 0.1, 0.5])
def test_adjust_hue_matches_torchvision(small, shift):
    image = to_tensor(small)
    assert (adjust.adjust_hue(image, shift) - TF.adjust_hue(image, shift)).abs().max() <= 1e-5


def test_hue_shift_wraps():
    hsv = torch.tensor([0.95, 0.5, 0.5]).view(3, 1, 1)
    assert torch.allclose(adjust.hue_shift(hsv, 0.1)[0], torch.tensor(0.05), atol=1e-6)


@pytest.mark.parametrize("gamma, gain", [(0.5, 1.0), (2.2, 0.9)])
def test_gamma_matches_skimage(small, gamma, gain):
    ours = to_numpy(adjust.adjust_gamma(to_tensor(small), gamma, gain))
    ref = skimage.exposure.adjust_gamma(small / 255, gamma, gain)
    assert np.abs(ours - np.clip(ref, 0, 1)).max() <= 1e-5


def test_sepia_and_invert_match_opencv(small):
    matrix = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    ref = np.clip(cv2.transform(small.astype(np.float32) / 255, matrix), 0, 1)
    assert np.abs(to_numpy(adjust.sepia(to_tensor(small))) - ref).max() <= 1e-5
    assert np.abs(to_numpy(adjust.invert(to_tensor(small))) * 255 - cv2.bitwise_not(small)).max() <= 1e-4


def test_gray_world_equalises_channel_means(small):
    image = to_tensor(small).double()
    means = small.reshape(-1, 3).mean(0) / 255
    ref = np.clip(small / 255 * (means.mean() / means), 0, 1)
    ours = adjust.white_balance_gray_world(image)
    assert np.abs(to_numpy(ours) - ref).max() <= 1e-6


@pytest.mark.parametrize("bad, words", [
    (torch.rand(3, 8), "expected (B, 3, H, W)"),
    (torch.rand(2, 4, 8, 8), "4 channels"),
    ((torch.rand(3, 8, 8) * 255).to(torch.uint8), "float"),
    (torch.full((3, 8, 8), float("nan")), "NaN"),
])
def test_bad_inputs_raise_shape_error(bad, words):
    with pytest.raises(ShapeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        color.rgb_to_hsv(bad)


def test_modules_wrap_functions():
    image = torch.rand(2, 3, 8, 8)
    assert torch.equal(color.RgbToLab()(image), color.rgb_to_lab(image))
    assert torch.equal(color.RgbToYcbcr("studio")(image), color.rgb_to_ycbcr(image, "studio"))
    assert torch.equal(adjust.AdjustHue(0.2)(image), adjust.adjust_hue(image, 0.2))


@pytest.mark.parametrize("op", [color.rgb_to_hsv, color.hsv_to_rgb, color.rgb_to_hls, color.hls_to_rgb,
                                color.rgb_to_lab, color.rgb_to_xyz, color.xyz_to_rgb, color.rgb_to_ycbcr,
                                color.ycbcr_to_rgb, adjust.sepia])
def test_cache_blocks_give_the_whole_image_result(op):
    image = torch.rand(2, 3, 300, 700, generator=torch.Generator().manual_seed(2))  # big enough for blocks
    whole = op(image.clone().requires_grad_()).detach()  # autograd disables blocks
    assert torch.allclose(op(image, backend="torch"), whole, atol=1e-5)  # "auto" would run OpenCV here


def test_error_names_the_shape_the_caller_passed():
    with pytest.raises(ShapeError, match=r"4 channels in shape \(4, 8, 8\)"):
        color.rgb_to_lab(torch.rand(4, 8, 8))


def test_grayscale_to_rgb_matches_opencv(photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    ours = to_numpy(color.grayscale_to_rgb(to_tensor(gray))) * 255
    assert np.abs(ours - cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)).max() <= 1e-3
