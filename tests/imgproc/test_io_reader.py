"""The image readers as users have their files: EXIF orientation, 16-bit depth, transparency, damage.

Every fixture is a few pixels written into tmp_path; references are Pillow's own
`ImageOps.exif_transpose`, numpy arithmetic on the arrays written, or values worked by hand.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from zrenie.data.base import FileDataset
from zrenie.errors import ConfigError, DataError
from zrenie.imgproc.io import read_float, read_image

# 2 x 3 RGB, every pixel different, so any flip or turn shows
RGB = np.array([[[10, 20, 30], [40, 50, 60], [70, 80, 90]],
                [[100, 110, 120], [130, 140, 150], [160, 170, 180]]], dtype=np.uint8)


def exif_with(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def with_exif_chunk(path: Path, orientation: int) -> None:
    """Adds an eXIf chunk right after IHDR of a PNG written by another tool (OpenCV writes none)."""
    data = path.read_bytes()
    tiff = exif_with(orientation).tobytes()
    tiff = tiff[6:] if tiff.startswith(b"Exif\x00\x00") else tiff
    path.write_bytes(data[:33] + png_chunk(b"eXIf", tiff) + data[33:])


def chw(array: np.ndarray) -> torch.Tensor:
    """Numpy (H, W) or (H, W, C) as the readers' (C, H, W)."""
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_every_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(RGB).save(path, exif=exif_with(orientation))
    with Image.open(path) as im:
        reference = np.array(ImageOps.exif_transpose(im).convert("RGB"))
    assert torch.equal(read_image(path), chw(reference))
    image, bits = read_float(path)
    assert bits == 8 and torch.equal(image, chw(reference).float() / 255)
    if orientation in (5, 6, 7, 8):
        assert reference.shape[:2] == (3, 2)


