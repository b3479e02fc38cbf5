"""`yolo`: YOLO txt labels described by a data YAML, as Ultralytics lays a dataset out.

`data.root` is the data YAML, or a folder holding one (`data.yaml`, or its only `*.yaml`):

    path: /data/hardhat        # the dataset folder; relative: to the YAML's folder; absent: the YAML's folder
    train: images/train        # a folder of images (searched recursively), a .txt listing images (relative
    val: images/val            #   lines: to the list's folder), an image, or a list of these
    test: images/test          # optional
    names: [helmet, head, person]   # or {0: helmet, 1: head, 2: person}

The labels of `.../images/.../a.png` are `.../labels/.../a.txt` (the last `images` folder of the path
becomes `labels`, the suffix `.txt`): one line per object, `class cx cy w h`, the class an index into
`names` and the box's centre and size divided by the image's width and height. An image without a label
file, or with an empty one, has no objects.

Splits: a part whose images are those of an earlier one (`val: images/train`) is not a split of its own;
then `arrange_splits` makes train / val / test as for the other formats (a val without a test becomes the
test split and val is carved from train). `data.categories=helmet,head` keeps those classes in that
order and drops the other objects. YOLO has no crowd flag: `iscrowd` is all False.

Errors, each one line naming the file (and line): a YAML that does not parse or lacks train, val or names;
a label line of other than 5 numbers; a class outside `names`. Boxes reaching outside the image are
clipped and empty ones dropped, counted in one warning (`data.strict=true`: a DataError); a listed image
that is missing or unreadable is skipped with one counting warning (`data.strict=true`: a DataError).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits
from zrenie.data.formats.det_io import (BoxFixes, BoxRecord, BoxSource, Parts, arrange_splits, box_splits,
                                        choose_classes, count_crowds, image_size, number_text, parse_categories,
                                        place_image, relabel, unique_names, warn_missing)
from zrenie.errors import DataError
from zrenie.imgproc.io import find_images
from zrenie.registry import DATASETS

LAYOUT = "data.root=DATA_YAML (path, train, val, optional test, names) with images/ and labels/*.txt beside"


def find_yaml(root: str | Path) -> Path:
    """The data YAML itself, or the one in a folder (`data.yaml` first)."""
    root = Path(root).expanduser()
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError(f"dataset 'yolo': {root} does not exist ({LAYOUT})")
    if (root / "data.yaml").is_file():
        return root / "data.yaml"
    found = sorted([*root.glob("*.yaml"), *root.glob("*.yml")])
    if len(found) != 1:
        raise DataError(f"dataset 'yolo': {root} holds {len(found)} YAML files"
                        f"{' (' + ', '.join(p.name for p in found[:4]) + ')' if found else ''}; "
                        f"pass the data YAML itself as data.root")
    return found[0]


def load_data_yaml(path: Path) -> tuple[list[str], Path, dict[str, Any]]:
    """(class names, dataset folder, {part: the YAML's entry}) of a data YAML.

    Raises:
        DataError: unreadable YAML, not a mapping, no train / val / names, or names that are not a list or a
            {0: name, 1: name, ...} mapping, naming the file.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror or type(err).__name__})") from None
    except yaml.YAMLError as err:
        raise DataError(f"{path}: the YAML does not parse ({str(err).splitlines()[0]})") from None
    absent = [k for k in ("train", "val", "names") if not isinstance(data, dict) or not data.get(k)]
    if absent:
        raise DataError(f"{path}: no {', '.join(absent)} (a YOLO data YAML has path, train, val, names)")
    names = data["names"]
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise DataError(f"{path}: names must be a list or a mapping of 0..{len(names) - 1} to names")
        names = [names[k] for k in range(len(names))]
    if not isinstance(names, list):
        raise DataError(f"{path}: names must be a list or a mapping of 0..n-1 to names, got {type(names).__name__}")
    base = Path(str(data["path"])).expanduser() if data.get("path") else path.parent
    base = base if base.is_absolute() else path.parent / base
    return [str(n) for n in names], base, {p: data[p] for p in ("train", "val", "test") if data.get(p)}


def _images_of(entry: Any, base: Path, where: str) -> tuple[list[Path], list[str]]:
    """The image files of one YAML entry, and the ones a list file names that are not there."""
    found, missing = [], []
    for item in entry if isinstance(entry, list) else [entry]:
        path = base / str(item)
        if path.suffix.lower() == ".txt" and path.is_file():
            for line in filter(str.strip, path.read_text().splitlines()):
                listed = path.parent / line.strip()
                if listed.is_file():
                    found.append(listed)
                else:
                    missing.append(str(listed))
        elif path.exists():
            found += find_images(path, recursive=True)
        else:
            raise DataError(f"{where}: {path} does not exist")
    return found, missing


def label_path(image: Path) -> Path:
    """Where the labels of an image are: the last `images` folder of its path as `labels`, suffix `.txt`."""
    sep = os.sep
    text = str(image)
    if f"{sep}images{sep}" in text:
        head, tail = text.rsplit(f"{sep}images{sep}", 1)
        text = f"{head}{sep}labels{sep}{tail}"
    return Path(text).with_suffix(".txt")


