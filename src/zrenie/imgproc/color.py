"""Colour spaces, both directions, on float images in [0, 1], batched and differentiable.

Conventions (where OpenCV and scikit-image differ, the choice and the reason are in each docstring):

- Every hue is a fraction of a turn in [0, 1), as scikit-image does, so `hue_shift(0.1)` means the
  same thing in HSV and HLS. OpenCV's float path uses degrees: `h_opencv = 360 * h_zrenie`.
- HLS channels are ordered (H, L, S) as in OpenCV and Python's `colorsys`.
- YCbCr channels are ordered (Y, Cb, Cr) as in ITU-R BT.601 and scikit-image; OpenCV's
  `COLOR_RGB2YCrCb` swaps the chroma channels.
- Lab and XYZ decode the sRGB transfer curve first and use the D65 white point.

Luv, YUV, YUV 4:2:0, RGBA and Bayer demosaicing are in `color_extra.py`, with the helpers both
modules share.

Ranges: conversions from RGB refuse values outside [0, 1]; the inverse conversions refuse values
outside the range their forward conversion produces (e.g. hsv_to_rgb: H, S, V in [0, 1]), in one
line naming the channel and the range found.

`backend=` (see `_backend.py`): "auto" runs OpenCV for a float32 (or half) CPU image that needs no
gradient, "torch" always runs the PyTorch code below, "opencv" always OpenCV. The OpenCV path
computes the PyTorch path's formulas, so the two agree to float32 rounding (1e-6, Lab 1e-4; the
tests check each op). cv2.cvtColor runs where its result is the formula's: RGB to HSV and HLS on
the image times 2^126, which removes the FLT_EPSILON it adds (`_GAIN`), HSV and HLS to RGB, and
RGB to gray. Where it uses other constants (its YCrCb, XYZ and Lab) or another curve, the OpenCV
path applies zrenie's formula with OpenCV's primitives instead (cv2.addWeighted on the planes,
cv2.transform, cv2.log and cv2.exp for the powers), each docstring says how. On a planar (NCHW)
CPU frame it is 2x to 6x faster than the PyTorch path (benchmarks/imgproc.py); what still
separates it from cvtColor on (H, W, 3) pixels is in `_cvpixels.py`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc._backend import cv2_module, use_opencv
from zrenie.imgproc._blocks import pointwise_in_blocks
from zrenie.imgproc._checks import batched, check_image
from zrenie.imgproc._module import OpModule
from zrenie.imgproc._cvpixels import (
    affine, cv_ok, decode_srgb, encode_srgb, flat, interleaved, opencv_pixels, scale_add, where_above,
)
from zrenie.imgproc.color_extra import (  # the pieces color.py and color_extra.py share
    _LAB_EPS, _RGB_TO_XYZ, _XYZ_TO_RGB, D65_WHITE, _check_ranges, _check_rgb, _decode_srgb, _encode_srgb, _lab_f,
    _lab_f_inv, _mix, _ycbcr_matrix,
)

# Luma weights. BT.601 is what OpenCV, Pillow and torchvision use for "gray"; BT.709 is the HDTV
# standard that scikit-image's rgb2gray follows (it rounds them to 0.2125, 0.7154, 0.0721).
LUMA_WEIGHTS = {"bt601": (0.299, 0.587, 0.114), "bt709": (0.2126, 0.7152, 0.0722)}


@batched
def rgb_to_grayscale(image: Tensor, standard: str = "bt601", backend: str = "auto") -> Tensor:
    """Luma of an RGB image.

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        standard: "bt601" (0.299, 0.587, 0.114), as OpenCV and torchvision, or "bt709"
            (0.2126, 0.7152, 0.0722), as scikit-image's rgb2gray.
        backend: "auto", "torch" or "opencv" (COLOR_RGB2GRAY's formula; BT.601 only): cv2.cvtColor on
            a channels_last image, which OpenCV reads in place; the same weights on the planes of an
            NCHW one (no interleaving pass).

    Returns:
        Tensor[B, 1, H, W].
    """
    _check_rgb(image)
    if standard not in LUMA_WEIGHTS:
        raise ShapeError(f"standard: expected one of {sorted(LUMA_WEIGHTS)}, got {standard!r}")
    if use_opencv(image, backend, cv_ok(image) and standard == "bt601"):
        pixels = interleaved(image)
        if pixels is None:
            return affine(image, [LUMA_WEIGHTS["bt601"]])
        cv2 = cv2_module()
        out = np.empty((image.shape[0], 1, *image.shape[2:]), np.float32)
        for one, dst in zip(pixels, out):
            cv2.cvtColor(one, cv2.COLOR_RGB2GRAY, dst=dst[0])
        return torch.from_numpy(out).to(image.dtype)
    return _mix(image, LUMA_WEIGHTS[standard])


# Channel copies run PyTorch under "auto": on (B, C, H, W) planes a copy is one pass, and the
# OpenCV call would add the interleaving passes around it ("opencv" still runs it).


@batched
def grayscale_to_rgb(image: Tensor, backend: str = "auto") -> Tensor:
    """Tensor[B, 1, H, W] in [0, 1] -> Tensor[B, 3, H, W] by repeating the channel (COLOR_GRAY2RGB)."""
    check_image(image, channels=1, unit_range=True)
    if backend != "auto" and use_opencv(image, backend, cv_ok(image)):
        cv2 = cv2_module()
        return opencv_pixels(image, lambda block, dst: cv2.cvtColor(block, cv2.COLOR_GRAY2RGB, dst=dst))
    return image.expand(-1, 3, -1, -1).contiguous()


@batched
def rgb_to_bgr(image: Tensor, backend: str = "auto") -> Tensor:
    """Tensor[B, 3, H, W] in [0, 1] with the channel order reversed (OpenCV's native order, COLOR_RGB2BGR)."""
    _check_rgb(image)
    if backend != "auto" and use_opencv(image, backend, cv_ok(image)):
        cv2 = cv2_module()
        return opencv_pixels(image, lambda block, dst: cv2.cvtColor(block, cv2.COLOR_RGB2BGR, dst=dst))
    return image.flip(-3)


bgr_to_rgb = rgb_to_bgr


def _hue_max_min(image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue in [0, 1) (0 where the pixel is gray), max and min over channels of Tensor[B, 3, H, W]."""
    r, g, b = image.unbind(-3)
    maxc = torch.maximum(torch.maximum(r, g), b)  # elementwise: ~2x faster than a max over dim 1
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    inverse = 1 / torch.where(delta > 0, delta, 1.0)
    # Piecewise hue as in Smith (1978) and OpenCV: the sector follows the largest channel, with
    # ties going to r, then g. A gray pixel has r = g = b, so its hue comes out as (g - b) = 0.
    h = torch.where(maxc == r, (g - b) * inverse, torch.where(maxc == g, (b - r) * inverse + 2, (r - g) * inverse + 4))
    return _wrap_turns(torch.remainder(h / 6, 1.0)), maxc, minc


def _wrap_turns(h: Tensor) -> Tensor:
    """`h` in [0, 1): remainder(-1e-9, 1) rounds to exactly 1.0 in float32, which is hue 0."""
    return torch.where(h >= 1, h - 1, h)


# The smallest normal float32: as a floor of a divisor it turns 0 / 0 into 0, as the torch.where does.
_TINY = float(np.finfo(np.float32).tiny)
_BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))


# OpenCV's float RGB2HSV computes S = delta / (V + eps) and H = 60 (g - b) / (delta + eps) with
# eps = FLT_EPSILON (off by up to 2e-3 on dark pixels), and RGB2HLS counts a pixel whose channels
# differ by at most FLT_EPSILON as gray (hue 0). Both are exact on the image times 2^126: H and S
# do not change with the scale, and next to delta * 2^126 the epsilon vanishes for every pixel whose
# largest channel is above ~1e-36 (where float32 turns denormal). A power of two scales exactly, and
# [0, 1 + 1e-5] * 2^126 (and the sum of two such values, in HLS) stays below float32's maximum.
_GAIN = 2.0**126


def _cv_gained(code: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """cv2.cvtColor(block * 2^126, code), scaling the merge buffer in place."""

    def convert(block: np.ndarray, dst: np.ndarray) -> np.ndarray:
        cv2 = cv2_module()
        scale_add(flat(block), _GAIN, 0, dst=flat(block))
        return cv2.cvtColor(block, code, dst=dst)

    return convert


def _cv_hue(hue: np.ndarray) -> None:
    """OpenCV's hue in degrees -> turns in [0, 1), in place (OpenCV's h + 360 can round to 360)."""
    scale_add(hue, 1 / 360, 0, dst=hue)
    cv2_module().threshold(hue, _BELOW_ONE, 0, cv2_module().THRESH_TOZERO_INV, dst=hue)


def _cv_hsv_finish(out: np.ndarray, _: Callable[[], list[np.ndarray]]) -> None:
    """RGB2HSV of the image times 2^126 -> the PyTorch path's HSV, in place: H in turns, V unscaled."""
    _cv_hue(out[0])
    scale_add(out[2], 1 / _GAIN, 0, dst=out[2])


def _cv_hls_finish(out: np.ndarray, planes: Callable[[], list[np.ndarray]]) -> None:
    """RGB2HLS of the image times 2^126 -> the PyTorch path's HLS, in place: S recomputed as `_rgb_to_hls`.

    OpenCV's S of the scaled image is meaningless (it takes L > 0.5); unscaled, it computes 2 - max - min,
    which loses 5 digits near white (S up to 3e-5 off).
    """
    cv2 = cv2_module()
    _cv_hue(out[0])
    scale_add(out[1], 1 / _GAIN, 0, dst=out[1])
    rgb = planes()
    high = cv2.max(cv2.max(rgb[0], rgb[1]), rgb[2])
    low = cv2.min(cv2.min(rgb[0], rgb[1]), rgb[2])
    # The sum for L <= 0.5, (1 - max) + (1 - min) above: 2 - sum would lose the digits again.
    denominator = cv2.min(cv2.add(high, low), cv2.add(scale_add(high, -1, 1), scale_add(low, -1, 1)))
    cv2.divide(cv2.subtract(high, low), cv2.max(denominator, _TINY, dst=denominator), dst=out[2])


def _rgb_to_hsv(image: Tensor) -> Tensor:
    h, v, minc = _hue_max_min(image)
    s = (v - minc) / torch.where(v > 0, v, 1.0)  # v = 0 means black: v - minc = 0 too
    return torch.stack((h, s, v), -3)


def _hsv_to_rgb(image: Tensor) -> Tensor:
    h, s, v = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    # Branch-free form f(n) = V - V S max(0, min(k, 4 - k, 1)), k = (n + 6H) mod 6, n = 5, 3, 1
    # (Wikipedia, "HSV to RGB alternative"): no sector gather, so one set of ops covers all pixels.
    n = torch.tensor([5.0, 3.0, 1.0], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    k = torch.remainder(n + h * 6, 6)
    return v - v * s * torch.minimum(k, 4 - k).clamp(0, 1)


def _rgb_to_hls(image: Tensor) -> Tensor:
    h, maxc, minc = _hue_max_min(image)
    total, delta = maxc + minc, maxc - minc
    lightness = total / 2
    # (1 - max) + (1 - min), not 2 - total: near white that loses 5 digits and S came out 1 + 2e-5.
    denom = torch.where(lightness <= 0.5, total, (1 - maxc) + (1 - minc))
    s = delta / torch.where(delta > 0, denom, 1.0)
    return torch.stack((h, lightness, s), -3)


def _hls_to_rgb(image: Tensor) -> Tensor:
    h, lightness, s = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    # Branch-free form f(n) = L - a max(-1, min(k - 3, 9 - k, 1)), a = S min(L, 1 - L),
    # k = (n + 12H) mod 12, n = 0, 8, 4 (Wikipedia, "HSL to RGB alternative").
    n = torch.tensor([0.0, 8.0, 4.0], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    k = torch.remainder(n + h * 12, 12)
    a = s * torch.minimum(lightness, 1 - lightness)
    return lightness - a * torch.minimum(k - 3, 9 - k).clamp(-1, 1)


_HSV = (("H", 0, 1), ("S", 0, 1), ("V", 0, 1))
_HLS = (("H", 0, 1), ("L", 0, 1), ("S", 0, 1))


@batched
def rgb_to_hsv(image: Tensor, backend: str = "auto") -> Tensor:
    """RGB -> HSV with every channel in [0, 1]: hue as a fraction of a turn, as scikit-image.

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        backend: "auto", "torch" or "opencv" (COLOR_RGB2HSV of the image times 2^126, see `_GAIN`).

    Returns:
        Tensor[B, 3, H, W] (H, S, V), H < 1; multiply H by 360 to get OpenCV's float convention.
    """
    _check_rgb(image)
    if use_opencv(image, backend, cv_ok(image)):
        return opencv_pixels(image, _cv_gained(cv2_module().COLOR_RGB2HSV), finish=_cv_hsv_finish)
    return pointwise_in_blocks(_rgb_to_hsv, image)


@batched
def hsv_to_rgb(image: Tensor, backend: str = "auto") -> Tensor:
    """HSV (all channels in [0, 1]; H = 1 is H = 0) -> RGB.

    Args:
        image: Tensor[B, 3, H, W] (H, S, V).
        backend: "auto", "torch" or "opencv" (COLOR_HSV2RGB).

    Returns:
        Tensor[B, 3, H, W] in [0, 1].
    """
    _check_ranges(image, _HSV)
    if use_opencv(image, backend, cv_ok(image)):
        cv2 = cv2_module()
        return opencv_pixels(image, lambda block, dst: cv2.cvtColor(block, cv2.COLOR_HSV2RGB, dst=dst),
                             scale=(360, 1, 1))
    return pointwise_in_blocks(_hsv_to_rgb, image)


@batched
def rgb_to_hls(image: Tensor, backend: str = "auto") -> Tensor:
    """RGB -> HLS, channels ordered (H, L, S) as in OpenCV and colorsys, all in [0, 1].

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        backend: "auto", "torch" or "opencv" (COLOR_RGB2HLS of the image times 2^126, S recomputed, see
            `_GAIN` and `_cv_hls_finish`).

    Returns:
        Tensor[B, 3, H, W] (H, L, S), H < 1; multiply H by 360 to get OpenCV's float convention.
    """
    _check_rgb(image)
    if use_opencv(image, backend, cv_ok(image)):
        return opencv_pixels(image, _cv_gained(cv2_module().COLOR_RGB2HLS), finish=_cv_hls_finish)
    return pointwise_in_blocks(_rgb_to_hls, image)


@batched
def hls_to_rgb(image: Tensor, backend: str = "auto") -> Tensor:
    """HLS (H, L, S, all in [0, 1]; H = 1 is H = 0) -> RGB.

    Args:
        image: Tensor[B, 3, H, W] (H, L, S).
        backend: "auto", "torch" or "opencv" (COLOR_HLS2RGB).

    Returns:
        Tensor[B, 3, H, W] in [0, 1].
    """
    _check_ranges(image, _HLS)
    if use_opencv(image, backend, cv_ok(image)):
        cv2 = cv2_module()
        return opencv_pixels(image, lambda block, dst: cv2.cvtColor(block, cv2.COLOR_HLS2RGB, dst=dst),
                             scale=(360, 1, 1))
    return pointwise_in_blocks(_hls_to_rgb, image)


@batched
def rgb_to_linear_rgb(image: Tensor) -> Tensor:
    """Decodes the sRGB transfer curve (IEC 61966-2-1): Tensor[B, C, H, W] in [0, 1] -> linear light."""
    check_image(image, unit_range=True)
    return pointwise_in_blocks(_decode_srgb, image)


@batched
def linear_rgb_to_rgb(image: Tensor) -> Tensor:
    """Encodes linear light with the sRGB transfer curve: Tensor[B, C, H, W] in [0, 1] -> sRGB."""
    check_image(image, unit_range=True)
    return pointwise_in_blocks(_encode_srgb, image)


_XYZ = (("X", 0, float("inf")), ("Y", 0, float("inf")), ("Z", 0, float("inf")))


@batched
def rgb_to_xyz(image: Tensor, backend: str = "auto") -> Tensor:
    """sRGB -> CIE XYZ (D65), Y of white = 1.

    OpenCV's `COLOR_RGB2XYZ` applies the matrix to the sRGB values as they are; scikit-image's
    rgb2xyz first decodes the sRGB curve. zrenie follows scikit-image, because XYZ is defined on
    linear light (CIE 15), and it keeps `rgb_to_lab == xyz_to_lab(rgb_to_xyz)` true, which
    OpenCV's own Lab (that does decode the curve) is not with its XYZ.

    Args:
        image: Tensor[B, 3, H, W] sRGB in [0, 1].
        backend: "auto", "torch" or "opencv" (the curve with cv2.log and cv2.exp, then cv2.transform).

    Returns:
        Tensor[B, 3, H, W] (X, Y, Z).
    """
    _check_rgb(image)
    if use_opencv(image, backend, cv_ok(image)):
        matrix = np.array(_RGB_TO_XYZ)
        return opencv_pixels(image, lambda block, dst: cv2_module().transform(decode_srgb(block), matrix, dst=dst))
    return pointwise_in_blocks(_rgb_to_xyz, image)


@batched
def xyz_to_rgb(image: Tensor, clip: bool = True, backend: str = "auto") -> Tensor:
    """CIE XYZ (D65) -> sRGB; the inverse of `rgb_to_xyz`.

    Args:
        image: Tensor[B, 3, H, W] (X, Y, Z), each >= 0.
        clip: clamp out-of-gamut colours to [0, 1], as scikit-image's xyz2rgb does.
        backend: "auto", "torch" or "opencv" (cv2.transform by the exact inverse matrix, where
            COLOR_XYZ2RGB rounds it to 6 decimals, then the curve with cv2.log and cv2.exp).

    Returns:
        Tensor[B, 3, H, W] sRGB.
    """
    _check_ranges(image, _XYZ)
    if use_opencv(image, backend, cv_ok(image)):
        def convert(block: np.ndarray, dst: np.ndarray) -> np.ndarray:
            rgb = encode_srgb(cv2_module().transform(block, _XYZ_TO_RGB, dst=dst))
            return np.clip(rgb, 0, 1, out=rgb) if clip else rgb

        return opencv_pixels(image, convert)
    return pointwise_in_blocks(_xyz_to_rgb, image, clip)


def _rgb_to_xyz(image: Tensor) -> Tensor:
    return _mix(_decode_srgb(image), _RGB_TO_XYZ)


def _xyz_to_rgb(image: Tensor, clip: bool) -> Tensor:
    rgb = _encode_srgb(_mix(image, torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=torch.float64))))
    return rgb.clamp(0, 1) if clip else rgb


def _rgb_to_lab(image: Tensor) -> Tensor:
    # Dividing by the white point folds into the matrix: one pass less.
    white = torch.tensor(D65_WHITE, dtype=torch.float64).view(3, 1)
    f = _lab_f(_mix(_decode_srgb(image), torch.tensor(_RGB_TO_XYZ, dtype=torch.float64) / white))
    fx, fy, fz = f.unbind(-3)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), -3)


