"""Image files in and out, always written atomically (a temp file, then a rename).

`read_image`/`write_image`: uint8 `(C, H, W)` at the boundary, the reader of datasets and predictions.
`read_float`/`write_float`: float `(C, H, W)` in [0, 1] at 8 or 16 bits, the same depth out as in (imgproc CLI).
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from zrenie.config import atomic_path
from zrenie.errors import DataError

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


PIXEL_LIMIT_ENV = "ZRENIE_MAX_IMAGE_PIXELS"


@contextlib.contextmanager
def _pixel_limit():
    """Pillow's decompression-bomb limit, from ZRENIE_MAX_IMAGE_PIXELS when set (restored after the read)."""
    value = os.environ.get(PIXEL_LIMIT_ENV)
    if not value:
        yield
        return
    if not value.isdigit():
        raise DataError(f"{PIXEL_LIMIT_ENV}={value!r}: expected a whole number of pixels")
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, int(value) // 2  # Pillow refuses above twice it
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


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
        with _pixel_limit(), Image.open(path) as im:
            im.load()
            mode = {1: "L", 3: "RGB"}.get(channels or 0) or ("L" if im.mode in ("L", "I;16", "I", "1") else "RGB")
            im = im.convert(mode)
            array = np.array(im)
    except Image.DecompressionBombError:
        raise DataError(f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, refused as a possible "
                        f"decompression bomb; if you trust it, raise the limit with {PIXEL_LIMIT_ENV}=N") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"not a readable image: {path} ({type(err).__name__})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def write_image(image: Tensor, path: str | Path) -> None:
    """Writes float `(C, H, W)` in [0, 1] (or uint8) atomically, with the permissions a plain open() gives."""
    path = Path(path)
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    array = image.cpu().permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    check_writable(path)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=Image.registered_extensions()[path.suffix.lower()])


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None for other files."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n":
        return head[24], head[25]
    return None


def read_float(path: str | Path) -> tuple[Tensor, int]:
    """Reads an image file as float `Tensor[C, H, W]` in [0, 1] (C = 1 or 3) and its bit depth (8 or 16)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    header = _png_header(path)
    if header is not None and header[0] == 16 and header[1] in (2, 6):
        # Pillow reads 16-bit RGB PNGs as 8-bit RGB; OpenCV keeps the 16 bits when it is installed.
        try:
            import cv2
        except ModuleNotFoundError:
            cv2 = None
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if cv2 is not None else None
        if array is not None and array.dtype == np.uint16:
            rgb = np.ascontiguousarray(array[:, :, 2::-1].transpose(2, 0, 1))
            return torch.from_numpy(rgb.astype(np.float32) / 65535), 16
    try:
        with Image.open(path) as im:
            if im.mode in _SIXTEEN_BIT_MODES:
                array = np.asarray(im).astype(np.float32)
                return torch.from_numpy(array / 65535).clamp_(0, 1).unsqueeze(0), 16
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"not a readable image: {path} ({type(err).__name__})") from None
    return read_image(path, channels=None).float() / 255, 8


def _png16_bytes(array: np.ndarray) -> bytes:
    """A PNG file holding uint16 (H, W, C), C = 1 or 3: filter type 0 on every row, zlib level 6."""
    height, width, channels = array.shape
    rows = np.zeros((height, 1 + width * channels * 2), dtype=np.uint8)  # a 0 filter byte per row
    rows[:, 1:] = np.ascontiguousarray(array, dtype=">u2").view(np.uint8).reshape(height, -1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, {1: 0, 3: 2}[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + \
        chunk(b"IEND", b"")


def check_writable(path: str | Path) -> None:
    """Raises DataError unless Pillow knows how to write the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in Image.registered_extensions():
        raise DataError(f"unknown image extension {suffix or '(none)'!r} for output {path}; use .png, .jpg, .tif, ...")


def write_float(image: Tensor, path: str | Path, bits: int = 8) -> None:
    """Writes float `Tensor[C, H, W]` (C = 1 or 3) atomically; 16 bits only to PNG, else 8."""
    path = Path(path)
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise DataError(f"cannot write {tuple(image.shape)} to {path}: an image file needs (1 or 3, H, W)")
    if bits != 16 or path.suffix.lower() != ".png":
        write_image(image, path)
        return
    array = (image.detach().float().clamp(0, 1) * 65535).round().cpu().numpy().astype(np.uint16).transpose(1, 2, 0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_png16_bytes(array))


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def find_images(path: str | Path, recursive: bool = False) -> list[Path]:
    """A file as itself; a folder as the image files in it (sorted; subfolders too with `recursive`).

    A missing path or a folder without images is a DataError naming it.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"image not found: {path}")
    files = path.rglob("*") if recursive else path.iterdir()
    found = sorted(p for p in files if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not found:
        hint = "" if recursive else " (use -r / recursive=True for subfolders)"
        raise DataError(f"no image files in {path}{hint}")
    return found
