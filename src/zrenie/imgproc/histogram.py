"""Histogram ops on 256 levels: histogram equalisation, CLAHE, and k-means colour quantisation.

Equalisation and CLAHE quantise the float image to 256 levels, as the 8-bit OpenCV functions
they reproduce do; they are not differentiable (the histogram is a step function of the input).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.imgproc._checks import batched, check_image
from zrenie.imgproc._module import OpModule
from zrenie.imgproc.color import rgb_to_ycbcr, ycbcr_to_rgb

LEVELS = 256


def _levels(planes: Tensor) -> Tensor:
    """Float Tensor[P, H, W] in [0, 1] -> long levels 0..255."""
    return (planes.clamp(0, 1) * (LEVELS - 1)).round().long()


def image_histogram(image: Tensor, bins: int = LEVELS) -> Tensor:
    """Counts per channel over `bins` equal bins of [0, 1].

    Args:
        image: Tensor[B, C, H, W] or Tensor[C, H, W] in [0, 1].
        bins: the number of bins.

    Returns:
        Tensor[B, C, bins] (or Tensor[C, bins]) of counts.
    """
    check_image(image)
    planes = image.detach().reshape(-1, image.shape[-2] * image.shape[-1])
    index = (planes.clamp(0, 1) * bins).long().clamp_max(bins - 1)
    offsets = torch.arange(planes.shape[0], device=image.device).unsqueeze(1) * bins
    counts = torch.bincount((index + offsets).flatten(), minlength=planes.shape[0] * bins)
    return counts.view(*image.shape[:-2], bins)


def _equalize_planes(planes: Tensor) -> Tensor:
    """OpenCV's equalizeHist on each of Tensor[P, H, W]: lut = round(255 (cdf - cdf_min) / (N - cdf_min))."""
    levels = _levels(planes).flatten(1)  # (P, N)
    count, total = planes.shape[0], levels.shape[1]
    offsets = torch.arange(count, device=planes.device).unsqueeze(1) * LEVELS
    hist = torch.bincount((levels + offsets).flatten(), minlength=count * LEVELS).view(count, LEVELS)
    cdf = hist.cumsum(1)
    first = (hist > 0).long().argmax(1, keepdim=True)  # the darkest level present
    cdf_min = hist.gather(1, first)
    scale = (LEVELS - 1) / (total - cdf_min).clamp_min(1).double()
    lut = ((cdf - cdf_min).double() * scale).round().clamp(0, LEVELS - 1)
    # A flat plane keeps its level, as OpenCV does, instead of a 0/0 lookup table.
    lut = torch.where(cdf_min == total, first.double().expand(-1, LEVELS), lut)
    return (lut.gather(1, levels).float() / (LEVELS - 1)).to(planes.dtype).view_as(planes)


def _per_plane(image: Tensor, mode: str, fn) -> Tensor:
    """Applies `fn` (Tensor[P, H, W] -> same) to every channel, or to the luma of an RGB image."""
    batch, channels, height, width = image.shape
    if mode == "channel" or channels == 1:
        return fn(image.reshape(-1, height, width)).view_as(image)
    if mode != "luminance":
        raise ShapeError(f"mode: expected 'channel' or 'luminance', got {mode!r}")
    if channels != 3:
        raise ShapeError(f"mode='luminance' needs (B, 3, H, W), got {channels} channels")
    ycbcr = rgb_to_ycbcr(image)  # (B, 3, H, W)
    luma = fn(ycbcr[:, 0]).unsqueeze(1)
    return ycbcr_to_rgb(torch.cat((luma, ycbcr[:, 1:]), 1)).clamp(0, 1)


@batched
def equalize_hist(image: Tensor, mode: str = "channel") -> Tensor:
    """Histogram equalisation as OpenCV's equalizeHist, on 256 levels.

    Args:
        image: Tensor[B, C, H, W] in [0, 1].
        mode: "channel" equalises every channel on its own (colours shift); "luminance" equalises
            the BT.601 luma Y of an RGB image and keeps its chroma (OpenCV's usual YCrCb recipe).

    Returns:
        Tensor[B, C, H, W] in [0, 1], on multiples of 1/255.
    """
    check_image(image)
    return _per_plane(image, mode, _equalize_planes)


