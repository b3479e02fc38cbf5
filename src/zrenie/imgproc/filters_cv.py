"""Where filters.py meets OpenCV: its border rule in torch (`pad_image`), and the cv2 calls of backend "opencv".

`pad_image` pads as OpenCV's filters do (borderInterpolate), for any image size. The other
functions run cv2 on a CPU batch, one call per (H, W) plane (or per image where the channels
interact); filters.py decides when (`use_opencv`) and checks the arguments first, and here they
are mapped to OpenCV's conventions: ksize is (width, height), borders are BORDER_* constants,
kernels have the image's depth, ddepth is CV_32F or CV_64F as the image.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc._backend import cv2_module

BORDERS = ("reflect", "replicate", "constant")


def check_border(border: str) -> None:
    """Raises ShapeError unless `border` is one of BORDERS."""
    if border not in BORDERS:
        raise ShapeError(f"border: expected one of {', '.join(BORDERS)}, got {border!r}")


def border_index(size: int, before: int, after: int, border: str = "reflect") -> Tensor:
    """The source index of each padded position -before .. size + after - 1 (OpenCV's borderInterpolate).

    "reflect" (BORDER_REFLECT_101) folds positions with period 2 * (size - 1), which is reflecting
    again and again when the pad is wider than the image; a side of one pixel maps to that pixel.
    "replicate" clamps. ("constant" has no source index.)
    """
    position = torch.arange(-before, size + after)
    if border == "replicate":
        return position.clamp(0, size - 1)
    if size == 1:
        return torch.zeros_like(position)
    period = 2 * (size - 1)
    folded = position.remainder(period)
    return torch.where(folded < size, folded, period - folded)


def pad(image: Tensor, pads: tuple[int, int, int, int], border: str, value: float = 0.0) -> Tensor:
    """Pads Tensor[..., H, W] by (left, right, top, bottom) with OpenCV's border rule, for any image size.

    Where a reflection would need more pixels than the side has (torch's F.pad refuses a pad >= the
    size), the padded copy is gathered by `border_index`; "constant" fills with `value`.
    """
    left, right, top, bottom = pads
    if not any(pads):
        return image
    if border == "constant":
        return F.pad(image, pads, value=value)
    height, width = image.shape[-2:]
    if border == "replicate" or (max(left, right) < width and max(top, bottom) < height):
        return F.pad(image, pads, mode=border)
    rows = border_index(height, top, bottom, border).to(image.device)
    cols = border_index(width, left, right, border).to(image.device)
    return image.index_select(-2, rows).index_select(-1, cols)


def pad_image(image: Tensor, kernel_size: tuple[int, int], border: str = "reflect") -> Tensor:
    """Pads Tensor[B, C, H, W] for a kernel of (kh, kw) anchored at (kh // 2, kw // 2), as OpenCV anchors,
    for any image size (`pad`)."""
    check_border(border)
    kh, kw = kernel_size
    return pad(image, (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2), border)


# zrenie's border names -> OpenCV's BORDER_REFLECT_101, BORDER_REPLICATE, BORDER_CONSTANT.
_BORDER_CODES = {"reflect": 4, "replicate": 1, "constant": 0}

PlaneFn = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]


def _border(border: str) -> int:
    return _BORDER_CODES[border]


def _ddepth(image: Tensor) -> int:
    """CV_64F for double images, CV_32F for the others (half and bfloat16 are read as float32)."""
    cv2 = cv2_module()
    return cv2.CV_64F if image.dtype == torch.float64 else cv2.CV_32F


def _kernel(kernel: Tensor, image: Tensor) -> np.ndarray:
    """The kernel as a numpy array of the image's depth (float64 for double images, float32 otherwise)."""
    return kernel.detach().cpu().numpy().astype(np.float64 if image.dtype == torch.float64 else np.float32)


def _source(image: Tensor) -> Tensor:
    """Tensor[B, C, H, W] as OpenCV reads it: float32 or float64, NCHW-contiguous, no autograd."""
    source = image.detach()
    if source.dtype not in (torch.float32, torch.float64):
        source = source.float()
    return source.contiguous()


def channels_last(image: Tensor) -> np.ndarray | None:
    """The (B, H, W, C) numpy view of a float32/float64 channels_last batch of 3 or 4 channels, else None.

    Every filter here takes such pixels (medianBlur only 1, 3 or 4 channels), so a channels_last
    tensor, e.g. `torch.from_numpy(hwc).permute(2, 0, 1)` of an image OpenCV loaded, needs no copy.
    """
    if image.dtype not in (torch.float32, torch.float64) or image.shape[1] not in (3, 4) or image.is_contiguous() \
            or not image.is_contiguous(memory_format=torch.channels_last):
        return None
    return image.detach().permute(0, 2, 3, 1).numpy()


def _per_plane(fn: PlaneFn, image: Tensor, outputs: int = 1) -> Tensor:
    """Runs `fn(src, dst)` on each (H, W) plane of Tensor[B, C, H, W], writing into a new tensor.

    For the ops that filter each channel on its own. `per_image` hands OpenCV (H, W, C) images,
    which costs two transposing copies of an NCHW batch: on a 1080p RGB frame those take longer
    than a 5x5 blur. Planes of an NCHW tensor are contiguous, so OpenCV reads and writes them in place;
    a channels_last batch (`channels_last`) is filtered as (H, W, C) images, in place too, into a
    channels_last result.

    Args:
        fn: one cv2 call per plane; it writes `dst` (or returns the result, then copied into `dst`).
        image: Tensor[B, C, H, W] on the CPU.
        outputs: planes written per input plane (2 for (d/dx, d/dy)); `dst` then has shape (outputs, H, W).

    Returns:
        Tensor[B, C, H, W] (Tensor[B, C, outputs, H, W] when outputs > 1) of the input's dtype.
    """
    pixels = channels_last(image) if outputs == 1 else None
    if pixels is not None:  # OpenCV filters the (H, W, C) pixels of a channels_last batch where they lie
        out = np.empty(pixels.shape, pixels.dtype)
        for src, dst in zip(pixels, out):
            result = fn(src, dst)
            if result is not None and not np.shares_memory(result, dst):
                np.copyto(dst, result)
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(image.dtype)  # channels_last, as the input
    source = _source(image)
    batch, channels, height, width = source.shape
    src = source.numpy()
    # numpy.empty, not torch.empty: numpy asks for transparent huge pages, so the first writes into a
    # 50 MB batch fault 4x less (5 ms, not 22 ms: more than a 5x5 blur of the batch takes).
    dst = np.empty((batch, channels, outputs, height, width) if outputs > 1 else src.shape, src.dtype)
    for b in range(batch):
        for c in range(channels):
            result = fn(src[b, c], dst[b, c])
            if result is not None and not np.shares_memory(result, dst):  # OpenCV allocated its own output
                np.copyto(dst[b, c], result)
    return torch.from_numpy(dst).to(image.dtype)


def _per_image(fn: Callable[[np.ndarray], np.ndarray], image: Tensor) -> Tensor:
    """Runs `fn` on each (H, W, C) image of Tensor[B, C, H, W] (on (H, W) planes when C = 1), same shape out.

    For the ops whose channels interact. Each image is interleaved by cv2.merge into one reused buffer
    and its result split by cv2.split straight into the planes of a numpy-allocated output: 2-3x
    faster than transposing the whole batch to (B, H, W, C) and back with copies (`per_image`).
    """
    cv2 = cv2_module()
    pixels = channels_last(image)
    if pixels is not None:  # (H, W, C) already: no interleaving
        out = np.empty(pixels.shape, pixels.dtype)
        for one, dst_pixels in zip(pixels, out):
            np.copyto(dst_pixels, fn(one))
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(image.dtype)
    source = _source(image)
    src = source.numpy()
    dst = np.empty(src.shape, src.dtype)  # numpy: huge pages, see _per_plane
    pixels = np.empty((*src.shape[2:], src.shape[1]), src.dtype)
    for b in range(src.shape[0]):
        if src.shape[1] == 1:
            result = fn(src[b, 0])
            targets = [dst[b, 0]]
        else:
            result = fn(cv2.merge(list(src[b]), pixels))
            targets = list(dst[b])
        for part, plane in zip(cv2.split(result, targets) if result.ndim == 3 else [result], targets):
            if not np.shares_memory(part, plane):  # split writes in place; copy where it did not
                np.copyto(plane, part)
    return torch.from_numpy(dst).to(image.dtype)


def box_blur(image: Tensor, kh: int, kw: int, border: str) -> Tensor:
    """cv2.blur (a normalised boxFilter) with the anchor at the centre."""
    cv2 = cv2_module()
    return _per_plane(lambda src, dst: cv2.blur(src, (kw, kh), dst, borderType=_border(border)), image)


def gaussian_blur(image: Tensor, sigma: tuple[float, float], size: tuple[int, int], border: str) -> Tensor:
    """cv2.GaussianBlur with sigma = (sigma_y, sigma_x) and size = (kh, kw) given explicitly."""
    cv2 = cv2_module()
    (sy, sx), (kh, kw) = sigma, size
    return _per_plane(lambda src, dst: cv2.GaussianBlur(src, (kw, kh), sx, dst, sy, borderType=_border(border)),
                      image)


def unsharp_mask(image: Tensor, sigma: float, size: int, amount: float, border: str) -> Tensor:
    """`(1 + amount) image - amount GaussianBlur(image)` clipped to [0, 1], plane by plane.

    The blur, the weighted sum (cv2.addWeighted) and the clip run on one plane after the other, so on
    a batch of small images the plane is still in cache for the last two; unsharp_mask's torch ops
    would make two more passes over the whole batch.
    """
    cv2 = cv2_module()

    def one_plane(src: np.ndarray, dst: np.ndarray) -> None:
        cv2.GaussianBlur(src, (size, size), sigma, dst, sigma, borderType=_border(border))
        cv2.addWeighted(src, 1 + amount, dst, -amount, 0, dst=dst)
        cv2.threshold(dst, 0, 0, cv2.THRESH_TOZERO, dst=dst)  # NaN-free: inputs are finite
        cv2.threshold(dst, 1, 1, cv2.THRESH_TRUNC, dst=dst)

    return _per_plane(one_plane, image)


def filter2d(image: Tensor, kernel: Tensor, border: str) -> Tensor:
    """cv2.filter2D: correlation, anchor at (kh // 2, kw // 2), delta 0."""
    cv2 = cv2_module()
    weights = _kernel(kernel, image)
    return _per_plane(lambda src, dst: cv2.filter2D(src, -1, weights, dst, borderType=_border(border)), image)


def filter2d_separable(image: Tensor, kernel_x: Tensor, kernel_y: Tensor, border: str) -> Tensor:
    """cv2.sepFilter2D with the row kernel along x and the column kernel along y."""
    cv2 = cv2_module()
    kx, ky = _kernel(kernel_x, image).reshape(-1), _kernel(kernel_y, image).reshape(-1)
    return _per_plane(lambda src, dst: cv2.sepFilter2D(src, -1, kx, ky, dst, borderType=_border(border)), image)


def median_blur(image: Tensor, k: int, border: str) -> Tensor:
    """cv2.medianBlur on float32 for k = 3 or 5, with any border.

    medianBlur always repeats the edge pixel; padding by k // 2 with the wanted border first
    makes every window of the original pixels lie inside the padded image, so the border
    medianBlur adds is never read by them, and the crop is exactly the wanted result.
    """
    cv2 = cv2_module()
    r = k // 2

    def one_plane(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        if border == "replicate":
            return cv2.medianBlur(src, k, dst)
        padded = cv2.copyMakeBorder(src, r, r, r, r, _border(border))
        return cv2.medianBlur(padded, k)[r:r + src.shape[0], r:r + src.shape[1]]

    return _per_plane(one_plane, image)


def bilateral_filter(image: Tensor, diameter: int, sigma_color: float, sigma_space: float, border: str) -> Tensor:
    """cv2.bilateralFilter on float32 images of 1 or 3 channels (its only float depth and counts).

    The colour distance couples the channels, so OpenCV gets (H, W, C) images (`_per_image`).
    """
    cv2 = cv2_module()
    return _per_image(lambda one: cv2.bilateralFilter(one, diameter, sigma_color, sigma_space,
                                                      borderType=_border(border)), image)


def _derivative(src: np.ndarray, dst: np.ndarray | None, mode: str, dx: int, dy: int, kernel_size: int,
                scale: float, border: str, ddepth: int) -> np.ndarray:
    cv2 = cv2_module()
    if mode == "scharr":
        return cv2.Scharr(src, ddepth, dx, dy, dst, scale=scale, borderType=_border(border))
    return cv2.Sobel(src, ddepth, dx, dy, dst, ksize=kernel_size, scale=scale, borderType=_border(border))


def gradients(image: Tensor, mode: str, kernel_size: int, scale: float, border: str) -> Tensor:
    """Tensor[B, C, 2, H, W] of (d/dx, d/dy) by cv2.Sobel or cv2.Scharr (spatial_gradient's layout)."""
    ddepth = _ddepth(image)

    def one_plane(src: np.ndarray, dst: np.ndarray) -> None:
        for axis, (dx, dy) in enumerate(((1, 0), (0, 1))):
            result = _derivative(src, dst[axis], mode, dx, dy, kernel_size, scale, border, ddepth)
            if not np.shares_memory(result, dst):
                np.copyto(dst[axis], result)

    return _per_plane(one_plane, image, outputs=2)


def gradient_magnitude(image: Tensor, mode: str, kernel_size: int, scale: float, border: str) -> Tensor:
    """sqrt(gx^2 + gy^2) per channel, gradients and magnitude by OpenCV (cv2.magnitude)."""
    cv2 = cv2_module()
    ddepth = _ddepth(image)

    def one_plane(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        gx = _derivative(src, None, mode, 1, 0, kernel_size, scale, border, ddepth)
        gy = _derivative(src, None, mode, 0, 1, kernel_size, scale, border, ddepth)
        return cv2.magnitude(gx, gy, dst)

    return _per_plane(one_plane, image)


def laplacian(image: Tensor, kernel_size: int, scale: float, border: str) -> Tensor:
    """cv2.Laplacian with `scale` applied to its kernel."""
    cv2 = cv2_module()
    ddepth = _ddepth(image)
    return _per_plane(lambda src, dst: cv2.Laplacian(src, ddepth, dst, kernel_size, scale,
                                                     borderType=_border(border)), image)