def _lab_to_rgb(image: Tensor, clip: bool) -> Tensor:
    lightness, a, b = image.unbind(-3)
    fy = (lightness + 16) / 116
    # f(z) below 0 (b > 200 (L + 16) / 116) has no colour: 0, as scikit-image's lab2xyz and kornia
    f = torch.stack((fy + a / 500, fy, (fy - b / 200).clamp_min(0)), -3)
    white = torch.tensor(D65_WHITE, dtype=torch.float64).view(1, 3)
    return _xyz_to_rgb_scaled(_lab_f_inv(f), white, clip)


def _xyz_to_rgb_scaled(image: Tensor, white: Tensor, clip: bool) -> Tensor:
    """`_xyz_to_rgb(image * white)` with the white point folded into the matrix."""
    matrix = torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=torch.float64)) * white
    rgb = _encode_srgb(_mix(image, matrix))
    return rgb.clamp(0, 1) if clip else rgb


_LAB = (("L", 0, 100), ("a", -float("inf"), float("inf")), ("b", -float("inf"), float("inf")))
# The OpenCV path of Lab: f = (fx, fy, fz) -> (L, a, b) and back, as 3x4 cv2.transform matrices.
_F_TO_LAB = np.array([[0, 116, 0, -16], [500, -500, 0, 0], [0, 200, -200, 0]], dtype=np.float64)
_LAB_TO_F = np.array([[1 / 116, 1 / 500, 0, 16 / 116], [1 / 116, 0, 0, 16 / 116], [1 / 116, 0, -1 / 200, 16 / 116]])


