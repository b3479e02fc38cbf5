"""`zrenie detect convert`: a tiny VOC devkit folder through COCO and YOLO and back, each output read by an
independent reader (pycocotools, xml.etree, a plain parse of the YOLO lines) against boxes worked out by hand
from the source XML; and bad input leaves nothing behind."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO

from zrenie.config import DataConfig
from zrenie.errors import ConfigError, DataError, WriteError
from zrenie.tasks.detect.convert import CONVERT, convert

# VOC source: stem -> (width, height, [(name, (xmin, ymin, xmax, ymax) 1-based inclusive, difficult)])
SOURCE = {
    "img_a": (32, 24, [("helmet", (1, 2, 10, 12), 0), ("person", (5, 5, 30, 24), 1), ("head", (20, 20, 32, 23), 0)]),
    "img_b": (32, 32, [("head", (3, 4, 9, 9), 0)]),
    "img_c": (32, 32, []),
    "img_d": (32, 32, [("person", (2, 2, 31, 31), 0), ("helmet", (4, 3, 12, 8), 0)]),
}
LISTS = {"train": ["img_a", "img_b"], "val": ["img_c"], "test": ["img_d"]}
CLASSES = ["head", "helmet", "person"]  # not VOC's names: sorted


def write_devkit(root) -> None:
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    for k, (stem, (w, h, objects)) in enumerate(SOURCE.items()):
        pixels = np.random.default_rng(k).integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{stem}.png")
        ann = ET.Element("annotation")
        ET.SubElement(ann, "filename").text = f"{stem}.png"
        size = ET.SubElement(ann, "size")
        ET.SubElement(size, "width").text, ET.SubElement(size, "height").text = str(w), str(h)
        for name, box, difficult in objects:
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text, ET.SubElement(obj, "difficult").text = name, str(difficult)
            bndbox = ET.SubElement(obj, "bndbox")
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
                ET.SubElement(bndbox, key).text = str(value)
        ET.ElementTree(ann).write(root / "Annotations" / f"{stem}.xml")
    for name, stems in LISTS.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{s}\n" for s in stems))


def _edges(box) -> list[float]:
    """VOC's 1-based inclusive indices as zero-based pixel edges, by hand: (xmin - 1, ymin - 1, xmax, ymax)."""
    xmin, ymin, xmax, ymax = box
    return [xmin - 1, ymin - 1, xmax, ymax]


