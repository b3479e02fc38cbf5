"""Any classification dataset laid out as one folder of images per class.

Two layouts are read:

    root/<class>/<images>                          one pool: val and test are carved from it
    root/train/<class>/<images>                    fixed splits; val/ and test/ are optional:
    root/val/<class>/<images>   (optional)           each one missing is a stratified
    root/test/<class>/<images>  (optional)           `data.val_fraction` of train

Splits that are carved come from one stratified split of the train pool (seed `data.seed`), so
they are disjoint: no file is in two splits. Test is never val: best.pt is chosen on val, so a
test score measured on val would be biased upwards. Class names are the sorted folder names of the
train pool, as torchvision's `ImageFolder` orders them, so class indices agree with it. Images are
found recursively inside each class folder and decoded per sample (`FileDataset`, 3 channels).

Symlinks are followed, but each real folder is entered once and each real file (`os.path.realpath`) used
once, at the first path found in sorted order and under the first class: a link loop (`cat/loop -> .`)
or a file linked twice cannot list an image twice, so carving cannot leak it into val. A file in a
held-out split folder is dropped from train (and one in test/ from val/); skips get one warning each.

Without `data.size`, the side the model sees comes from the data (`derive_size`): the median
shorter side of the training images, rounded to a multiple of 32 and capped at 224, so a folder of
32x32 images trains at 32 rather than being upscaled 49-fold in pixels to 224.
"""

from __future__ import annotations

import os
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, FileDataset, drop_unreadable, stratified_split
from zrenie.errors import DataError
from zrenie.imgproc.io import IMAGE_EXTENSIONS
from zrenie.registry import DATASETS

DEFAULT_SIZE = 224  # the input side of the ImageNet-pretrained backbones these datasets are meant for
# A size derived from the data is capped at the pretrained backbones' input side: they were trained at
# 224, and compute grows with the square of the side, so a folder of 3000x4000 photos at its median
# side would cost about 180 times as much per image, at a scale the backbones were not trained at.
SIZE_CAP = DEFAULT_SIZE
SIZE_STEP = 32  # derived sizes are multiples of 32, the total stride of the common backbones
# Headers read to derive the size: the median of a random sample of 2,000 lies within the population's
# 48th to 52nd percentiles (its rank's standard error is 0.5/sqrt(n) = 1.1%), and reading 2,000
# headers took 0.06 s (400x300 PNG and JPEG files, warm page cache), however large the folder.
SIZE_SAMPLE = 2000
SIZE_SAMPLE_SEED = 0  # fixed, not data.seed: every process (DDP ranks, resume) must derive the same size
_OVERRIDE = "data.size= overrides; ImageNet mean/std"  # the tail of every derived size note
# The ImageNet statistics: fine-tuning a pretrained backbone needs the normalisation it was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUT = "root/<class>/<images>, or root/train/<class>/<images> with optional root/val/ and root/test/"
CARVED = ("val", "test")  # the splits carved from train when their folder is missing, in this order


