"""Image files in and out, always written atomically (a temp file, then a rename).

`read_image`/`write_image`: uint8 `(C, H, W)` at the boundary, the reader of datasets and predictions.
`read_float`/`write_float`: float `(C, H, W)` in [0, 1] at 8 or 16 bits, the same depth out as in (imgproc CLI).

Both readers share one decoding core, `_decode`, which reads images as their owners see them:

- EXIF orientation is applied (all 8 values), so phone photos come upright.
- 16-bit files keep their depth: greyscale through Pillow (I;16, I;16B, and I, clipped to
  [0, 65535]), colour PNG and RGB TIFF through OpenCV (Pillow would decode them as 8 bits).
  `read_float` gives v / 65535 at 16 bits; `read_image` rounds them to 8 bits as round(v / 257).
- Transparency (RGBA, LA, P or L/RGB with a transparent colour, 16-bit RGBA) is composited over
  `background`, a grey level 0-255, white by default: out = rgb * a + bg * (1 - a) in float.
- Plain 8-bit files are Pillow's `Image.open(path).convert(mode)` unchanged, and colour to
  greyscale of 8-bit images stays Pillow's `convert("L")` (ITU-R 601-2 luma); 16-bit colour to
  greyscale uses the same weights in float.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from zrenie.config import atomic_path
from zrenie.errors import ConfigError, DataError

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_GREY_MODES = ("L", "LA", "La", "1")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's convert("L")
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_ORIENT_ARRAY = {  # the same moves on an (H, W, C) array: 6 turns 90 degrees clockwise, 8 counter-clockwise
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1], 8: lambda a: np.rot90(a, 1),
}


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


# The grey level transparent pixels are composited over (white, as image viewers show them); `data.background`.
DEFAULT_BACKGROUND = 255


def read_image(path: str | Path, channels: int | None = 3, background: int = DEFAULT_BACKGROUND) -> Tensor:
    """Reads an image file as uint8 `(C, H, W)`, upright, with transparency composited.

    Args:
        path: any format Pillow reads; 16-bit colour PNG and TIFF through OpenCV.
        channels: 1 (grayscale), 3 (RGB), or None to keep the file's own (gray -> 1, else RGB).
        background: the grey level (0-255) that transparent pixels are composited over.

    Returns:
        Tensor[C, H, W] uint8; 16-bit files are rounded to 8 bits as round(v / 257).
    """
    array, bits = _decode(Path(path), channels, background)
    if bits == 16:
        array = np.clip(np.round(array / 257), 0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def read_float(path: str | Path, background: int = DEFAULT_BACKGROUND) -> tuple[Tensor, int]:
    """Reads an image file as float `Tensor[C, H, W]` in [0, 1] (C = 1 or 3) and its bit depth (8 or 16).

    Args:
        path: any format Pillow reads; 16-bit colour PNG and TIFF through OpenCV.
        background: the grey level (0-255) that transparent pixels are composited over.

    Returns:
        The image, upright, with the file's own channels (gray -> 1, else RGB): v / 255 at 8 bits,
        v / 65535 at 16; and the bit depth, which writing the result back keeps.
    """
    array, bits = _decode(Path(path), None, background)
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    if bits == 16:
        return (tensor / 65535).clamp_(0, 1), 16
    return tensor.float() / 255, 8


def _decode(path: Path, channels: int | None, background: int) -> tuple[np.ndarray, int]:
    """The decoding core of both readers: `(H, W, C)` pixels, C = 1 or 3, and their bit depth.

    Args:
        path: the image file.
        channels: 1, 3, or None for the file's own (gray -> 1, else RGB).
        background: grey level 0-255 under transparent pixels.

    Returns:
        uint8 pixels at 8 bits; float32 on the 0-65535 scale at 16 (not rounded where composited).

    Raises:
        DataError: a missing or unreadable file, or one over the pixel limit (ZRENIE_MAX_IMAGE_PIXELS).
    """
    if isinstance(background, bool) or not isinstance(background, (int, np.integer)) or not 0 <= background <= 255:
        raise ConfigError(f"background={background!r}: expected a grey level, a whole number from 0 to 255")
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    channels = channels if channels in (1, 3) else None
    try:
        with _pixel_limit(), Image.open(path) as im:
            if _is_deep_colour(path, im):
                return _decode_deep_colour(path, im, channels, float(background) * 257), 16
            im.load()
            im = _oriented(im)
            if im.mode in _SIXTEEN_BIT_MODES:
                return _decode_deep_grey(im, channels, float(background) * 257), 16
            return _decode_8bit(im, channels, background), 8
    except Image.DecompressionBombError:
        raise DataError(f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, refused as a possible "
                        f"decompression bomb; if you trust it, raise the limit with {PIXEL_LIMIT_ENV}=N") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"not a readable image: {path} ({type(err).__name__})") from None


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation, 1-8; 1 (as stored) without one, or when the EXIF block is damaged."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except (SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error):
        return 1  # a broken EXIF block does not make the pixels unreadable
    return int(value) if isinstance(value, (int, float)) and value in range(1, 9) else 1


def _oriented(im: Image.Image) -> Image.Image:
    """The image turned upright by its EXIF orientation (itself when there is nothing to turn)."""
    orientation = _orientation(im)
    if orientation == 1:
        return im
    try:
        return ImageOps.exif_transpose(im)
    except (TypeError, ValueError, KeyError, struct.error):  # Pillow failed to rewrite the EXIF block
        return im.transpose(_TRANSPOSE[orientation])


def _over(colour: np.ndarray, alpha: np.ndarray, background: float) -> np.ndarray:
    """`colour * alpha + background * (1 - alpha)` in float32; alpha in [0, 1], shaped (H, W, 1)."""
    return colour.astype(np.float32) * alpha + np.float32(background) * (1 - alpha)


def _decode_8bit(im: Image.Image, channels: int | None, background: int) -> np.ndarray:
    """An 8-bit image as uint8 `(H, W, C)`: composited when transparent, then Pillow's convert(mode)."""
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        grey = im.mode in _GREY_MODES
        pixels = np.asarray(im.convert("LA" if grey else "RGBA"))
        flat = _over(pixels[..., :-1], pixels[..., -1:].astype(np.float32) / 255, background)
        flat = np.round(flat).astype(np.uint8)
        im = Image.fromarray(flat[..., 0] if grey else flat)
    mode = {1: "L", 3: "RGB"}.get(channels or 0) or ("L" if im.mode in ("L", "1") else "RGB")
    array = np.array(im.convert(mode))
    return array[:, :, None] if array.ndim == 2 else array


