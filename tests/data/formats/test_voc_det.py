"""`voc`: tiny hard-hat and devkit folders written with xml.etree, against boxes worked out by hand from VOC's
1-based inclusive indices, and the writer's XML read back with xml.etree."""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

from zrenie.config import DataConfig
from zrenie.data.catalog import list_datasets, open_splits
from zrenie.data.formats.det_io import BoxRecord
from zrenie.data.formats.voc import VOC_CLASSES, read_voc, voc, write_voc
from zrenie.errors import ConfigError, DataError

# (name, (xmin, ymin, xmax, ymax) as VOC writes them, difficult) per image of the hard-hat folder
HARDHAT = {
    "hh0": [("helmet", (1, 2, 10, 12), 0), ("person", (5, 5, 30, 31), 1), ("head", (20, 20, 32, 25), 0)],
    "hh1": [("head", (3, 4, 9, 9), 0)],
    "hh2": [("person", (1, 1, 32, 32), 0)],
    "hh3": [],
}


def _image(path, width: int = 32, height: int = 32, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _xml(path, filename: str, objects, width: int = 32, height: int = 32) -> None:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text, ET.SubElement(size, "height").text = str(width), str(height)
    for name, box, difficult in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "difficult").text = str(difficult)
        bndbox = ET.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bndbox, key).text = str(value)
    ET.ElementTree(root).write(path)


def write_hardhat(root, objects=HARDHAT) -> None:
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for k, (stem, objs) in enumerate(objects.items()):
        _image(root / "images" / f"{stem}.png", seed=k)
        _xml(root / "annotations" / f"{stem}.xml", f"{stem}.png", objs)


