"""Canny edge detection (Canny 1986) with OpenCV's non-maximum suppression, batched in torch.

An image on the 8-bit grid (every value k / 255, as from `uint8 / 255`, in float32 or float64)
with no pre-blur (sigma=0) gets OpenCV's integer arithmetic: Sobel gradients of the levels k (7x7
ones divided by 16 and rounded, as OpenCV's int16 gradients), the magnitude |gx| + |gy| or
gx^2 + gy^2 compared exactly, OpenCV's fixed-point sector test and its integer thresholds, so
the edges are cv2.Canny's pixel for pixel. Other images (a pre-blur puts values off the grid)
use float gradients, where a tie that integers break one way can break the other way.

`backend=` ("auto", "torch" or "opencv", see _backend.py): "auto" runs cv2.Canny on the 8-bit
levels of a CPU image on the grid and the torch code otherwise; the two give identical edges.
Testing the grid costs two cheap passes (about 1 ms on a 1080p frame); with them "auto" takes
1.2x cv2.Canny's time on uint8 (benchmarks/imgproc.py, one thread). Thresholds read a [0, 1]
image, so values outside [0, 1] are refused.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zrenie.errors import ConfigError, ShapeError
from zrenie.imgproc._backend import cv2_module, images_hwc, use_opencv
from zrenie.imgproc._checks import batched, check_image
from zrenie.imgproc._module import OpModule
from zrenie.imgproc.color import rgb_to_grayscale
from zrenie.imgproc.filters import derivative_kernels, gaussian_kernel1d, gaussian_kernel_size
from zrenie.imgproc.morphology import _dilate

# OpenCV's sector test in 15-bit fixed point (imgproc/src/canny.cpp): TG22 = tan(22.5 deg) * 2^15.
_SHIFT = 1 << 15
_TG22 = int(0.4142135623730950488016887242097 * _SHIFT + 0.5)
# How far (in levels of 1/255) a value may lie from k / 255 and still count as on the 8-bit grid:
# float32 k / 255 computed any usual way is within 1e-4 of a level; a blurred image is not.
_GRID_TOLERANCE = 1e-3
_SIZES = (1, 3, 5, 7)
_EDGE_VALUES = (np.arange(256) == 255).astype(np.float32)  # cv2.Canny's 0 / 255 -> 0.0 / 1.0


def _non_maximum_suppression(magnitude: Tensor, gx: Tensor, gy: Tensor) -> Tensor:
    """True where Tensor[B, 1, H, W] `magnitude` is a local maximum across the gradient direction.

    The direction is binned into 4 sectors as OpenCV does, and ties are broken the same way:
    horizontal and vertical sectors need `m > previous and m >= next`, diagonals `>` on both sides.
    Outside the image the magnitude counts as 0.
    """
    height, width = magnitude.shape[-2:]
    padded = F.pad(magnitude, (1, 1, 1, 1))

    def at(dy: int, dx: int) -> Tensor:
        return padded[..., 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]

    ax, ay = gx.abs(), gy.abs()
    tg22x = ax * _TG22
    horizontal = ay * _SHIFT < tg22x
    vertical = ay * _SHIFT > tg22x + ax * (2 * _SHIFT)
    same_sign = (gx * gy) > 0  # gradient towards (+x, +y) or (-x, -y): the "\" diagonal, y down
    keep_h = (magnitude > at(0, -1)) & (magnitude >= at(0, 1))
    keep_v = (magnitude > at(-1, 0)) & (magnitude >= at(1, 0))
    keep_d = torch.where(same_sign, (magnitude > at(-1, -1)) & (magnitude > at(1, 1)),
                         (magnitude > at(-1, 1)) & (magnitude > at(1, -1)))
    return torch.where(horizontal, keep_h, torch.where(vertical, keep_v, keep_d))


def hysteresis(strong: Tensor, weak: Tensor) -> Tensor:
    """Keeps the `weak` pixels 8-connected to a `strong` one; both are bool Tensor[B, 1, H, W].

    On CPU the weak set is labelled into 8-connected components (scikit-image's label, a
    two-pass union-find) and the components that hold a strong pixel are kept: one pass, where
    growing by dilation needs one pass per pixel of the longest chain (~90% of Canny's time on a
    1080p frame). Elsewhere it grows by dilation.
    """
    if strong.device.type == "cpu":
        return _hysteresis_by_labels(strong, weak)
    return _hysteresis_by_dilation(strong, weak)


def _hysteresis_by_labels(strong: Tensor, weak: Tensor) -> Tensor:
    from skimage.measure import label

    weak_np, strong_np = weak.numpy(), strong.numpy()
    out = np.zeros_like(weak_np)
    for index in np.ndindex(*weak_np.shape[:-2]):  # every (b, c) plane
        labels = label(weak_np[index], connectivity=2)
        keep = np.zeros(labels.max() + 1, dtype=bool)
        keep[labels[strong_np[index] & weak_np[index]]] = True
        keep[0] = False  # background
        out[index] = keep[labels]
    return torch.from_numpy(out)


def _hysteresis_by_dilation(strong: Tensor, weak: Tensor) -> Tensor:
    """Grows the strong set by one pixel per step (a 3x3 dilation) inside the weak set until it stops changing."""
    edges, weak = strong.float(), weak.float()
    square = torch.ones(3, 3)
    while True:
        grown = edges
        for _ in range(4):  # a few steps between the host-side checks for convergence
            grown = torch.maximum(_dilate(grown, square, "constant") * weak, grown)
        if torch.equal(grown, edges):
            return grown.bool()
        edges = grown


def _correlate(image: Tensor, kernel_x: Tensor, kernel_y: Tensor) -> Tensor:
    """Separable correlation of Tensor[B, 1, H, W] with centred kernels, BORDER_REPLICATE, any image size."""
    wx, wy = kernel_x.tolist(), kernel_y.tolist()
    rx, ry = len(wx) // 2, len(wy) // 2
    height, width = image.shape[-2:]
    padded = F.pad(image, (rx, rx, ry, ry), mode="replicate")
    taps_x = [(j, w) for j, w in enumerate(wx) if w]
    across = padded[..., taps_x[0][0]:taps_x[0][0] + width] * taps_x[0][1]
    for j, w in taps_x[1:]:
        across = across + padded[..., j:j + width] * w
    taps_y = [(i, w) for i, w in enumerate(wy) if w]
    out = across[..., taps_y[0][0]:taps_y[0][0] + height, :] * taps_y[0][1]
    for i, w in taps_y[1:]:
        out = out + across[..., i:i + height, :] * w
    return out


def _blur(gray: Tensor, sigma: float) -> Tensor:
    """The Gaussian pre-blur: `gaussian_kernel_size(sigma)` taps, BORDER_REPLICATE (any image size)."""
    kernel = gaussian_kernel1d(sigma, gaussian_kernel_size(sigma), dtype=torch.float64)
    return _correlate(gray, kernel, kernel)


def _sobel(gray: Tensor, kernel_size: int) -> tuple[Tensor, Tensor]:
    """(gx, gy) of Tensor[B, 1, H, W]: OpenCV's Sobel kernels, BORDER_REPLICATE as cv2.Canny."""
    return (_correlate(gray, *derivative_kernels(1, 0, kernel_size)),
            _correlate(gray, *derivative_kernels(0, 1, kernel_size)))


