"""The OpenCV paths of the per-pixel ops (colour conversions, adjustments) on (B, C, H, W) tensors.

OpenCV reads interleaved (H, W, C) pixels; a tensor holds (C, H, W) planes. Transposing whole
images costs two strided copies (~15 ms each on a 1080p frame, 10x a conversion), so the loops
here work on blocks of rows: a block is interleaved by cv2.merge, converted and split back into the
output planes while it is in cache, or, for linear maps, computed from the planes directly. Every
buffer is allocated once per call, by numpy (which maps large arrays on transparent huge pages:
first writes of a 50 MB output took 25 ms with torch.empty, 6 ms with numpy.empty).

What a planar float32 frame still costs over OpenCV on (H, W, 3) pixels (1080p, one thread): the
range check ~0.8 ms (one aminmax), and cv2.merge plus cv2.split ~2 ms, where cvtColor itself takes
1-2 ms (benchmarks/README.md). Elementwise ops (`dense_flat`) have no such cost in any layout.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from zrenie.imgproc._backend import cv2_module

# Pixels per block: a block and its intermediates (~6 MB) stay in cache, and smaller blocks cost
# more in Python calls than they save (1080p, one thread: rgb_to_hsv 9.4 ms with 2^14 pixels, 6.7
# with 2^16 or 2^17; rgb_to_ycbcr 6.3, 4.9 and 4.7 ms).
BLOCK_PIXELS = 1 << 17
CV_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # cvtColor has no float64 path


def cv_ok(image: Tensor) -> bool:
    """Whether the OpenCV paths here take `image`'s dtype (float64 runs the PyTorch code)."""
    return image.dtype in CV_DTYPES


def dense_flat(image: Tensor) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """For an elementwise op: the input's memory and a new output's, as 1-D float32 arrays, and the output.

    The output tensor has the input's shape and strides (NCHW or channels_last stay as they are, as
    torch's elementwise ops keep them), so no layout changes: `result[i]` is `flat_out[j]` where
    `image[i]` is `flat_in[j]`. Half and bfloat16 inputs are read as float32; the output is float32.
    """
    source = image.detach().float()
    if not (source.is_contiguous() or (source.dim() == 4 and source.is_contiguous(memory_format=torch.channels_last))):
        source = source.contiguous()
    flat_in = source.as_strided((source.numel(),), (1,)).numpy()
    flat_out = np.empty(source.numel(), np.float32)
    return flat_in, flat_out, torch.from_numpy(flat_out).as_strided(source.shape, source.stride())


def interleaved(image: Tensor) -> np.ndarray | None:
    """The (B, H, W, C) numpy view of a float32 channels_last Tensor[B, C, H, W] (C > 1), else None.

    Such a tensor (e.g. `torch.from_numpy(hwc).permute(2, 0, 1)` of an image OpenCV or Pillow
    loaded) already holds OpenCV's pixel layout, so OpenCV can read it without a copy.
    """
    if image.dtype != torch.float32 or image.shape[1] == 1 or image.is_contiguous() or not image.is_contiguous(
            memory_format=torch.channels_last):
        return None
    return image.detach().permute(0, 2, 3, 1).numpy()


Run = Callable[["list[np.ndarray] | None", np.ndarray, "np.ndarray | None"], None]


