"""Grayscale morphology with flat structuring elements: erode, dilate, opening, closing, gradient, hats.

As OpenCV: the structuring element (SE) is anchored at (kh // 2, kw // 2), erosion takes the
minimum of `image[y + i - ay, x + j - ax]` over the SE's nonzero (i, j) and dilation the maximum
over the same offsets (no reflection of the SE). By default (border "ignore") pixels outside the
image never win (OpenCV's BORDER_CONSTANT with morphologyDefaultBorderValue), so no padding is
needed and any image size works, 1x1 included; the other borders follow OpenCV's rules too.
Morphology is an order statistic: it accepts any finite value, not only [0, 1].

`iterations=n` applies erosion and dilation n times each, as OpenCV's `iterations` (opening is
n erosions then n dilations, and so on); a full rectangle becomes one rectangle of side
(k - 1) n + 1, as in OpenCV, which is the same thing with the default border.

Each op takes `backend=` ("auto", "torch" or "opencv", see _backend.py): "auto" runs cv2.erode,
cv2.dilate or cv2.morphologyEx on CPU images that need no gradient and the torch code otherwise.
Both give identical values (a minimum or maximum picks one of its inputs), float32 and float64.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc._backend import cv2_module, per_image, use_opencv
from zrenie.imgproc._blocks import blocks, wants_blocks
from zrenie.imgproc._checks import batched, check_image, check_kernel_size
from zrenie.imgproc._module import OpModule
from zrenie.imgproc.filters_cv import border_index, channels_last, pad  # noqa: F401  (border_index: histogram and tests read it here)

SHAPES = ("rect", "ellipse", "cross")
BORDERS = ("ignore", "reflect", "replicate", "constant")
Kernel = int | tuple[int, int] | Tensor


def structuring_element(shape: str = "rect", kernel_size: int | tuple[int, int] = 3) -> Tensor:
    """A 0/1 Tensor[kh, kw] drawn exactly as OpenCV's getStructuringElement draws it.

    Args:
        shape: "rect", "ellipse" (the ellipse inscribed in the box) or "cross".
        kernel_size: k or (kh, kw).
    """
    if shape not in SHAPES:
        raise ShapeError(f"shape: expected one of {', '.join(SHAPES)}, got {shape!r}")
    kh, kw = check_kernel_size(kernel_size, odd=False)
    element = torch.zeros(kh, kw)
    r, c = kh // 2, kw // 2
    for i in range(kh):
        if shape == "rect":
            j1, j2 = 0, kw
        elif shape == "cross":
            j1, j2 = (0, kw) if i == r else (c, c + 1)
        else:
            dy = i - r
            dx = round(c * math.sqrt((r * r - dy * dy) / (r * r))) if r else 0
            j1, j2 = max(c - dx, 0), min(c + dx + 1, kw)
        element[i, j1:j2] = 1
    return element


def _as_element(kernel: Kernel, shape: str) -> Tensor:
    if isinstance(kernel, Tensor):
        if kernel.dim() != 2 or kernel.numel() == 0:
            raise ShapeError(f"kernel: expected a 0/1 Tensor[kh, kw], got shape {tuple(kernel.shape)}")
        if not bool((kernel.detach() != 0).any()):
            raise ShapeError("kernel: the structuring element has no nonzero entry")
        return kernel
    return structuring_element(shape, kernel)


def _dilate(image: Tensor, element: Tensor, border: str, anchor: tuple[int, int] | None = None) -> Tensor:
    """Max over the SE's offsets of padded Tensor[B, C, H, W]; `border` "ignore" pads with the lowest float.

    (As OpenCV's default border value: -FLT_MAX for float32, -DBL_MAX for float64, so a window
    that holds no pixel of the image, possible with an off-centre SE, gives that value.)

    `anchor` (row, column) defaults to the centre (kh // 2, kw // 2).
    """
    kh, kw = element.shape
    ay, ax = (kh // 2, kw // 2) if anchor is None else anchor
    pads = (ax, kw - 1 - ax, ay, kh - 1 - ay)
    lowest = torch.finfo(image.dtype).min
    padded = pad(image, pads, "constant", lowest) if border == "ignore" else pad(image, pads, border)
    batch, channels, height, width = image.shape
    offsets = [tuple(ij) for ij in element.nonzero().tolist()]
    rect = len(offsets) == kh * kw
    if not wants_blocks(image):
        return _dilate_block(padded, offsets, rect, (kh, kw), height)
    out = torch.empty_like(image)
    for images, rows in blocks(batch, height, padded.shape[-1], (1 << 18) // channels):
        source = padded[images, :, rows.start:rows.stop + kh - 1]
        out[images, :, rows] = _dilate_block(source, offsets, rect, (kh, kw), rows.stop - rows.start)
    return out


def _dilate_block(padded: Tensor, offsets: list[tuple[int, int]], rect: bool, size: tuple[int, int],
                  height: int) -> Tensor:
    kh, kw = size
    width = padded.shape[-1] - kw + 1
    if rect:
        # A rectangle is separable: kw - 1 then kh - 1 elementwise maxima. (F.max_pool2d does the
        # same job ~10x slower on CPU: 60 ms for one 3x3 pass over a 1080p gray frame.)
        across = _max_of_shifts(padded, [(0, j) for j in range(kw)], padded.shape[-2], width)
        return _max_of_shifts(across, [(i, 0) for i in range(kh)], height, width)
    return _max_of_shifts(padded, offsets, height, width)


def _max_of_shifts(padded: Tensor, offsets: list[tuple[int, int]], height: int, width: int) -> Tensor:
    """The elementwise maximum of `padded[..., i:i + height, j:j + width]` over the offsets."""
    out = padded[..., offsets[0][0]:offsets[0][0] + height, offsets[0][1]:offsets[0][1] + width]
    for i, j in offsets[1:]:  # one vectorised pass per SE pixel
        out = torch.maximum(out, padded[..., i:i + height, j:j + width])
    return out.contiguous() if len(offsets) == 1 else out


def _dilate_n(image: Tensor, element: Tensor, border: str, iterations: int) -> Tensor:
    """`iterations` dilations with OpenCV's shortcuts: none for 0 or a 1x1 SE, one grown rectangle for a full one."""
    kh, kw = element.shape
    if iterations == 0 or kh * kw == 1:
        return image.clone()
    if iterations > 1 and bool((element != 0).all()):
        grown = element.new_ones((kh - 1) * iterations + 1, (kw - 1) * iterations + 1)
        return _dilate(image, grown, border, ((kh // 2) * iterations, (kw // 2) * iterations))
    for _ in range(iterations):
        image = _dilate(image, element, border)
    return image


def _erode_n(image: Tensor, element: Tensor, border: str, iterations: int) -> Tensor:
    return -_dilate_n(-image, element, border, iterations)  # min(x) = -max(-x); zero padding stays zero


# op name -> (torch code on (image, element, border, iterations), OpenCV's morphologyEx code).
_OPS: dict[str, tuple[Callable[[Tensor, Tensor, str, int], Tensor], int]] = {
    "erode": (_erode_n, 0),
    "dilate": (_dilate_n, 1),
    "opening": (lambda x, e, b, n: _dilate_n(_erode_n(x, e, b, n), e, b, n), 2),
    "closing": (lambda x, e, b, n: _erode_n(_dilate_n(x, e, b, n), e, b, n), 3),
    "gradient": (lambda x, e, b, n: _dilate_n(x, e, b, n) - _erode_n(x, e, b, n), 4),
    "top_hat": (lambda x, e, b, n: x - _dilate_n(_erode_n(x, e, b, n), e, b, n), 5),
    "black_hat": (lambda x, e, b, n: _erode_n(_dilate_n(x, e, b, n), e, b, n) - x, 6),
}
# zrenie's border names -> OpenCV's BORDER_CONSTANT (ignore: with morphologyDefaultBorderValue, i.e.
# +-FLT_MAX or +-DBL_MAX), BORDER_REFLECT_101, BORDER_REPLICATE, BORDER_CONSTANT (with 0).
_CV_BORDERS = {"ignore": 0, "reflect": 4, "replicate": 1, "constant": 0}


def _opencv(name: str, image: Tensor, element: Tensor, border: str, iterations: int) -> Tensor:
    cv2 = cv2_module()
    kernel = (element.detach().cpu() != 0).to(torch.uint8).numpy()
    extra = {} if border == "ignore" else {"borderType": _CV_BORDERS[border], "borderValue": 0}
    code = _OPS[name][1]
    if image.is_contiguous() or image.shape[1] == 1:
        # Plane by plane, reading and writing the tensors' memory: no transposing copies.
        source = image.detach() if image.dtype in (torch.float32, torch.float64) else image.detach().float()
        planes = source.contiguous().view(-1, *image.shape[-2:]).numpy()
        outs = np.empty_like(planes)  # numpy maps large arrays on huge pages: 3x faster first writes than torch.empty
        for plane, dst in zip(planes, outs):
            cv2.morphologyEx(plane, code, kernel, dst=dst, iterations=iterations, **extra)
        return torch.from_numpy(outs).view(image.shape).to(image.dtype)
    pixels = channels_last(image)
    if pixels is not None:  # (H, W, C) pixels where they lie, into a channels_last result
        outs = np.empty_like(pixels)
        for one, dst in zip(pixels, outs):
            cv2.morphologyEx(one, code, kernel, dst=dst, iterations=iterations, **extra)
        return torch.from_numpy(outs).permute(0, 3, 1, 2).to(image.dtype)
    return per_image(lambda one: cv2.morphologyEx(one, code, kernel, iterations=iterations, **extra), image)


def _morphology(name: str, image: Tensor, kernel: Kernel, border: str, shape: str, iterations: int,
                backend: str) -> Tensor:
    """Checks the arguments, then runs op `name` with OpenCV or torch."""
    check_image(image)
    element = _as_element(kernel, shape)
    if border not in BORDERS:
        raise ShapeError(f"border: expected {', '.join(BORDERS)}, got {border!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ShapeError(f"iterations: expected an integer >= 0, got {iterations!r}")
    if use_opencv(image, backend, supported=image.shape[1] <= 512):  # CV_CN_MAX channels
        return _opencv(name, image, element, border, iterations)
    return _OPS[name][0](image, element, border, iterations)


_ARGS_DOC = """

    Args:
        image: Tensor[B, C, H, W] of any finite values, any size.
        kernel: a size k or (kh, kw) of a `shape` element, or a 0/1 Tensor[kh, kw] such as
            `structuring_element("ellipse", 5)`.
        border: "ignore" (OpenCV's default), or "reflect", "replicate", "constant" (zeros).
        shape: the element drawn for a size `kernel`: "rect", "ellipse" or "cross".
        iterations: {iterations}
        backend: "auto", "torch" or "opencv" ({opencv}).

    Returns:
        Tensor[B, C, H, W].
    """


def _documented(iterations: str, opencv: str) -> Callable[[Callable], Callable]:
    """Appends the Args the seven ops share to an op's one-line docstring (`OP --help` reads them)."""

    def decorate(fn: Callable) -> Callable:
        fn.__doc__ = (fn.__doc__ or "") + _ARGS_DOC.format(iterations=iterations, opencv=opencv)
        return fn

    return decorate


@_documented("how many dilations (OpenCV's iterations; 0 returns a copy).", "cv2.dilate")
@batched
def dilate(image: Tensor, kernel: Kernel = 3, border: str = "ignore", shape: str = "rect", iterations: int = 1,
           backend: str = "auto") -> Tensor:
    """Grayscale dilation: the maximum over the structuring element (cv2.dilate)."""
    return _morphology("dilate", image, kernel, border, shape, iterations, backend)


@_documented("how many erosions (OpenCV's iterations; 0 returns a copy).", "cv2.erode")
@batched
def erode(image: Tensor, kernel: Kernel = 3, border: str = "ignore", shape: str = "rect", iterations: int = 1,
          backend: str = "auto") -> Tensor:
    """Grayscale erosion: the minimum over the structuring element (cv2.erode)."""
    return _morphology("erode", image, kernel, border, shape, iterations, backend)


@_documented("n erosions and n dilations (OpenCV's iterations).", "cv2.morphologyEx")
@batched
def opening(image: Tensor, kernel: Kernel = 3, border: str = "ignore", shape: str = "rect", iterations: int = 1,
            backend: str = "auto") -> Tensor:
    """Erosion then dilation: removes bright details smaller than the SE (cv2.MORPH_OPEN)."""
    return _morphology("opening", image, kernel, border, shape, iterations, backend)


@_documented("n erosions and n dilations (OpenCV's iterations).", "cv2.morphologyEx")
@batched
def closing(image: Tensor, kernel: Kernel = 3, border: str = "ignore", shape: str = "rect", iterations: int = 1,
            backend: str = "auto") -> Tensor:
    """Dilation then erosion: fills dark details smaller than the SE (cv2.MORPH_CLOSE)."""
    return _morphology("closing", image, kernel, border, shape, iterations, backend)


@_documented("n erosions and n dilations (OpenCV's iterations).", "cv2.morphologyEx")
@batched
def top_hat(image: Tensor, kernel: Kernel = 3, border: str = "ignore", shape: str = "rect", iterations: int = 1,
            backend: str = "auto") -> Tensor:
    """The image minus its opening: bright details smaller than the SE (cv2.MORPH_TOPHAT)."""
    return _morphology("top_hat", image, kernel, border, shape, iterations, backend)


@_documented("n erosions and n dilations (OpenCV's iterations).", "cv2.morphologyEx")
@batched
def black_hat(image: Tensor, kernel: Kernel = 3, border: str = "ignore", shape: str = "rect", iterations: int = 1,
              backend: str = "auto") -> Tensor:
    """The closing minus the image: dark details smaller than the SE (cv2.MORPH_BLACKHAT)."""
    return _morphology("black_hat", image, kernel, border, shape, iterations, backend)










@_documented("n erosions and n dilations (OpenCV's iterations).", "cv2.morphologyEx")
@batched
def morphological_gradient(image: Tensor, kernel: Kernel = 3, border: str = "ignore", shape: str = "rect",
                           iterations: int = 1, backend: str = "auto") -> Tensor:
    """Dilation minus erosion: bright outlines of objects (cv2.MORPH_GRADIENT)."""
    return _morphology("gradient", image, kernel, border, shape, iterations, backend)






# Module forms: each holds the op's non-image arguments, e.g. Erode(structuring_element("cross", 5)).


class Erode(OpModule):
    op = staticmethod(erode)


class Dilate(OpModule):
    op = staticmethod(dilate)


class Opening(OpModule):
    op = staticmethod(opening)


class Closing(OpModule):
    op = staticmethod(closing)


class MorphologicalGradient(OpModule):
    op = staticmethod(morphological_gradient)


class TopHat(OpModule):
    op = staticmethod(top_hat)


class BlackHat(OpModule):
    op = staticmethod(black_hat)