def _grid_levels(gray: Tensor) -> Tensor | None:
    """round(255 x) as float64 when every value x of `gray` lies on the 8-bit grid, else None.

    On the grid: min(255 x, 255) lies within _GRID_TOLERANCE of an integer, the test that
    `_opencv_edges` makes with two roundings.
    """
    values = gray if gray.dtype in (torch.float32, torch.float64) else gray.float()
    scaled = (values * 255).clamp_(max=255)
    levels = scaled.round()
    if float((scaled - levels).abs_().max()) > _GRID_TOLERANCE:
        return None
    return levels.clamp_(min=0).double()


def _opencv_threshold(value: float, kernel_size: int, l2_gradient: bool) -> int:
    """cv2.Canny's integer threshold for a zrenie threshold (255 times smaller; canny.cpp's arithmetic)."""
    threshold = 255.0 * value
    if kernel_size == 7:  # OpenCV scales 7x7 gradients by 1/16 to keep them in int16
        threshold = threshold / 16.0
    if l2_gradient:  # compared with the squared magnitude
        threshold = min(32767.0, threshold)
        threshold = threshold * threshold if threshold > 0 else threshold
    return math.floor(threshold)


def _integer_edges(levels: Tensor, low: float, high: float, kernel_size: int, l2_gradient: bool) -> Tensor:
    """cv2.Canny on float64 levels 0..255 of Tensor[B, 1, H, W]: every step exact in integers."""
    gx, gy = _sobel(levels, kernel_size)
    if kernel_size == 7:  # Sobel(..., CV_16S, scale=1/16): rounded half to even
        gx, gy = (gx / 16).round(), (gy / 16).round()
    magnitude = gx * gx + gy * gy if l2_gradient else gx.abs() + gy.abs()
    candidates = _non_maximum_suppression(magnitude, gx, gy)
    candidates &= magnitude > _opencv_threshold(low, kernel_size, l2_gradient)
    return hysteresis(candidates & (magnitude > _opencv_threshold(high, kernel_size, l2_gradient)), candidates)


def _float_edges(gray: Tensor, low: float, high: float, kernel_size: int, l2_gradient: bool) -> Tensor:
    gx, gy = _sobel(gray, kernel_size)
    magnitude = torch.hypot(gx, gy) if l2_gradient else gx.abs() + gy.abs()
    candidates = _non_maximum_suppression(magnitude, gx, gy) & (magnitude > low)
    return hysteresis(candidates & (magnitude > high), candidates)


