"""`coco`: COCO instance annotations (an `instances_*.json`) as semantic masks or as boxes of chosen categories.

Keys:

    data.root         the folder of the images the JSON names (its `file_name` entries), e.g. coco/train2017
    data.ann          the instances JSON, e.g. coco/annotations/instances_train2017.json
    data.categories   category names (or COCO category ids) to segment, a list or a comma string:
                      `person` gives the classes background / person, `person,dog` background / person /
                      dog in that order; null keeps every category of the JSON, in category-id order

The mask of an image is drawn at the JSON's `height` x `width` from its annotations of the chosen
categories; annotations of other categories are background. Segmentations are decoded by
`pycocotools.mask`: polygons (several parts merged), uncompressed RLE and compressed RLE. Overlaps
follow one rule: crowd regions (`iscrowd=1`) are painted first, as 255 (`segment.ignore_index`,
counted nowhere), then the other annotations in decreasing order of `area` (ties: increasing
annotation id), so a smaller object lying on a larger one stays visible (a cup on a table, a person
on a horse) and a person drawn inside a crowd region keeps its class.

Images: those with at least one annotation of the chosen categories (crowd ones included); the rest
would be all background, and the count of them left out is in `extras["image_counts"]`. An image the
JSON names that is missing under `data.root` is skipped, and all such are counted in one warning, or
with `data.strict=true` it is a one-line DataError. A file whose size differs from the JSON's, or that
cannot be decoded, is a DataError naming it when it is read.

Splits: the one JSON gives all three: val and test are each a random `data.val_fraction` of its images
(seed `data.seed`) and train is the rest. A separate val JSON (COCO's val2017) is not read as a split of
the same run.

Boxes (target "boxes", the `detect` task): every image of the JSON whose file is there, with or without
objects (an image without one is a negative that evaluation counts false positives on), in image-id
order. Classes are the chosen categories without a background entry, labels 0..k-1 in the order above.
An annotation's `bbox` (x, y, width, height in pixels) becomes the XYXY box (x, y, x + width,
y + height); crowd regions are kept, with `iscrowd` True in the target (evaluation ignores them).
Boxes reaching outside the image are clipped to it and empty ones dropped, counted in one warning
(`data.strict=true`: a DataError). An annotation whose `category_id` is not among the JSON's categories,
or without a `bbox` of four numbers, is a DataError naming the JSON. `read_coco_boxes` and `write_coco`
are what `zrenie detect convert` reads and writes.

Instances (target "instances", Mask R-CNN): the boxes as above, each with its object's `segmentation`
(polygons or RLE) decoded into a mask when its image is read; an annotation without one is a DataError.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, stratified_split
from zrenie.data.formats.det_io import (BoxFixes, BoxRecord, BoxSource, Parts, arrange_splits, box_splits,
                                        parse_categories, place_image, unique_names, warn_missing)
from zrenie.data.formats.image_folder import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from zrenie.errors import ConfigError, DataError
from zrenie.imgproc.io import DEFAULT_BACKGROUND, read_image
from zrenie.registry import DATASETS

IGNORE = 255  # segment.ignore_index's default: crowd regions count nowhere
MAX_CLASSES = 254  # class indices stay below the ignore value in a uint8 mask
USAGE = "data.root=IMAGE_FOLDER data.ann=INSTANCES_JSON [data.categories=person]"

# One annotation as the mask is drawn from it: the value painted (a class index or IGNORE) and its segmentation.
Paint = tuple[int, Any]


def decode_segmentation(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as a bool [H, W] mask, via pycocotools.

    Polygons with fewer than three points cover nothing and are left out (pycocotools refuses them).

    Raises:
        DataError: an RLE of another size than the image, or a segmentation of no known form; `where`
            names the annotation.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise DataError(f"{where}: RLE size {list(segmentation['size'])} but the image is [{height}, {width}] "
                            f"(height, width)")
        counts = segmentation["counts"]
        rle = mask_utils.frPyObjects(segmentation, height, width) if isinstance(counts, list) else segmentation
    else:
        raise DataError(f"{where}: segmentation is neither polygons nor an RLE with counts and size")
    with warnings.catch_warnings():  # pycocotools' decode trips NumPy 2's notice about __array__(copy=)
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def render_mask(paints: Sequence[Paint], height: int, width: int, where: str) -> np.ndarray:
    """The uint8 [H, W] mask of one image: 0, then each (value, segmentation) painted over what lies under it."""
    mask = np.zeros((height, width), np.uint8)
    for value, segmentation in paints:
        mask[decode_segmentation(segmentation, height, width, where)] = value
    return mask


class CocoMaskDataset(Dataset):
    """(image, mask) pairs; the mask drawn from the annotations on access (`render_mask`).

    Args:
        records: (image path, height, width, paints in painting order) per image.
        classes: class names, index 0 the background.
        background: grey level transparent image pixels are composited over.
    """

    target_kind = "mask"
    labels = None

    def __init__(self, records: Sequence[tuple[str, int, int, list[Paint]]], classes: Sequence[str],
                 background: int = DEFAULT_BACKGROUND):
        self.records, self.classes, self.background = list(records), list(classes), background
        self.transform = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        from torchvision import tv_tensors

        path, height, width, paints = self.records[index]
        image = read_image(path, channels=3, background=self.background)
        if tuple(image.shape[-2:]) != (height, width):
            raise DataError(f"image {path} is {image.shape[-1]}x{image.shape[-2]} but the COCO JSON says "
                            f"{width}x{height}")
        mask = render_mask(paints, height, width, f"annotations of {path}")
        target = tv_tensors.Mask(torch.from_numpy(mask).long())
        if self.transform is not None:
            return self.transform(image, target)
        return image.float().div_(255), target

    def subset(self, indices: Sequence[int] | Tensor) -> "CocoMaskDataset":
        out = CocoMaskDataset([self.records[int(i)] for i in indices], self.classes, self.background)
        out.transform = self.transform
        return out


def load_instances(path: Path) -> Any:
    """A `pycocotools.coco.COCO` index of an instances JSON (its progress lines kept off the terminal).

    Raises:
        DataError: a missing or unreadable file, invalid JSON, or a JSON without images, annotations and
            categories, naming the file.
    """
    from pycocotools.coco import COCO

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise DataError(f"dataset 'coco': cannot read data.ann {path} ({err.strerror or type(err).__name__})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"dataset 'coco': data.ann {path} is not valid JSON ({err})") from None
    absent = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if absent:
        raise DataError(f"dataset 'coco': data.ann {path} has no {', '.join(absent)} (expected a COCO instances JSON)")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def choose_categories(coco: Any, wanted: list[str | int] | None,
                      limit: int | None = MAX_CLASSES) -> tuple[list[str], dict[int, int]]:
    """Class names (background first) and COCO category id -> class index of the chosen categories.

    Raises:
        ConfigError: a name or id the JSON does not have, naming `data.categories`; more than `limit`
            categories (masks keep class indices below the ignore value; boxes have no limit: None).
    """
    cats = sorted(coco.cats.values(), key=lambda c: c["id"])
    by_name, by_id = {c["name"]: c for c in cats}, {c["id"]: c for c in cats}
    if wanted is None:
        chosen = cats
    else:
        chosen = []
        for item in wanted:
            cat = by_id.get(item) if isinstance(item, int) and not isinstance(item, bool) else by_name.get(str(item))
            if cat is None:
                names = ", ".join(c["name"] for c in cats[:12]) + (", ..." if len(cats) > 12 else "")
                raise ConfigError(f"config key 'data.categories': no category {item!r} in the JSON (has {names})")
            chosen.append(cat)
    if not chosen:
        raise DataError("dataset 'coco': the JSON lists no categories")
    if limit is not None and len(chosen) > limit:
        raise ConfigError(f"config key 'data.categories': at most {limit} categories, got {len(chosen)}")
    return ["background", *(c["name"] for c in chosen)], {c["id"]: k for k, c in enumerate(chosen, 1)}


def _paints(annotations: list[dict], labels: dict[int, int], where: str) -> list[Paint]:
    """The chosen annotations of one image in painting order: crowds (as IGNORE), then by decreasing area."""
    chosen = [a for a in annotations if a.get("category_id") in labels]
    for a in chosen:
        if "segmentation" not in a:
            raise DataError(f"dataset 'coco': {where}: annotation {a.get('id')} has no segmentation")
    crowds = [(IGNORE, a["segmentation"]) for a in chosen if a.get("iscrowd", 0)]
    objects = sorted((a for a in chosen if not a.get("iscrowd", 0)),
                     key=lambda a: (-float(a.get("area", 0.0)), a.get("id", 0)))
    return crowds + [(labels[a["category_id"]], a["segmentation"]) for a in objects]


def coco_records(coco: Any, labels: dict[int, int], image_root: Path, ann_path: Path,
                 strict: bool) -> tuple[list[tuple[str, int, int, list[Paint]]], dict[str, int]]:
    """(image path, height, width, paints) of every image with a chosen annotation and a file, in image-id
    order, and the counts of images left out ("no_category", "missing_file").

    Raises:
        DataError: an image entry without id, file_name, height or width; with `strict`, a missing file.
    """
    records, no_category, missing = [], 0, []
    for image_id in sorted(coco.imgs):
        entry = coco.imgs[image_id]
        if not all(k in entry for k in ("file_name", "height", "width")):
            raise DataError(f"dataset 'coco': {ann_path}: image {image_id} lacks file_name, height or width")
        paints = _paints(coco.imgToAnns.get(image_id, []), labels, str(ann_path))
        if not paints:
            no_category += 1
            continue
        path = str(image_root / entry["file_name"])
        if not os.path.isfile(path):
            if strict:
                raise DataError(f"dataset 'coco': {path} is named in {ann_path} but missing (data.strict=true)")
            missing.append(path)
            continue
        records.append((path, int(entry["height"]), int(entry["width"]), paints))
    if missing:
        warnings.warn(f"dataset 'coco': skipped {len(missing)} image(s) named in {ann_path} but missing, "
                      f"e.g. {missing[0]}", stacklevel=3)
    return records, {"no_category": no_category, "missing_file": len(missing)}


def _box_of(annotation: dict, where: str) -> list[float]:
    """An annotation's `bbox` (x, y, w, h) as XYXY pixel edges, or a DataError naming the JSON."""
    bbox = annotation.get("bbox")
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox)):
        raise DataError(f"{where}: annotation {annotation.get('id')} has no bbox of four numbers (x, y, w, h), "
                        f"got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def read_coco_boxes(ann_path: str | Path, image_root: str | Path, categories: list[str | int] | None = None,
                    strict: bool = False, masks: bool = False) -> BoxSource:
    """The boxes of an instances JSON as one part, "train" (see the module docstring for the rules); with
    `masks`, each box's segmentation too (`BoxRecord.segments`)."""
    ann_path, image_root = Path(ann_path).expanduser(), Path(image_root).expanduser()
    instances = load_instances(ann_path)
    names, index = choose_categories(instances, categories, limit=None)
    fixes, records, missing = BoxFixes(strict), [], []
    for image_id in sorted(instances.imgs):
        entry = instances.imgs[image_id]
        if not all(k in entry for k in ("file_name", "height", "width")):
            raise DataError(f"dataset 'coco': {ann_path}: image {image_id} lacks file_name, height or width")
        boxes, labels, crowd, segments = [], [], [], []
        for a in instances.imgToAnns.get(image_id, []):
            if a.get("category_id") not in instances.cats:
                raise DataError(f"{ann_path}: annotation {a.get('id')} has category_id {a.get('category_id')!r}, "
                                f"which is not among the JSON's categories")
            if a["category_id"] in index:
                boxes.append(_box_of(a, str(ann_path)))
                labels.append(index[a["category_id"]] - 1)  # no background entry among box classes
                crowd.append(bool(a.get("iscrowd", 0)))
                if masks:
                    if not a.get("segmentation"):
                        raise DataError(f"{ann_path}: annotation {a.get('id')} has no segmentation; instance "
                                        f"masks (Mask R-CNN) need one for every object")
                    segments.append(a["segmentation"])
        path = image_root / entry["file_name"]
        if not path.is_file():
            missing.append(str(path))
            continue
        record = BoxRecord(str(path), int(entry["width"]), int(entry["height"]),
                           np.array(boxes, np.float64).reshape(-1, 4), np.array(labels, np.int64),
                           np.array(crowd, bool), segments if masks else None)
        records.append(fixes.apply(record, f"{ann_path} (image {image_id}, {entry['file_name']})"))
    warn_missing("coco", missing, strict, str(ann_path))
    fixes.warn("coco")
    return BoxSource(names[1:], {"train": records}, {"missing_file": len(missing)}, fixes)


