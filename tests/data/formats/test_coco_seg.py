"""`coco`: a tiny instances JSON (polygons, RLEs, a crowd, an empty and a missing image) against masks drawn
independently: point-in-polygon at pixel centres, and the arrays the RLEs were made from."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

import zrenie
from zrenie.config import build_config, parse_overrides
from zrenie.config import DataConfig
from zrenie.data.formats.coco import coco
from zrenie.errors import ConfigError, DataError
from zrenie.registry import DATASETS

PERSON, CAR, DOG = 1, 3, 18  # COCO's category ids
BIG = [1, 1, 15, 1, 15, 11, 1, 11]  # a 14 x 10 rectangle of image 1 (x, y pairs)
SMALL = [4, 3, 8, 3, 8, 6, 4, 6]  # 4 x 3, lying on BIG
L_SHAPE = [9, 2, 14, 2, 14, 4, 11, 4, 11, 9, 9, 9]  # a concave polygon
SQUARE = [0, 9, 3, 9, 3, 13, 0, 13]  # a second part of the same car annotation, its last row outside the image


def inside(polygon: list[float], x: float, y: float) -> bool:
    """Even-odd rule: does a ray from (x, y) to the right cross the polygon's edges an odd number of times?"""
    points = list(zip(polygon[0::2], polygon[1::2]))
    crossed = False
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            crossed = not crossed
    return crossed


def polygon_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    return np.array([[any(inside(p, j + 0.5, i + 0.5) for p in polygons) for j in range(width)]
                     for i in range(height)])


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE by hand: run lengths down the columns, starting with a run of zeros."""
    counts, value, run = [], 0, 0
    for pixel in mask.flatten(order="F"):
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    return {"size": list(mask.shape), "counts": counts + [run]}


def write_coco(root, extra_people: int = 0) -> dict:
    """images/ and instances.json: image 1 polygons (a dog and a car over a person), image 2 a compressed RLE
    person partly inside a crowd box, image 3 no annotation, image 4 a dog only, image 5 missing on disk;
    `extra_people` more images with one person each. Returns the independent reference masks."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    blob = np.zeros((10, 10), np.uint8)
    blob[2:7, 3:9] = rng.integers(0, 2, (5, 6))
    blob[4, 5] = 1
    crowd = np.zeros((10, 10), np.uint8)
    crowd[1:9, 5:10] = 1
    rle = mask_utils.encode(np.asfortranarray(blob))
    rle["counts"] = rle["counts"].decode("ascii")
    images = [(1, 12, 16), (2, 10, 10), (3, 8, 8), (4, 8, 8), (5, 8, 8)]
    images += [(6 + k, 8, 8) for k in range(extra_people)]
    annotations = [  # the small dog first: painting goes by area, not by the JSON's order
        {"id": 11, "image_id": 1, "category_id": DOG, "segmentation": [SMALL], "area": 12.0, "iscrowd": 0},
        {"id": 10, "image_id": 1, "category_id": PERSON, "segmentation": [BIG], "area": 140.0, "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": CAR, "segmentation": [L_SHAPE, SQUARE], "area": 29.0,
         "iscrowd": 0},
        {"id": 13, "image_id": 1, "category_id": PERSON, "segmentation": [[1, 1, 2, 2]], "area": 0.0,  # degenerate
         "iscrowd": 0},
        {"id": 20, "image_id": 2, "category_id": PERSON, "segmentation": rle, "area": float(blob.sum()),
         "iscrowd": 0},
        {"id": 21, "image_id": 2, "category_id": PERSON, "segmentation": uncompressed_rle(crowd),
         "area": float(crowd.sum()), "iscrowd": 1},
        {"id": 40, "image_id": 4, "category_id": DOG, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "area": 16.0,
         "iscrowd": 0},
        {"id": 50, "image_id": 5, "category_id": PERSON, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "area": 16.0,
         "iscrowd": 0},
    ]
    annotations += [{"id": 60 + k, "image_id": 6 + k, "category_id": PERSON, "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]],
                     "area": 16.0, "iscrowd": 0} for k in range(extra_people)]
    for image_id, h, w in images:
        if image_id != 5:
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / f"{image_id:012d}.png")
    data = {"images": [{"id": i, "file_name": f"{i:012d}.png", "height": h, "width": w} for i, h, w in images],
            "annotations": annotations,
            "categories": [{"id": DOG, "name": "dog"}, {"id": PERSON, "name": "person"}, {"id": CAR, "name": "car"}]}
    (root / "instances.json").write_text(json.dumps(data))
    return {"blob": blob.astype(bool), "crowd": crowd.astype(bool)}


def _open(root, **overrides):
    cfg = DataConfig(name="coco", root=str(root / "images"), ann=str(root / "instances.json"),
                     **{"val_fraction": 0.0, **overrides})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = coco(cfg)
    return splits, [str(w.message) for w in caught]


def _mask(dataset, index: int) -> np.ndarray:
    return dataset[index][1].as_subclass(torch.Tensor).numpy()