def find_classes(folder: Path) -> list[str]:
    """Sorted names of the class folders in `folder`; hidden ones (`.ipynb_checkpoints`, ...) are not classes."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


@dataclass
class Listing:
    """What `list_images` found in one split folder."""

    samples: list[tuple[str, int]] = field(default_factory=list)  # (path as first found, class index)
    reals: list[str] = field(default_factory=list)  # the real path of each sample, symlinks resolved
    skipped: list[str] = field(default_factory=list)  # image paths of a file listed already, or in a folder skipped
    skipped_folders: list[str] = field(default_factory=list)  # folders reached a second time (loop or second link)


def _real(entry: os.DirEntry, real_dir: str) -> str:
    """The real path of `entry`, listed in the folder whose real path is `real_dir`: a join unless it is a link."""
    try:
        if not entry.is_symlink():
            return os.path.join(real_dir, entry.name)
    except OSError:
        pass
    return os.path.realpath(entry.path)


def _scan(path: str) -> tuple[list[os.DirEntry], list[os.DirEntry]]:
    """(folders, image files) directly in `path`, each sorted by name; none if it cannot be read, as os.walk does."""
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return [], []
    folders, images = [], []
    for e in entries:
        try:
            is_dir = e.is_dir()  # follows symlinks: a folder linked in is walked
        except OSError:
            is_dir = False
        if is_dir:
            folders.append(e)
        elif e.name.lower().endswith(IMAGE_EXTENSIONS):
            images.append(e)
    return folders, images


def _walk_class(top: str, seen: set[str], tops: frozenset[str], listing: Listing) -> list[tuple[str, str]]:
    """(path, real path) of the images under the class folder `top`, entering each real folder once.

    The order is `os.walk(top, followlinks=True)` top-down with sorted names: a folder's files, then its
    sub-folders one after the other. A folder whose real path is in `seen` (visited, or the data root and
    the split folders), or is another class folder (`tops`), is skipped and noted in `listing`.
    """
    found = []
    stack = [(top, os.path.realpath(top))]
    while stack:
        path, real = stack.pop()
        folders, images = _scan(path)
        if real in seen or (real in tops and path != top):
            listing.skipped_folders.append(path)
            listing.skipped.extend(e.path for e in images)
            continue
        seen.add(real)
        found.extend((e.path, _real(e, real)) for e in images)
        stack.extend((e.path, _real(e, real)) for e in reversed(folders))
    return found


def list_images(folder: Path, classes: list[str], split: str, never: frozenset[str] = frozenset(),
                tops: frozenset[str] = frozenset()) -> Listing:
    """(path, class index) of every image file under `folder/<class>/`, in a stable order, each real file once.

    Symlinks are followed, but a real folder is entered once (this ends link loops) and a real file
    reached a second time is skipped: it keeps its first path, under the first class in sorted order.

    Args:
        folder: the pool, holding one folder per class.
        classes: the train pool's classes; a class folder not among them is an error.
        split: "train", "val" or "test"; only train needs every class to hold an image.
        never: real paths of folders never entered from inside a class: the data root and split folders.
        tops: real paths of the class folders of every split, entered only as their own class.
    """
    index = {name: i for i, name in enumerate(classes)}
    names = find_classes(folder)
    seen = {os.path.realpath(folder), *never}
    tops = frozenset({*tops, *(os.path.realpath(folder / name) for name in names)})
    listing, seen_files = Listing(), set()
    for name in names:
        if name not in index:
            raise DataError(f"{folder / name}: class {name!r} is not among the train classes {classes}")
        before = (len(listing.samples), len(listing.skipped), len(listing.skipped_folders))
        for path, real in _walk_class(str(folder / name), seen, tops, listing):
            if real in seen_files:
                listing.skipped.append(path)
                continue
            seen_files.add(real)
            listing.samples.append((path, index[name]))
            listing.reals.append(real)
        if len(listing.samples) == before[0] and split == "train":
            if (len(listing.skipped), len(listing.skipped_folders)) != before[1:]:
                raise DataError(f"class folder {folder / name} holds no images of its own: each one is a file "
                                f"already listed under an earlier class, through symlinks")
            raise DataError(f"class folder {folder / name} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return listing


def _landmarks(root: Path, pools: dict[str, Path]) -> tuple[frozenset[str], frozenset[str]]:
    """Real paths of (the data root and split folders, the class folders of every split): see `list_images`."""
    never = frozenset(os.path.realpath(folder) for folder in (root, *pools.values()))
    tops = frozenset(os.path.realpath(folder / name) for folder in pools.values() for name in find_classes(folder))
    return never, tops


def warn_duplicates(root: Path, listings: list[Listing]) -> None:
    """One warning counting the image paths and folders skipped as reached a second time, if any."""
    images = [path for listing in listings for path in listing.skipped]
    folders = [path for listing in listings for path in listing.skipped_folders]
    if not images and not folders:
        return
    counts = " and ".join(f"{n} {what}" for n, what in ((len(images), "duplicate image path(s)"),
                                                         (len(folders), "folder(s) reached twice")) if n)
    warnings.warn(f"{root}: skipped {counts} through symlinks or listed twice (each file kept once, at its "
                  f"first path), e.g. {(images or folders)[0]}", stacklevel=2)


def one_split_each(root: Path, listings: dict[str, Listing], classes: list[str]) -> dict[str, list[tuple[str, int]]]:
    """The samples of each split with every real file in one split only: test over val over train.

    The held-out splits stay as laid out; a file also in one of them is dropped from train (or from
    val when in test), with one warning that counts them.

    Args:
        root: the data root, named in the warning.
        listings: `list_images` of each split folder present.
        classes: the train pool's classes, to name one left without train images.
    """
    kept, taken, dropped = {}, set(), []
    for split in ("test", "val", "train"):
        if split in listings:
            listing = listings[split]
            keep = [real not in taken for real in listing.reals]
            kept[split] = [sample for sample, k in zip(listing.samples, keep) if k]
            dropped.extend(path for (path, _), k in zip(listing.samples, keep) if not k)
            taken.update(listing.reals)
    if dropped:
        warnings.warn(f"{root}: {len(dropped)} file(s) in both train and val/test (or val and test), kept in "
                      f"val/test only (test over val), e.g. {dropped[0]} dropped", stacklevel=2)
        left = {target for _, target in kept["train"]}
        for target in sorted({target for _, target in listings["train"].samples} - left):
            raise DataError(f"dataset 'image_folder': every image of class {classes[target]!r} in train is also "
                            f"in val/ or test/ (the same files, through symlinks); a file is used in one split only")
    return {split: kept[split] for split in listings}


def _pools(root: Path) -> dict[str, Path]:
    """The split folders present: {"train": ...} always, "val" and "test" when the layout has them."""
    if (root / "train").is_dir():
        return {split: root / split for split in ("train", "val", "test") if (root / split).is_dir()}
    return {"train": root}


def open_root(cfg: DataConfig) -> Path:
    """The dataset folder, or a one-line DataError explaining the layout."""
    if cfg.root is None:
        raise DataError(f"dataset 'image_folder' needs data.root=PATH (expected layout: {LAYOUT})")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset 'image_folder': {root} is not a folder (expected layout: {LAYOUT})")
    return root


def carve_splits(train: FileDataset, missing: list[str], fraction: float, seed: int) -> dict[str, FileDataset]:
    """A stratified `fraction` of `train` for each split in `missing`, and the rest as "train".

    One `stratified_split` over the pool, so the parts are disjoint and cover it. Val is carved
    first: for a given seed it holds the same files as when val was the only split carved.

    Args:
        train: the train pool.
        missing: the splits to carve, a sub-sequence of ("val", "test").
        fraction: the share of each class that goes to each carved split (`data.val_fraction`).
        seed: same seed, same split (`data.seed`).
    """
    targets = train.targets.numpy()
    *carved, kept = stratified_split(targets, [fraction] * len(missing), seed)
    pool, left = (np.bincount(t, minlength=len(train.classes)) for t in (targets, targets[kept]))
    for c in np.flatnonzero((pool > 0) & (left == 0)):
        raise DataError(f"dataset 'image_folder': class {train.classes[c]!r} has {pool[c]} images and none is "
                        f"left for train after carving {' and '.join(missing)} (data.val_fraction={fraction} "
                        f"each); lower data.val_fraction or add {' and '.join(s + '/' for s in missing)}")
    return {"train": train.subset(kept), **{split: train.subset(idx) for split, idx in zip(missing, carved)}}


def round_size(side: int, step: int = SIZE_STEP, cap: int = SIZE_CAP) -> int:
    """`side` rounded to the nearest multiple of `step` (at least `step`), then capped at `cap`."""
    return min(cap, max(step, int(side / step + 0.5) * step))


def derive_size(paths: list[str]) -> tuple[int, str]:
    """The square side for images at `paths`, from their headers alone, and a note saying how it was chosen.

    `PIL.Image.open` reads the header and leaves the pixels undecoded, so this costs one small read
    per file; at most `SIZE_SAMPLE` files are read, a fixed-seed sample of larger folders.

    Args:
        paths: the training images, already checked to open (`drop_unreadable`).

    Returns:
        (size, note): `round_size` of the median shorter side (the side eval resizes and crops to,
        see `eval_transform`), and one line for the run header.
    """
    from PIL import Image

    chosen = paths
    if len(paths) > SIZE_SAMPLE:
        picked = np.random.default_rng(SIZE_SAMPLE_SEED).choice(len(paths), SIZE_SAMPLE, replace=False)
        chosen = [paths[i] for i in np.sort(picked)]
    sizes = []  # (W, H) per image
    for path in chosen:
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
        except Exception:  # verified moments ago; one that breaks now is FileDataset's error to report
            continue
    if not sizes:
        return DEFAULT_SIZE, f"image size {DEFAULT_SIZE} (no training image header could be read; {_OVERRIDE})"
    side = statistics.median_low(min(w, h) for w, h in sizes)
    size = round_size(side)
    width, height = (statistics.median_low(dim) for dim in zip(*sizes))
    counted = f"{len(sizes):,}" if len(chosen) == len(paths) else f"{len(sizes):,} sampled of {len(paths):,}"
    if size == side:
        how = f"shorter side {side}"
    elif size == SIZE_CAP and side > SIZE_CAP:
        how = f"shorter side {side} capped at {SIZE_CAP}"
    else:
        how = f"shorter side {side} rounded to a multiple of {SIZE_STEP}"
    return size, f"image size {size} (median of {counted} training images {width}x{height}, {how}; {_OVERRIDE})"


@DATASETS.register("image_folder")
def image_folder(cfg: DataConfig) -> DatasetSplits:
    """Images sorted into one folder per class (see the module docstring for both layouts).

    Without a val/ folder, val is a stratified `data.val_fraction` of train; without a test/
    folder, so is test, carved from what val leaves (seed `data.seed`, see `carve_splits`). The
    train split is what remains. `data.size` defaults to the size derived from the train split
    (`derive_size`); the resize itself is the loader's transform. `extras["size_note"]` says how the
    size was chosen and `extras["image_counts"]` holds the images per split. Mean/std are ImageNet's,
    also for training from scratch: the dataset's own would suit that better, but switching by
    recipe would silently change what fine-tuning runs learn. Every file is checked once here:
    corrupt ones are skipped with one warning that counts them, or raise with `data.strict=true`.
    A file reached twice through symlinks is used once, in one split (`list_images`, `one_split_each`).
    `data.download` does not apply.
    """
    root = open_root(cfg)
    pools = _pools(root)
    classes = find_classes(pools["train"])
    if not classes:
        raise DataError(f"dataset 'image_folder': no class folders in {pools['train']} (expected layout: {LAYOUT})")
    never, tops = _landmarks(root, pools)
    listings = {split: list_images(folder, classes, split, never, tops) for split, folder in pools.items()}
    warn_duplicates(root, list(listings.values()))
    listed = one_split_each(root, listings, classes)  # carving splits the train pool, now free of duplicates
    # One check over every split, so corrupt files give one warning in total rather than one per split.
    everything = [sample for samples in listed.values() for sample in samples]
    readable = {path for path, _ in drop_unreadable(everything, cfg.strict, where=str(root))}
    listed = {split: [s for s in samples if s[0] in readable] for split, samples in listed.items()}
    if not listed["train"]:
        raise DataError(f"dataset 'image_folder': no readable images in {pools['train']} (expected layout: {LAYOUT})")
    splits = {split: FileDataset(samples, classes, transform=None, strict=cfg.strict, channels=3,
                                     background=cfg.background)
              for split, samples in listed.items()}
    missing = [split for split in CARVED if split not in splits]
    if missing:
        splits.update(carve_splits(splits["train"], missing, cfg.val_fraction, cfg.seed))
    if cfg.size:
        size, note = cfg.size, f"image size {cfg.size} (data.size={cfg.size}; ImageNet mean/std)"
    else:
        # A second pass over the files (drop_unreadable lives in base and returns no sizes), kept
        # cheap: headers only, of at most SIZE_SAMPLE train files.
        size, note = derive_size([path for path, _ in splits["train"].samples])
    counts = {split: len(splits[split]) for split in ("train", "val", "test")}
    return DatasetSplits(train=splits["train"], val=splits["val"], test=splits["test"], classes=classes,
                         in_channels=3, image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, hflip=True,
                         extras={"size_note": note, "image_counts": counts})