def _opencv_edges(gray: Tensor, low: float, high: float, kernel_size: int, l2_gradient: bool) -> Tensor | None:
    """cv2.Canny on the 8-bit levels of CPU Tensor[B, 1, H, W], or None if a value lies off the grid."""
    cv2 = cv2_module()
    batch, _, height, width = gray.shape
    values = images_hwc(gray).reshape(-1, width)  # float32 or float64, (B H, W), no copy
    # 255 x rounded up and down by almost half a level agree only within the tolerance of an integer,
    # which is then the level (two cheap passes instead of a float comparison with k / 255).
    near = 0.5 - _GRID_TOLERANCE
    levels = cv2.convertScaleAbs(values, alpha=255, beta=near)
    if cv2.norm(levels, cv2.convertScaleAbs(values, alpha=255, beta=-near), cv2.NORM_INF) > 0:
        return None
    out = np.empty((batch, height, width), dtype=np.float32)  # huge pages: first writes 3x faster than torch's
    edges = np.empty((height, width), dtype=np.uint8)
    for plane, dst in zip(levels.reshape(batch, height, width), out):
        cv2.Canny(plane, 255.0 * low, 255.0 * high, edges=edges, apertureSize=kernel_size, L2gradient=l2_gradient)
        cv2.LUT(edges, _EDGE_VALUES, dst=dst)
    return torch.from_numpy(out).unsqueeze(1)


@batched
def canny(image: Tensor, low: float = 0.1, high: float = 0.2, sigma: float = 1.0, kernel_size: int = 3,
          l2_gradient: bool = True, backend: str = "auto") -> Tensor:
    """Canny edges: optional Gaussian smoothing, Sobel gradient, non-maximum suppression, hysteresis.

    Thresholds are in units of the unnormalised Sobel gradient of a [0, 1] image, so OpenCV's
    thresholds on 8-bit images are 255 times larger: `canny(u8 / 255, low, high, sigma=0)` equals
    `cv2.Canny(u8, 255 * low, 255 * high)` exactly. Gradients use border="replicate", as cv2.Canny
    does. Colour images are converted to BT.601 gray first (scikit-image's canny takes only gray;
    OpenCV takes, per pixel, the channel with the largest gradient). Any image size works, 1x1
    included. The edge map is a step function of the input: not differentiable.

    Args:
        image: Tensor[B, 1 or 3, H, W] in [0, 1].
        low: the hysteresis threshold that weak edges must exceed.
        high: the threshold that starts an edge.
        sigma: the Gaussian smoothing before the gradient (scikit-image's default 1; border
            "replicate"); 0 skips it, which is what cv2.Canny does.
        kernel_size: the Sobel aperture, 3, 5 or 7 (or 1: [-1, 0, 1] without smoothing, torch only).
        l2_gradient: sqrt(gx^2 + gy^2) (Canny's paper, scikit-image) if True, else |gx| + |gy|
            (OpenCV's default).
        backend: "auto", "torch" or "opencv" (cv2.Canny, for sigma=0 and an image on the 8-bit grid).

    Returns:
        Tensor[B, 1, H, W] with 1.0 on edges and 0.0 elsewhere.
    """
    check_image(image, channels=(1, 3), unit_range=True)
    if not 0 <= low <= high:
        raise ShapeError(f"low, high: expected 0 <= low <= high, got low={low}, high={high}")
    if kernel_size not in _SIZES:
        raise ShapeError(f"kernel_size: expected 1, 3, 5 or 7, got {kernel_size!r}")
    if image.shape[0] == 0:
        return image.new_zeros((0, 1, *image.shape[2:]))
    # One gray for both backends (torch's formula), so that "auto" and "torch" give the same edges.
    gray = rgb_to_grayscale(image, backend="torch") if image.shape[1] == 3 else image
    if use_opencv(gray, backend, supported=sigma == 0 and kernel_size != 1):
        edges = _opencv_edges(gray, low, high, kernel_size, l2_gradient)
        if edges is not None:
            return edges.to(image.dtype)
        if backend == "opencv":
            raise ConfigError("backend='opencv': cv2.Canny takes 8-bit images, and this one has values off the "
                              "grid k/255; use backend='torch'")
        return _float_edges(gray.detach(), low, high, kernel_size, l2_gradient).to(image.dtype)
    gray = gray.detach()
    if sigma > 0:
        return _float_edges(_blur(gray, sigma), low, high, kernel_size, l2_gradient).to(image.dtype)
    levels = _grid_levels(gray)
    if levels is None:
        return _float_edges(gray, low, high, kernel_size, l2_gradient).to(image.dtype)
    return _integer_edges(levels, low, high, kernel_size, l2_gradient).to(image.dtype)


class Canny(OpModule):
    """Module form of `canny`, e.g. Canny(low=0.1, high=0.3)(image)."""

    op = staticmethod(canny)
