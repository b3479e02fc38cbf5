"""Image files in and out: uint8 at the boundary, float (C, H, W) in [0, 1] inside."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from zrenie.errors import DataError


def read_image(path: str | Path, channels: int | None = 3) -> Tensor:
    """Reads an image file as uint8 `(C, H, W)`.

    Args:
        path: any format Pillow reads.
        channels: 1 (grayscale), 3 (RGB), or None to keep the file's own (gray -> 1, else RGB).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            mode = {1: "L", 3: "RGB"}.get(channels or 0) or ("L" if im.mode in ("L", "I;16", "I", "1") else "RGB")
            im = im.convert(mode)
            array = np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"not a readable image: {path} ({type(err).__name__})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def write_image(image: Tensor, path: str | Path) -> None:
    """Writes float `(C, H, W)` in [0, 1] (or uint8) atomically: a temp file, then a rename."""
    path = Path(path)
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    array = image.cpu().permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; an image is for everyone to open
        Image.fromarray(array).save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