def _clip_histograms(hist: Tensor, limit: int) -> Tensor:
    """OpenCV's CLAHE clipping of Tensor[T, 256]: cut at `limit`, spread the excess evenly, the rest in steps."""
    excess = (hist - limit).clamp_min(0).sum(1, keepdim=True)  # (T, 1)
    hist = hist.clamp_max(limit) + excess // LEVELS
    residual = excess % LEVELS
    step = (LEVELS // residual.clamp_min(1)).clamp_min(1)
    bins = torch.arange(LEVELS, device=hist.device)
    return hist + ((bins % step == 0) & (bins // step < residual)).long()


def _interpolation(size: int, tile: int, tiles: int, device) -> tuple[Tensor, Tensor, Tensor]:
    """For each pixel along one axis: the two nearest tile centres and the weight of the second."""
    position = torch.arange(size, device=device, dtype=torch.float32) / tile - 0.5
    first = position.floor()
    weight = position - first
    first = first.long()
    return first.clamp(0, tiles - 1), (first + 1).clamp(max=tiles - 1), weight


def _clahe_planes(planes: Tensor, clip_limit: float, grid: tuple[int, int]) -> Tensor:
    """OpenCV's CLAHE on each of Tensor[P, H, W] (imgproc/src/clahe.cpp, 8-bit path)."""
    count, height, width = planes.shape
    gy, gx = grid
    levels = _levels(planes)
    if height % gy or width % gx:
        # OpenCV pads both axes (even a divisible one, by a whole tile) with BORDER_REFLECT_101.
        levels = F.pad(levels.unsqueeze(1).float(), (0, gx - width % gx, 0, gy - height % gy), mode="reflect")
        levels = levels.squeeze(1).long()
    tile_h, tile_w = levels.shape[1] // gy, levels.shape[2] // gx
    tiled = levels[:, :gy * tile_h, :gx * tile_w].reshape(count, gy, tile_h, gx, tile_w).transpose(2, 3)
    tile_index = torch.arange(count * gy * gx, device=planes.device).view(count, gy, gx, 1, 1) * LEVELS
    hist = torch.bincount((tiled + tile_index).flatten(), minlength=count * gy * gx * LEVELS).view(-1, LEVELS)
    area = tile_h * tile_w
    if clip_limit > 0:
        hist = _clip_histograms(hist, max(int(clip_limit * area / LEVELS), 1))
    # float32 scale and product, as OpenCV's `sum * lutScale`: in float64 some entries round the
    # other way (e.g. coffee, 8x8 grid: 0.07% of pixels off by 1).
    scale = torch.tensor((LEVELS - 1) / area, dtype=torch.float32)
    lut = (hist.cumsum(1).float() * scale).round().clamp(0, LEVELS - 1)  # (P gy gx, 256)
    y1, y2, wy = _interpolation(height, tile_h, gy, planes.device)
    x1, x2, wx = _interpolation(width, tile_w, gx, planes.device)
    value = levels[:, :height, :width]
    base = torch.arange(count, device=planes.device).view(-1, 1, 1) * (gy * gx)

    def lookup(ty: Tensor, tx: Tensor) -> Tensor:  # (P, H, W) values of the LUT of tile (ty, tx)
        tile = base + ty.view(1, -1, 1) * gx + tx.view(1, 1, -1)
        return lut.view(-1)[(tile * LEVELS + value).view(-1)].view(count, height, width)

    wx, wy = wx.view(1, 1, -1), wy.view(1, -1, 1)
    top = lookup(y1, x1) * (1 - wx) + lookup(y1, x2) * wx
    bottom = lookup(y2, x1) * (1 - wx) + lookup(y2, x2) * wx
    return ((top * (1 - wy) + bottom * wy) / (LEVELS - 1)).to(planes.dtype)


@batched
def clahe(image: Tensor, clip_limit: float = 40.0, grid: int | tuple[int, int] = 8, mode: str = "channel") -> Tensor:
    """Contrast-limited adaptive histogram equalisation (Zuiderveld 1994), as OpenCV's createCLAHE.

    Each tile of the grid gets its own equalisation curve, with the histogram clipped at
    `clip_limit` times the mean bin count; pixels blend the curves of the four nearest tile
    centres bilinearly. The output is not rounded to 8 bits: it differs from OpenCV's by < 1/255.

    Args:
        image: Tensor[B, C, H, W] in [0, 1].
        clip_limit: the clip height in multiples of the mean bin count (OpenCV's clipLimit); 0 = no clip.
        grid: tiles per axis, or (rows, columns) (OpenCV's tileGridSize is (columns, rows)).
        mode: "channel", or "luminance" to equalise only the luma of an RGB image.

    Returns:
        Tensor[B, C, H, W] in [0, 1].
    """
    gy, gx = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if gy < 1 or gx < 1:
        raise ShapeError(f"grid: expected positive tile counts, got {grid!r}")
    check_image(image, min_size=(gy, gx))
    return _per_plane(image, mode, lambda planes: _clahe_planes(planes, clip_limit, (gy, gx)))


def _kmeans_plus_plus(points: Tensor, colors: int, generator: torch.Generator) -> Tensor:
    """Greedy k-means++ seeding on Tensor[B, N, C] -> Tensor[B, colors, C].

    Each step draws 2 + ln(k) candidates with probability proportional to the squared distance
    and keeps the one that lowers the total distance most (scikit-learn's `_kmeans_plusplus`);
    a single draw per step, the original scheme, left coffee's palette 24% worse than KMeans.
    """
    batch, count, _ = points.shape
    rows = torch.arange(batch, device=points.device)
    first = torch.randint(count, (batch,), generator=generator, device=points.device)
    centres = [points[rows, first]]  # list of (B, C)
    nearest = ((points - centres[0].unsqueeze(1)) ** 2).sum(-1)  # (B, N)
    trials = 2 + int(math.log(colors))
    for _ in range(1, colors):
        weights = nearest + 1e-12  # all-equal points still give a valid distribution
        picks = torch.multinomial(weights, trials, replacement=True, generator=generator)  # (B, L)
        candidates = points[rows.unsqueeze(1), picks]  # (B, L, C)
        distances = torch.cdist(candidates, points) ** 2  # (B, L, N)
        updated = torch.minimum(nearest.unsqueeze(1), distances)
        best = updated.sum(-1).argmin(1)  # (B,)
        centres.append(candidates[rows, best])
        nearest = updated[rows, best]
    return torch.stack(centres, 1)


@batched
def quantize_colors(image: Tensor, colors: int = 8, iterations: int = 20, sample: int = 20000,
                    seed: int = 0) -> Tensor:
    """Reduces each image to a palette of `colors` colours found by k-means (Lloyd, k-means++ seeding).

    The palette is fitted on a random sample of pixels per image (as scikit-learn's colour
    quantisation example does), then every pixel takes its nearest palette colour.

    Args:
        image: Tensor[B, C, H, W] in [0, 1].
        colors: the palette size.
        iterations: Lloyd iterations.
        sample: pixels per image used to fit the palette.
        seed: seeds the sampling and the seeding, so the result is reproducible.

    Returns:
        Tensor[B, C, H, W] with at most `colors` distinct colours per image.
    """
    check_image(image)
    if colors < 1:
        raise ShapeError(f"colors: expected a positive palette size, got {colors}")
    batch, channels, height, width = image.shape
    pixels = image.detach().flatten(2).transpose(1, 2)  # (B, N, C)
    generator = torch.Generator(device=image.device).manual_seed(seed)
    if pixels.shape[1] > sample:
        pick = torch.randperm(pixels.shape[1], generator=generator, device=image.device)[:sample]
        fit = pixels[:, pick]
    else:
        fit = pixels
    centres = _kmeans_plus_plus(fit, min(colors, fit.shape[1]), generator)  # (B, K, C)
    for _ in range(iterations):
        assign = torch.cdist(fit, centres).argmin(-1)  # (B, S)
        sums = torch.zeros_like(centres).scatter_add_(1, assign.unsqueeze(-1).expand_as(fit), fit)
        counts = torch.zeros(centres.shape[:2], device=image.device).scatter_add_(
            1, assign, torch.ones_like(assign, dtype=torch.float32))
        updated = sums / counts.clamp_min(1).unsqueeze(-1).to(sums.dtype)
        centres = torch.where(counts.unsqueeze(-1) > 0, updated, centres)  # an empty cluster keeps its centre
    assign = torch.cdist(pixels, centres).argmin(-1)  # (B, N)
    quantized = centres.gather(1, assign.unsqueeze(-1).expand(-1, -1, channels))
    return quantized.transpose(1, 2).reshape(batch, channels, height, width).to(image.dtype)


# Module forms: each holds the op's non-image arguments, e.g. Clahe(clip_limit=2.0)(image).


class EqualizeHist(OpModule):
    op = staticmethod(equalize_hist)


class Clahe(OpModule):
    op = staticmethod(clahe)


class QuantizeColors(OpModule):
    op = staticmethod(quantize_colors)
