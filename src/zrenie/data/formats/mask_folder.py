"""`mask_folder`: images and their masks in two folders with matching file stems (PH2, ISIC, most medical sets).

Two layouts are read:

    root/images/<name>.<ext>   root/masks/<name>.png              one pool: val and test are carved from it
    root/train/images/ ...     root/train/masks/ ...              fixed splits; val/ and test/ (each with
                                                                  images/ and masks/) are optional

A mask is a single-channel PNG (or any format Pillow reads) of class indices at its image's size;
palette PNGs are read as their indices. Values: 0 is the background; `segment.ignore_index` (255)
marks pixels that count nowhere. Binary masks saved as 0/255 (ISIC, PH2 exports) are read as 0/1
when every mask of the dataset holds only those two values and `root/classes.txt`, if there is one, names at
most two classes (with more, 255 is the ignore value). Class names come from `root/classes.txt`
(one per line, the background first) when it exists, else "background", "class_1", ...

An image without a mask, a mask without an image, a mask whose size differs from its image and a
value outside the classes are one-line DataErrors naming the file (with `data.strict=false`, images
without masks are skipped with one counting warning instead).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, stratified_split
from zrenie.data.formats.image_folder import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD, derive_size
from zrenie.errors import DataError
from zrenie.imgproc.io import DEFAULT_BACKGROUND, IMAGE_EXTENSIONS, read_image
from zrenie.registry import DATASETS

LAYOUT = "root/images/ + root/masks/ with matching stems, or root/train/{images,masks}/ with optional val/ and test/"
BINARY_SAVED_AS = 255  # 0/255 masks: the object saved at full brightness
IGNORE_VALUE = 255  # pixels counted nowhere (segment.ignore_index's default; VOC's object borders)


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file as uint8 [H, W] class indices (a palette PNG's indices, not its colours)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "1", "I", "I;16"):
                raise DataError(f"mask {path}: expected one channel of class indices, got mode {im.mode}")
            array = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"not a readable mask: {path} ({type(err).__name__})") from None
    if array.max(initial=0) > 255:
        raise DataError(f"mask {path}: values up to {array.max()}, expected class indices below 256")
    return array.astype(np.uint8)


class MaskFileDataset(Dataset):
    """(image, mask) pairs decoded per sample.

    Args:
        pairs: (image path, mask path).
        classes: class names, index 0 the background.
        binary_255: masks hold 0/255, read as 0/1.
        background: grey level transparent image pixels are composited over.
    """

    target_kind = "mask"
    labels = None

    def __init__(self, pairs: Sequence[tuple[str, str]], classes: Sequence[str], binary_255: bool = False,
                 background: int = DEFAULT_BACKGROUND):
        self.pairs, self.classes, self.binary_255, self.background = list(pairs), list(classes), binary_255, background
        self.transform = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        from torchvision import tv_tensors

        image_path, mask_path = self.pairs[index]
        image = read_image(image_path, channels=3, background=self.background)
        mask = read_mask(mask_path)
        if mask.shape != tuple(image.shape[-2:]):
            raise DataError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
                            f"{image.shape[-1]}x{image.shape[-2]}")
        if self.binary_255:
            mask = (mask == BINARY_SAVED_AS).astype(np.uint8)
        elif mask.max(initial=0) >= len(self.classes):
            bad = int(mask[(mask >= len(self.classes)) & (mask != IGNORE_VALUE)].max(initial=0))
            if bad:
                raise DataError(f"mask {mask_path}: value {bad} is outside the {len(self.classes)} classes "
                                f"and is not the ignore value {IGNORE_VALUE}")
        target = tv_tensors.Mask(torch.from_numpy(mask).long())
        if self.transform is not None:
            return self.transform(image, target)
        return image.float().div_(255), target

    def subset(self, indices: Sequence[int] | Tensor) -> "MaskFileDataset":
        out = MaskFileDataset([self.pairs[int(i)] for i in indices], self.classes, self.binary_255, self.background)
        out.transform = self.transform
        return out


def _by_stem(folder: Path) -> dict[str, Path]:
    """The image files of a folder by stem; two files of one stem (a.png and a.jpg) are a DataError."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in found:
            raise DataError(f"{found[path.stem]} and {path} share the name {path.stem!r}: keep one of them")
        found[path.stem] = path
    return found


def _pairs(folder: Path, strict: bool) -> list[tuple[str, str]]:
    """(image, mask) paths of `folder/images` and `folder/masks`, matched by stem, sorted."""
    images_dir, masks_dir = folder / "images", folder / "masks"
    for needed in (images_dir, masks_dir):
        if not needed.is_dir():
            raise DataError(f"dataset 'mask_folder': {needed} is not a folder (expected layout: {LAYOUT})")
    images, masks = _by_stem(images_dir), _by_stem(masks_dir)
    widows = sorted(set(masks) - set(images))
    if widows:
        raise DataError(f"mask {masks[widows[0]]} has no image of the same name in {images_dir}")
    orphans = sorted(set(images) - set(masks))
    if orphans and strict:
        raise DataError(f"image {images[orphans[0]]} has no mask in {masks_dir} (data.strict=true)")
    if orphans:
        warnings.warn(f"{folder}: skipped {len(orphans)} image(s) without a mask, e.g. {images[orphans[0]]}",
                      stacklevel=2)
    pairs = [(str(images[s]), str(masks[s])) for s in sorted(set(images) & set(masks))]
    if not pairs:
        raise DataError(f"dataset 'mask_folder': no image in {images_dir} has a mask of the same name in {masks_dir}")
    return pairs


