"""Real photos for the reference comparisons, and numpy <-> tensor helpers."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

from zrenie.data.builtin.photos import load_photo

PHOTOS = ("astronaut", "coffee", "chelsea", "china", "flower")


@functools.lru_cache(maxsize=None)
def photo_uint8(name: str) -> np.ndarray:
    """(H, W, 3) uint8, exactly the bytes the package ships."""
    return (load_photo(name).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@functools.lru_cache(maxsize=None)
def small_uint8(name: str, size: int = 128) -> np.ndarray:
    """A (size, size, 3) uint8 centre crop of the photo shrunk by area averaging to 1/3 of its height."""
    full = photo_uint8(name)
    scale = max(size / min(full.shape[:2]), 1 / 3)
    shrunk = cv2.resize(full, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    top, left = (shrunk.shape[0] - size) // 2, (shrunk.shape[1] - size) // 2
    return np.ascontiguousarray(shrunk[top:top + size, left:left + size])


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (H, W) uint8/float -> float (C, H, W) in [0, 1]."""
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor.float() / 255 if array.dtype == np.uint8 else tensor.float()


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W, C) float32 numpy, or (H, W) for one channel."""
    array = tensor.detach().permute(1, 2, 0).numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array