_XYZ_TO_WHITE = np.array(_RGB_TO_XYZ) / np.array(D65_WHITE)[:, None]


def _cv_rgb_to_lab(block: np.ndarray, dst: np.ndarray) -> np.ndarray:
    cv2 = cv2_module()
    xyz = flat(cv2.transform(decode_srgb(block), _XYZ_TO_WHITE, dst=dst))
    f = where_above(xyz, _LAB_EPS, np.cbrt(xyz), scale_add(xyz, 1 / (3 * (6 / 29) ** 2), 4 / 29))
    return cv2.transform(f.reshape(block.shape), _F_TO_LAB, dst=dst)


def _cv_lab_to_rgb(block: np.ndarray, dst: np.ndarray, clip: bool) -> np.ndarray:
    cv2 = cv2_module()
    f3 = cv2.transform(block, _LAB_TO_F, dst=dst)
    np.maximum(f3[..., 2], 0, out=f3[..., 2])  # f(z) below 0 is out of gamut: 0, as scikit-image's lab2xyz
    f = flat(f3)
    linear = scale_add(f, 3 * (6 / 29) ** 2, -4 / 29 * 3 * (6 / 29) ** 2)
    xyz = where_above(f, 6 / 29, cv2.pow(f, 3), linear).reshape(block.shape)
    rgb = encode_srgb(cv2.transform(xyz, _XYZ_TO_RGB * np.array(D65_WHITE), dst=dst))
    return np.clip(rgb, 0, 1, out=rgb) if clip else rgb


