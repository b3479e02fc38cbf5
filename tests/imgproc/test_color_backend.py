"""The OpenCV paths of the colour ops against the PyTorch paths and OpenCV, the range policy, empty batches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ._photos import small_uint8, to_numpy, to_tensor
from zrenie.errors import ConfigError, ShapeError
from zrenie.imgproc import adjust, color, color_extra


def _hard_pixels() -> torch.Tensor:
    """Tensor[2, 3, 12, 16] in [0, 1]: random pixels, dark ones (where OpenCV's HSV epsilons bite),
    8-bit levels, ties between channels and grays."""
    image = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(3))
    image[0, :, :4] *= 1e-3
    image[0, :, 4:8] = torch.round(image[0, :, 4:8] * 255) / 255
    image[1, 1, :4] = image[1, 0, :4]
    image[1, :, 4:8] = image[1, :1, 4:8]
    return image


def _hue_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    gap = (a - b).abs()
    return float(torch.minimum(gap, 1 - gap).max())  # hue 0 and hue 1 - 1e-7 are neighbours


def _hsv_ref(image: np.ndarray) -> np.ndarray:
    out = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    out[..., 0] /= 360
    return out


def _hls_ref(image: np.ndarray) -> np.ndarray:
    out = cv2.cvtColor(image, cv2.COLOR_RGB2HLS)
    out[..., 0] /= 360
    return out


RGB = _hard_pixels()
# name -> (op taking backend=, its input, OpenCV's own conversion of the input as (H, W, C) float32 or
# None, tolerance against OpenCV on 8-bit photo levels, tolerance of the OpenCV path against PyTorch's).
CASES = {
    "rgb_to_grayscale": (color.rgb_to_grayscale, RGB, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), 1e-6, 1e-6),
    "rgb_to_hsv": (color.rgb_to_hsv, RGB, _hsv_ref, 1e-4, 1e-6),
    "hsv_to_rgb": (color.hsv_to_rgb, color.rgb_to_hsv(RGB, backend="torch"), None, None, 2e-6),
    "rgb_to_hls": (color.rgb_to_hls, RGB, _hls_ref, 1e-4, 1e-6),
    "hls_to_rgb": (color.hls_to_rgb, color.rgb_to_hls(RGB, backend="torch"), None, None, 2e-6),
    "rgb_to_xyz": (color.rgb_to_xyz, RGB, None, None, 1e-6),
    "xyz_to_rgb": (color.xyz_to_rgb, color.rgb_to_xyz(RGB, backend="torch"), None, None, 4e-6),
    "rgb_to_lab": (color.rgb_to_lab, RGB, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2Lab), 0.5, 1e-4),
    "lab_to_rgb": (color.lab_to_rgb, color.rgb_to_lab(RGB, backend="torch"), None, None, 2e-5),
    "rgb_to_ycbcr": (color.rgb_to_ycbcr, RGB, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)[..., [0, 2, 1]], 3e-4,
                     1e-6),
    "ycbcr_to_rgb": (color.ycbcr_to_rgb, color.rgb_to_ycbcr(RGB, backend="torch"), None, None, 1e-6),
    "rgb_to_yuv": (color_extra.rgb_to_yuv, RGB, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2YUV), 1e-6, 1e-6),
    "yuv_to_rgb": (color_extra.yuv_to_rgb, color_extra.rgb_to_yuv(RGB, backend="torch"), None, None, 1e-6),
    "rgb_to_bgr": (color.rgb_to_bgr, RGB, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2BGR), 0, 0),
    "grayscale_to_rgb": (color.grayscale_to_rgb, RGB[:, :1], lambda x: cv2.cvtColor(x, cv2.COLOR_GRAY2RGB), 0, 0),
    "rgb_to_rgba": (color_extra.rgb_to_rgba, RGB, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2RGBA), 0, 0),
    "sepia": (adjust.sepia, RGB, lambda x: np.clip(cv2.transform(x, np.array(adjust._SEPIA, np.float32)), 0, 1), 1e-6,
              1e-6),
    "adjust_gamma": (lambda x, backend="auto": adjust.adjust_gamma(x, 0.45, 0.9, backend=backend), RGB,
                     lambda x: np.clip(0.9 * cv2.pow(x, 0.45), 0, 1), 1e-6, 1e-6),
    "adjust_hue": (lambda x, backend="auto": adjust.adjust_hue(x, 0.3, backend=backend), RGB, None, None, 2e-6),
}


@pytest.mark.parametrize("name", CASES)
def test_opencv_path_matches_torch_path(name):
    op, image, _, _, tolerance = CASES[name]
    ours, theirs = op(image, backend="opencv"), op(image, backend="torch")
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == torch.float32
    if name in ("rgb_to_hsv", "rgb_to_hls"):
        assert _hue_gap(ours[:, 0], theirs[:, 0]) <= tolerance
        ours, theirs = ours[:, 1:], theirs[:, 1:]
    assert (ours - theirs).abs().max() <= tolerance
    assert torch.equal(op(image), op(image, backend="opencv"))  # "auto" on a CPU image without grad


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case[2] is not None])
def test_auto_path_matches_opencv_on_a_photo(name):
    op, image, reference, tolerance, _ = CASES[name]
    photo = small_uint8("astronaut")[:40, :48]
    pixels = photo[..., :1] if image.shape[1] == 1 else photo
    ours, ref = to_numpy(op(to_tensor(pixels))), reference(pixels.astype(np.float32) / 255)
    if name in ("rgb_to_hsv", "rgb_to_hls"):
        assert _hue_gap(torch.from_numpy(ours[..., 0]), torch.from_numpy(ref[..., 0])) <= 1e-5
        ours, ref = ours[..., 1:], ref[..., 1:]
    assert np.abs(ours - ref.reshape(ours.shape)).max() <= tolerance


def test_opencv_path_takes_channels_last_and_half_tensors():
    image = RGB.contiguous(memory_format=torch.channels_last)
    assert torch.equal(color.rgb_to_hsv(image), color.rgb_to_hsv(RGB))
    assert torch.equal(color.hsv_to_rgb(color.rgb_to_hsv(RGB).contiguous(memory_format=torch.channels_last)),
                       color.hsv_to_rgb(color.rgb_to_hsv(RGB)))
    half = color.rgb_to_lab(RGB.half())
    assert half.dtype == torch.float16 and (half.float() - color.rgb_to_lab(RGB.half().float())).abs().max() <= 0.1


def test_auto_runs_torch_for_gradients_float64_and_bt709():
    image = RGB.double().requires_grad_()
    hsv = color.rgb_to_hsv(image)  # "auto" with a gradient: the PyTorch path
    assert hsv.dtype == torch.float64 and hsv.requires_grad
    assert torch.equal(color.rgb_to_hsv(RGB.double()), color.rgb_to_hsv(RGB.double(), backend="torch"))
    assert torch.equal(color.rgb_to_grayscale(RGB, "bt709"), color.rgb_to_grayscale(RGB, "bt709", backend="torch"))
    with pytest.raises(ConfigError, match="gradient"):
        color.rgb_to_hsv(image, backend="opencv")
    with pytest.raises(ConfigError, match="no equivalent"):
        color.rgb_to_grayscale(RGB, "bt709", backend="opencv")
    with pytest.raises(ConfigError, match="backend: expected one of auto, torch, opencv"):
        color.rgb_to_bgr(RGB, backend="cv2")


def test_modules_pass_the_backend_through():
    assert torch.equal(color.RgbToHsv(backend="torch")(RGB), color.rgb_to_hsv(RGB, backend="torch"))
    assert torch.equal(adjust.Sepia(backend="opencv")(RGB), adjust.sepia(RGB, backend="opencv"))


HUE_OPS = [color.rgb_to_hsv, color.rgb_to_hls]


@pytest.mark.parametrize("backend", ["torch", "opencv"])
@pytest.mark.parametrize("op", HUE_OPS)
def test_hue_stays_below_one(op, backend):
    # max = r and g one float below b: the hue is -2.5e-8 turns, and -2.5e-8 + 1 rounds to 1.0 in float32.
    blue = np.float32(0.3)
    pixel = torch.tensor([0.5, float(np.nextafter(blue, np.float32(0))), float(blue)]).view(1, 3, 1, 1)
    assert 0 <= float(op(pixel, backend=backend)[0, 0]) < 1
    sweep = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    sweep[0, 1] = torch.minimum(sweep[0, 1], torch.nextafter(sweep[0, 2], torch.tensor(0.0)))  # g just below b
    sweep[0, 0] = torch.maximum(sweep[0, 0], sweep[0, 2])
    assert float(op(sweep, backend=backend)[:, 0].max()) < 1
    if backend == "torch":
        pixel64 = torch.tensor([0.5, float(np.nextafter(0.3, 0)), 0.3], dtype=torch.float64).view(1, 3, 1, 1)
        assert 0 <= float(op(pixel64)[0, 0]) < 1


def test_hue_shift_stays_below_one():
    hsv = torch.tensor([0.25, 0.5, 0.5]).view(3, 1, 1)
    assert float(adjust.hue_shift(hsv, -0.25 - 1e-9)[0]) < 1


def test_hsv_of_values_up_to_48_is_one_line_error():
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 48
    with pytest.raises(ShapeError, match=r"expected values in \[0, 1\], found .* to 4\d\.\d") as err:
        color.rgb_to_hsv(image)
    assert "\n" not in str(err.value)


BAD_INVERSES = [
    (color.hsv_to_rgb, 1, 1.5, r"expected S \(channel 1 of H, S, V\) in \[0, 1\], found 0\.5 to 1\.5$"),
    (color.hls_to_rgb, 0, -0.5, r"expected H \(channel 0 of H, L, S\) in \[0, 1\], found -0\.5 to 0\.5$"),
    (color.lab_to_rgb, 0, 150.0, r"expected L \(channel 0 of L, a, b\) in \[0, 100\], found 0\.5 to 150$"),
    (color.xyz_to_rgb, 2, -0.1, r"expected Z \(channel 2 of X, Y, Z\) in \[0, inf\], found -0\.1 to 0\.5$"),
    (color.ycbcr_to_rgb, 2, 2.0, r"expected Cr \(channel 2 of Y, Cb, Cr\) in \[0, 1\], found 0\.5 to 2$"),
    (color_extra.yuv_to_rgb, 1, 0.99,
     r"expected U \(channel 1 of Y, U, V\) in \[0\.06409, 0\.9359\], found 0\.5 to 0\.99$"),
    (color_extra.luv_to_rgb, 0, -3.0, r"expected L \(channel 0 of L, u, v\) in \[0, 100\], found -3 to 0\.5$"),
]


@pytest.mark.parametrize("op, channel, value, words", BAD_INVERSES)
def test_inverse_conversions_name_the_channel_out_of_range(op, channel, value, words):
    image = torch.full((3, 4, 5), 0.5)  # in every range, but for one value
    image[channel, 0, 0] = value
    with pytest.raises(ShapeError, match=words) as err:
        op(image)
    assert "\n" not in str(err.value)


def test_inverse_conversions_accept_what_the_forward_ones_return():
    corners = torch.tensor([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], dtype=torch.float32)
    image = torch.cat((corners, RGB[0].flatten(1).T)).T.reshape(3, 1, -1)
    for forward, backward in [(color.rgb_to_hsv, color.hsv_to_rgb), (color.rgb_to_hls, color.hls_to_rgb),
                              (color.rgb_to_lab, color.lab_to_rgb), (color.rgb_to_xyz, color.xyz_to_rgb),
                              (color.rgb_to_ycbcr, color.ycbcr_to_rgb),
                              (color_extra.rgb_to_yuv, color_extra.yuv_to_rgb),
                              (color_extra.rgb_to_luv, color_extra.luv_to_rgb)]:
        for backend in ("torch", "opencv"):
            kwargs = {} if forward is color_extra.rgb_to_luv else {"backend": backend}
            assert (backward(forward(image, **kwargs), **kwargs) - image).abs().max() <= 1e-5, forward.__name__


ADJUSTMENTS = [lambda x: adjust.adjust_brightness(x, 1.2), lambda x: adjust.adjust_contrast(x, 0.5),
               lambda x: adjust.adjust_saturation(x, 0.5), lambda x: adjust.adjust_hue(x, 0.1),
               lambda x: adjust.hue_shift(x, 0.1), lambda x: adjust.adjust_gamma(x, 2.0), adjust.sepia, adjust.invert,
               adjust.white_balance_gray_world, color.rgb_to_bgr, color.rgb_to_linear_rgb, color.linear_rgb_to_rgb]


@pytest.mark.parametrize("op", ADJUSTMENTS)
def test_adjustments_refuse_values_outside_unit_range(op):
    with pytest.raises(ShapeError, match=r"expected values in \[0, 1\], found 0 to 255"):
        op(torch.linspace(0, 255, 48).view(3, 4, 4))


EMPTY = [(color.rgb_to_grayscale, 3, 1), (color.grayscale_to_rgb, 1, 3), (color.rgb_to_bgr, 3, 3),
         (color.rgb_to_hsv, 3, 3), (color.hsv_to_rgb, 3, 3), (color.rgb_to_hls, 3, 3), (color.hls_to_rgb, 3, 3),
         (color.rgb_to_xyz, 3, 3), (color.xyz_to_rgb, 3, 3), (color.rgb_to_lab, 3, 3), (color.lab_to_rgb, 3, 3),
         (color.rgb_to_ycbcr, 3, 3), (color.ycbcr_to_rgb, 3, 3), (color_extra.rgb_to_yuv, 3, 3),
         (color_extra.yuv_to_rgb, 3, 3), (color_extra.rgb_to_rgba, 3, 4), (adjust.sepia, 3, 3),
         (lambda x, backend: adjust.adjust_gamma(x, 2.0, backend=backend), 3, 3),
         (lambda x, backend: adjust.adjust_hue(x, 0.2, backend=backend), 3, 3)]
EMPTY_TORCH_ONLY = [(color.rgb_to_linear_rgb, 3, 3), (color.linear_rgb_to_rgb, 3, 3), (color_extra.rgb_to_luv, 3, 3),
                    (color_extra.luv_to_rgb, 3, 3), (color_extra.rgba_to_rgb, 4, 3), (color_extra.bayer_to_rgb, 1, 3),
                    (lambda x: adjust.adjust_brightness(x, 0.5), 3, 3),
                    (lambda x: adjust.adjust_contrast(x, 0.5), 3, 3),
                    (lambda x: adjust.adjust_saturation(x, 0.5), 3, 3), (lambda x: adjust.hue_shift(x, 0.5), 3, 3),
                    (adjust.invert, 3, 3), (adjust.white_balance_gray_world, 3, 3)]


@pytest.mark.parametrize("backend", ["torch", "opencv"])
def test_empty_batch_gives_an_empty_result(backend):
    torch_only = [(lambda x, backend, op=op: op(x), c, o) for op, c, o in EMPTY_TORCH_ONLY]
    for op, channels, out_channels in EMPTY + torch_only:
        out = op(torch.rand(0, channels, 5, 6), backend=backend)
        assert out.shape == (0, out_channels, 5, 6)
    y, uv = color_extra.rgb_to_yuv420(torch.rand(0, 3, 4, 6))
    assert y.shape == (0, 1, 4, 6) and uv.shape == (0, 2, 2, 3)
    assert color_extra.yuv420_to_rgb(y, uv).shape == (0, 3, 4, 6)
