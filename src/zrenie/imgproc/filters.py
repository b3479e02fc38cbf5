"""Linear and non-linear filters as batched torch ops: box, Gaussian, median, bilateral, derivatives.

Border modes name what lies outside the image:

- "reflect": mirror without repeating the edge pixel (`dcb|abcd|cba`), torch's "reflect" and
  OpenCV's BORDER_REFLECT_101, which is OpenCV's default for every filter here;
- "replicate": repeat the edge pixel (`aaa|abcd|ddd`), OpenCV's BORDER_REPLICATE;
- "constant": zeros (`000|abcd|000`), OpenCV's BORDER_CONSTANT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc._blocks import blocks, wants_blocks
from zrenie.imgproc._checks import batched, check_image, check_kernel_size
from zrenie.imgproc._module import OpModule

BORDERS = ("reflect", "replicate", "constant")


def pad_image(image: Tensor, kernel_size: tuple[int, int], border: str = "reflect") -> Tensor:
    """Pads Tensor[B, C, H, W] for a kernel of (kh, kw) anchored at (kh // 2, kw // 2), as OpenCV anchors."""
    if border not in BORDERS:
        raise ShapeError(f"border: expected one of {', '.join(BORDERS)}, got {border!r}")
    kh, kw = kernel_size
    pads = (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2)
    if not any(pads):
        return image
    if border == "reflect" and (image.shape[-1] == 1 or image.shape[-2] == 1):
        border = "replicate"  # a one-pixel row has nothing to mirror; OpenCV repeats it too
    return F.pad(image, pads, mode=border) if border != "constant" else F.pad(image, pads)


def _depthwise(image: Tensor, kernel: Tensor) -> Tensor:
    """Correlates every channel of padded Tensor[B, C, H', W'] with Tensor[kh, kw] (no padding)."""
    channels = image.shape[1]
    weight = kernel.to(image).expand(channels, 1, *kernel.shape)
    return F.conv2d(image, weight, groups=channels)


@batched
def filter2d(image: Tensor, kernel: Tensor, border: str = "reflect") -> Tensor:
    """Correlates each channel with a user kernel, as OpenCV's filter2D (no kernel flip).

    Correlation, not convolution, is what OpenCV, kornia and torch's conv2d compute; flip the
    kernel with `kernel.flip(-2, -1)` for a true convolution.

    Args:
        image: Tensor[B, C, H, W].
        kernel: Tensor[kh, kw], anchored at (kh // 2, kw // 2).
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    kernel = torch.as_tensor(kernel)
    if kernel.dim() != 2 or not kernel.is_floating_point() and kernel.dtype not in (torch.int32, torch.int64):
        raise ShapeError(f"kernel: expected a numeric Tensor[kh, kw], got shape {tuple(kernel.shape)}")
    check_image(image, min_size=tuple(kernel.shape))
    padded = pad_image(image, tuple(kernel.shape), border)
    if padded.device.type == "cpu" and not (torch.is_grad_enabled() and padded.requires_grad):
        return _correlate_cpu(padded, kernel.double().tolist())
    return _depthwise(padded, kernel.to(image))


def _correlate_cpu(padded: Tensor, kernel: list[list[float]]) -> Tensor:
    """2-D correlation as one multiply-add per nonzero tap, over cache-sized blocks (see _separable_cpu).

    torch's depthwise conv2d runs a 3x3 Laplacian on a 1080p RGB frame ~50x slower than OpenCV
    (benchmarks/imgproc.py); the taps, zeros skipped, are what OpenCV's filter2D computes too.
    """
    kh, kw = len(kernel), len(kernel[0])
    taps = [(i, j, w) for i, row in enumerate(kernel) for j, w in enumerate(row) if w != 0]
    batch, channels, padded_h, padded_w = padded.shape
    height, width = padded_h - kh + 1, padded_w - kw + 1
    out = padded.new_zeros(batch, channels, height, width)
    for images, rows in blocks(batch, height, padded_w, (1 << 18) // channels):
        n = rows.stop - rows.start
        block = out[images, :, rows]
        for i, j, weight in taps:
            block.add_(padded[images, :, rows.start + i:rows.start + i + n, j:j + width], alpha=weight)
    return out


@batched
def filter2d_separable(image: Tensor, kernel_x: Tensor, kernel_y: Tensor, border: str = "reflect") -> Tensor:
    """Correlates with the outer product `kernel_y[:, None] * kernel_x[None, :]` in two 1-D passes.

    Two passes cost kh + kw multiplies per pixel instead of kh * kw.

    Args:
        image: Tensor[B, C, H, W].
        kernel_x: Tensor[kw], along the width.
        kernel_y: Tensor[kh], along the height.
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    kx, ky = torch.as_tensor(kernel_x).to(image), torch.as_tensor(kernel_y).to(image)
    check_image(image, min_size=(ky.numel(), kx.numel()))
    padded = pad_image(image, (ky.numel(), kx.numel()), border)
    if padded.device.type == "cpu" and not (torch.is_grad_enabled() and padded.requires_grad):
        return _separable_cpu(padded, kx.tolist(), ky.tolist())
    return _depthwise(_depthwise(padded, kx.view(1, -1)), ky.view(-1, 1))


def _separable_cpu(padded: Tensor, kernel_x: list[float], kernel_y: list[float]) -> Tensor:
    """The separable correlation as shifted multiply-adds over blocks that stay in cache.

    On CPU, torch's depthwise conv2d takes ~40x OpenCV's time for a 17-tap Gaussian on a 1080p
    RGB frame (341 ms vs 6 ms, 2 threads, benchmarks/imgproc.py): it is tuned for small kernels
    over many channels. Summing shifted views costs one memory pass per tap, so the passes run
    on blocks of ~2^18 values (the best of 2^15..2^19 on a 1080p frame and on 64 images of
    256x256; see _blocks.py), which brings it to ~3x OpenCV.
    """
    kh, kw = len(kernel_y), len(kernel_x)
    batch, channels, padded_h, padded_w = padded.shape
    height, width = padded_h - kh + 1, padded_w - kw + 1
    out = padded.new_empty(batch, channels, height, width)
    for images, rows in blocks(batch, height, padded_w, (1 << 18) // channels):
        n = rows.stop - rows.start
        source = padded[images, :, rows.start:rows.stop + kh - 1]  # (b, C, n + kh - 1, W + kw - 1)
        across = source[..., 0:width] * kernel_x[0]
        for i in range(1, kw):
            across.add_(source[..., i:i + width], alpha=kernel_x[i])
        block = across[:, :, 0:n] * kernel_y[0]
        for i in range(1, kh):
            block.add_(across[:, :, i:i + n], alpha=kernel_y[i])
        out[images, :, rows] = block
    return out


def gaussian_kernel_size(sigma: float) -> int:
    """The kernel size used when none is given: `2 * round(4 * sigma) + 1`, i.e. +-4 sigma.

    This is scipy.ndimage's and scikit-image's default (truncate=4) and equals OpenCV's rule for
    float images (`round(8 * sigma + 1) | 1`); the tails beyond 4 sigma hold < 1e-4 of the mass.
    """
    return 2 * int(4 * sigma + 0.5) + 1


def gaussian_kernel1d(sigma: float, kernel_size: int | None = None, dtype=torch.float32) -> Tensor:
    """Tensor[kernel_size] of a sampled Gaussian, normalised to sum 1 (OpenCV's getGaussianKernel)."""
    if not sigma > 0:
        raise ShapeError(f"sigma: expected a positive number, got {sigma!r}")
    size = kernel_size or gaussian_kernel_size(sigma)
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).to(dtype)


@batched
def gaussian_blur(image: Tensor, sigma: float | tuple[float, float], kernel_size: int | tuple[int, int] | None = None,
                  border: str = "reflect") -> Tensor:
    """Gaussian blur as two separable 1-D passes, each channel on its own.

    Args:
        image: Tensor[B, C, H, W].
        sigma: the standard deviation in pixels, or (sigma_y, sigma_x).
        kernel_size: odd size(s); by default `gaussian_kernel_size(sigma)` (+-4 sigma, as scipy and OpenCV).
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    if kernel_size is None:
        kernel_size = (gaussian_kernel_size(sy), gaussian_kernel_size(sx))
    kh, kw = check_kernel_size(kernel_size)
    check_image(image, min_size=(kh, kw))
    return filter2d_separable(image, gaussian_kernel1d(sx, kw), gaussian_kernel1d(sy, kh), border)


@batched
def box_blur(image: Tensor, kernel_size: int | tuple[int, int] = 3, border: str = "reflect") -> Tensor:
    """The mean over a kh x kw window (OpenCV's blur), in two separable passes.

    Args:
        image: Tensor[B, C, H, W].
        kernel_size: the window size(s); even sizes anchor at (kh // 2, kw // 2), as OpenCV.
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    kh, kw = check_kernel_size(kernel_size, odd=False)
    check_image(image, min_size=(kh, kw))
    return filter2d_separable(image, torch.full((kw,), 1 / kw), torch.full((kh,), 1 / kh), border)


@batched
def median_blur(image: Tensor, kernel_size: int = 3, border: str = "reflect") -> Tensor:
    """The median over a k x k window, per channel.

    OpenCV's medianBlur always repeats the edge pixel; pass border="replicate" to match it.

    Args:
        image: Tensor[B, C, H, W].
        kernel_size: an odd window size.
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    k, _ = check_kernel_size(kernel_size)
    check_image(image, min_size=k)
    padded = pad_image(image, (k, k), border)
    batch, _, height, width = image.shape
    if padded.device.type != "cpu" or (torch.is_grad_enabled() and padded.requires_grad):
        return _forgetful_median([padded[..., i:i + height, j:j + width] for i in range(k) for j in range(k)])
    out = torch.empty_like(image)
    for images, rows in blocks(batch, height, width, 1 << 15):
        n = rows.stop - rows.start
        block = padded[images, :, rows.start:rows.stop + k - 1]
        out[images, :, rows] = _forgetful_median([block[..., i:i + n, j:j + width] for i in range(k) for j in range(k)])
    return out


def _forgetful_median(values: list[Tensor]) -> Tensor:
    """The elementwise median of an odd number of same-shape tensors by forgetful selection.

    Keep a pool of n // 2 + 2 values, drop its minimum and maximum (neither can be the median),
    add the next value, repeat (Paeth's "median finding on a 3x3 grid", Graphics Gems 1990).
    Only min/max of whole tensors, so it vectorises: 7x faster than `Tensor.median(dim=-1)`
    over unfolded 5x5 windows, and it needs no k^2-times-larger copy of the image.
    """
    pool, rest = list(values[:len(values) // 2 + 2]), list(values[len(values) // 2 + 2:])
    while len(pool) > 1:
        for i in range(len(pool) - 1):  # bubble the maximum to the end
            pool[i], pool[i + 1] = torch.minimum(pool[i], pool[i + 1]), torch.maximum(pool[i], pool[i + 1])
        for i in range(len(pool) - 2, 0, -1):  # and the minimum to the front
            pool[i - 1], pool[i] = torch.minimum(pool[i - 1], pool[i]), torch.maximum(pool[i - 1], pool[i])
        pool = pool[1:-1] + rest[:1]
        rest = rest[1:]
    return pool[0]


@batched
def bilateral_filter(image: Tensor, diameter: int = 9, sigma_color: float = 0.1, sigma_space: float = 3.0,
                     border: str = "reflect") -> Tensor:
    """Edge-preserving smoothing (Tomasi and Manduchi 1998) with OpenCV's choices.

    As OpenCV's bilateralFilter: the window is the disc of radius `diameter // 2`, and the colour
    distance of RGB pixels is the sum of absolute channel differences (L1). scikit-image's
    denoise_bilateral uses a square window and the Euclidean distance instead; zrenie follows
    OpenCV, the implementation most code and course material compare against.

    Args:
        image: Tensor[B, C, H, W] in [0, 1].
        diameter: the window diameter in pixels; <= 0 means `2 * round(1.5 * sigma_space) + 1`.
        sigma_color: the colour standard deviation, in intensity units (0.1 = 25.5 of 255).
        sigma_space: the spatial standard deviation, in pixels.
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    if not (sigma_color > 0 and sigma_space > 0):
        raise ShapeError(f"sigma_color and sigma_space: expected positive numbers, got {sigma_color}, {sigma_space}")
    radius = diameter // 2 if diameter > 0 else int(round(sigma_space * 1.5))
    check_image(image, min_size=2 * radius + 1)
    padded = pad_image(image, (2 * radius + 1, 2 * radius + 1), border)
    if not wants_blocks(image):
        return _bilateral_block(padded, image, radius, sigma_color, sigma_space)
    batch, channels, height, _ = image.shape
    out = torch.empty_like(image)
    for images, rows in blocks(batch, height, padded.shape[-1], (1 << 16) // channels):
        source = padded[images, :, rows.start:rows.stop + 2 * radius]
        out[images, :, rows] = _bilateral_block(source, image[images, :, rows], radius, sigma_color, sigma_space)
    return out


def _bilateral_block(padded: Tensor, image: Tensor, radius: int, sigma_color: float, sigma_space: float) -> Tensor:
    """The bilateral filter of Tensor[B, C, H, W] `image`, whose padded copy is `padded`."""
    height, width = image.shape[-2:]
    numerator, denominator = torch.zeros_like(image), torch.zeros_like(image[:, :1])
    # One shifted view per window offset: (2r + 1)^2 vectorised passes, none per pixel.
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius:
                continue
            shifted = padded[:, :, radius + dy:radius + dy + height, radius + dx:radius + dx + width]
            distance = (shifted - image).abs().sum(dim=1, keepdim=True)  # (B, 1, H, W)
            weight = torch.exp(-(distance**2) / (2 * sigma_color**2) - (dx * dx + dy * dy) / (2 * sigma_space**2))
            numerator = numerator + weight * shifted
            denominator = denominator + weight
    return numerator / denominator


def derivative_kernels(dx: int, dy: int, kernel_size: int = 3, mode: str = "sobel") -> tuple[Tensor, Tensor]:
    """(kernel_x, kernel_y) of OpenCV's getDerivKernels: binomial smoothing times finite differences.

    The order-n kernel of size k is [1, 1] convolved k - n - 1 times, then [-1, 1] n times
    (OpenCV's getSobelKernels). Scharr's 3x3 kernels are [3, 10, 3] and [-1, 0, 1].
    """
    if mode == "scharr":
        if kernel_size != 3 or dx + dy != 1:
            raise ShapeError("scharr: only first derivatives with kernel_size=3 exist")
        smooth, deriv = torch.tensor([3.0, 10.0, 3.0]), torch.tensor([-1.0, 0.0, 1.0])
        return (deriv, smooth) if dx else (smooth, deriv)
    if mode != "sobel":
        raise ShapeError(f"mode: expected 'sobel' or 'scharr', got {mode!r}")
    if kernel_size not in (1, 3, 5, 7):
        raise ShapeError(f"kernel_size: expected 1, 3, 5 or 7, got {kernel_size}")

    def kernel(order: int) -> Tensor:
        size = max(kernel_size, order + 1) if kernel_size > 1 else 3 if order else 1
        k = torch.ones(1, dtype=torch.float64)
        for step in [torch.tensor([1.0, 1.0])] * (size - order - 1) + [torch.tensor([-1.0, 1.0])] * order:
            k = torch.cat([k, k.new_zeros(1)]) * step[0] + torch.cat([k.new_zeros(1), k]) * step[1]
        return k.float()

    return kernel(dx), kernel(dy)


def _gradients(image: Tensor, mode: str, kernel_size: int, normalized: bool, border: str) -> tuple[Tensor, Tensor]:
    """(d/dx, d/dy), each Tensor[B, C, H, W]."""
    grads = []
    for dx, dy in ((1, 0), (0, 1)):
        kx, ky = derivative_kernels(dx, dy, kernel_size, mode)
        if normalized:
            kx = kx / (kx.abs().sum() * ky.abs().sum())
        grads.append(filter2d_separable(image, kx, ky, border))
    return grads[0], grads[1]


@batched
def spatial_gradient(image: Tensor, mode: str = "sobel", kernel_size: int = 3, normalized: bool = False,
                     border: str = "reflect") -> Tensor:
    """First derivatives along x and y (OpenCV's Sobel / Scharr with dx=1 or dy=1).

    Args:
        image: Tensor[B, C, H, W].
        mode: "sobel" or "scharr".
        kernel_size: 1, 3, 5 or 7 for Sobel (1 means [-1, 0, 1] without smoothing); 3 for Scharr.
        normalized: divide by the kernel's absolute sum (8 for 3x3 Sobel, 32 for Scharr), so a
            unit step gives a gradient of 0.5, as kornia's normalized=True.
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, 2, H, W]: (d/dx, d/dy), x to the right, y down.
    """
    return torch.stack(_gradients(image, mode, kernel_size, normalized, border), dim=2)


def _magnitude(gx: Tensor, gy: Tensor) -> Tensor:
    """sqrt(gx^2 + gy^2), with a zero (not NaN) gradient where both are 0."""
    if not (torch.is_grad_enabled() and (gx.requires_grad or gy.requires_grad)):
        return torch.hypot(gx, gy)  # one pass; its backward would be NaN at 0, hence the branch
    squared = gx * gx + gy * gy
    return torch.where(squared > 0, squared.clamp_min(1e-30).sqrt(), 0.0)


@batched
def sobel(image: Tensor, kernel_size: int = 3, normalized: bool = True, border: str = "reflect") -> Tensor:
    """Sobel gradient magnitude `sqrt(gx^2 + gy^2)` per channel (kornia's sobel).

    Args:
        image: Tensor[B, C, H, W].
        kernel_size: 3, 5 or 7.
        normalized: divide the gradients by the kernel's absolute sum (see `spatial_gradient`).
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    return _magnitude(*_gradients(image, "sobel", kernel_size, normalized, border))


@batched
def scharr(image: Tensor, normalized: bool = True, border: str = "reflect") -> Tensor:
    """Scharr gradient magnitude per channel; Scharr's 3x3 kernel is more rotation-invariant than Sobel's.

    Args:
        image: Tensor[B, C, H, W].
        normalized: divide the gradients by 32, the kernel's absolute sum.
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    return _magnitude(*_gradients(image, "scharr", 3, normalized, border))


@batched
def laplacian(image: Tensor, kernel_size: int = 3, normalized: bool = True, border: str = "reflect") -> Tensor:
    """The Laplacian d2/dx2 + d2/dy2 with OpenCV's kernels.

    kernel_size=1 is the 4-neighbour stencil [[0, 1, 0], [1, -4, 1], [0, 1, 0]]; larger sizes add
    the second-order Sobel kernels, so 3 gives [[2, 0, 2], [0, -8, 0], [2, 0, 2]] (cv2.Laplacian).

    Args:
        image: Tensor[B, C, H, W].
        kernel_size: 1, 3, 5 or 7.
        normalized: divide by the kernel's absolute sum (kornia's default); False matches OpenCV.
        border: "reflect", "replicate" or "constant".

    Returns:
        Tensor[B, C, H, W].
    """
    if kernel_size == 1:
        kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    else:
        (dxx_x, dxx_y), (dyy_x, dyy_y) = (derivative_kernels(2, 0, kernel_size), derivative_kernels(0, 2, kernel_size))
        kernel = torch.outer(dxx_y, dxx_x) + torch.outer(dyy_y, dyy_x)
    if normalized:
        kernel = kernel / kernel.abs().sum()
    return filter2d(image, kernel, border)


@batched
def unsharp_mask(image: Tensor, sigma: float = 1.0, amount: float = 1.0, threshold: float = 0.0,
                 border: str = "reflect") -> Tensor:
    """Sharpens by adding back the detail a Gaussian blur removes: `image + amount * (image - blurred)`.

    As scikit-image's unsharp_mask (radius = sigma) with the output clipped to [0, 1]; `threshold`
    (as in GIMP) leaves pixels whose detail is at most `threshold` untouched, so flat noise is not amplified.

    Args:
        image: Tensor[B, C, H, W] in [0, 1].
        sigma: the blur's standard deviation in pixels.
        amount: the detail gain.
        threshold: the smallest |image - blurred| that is sharpened.
        border: "reflect", "replicate" or "constant" (scikit-image's default is "replicate").

    Returns:
        Tensor[B, C, H, W] in [0, 1].
    """
    detail = image - gaussian_blur(image, sigma, border=border)
    if threshold > 0:
        detail = torch.where(detail.abs() > threshold, detail, torch.zeros_like(detail))
    return (image + amount * detail).clamp(0, 1)


# Module forms: each holds the op's non-image arguments, e.g. GaussianBlur(sigma=2.0)(image).


class Filter2d(OpModule):
    op = staticmethod(filter2d)


class Filter2dSeparable(OpModule):
    op = staticmethod(filter2d_separable)


class BoxBlur(OpModule):
    op = staticmethod(box_blur)


class GaussianBlur(OpModule):
    op = staticmethod(gaussian_blur)


class MedianBlur(OpModule):
    op = staticmethod(median_blur)


class BilateralFilter(OpModule):
    op = staticmethod(bilateral_filter)


class SpatialGradient(OpModule):
    op = staticmethod(spatial_gradient)


class Sobel(OpModule):
    op = staticmethod(sobel)


class Scharr(OpModule):
    op = staticmethod(scharr)


class Laplacian(OpModule):
    op = staticmethod(laplacian)


class UnsharpMask(OpModule):
    op = staticmethod(unsharp_mask)