@batched
def rgb_to_lab(image: Tensor, backend: str = "auto") -> Tensor:
    """sRGB -> CIE L*a*b* (D65 white, sRGB curve decoded), as scikit-image's rgb2lab.

    The white point is CIE's published D65 (0.95047, 1, 1.08883), as in scikit-image; OpenCV's
    float path uses (0.950456, 1, 1.088754) and a spline for the sRGB curve, which moves L*a*b* by
    < 0.5 units on real photos. So the OpenCV path does not call COLOR_RGB2Lab: it applies zrenie's
    constants with cv2.log/cv2.exp, cv2.transform and np.cbrt, agreeing with the PyTorch path to 1e-4.

    Args:
        image: Tensor[B, 3, H, W] sRGB in [0, 1].
        backend: "auto", "torch" or "opencv".

    Returns:
        Tensor[B, 3, H, W]: L in [0, 100], a and b roughly in [-128, 127] (OpenCV's float path).
    """
    _check_rgb(image)
    if use_opencv(image, backend, cv_ok(image)):
        return opencv_pixels(image, _cv_rgb_to_lab)
    return pointwise_in_blocks(_rgb_to_lab, image)


@batched
def lab_to_rgb(image: Tensor, clip: bool = True, backend: str = "auto") -> Tensor:
    """CIE L*a*b* (D65) -> sRGB; the inverse of `rgb_to_lab`.

    Args:
        image: Tensor[B, 3, H, W] (L, a, b), L in [0, 100].
        clip: clamp out-of-gamut colours to [0, 1], as scikit-image's lab2rgb does.
        backend: "auto", "torch" or "opencv" (zrenie's constants with OpenCV's primitives, as `rgb_to_lab`).

    Returns:
        Tensor[B, 3, H, W] sRGB.
    """
    _check_ranges(image, _LAB)
    if use_opencv(image, backend, cv_ok(image)):
        return opencv_pixels(image, lambda block, dst: _cv_lab_to_rgb(block, dst, clip))
    return pointwise_in_blocks(_lab_to_rgb, image, clip)


