"""What the detection formats (`coco` boxes, `voc`, `yolo`) share: records, the dataset, box checks, splits.

A reader turns a format into `(classes, parts)`: class names, index -> name, and the images of each part
of the source (`"train"`, and `"val"` / `"test"` where the source names them), each a `BoxRecord`. A source
without splits is one `"train"` part. `arrange_splits` makes the train / val / test of a run from them and
the writers (`write_coco`, `write_voc`, `write_yolo`) write them back, so `zrenie detect convert` is a
reader and a writer.

Boxes are XYXY absolute pixel edges everywhere here (a box covering pixel columns 0..9 is x1=0, x2=10), the
convention of `tv_tensors.BoundingBoxes` and of the built-in `shapes`; each format's own convention is
converted at its reader and writer.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, stratified_split
from zrenie.errors import ConfigError, DataError
from zrenie.imgproc.io import DEFAULT_BACKGROUND, read_image

# A coordinate this far outside the image is float noise (YOLO's normalised text), clamped without a count.
EDGE_TOLERANCE = 1e-3
PARTS = ("train", "val", "test")


@dataclass
class BoxRecord:
    """One image and its objects.

    Attributes:
        path: the image file.
        width: image width in pixels, as the annotation (or the file's header) says.
        height: image height in pixels.
        boxes: float64 [k, 4] (x1, y1, x2, y2) absolute pixel edges.
        labels: int64 [k] class indices.
        iscrowd: bool [k]: COCO crowd regions and VOC `difficult` objects, which evaluation ignores.
        segments: k COCO segmentations (polygons or RLE), one per box, for instance masks; None when the
            source gives none (VOC, YOLO, COCO read for boxes alone).
    """

    path: str
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    segments: list | None = None

    def select(self, keep: np.ndarray, **changed: Any) -> "BoxRecord":
        """The record with only the objects where `keep` (bool [k]) is set; `changed` replaces fields first."""
        record = dataclasses.replace(self, **changed)
        segments = None if self.segments is None else [s for s, k in zip(self.segments, keep) if k]
        return dataclasses.replace(record, boxes=record.boxes[keep], labels=record.labels[keep],
                                   iscrowd=record.iscrowd[keep], segments=segments)


Parts = dict[str, list[BoxRecord]]


@dataclass
class BoxSource:
    """What a reader found: class names, the images of each part, counts of images left out (e.g.
    "missing_file") and the boxes it clipped or dropped (`BoxFixes`)."""

    classes: list[str]
    parts: Parts
    left_out: dict[str, int]
    fixes: "BoxFixes"


class BoxFileDataset(Dataset):
    """(image, {"boxes", "labels", "iscrowd"}) samples decoded per access.

    The target holds `boxes` (`tv_tensors.BoundingBoxes` XYXY, canvas the image), `labels` (int64 [k]) and
    `iscrowd` (bool [k]), and `masks` (`tv_tensors.Mask` uint8 [k, H, W]) when the records carry segmentations.
    `transform` is set by the loader and moves the boxes and masks with the image.

    Args:
        records: one per image.
        classes: class names, index -> name (no background entry).
        background: grey level transparent image pixels are composited over.
    """

    target_kind = "boxes"
    labels = None  # no single class per image

    def __init__(self, records: Sequence[BoxRecord], classes: Sequence[str], background: int = DEFAULT_BACKGROUND):
        self.records, self.classes, self.background = list(records), list(classes), background
        self.transform = None

    def __len__(self) -> int:
        return len(self.records)

    def target(self, index: int) -> dict[str, Tensor]:
        """The target of one image as the files give it, without decoding the image."""
        from torchvision import tv_tensors

        r = self.records[index]
        boxes = torch.as_tensor(r.boxes, dtype=torch.float32).reshape(-1, 4)
        target = {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(r.height, r.width)),
                  "labels": torch.as_tensor(r.labels, dtype=torch.int64),
                  "iscrowd": torch.as_tensor(r.iscrowd, dtype=torch.bool)}
        if r.segments is not None:
            from zrenie.data.formats.coco import decode_segmentation

            masks = np.zeros((len(r.segments), r.height, r.width), np.uint8)
            for i, segment in enumerate(r.segments):
                masks[i] = decode_segmentation(segment, r.height, r.width, f"{r.path} object {i}")
            target["masks"] = tv_tensors.Mask(torch.from_numpy(masks))
        return target

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        r = self.records[index]
        image = read_image(r.path, channels=3, background=self.background)
        if tuple(image.shape[-2:]) != (r.height, r.width):
            raise DataError(f"image {r.path} is {image.shape[-1]}x{image.shape[-2]} but its annotation says "
                            f"{r.width}x{r.height}")
        target = self.target(index)
        if self.transform is not None:
            return self.transform(image, target)
        return image.float().div_(255), target

    def subset(self, indices: Sequence[int] | Tensor) -> "BoxFileDataset":
        out = BoxFileDataset([self.records[int(i)] for i in indices], self.classes, self.background)
        out.transform = self.transform
        return out


def fit_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes clipped to the image, which of them keep an area, and which reached outside it.

    Args:
        boxes: float [k, 4] (x1, y1, x2, y2) pixel edges.

    Returns:
        (clipped float64 [k, 4]; keep bool [k]: x2 > x1 and y2 > y1 after clipping; outside bool [k]: a
        coordinate more than `EDGE_TOLERANCE` outside the image).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    limits = np.array([width, height, width, height], np.float64)
    outside = ((boxes < -EDGE_TOLERANCE) | (boxes > limits + EDGE_TOLERANCE)).any(axis=1)
    clipped = np.clip(boxes, 0.0, limits)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped, keep, outside


@dataclass
class BoxFixes:
    """Counts boxes clipped to their image or dropped (inverted, empty, or wholly outside) while a dataset is
    read, for one warning at the end; with `strict` the first such box is a DataError naming its file."""

    strict: bool = False
    clipped: int = 0
    dropped: int = 0
    example: str = ""

    def apply(self, record: BoxRecord, where: str) -> BoxRecord:
        """The record with its boxes clipped and the empty ones dropped (with their labels)."""
        boxes, keep, outside = fit_boxes(record.boxes, record.width, record.height)
        bad = np.flatnonzero(outside | ~keep)
        if len(bad):
            if self.strict:
                reason = (f"reaches outside the {record.width}x{record.height} image" if outside[bad[0]]
                          else "is empty or inverted (x2 <= x1 or y2 <= y1)")
                raise DataError(f"{where}: box {np.round(record.boxes[bad[0]], 3).tolist()} (x1, y1, x2, y2) "
                                f"{reason} (data.strict=true)")
            self.clipped += int((outside & keep).sum())
            self.dropped += int((~keep).sum())
            self.example = self.example or where
        return record.select(keep, boxes=boxes)

    def warn(self, dataset: str) -> None:
        if self.clipped or self.dropped:
            warnings.warn(f"dataset {dataset!r}: clipped {self.clipped} box(es) to their image and dropped "
                          f"{self.dropped} empty, inverted or outside one(s), e.g. in {self.example}", stacklevel=3)


def warn_missing(dataset: str, missing: list[str], strict: bool, named_in: str) -> None:
    """One warning counting the image files an annotation names that are not there (an error when strict)."""
    if not missing:
        return
    if strict:
        raise DataError(f"dataset {dataset!r}: {missing[0]} is named in {named_in} but missing (data.strict=true)")
    warnings.warn(f"dataset {dataset!r}: skipped {len(missing)} image(s) named in {named_in} but missing, "
                  f"e.g. {missing[0]}", stacklevel=3)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header (the pixels stay undecoded), or None for an unreadable file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # PIL raises many types for corrupt data
        return None


def parse_categories(value: list | str | None) -> list[str | int] | None:
    """`data.categories` as a list of names (str) or ids (int: a COCO category id, or a class index of the
    other formats); None keeps every category. A string is split at commas (`"person, dog"`), as the command
    line's `data.categories=person,dog` is.
    """
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [item.strip() if isinstance(item, str) else item for item in items]
    if not items or any(item == "" for item in items):
        raise ConfigError(f"config key 'data.categories': expected category names, e.g. person or person,dog, "
                          f"got {value!r}")
    if len(set(items)) != len(items):
        raise ConfigError(f"config key 'data.categories': a category is named twice in {value!r}")
    return items


def choose_classes(classes: Sequence[str], wanted: list[str | int] | None) -> tuple[list[str], np.ndarray]:
    """The kept class names, in the order asked for, and old index -> new index (-1: dropped).

    Raises:
        ConfigError: a name (or index) that is not a class, or one class asked for twice, naming
            `data.categories`.
    """
    classes = list(classes)
    if wanted is None:
        return classes, np.arange(len(classes), dtype=np.int64)
    lookup = np.full(len(classes), -1, np.int64)
    for new, item in enumerate(wanted):
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(classes):
            old = item
        elif isinstance(item, str) and item in classes:
            old = classes.index(item)
        else:
            raise ConfigError(f"config key 'data.categories': no class {item!r} in {', '.join(classes[:20])}")
        if lookup[old] >= 0:
            raise ConfigError(f"config key 'data.categories': class {classes[old]!r} is asked for twice")
        lookup[old] = new
    return [classes[int(np.flatnonzero(lookup == new)[0])] for new in range(len(wanted))], lookup


def relabel(record: BoxRecord, lookup: np.ndarray) -> BoxRecord:
    """The record with labels mapped through `lookup` and the objects of dropped classes (-1) left out."""
    new = lookup[record.labels] if len(record.labels) else record.labels
    return record.select(new >= 0, labels=new)


def arrange_splits(parts: Parts, cfg: DataConfig, dataset: str) -> dict[str, list[BoxRecord]]:
    """Train, val and test of a run from the parts a source names.

    A source with train, val and test keeps them. With train and val only, its val is the test split (as
    `voc_seg` does with VOC's val list) and val is carved from train. What is still missing is a random
    `cfg.val_fraction` of train each (seed `cfg.seed`), as `coco` carves a single JSON.
    """
    out = {"train": list(parts["train"])}
    if "test" in parts:
        out["test"] = list(parts["test"])
        if "val" in parts:
            out["val"] = list(parts["val"])
    elif "val" in parts:
        out["test"] = list(parts["val"])
    missing = [s for s in ("val", "test") if s not in out]
    if missing:
        pool = out["train"]
        *carved, kept = stratified_split(np.zeros(len(pool)), [cfg.val_fraction] * len(missing), cfg.seed)
        out["train"] = [pool[i] for i in kept]
        out.update({s: [pool[i] for i in idx] for s, idx in zip(missing, carved)})
    if not out["train"]:
        raise DataError(f"dataset {dataset!r}: nothing left for train after carving val and test "
                        f"(data.val_fraction={cfg.val_fraction})")
    return out


def box_splits(dataset: str, classes: list[str], splits: dict[str, list[BoxRecord]], cfg: DataConfig,
               left_out: dict[str, int], fixes: BoxFixes) -> DatasetSplits:
    """The `DatasetSplits` of a detection dataset: ImageNet mean/std, `data.size` or one derived from the
    train images (`derive_size`), image and box counts in `extras`."""
    from zrenie.data.formats.image_folder import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD, derive_size

    sets = {s: BoxFileDataset(splits[s], classes, cfg.background) for s in PARTS}
    if cfg.size:
        size, note = cfg.size, f"image size {cfg.size} (data.size={cfg.size}; ImageNet mean/std)"
    else:
        size, note = derive_size([r.path for r in splits["train"]])
    counts = {s: len(d) for s, d in sets.items()}
    boxes = {s: int(sum(len(r.labels) for r in splits[s])) for s in PARTS}
    return DatasetSplits(train=sets["train"], val=sets["val"], test=sets["test"], classes=list(classes),
                         in_channels=3, image_size=size or DEFAULT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                         hflip=True, extras={"size_note": note, "image_counts": {**counts, **left_out},
                                             "box_counts": {**boxes, "clipped": fixes.clipped,
                                                            "dropped": fixes.dropped}})


def unique_names(parts: Parts) -> dict[str, str]:
    """A file name for each image of the parts, unique by stem across them all (VOC names annotations by the
    image's stem, YOLO its label files): the source's base name, with `_1`, `_2` ... added on a clash.
    An image listed in two parts keeps one name."""
    names: dict[str, str] = {}
    stems: set[str] = set()
    for records in parts.values():
        for r in records:
            if r.path in names:
                continue
            source = Path(r.path)
            stem, k = source.stem, 0
            while stem in stems:
                k += 1
                stem = f"{source.stem}_{k}"
            stems.add(stem)
            names[r.path] = stem + source.suffix
    return names


def place_image(source: str | Path, target: Path, link: bool = False) -> None:
    """Copies an image file (or hard-links it with `link`, copying where the file systems differ)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, target)
            return
        except OSError:  # another device or a file system without hard links
            pass
    shutil.copyfile(source, target)


def count_crowds(parts: Parts) -> int:
    return int(sum(r.iscrowd.sum() for records in parts.values() for r in records))


def number_text(value: float) -> str:
    """A coordinate as text: whole numbers without a point, others with 10 significant digits (1e-6 px on
    images up to 10,000 px wide)."""
    return format(float(value), ".10g")


def records_summary(classes: Sequence[str], parts: Parts) -> dict[str, Any]:
    """Counts of a source: images (each once), boxes per part and overall, classes."""
    unique = {r.path: r for records in parts.values() for r in records}
    return {"images": len(unique), "boxes": int(sum(len(r.labels) for r in unique.values())),
            "classes": list(classes), "parts": {p: len(rs) for p, rs in parts.items()}}
