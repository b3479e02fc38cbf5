"""`coco` with target "boxes": a tiny instances JSON against pycocotools' own index of it (bbox, iscrowd,
category per image), plus the writer's JSON read back by pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from zrenie.config import DataConfig
from zrenie.data.formats.coco import coco, write_coco
from zrenie.data.formats.det_io import BoxRecord
from zrenie.errors import DataError
from zrenie.registry import DATASETS

PERSON, CAR, DOG = 1, 3, 18  # COCO's category ids: classes person, car, dog in id order


def write_instances(root, annotations=None) -> None:
    """Images 1 (32 x 24: a person, a crowd of people, a dog), 2 (32 x 32: a car), 3 (32 x 32: nothing),
    4 (named but missing on disk)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = [(1, 32, 24), (2, 32, 32), (3, 32, 32), (4, 32, 32)]
    for image_id, w, h in images[:3]:
        pixels = np.random.default_rng(image_id).integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{image_id:04d}.png")
    annotations = annotations or [
        {"id": 10, "image_id": 1, "category_id": PERSON, "bbox": [2.5, 3.0, 10.0, 12.25], "iscrowd": 0, "area": 1},
        {"id": 11, "image_id": 1, "category_id": PERSON, "bbox": [15.0, 0.0, 17.0, 24.0], "iscrowd": 1, "area": 1},
        {"id": 12, "image_id": 1, "category_id": DOG, "bbox": [0.0, 10.0, 6.0, 4.0], "iscrowd": 0, "area": 1},
        {"id": 20, "image_id": 2, "category_id": CAR, "bbox": [4.0, 4.0, 20.0, 8.0], "iscrowd": 0, "area": 1},
        {"id": 40, "image_id": 4, "category_id": CAR, "bbox": [1.0, 1.0, 2.0, 2.0], "iscrowd": 0, "area": 1},
    ]
    data = {"images": [{"id": i, "file_name": f"{i:04d}.png", "width": w, "height": h} for i, w, h in images],
            "annotations": annotations,
            "categories": [{"id": DOG, "name": "dog"}, {"id": PERSON, "name": "person"}, {"id": CAR, "name": "car"}]}
    (root / "instances.json").write_text(json.dumps(data))


def _open(root, **keys):
    cfg = DataConfig(name="coco", root=str(root / "images"), ann=str(root / "instances.json"),
                     **{"val_fraction": 0.0, **keys})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = coco(cfg, target="boxes")
    return splits, [str(w.message) for w in caught]


