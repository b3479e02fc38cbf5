"""Food-101: 101,000 photos of 101 dishes, read from the folder its authors distribute.

Layout (`data.root` may be the `food-101` folder or its parent):

    food-101/images/<class>/<id>.jpg
    food-101/meta/train.txt      one image a line, `apple_pie/1005649`: class folder / file name without .jpg
    food-101/meta/test.txt
    food-101/meta/classes.txt    optional: the class names in index order; else the sorted image folders

The distributed archive also holds `train.json` / `test.json` (the same lists grouped by class); they
are read only when the `.txt` list is absent. The class order of `classes.txt` is alphabetical, the
order torchvision's `Food101` uses, so class indices agree with it. Images are decoded per sample
(`FileDataset`, 3 channels); val is a stratified `data.val_fraction` of train.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, FileDataset, drop_unreadable, require_dir, stratified_split
from zrenie.data.formats.image_folder import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD, find_classes
from zrenie.errors import DataError
from zrenie.registry import DATASETS

FOLDER = "food-101"
LAYOUT = (f"{FOLDER}/images/<class>/<id>.jpg with {FOLDER}/meta/train.txt and test.txt "
          f"(lines like apple_pie/1005649) and optional meta/classes.txt")


def require_listed(samples: list[tuple[str, int]], listing: Path, name: str) -> None:
    """Raises a one-line DataError naming the first listed image that is not on disk.

    Checked before `drop_unreadable`, which would otherwise count a missing file as a corrupt one
    and hide an incomplete copy of the dataset behind a warning.
    """
    missing = [path for path, _ in samples if not os.path.isfile(path)]
    if missing:
        raise DataError(f"dataset {name!r}: {missing[0]} is listed in {listing} but missing "
                        f"({len(missing)} listed image(s) missing in all)")


def listed_splits(name: str, listed: dict[str, list[tuple[str, int]]], classes: list[str], cfg: DataConfig,
                  where: Path) -> DatasetSplits:
    """Train / val / test `FileDataset`s from the file lists of a dataset with a fixed train/test split.

    Args:
        name: the dataset's name, for messages.
        listed: "train" and "test" -> (path, class index) pairs, every file known to exist.
        classes: class names, index -> name.
        cfg: `strict`, `val_fraction`, `seed` and `size` are read.
        where: the dataset folder, named in the warning about corrupt files.
    """
    # One check over both splits, so corrupt files give one warning in total rather than one per split.
    everything = listed["train"] + listed["test"]
    readable = {path for path, _ in drop_unreadable(everything, cfg.strict, where=str(where))}
    listed = {split: [s for s in samples if s[0] in readable] for split, samples in listed.items()}
    if not listed["train"]:
        raise DataError(f"dataset {name!r}: no readable train images in {where}")

    def dataset(samples: list[tuple[str, int]]) -> FileDataset:
        return FileDataset(samples, classes, transform=None, strict=cfg.strict, channels=3,
                           background=cfg.background)

    pool = dataset(listed["train"])
    val_idx, train_idx = stratified_split(pool.labels.numpy(), [cfg.val_fraction], cfg.seed)
    return DatasetSplits(train=pool.subset(train_idx), val=pool.subset(val_idx), test=dataset(listed["test"]),
                         classes=classes, in_channels=3, image_size=cfg.size or DEFAULT_SIZE,
                         mean=IMAGENET_MEAN, std=IMAGENET_STD, hflip=True)


def _find_folder(root: Path) -> Path | None:
    """The dataset folder: `root` itself when it holds images/ and meta/, else `root/food-101`."""
    for candidate in (root, root / FOLDER):
        if (candidate / "images").is_dir() and (candidate / "meta").is_dir():
            return candidate
    return None


def _download(root: Path) -> None:
    import torchvision.datasets

    try:
        torchvision.datasets.Food101(str(root), split="test", download=True)  # fetches both splits
    except Exception as err:  # network and archive errors come in many types
        raise DataError(f"dataset 'food101': download to {root} failed ({type(err).__name__}: {err})") from None


def locate(cfg: DataConfig) -> Path:
    """The `food-101` folder, downloading it first when missing and `cfg.download` is set."""
    root = require_dir(cfg.root, "food101", LAYOUT, cfg.download)
    found = _find_folder(root)
    if found is None and cfg.download:
        _download(root)
        found = _find_folder(root)
    if found is None:
        raise DataError(f"dataset 'food101': no images/ and meta/ in {root} or {root / FOLDER} "
                        f"(expected layout: {LAYOUT}; or pass data.download=true)")
    return found


def read_classes(folder: Path) -> list[str]:
    """Class names in index order: `meta/classes.txt` when present, else the sorted folders in `images/`."""
    listing = folder / "meta" / "classes.txt"
    if listing.is_file():
        classes = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        where = listing
    else:
        classes = find_classes(folder / "images")
        where = folder / "images"
    if not classes:
        raise DataError(f"dataset 'food101': no classes in {where} (expected layout: {LAYOUT})")
    if len(set(classes)) != len(classes):
        raise DataError(f"dataset 'food101': {where} names a class twice")
    return classes


def _entries(folder: Path, split: str) -> tuple[list[tuple[int, str]], Path]:
    """(line number, `class/id`) of each image in a split's list, and the list file read."""
    text_list, json_list = folder / "meta" / f"{split}.txt", folder / "meta" / f"{split}.json"
    if text_list.is_file():
        lines = text_list.read_text().splitlines()
        return [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()], text_list
    if json_list.is_file():
        try:
            groups = json.loads(json_list.read_text())
        except ValueError as err:
            raise DataError(f"dataset 'food101': {json_list} is not valid JSON ({err})") from None
        if not isinstance(groups, dict):
            raise DataError(f"dataset 'food101': {json_list} must map class names to lists of images")
        return [(0, str(entry)) for entries in groups.values() for entry in entries], json_list
    raise DataError(f"dataset 'food101': missing {text_list} (expected layout: {LAYOUT})")