def test_every_category_overlaps_by_area_crowds_ignored_and_images_counted(tmp_path):
    ref = write_coco(tmp_path)
    splits, messages = _open(tmp_path)
    assert "coco" in DATASETS.list(tag="mask")
    assert splits.classes == ["background", "person", "car", "dog"]  # category-id order
    assert [r[0].rsplit("/", 1)[1] for r in splits.train.records] == ["000000000001.png", "000000000002.png",
                                                                     "000000000004.png"]
    assert splits.extras["image_counts"] == {"train": 3, "val": 0, "test": 0, "no_category": 1, "missing_file": 1}
    assert len(messages) == 1 and "skipped 1 image(s) named in" in messages[0] and "000000000005.png" in messages[0]
    expected = np.zeros((12, 16), np.int64)
    expected[polygon_mask([BIG], 12, 16)] = 1
    expected[polygon_mask([L_SHAPE, SQUARE], 12, 16)] = 2  # the car (29 px) over the person (140 px)
    expected[polygon_mask([SMALL], 12, 16)] = 3  # the dog (12 px) over both
    assert expected[3:6, 4:8].min() == 3 and (expected == 2).sum() == 20 + 9  # SQUARE's row 12 is clipped
    assert np.array_equal(_mask(splits.train, 0), expected)
    expected = np.where(ref["crowd"], 255, 0)
    expected[ref["blob"]] = 1  # a person inside the crowd region keeps its class
    assert np.array_equal(_mask(splits.train, 1), expected)
    image, _ = splits.train[1]
    assert torch.equal((image * 255).round().byte(), torch.from_numpy(np.array(Image.open(splits.train.records[1][0]))
                                                                      ).permute(2, 0, 1))


def test_one_category_is_binary_and_categories_come_as_list_comma_string_or_ids(tmp_path):
    ref = write_coco(tmp_path)
    splits, _ = _open(tmp_path, categories="person")
    assert splits.classes == ["background", "person"] and len(splits.train) == 2  # the dog-only image is left out
    assert splits.extras["image_counts"]["no_category"] == 2
    assert np.array_equal(_mask(splits.train, 0), polygon_mask([BIG], 12, 16).astype(np.int64))
    assert np.array_equal(_mask(splits.train, 1), np.where(ref["blob"], 1, np.where(ref["crowd"], 255, 0)))
    cfg = build_config(task="segment", **parse_overrides(["data=coco", "data.categories=dog,person"]))
    assert cfg.data.categories == ["dog", "person"]
    for categories in (cfg.data.categories, "dog, person", [DOG, PERSON]):
        assert _open(tmp_path, categories=categories)[0].classes == ["background", "dog", "person"]
    with pytest.raises(ConfigError, match=r"data.categories': no category 'cat' in the JSON \(has person, car, dog\)"):
        _open(tmp_path, categories="person,cat")
    with pytest.raises(ConfigError, match="named twice"):
        _open(tmp_path, categories=["dog", "dog"])


def test_missing_images_are_an_error_when_strict_and_splits_are_carved_by_seed(tmp_path):
    write_coco(tmp_path, extra_people=5)
    with pytest.raises(DataError, match=r"000000000005.png is named in .*instances.json but missing \(data.strict"):
        _open(tmp_path, strict=True)
    splits, _ = _open(tmp_path, val_fraction=0.25)
    again, _ = _open(tmp_path, val_fraction=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 2, 2)
    assert again.val.records == splits.val.records
    paths = [r[0] for s in (splits.train, splits.val, splits.test) for r in s.records]
    assert len(set(paths)) == 8


def test_bad_inputs_are_one_line_errors(tmp_path):
    write_coco(tmp_path)
    with pytest.raises(DataError, match=r"needs data.ann=PATH"):
        coco(DataConfig(name="coco", root=str(tmp_path / "images")))
    bad = tmp_path / "bad.json"
    bad.write_text("{\"images\": [")
    with pytest.raises(DataError, match=r"bad.json is not valid JSON"):
        coco(DataConfig(name="coco", root=str(tmp_path / "images"), ann=str(bad)))
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError, match=r"bad.json has no categories"):
        coco(DataConfig(name="coco", root=str(tmp_path / "images"), ann=str(bad)))
    data = json.loads((tmp_path / "instances.json").read_text())
    data["images"][0]["width"] = 17  # the file is 16 wide; its polygons' mask would be drawn 17 wide
    data["annotations"][4]["segmentation"]["size"] = [10, 11]
    (tmp_path / "instances.json").write_text(json.dumps(data))
    splits, _ = _open(tmp_path)
    with pytest.raises(DataError, match=r"image .*000000000001.png is 16x12 but the COCO JSON says 17x12"):
        splits.train[0]
    with pytest.raises(DataError, match=r"RLE size \[10, 11\] but the image is \[10, 10\]"):
        splits.train[1]


def test_segment_trains_one_epoch_on_coco(tmp_path):
    write_coco(tmp_path / "coco", extra_people=5)
    with pytest.warns(UserWarning, match="skipped 1 image"):  # image 5's file is missing
        run = zrenie.train("segment", out=str(tmp_path / "run"), epochs=1, progress=False, tensorboard=False,
                           report=False, **{"data.name": "coco", "data.root": str(tmp_path / "coco" / "images"),
                                            "data.ann": str(tmp_path / "coco" / "instances.json"),
                                            "data.categories": "person", "data.size": 16, "data.workers": 0,
                                            "data.batch_size": 4, "data.val_fraction": 0.2, "model.width": 4,
                                            "model.kwargs": {"depth": 2}, "segment.loss": "bce_dice"})
    assert {"miou", "dice", "iou/person"} <= set(run["test"])