@batched
def rgb_to_ycbcr(image: Tensor, color_range: str = "full", backend: str = "auto") -> Tensor:
    """RGB -> YCbCr with BT.601 weights.

    "full" is the JPEG convention, OpenCV's `COLOR_RGB2YCrCb` (with Cb and Cr swapped back);
    "studio" is the broadcast convention, scikit-image's rgb2ycbcr divided by 255.

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        color_range: "full" or "studio".
        backend: "auto", "torch" or "opencv": cv2.transform by the exact BT.601 matrix (COLOR_RGB2YCrCb
            rounds the chroma scales to 0.713 and 0.564, 2e-4 off).

    Returns:
        Tensor[B, 3, H, W] (Y, Cb, Cr).
    """
    _check_rgb(image)
    matrix, offset = _ycbcr_matrix(color_range)
    if use_opencv(image, backend, cv_ok(image)):
        return affine(image, matrix, offset)
    # Blocks: a batched 3x3 matmul over 64 images of 256x256 is ~4x slower than over one image.
    return pointwise_in_blocks(_mix, image, matrix, offset)


_YCBCR = (("Y", 0, 1), ("Cb", 0, 1), ("Cr", 0, 1))


@batched
def ycbcr_to_rgb(image: Tensor, color_range: str = "full", backend: str = "auto") -> Tensor:
    """YCbCr (BT.601, "full" or "studio" range) -> RGB; the inverse of `rgb_to_ycbcr`.

    Args:
        image: Tensor[B, 3, H, W] (Y, Cb, Cr), each in [0, 1].
        color_range: "full" or "studio".
        backend: "auto", "torch" or "opencv" (cv2.transform by the exact inverse, as `rgb_to_ycbcr`).

    Returns:
        Tensor[B, 3, H, W], not clipped.
    """
    _check_ranges(image, _YCBCR)
    matrix, offset = _ycbcr_matrix(color_range)
    inverse = torch.linalg.inv(matrix)
    if use_opencv(image, backend, cv_ok(image)):
        return affine(image, inverse, -(inverse @ offset))
    return pointwise_in_blocks(_mix, image, inverse, -(inverse @ offset))