def opencv_planes(image: Tensor, out_channels: int, run: Run) -> Tensor:
    """Runs OpenCV code on Tensor[B, C, H, W] block by block of rows, so every pass stays in cache.

    Args:
        image: Tensor[B, C, H, W] on the CPU, NCHW or channels_last; half and bfloat16 run in float32.
        out_channels: the channels of the result.
        run: `run(planes, out, pixels)` on each block, with the (out_channels, rows, W) output view
            to fill: for an NCHW image `planes` holds the C input planes, each a float32 (rows, W)
            array, and `pixels` is None; for a channels_last one (C > 1) `planes` is None and
            `pixels` the (rows, W, C) input pixels, read in place (`split` makes planes of them).

    Returns:
        Tensor[B, out_channels, H, W] of the input's dtype, NCHW-contiguous.
    """
    source = image.detach().float()
    batch, channels, height, width = source.shape
    planes_out = np.empty((batch, out_channels, height, width), np.float32)
    pixels = interleaved(source)
    planes = source.contiguous().numpy() if pixels is None else None
    rows = max(1, BLOCK_PIXELS // width)
    for index in range(batch):
        for top in range(0, height, rows):
            band = slice(top, top + rows)
            if pixels is not None:
                run(None, planes_out[index, :, band], pixels[index, band])
            else:
                run([planes[index, c, band] for c in range(channels)], planes_out[index, :, band], None)
    out = torch.from_numpy(planes_out)
    return out if image.dtype == torch.float32 else out.to(image.dtype)


def split(pixels: np.ndarray, out: np.ndarray | None = None) -> list[np.ndarray]:
    """The planes of (rows, W, C) float32 pixels, written into the (C, rows, W) array `out` when given."""
    targets = None if out is None else list(out)
    parts = cv2_module().split(pixels, targets)
    for part, plane in zip(parts, targets or []):
        if not np.may_share_memory(part, plane):  # split writes in place; copy if it did not
            plane[...] = part
    return list(parts) if targets is None else targets


def opencv_pixels(image: Tensor, convert: Callable[[np.ndarray, np.ndarray], np.ndarray], out_channels: int = 3,
                  scale: tuple[float, ...] | None = None,
                  finish: Callable[[np.ndarray, list[np.ndarray]], None] | None = None) -> Tensor:
    """A per-pixel OpenCV conversion of Tensor[B, C, H, W] on interleaved (rows, W, C) blocks.

    Each block of rows is interleaved by cv2.merge into one reused buffer (a channels_last image's
    pixels are copied there as they are), converted, and split by cv2.split straight into the output
    planes while it is in cache.

    Args:
        image: Tensor[B, C, H, W] on the CPU.
        convert: `convert(block, buffer)` on one float32 block, (rows, W, C) or (rows, W) when C = 1,
            which it may overwrite when C > 1 (it is a buffer then); returns (rows, W, out_channels), or (rows, W) when out_channels
            = 1, preferably written into `buffer` (a reused array of that shape).
        out_channels: the channels of the result.
        scale: factors for the C input channels before `convert` (e.g. hue turns to degrees), or None.
        finish: `finish(out, planes)` fixes the block's output planes in place, given as an
            (out_channels, rows, W) array; `planes()` returns the block's input planes.
    """
    cv2 = cv2_module()
    rows = max(1, BLOCK_PIXELS // max(1, image.shape[-1]))
    buffers: dict[int, np.ndarray] = {}

    def buffer(channels: int, shape: tuple[int, ...], slot: int) -> np.ndarray:
        if slot not in buffers:  # (rows, W, C) once per call; a shorter last block uses its first rows
            buffers[slot] = np.empty((rows, shape[1], channels) if channels > 1 else (rows, shape[1]), np.float32)
        return buffers[slot][:shape[0]]

    def run(planes: list[np.ndarray] | None, out: np.ndarray, pixels: np.ndarray | None) -> None:
        if pixels is not None:
            block = buffer(pixels.shape[2], pixels.shape, 0)
            if scale is None:
                np.copyto(block, pixels)
            else:  # one pass that reads the pixels in place and scales them into the buffer
                cv2.transform(pixels, np.diag(scale), dst=block)
        else:
            ready = planes if scale is None else [
                plane if factor == 1 else scale_add(plane, factor, 0) for plane, factor in zip(planes, scale)]
            block = ready[0] if len(ready) == 1 else cv2.merge(ready, buffer(len(ready), ready[0].shape, 0))
        result = convert(block, buffer(out_channels, block.shape, 1))
        if out_channels == 1:
            out[0] = result.reshape(out.shape[1:])
        else:
            split(result, out)
        if finish is not None:
            finish(out, lambda: split(pixels) if planes is None else planes)

    return opencv_planes(image, out_channels, run)


def affine(image: Tensor, matrix: Tensor | np.ndarray, offset: Tensor | np.ndarray | None = None,
           clip: tuple[bool, bool] = (False, False)) -> Tensor:
    """`out[o] = sum_c matrix[o][c] * image[c] + offset[o]` on the planes, optionally clipped to [0, 1].

    A linear map needs no interleaving: two OpenCV calls per output plane (cv2.addWeighted of the
    first two channels plus the offset, cv2.scaleAdd per further channel) on blocks in cache, 20%
    faster than cv2.merge, cv2.transform and cv2.split (1080p RGB -> YCbCr: 3.0 ms against 3.7 ms).
    A channels_last image goes through cv2.transform, which reads its pixels in place.

    Args:
        image: Tensor[B, C, H, W] on the CPU, C >= 2.
        matrix: (O, C) weights.
        offset: (O,) offsets, or None for none.
        clip: (below, above): clip the result at 0 and at 1 (cv2.threshold, in place).
    """
    cv2 = cv2_module()
    weights = np.asarray(matrix, dtype=np.float64)
    shifts = np.zeros(weights.shape[0]) if offset is None else np.asarray(offset, dtype=np.float64)
    transform = np.concatenate((weights, shifts[:, None]), 1)
    buffers: list[np.ndarray] = []

    def run(planes: list[np.ndarray] | None, out: np.ndarray, pixels: np.ndarray | None) -> None:
        if pixels is not None:  # channels_last: cv2.transform reads the pixels as they lie
            if not buffers:
                buffers.append(np.empty((pixels.shape[0], pixels.shape[1], len(weights)), np.float32))
            split(cv2.transform(pixels, transform, dst=buffers[0][:pixels.shape[0]]), out)
        for row, shift, plane in zip(weights, shifts, out):
            if pixels is None:
                cv2.addWeighted(planes[0], float(row[0]), planes[1], float(row[1]), float(shift), dst=plane)
                for weight, source in zip(row[2:], planes[2:]):
                    cv2.scaleAdd(source, float(weight), plane, dst=plane)
            if clip[0]:
                cv2.threshold(plane, 0, 0, cv2.THRESH_TOZERO, dst=plane)
            if clip[1]:
                cv2.threshold(plane, 1, 1, cv2.THRESH_TRUNC, dst=plane)

    return opencv_planes(image, weights.shape[0], run)


def where_above(x: np.ndarray, threshold: float, above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """`np.where(x > threshold, above, below)` on 2-D float32 arrays, written into `below`; 3x faster."""
    cv2 = cv2_module()
    return cv2.copyTo(above, cv2.compare(x, threshold, cv2.CMP_GT), below)


def flat(block: np.ndarray) -> np.ndarray:
    """A (rows, W * C) view: OpenCV applies a scalar to every element of a one-channel array only."""
    return block.reshape(block.shape[0], -1)


def scale_add(x: np.ndarray, scale: float, shift: float, dst: np.ndarray | None = None) -> np.ndarray:
    """`x * scale + shift` of a 2-D float32 array in one pass (cv2.multiply by a scalar is 4x slower)."""
    return cv2_module().addWeighted(x, scale, x, 0, shift, dst=dst)


def power(x: np.ndarray, exponent: float, dst: np.ndarray | None = None) -> np.ndarray:
    """`x ** exponent` of float32 `x >= 0` (0 ** p = 0 for p > 0), as exp(exponent * log(x)).

    cv2.log and cv2.exp are vectorised; together they take 0.4x the time of cv2.pow, which runs a
    scalar loop for a non-integer exponent (65 us against 170 us on 2^16 x 3 values), and agree with
    float64's power to 1.2e-7 on [0, 1] as cv2.pow does (1.1e-7). Not for exponent 0 (-inf * 0).
    """
    cv2 = cv2_module()
    out = cv2.log(x, dst=dst)
    np.multiply(out, np.float32(exponent), out=out)  # not addWeighted: log(0) = -inf, and -inf * 0 is NaN
    return cv2.exp(out, dst=out)


def decode_srgb(block: np.ndarray) -> np.ndarray:
    """The sRGB curve's inverse (linear light) of a float32 block, as `_decode_srgb` computes it."""
    values = flat(block)
    curve = np.maximum(values, np.float32(0.04045))
    power(scale_add(curve, 1 / 1.055, 0.055 / 1.055, dst=curve), 2.4, dst=curve)
    return where_above(values, 0.04045, curve, scale_add(values, 1 / 12.92, 0)).reshape(block.shape)


def encode_srgb(block: np.ndarray) -> np.ndarray:
    """The sRGB curve of linear light in a float32 block, as `_encode_srgb` computes it."""
    values = flat(block)
    curve = power(np.maximum(values, np.float32(0.0031308)), 1 / 2.4)
    scale_add(curve, 1.055, -0.055, dst=curve)
    return where_above(values, 0.0031308, curve, scale_add(values, 12.92, 0)).reshape(block.shape)