def read_split(folder: Path, split: str, classes: list[str]) -> list[tuple[str, int]]:
    """(path, class index) of every image listed for `split` ("train" or "test"), in list order.

    Raises:
        DataError: a malformed line, a class not among `classes`, or a listed image missing on disk.
    """
    entries, listing = _entries(folder, split)
    index = {name: i for i, name in enumerate(classes)}
    images = folder / "images"
    samples = []
    for line_no, entry in entries:
        cls, sep, stem = entry.partition("/")
        where = f"{listing}:{line_no}" if line_no else str(listing)
        if not sep or not stem:
            raise DataError(f"dataset 'food101': {where}: expected <class>/<id>, got {entry!r}")
        if cls not in index:
            raise DataError(f"dataset 'food101': {where}: class {cls!r} is not among the {len(classes)} classes")
        name = stem if stem.lower().endswith(".jpg") else f"{stem}.jpg"
        samples.append((str(images / cls / name), index[cls]))
    require_listed(samples, listing, "food101")
    return samples


@DATASETS.register("food101")
def food101(cfg: DataConfig) -> DatasetSplits:
    """Food-101: 750 train and 250 test photos of each of 101 dishes (see the module docstring).

    `data.root` is `food-101/` or its parent; `data.download=true` fetches it there with torchvision's
    downloader when missing. Val is a stratified `data.val_fraction` of train (seed `data.seed`).
    `data.size` defaults to 224; the resize itself is the loader's transform. Mean/std are ImageNet's.
    A listed image missing on disk is an error; corrupt ones are skipped with one warning that counts
    them, or raise with `data.strict=true`.
    """
    folder = locate(cfg)
    classes = read_classes(folder)
    listed = {split: read_split(folder, split, classes) for split in ("train", "test")}
    return listed_splits("food101", listed, classes, cfg, folder)
