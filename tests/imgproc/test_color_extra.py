"""Luv, YUV, YUV 4:2:0, RGBA and Bayer demosaicing against OpenCV and scikit-image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.color
import torch

from ._photos import small_uint8, to_numpy, to_tensor
from zrenie.errors import ShapeError
from zrenie.imgproc import color_extra as extra

BYTE = 1 / 255


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """(40, 48, 3) uint8: real content, both sides even."""
    return small_uint8("coffee")[40:80, 30:78]


def test_luv_matches_skimage_and_opencv(small):
    ours = to_numpy(extra.rgb_to_luv(to_tensor(small)))
    assert np.abs(ours - skimage.color.rgb2luv(small)).max() <= 1e-3
    # OpenCV's own white point digits and sRGB spline: a few hundredths of a unit.
    assert np.abs(ours - cv2.cvtColor(small.astype(np.float32) / 255, cv2.COLOR_RGB2Luv)).max() <= 0.05
    back = extra.luv_to_rgb(to_tensor(skimage.color.rgb2luv(small).astype(np.float32)))
    assert np.abs(to_numpy(back) - small / 255).max() <= 1e-5


def test_luv_round_trip_covers_the_rgb_cube_and_black():
    cube = torch.stack(torch.meshgrid(*[torch.linspace(0, 1, 9)] * 3, indexing="ij")).reshape(3, 27, 27)
    luv = extra.rgb_to_luv(cube)
    assert luv[:, 0, 0].abs().max() <= 1e-5  # black: L = u = v = 0, no 0 / 0
    assert (extra.luv_to_rgb(luv) - cube).abs().max() <= 1e-5


@pytest.mark.parametrize("op", [extra.rgb_to_luv, extra.luv_to_rgb, extra.rgb_to_yuv, extra.yuv_to_rgb,
                                lambda x: extra.bayer_to_rgb(x[:, :1]), lambda x: extra.rgba_to_rgb(
                                    torch.cat((x, x[:, :1]), 1), (0.2, 0.5, 0.9))])
def test_new_conversions_gradcheck(op):
    image = 0.2 + 0.6 * torch.rand(1, 3, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    if op is extra.luv_to_rgb:
        image = extra.rgb_to_luv(image).detach()
    if op is extra.yuv_to_rgb:
        image = extra.rgb_to_yuv(image).detach()
    assert torch.autograd.gradcheck(op, (image.requires_grad_(),))


def test_yuv_matches_opencv(crop):
    ref = cv2.cvtColor(crop.astype(np.float32) / 255, cv2.COLOR_RGB2YUV)  # U, V centred at 0.5
    for backend in ("torch", "opencv"):
        ours = to_numpy(extra.rgb_to_yuv(to_tensor(crop), backend=backend))
        assert np.abs(ours - ref).max() <= 1e-6
        # OpenCV's inverse rounds its coefficients (1.14, 0.395, 0.581, 2.032); zrenie's is exact.
        back = to_numpy(extra.yuv_to_rgb(to_tensor(ref), backend=backend))
        assert np.abs(back - cv2.cvtColor(ref, cv2.COLOR_YUV2RGB)).max() <= 2e-4
        assert np.abs(back - crop / 255).max() <= 1e-6


def _i420_planes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    i420 = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)
    quarter = height * width // 4
    chroma = i420[height:].reshape(-1)
    return i420[:height], chroma[:quarter].reshape(height // 2, width // 2), chroma[quarter:].reshape(
        height // 2, width // 2)


def test_yuv420_matches_opencv_i420(crop):
    y_ref, u_ref, v_ref = _i420_planes(crop)
    y, uv = extra.rgb_to_yuv420(to_tensor(crop), chroma="top_left")  # OpenCV keeps each 2x2 block's top-left chroma
    assert y.shape == (1, 40, 48) and uv.shape == (2, 20, 24)
    assert np.abs(y[0].numpy() * 255 - y_ref).max() <= 1
    assert np.abs(uv.numpy() * 255 - np.stack((u_ref, v_ref))).max() <= 1
    i420 = np.concatenate((y_ref, u_ref.reshape(-1, 48), v_ref.reshape(-1, 48)))
    decoded = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    ours = extra.yuv420_to_rgb(to_tensor(y_ref), to_tensor(np.stack((u_ref, v_ref), -1)))
    assert np.abs(to_numpy(ours) * 255 - decoded).max() <= 1


def test_yuv420_average_is_the_mean_chroma_of_each_block(crop):
    y, uv = extra.rgb_to_yuv420(to_tensor(crop)[None])
    ycbcr = skimage.color.rgb2ycbcr(crop) / 255  # BT.601 studio range
    assert np.abs(y[0, 0].numpy() - ycbcr[..., 0]).max() <= 1e-5
    mean = ycbcr[..., 1:].reshape(20, 2, 24, 2, 2).mean((1, 3))
    assert np.abs(to_numpy(uv[0]) - mean).max() <= 1e-5
    full_y, full_uv = extra.rgb_to_yuv420(to_tensor(crop), color_range="full")
    assert (extra.yuv420_to_rgb(full_y, full_uv, "full") - to_tensor(crop)).abs().max() <= 0.2  # chroma lost, not luma
    module = extra.Yuv420ToRgb("full", clip=False)
    assert torch.equal(module(*extra.RgbToYuv420(color_range="full")(to_tensor(crop))),
                       extra.yuv420_to_rgb(full_y, full_uv, "full", clip=False))


def test_yuv420_refuses_odd_sizes_in_one_line():
    with pytest.raises(ShapeError, match=r"expected an even height and width .* got shape \(3, 7, 8\)$"):
        extra.rgb_to_yuv420(torch.rand(3, 7, 8))
    with pytest.raises(ShapeError, match=r"y, uv: expected .* got shapes \(1, 1, 4, 4\) and \(1, 2, 4, 4\)$"):
        extra.yuv420_to_rgb(torch.rand(1, 1, 4, 4), torch.rand(1, 2, 4, 4))
    with pytest.raises(ShapeError, match="chroma: expected one of average, top_left"):
        extra.rgb_to_yuv420(torch.rand(3, 4, 4), chroma="nearest")


def test_rgba_matches_opencv_where_opaque_and_composites_elsewhere(crop):
    rgb = crop.astype(np.float32) / 255
    rgba = extra.rgb_to_rgba(to_tensor(crop))
    assert np.array_equal(to_numpy(rgba), cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA))
    half_opaque = extra.rgb_to_rgba(to_tensor(crop), 0.25)
    assert torch.equal(extra.rgb_to_rgba(to_tensor(crop), 0.25, backend="opencv"), half_opaque)
    assert np.array_equal(to_numpy(extra.rgba_to_rgb(rgba)), cv2.cvtColor(to_numpy(rgba), cv2.COLOR_RGBA2RGB))
    alpha = torch.rand(1, 40, 48, generator=torch.Generator().manual_seed(7))
    composited = extra.rgba_to_rgb(extra.RgbToRgba(alpha)(to_tensor(crop)), (0.1, 0.5, 0.9))
    expected = rgb * alpha[0, ..., None].numpy() + np.array([0.1, 0.5, 0.9]) * (1 - alpha[0, ..., None].numpy())
    assert np.abs(to_numpy(composited) - expected).max() <= 1e-6
    background = torch.rand(3, 40, 48)
    transparent = torch.cat((to_tensor(crop), torch.zeros(1, 40, 48)))
    assert torch.equal(extra.rgba_to_rgb(transparent, background), background)


@pytest.mark.parametrize("call, words", [
    (lambda: extra.rgb_to_rgba(torch.rand(3, 4, 4), 1.5), r"alpha: expected a number in \[0, 1\]"),
    (lambda: extra.rgb_to_rgba(torch.rand(3, 4, 4), torch.rand(1, 4, 5)), r"alpha: expected \(B or 1, 1, H, W\)"),
    (lambda: extra.rgba_to_rgb(torch.rand(4, 4, 4), (1, 0)), "background: expected a gray level or an"),
    (lambda: extra.rgba_to_rgb(torch.rand(4, 4, 4), torch.rand(3, 5, 4)), "background: shape"),
    (lambda: extra.rgba_to_rgb(torch.rand(3, 4, 4)), "4 channels|expected \\(B, 4, H, W\\)"),
])
def test_rgba_errors_are_one_line(call, words):
    with pytest.raises(ShapeError, match=words) as err:
        call()
    assert "\n" not in str(err.value)


def _mosaic(image: np.ndarray, pattern: str) -> np.ndarray:
    """The one-channel sensor image of `pattern` (its 2x2 tile, top-left first) for an RGB image."""
    out = np.zeros(image.shape[:2], image.dtype)
    for position, colour in enumerate(extra.BAYER_PATTERNS[pattern]):
        out[position // 2::2, position % 2::2] = image[position // 2::2, position % 2::2, colour]
    return out


OPENCV_BAYER = {"RGGB": cv2.COLOR_BayerBG2RGB, "BGGR": cv2.COLOR_BayerRG2RGB, "GRBG": cv2.COLOR_BayerGB2RGB,
                "GBRG": cv2.COLOR_BayerGR2RGB}


@pytest.mark.parametrize("pattern", extra.BAYER_PATTERNS)
def test_bayer_matches_opencv_bilinear_inside(crop, pattern):
    mosaic = _mosaic(crop[:15, :21], pattern)  # odd sizes too
    ours = to_numpy(extra.bayer_to_rgb(to_tensor(mosaic), pattern))
    ref = cv2.cvtColor(mosaic, OPENCV_BAYER[pattern]) / 255
    assert np.abs(ours - ref)[1:-1, 1:-1].max() <= BYTE  # OpenCV rounds to 8 bits
    # Every pixel keeps its measured colour, the border ones too (OpenCV copies the next row there).
    assert np.abs(_mosaic((ours * 255).round().astype(np.uint8), pattern) - mosaic.astype(int)).max() == 0


def test_bayer_names_and_flat_colours():
    flat = np.zeros((6, 8, 3), np.float32) + np.array([0.8, 0.4, 0.1], np.float32)
    for pattern in extra.BAYER_PATTERNS:  # a flat colour comes back exactly, border included
        out = extra.BayerToRgb(pattern)(to_tensor(_mosaic(flat, pattern)))
        assert (out - to_tensor(flat)).abs().max() <= 1e-6
    with pytest.raises(ShapeError, match="pattern: expected one of RGGB, BGGR, GRBG, GBRG, got 'RGBG'"):
        extra.bayer_to_rgb(torch.rand(1, 4, 4), "RGBG")
    with pytest.raises(ShapeError, match="at least 2x2"):
        extra.bayer_to_rgb(torch.rand(1, 1, 4))