def test_orientation_6_turns_90_degrees_clockwise_worked_by_hand(tmp_path):
    path = tmp_path / "o6.png"
    Image.fromarray(RGB).save(path, exif=exif_with(6))
    # the left column, read bottom to top, becomes the top row
    by_hand = np.array([[[100, 110, 120], [10, 20, 30]],
                        [[130, 140, 150], [40, 50, 60]],
                        [[160, 170, 180], [70, 80, 90]]], dtype=np.uint8)
    assert torch.equal(read_image(path), chw(by_hand))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_exif_orientation_is_applied(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(np.repeat(np.repeat(RGB, 8, axis=0), 8, axis=1)).save(path, exif=exif_with(orientation),
                                                                           quality=95)
    with Image.open(path) as im:
        reference = np.array(ImageOps.exif_transpose(im).convert("RGB"))
    assert torch.equal(read_image(path), chw(reference))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_colour_orientation_through_opencv(tmp_path, orientation):
    rgb = (RGB.astype(np.uint16) * 257 + 3)
    path = tmp_path / f"c16_{orientation}.png"
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    with_exif_chunk(path, orientation)
    # the reference moves each channel as a Pillow I;16 image, turned by exif_transpose
    planes = []
    for c in range(3):
        plane = Image.fromarray(rgb[..., c])
        plane.info["exif"] = exif_with(orientation).tobytes()
        planes.append(np.array(ImageOps.exif_transpose(plane)))
    reference = np.stack(planes, axis=2)
    image, bits = read_float(path)
    assert bits == 16 and torch.equal(image, chw(reference.astype(np.float32) / 65535))


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1, 128, 129], [257, 385, 30000, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I;16")
    assert torch.equal(read_image(path, channels=None), chw(np.round(values / 257).astype(np.uint8)))
    assert read_image(path, channels=1)[0, 1].tolist() == [1, 1, 117, 255]  # 257 -> 1, 65535 -> 255
    image, bits = read_float(path)
    assert bits == 16 and torch.equal(image, chw(values.astype(np.float32) / 65535))
    assert torch.equal(read_image(path, channels=3), chw(np.round(values / 257).astype(np.uint8)).expand(3, -1, -1))


def test_16bit_grey_png_written_by_opencv(tmp_path):
    values = np.array([[65535, 514, 2]], dtype=np.uint16)
    path = tmp_path / "g16cv.png"
    assert cv2.imwrite(str(path), values)
    assert read_image(path, channels=None).tolist() == [[[255, 2, 0]]]
    assert torch.equal(read_float(path)[0], chw(values.astype(np.float32) / 65535))


def test_16bit_colour_png_keeps_its_depth_in_rgb_order(tmp_path):
    rgb = np.array([[[0, 257, 65535], [1000, 20000, 40000]],
                    [[65534, 128, 129], [300, 600, 900]]], dtype=np.uint16)
    path = tmp_path / "c16.png"
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    image, bits = read_float(path)
    assert bits == 16 and torch.equal(image, chw(rgb.astype(np.float32) / 65535))
    assert torch.equal(read_image(path), chw(np.round(rgb / 257).astype(np.uint8)))
    assert read_image(path)[:, 0, 0].tolist() == [0, 1, 255]
    grey = np.round(rgb.astype(np.float64) @ [0.299, 0.587, 0.114] / 257)
    assert (read_image(path, channels=1)[0].double() - torch.from_numpy(grey)).abs().max() == 0


def test_16bit_rgb_tiff_through_opencv(tmp_path):
    rgb = (np.arange(2 * 3 * 3).reshape(2, 3, 3) * 7001).astype(np.uint16)
    path = tmp_path / "c16.tif"
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    image, bits = read_float(path)
    assert bits == 16 and torch.equal(image, chw(rgb.astype(np.float32) / 65535))


def test_16bit_rgba_is_composited(tmp_path):
    rgba = np.array([[[65535, 0, 0, 0], [65535, 0, 0, 65535], [0, 0, 65535, 32768]]], dtype=np.uint16)
    path = tmp_path / "c16a.png"
    assert cv2.imwrite(str(path), rgba[..., [2, 1, 0, 3]])
    # white background: transparent -> white, opaque -> itself, half -> the mean of the two
    assert read_image(path).tolist() == [[[255, 255, 127]], [[255, 0, 127]], [[255, 0, 255]]]
    assert read_image(path, background=0).tolist() == [[[0, 255, 0]], [[0, 0, 0]], [[0, 0, 128]]]
    image, bits = read_float(path, background=0)
    assert bits == 16 and image.shape == (3, 1, 3)
    assert torch.allclose(image[:, 0, 2], torch.tensor([0, 0, 32768 / 65535]), atol=1e-6)


@pytest.mark.parametrize("background", [255, 0])
def test_rgba_alpha_0_128_255_composited_over_background(tmp_path, background):
    rgba = np.array([[[200, 100, 50, 0], [200, 100, 50, 128], [200, 100, 50, 255]]], dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgba).save(path)
    # by hand, a = 128/255: 200a + 255(1-a) = 227.39, 100a + 255(1-a) = 177.19, 50a + 255(1-a) = 152.10;
    # over black: 100.39, 50.20, 25.10
    half = [227, 177, 152] if background == 255 else [100, 50, 25]
    expected = np.array([[[background] * 3, half, [200, 100, 50]]], dtype=np.uint8)
    assert torch.equal(read_image(path, background=background), chw(expected))
    image, bits = read_float(path, background=background)
    assert bits == 8 and torch.equal(image, chw(expected).float() / 255)


def test_rgba_default_background_is_white_and_grey_alpha_stays_grey(tmp_path):
    rgba, la = tmp_path / "rgba.png", tmp_path / "la.png"
    Image.fromarray(np.array([[[0, 0, 0, 0]]], dtype=np.uint8)).save(rgba)
    Image.fromarray(np.array([[[40, 0], [40, 255]]], dtype=np.uint8), mode="LA").save(la)
    assert read_image(rgba).tolist() == [[[255]], [[255]], [[255]]]
    assert read_image(la, channels=None).tolist() == [[[255, 40]]]
    assert read_image(la, channels=None, background=100).tolist() == [[[100, 40]]]


def test_opaque_rgba_equals_plain_rgb(tmp_path):
    rgb_path, rgba_path = tmp_path / "rgb.png", tmp_path / "rgba.png"
    Image.fromarray(RGB).save(rgb_path)
    Image.fromarray(np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])).save(rgba_path)
    for channels in (3, 1, None):
        assert torch.equal(read_image(rgba_path, channels=channels), read_image(rgb_path, channels=channels))
    assert torch.equal(read_image(rgba_path, background=0), chw(RGB))
    with Image.open(rgb_path) as im:
        assert torch.equal(read_image(rgba_path, channels=1), chw(np.array(im.convert("L"))))