def write_coco(classes: list[str], parts: Parts, dst: Path, link: bool = False, final: Path | None = None) -> None:
    """Writes images/ (the image files as they are, copied or hard-linked) and annotations/instances_<part>.json
    per part: category ids 1..k in class order, image ids shared by all parts, `bbox` (x, y, w, h), `area`
    w * h, `iscrowd`, and an empty `segmentation` (boxes carry no mask)."""
    names = unique_names(parts)
    image_ids = {path: k for k, path in enumerate(names, 1)}
    categories = [{"id": k, "name": name} for k, name in enumerate(classes, 1)]
    (dst / "annotations").mkdir(parents=True, exist_ok=True)
    next_id, placed = 1, set()
    for part, records in parts.items():
        images, annotations = [], []
        for r in records:
            if r.path not in placed:
                place_image(r.path, dst / "images" / names[r.path], link)
                placed.add(r.path)
            images.append({"id": image_ids[r.path], "file_name": names[r.path], "width": r.width,
                           "height": r.height})
            for (x1, y1, x2, y2), label, crowd in zip(r.boxes.tolist(), r.labels.tolist(), r.iscrowd.tolist()):
                annotations.append({"id": next_id, "image_id": image_ids[r.path], "category_id": label + 1,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                    "iscrowd": int(crowd), "segmentation": []})
                next_id += 1
        data = {"images": images, "annotations": annotations, "categories": categories}
        (dst / "annotations" / f"instances_{part}.json").write_text(json.dumps(data))


