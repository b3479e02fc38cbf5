"""The Oxford-IIIT Pet dataset: 7,349 photos of 37 cat and dog breeds, as its authors distribute it.

Layout (`data.root` may be the `oxford-iiit-pet` folder or its parent):

    oxford-iiit-pet/images/<Breed_Name>_<n>.jpg
    oxford-iiit-pet/annotations/trainval.txt    one image a line: `Abyssinian_100 1 1 1`
    oxford-iiit-pet/annotations/test.txt

The four columns are the image id (the file name without .jpg), the class id 1..37, the species
(1 cat, 2 dog) and the breed id within the species. Three datasets are read from it:

- `pets`: the 37 breeds; class index = class id - 1, as in torchvision's `OxfordIIITPet`, and class
  names are the image id prefixes (`Abyssinian`, `american_bulldog`, ...): the files capitalise cat
  breeds and not dog breeds.
- `cats_vs_dogs`: the species, classes `cat` and `dog`.
- `pets_seg`: the trimaps `annotations/trimaps/<image id>.png` as masks, classes `background` and
  `pet`; the trimap's border band becomes 255, which `segment.ignore_index` counts nowhere.

Val is a stratified `data.val_fraction` of trainval; test is test. Images are decoded per sample
(`FileDataset`, 3 channels; `TrimapDataset` for the masks).
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
from zrenie.data.base import DatasetSplits, drop_unreadable, require_dir, stratified_split
from zrenie.data.formats.food101 import listed_splits, require_listed
from zrenie.data.formats.image_folder import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from zrenie.data.formats.mask_folder import read_mask
from zrenie.errors import DataError
from zrenie.imgproc.io import DEFAULT_BACKGROUND, read_image
from zrenie.registry import DATASETS

FOLDER = "oxford-iiit-pet"
LAYOUT = (f"{FOLDER}/images/<Breed_Name>_<n>.jpg with {FOLDER}/annotations/trainval.txt and test.txt "
          f"(lines like 'Abyssinian_100 1 1 1': image id, class id, species, breed id)")
SPLITS = {"train": "trainval", "test": "test"}  # our split -> annotation file stem
SPECIES = ["cat", "dog"]


def _find_folder(root: Path) -> Path | None:
    """The dataset folder: `root` itself when it holds images/ and annotations/, else `root/oxford-iiit-pet`."""
    for candidate in (root, root / FOLDER):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    return None


def _download(root: Path, name: str) -> None:
    import torchvision.datasets

    try:
        torchvision.datasets.OxfordIIITPet(str(root), split="test", download=True)  # fetches both splits
    except Exception as err:  # network and archive errors come in many types
        raise DataError(f"dataset {name!r}: download to {root} failed ({type(err).__name__}: {err})") from None


def locate(cfg: DataConfig, name: str) -> Path:
    """The `oxford-iiit-pet` folder, downloading it first when missing and `cfg.download` is set."""
    root = require_dir(cfg.root, name, LAYOUT, cfg.download)
    found = _find_folder(root)
    if found is None and cfg.download:
        _download(root, name)
        found = _find_folder(root)
    if found is None:
        raise DataError(f"dataset {name!r}: no images/ and annotations/ in {root} or {root / FOLDER} "
                        f"(expected layout: {LAYOUT}; or pass data.download=true)")
    return found


def read_annotations(path: Path, name: str) -> list[tuple[str, int, int]]:
    """(image id, class index 0..36, species index 0 cat / 1 dog) of each line of an annotation file.

    Blank lines and `#` comments (the header of the distributed `list.txt`) are skipped.

    Raises:
        DataError: the file is missing or a line is malformed, naming the file and line.
    """
    if not path.is_file():
        raise DataError(f"dataset {name!r}: missing {path} (expected layout: {LAYOUT})")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            image_id, class_id, species = parts[0], int(parts[1]), int(parts[2])
        except ValueError:
            raise DataError(f"dataset {name!r}: {path}:{line_no}: expected '<image id> <class id> <species> "
                            f"<breed id>', got {line.strip()!r}") from None
        if class_id < 1 or species not in (1, 2):
            raise DataError(f"dataset {name!r}: {path}:{line_no}: class id must be >= 1 and species 1 or 2, "
                            f"got {line.strip()!r}")
        rows.append((image_id, class_id - 1, species - 1))
    return rows


def breed_names(rows: dict[str, list[tuple[str, int, int]]], folder: Path, name: str) -> list[str]:
    """Class names in class-index order, each the image id prefix (`american_bulldog_12` -> `american_bulldog`).

    Raises:
        DataError: a class id used with two prefixes, or class ids with no image (the indices would
            no longer match the file's ids).
    """
    names: dict[int, str] = {}
    for split, split_rows in rows.items():
        for image_id, label, _ in split_rows:
            breed = image_id.rsplit("_", 1)[0]
            if names.setdefault(label, breed) != breed:
                raise DataError(f"dataset {name!r}: {folder / 'annotations' / (SPLITS[split] + '.txt')}: "
                                f"class id {label + 1} is both {names[label]!r} and {breed!r} ({image_id})")
    if not names:
        raise DataError(f"dataset {name!r}: the annotation files in {folder} list no images "
                        f"(expected layout: {LAYOUT})")
    absent = [label + 1 for label in range(max(names) + 1) if label not in names]
    if absent:
        raise DataError(f"dataset {name!r}: class ids {absent} have no image in the annotation files of {folder}")
    return [names[label] for label in range(len(names))]


def _pets(cfg: DataConfig, name: str, species: bool) -> DatasetSplits:
    """Breeds (`species=False`) or cat / dog (`species=True`) from the annotation files."""
    folder = locate(cfg, name)
    annotations = {split: folder / "annotations" / f"{stem}.txt" for split, stem in SPLITS.items()}
    rows = {split: read_annotations(path, name) for split, path in annotations.items()}
    classes = SPECIES if species else breed_names(rows, folder, name)
    listed = {}
    for split, split_rows in rows.items():
        samples = [(str(folder / "images" / f"{image_id}.jpg"), kind if species else label)
                   for image_id, label, kind in split_rows]
        require_listed(samples, annotations[split], name)
        listed[split] = samples
    return listed_splits(name, listed, list(classes), cfg, folder)


@DATASETS.register("pets")
def pets(cfg: DataConfig) -> DatasetSplits:
    """Oxford-IIIT Pet, 37 breeds: 3,680 trainval and 3,669 test images (see the module docstring).

    `data.root` is `oxford-iiit-pet/` or its parent; `data.download=true` fetches it there with
    torchvision's downloader when missing. Val is a stratified `data.val_fraction` of trainval (seed
    `data.seed`). `data.size` defaults to 224; the resize itself is the loader's transform. Mean/std are
    ImageNet's. A listed image missing on disk is an error; corrupt ones are skipped with one warning
    that counts them, or raise with `data.strict=true`.
    """
    return _pets(cfg, "pets", species=False)


@DATASETS.register("cats_vs_dogs")
def cats_vs_dogs(cfg: DataConfig) -> DatasetSplits:
    """The same images labelled by species, classes `cat` and `dog`; same layout rules and splits as `pets`."""
    return _pets(cfg, "cats_vs_dogs", species=True)


SEG_CLASSES = ["background", "pet"]
IGNORE = 255  # segment.ignore_index's default: the trimap's border band counts nowhere
TRIMAP_TO_CLASS = {1: 1, 2: 0, 3: IGNORE}  # trimap value (1 pet, 2 background, 3 border) -> mask value


def read_trimap(path: str | Path) -> np.ndarray:
    """A trimap file as a uint8 [H, W] mask: 0 background, 1 pet, 255 (ignore) on the border band.

    Raises:
        DataError: an unreadable file, or a value other than 1, 2 and 3, naming the file.
    """
    trimap = read_mask(path)
    values = np.unique(trimap)
    bad = [int(v) for v in values if int(v) not in TRIMAP_TO_CLASS]
    if bad:
        raise DataError(f"trimap {path}: value {bad[0]} is not 1 (pet), 2 (background) or 3 (border)")
    lookup = np.zeros(256, np.uint8)
    for value, label in TRIMAP_TO_CLASS.items():
        lookup[value] = label
    return lookup[trimap]


class TrimapDataset(Dataset):
    """(image, mask) pairs of Oxford-IIIT Pet, decoded per sample; the mask from the trimap (`read_trimap`).

    Args:
        pairs: (image path, trimap path).
        background: grey level transparent image pixels are composited over.
    """

    target_kind = "mask"
    labels = None

    def __init__(self, pairs: Sequence[tuple[str, str]], background: int = DEFAULT_BACKGROUND):
        self.pairs, self.background, self.classes = list(pairs), background, list(SEG_CLASSES)
        self.transform = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        from torchvision import tv_tensors

        image_path, trimap_path = self.pairs[index]
        image = read_image(image_path, channels=3, background=self.background)
        mask = read_trimap(trimap_path)
        if mask.shape != tuple(image.shape[-2:]):
            raise DataError(f"trimap {trimap_path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} "
                            f"is {image.shape[-1]}x{image.shape[-2]}")
        target = tv_tensors.Mask(torch.from_numpy(mask).long())
        if self.transform is not None:
            return self.transform(image, target)
        return image.float().div_(255), target

    def subset(self, indices: Sequence[int] | Tensor) -> "TrimapDataset":
        out = TrimapDataset([self.pairs[int(i)] for i in indices], self.background)
        out.transform = self.transform
        return out


def _pair_trimaps(rows: list[tuple[str, int, int]], folder: Path,
                  listing: Path) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """(image, trimap, breed) of the listed images with a trimap, and of those without one.

    Raises:
        DataError: a listed image missing on disk (an incomplete copy of the dataset), naming it.
    """
    images = [(str(folder / "images" / f"{image_id}.jpg"), label) for image_id, label, _ in rows]
    require_listed(images, listing, "pets_seg")
    kept, missing = [], []
    for (image, label), (image_id, _, _) in zip(images, rows):
        trimap = folder / "annotations" / "trimaps" / f"{image_id}.png"
        (kept if trimap.is_file() else missing).append((image, str(trimap), label))
    return kept, missing


@DATASETS.register("pets_seg", tags=("mask",))
def pets_seg(cfg: DataConfig, target: str = "mask") -> DatasetSplits:
    """Oxford-IIIT Pet trimaps as binary masks: classes `background` and `pet`, the border band 255 (ignored).

    Same folder, download and splits as `pets`: val is a `data.val_fraction` of trainval stratified by
    breed (seed `data.seed`), test is test. A listed image missing on disk is an error; one without its
    trimap is skipped with one counting warning (an error with `data.strict=true`), and so is a corrupt
    image. A trimap whose size differs from its image's, or with a value other than 1, 2, 3, is an
    error naming the file when it is read. `data.size` defaults to 224: eval resizes image and mask to
    it (masks by nearest neighbour). Mean/std are ImageNet's.
    """
    folder = locate(cfg, "pets_seg")
    listed, missing = {}, []
    for split, stem in SPLITS.items():
        listing = folder / "annotations" / f"{stem}.txt"
        listed[split], without = _pair_trimaps(read_annotations(listing, "pets_seg"), folder, listing)
        if without and cfg.strict:
            raise DataError(f"dataset 'pets_seg': image {without[0][0]} listed in {listing} has no trimap "
                            f"{without[0][1]} (data.strict=true)")
        missing += without
    if missing:
        warnings.warn(f"dataset 'pets_seg': skipped {len(missing)} image(s) without a trimap, e.g. "
                      f"{missing[0][0]} (no {missing[0][1]})", stacklevel=2)
    everything = [(image, label) for split in listed.values() for image, _, label in split]
    readable = {image for image, _ in drop_unreadable(everything, cfg.strict, where=str(folder))}
    listed = {split: [row for row in rows if row[0] in readable] for split, rows in listed.items()}
    if not listed["train"]:
        raise DataError(f"dataset 'pets_seg': no trainval image of {folder} has a readable image and trimap")
    pool = listed.pop("train")
    val_idx, train_idx = stratified_split(np.array([label for *_, label in pool]), [cfg.val_fraction], cfg.seed)
    splits = {"train": [pool[i] for i in train_idx], "val": [pool[i] for i in val_idx], "test": listed["test"]}
    sets = {s: TrimapDataset([(image, trimap) for image, trimap, _ in rows], cfg.background)
            for s, rows in splits.items()}
    size = cfg.size or DEFAULT_SIZE
    return DatasetSplits(train=sets["train"], val=sets["val"], test=sets["test"], classes=list(SEG_CLASSES),
                         in_channels=3, image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, hflip=True,
                         extras={"size_note": f"image size {size} (data.size; ImageNet mean/std)",
                                 "image_counts": {s: len(d) for s, d in sets.items()}})