def _coco(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _read_xml(path) -> list[tuple[str, int, list[float]]]:
    root = ET.parse(path).getroot()
    return [(o.findtext("name"), int(o.findtext("difficult")),
             [float(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]) for o in root.iter("object")]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        return fn(*args, **kwargs), [str(w.message) for w in caught]


@pytest.fixture
def devkit(tmp_path):
    write_devkit(tmp_path / "voc")
    return tmp_path / "voc"


def test_voc_to_coco_to_voc_keeps_boxes_difficult_classes_splits_and_files(devkit, tmp_path):
    done, messages = _quiet(convert, devkit, tmp_path / "coco", to="coco")
    assert messages == [] and done["images"] == 4 and done["boxes"] == 6 and done["classes"] == CLASSES
    for part, stems in LISTS.items():
        ref = _coco(tmp_path / "coco" / "annotations" / f"instances_{part}.json")
        assert [c["name"] for c in ref.loadCats(sorted(ref.getCatIds()))] == CLASSES
        images = ref.loadImgs(ref.getImgIds())
        assert sorted(i["file_name"] for i in images) == [f"{s}.png" for s in stems]
        for image in images:
            w, h, objects = SOURCE[image["file_name"][:-4]]
            assert (image["width"], image["height"]) == (w, h)
            anns = ref.loadAnns(ref.getAnnIds(imgIds=[image["id"]]))
            boxes = [[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)]
            assert boxes == [_edges(box) for _, box, _ in objects]
            assert [ref.loadCats([a["category_id"]])[0]["name"] for a in anns] == [o[0] for o in objects]
            assert [a["iscrowd"] for a in anns] == [o[2] for o in objects]
            copied = tmp_path / "coco" / "images" / image["file_name"]
            assert copied.read_bytes() == (devkit / "JPEGImages" / image["file_name"]).read_bytes()
    _quiet(convert, tmp_path / "coco", tmp_path / "back", to="voc")  # the folder: one part per JSON
    for stem, (_, _, objects) in SOURCE.items():
        assert _read_xml(tmp_path / "back" / "Annotations" / f"{stem}.xml") == [
            (name, difficult, [float(v) for v in box]) for name, box, difficult in objects]
    for name in ("train", "val", "test"):
        assert ((tmp_path / "back/ImageSets/Main" / f"{name}.txt").read_text()
                == (devkit / "ImageSets/Main" / f"{name}.txt").read_text())


def test_voc_to_yolo_and_back_within_a_thousandth_of_a_pixel(devkit, tmp_path):
    done, messages = _quiet(convert, devkit, tmp_path / "yolo", to="yolo")
    assert len(messages) == 1 and "1 such box(es)" in messages[0]  # the difficult person: YOLO has no flag
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASSES)) and data["path"] == str((tmp_path / "yolo").resolve())
    for part, stems in LISTS.items():
        assert data[part] == f"images/{part}"
        for stem in stems:
            w, h, objects = SOURCE[stem]
            lines = (tmp_path / "yolo" / "labels" / part / f"{stem}.txt").read_text().splitlines()
            got = np.array([[float(v) for v in line.split()] for line in lines]).reshape(-1, 5)
            want = [[CLASSES.index(n), (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
                    for n, (x1, y1, x2, y2) in ((n, _edges(b)) for n, b, _ in objects)]
            np.testing.assert_allclose(got, np.array(want).reshape(-1, 5), atol=1e-9)
            assert ((tmp_path / "yolo" / "images" / part / f"{stem}.png").read_bytes()
                    == (devkit / "JPEGImages" / f"{stem}.png").read_bytes())
    _quiet(convert, tmp_path / "yolo" / "data.yaml", tmp_path / "back", to="voc")
    for stem, (_, _, objects) in SOURCE.items():
        back = _read_xml(tmp_path / "back" / "Annotations" / f"{stem}.xml")
        assert [b[0] for b in back] == [o[0] for o in objects]
        np.testing.assert_allclose([b[2] for b in back], [list(o[1]) for o in objects] or np.zeros((0,)), atol=1e-3)
    assert (tmp_path / "back" / "classes.txt").read_text().split() == CLASSES
    assert (tmp_path / "back/ImageSets/Main/val.txt").read_text() == "img_c\n"


def test_verb_runs_on_a_coco_json_with_images_subset_and_links(devkit, tmp_path, capsys):
    _quiet(convert, devkit, tmp_path / "coco", to="coco")
    ns = argparse.Namespace(src=str(tmp_path / "coco/annotations/instances_train.json"), dst=str(tmp_path / "y"),
                            to="yolo", images=str(tmp_path / "coco/images"), categories="helmet,head", link=True,
                            strict=False)
    assert CONVERT.run(ns, None) == 0
    out = capsys.readouterr().out
    assert out.startswith("coco -> yolo: 2 images (train 2), 3 boxes, 2 classes (helmet, head) in ")
    assert yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())["names"] == {0: "helmet", 1: "head"}
    lines = (tmp_path / "y/labels/train/img_a.txt").read_text().split("\n")
    assert [line.split()[0] for line in lines if line] == ["0", "1"]  # helmet, head; the person dropped
    linked = tmp_path / "y/images/train/img_a.png"
    assert os.stat(linked).st_ino == os.stat(tmp_path / "coco/images/img_a.png").st_ino
    # a data spec names the source as a run's data section does
    done, _ = _quiet(convert, DataConfig(name="voc", root=str(devkit), categories="person"), tmp_path / "s", to="coco")
    assert done["classes"] == ["person"] and done["boxes"] == 2


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_bad_input_writes_nothing(devkit, tmp_path, monkeypatch):
    _quiet(convert, devkit, tmp_path / "yolo", to="yolo")
    label = tmp_path / "yolo/labels/train/img_b.txt"
    label.write_text("0 0.5 0.5 0.25 0.5\n1 0.5 0.5 0.25\n")
    with pytest.raises(DataError, match=r"img_b\.txt:2: expected 5 numbers \(class cx cy w h\), got 4"):
        convert(tmp_path / "yolo" / "data.yaml", tmp_path / "out", to="coco")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
    (devkit / "Annotations" / "img_c.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"img_c\.xml: the XML does not parse"):
        convert(devkit, tmp_path / "out", to="yolo")
    assert not (tmp_path / "out").exists()
    write_devkit(tmp_path / "fresh")
    import zrenie.data.formats.voc as voc_module

    calls = []

    def failing_copy(source, target, link=False):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")

    monkeypatch.setattr(voc_module, "place_image", failing_copy)
    with pytest.raises(WriteError, match=r"cannot write .*out: no space left on device"):
        convert(tmp_path / "fresh", tmp_path / "out", to="voc")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(DataError, match="already exists and is not an empty folder"):
        convert(tmp_path / "fresh", tmp_path / "full", to="coco")
    (tmp_path / "lone").mkdir()
    (tmp_path / "lone" / "instances.json").write_text("{}")
    with pytest.raises(ConfigError, match="pass --images DIR"):
        convert(tmp_path / "lone" / "instances.json", tmp_path / "o2", to="coco")
