"""Colour processing: brightness, contrast, saturation, hue, gamma, sepia, invert, white balance.

Adjustments follow PIL's ImageEnhance and torchvision's conventions (a factor of 1 is the
original image); the colour-space conversions they build on are in `color.py`. Every op takes
values in [0, 1] and refuses others in one line. `backend=` ("auto", "torch", "opencv", see
`_backend.py`) is offered where OpenCV computes the same formula: adjust_gamma (cv2.log and
cv2.exp), sepia (cv2.addWeighted on the planes) and adjust_hue (through its HSV conversions); the
others are one or two passes of PyTorch, which an OpenCV call on (B, C, H, W) planes would not beat.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc._backend import use_opencv
from zrenie.imgproc._blocks import pointwise_in_blocks
from zrenie.imgproc._checks import batched, check_image
from zrenie.imgproc._module import OpModule
from zrenie.imgproc.color import _wrap_turns, hsv_to_rgb, rgb_to_grayscale, rgb_to_hsv
from zrenie.imgproc._cvpixels import affine, cv_ok, dense_flat, power
from zrenie.imgproc.color_extra import _check_rgb, _mix

_CHUNK = 1 << 16  # elements per cv2 call of an elementwise op: the chunk stays in L2 cache


def _blend(image: Tensor, other: Tensor, factor: float) -> Tensor:
    """`factor * image + (1 - factor) * other`, clamped to [0, 1] (PIL's ImageEnhance, torchvision)."""
    return (other + factor * (image - other)).clamp(0, 1)


def _gray_like(image: Tensor) -> Tensor:
    """BT.601 luma of Tensor[B, 3, H, W], or the image itself when it has one channel."""
    return image if image.shape[1] == 1 else rgb_to_grayscale(image)


@batched
def adjust_brightness(image: Tensor, factor: float) -> Tensor:
    """Scales intensities by `factor` and clamps: 0 gives black, 1 the original (PIL, torchvision).

    Args:
        image: Tensor[B, C, H, W] in [0, 1].
        factor: a non-negative multiplier.
    """
    check_image(image, unit_range=True)
    return (image * factor).clamp(0, 1)


@batched
def adjust_contrast(image: Tensor, factor: float) -> Tensor:
    """Blends with the image's mean gray level: 0 gives flat gray, 1 the original (PIL, torchvision).

    Args:
        image: Tensor[B, 1 or 3, H, W] in [0, 1].
        factor: a non-negative blend factor.
    """
    check_image(image, channels=(1, 3), unit_range=True)
    mean = _gray_like(image).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(image, mean, factor)


@batched
def adjust_saturation(image: Tensor, factor: float) -> Tensor:
    """Blends with the BT.601 grayscale: 0 gives gray, 1 the original (PIL, torchvision).

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        factor: a non-negative blend factor.
    """
    _check_rgb(image)
    return _blend(image, rgb_to_grayscale(image), factor)


@batched
def hue_shift(image: Tensor, shift: float) -> Tensor:
    """Rotates the hue channel of an HSV or HLS image by `shift` turns (wrapping around).

    Args:
        image: Tensor[B, 3, H, W] in [0, 1] whose first channel is hue, e.g. from `rgb_to_hsv`.
        shift: a fraction of a turn; 0.5 maps every hue to its complement.

    Returns:
        Tensor[B, 3, H, W] with hue in [0, 1).
    """
    check_image(image, channels=3, unit_range=True)
    return torch.cat((_wrap_turns(torch.remainder(image[:, :1] + shift, 1.0)), image[:, 1:]), 1)


@batched
def adjust_hue(image: Tensor, shift: float, backend: str = "auto") -> Tensor:
    """Rotates the hue of an RGB image by `shift` turns in [-0.5, 0.5] (torchvision's adjust_hue).

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        shift: a fraction of a turn.
        backend: "auto", "torch" or "opencv", for the conversions to HSV and back.
    """
    _check_rgb(image)
    return hsv_to_rgb(hue_shift(rgb_to_hsv(image, backend=backend), shift), backend=backend)


@batched
def adjust_gamma(image: Tensor, gamma: float, gain: float = 1.0, backend: str = "auto") -> Tensor:
    """`gain * image ** gamma`, clamped to [0, 1] (scikit-image's adjust_gamma, torchvision).

    Args:
        image: Tensor[B, C, H, W] in [0, 1].
        gamma: the exponent; below 1 brightens the shadows.
        gain: a multiplier applied after the power.
        backend: "auto", "torch" or "opencv" (cv2.log and cv2.exp, chunk by chunk; it agrees to 2e-7).
    """
    low, high = check_image(image, unit_range=True)
    if gamma < 0:
        raise ShapeError(f"gamma: expected a non-negative exponent, got {gamma}")
    if use_opencv(image, backend, cv_ok(image)):
        return _opencv_gamma(image, gamma, gain, low < 0 or high > 1 or not 0 <= gain <= 1)
    return (gain * image.clamp_min(0) ** gamma).clamp(0, 1)


def _opencv_gamma(image: Tensor, gamma: float, gain: float, clamp: bool) -> Tensor:
    """adjust_gamma on the image's memory in any dense layout, chunk by chunk in cache; keeps the layout.

    The power is exp(gamma * log(x)) by cv2.log and cv2.exp (`_cvpixels.power`: 0.4x cv2.pow's time,
    as exact). The clamps run only where needed: not when the range check found values in [0, 1]
    and 0 <= gain <= 1, the usual case.
    """
    flat_in, flat_out, out = dense_flat(image)
    if gamma == 0:  # x ** 0 = 1, 0 ** 0 included, as torch
        flat_out.fill(min(max(gain, 0.0), 1.0))
    for start in range(0, flat_in.size if gamma else 0, _CHUNK):
        chunk, source = flat_out[start:start + _CHUNK], flat_in[start:start + _CHUNK]
        if clamp:
            source = np.maximum(source, 0, out=chunk)  # the power of -1e-6 must be 0
        power(source, gamma, dst=chunk)
        if gain != 1:
            np.multiply(chunk, np.float32(gain), out=chunk)
        if clamp:
            np.clip(chunk, 0, 1, out=chunk)
    return out if image.dtype == torch.float32 else out.to(image.dtype)


# The sepia matrix Microsoft published for its photo filters, used by most image editors.
_SEPIA = ((0.393, 0.769, 0.189), (0.349, 0.686, 0.168), (0.272, 0.534, 0.131))


@batched
def sepia(image: Tensor, backend: str = "auto") -> Tensor:
    """The classic sepia tone: a fixed channel mix, clamped to [0, 1].

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        backend: "auto", "torch" or "opencv" (the same matrix and clip on the planes, see `_cvpixels.affine`).
    """
    low, _ = _check_rgb(image)
    if use_opencv(image, backend, cv_ok(image)):
        return affine(image, _SEPIA, clip=(low < 0, True))  # the weights are positive: >= 0 from >= 0
    return pointwise_in_blocks(_mix, image, _SEPIA).clamp(0, 1)


@batched
def invert(image: Tensor) -> Tensor:
    """`1 - image`: the photographic negative of Tensor[B, C, H, W] in [0, 1]."""
    check_image(image, unit_range=True)
    return 1 - image


@batched
def white_balance_gray_world(image: Tensor) -> Tensor:
    """Gray-world white balance (Buchsbaum 1980): scales each channel so its mean equals the gray mean.

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].

    Returns:
        Tensor[B, 3, H, W], clamped to [0, 1].
    """
    _check_rgb(image)
    means = image.mean(dim=(-2, -1), keepdim=True)  # (B, 3, 1, 1)
    gain = means.mean(dim=1, keepdim=True) / means.clamp_min(1e-6)
    return (image * gain).clamp(0, 1)


# Module forms, e.g. AdjustHue(0.2)(image).


class AdjustBrightness(OpModule):
    op = staticmethod(adjust_brightness)


class AdjustContrast(OpModule):
    op = staticmethod(adjust_contrast)


class AdjustSaturation(OpModule):
    op = staticmethod(adjust_saturation)


class AdjustHue(OpModule):
    op = staticmethod(adjust_hue)


class HueShift(OpModule):
    op = staticmethod(hue_shift)


class AdjustGamma(OpModule):
    op = staticmethod(adjust_gamma)


class Sepia(OpModule):
    op = staticmethod(sepia)


class Invert(OpModule):
    op = staticmethod(invert)


class WhiteBalanceGrayWorld(OpModule):
    op = staticmethod(white_balance_gray_world)
