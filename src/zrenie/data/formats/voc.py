"""`voc`: Pascal VOC XML boxes, in the devkit layout or the flat one the course project's hard-hat set ships in.

Layouts (`data.root`):

    root/Annotations/<id>.xml  root/JPEGImages/<file>   root/ImageSets/Main/{train,val,test,trainval}.txt
    root/annotations/<id>.xml  root/images/<file>       (the hard-hat set: helmet / head / person)

The image of an XML is its `<filename>` in the images folder, or else the file of the XML's stem with
an image extension. The devkit's split lists are used when there are any: train is `train.txt` (or
`trainval.txt` less `val.txt`), val and test their lists; `arrange_splits` then makes the run's
splits (a val list without a test list becomes the test split). Without lists every XML is one pool
and val and test are each a random `data.val_fraction` of it (seed `data.seed`), as in `coco`.

Classes: `root/classes.txt` (one name a line) when it exists, and an object named otherwise is a
DataError; else the names the XML files use: VOC's 20 classes in the devkit order when every name is
one of them, else the names sorted. `data.categories=helmet,head` keeps those classes, in that order,
and drops the objects of the others.

Boxes: VOC's `bndbox` holds 1-based, inclusive pixel indices; a box is read as the zero-based pixel
edges (xmin - 1, ymin - 1, xmax, ymax) and written back as (x1 + 1, y1 + 1, x2, y2). Objects marked
`<difficult>1</difficult>` are kept with `iscrowd` True in the target, so evaluation ignores them
as COCO's crowd regions (a detection on them is neither a hit nor a false positive). Boxes reaching
outside the image are clipped to it and inverted or empty ones dropped, counted in one warning
(`data.strict=true`: a DataError). An XML that does not parse, or an object without a name or a numeric
`bndbox`, is a DataError naming the file; a missing image is skipped with one counting warning
(`data.strict=true`: a DataError).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits
from zrenie.data.formats.det_io import (BoxFixes, BoxRecord, BoxSource, Parts, arrange_splits, box_splits,
                                        choose_classes, image_size, number_text, parse_categories, place_image,
                                        relabel, unique_names, warn_missing)
from zrenie.errors import DataError
from zrenie.imgproc.io import IMAGE_EXTENSIONS
from zrenie.registry import DATASETS

LAYOUT = ("root/Annotations/ + root/JPEGImages/ (+ root/ImageSets/Main/*.txt), or root/annotations/*.xml + "
          "root/images/")
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
LIST_NAMES = ("train", "val", "test", "trainval")

# One parsed XML: image file name, width, height, and its objects as (name, [xmin, ymin, xmax, ymax], difficult).
RawObject = tuple[str, list[float], bool]


def find_layout(root: Path) -> tuple[Path, Path, Path | None]:
    """(annotations folder, images folder, split-list folder or None) of a VOC folder."""
    if (root / "Annotations").is_dir():
        lists = root / "ImageSets" / "Main"
        return root / "Annotations", root / "JPEGImages", lists if lists.is_dir() else None
    if (root / "annotations").is_dir():
        return root / "annotations", root / "images", None
    raise DataError(f"dataset 'voc': {root} has neither Annotations/ nor annotations/ (expected layout: {LAYOUT})")


def _number(element: ET.Element | None, key: str) -> float | None:
    text = element.findtext(key) if element is not None else None
    try:
        return float(text.strip()) if text is not None else None
    except ValueError:
        return None


def parse_voc_xml(path: Path) -> tuple[str, int, int, list[RawObject]]:
    """(filename, width, height, objects) of one VOC annotation; width and height are 0 when it has none.

    Raises:
        DataError: XML that does not parse, another root element than <annotation>, or an object without a
            name or a numeric bndbox, naming the file.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(f"{path}: the XML does not parse ({err})") from None
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror or type(err).__name__})") from None
    if root.tag != "annotation":
        raise DataError(f"{path}: expected a VOC <annotation>, found <{root.tag}>")
    size = root.find("size")
    width, height = (int(_number(size, key) or 0) for key in ("width", "height"))
    objects = []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{path}: object {k} has no <name>")
        coords = [_number(obj.find("bndbox"), key) for key in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            raise DataError(f"{path}: object {k} ({name}) needs a <bndbox> with numeric xmin, ymin, xmax, ymax")
        difficult = _number(obj, "difficult") or 0
        objects.append((name, coords, bool(difficult)))
    return (root.findtext("filename") or "").strip(), width, height, objects


def _split_lists(lists: Path | None, annotations: Path) -> dict[str, list[str]]:
    """Image ids per part from the devkit's split lists, or every XML as "train" when there are none."""
    found = {}
    for name in LIST_NAMES:
        path = lists / f"{name}.txt" if lists is not None else None
        if path is not None and path.is_file():
            found[name] = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not found:
        return {"train": sorted(p.stem for p in annotations.glob("*.xml"))}
    if "train" not in found and "trainval" not in found:
        raise DataError(f"dataset 'voc': {lists} has {', '.join(f'{n}.txt' for n in found)} but no train.txt "
                        f"or trainval.txt")
    trainval = found.pop("trainval", None)
    if "train" not in found:
        held = set(found.get("val", []))
        found["train"] = [i for i in trainval if i not in held]
    return {p: found[p] for p in ("train", "val", "test") if p in found}


def _image_of(images: Path, filename: str, stem: str) -> Path | None:
    candidates = [images / filename] if filename else []
    candidates += [images / f"{stem}{ext}" for ext in IMAGE_EXTENSIONS]
    return next((c for c in candidates if c.is_file()), None)


def _class_names(root: Path, raw: dict[str, tuple], annotations: Path) -> list[str]:
    listed = root / "classes.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        for stem, (_, _, _, objects) in raw.items():
            stray = next((o[0] for o in objects if o[0] not in names), None)
            if stray is not None:
                raise DataError(f"{annotations / f'{stem}.xml'}: object {stray!r} is not in {listed}")
        return names
    used = {o[0] for _, _, _, objects in raw.values() for o in objects}
    return list(VOC_CLASSES) if used <= set(VOC_CLASSES) else sorted(used)


def read_voc(root: str | Path, categories: list[str | int] | None = None, strict: bool = False) -> BoxSource:
    """The classes and images of a VOC folder (see the module docstring for the layouts and rules)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset 'voc': {root} is not a folder (expected layout: {LAYOUT})")
    annotations, images, lists = find_layout(root)
    if not images.is_dir():
        raise DataError(f"dataset 'voc': {images} is not a folder (expected layout: {LAYOUT})")
    ids = _split_lists(lists, annotations)
    raw = {}
    for part, stems in ids.items():
        for stem in stems:
            if stem not in raw:
                path = annotations / f"{stem}.xml"
                if not path.is_file():
                    raise DataError(f"dataset 'voc': {path} is missing"
                                    + (f" (listed in {lists / f'{part}.txt'})" if lists is not None else ""))
                raw[stem] = parse_voc_xml(path)
    if not raw:
        raise DataError(f"dataset 'voc': no XML annotation in {annotations} (expected layout: {LAYOUT})")
    all_classes = _class_names(root, raw, annotations)
    classes, lookup = choose_classes(all_classes, categories)
    index = {name: k for k, name in enumerate(all_classes)}
    fixes, records, missing = BoxFixes(strict), {}, []
    for stem, (filename, width, height, objects) in raw.items():
        image = _image_of(images, filename, stem)
        size = (width, height) if width > 0 and height > 0 else (image_size(image) if image else None)
        if image is None or size is None:
            missing.append(str(image or images / (filename or stem)))
            continue
        boxes = np.array([o[1] for o in objects], np.float64).reshape(-1, 4) - [1.0, 1.0, 0.0, 0.0]
        record = BoxRecord(str(image), int(size[0]), int(size[1]), boxes,
                           np.array([index[o[0]] for o in objects], np.int64),
                           np.array([o[2] for o in objects], bool))
        records[stem] = fixes.apply(relabel(record, lookup), str(annotations / f"{stem}.xml"))
    warn_missing("voc", missing, strict, str(annotations))
    fixes.warn("voc")
    parts = {p: [records[s] for s in stems if s in records] for p, stems in ids.items()}
    return BoxSource(classes, parts, {"missing_file": len(missing)}, fixes)


def voc_xml(record: BoxRecord, filename: str, classes: list[str]) -> ET.ElementTree:
    """The VOC annotation of one image: boxes as 1-based inclusive indices, `iscrowd` as `difficult`."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for key, value in (("width", record.width), ("height", record.height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for box, label, crowd in zip(record.boxes, record.labels, record.iscrowd):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = classes[int(label)]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "1" if crowd else "0"
        bndbox = ET.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box + [1.0, 1.0, 0.0, 0.0]):
            ET.SubElement(bndbox, key).text = number_text(value)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def write_voc(classes: list[str], parts: Parts, dst: Path, link: bool = False, final: Path | None = None) -> None:
    """Writes the devkit layout: Annotations/, JPEGImages/ (the image files as they are, copied or
    hard-linked), ImageSets/Main/<part>.txt (and trainval.txt when there are train and val), and
    classes.txt, which keeps the class order and the classes no object uses."""
    names = unique_names(parts)
    (dst / "Annotations").mkdir(parents=True, exist_ok=True)
    (dst / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    written = set()
    for records in parts.values():
        for r in records:
            if r.path in written:
                continue
            written.add(r.path)
            name = names[r.path]
            place_image(r.path, dst / "JPEGImages" / name, link)
            voc_xml(r, name, classes).write(dst / "Annotations" / f"{Path(name).stem}.xml", encoding="unicode")
    lists = dst / "ImageSets" / "Main"
    lists.mkdir(parents=True, exist_ok=True)
    listed = {p: [Path(names[r.path]).stem for r in records] for p, records in parts.items()}
    if "train" in listed and "val" in listed:
        listed["trainval"] = listed["train"] + listed["val"]
    for part, stems in listed.items():
        (lists / f"{part}.txt").write_text("".join(f"{s}\n" for s in stems))


@DATASETS.register("voc", tags=("boxes",))
def voc(cfg: DataConfig, target: str = "boxes") -> DatasetSplits:
    """Pascal VOC XML boxes (see the module docstring for the layouts, classes and rules).

    `data.size` defaults to the size derived from the train images (`derive_size`); train crops and eval
    resizes image and boxes to it. Mean/std are ImageNet's.
    """
    if cfg.root is None:
        raise DataError(f"dataset 'voc' needs data.root=PATH (expected layout: {LAYOUT})")
    source = read_voc(cfg.root, parse_categories(cfg.categories), cfg.strict)
    splits = arrange_splits(source.parts, cfg, "voc")
    return box_splits("voc", source.classes, splits, cfg, source.left_out, source.fixes)