def _open(root, **keys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = voc(DataConfig(name="voc", root=str(root), **{"val_fraction": 0.0, **keys}))
    return splits, [str(w.message) for w in caught]


def _by_stem(dataset) -> dict:
    return {r.path.rsplit("/", 1)[1].split(".")[0]: k for k, r in enumerate(dataset.records)}


def test_flat_hardhat_layout_boxes_classes_difficult_and_one_sample(tmp_path):
    write_hardhat(tmp_path)
    splits, messages = _open(tmp_path)
    assert "voc" in list_datasets(target="boxes")
    assert splits.classes == ["head", "helmet", "person"]  # not VOC's names: sorted
    train = splits.train
    index = _by_stem(train)
    assert sorted(index) == ["hh0", "hh1", "hh2", "hh3"]  # the image without objects is kept
    image, target = train[index["hh0"]]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    # by hand: (xmin - 1, ymin - 1, xmax, ymax); the person and head boxes stay inside the 32 x 32 image
    assert target["boxes"].tolist() == [[0, 1, 10, 12], [4, 4, 30, 31], [19, 19, 32, 25]]
    assert tuple(target["boxes"].canvas_size) == (32, 32)
    assert target["labels"].tolist() == [1, 2, 0] and target["labels"].dtype == torch.int64
    assert target["iscrowd"].tolist() == [False, True, False]  # difficult
    assert train.target(index["hh2"])["boxes"].tolist() == [[0, 0, 32, 32]]  # the whole image, nothing clipped
    assert len(train.target(index["hh3"])["labels"]) == 0
    assert messages == []
    assert splits.extras["image_counts"]["missing_file"] == 0


def test_categories_keep_a_subset_in_order_and_drop_other_objects(tmp_path):
    write_hardhat(tmp_path)
    for categories in ("helmet,head", ["helmet", "head"]):
        splits, _ = _open(tmp_path, categories=categories)
        assert splits.classes == ["helmet", "head"]
        target = splits.train.target(_by_stem(splits.train)["hh0"])
        assert target["labels"].tolist() == [0, 1] and target["boxes"].tolist() == [[0, 1, 10, 12], [19, 19, 32, 25]]
        assert len(splits.train.target(_by_stem(splits.train)["hh2"])["labels"]) == 0  # its person left out
    with pytest.raises(ConfigError, match="no class 'hat'"):
        _open(tmp_path, categories="helmet,hat")


def test_devkit_layout_voc_classes_and_split_lists(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    for k, stem in enumerate(["000001", "000002", "000003", "000004", "000005"]):
        _image(tmp_path / "JPEGImages" / f"{stem}.jpg", width=32, height=24, seed=k)
        _xml(tmp_path / "Annotations" / f"{stem}.xml", f"{stem}.jpg", [("dog", (2, 3, 8, 9), 0), ("cat", (1, 1, 4, 4), 0)],
             width=32, height=24)
    lists = {"train": ["000001", "000002"], "val": ["000003"], "test": ["000004", "000005"],
             "trainval": ["000001", "000002", "000003"]}
    for name, ids in lists.items():
        (tmp_path / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    (tmp_path / "ImageSets" / "Main" / "dog_train.txt").write_text("000001  1\n")  # per-class lists are not splits
    splits = open_splits(DataConfig(name="voc", root=str(tmp_path)), target="boxes")
    assert splits.classes == list(VOC_CLASSES)  # every name is VOC's: the devkit's 20, in its order
    for split, ids in (("train", lists["train"]), ("val", lists["val"]), ("test", lists["test"])):
        assert sorted(_by_stem(getattr(splits, split))) == ids
    target = splits.train.target(0)
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("cat")]
    assert tuple(target["boxes"].canvas_size) == (24, 32)  # (height, width)
    # without a test list, VOC's val list is the test split and val is carved from train
    (tmp_path / "ImageSets" / "Main" / "test.txt").unlink()
    (tmp_path / "ImageSets" / "Main" / "train.txt").unlink()
    source = read_voc(tmp_path)
    assert [r.path[-10:-4] for r in source.parts["train"]] == ["000001", "000002"]  # trainval less val


def test_out_of_image_and_inverted_boxes_are_clipped_or_dropped_with_one_warning(tmp_path):
    write_hardhat(tmp_path, {"a": [("head", (25, 2, 40, 9), 0), ("head", (9, 2, 4, 9), 0), ("helmet", (1, 1, 5, 5), 0)],
                             "b": [("head", (33, 33, 40, 40), 0)]})
    splits, messages = _open(tmp_path)
    target = splits.train.target(_by_stem(splits.train)["a"])
    assert target["boxes"].tolist() == [[24, 1, 32, 9], [0, 0, 5, 5]]  # x2 40 clipped to 32; the inverted one dropped
    assert target["labels"].tolist() == [0, 1]
    assert len(splits.train.target(_by_stem(splits.train)["b"])["labels"]) == 0  # wholly outside: dropped
    assert len(messages) == 1 and "clipped 1 box(es)" in messages[0] and "dropped 2" in messages[0]
    with pytest.raises(DataError, match=r"a\.xml: box .* reaches outside the 32x32 image \(data.strict=true\)"):
        _open(tmp_path, strict=True)


def test_bad_xml_missing_image_and_classes_file_are_one_line_errors(tmp_path):
    write_hardhat(tmp_path)
    (tmp_path / "images" / "hh1.png").unlink()
    _, messages = _open(tmp_path)
    assert len(messages) == 1 and "skipped 1 image(s)" in messages[0] and "hh1" in messages[0]
    with pytest.raises(DataError, match=r"hh1.*missing \(data.strict=true\)"):
        _open(tmp_path, strict=True)
    (tmp_path / "classes.txt").write_text("helmet\nhead\n")  # person is not listed
    with pytest.raises(DataError, match=r"hh0\.xml: object 'person' is not in .*classes\.txt"):
        _open(tmp_path)
    (tmp_path / "classes.txt").write_text("person\nhelmet\nhead\nvest\n")
    assert _open(tmp_path)[0].classes == ["person", "helmet", "head", "vest"]  # its order, unused names kept
    (tmp_path / "annotations" / "hh2.xml").write_text("<annotation><object><name>head</name></annotation>")
    with pytest.raises(DataError, match=r"hh2\.xml: the XML does not parse") as err:
        _open(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "annotations" / "hh2.xml").write_text("<annotation><object><name>head</name><bndbox><xmin>1</xmin>"
                                                      "</bndbox></object></annotation>")
    with pytest.raises(DataError, match=r"hh2\.xml: object 0 \(head\) needs a <bndbox>"):
        _open(tmp_path)


def test_writer_xml_holds_one_based_indices_and_difficult(tmp_path):
    _image(tmp_path / "src.png")
    record = BoxRecord(str(tmp_path / "src.png"), 32, 32, np.array([[0.0, 1.0, 10.0, 12.0], [4.5, 4.0, 30.25, 31.0]]),
                       np.array([1, 0]), np.array([False, True]))
    write_voc(["head", "helmet"], {"train": [record], "test": []}, tmp_path / "out")
    root = ET.parse(tmp_path / "out" / "Annotations" / "src.xml").getroot()
    assert root.findtext("filename") == "src.png" and root.findtext("size/width") == "32"
    objects = [(o.findtext("name"), o.findtext("difficult"), [float(o.findtext(f"bndbox/{k}"))
                                                              for k in ("xmin", "ymin", "xmax", "ymax")])
               for o in root.findall("object")]
    assert objects == [("helmet", "0", [1, 2, 10, 12]), ("head", "1", [5.5, 5, 30.25, 31])]
    assert (tmp_path / "out" / "JPEGImages" / "src.png").read_bytes() == (tmp_path / "src.png").read_bytes()
    assert (tmp_path / "out" / "ImageSets" / "Main" / "train.txt").read_text() == "src\n"
    assert (tmp_path / "out" / "classes.txt").read_text() == "head\nhelmet\n"