# Module forms: each holds the op's non-image arguments, e.g. RgbToYcbcr("studio")(image).


class RgbToGrayscale(OpModule):
    op = staticmethod(rgb_to_grayscale)


class RgbToHsv(OpModule):
    op = staticmethod(rgb_to_hsv)


class HsvToRgb(OpModule):
    op = staticmethod(hsv_to_rgb)


class RgbToHls(OpModule):
    op = staticmethod(rgb_to_hls)


class HlsToRgb(OpModule):
    op = staticmethod(hls_to_rgb)


class RgbToLab(OpModule):
    op = staticmethod(rgb_to_lab)


class LabToRgb(OpModule):
    op = staticmethod(lab_to_rgb)


class RgbToXyz(OpModule):
    op = staticmethod(rgb_to_xyz)


class XyzToRgb(OpModule):
    op = staticmethod(xyz_to_rgb)


class RgbToYcbcr(OpModule):
    op = staticmethod(rgb_to_ycbcr)


class YcbcrToRgb(OpModule):
    op = staticmethod(ycbcr_to_rgb)


class RgbToBgr(OpModule):
    op = staticmethod(rgb_to_bgr)


BgrToRgb = RgbToBgr


class GrayscaleToRgb(OpModule):
    op = staticmethod(grayscale_to_rgb)


class RgbToLinearRgb(OpModule):
    op = staticmethod(rgb_to_linear_rgb)


class LinearRgbToRgb(OpModule):
    op = staticmethod(linear_rgb_to_rgb)