def test_palette_png_with_a_transparent_index(tmp_path):
    path = tmp_path / "p.png"
    im = Image.fromarray(np.array([[0, 1, 2]], dtype=np.uint8), mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.save(path, transparency=1)
    assert read_image(path).tolist() == [[[255, 255, 0]], [[0, 255, 0]], [[0, 255, 255]]]
    assert read_image(path, background=0).tolist() == [[[255, 0, 0]], [[0, 0, 0]], [[0, 0, 255]]]


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_plain_8bit_files_read_exactly_as_pillow_converts_them(tmp_path, mode):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    for suffix in (".jpg", ".png"):
        path = tmp_path / f"plain{suffix}"
        Image.fromarray(pixels).convert(mode).save(path)
        for channels, want in ((3, "RGB"), (1, "L"), (None, mode)):
            with Image.open(path) as im:
                expected = np.array(im.convert(want))
            assert torch.equal(read_image(path, channels=channels), chw(expected)), (suffix, channels)


def test_corrupt_16bit_png_is_a_data_error(tmp_path):
    header = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0))
    garbage, bad_idat = tmp_path / "garbage.png", tmp_path / "idat.png"
    garbage.write_bytes(header + b"\x13\x37 not a chunk at all" * 4)
    bad_idat.write_bytes(header + png_chunk(b"IDAT", b"not zlib data" * 3) + png_chunk(b"IEND", b""))
    for path in (garbage, bad_idat):
        for read in (read_image, read_float):
            with pytest.raises(DataError, match="not a readable image"):
                read(path)


def test_missing_file_and_bad_background(tmp_path):
    with pytest.raises(DataError, match="image not found"):
        read_image(tmp_path / "none.png")
    path = tmp_path / "x.png"
    Image.fromarray(RGB).save(path)
    for bad in (256, -1, 0.5, True):
        with pytest.raises(ConfigError, match="background"):
            read_image(path, background=bad)


def test_file_dataset_passes_its_background_and_keeps_it_in_subsets(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.array([[[10, 20, 30, 0]]], dtype=np.uint8)).save(path)
    dataset = FileDataset([(str(path), 0), (str(path), 0)], ["a"], background=0)
    assert dataset.subset([1]).background == 0
    image, _ = dataset.subset([1])[0]
    assert image.tolist() == [[[0.0]], [[0.0]], [[0.0]]]
    assert FileDataset([(str(path), 0)], ["a"])[0][0].tolist() == [[[1.0]], [[1.0]], [[1.0]]]


def test_16bit_grey_with_alpha_stays_grey_and_is_composited(tmp_path):
    # 1 x 2 pixels, grey + alpha at 16 bits (PNG colour type 4): opaque 514, then a transparent 60000
    rows = b"\x00" + np.array([[514, 65535], [60000, 0]], dtype=">u2").tobytes()
    header = struct.pack(">IIBBBBB", 2, 1, 16, 4, 0, 0, 0)
    path = tmp_path / "la16.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows))
                     + png_chunk(b"IEND", b""))
    image, bits = read_float(path, background=0)
    assert bits == 16 and torch.equal(image, torch.tensor([[[514 / 65535, 0.0]]]))
    assert read_image(path, channels=None).tolist() == [[[2, 255]]]
    assert read_image(path).tolist() == [[[2, 255]]] * 3


def test_16bit_grey_with_a_transparent_value(tmp_path):
    path = tmp_path / "g16t.png"
    Image.fromarray(np.array([[1000, 65535]], dtype=np.uint16)).save(path, transparency=1000)
    assert read_image(path, channels=None, background=0).tolist() == [[[0, 255]]]
    assert read_float(path)[0].tolist() == [[[1.0, 1.0]]]