def parse_label_file(path: Path, num_classes: int, yaml_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(classes int64 [k], boxes float64 [k, 4] normalised (cx, cy, w, h)) of one label file.

    Raises:
        DataError: a line of other than 5 numbers, a non-finite number, or a class that is not an index into
            the YAML's names, naming the file and line.
    """
    classes, boxes = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        if len(fields) != 5:
            raise DataError(f"{where}: expected 5 numbers (class cx cy w h), got {len(fields)}")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise DataError(f"{where}: {line.strip()!r} is not 5 numbers (class cx cy w h)") from None
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"{where}: {line.strip()!r} holds a number that is not finite")
        if values[0] != int(values[0]) or not 0 <= values[0] < num_classes:
            raise DataError(f"{where}: class {fields[0]} is outside the {num_classes} names of {yaml_path}")
        classes.append(int(values[0]))
        boxes.append(values[1:])
    return np.array(classes, np.int64), np.array(boxes, np.float64).reshape(-1, 4)


def _part_records(images: list[Path], names: list[str], yaml_path: Path, fixes: BoxFixes,
                  lookup: np.ndarray, missing: list[str]) -> list[BoxRecord]:
    records = []
    for image in images:
        size = image_size(image)
        if size is None:
            missing.append(str(image))
            continue
        width, height = size
        labels_file = label_path(image)
        classes, boxes = (parse_label_file(labels_file, len(names), yaml_path) if labels_file.is_file()
                          else (np.zeros(0, np.int64), np.zeros((0, 4))))
        cx, cy, w, h = boxes.T
        pixels = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
                           (cy + h / 2) * height], axis=1)
        record = BoxRecord(str(image), width, height, pixels, classes, np.zeros(len(classes), bool))
        records.append(fixes.apply(relabel(record, lookup), str(labels_file)))
    return records


def read_yolo(root: str | Path, categories: list[str | int] | None = None, strict: bool = False) -> BoxSource:
    """The classes and images of a YOLO dataset (see the module docstring for the layout and rules)."""
    yaml_path = find_yaml(root)
    names, base, entries = load_data_yaml(yaml_path)
    classes, lookup = choose_classes(names, categories)
    fixes, parts, seen, missing = BoxFixes(strict), {}, [], []
    for part, entry in entries.items():
        images, absent = _images_of(entry, base, f"{yaml_path}: {part}")
        missing += absent
        if images in seen:  # the same images as an earlier part: no split of its own
            continue
        seen.append(images)
        parts[part] = _part_records(images, names, yaml_path, fixes, lookup, missing)
    warn_missing("yolo", missing, strict, str(yaml_path))
    fixes.warn("yolo")
    return BoxSource(classes, parts, {"missing_file": len(missing)}, fixes)


def write_yolo(classes: list[str], parts: Parts, dst: Path, link: bool = False, final: Path | None = None) -> None:
    """Writes images/<part>/ (the image files as they are, copied or hard-linked), labels/<part>/*.txt (an
    empty file for an image without objects) and data.yaml, whose `path` is `final` (the folder `dst` will
    be renamed to), absolute. A source without val gets `val: images/train`, which reads back as no val.
    YOLO has no crowd flag: crowd and difficult boxes are written as ordinary ones, counted in a warning."""
    import yaml

    names = unique_names(parts)
    for part, records in parts.items():
        for r in records:
            name = names[r.path]
            place_image(r.path, dst / "images" / part / name, link)
            (dst / "labels" / part).mkdir(parents=True, exist_ok=True)
            lines = []
            for (x1, y1, x2, y2), label in zip(r.boxes, r.labels):
                values = ((x1 + x2) / 2 / r.width, (y1 + y2) / 2 / r.height, (x2 - x1) / r.width,
                          (y2 - y1) / r.height)
                lines.append(" ".join([str(int(label)), *(number_text(v) for v in values)]) + "\n")
            (dst / "labels" / part / f"{Path(name).stem}.txt").write_text("".join(lines))
    data = {"path": str(Path(final or dst).resolve()), "train": "images/train",
            "val": "images/val" if "val" in parts else "images/train"}
    if "test" in parts:
        data["test"] = "images/test"
    data["names"] = {k: name for k, name in enumerate(classes)}
    (dst / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    crowds = count_crowds(parts)
    if crowds:
        warnings.warn(f"YOLO labels have no crowd or difficult flag: {crowds} such box(es) written to {final or dst} "
                      f"as ordinary ones", stacklevel=2)


@DATASETS.register("yolo", tags=("boxes",))
def yolo(cfg: DataConfig, target: str = "boxes") -> DatasetSplits:
    """YOLO txt labels with their data YAML (see the module docstring for the layout and rules).

    `data.size` defaults to the size derived from the train images (`derive_size`); train crops and eval
    resizes image and boxes to it. Mean/std are ImageNet's.
    """
    if cfg.root is None:
        raise DataError(f"dataset 'yolo' needs data.root=PATH ({LAYOUT})")
    source = read_yolo(cfg.root, parse_categories(cfg.categories), cfg.strict)
    if "train" not in source.parts:
        raise DataError(f"dataset 'yolo': the data YAML of {cfg.root} has no train images")
    splits = arrange_splits(source.parts, cfg, "yolo")
    return box_splits("yolo", source.classes, splits, cfg, source.left_out, source.fixes)