def _reference(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_boxes_crowds_and_classes_equal_pycocotools_index(tmp_path):
    write_instances(tmp_path)
    splits, messages = _open(tmp_path)
    assert DATASETS.tags("coco") >= {"mask", "boxes"}
    assert splits.classes == ["person", "car", "dog"]  # category-id order, no background among box classes
    assert len(messages) == 1 and "skipped 1 image(s)" in messages[0] and "0004.png" in messages[0]
    assert splits.extras["image_counts"] == {"train": 3, "val": 0, "test": 0, "missing_file": 1}
    ref = _reference(tmp_path / "instances.json")
    names = {c["id"]: c["name"] for c in ref.loadCats(ref.getCatIds())}
    for k, record in enumerate(splits.train.records):
        image_id = int(record.path[-8:-4])
        anns = ref.loadAnns(ref.getAnnIds(imgIds=[image_id]))
        target = splits.train.target(k)
        expected = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        np.testing.assert_allclose(target["boxes"].numpy(), np.array(expected, np.float32).reshape(-1, 4))
        assert [splits.classes[i] for i in target["labels"]] == [names[a["category_id"]] for a in anns]
        assert target["iscrowd"].tolist() == [bool(a["iscrowd"]) for a in anns]
        info = ref.loadImgs([image_id])[0]
        assert tuple(target["boxes"].canvas_size) == (info["height"], info["width"])
    image, target = splits.train[0]
    assert image.shape == (3, 24, 32) and target["labels"].tolist() == [0, 0, 2]


def test_categories_subset_strict_and_bad_annotations(tmp_path):
    write_instances(tmp_path)
    splits, _ = _open(tmp_path, categories="dog,person")
    assert splits.classes == ["dog", "person"]
    assert splits.train.target(0)["labels"].tolist() == [1, 1, 0]
    assert len(splits.train.target(1)["labels"]) == 0  # image 2's car left out, the image kept
    with pytest.raises(DataError, match=r"0004\.png is named in .*instances\.json but missing \(data\.strict=true\)"):
        _open(tmp_path, strict=True)
    bad = {"id": 30, "image_id": 3, "category_id": 99, "bbox": [0, 0, 1, 1], "iscrowd": 0}
    write_instances(tmp_path, [bad])
    with pytest.raises(DataError, match=r"instances\.json: annotation 30 has category_id 99, which is not among"):
        _open(tmp_path)
    write_instances(tmp_path, [{**bad, "category_id": CAR, "bbox": [0, 0, 1]}])
    with pytest.raises(DataError, match=r"instances\.json: annotation 30 has no bbox of four numbers"):
        _open(tmp_path)
    write_instances(tmp_path, [{**bad, "category_id": CAR, "bbox": [20.0, 2.0, 20.0, 4.0]}])
    splits, messages = _open(tmp_path)
    assert splits.train.target(2)["boxes"].tolist() == [[20, 2, 32, 6]]  # clipped at the right edge
    assert any("clipped 1 box(es)" in m for m in messages)


def test_writer_json_reads_back_in_pycocotools(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not read")
    record = BoxRecord(str(tmp_path / "a.png"), 32, 24, np.array([[12.0, 6.0, 20.5, 18.0], [0.0, 0.0, 32.0, 24.0]]),
                       np.array([1, 0]), np.array([False, True]))
    write_coco(["helmet", "head", "vest"], {"train": [record], "val": []}, tmp_path / "out")
    ref = _reference(tmp_path / "out" / "annotations" / "instances_train.json")
    assert [c["name"] for c in ref.loadCats(sorted(ref.getCatIds()))] == ["helmet", "head", "vest"]
    (image,) = ref.loadImgs(ref.getImgIds())
    assert (image["file_name"], image["width"], image["height"]) == ("a.png", 32, 24)
    anns = ref.loadAnns(ref.getAnnIds(imgIds=[image["id"]]))
    assert [a["bbox"] for a in anns] == [[12.0, 6.0, 8.5, 12.0], [0.0, 0.0, 32.0, 24.0]]
    assert [a["area"] for a in anns] == [102.0, 768.0] and [a["iscrowd"] for a in anns] == [0, 1]
    assert [ref.loadCats([a["category_id"]])[0]["name"] for a in anns] == ["head", "helmet"]
    assert ref.getAnnIds(iscrowd=False) == [anns[0]["id"]]
    assert json.loads((tmp_path / "out/annotations/instances_val.json").read_text())["images"] == []


def test_instances_carry_each_objects_mask_equal_to_pycocotools(tmp_path):
    """Target "instances": polygons and an RLE decoded as pycocotools' annToMask does, one mask per kept box,
    the masks of dropped classes and degenerate boxes left out with them; no segmentation is one line."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((8, 20), np.uint8), ((4, 20), (4, 8)))))
    rle["counts"] = rle["counts"].decode()
    annotations = [
        {"id": 10, "image_id": 1, "category_id": PERSON, "bbox": [2.0, 3.0, 10.0, 12.0], "iscrowd": 0,
         "segmentation": [[2, 3, 12, 3, 12, 15, 2, 15]], "area": 1},
        {"id": 12, "image_id": 1, "category_id": DOG, "bbox": [0.0, 10.0, 0.0, 4.0], "iscrowd": 0,  # empty: dropped
         "segmentation": [[0, 10, 1, 10, 1, 14]], "area": 1},
        {"id": 13, "image_id": 1, "category_id": DOG, "bbox": [20.0, 2.0, 6.0, 9.0], "iscrowd": 0,
         "segmentation": [[20, 2, 26, 2, 23, 11]], "area": 1},
        {"id": 20, "image_id": 2, "category_id": CAR, "bbox": [4.0, 4.0, 20.0, 8.0], "iscrowd": 0,
         "segmentation": rle, "area": 1},
    ]
    write_instances(tmp_path, annotations)
    cfg = DataConfig(name="coco", root=str(tmp_path / "images"), ann=str(tmp_path / "instances.json"),
                     val_fraction=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = coco(cfg, target="instances")
    reference = _reference(tmp_path / "instances.json")
    by_path = {r.path.rsplit("/", 1)[-1]: i for i, r in enumerate(splits.train.records)}
    for image_id, kept in ((1, [10, 13]), (2, [20])):
        target = splits.train.target(by_path[f"{image_id:04d}.png"])
        with warnings.catch_warnings():  # pycocotools trips NumPy 2's notice about __array__(copy=)
            warnings.simplefilter("ignore", DeprecationWarning)
            expected = np.stack([reference.annToMask(reference.anns[a]) for a in kept])
        assert target["masks"].shape == expected.shape and np.array_equal(target["masks"].numpy(), expected)
        assert len(target["masks"]) == len(target["boxes"]) == len(target["labels"])
    annotations[0].pop("segmentation")
    write_instances(tmp_path, annotations)
    with pytest.raises(DataError, match="annotation 10 has no segmentation"):
        coco(cfg, target="instances")
