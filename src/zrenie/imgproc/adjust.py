"""Colour processing: brightness, contrast, saturation, hue, gamma, sepia, invert, white balance.

Adjustments follow PIL's ImageEnhance and torchvision's conventions (a factor of 1 is the
original image); the colour-space conversions they build on are in `color.py`. Every op takes
values in [0, 1] and refuses others in one line. `backend=` ("auto", "torch", "opencv", see
`_backend.py`) is offered where OpenCV computes the same formula: adjust_gamma (cv2.pow), sepia
(cv2.transform) and adjust_hue (through its HSV conversions); the others are one or two passes of
PyTorch, which an OpenCV call on (B, C, H, W) planes would not beat.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc._backend import cv2_module, use_opencv
from zrenie.imgproc._blocks import pointwise_in_blocks
from zrenie.imgproc._checks import batched, check_image
from zrenie.imgproc._module import OpModule
from zrenie.imgproc.color import _wrap_turns, hsv_to_rgb, rgb_to_grayscale, rgb_to_hsv
from zrenie.imgproc.color_extra import _check_rgb, _cv_ok, _mix, _opencv_pixels

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
        backend: "auto", "torch" or "opencv" (cv2.pow, chunk by chunk; it agrees to 2e-7).
    """
    check_image(image, unit_range=True)
    if gamma < 0:
        raise ShapeError(f"gamma: expected a non-negative exponent, got {gamma}")
    if use_opencv(image, backend, _cv_ok(image)):
        return _opencv_gamma(image, gamma, gain)
    return (gain * image.clamp_min(0) ** gamma).clamp(0, 1)


def _opencv_gamma(image: Tensor, gamma: float, gain: float) -> Tensor:
    """adjust_gamma with cv2.pow on chunks of the flattened float32 image, each finished while in cache."""
    cv2 = cv2_module()
    source = image.detach().float().contiguous()
    flat_in, flat_out = source.view(-1).numpy(), np.empty(source.numel(), np.float32)  # numpy: huge pages
    for start in range(0, flat_in.size, _CHUNK):
        chunk = flat_out[start:start + _CHUNK]
        np.maximum(flat_in[start:start + _CHUNK], 0, out=chunk)  # cv2.pow takes |x|; -1e-6 must give 0
        cv2.pow(chunk, gamma, dst=chunk)
        if gain != 1:
            np.multiply(chunk, gain, out=chunk)
        np.clip(chunk, 0, 1, out=chunk)
    out = torch.from_numpy(flat_out).view(source.shape)
    return out if image.dtype == torch.float32 else out.to(image.dtype)


# The sepia matrix Microsoft published for its photo filters, used by most image editors.
_SEPIA = ((0.393, 0.769, 0.189), (0.349, 0.686, 0.168), (0.272, 0.534, 0.131))


@batched
def sepia(image: Tensor, backend: str = "auto") -> Tensor:
    """The classic sepia tone: a fixed channel mix, clamped to [0, 1].

    Args:
        image: Tensor[B, 3, H, W] in [0, 1].
        backend: "auto", "torch" or "opencv" (cv2.transform by the same matrix, then a clip).
    """
    _check_rgb(image)
    if use_opencv(image, backend, _cv_ok(image)):
        matrix = np.array(_SEPIA)
        return _opencv_pixels(image, lambda block: np.clip(cv2_module().transform(block, matrix), 0, 1))
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