def _decode_deep_grey(im: Image.Image, channels: int | None, background: float) -> np.ndarray:
    """A 16-bit greyscale image (Pillow's I;16 modes, or I clipped to [0, 65535]) as float32 `(H, W, C)`."""
    raw = np.asarray(im)
    grey = np.clip(raw, 0, 65535).astype(np.float32)[..., None]
    key = im.info.get("transparency")
    if isinstance(key, int):  # a PNG's tRNS: one grey value stands for transparent
        grey = _over(grey, (raw != key).astype(np.float32)[..., None], background)
    return _deep_channels(grey, channels)


def _decode_deep_colour(path: Path, im: Image.Image, channels: int | None, background: float) -> np.ndarray:
    """A 16-bit colour PNG or TIFF through OpenCV, upright and composited, as float32 `(H, W, C)`."""
    import cv2  # imported on use: importing OpenCV costs a noticeable fraction of a second

    try:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # BGR(A), EXIF orientation not applied
    except cv2.error:
        pixels = None
    if pixels is None or pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise DataError(f"not a readable image: {path} (16-bit colour that OpenCV could not decode)")
    orientation = _orientation(im)
    if orientation != 1:
        pixels = _ORIENT_ARRAY[orientation](pixels)
    colour = pixels[..., 2::-1].astype(np.float32)
    if pixels.shape[2] == 4:
        colour = _over(colour, pixels[..., 3:].astype(np.float32) / 65535, background)
    header = _png_header(path)
    if header is not None and header[1] == 4:  # greyscale with alpha, which OpenCV spreads to BGRA
        colour = colour[..., :1]
    return _deep_channels(colour, channels)


def _deep_channels(array: np.ndarray, channels: int | None) -> np.ndarray:
    """Float `(H, W, 1 or 3)` to the channels asked for: grey repeated, or colour weighted by ITU-R 601-2."""
    if channels == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if channels == 1 and array.shape[2] == 3:
        return np.clip(array @ _LUMA, 0, 65535)[..., None]
    return array


def _is_deep_colour(path: Path, im: Image.Image) -> bool:
    """Whether the file holds 16-bit colour that Pillow would decode as 8 bits: a PNG, or a TIFF in RGB."""
    if im.format == "PNG":
        header = _png_header(path)
        return header is not None and header[0] == 16 and header[1] in (2, 4, 6)
    if im.format == "TIFF":
        tags = im.tag_v2
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return 16 in bits and tags.get(262) == 2 and tags.get(277, 1) >= 3
    return False


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