def _classes(root: Path, values: set[int], ignore: int) -> tuple[list[str], bool]:
    """Class names and whether masks are 0/255 binary ones; a value outside the classes is a DataError."""
    listed = root / "classes.txt"
    names = [line.strip() for line in listed.read_text().splitlines() if line.strip()] if listed.is_file() else []
    # 0/255 masks are binary ones unless classes.txt names more classes (then 255 is ignore_index)
    binary_255 = values <= {0, BINARY_SAVED_AS} and BINARY_SAVED_AS in values and len(names) <= 2
    if not names:
        top = 1 if binary_255 else max((v for v in values if v != ignore), default=1)
        names = ["background", *(f"class_{k}" for k in range(1, top + 1))]
    if binary_255:
        return names[:2] if len(names) >= 2 else ["background", "object"], True
    bad = sorted(v for v in values if v >= len(names) and v != ignore)
    if bad:
        raise DataError(f"dataset 'mask_folder': mask value {bad[0]} is outside the {len(names)} classes "
                        f"({listed if listed.is_file() else 'no classes.txt'}) and is not ignore_index {ignore}")
    return names, False


def _mask_values(pairs: list[tuple[str, str]]) -> set[int]:
    values: set[int] = set()
    for _, mask_path in pairs:
        values.update(np.unique(read_mask(mask_path)).tolist())
    return values


@DATASETS.register("mask_folder", tags=("mask",))
def mask_folder(cfg: DataConfig, target: str = "mask") -> DatasetSplits:
    """Images and masks in `images/` and `masks/` (see the module docstring for both layouts).

    Without val/ (test/), a random `data.val_fraction` of train is carved for each, seeded by `data.seed`.
    `data.size` defaults to the size derived from the train images (`derive_size`); eval resizes image
    and mask to it (masks by nearest neighbour). Mean/std are ImageNet's.
    """
    if cfg.root is None:
        raise DataError(f"dataset 'mask_folder' needs data.root=PATH (expected layout: {LAYOUT})")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset 'mask_folder': {root} is not a folder (expected layout: {LAYOUT})")
    folders = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()} or {"train": root}
    listed = {split: _pairs(folder, cfg.strict) for split, folder in folders.items()}
    values = _mask_values([p for pairs in listed.values() for p in pairs])
    classes, binary_255 = _classes(root, values, 255)
    missing = [s for s in ("val", "test") if s not in listed]
    if missing:
        *carved, kept = stratified_split(np.zeros(len(listed["train"])), [cfg.val_fraction] * len(missing), cfg.seed)
        pool = listed["train"]
        listed["train"] = [pool[i] for i in kept]
        listed.update({s: [pool[i] for i in idx] for s, idx in zip(missing, carved)})
    if not listed["train"]:
        raise DataError(f"dataset 'mask_folder': nothing left for train in {root} after carving val and test")
    sets = {s: MaskFileDataset(pairs, classes, binary_255, cfg.background) for s, pairs in listed.items()}
    if cfg.size:
        size, note = cfg.size, f"image size {cfg.size} (data.size={cfg.size}; ImageNet mean/std)"
    else:
        size, note = derive_size([image for image, _ in listed["train"]])
    return DatasetSplits(train=sets["train"], val=sets["val"], test=sets["test"], classes=classes, in_channels=3,
                         image_size=size or DEFAULT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD, hflip=True,
                         extras={"size_note": note, "image_counts": {s: len(d) for s, d in sets.items()}})


VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VOC_LAYOUT = "root/JPEGImages/, root/SegmentationClass/ (palette PNGs) and root/ImageSets/Segmentation/{train,val}.txt"


@DATASETS.register("voc_seg", tags=("mask",))
def voc_seg(cfg: DataConfig, target: str = "mask") -> DatasetSplits:
    """Pascal VOC 2012 segmentation (`data.root` is a `VOC2012` folder): 21 classes, 255 on object borders
    (counted nowhere, `segment.ignore_index`). VOC's test masks are not public, so its val list is the
    test split and val is a random `data.val_fraction` of its train list (seed `data.seed`)."""
    if cfg.root is None:
        raise DataError(f"dataset 'voc_seg' needs data.root=PATH (expected layout: {VOC_LAYOUT})")
    root = Path(cfg.root).expanduser()
    lists = root / "ImageSets" / "Segmentation"
    listed = {}
    for split in ("train", "val"):
        path = lists / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"dataset 'voc_seg': {path} not found (expected layout: {VOC_LAYOUT})")
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        pairs = [(str(root / "JPEGImages" / f"{n}.jpg"), str(root / "SegmentationClass" / f"{n}.png")) for n in names]
        missing = [p for pair in pairs for p in pair if not Path(p).is_file()]
        if missing:
            raise DataError(f"dataset 'voc_seg': {len(missing)} listed file(s) missing, e.g. {missing[0]}")
        listed[split] = pairs
    val_idx, train_idx = stratified_split(np.zeros(len(listed["train"])), [cfg.val_fraction], cfg.seed)
    splits = {"train": [listed["train"][i] for i in train_idx], "val": [listed["train"][i] for i in val_idx],
              "test": listed["val"]}
    sets = {s: MaskFileDataset(pairs, VOC_CLASSES, False, cfg.background) for s, pairs in splits.items()}
    size = cfg.size or DEFAULT_SIZE
    return DatasetSplits(train=sets["train"], val=sets["val"], test=sets["test"], classes=list(VOC_CLASSES),
                         in_channels=3, image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, hflip=True,
                         extras={"size_note": f"image size {size} (data.size; ImageNet mean/std)",
                                 "image_counts": {s: len(d) for s, d in sets.items()}})
