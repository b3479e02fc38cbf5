"""`yolo`: a tiny data YAML with images/ and labels/, against pixel boxes worked out by hand from the normalised
`class cx cy w h` lines, and the writer's lines read back by a plain parser."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml
from PIL import Image

from zrenie.config import DataConfig
from zrenie.data.catalog import list_datasets
from zrenie.data.formats.det_io import BoxRecord
from zrenie.data.formats.yolo import label_path, write_yolo, yolo
from zrenie.errors import DataError

NAMES = ["helmet", "head", "person"]


def _image(path, width: int, height: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_yolo_set(root, names=NAMES, val: str = "images/val", labels: dict | None = None) -> None:
    """train a (32 x 24, two objects), b (32 x 32, no label file), c (32 x 32, an empty label file);
    val d (32 x 32, one object)."""
    images = {"train/a": (32, 24), "train/b": (32, 32), "train/c": (32, 32), "val/d": (32, 32)}
    labels = labels or {"train/a": "0 0.5 0.5 0.25 0.5\n2 0.25 0.75 0.5 0.5\n", "train/c": "",
                        "val/d": "1 0.5 0.5 1 1\n"}
    for k, (name, (w, h)) in enumerate(images.items()):
        _image(root / "images" / f"{name}.png", w, h, seed=k)
    for name, text in labels.items():
        (root / "labels" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{name}.txt").write_text(text)
    (root / "data.yaml").write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": val,
                                                    "names": names}))


def _open(root, **keys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = yolo(DataConfig(name="yolo", root=str(root), **{"val_fraction": 0.0, **keys}))
    return splits, [str(w.message) for w in caught]


def _by_name(dataset) -> dict:
    return {r.path.rsplit("/", 1)[1]: k for k, r in enumerate(dataset.records)}


def test_normalised_lines_become_pixel_edges_and_val_is_the_test_split(tmp_path):
    write_yolo_set(tmp_path)
    splits, messages = _open(tmp_path / "data.yaml")
    assert "yolo" in list_datasets(target="boxes") and messages == []
    assert splits.classes == NAMES
    assert sorted(_by_name(splits.train)) == ["a.png", "b.png", "c.png"]
    assert sorted(_by_name(splits.test)) == ["d.png"]  # no test entry: the YAML's val is held out as test
    image, target = splits.train[_by_name(splits.train)["a.png"]]
    assert image.shape == (3, 24, 32)
    # by hand on 32 x 24: cx 16, cy 12, w 8, h 12 -> (12, 6, 20, 18); cx 8, cy 18, w 16, h 12 -> (0, 12, 16, 24)
    assert target["boxes"].tolist() == [[12, 6, 20, 18], [0, 12, 16, 24]]
    assert target["labels"].tolist() == [0, 2] and target["iscrowd"].tolist() == [False, False]
    for name in ("b.png", "c.png"):  # no label file, an empty one: no objects
        assert len(splits.train.target(_by_name(splits.train)[name])["labels"]) == 0
    assert splits.test.target(0)["boxes"].tolist() == [[0, 0, 32, 32]]
    # a folder holding data.yaml, names as a mapping, and a subset of classes
    write_yolo_set(tmp_path / "dict", names={0: "helmet", 1: "head", 2: "person"})
    splits, _ = _open(tmp_path / "dict", categories="person,helmet")
    assert splits.classes == ["person", "helmet"]
    assert splits.train.target(_by_name(splits.train)["a.png"])["labels"].tolist() == [1, 0]
    assert len(splits.test.target(0)["labels"]) == 0  # its head dropped


def test_val_equal_to_train_is_no_split_of_its_own(tmp_path):
    write_yolo_set(tmp_path, val="images/train")
    splits, _ = _open(tmp_path, val_fraction=0.34)
    counts = splits.extras["image_counts"]
    assert (counts["train"], counts["val"], counts["test"]) == (1, 1, 1)  # three train images, carved
    assert not any("d.png" in r.path for s in (splits.train, splits.val, splits.test) for r in s.records)


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.25", r"a\.txt:2: expected 5 numbers \(class cx cy w h\), got 4"),
    ("3 0.5 0.5 0.25 0.5", r"a\.txt:2: class 3 is outside the 3 names of .*data\.yaml"),
    ("0 0.5 0.5 0.25 zero", r"a\.txt:2: '0 0\.5 0\.5 0\.25 zero' is not 5 numbers"),
])
def test_bad_label_lines_are_one_line_errors_naming_file_and_line(tmp_path, line, message):
    write_yolo_set(tmp_path, labels={"train/a": f"0 0.5 0.5 0.25 0.5\n{line}\n"})
    with pytest.raises(DataError, match=message) as err:
        _open(tmp_path)
    assert "\n" not in str(err.value)


def test_boxes_outside_are_clipped_with_one_warning_and_yaml_errors(tmp_path):
    write_yolo_set(tmp_path, labels={"train/a": "0 1.0 0.5 0.5 0.5\n", "val/d": "1 0.5 0.5 -0.1 0.5\n"})
    splits, messages = _open(tmp_path)
    # cx 32, w 16 on 32 x 24: (24, 6, 40, 18) clipped to (24, 6, 32, 18); d's negative width: dropped
    assert splits.train.target(_by_name(splits.train)["a.png"])["boxes"].tolist() == [[24, 6, 32, 18]]
    assert len(splits.test.target(0)["labels"]) == 0
    assert len(messages) == 1 and "clipped 1 box(es)" in messages[0] and "dropped 1" in messages[0]
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [a, b]\n")
    with pytest.raises(DataError, match=r"data\.yaml: no val"):
        _open(tmp_path)
    (tmp_path / "data.yaml").write_text("train: [images/train\n")
    with pytest.raises(DataError, match=r"data\.yaml: the YAML does not parse"):
        _open(tmp_path)


def test_label_path_rule_and_writer_lines(tmp_path):
    assert str(label_path(tmp_path / "images" / "x" / "images" / "a.jpg")) == str(tmp_path / "images/x/labels/a.txt")
    assert str(label_path(tmp_path / "pics" / "a.png")) == str(tmp_path / "pics" / "a.txt")
    _image(tmp_path / "a.png", 32, 24)
    record = BoxRecord(str(tmp_path / "a.png"), 32, 24, np.array([[12.0, 6.0, 20.0, 18.0], [0.0, 0.0, 32.0, 24.0]]),
                       np.array([1, 0]), np.array([False, False]))
    write_yolo(["helmet", "head"], {"train": [record]}, tmp_path / "out")
    lines = [[float(v) for v in line.split()] for line in (tmp_path / "out/labels/train/a.txt").read_text().splitlines()]
    assert lines == [[1, 0.5, 0.5, 0.25, 0.5], [0, 0.5, 0.5, 1, 1]]
    data = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert data == {"path": str((tmp_path / "out").resolve()), "train": "images/train", "val": "images/train",
                    "names": {0: "helmet", 1: "head"}}
