"""Input validation shared by every imgproc op: one place that turns a bad tensor into a one-line error."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import torch
from torch import Tensor

from zrenie.errors import ShapeError

F = TypeVar("F", bound=Callable[..., Tensor])


# How far outside [0, 1] a value may lie and still count as in range: float error of an earlier op
# (lab_to_rgb's 1.0000001), never a real value out of range.
RANGE_TOLERANCE = 1e-5


def memory_view(image: Tensor) -> Tensor:
    """The values of `image` as a 1-D view of its memory when it is dense (any dimension order), else `image`.

    For reductions whose result does not depend on the order: torch.aminmax over a channels_last
    tensor took 36 ms where the same memory as one row took 2.2 ms (64x3x256x256, one thread).
    """
    tensor = image.detach()
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(tensor.shape, tensor.stride()) if sz != 1):
        if stride != expected:
            return tensor
        expected *= size
    return tensor.as_strided((tensor.numel(),), (1,))


def check_image(image: Tensor, channels: int | tuple[int, ...] | None = None, name: str = "image",
                min_size: int | tuple[int, int] = 1, unit_range: bool = False) -> tuple[float, float] | None:
    """Raises ShapeError unless `image` is a finite float `(C, H, W)` or `(B, C, H, W)` tensor.

    The range policy of every op: an op whose meaning depends on [0, 1] (colour spaces, adjustments,
    histograms, thresholds) passes `unit_range=True` and refuses values outside it in one line, naming
    the range found; an op that is linear or an order statistic (filters, morphology) is defined for
    any finite value and accepts it, as OpenCV's float paths do.

    Args:
        image: the tensor to check.
        channels: the allowed channel count(s), or None for any.
        name: how the error message calls the tensor.
        min_size: the smallest allowed (H, W), e.g. the kernel size of a filter.
        unit_range: also require values in [0, 1] (within `RANGE_TOLERANCE`).

    Returns:
        With `unit_range`, the (lowest, highest) value found (the one pass that checks the range also
        finds them; ops skip a clamp they show to be a no-op), or (0.0, 0.0) for an empty tensor;
        else None.
    """
    allowed = (channels,) if isinstance(channels, int) else channels
    c_text = "C" if allowed is None else "|".join(str(c) for c in allowed)
    expected = f"(B, {c_text}, H, W) or ({c_text}, H, W)"
    if not isinstance(image, Tensor):
        raise ShapeError(f"{name}: expected a tensor {expected}, got {type(image).__name__}")
    if image.dim() not in (3, 4):
        raise ShapeError(f"{name}: expected {expected}, got shape {tuple(image.shape)}")
    if allowed is not None and image.shape[-3] not in allowed:
        raise ShapeError(f"{name}: expected {expected}, got {image.shape[-3]} channels in shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ShapeError(f"{name}: expected a float tensor in [0, 1] of shape {expected}, got dtype {image.dtype}"
                         " (convert uint8 with image.float() / 255)")
    min_h, min_w = (min_size, min_size) if isinstance(min_size, int) else min_size
    if image.shape[-2] < min_h or image.shape[-1] < min_w:
        raise ShapeError(f"{name}: expected at least {min_h}x{min_w} pixels (the kernel size), "
                         f"got shape {tuple(image.shape)}")
    if unit_range:
        if not image.numel():
            return 0.0, 0.0
        # One pass, and a NaN propagates into both results: torch.aminmax takes 0.8-0.9 ms on a float32
        # 1080p RGB frame (one thread), isfinite().all() plus min() and max() 16 ms.
        low, high = (float(v) for v in torch.aminmax(memory_view(image)))
        if low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE:
            return low, high
        if low == low and high == high and abs(low) != float("inf") and abs(high) != float("inf"):
            raise ShapeError(f"{name}: expected values in [0, 1], found {low:.4g} to {high:.4g} (clamp with "
                             f".clamp(0, 1); scale uint8 with .float() / 255)")
    if image.numel() and not bool(torch.isfinite(memory_view(image).sum())):
        # One reduction instead of an elementwise pass; a NaN or an inf always makes the sum
        # non-finite. Confirm element-wise, because huge finite values could overflow the sum.
        if not bool(torch.isfinite(image.detach()).all()):
            raise ShapeError(f"{name}: contains NaN or infinite values (shape {tuple(image.shape)})")
    return None


def batched(fn: F) -> F:
    """Lets an op written for `(B, C, H, W)` also take `(C, H, W)`; the output keeps the input's rank."""

    @functools.wraps(fn)
    def wrapper(image: Tensor, *args, **kwargs) -> Tensor:
        if isinstance(image, Tensor) and image.dim() == 3:
            batch = image.unsqueeze(0)
            try:
                return fn(batch, *args, **kwargs).squeeze(0)
            except ShapeError as err:  # name the shape the caller passed, not the batched one
                raise ShapeError(str(err).replace(str(tuple(batch.shape)), str(tuple(image.shape)))) from None
        return fn(image, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_kernel_size(kernel_size: int | tuple[int, int], name: str = "kernel_size",
                      odd: bool = True) -> tuple[int, int]:
    """Returns `(kh, kw)`; raises ShapeError for non-positive or (when `odd`) even sizes."""
    ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(ks) != 2 or not all(isinstance(k, int) and k > 0 for k in ks):
        raise ShapeError(f"{name}: expected a positive int or (kh, kw), got {kernel_size!r}")
    if odd and not all(k % 2 == 1 for k in ks):
        raise ShapeError(f"{name}: expected odd sizes so the kernel has a centre, got {kernel_size!r}")
    return ks  # type: ignore[return-value]