@DATASETS.register("coco", tags=("mask", "boxes", "instances"))
def coco(cfg: DataConfig, target: str = "mask") -> DatasetSplits:
    """COCO instances as masks (target "mask") or boxes (target "boxes") of `data.categories` (see the
    module docstring for the keys and rules).

    Masks: `data.size` defaults to 224; train crops and eval resizes image and mask to it (masks by nearest
    neighbour). Boxes: `data.size` defaults to the size derived from the train images (`derive_size`).
    Mean/std are ImageNet's.
    """
    if cfg.root is None or cfg.ann is None:
        raise DataError(f"dataset 'coco' needs {'data.root' if cfg.root is None else 'data.ann'}=PATH ({USAGE})")
    image_root, ann_path = Path(cfg.root).expanduser(), Path(cfg.ann).expanduser()
    if not image_root.is_dir():
        raise DataError(f"dataset 'coco': data.root {image_root} is not a folder ({USAGE})")
    if target in ("boxes", "instances"):
        source = read_coco_boxes(ann_path, image_root, parse_categories(cfg.categories), cfg.strict,
                                 masks=target == "instances")
        if not source.parts["train"]:
            raise DataError(f"dataset 'coco': none of the images of {ann_path} is in {image_root}")
        splits = arrange_splits(source.parts, cfg, "coco")
        return box_splits("coco", source.classes, splits, cfg, source.left_out, source.fixes)
    instances = load_instances(ann_path)
    classes, labels = choose_categories(instances, parse_categories(cfg.categories))
    records, left_out = coco_records(instances, labels, image_root, ann_path, cfg.strict)
    if not records:
        raise DataError(f"dataset 'coco': no image of {ann_path} holds an annotation of {', '.join(classes[1:4])}"
                        f"{'...' if len(classes) > 4 else ''} and is in {image_root}")
    val_idx, test_idx, train_idx = stratified_split(np.zeros(len(records)), [cfg.val_fraction] * 2, cfg.seed)
    if len(train_idx) == 0:
        raise DataError(f"dataset 'coco': nothing left for train of the {len(records)} image(s) of {ann_path} "
                        f"after carving val and test (data.val_fraction={cfg.val_fraction})")
    sets = {s: CocoMaskDataset([records[i] for i in idx], classes, cfg.background)
            for s, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))}
    size = cfg.size or DEFAULT_SIZE
    return DatasetSplits(train=sets["train"], val=sets["val"], test=sets["test"], classes=classes, in_channels=3,
                         image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, hflip=True,
                         extras={"size_note": f"image size {size} (data.size; ImageNet mean/std)",
                                 "image_counts": {**{s: len(d) for s, d in sets.items()}, **left_out}})
