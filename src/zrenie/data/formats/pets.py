"""The Oxford-IIIT Pet dataset: 7,349 photos of 37 cat and dog breeds, as its authors distribute it.

Layout (`data.root` may be the `oxford-iiit-pet` folder or its parent):

    oxford-iiit-pet/images/<Breed_Name>_<n>.jpg
    oxford-iiit-pet/annotations/trainval.txt    one image a line: `Abyssinian_100 1 1 1`
    oxford-iiit-pet/annotations/test.txt

The four columns are the image id (the file name without .jpg), the class id 1..37, the species
(1 cat, 2 dog) and the breed id within the species. Two datasets are read from it:

- `pets`: the 37 breeds; class index = class id - 1, as in torchvision's `OxfordIIITPet`, and class
  names are the image id prefixes (`Abyssinian`, `american_bulldog`, ...): the files capitalise cat
  breeds and not dog breeds.
- `cats_vs_dogs`: the species, classes `cat` and `dog`.

Val is a stratified `data.val_fraction` of trainval; test is test. Images are decoded per sample
(`FileDataset`, 3 channels).
"""

from __future__ import annotations

from pathlib import Path

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, require_dir
from zrenie.data.formats.food101 import listed_splits, require_listed
from zrenie.errors import DataError
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
