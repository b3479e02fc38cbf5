"""Linear and non-linear filters as batched torch ops: box, Gaussian, median, bilateral, derivatives.

Every op here is linear or an order statistic, so it accepts any finite value (not only [0, 1]),
as OpenCV's float paths do; only unsharp_mask clips its output to [0, 1].

Border modes name what lies outside the image, with OpenCV's rule (borderInterpolate) also for
images smaller than the kernel:

- "reflect": mirror without repeating the edge pixel (`dcb|abcd|cba`), OpenCV's BORDER_REFLECT_101,
  its default for every filter here; it reflects again and again where the kernel is wider than
  the image (`abcb|abc|bab` ...), and a side of one pixel repeats that pixel;
- "replicate": repeat the edge pixel (`aaa|abcd|ddd`), OpenCV's BORDER_REPLICATE;
- "constant": zeros (`000|abcd|000`), OpenCV's BORDER_CONSTANT.

Each op with an OpenCV equivalent takes `backend=` ("auto", "torch" or "opencv", see _backend.py):
"auto" runs OpenCV (filters_cv.py) on CPU images that need no gradient, zrenie's torch code otherwise
and, for the linear filters, on planes under 64x64 pixels, where the torch code is the faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc import filters_cv
from zrenie.imgproc._backend import use_opencv
from zrenie.imgproc._blocks import blocks, wants_blocks
from zrenie.imgproc._checks import batched, check_image, check_kernel_size
from zrenie.imgproc._module import OpModule
from zrenie.imgproc.filters_cv import (  # noqa: F401  (re-exported: morphology pads with pad_image)
    BORDERS, border_index, check_border, pad_image,
)


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


# OpenCV filters one plane per call (filters_cv.py), ~10 us each: below 64x64 pixels a plane, the torch
# code's batched passes are faster for the linear filters (64 images of 3x64x64 break even on one
# thread), so "auto" runs torch there. Medians and bilateral filters are faster in OpenCV at any size.
_OPENCV_MIN_PIXELS = 64 * 64


def _linear_opencv(image: Tensor, backend: str, supported: bool = True) -> bool:
    """`use_opencv` for a linear filter: "auto" also keeps the torch code for planes under 64x64 pixels."""
    small = image.shape[-2] * image.shape[-1] < _OPENCV_MIN_PIXELS
    return use_opencv(image, backend, supported and not (backend == "auto" and small))


def _depthwise(image: Tensor, kernel: Tensor) -> Tensor:
    """Correlates every channel of padded Tensor[B, C, H', W'] with Tensor[kh, kw] (no padding)."""
    channels = image.shape[1]
    weight = kernel.to(image).expand(channels, 1, *kernel.shape)
    return F.conv2d(image, weight, groups=channels)


@batched
def filter2d(image: Tensor, kernel: Tensor, border: str = "reflect", backend: str = "auto") -> Tensor:
    """Correlates each channel with a user kernel, as OpenCV's filter2D (no kernel flip).

    Correlation, not convolution, is what OpenCV, kornia and torch's conv2d compute; flip the
    kernel with `kernel.flip(-2, -1)` for a true convolution.

    Args:
        image: Tensor[B, C, H, W].
        kernel: Tensor[kh, kw], anchored at (kh // 2, kw // 2).
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.filter2D; "auto" keeps torch for a kernel that needs a gradient).

    Returns:
        Tensor[B, C, H, W].
    """
    kernel = torch.as_tensor(kernel)
    if (kernel.dim() != 2 or not kernel.numel()
            or not kernel.is_floating_point() and kernel.dtype not in (torch.int32, torch.int64)):
        raise ShapeError(f"kernel: expected a numeric Tensor[kh, kw], got shape {tuple(kernel.shape)}")
    check_image(image)
    check_border(border)
    if _linear_opencv(image, backend, supported=not _needs_grad(kernel)):
        return filters_cv.filter2d(image, kernel, border)
    padded = pad_image(image, tuple(kernel.shape), border)
    if padded.device.type == "cpu" and not _needs_grad(padded, kernel):
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
def filter2d_separable(image: Tensor, kernel_x: Tensor, kernel_y: Tensor, border: str = "reflect",
                       backend: str = "auto") -> Tensor:
    """Correlates with the outer product `kernel_y[:, None] * kernel_x[None, :]` in two 1-D passes.

    Two passes cost kh + kw multiplies per pixel instead of kh * kw.

    Args:
        image: Tensor[B, C, H, W].
        kernel_x: Tensor[kw], along the width.
        kernel_y: Tensor[kh], along the height.
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.sepFilter2D; "auto" keeps torch for kernels that need a gradient).

    Returns:
        Tensor[B, C, H, W].
    """
    kx, ky = torch.as_tensor(kernel_x).reshape(-1), torch.as_tensor(kernel_y).reshape(-1)
    if not (kx.numel() and ky.numel()):
        raise ShapeError(f"kernel_x, kernel_y: expected non-empty 1-D kernels, got {kx.numel()} and {ky.numel()} taps")
    check_image(image)
    check_border(border)
    if _linear_opencv(image, backend, supported=not _needs_grad(kx, ky)):
        return filters_cv.filter2d_separable(image, kx, ky, border)
    kx, ky = kx.to(image), ky.to(image)
    padded = pad_image(image, (ky.numel(), kx.numel()), border)
    if padded.device.type == "cpu" and not _needs_grad(padded, kx, ky):
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
    """The kernel size used when none is given, OpenCV's rule for float images: `round(8 * sigma + 1) | 1`.

    cv2.GaussianBlur with ksize (0, 0) takes `cvRound(sigma * 4 * 2 + 1) | 1` for float images
    (createGaussianKernels; 3 instead of 4 for 8-bit images): the kernel spans about +-4 sigma,
    rounded half to even as cvRound, and `| 1` turns an even size into the next odd one. So
    sigma 1.1 gives 11 (scipy's truncate=4 gives 9); the tails beyond 4 sigma hold < 1e-4 of the mass.
    """
    return int(round(sigma * 8 + 1)) | 1


def _check_sigma(sigma: float) -> None:
    if not sigma > 0:
        raise ShapeError(f"sigma: expected a positive number, got {sigma!r}")


def gaussian_kernel1d(sigma: float, kernel_size: int | None = None, dtype=torch.float32) -> Tensor:
    """Tensor[kernel_size] of a sampled Gaussian, normalised to sum 1 (OpenCV's getGaussianKernel)."""
    _check_sigma(sigma)
    size = kernel_size or gaussian_kernel_size(sigma)
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).to(dtype)


@batched
def gaussian_blur(image: Tensor, sigma: float | tuple[float, float], kernel_size: int | tuple[int, int] | None = None,
                  border: str = "reflect", backend: str = "auto") -> Tensor:
    """Gaussian blur as two separable 1-D passes, each channel on its own.

    With `sigma` alone it equals cv2.GaussianBlur(image, (0, 0), sigma) on float images.

    Args:
        image: Tensor[B, C, H, W].
        sigma: the standard deviation in pixels, or (sigma_y, sigma_x).
        kernel_size: odd size(s); by default `gaussian_kernel_size(sigma)` (OpenCV's rule for float images).
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.GaussianBlur with the same sizes and sigmas).

    Returns:
        Tensor[B, C, H, W].
    """
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    _check_sigma(sy)
    _check_sigma(sx)
    if kernel_size is None:
        kernel_size = (gaussian_kernel_size(sy), gaussian_kernel_size(sx))
    kh, kw = check_kernel_size(kernel_size)
    check_image(image)
    check_border(border)
    if _linear_opencv(image, backend):
        return filters_cv.gaussian_blur(image, (sy, sx), (kh, kw), border)
    kx, ky = gaussian_kernel1d(sx, kw, torch.float64), gaussian_kernel1d(sy, kh, torch.float64)
    return filter2d_separable(image, kx, ky, border, backend="torch")


@batched
def box_blur(image: Tensor, kernel_size: int | tuple[int, int] = 3, border: str = "reflect",
             backend: str = "auto") -> Tensor:
    """The mean over a kh x kw window (OpenCV's blur), in two separable passes.

    Args:
        image: Tensor[B, C, H, W].
        kernel_size: the window size(s) k or (kh, kw); even sizes anchor at (kh // 2, kw // 2), as OpenCV
            (whose ksize is (width, height): cv2.blur(x, (kw, kh))).
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.blur).

    Returns:
        Tensor[B, C, H, W].
    """
    kh, kw = check_kernel_size(kernel_size, odd=False)
    check_image(image)
    check_border(border)
    if _linear_opencv(image, backend):
        return filters_cv.box_blur(image, kh, kw, border)
    return filter2d_separable(image, torch.full((kw,), 1 / kw, dtype=torch.float64),
                              torch.full((kh,), 1 / kh, dtype=torch.float64), border, backend="torch")


@batched
def median_blur(image: Tensor, kernel_size: int | tuple[int, int] = 3, border: str = "reflect",
                backend: str = "auto") -> Tensor:
    """The median over a kh x kw window, per channel.

    OpenCV's medianBlur always repeats the edge pixel, so it equals border="replicate"; its float
    version has square windows of 3 and 5 only, which is where backend "auto" runs it (float32,
    any border: the image is padded first). Other windows and float64 run the torch code.

    Args:
        image: Tensor[B, C, H, W].
        kernel_size: an odd window size k or (kh, kw).
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.medianBlur).

    Returns:
        Tensor[B, C, H, W].
    """
    kh, kw = check_kernel_size(kernel_size)
    check_image(image)
    check_border(border)
    supported = kh == kw and kh in (3, 5) and image.dtype != torch.float64
    if use_opencv(image, backend, supported):
        return filters_cv.median_blur(image, kh, border)
    padded = pad_image(image, (kh, kw), border)
    batch, _, height, width = image.shape
    if padded.device.type != "cpu" or _needs_grad(padded):
        return _forgetful_median([padded[..., i:i + height, j:j + width] for i in range(kh) for j in range(kw)])
    out = torch.empty_like(image)
    for images, rows in blocks(batch, height, width, 1 << 15):
        n = rows.stop - rows.start
        block = padded[images, :, rows.start:rows.stop + kh - 1]
        out[images, :, rows] = _forgetful_median([block[..., i:i + n, j:j + width]
                                                  for i in range(kh) for j in range(kw)])
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
                     border: str = "reflect", backend: str = "auto") -> Tensor:
    """Edge-preserving smoothing (Tomasi and Manduchi 1998) with OpenCV's choices.

    As OpenCV's bilateralFilter: the window is the disc of radius `diameter // 2`, and the colour
    distance of RGB pixels is the sum of absolute channel differences (L1). scikit-image's
    denoise_bilateral uses a square window and the Euclidean distance instead; zrenie follows
    OpenCV, the implementation most code and course material compare against. As OpenCV, the
    radius is at least 1 (diameter 1 or 2 is diameter 3).

    Args:
        image: Tensor[B, C, H, W], any finite values.
        diameter: the window diameter in pixels; <= 0 means `2 * round(1.5 * sigma_space) + 1`.
        sigma_color: the colour standard deviation, in the image's units (0.1 = 25.5 of 255 for [0, 1] images).
        sigma_space: the spatial standard deviation, in pixels.
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.bilateralFilter, for float32 images of 1 or 3 channels:
            the only ones it takes; it agrees with the torch code to ~1e-6 of the image's range).

    Returns:
        Tensor[B, C, H, W].
    """
    if not (sigma_color > 0 and sigma_space > 0):
        raise ShapeError(f"sigma_color and sigma_space: expected positive numbers, got {sigma_color}, {sigma_space}")
    radius = max(diameter // 2 if diameter > 0 else int(round(sigma_space * 1.5)), 1)
    check_image(image)
    check_border(border)
    supported = image.shape[1] in (1, 3) and image.dtype != torch.float64
    if use_opencv(image, backend, supported):
        return filters_cv.bilateral_filter(image, 2 * radius + 1, sigma_color, sigma_space, border)
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


def _gradient_args(image: Tensor, mode: str, kernel_size: int, normalized: bool,
                   border: str) -> tuple[list[tuple[Tensor, Tensor]], float]:
    """Checks the arguments; returns the (kx, ky) kernels of d/dx and d/dy, and the normalising scale."""
    kernels = [derivative_kernels(dx, dy, kernel_size, mode) for dx, dy in ((1, 0), (0, 1))]
    check_image(image)
    check_border(border)
    kx, ky = kernels[0]
    return kernels, 1.0 / float(kx.abs().sum() * ky.abs().sum()) if normalized else 1.0


def _gradients(image: Tensor, mode: str, kernel_size: int, normalized: bool, border: str,
               backend: str = "auto") -> tuple[Tensor, Tensor]:
    """(d/dx, d/dy), each Tensor[B, C, H, W]."""
    kernels, scale = _gradient_args(image, mode, kernel_size, normalized, border)
    if _linear_opencv(image, backend):
        gx, gy = filters_cv.gradients(image, mode, kernel_size, scale, border).unbind(2)
    else:
        gx, gy = (filter2d_separable(image, kx.double() * scale, ky, border, backend="torch") for kx, ky in kernels)
    return gx, gy


def _gradient_magnitude(image: Tensor, mode: str, kernel_size: int, normalized: bool, border: str,
                        backend: str) -> Tensor:
    """sqrt(gx^2 + gy^2) of the first derivatives: Tensor[B, C, H, W]."""
    _, scale = _gradient_args(image, mode, kernel_size, normalized, border)
    if _linear_opencv(image, backend):
        return filters_cv.gradient_magnitude(image, mode, kernel_size, scale, border)
    return _magnitude(*_gradients(image, mode, kernel_size, normalized, border, backend="torch"))


@batched
def spatial_gradient(image: Tensor, mode: str = "sobel", kernel_size: int = 3, normalized: bool = False,
                     border: str = "reflect", backend: str = "auto") -> Tensor:
    """First derivatives along x and y (OpenCV's Sobel / Scharr with dx=1 or dy=1).

    Args:
        image: Tensor[B, C, H, W].
        mode: "sobel" or "scharr".
        kernel_size: 1, 3, 5 or 7 for Sobel (1 means [-1, 0, 1] without smoothing); 3 for Scharr.
        normalized: divide by the kernel's absolute sum (8 for 3x3 Sobel, 32 for Scharr), so a
            unit step gives a gradient of 0.5, as kornia's normalized=True (OpenCV's `scale`).
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.Sobel / cv2.Scharr, ddepth CV_32F or CV_64F as the image).

    Returns:
        Tensor[B, C, 2, H, W]: (d/dx, d/dy), x to the right, y down.
    """
    _, scale = _gradient_args(image, mode, kernel_size, normalized, border)
    if _linear_opencv(image, backend):
        return filters_cv.gradients(image, mode, kernel_size, scale, border)
    return torch.stack(_gradients(image, mode, kernel_size, normalized, border, backend="torch"), dim=2)


def _magnitude(gx: Tensor, gy: Tensor) -> Tensor:
    """sqrt(gx^2 + gy^2), with a zero (not NaN) gradient where both are 0."""
    if not (torch.is_grad_enabled() and (gx.requires_grad or gy.requires_grad)):
        return torch.hypot(gx, gy)  # one pass; its backward would be NaN at 0, hence the branch
    squared = gx * gx + gy * gy
    return torch.where(squared > 0, squared.clamp_min(1e-30).sqrt(), 0.0)


@batched
def sobel(image: Tensor, kernel_size: int = 3, normalized: bool = True, border: str = "reflect",
          backend: str = "auto") -> Tensor:
    """Sobel gradient magnitude `sqrt(gx^2 + gy^2)` per channel (kornia's sobel).

    Args:
        image: Tensor[B, C, H, W].
        kernel_size: 3, 5 or 7.
        normalized: divide the gradients by the kernel's absolute sum (see `spatial_gradient`).
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.Sobel and cv2.magnitude).

    Returns:
        Tensor[B, C, H, W].
    """
    return _gradient_magnitude(image, "sobel", kernel_size, normalized, border, backend)


@batched
def scharr(image: Tensor, normalized: bool = True, border: str = "reflect", backend: str = "auto") -> Tensor:
    """Scharr gradient magnitude per channel; Scharr's 3x3 kernel is more rotation-invariant than Sobel's.

    Args:
        image: Tensor[B, C, H, W].
        normalized: divide the gradients by 32, the kernel's absolute sum.
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.Scharr and cv2.magnitude).

    Returns:
        Tensor[B, C, H, W].
    """
    return _gradient_magnitude(image, "scharr", 3, normalized, border, backend)


@batched
def laplacian(image: Tensor, kernel_size: int = 3, normalized: bool = True, border: str = "reflect",
              backend: str = "auto") -> Tensor:
    """The Laplacian d2/dx2 + d2/dy2 with OpenCV's kernels.

    kernel_size=1 is the 4-neighbour stencil [[0, 1, 0], [1, -4, 1], [0, 1, 0]]; larger sizes add
    the second-order Sobel kernels, so 3 gives [[2, 0, 2], [0, -8, 0], [2, 0, 2]] (cv2.Laplacian).

    Args:
        image: Tensor[B, C, H, W].
        kernel_size: 1, 3, 5 or 7.
        normalized: divide by the kernel's absolute sum (kornia's default); False matches OpenCV's
            default (OpenCV's `scale` is that factor).
        border: "reflect", "replicate" or "constant".
        backend: "auto", "torch" or "opencv" (cv2.Laplacian, ddepth CV_32F or CV_64F as the image).

    Returns:
        Tensor[B, C, H, W].
    """
    if kernel_size == 1:
        kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    else:
        (dxx_x, dxx_y), (dyy_x, dyy_y) = (derivative_kernels(2, 0, kernel_size), derivative_kernels(0, 2, kernel_size))
        kernel = torch.outer(dxx_y, dxx_x) + torch.outer(dyy_y, dyy_x)
    kernel = kernel.double()  # integers; divided in double, so float64 images keep their precision
    check_image(image)
    check_border(border)
    if _linear_opencv(image, backend):
        scale = 1.0 / float(kernel.abs().sum()) if normalized else 1.0
        return filters_cv.laplacian(image, kernel_size, scale, border)
    if normalized:
        kernel = kernel / kernel.abs().sum()
    return filter2d(image, kernel, border, backend="torch")


@batched
def unsharp_mask(image: Tensor, sigma: float = 1.0, amount: float = 1.0, threshold: float = 0.0,
                 border: str = "reflect", backend: str = "auto") -> Tensor:
    """Sharpens by adding back the detail a Gaussian blur removes: `image + amount * (image - blurred)`.

    As scikit-image's unsharp_mask (radius = sigma) with the output clipped to [0, 1]; `threshold`
    (as in GIMP) leaves pixels whose detail is at most `threshold` untouched, so flat noise is not amplified.

    Args:
        image: Tensor[B, C, H, W], any finite values (the output is clipped to [0, 1]).
        sigma: the blur's standard deviation in pixels.
        amount: the detail gain.
        threshold: the smallest |image - blurred| that is sharpened.
        border: "reflect", "replicate" or "constant" (scikit-image's default is "replicate").
        backend: the blur's backend, "auto", "torch" or "opencv" (cv2.GaussianBlur).

    Returns:
        Tensor[B, C, H, W] in [0, 1].
    """
    if threshold == 0 and isinstance(image, Tensor) and image.dim() == 4 and _linear_opencv(image, backend):
        _check_sigma(sigma)  # blur, weighted sum and clip in one OpenCV pass per plane
        check_image(image)
        check_border(border)
        return filters_cv.unsharp_mask(image, sigma, gaussian_kernel_size(sigma), amount, border)
    blurred = gaussian_blur(image, sigma, border=border, backend=backend)
    if not _needs_grad(image):  # the same sums in blurred's memory: 3 passes over it, not 6 over new tensors
        detail = torch.sub(image, blurred, out=blurred)
        if threshold > 0:
            detail.masked_fill_(detail.abs() <= threshold, 0)
        return torch.add(image, detail, alpha=amount, out=detail).clamp_(0, 1)
    detail = image - blurred
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
