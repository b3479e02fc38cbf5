"""image_folder against a tree of small PNG and JPEG files, one corrupt, and against torchvision's ImageFolder."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zrenie.config import DataConfig
from zrenie.data.base import FileDataset, stratified_split
from zrenie.data.formats import image_folder  # noqa: F401  (registers image_folder)
from zrenie.data.formats.image_folder import IMAGENET_MEAN, IMAGENET_STD, round_size
from zrenie.errors import DataError
from zrenie.registry import DATASETS

CLASSES = ["bird", "cat", "dog"]


def write_pool(folder: Path, per_class: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`folder/<class>/` with PNGs (lossless, so pixels round-trip) and one JPEG per class; returns PNG pixels."""
    rng = np.random.default_rng(seed)
    written = {}
    for c in CLASSES:
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            array = rng.integers(0, 256, size=(10 + i, 12, 3), dtype=np.uint8)  # (H, W, C), non-square
            if i == 0:
                Image.fromarray(array).save(folder / c / f"{i:02d}.jpg", quality=90)
            else:
                path = folder / c / f"{i:02d}.png"
                Image.fromarray(array).save(path)
                written[str(path)] = array
    return written


def _open(root: Path, **overrides):
    return DATASETS.get("image_folder")(DataConfig(name="image_folder", root=str(root), **overrides))


def _pixels(dataset: FileDataset, index: int) -> torch.Tensor:
    image, _ = dataset[index]  # float (C, H, W) in [0, 1], no transform set
    return (image * 255).round().to(torch.uint8)


def test_flat_layout_pixels_labels_and_meta(tmp_path):
    written = write_pool(tmp_path, per_class=5)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    splits = _open(tmp_path, val_fraction=0.2)
    assert splits.classes == CLASSES
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 3, 3)  # 5 per class: 3 + 1 + 1
    assert torch.bincount(splits.val.targets, minlength=3).tolist() == [1, 1, 1]
    assert torch.bincount(splits.test.targets, minlength=3).tolist() == [1, 1, 1]
    assert (splits.in_channels, splits.image_size, splits.hflip) == (3, 32, True)  # 10-14 px sides round up to 32
    assert splits.extras["image_counts"] == {"train": 9, "val": 3, "test": 3}
    assert (splits.mean, splits.std) == (IMAGENET_MEAN, IMAGENET_STD)
    checked = 0
    for dataset in (splits.train, splits.val, splits.test):
        for i, (path, target) in enumerate(dataset.samples):
            assert CLASSES[target] == Path(path).parent.name
            if path in written:
                assert torch.equal(_pixels(dataset, i), torch.from_numpy(written[path]).permute(2, 0, 1))  # HWC -> CHW
                checked += 1
    assert checked == 12


def test_jpeg_and_grayscale_decode_like_pillow(tmp_path):
    write_pool(tmp_path, per_class=2)
    gray = np.arange(7 * 9, dtype=np.uint8).reshape(7, 9) * 3
    Image.fromarray(gray, mode="L").save(tmp_path / "dog" / "gray.png")
    splits = _open(tmp_path, val_fraction=0.0, size=64)
    assert splits.image_size == 64
    samples = splits.train.samples
    jpeg = next(i for i, (p, _) in enumerate(samples) if p.endswith(".jpg"))
    reference = np.asarray(Image.open(samples[jpeg][0]).convert("RGB"))
    assert torch.equal(_pixels(splits.train, jpeg), torch.from_numpy(reference.copy()).permute(2, 0, 1))
    g = next(i for i, (p, _) in enumerate(samples) if p.endswith("gray.png"))
    assert torch.equal(_pixels(splits.train, g), torch.from_numpy(gray).expand(3, -1, -1))


def test_split_layout_and_agreement_with_torchvision(tmp_path):
    import torchvision.datasets

    write_pool(tmp_path / "train", per_class=4, seed=1)
    write_pool(tmp_path / "val", per_class=2, seed=2)
    splits = _open(tmp_path, val_fraction=0.0)  # nothing carved: train is the whole train/ folder
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 6, 0)
    reference = torchvision.datasets.ImageFolder(str(tmp_path / "train"))
    assert splits.classes == reference.classes
    assert splits.train.samples == reference.samples
    splits = _open(tmp_path, val_fraction=0.25)  # no test/ folder: test is 1 of each class's 4 train images
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 6, 3)
    write_pool(tmp_path / "test", per_class=3, seed=3)
    splits = _open(tmp_path)
    assert len(splits.test) == 9 and splits.test is not splits.val


def test_corrupt_file_is_skipped_with_one_warning(tmp_path):
    write_pool(tmp_path / "train", per_class=3)
    write_pool(tmp_path / "val", per_class=2, seed=1)
    rng = np.random.default_rng(0)
    (tmp_path / "train" / "cat" / "broken.jpg").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    (tmp_path / "val" / "dog" / "broken.png").write_bytes(b"\x89PNG but not really")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = _open(tmp_path)
    messages = [str(w.message) for w in caught if "corrupt" in str(w.message)]
    assert len(messages) == 1 and "skipped 2 corrupt" in messages[0]
    assert (len(splits.train), len(splits.val)) == (9, 6)
    assert all("broken" not in p for p, _ in splits.train.samples + splits.val.samples)


def test_strict_makes_a_corrupt_file_an_error(tmp_path):
    write_pool(tmp_path, per_class=2)
    (tmp_path / "bird" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match=r"corrupt or unreadable image: .*broken\.jpg"):
        _open(tmp_path, strict=True)


def test_layout_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match=r"absent is not a folder \(expected layout: root/<class>/<images>"):
        _open(tmp_path / "absent")
    with pytest.raises(DataError, match=r"no class folders in .*expected layout: root/<class>/<images>"):
        _open(tmp_path)
    (tmp_path / "cat").mkdir()
    with pytest.raises(DataError, match=r"class folder .*cat holds no images"):
        _open(tmp_path)
    with pytest.raises(DataError, match=r"needs data\.root=PATH"):
        DATASETS.get("image_folder")(DataConfig(name="image_folder"))


def test_val_class_unknown_to_train_is_an_error(tmp_path):
    write_pool(tmp_path / "train", per_class=2)
    write_pool(tmp_path / "val", per_class=1)
    (tmp_path / "val" / "fish").mkdir()
    with pytest.raises(DataError, match=r"class 'fish' is not among the train classes"):
        _open(tmp_path)


# Unequal class sizes, so a split that ignored the classes would show in the per-class counts.
SIZES = {"bird": 10, "cat": 20, "dog": 30}


def write_sized_pool(folder: Path, sizes: dict[str, int]) -> set[str]:
    """`folder/<class>/` with `sizes[class]` tiny PNGs; returns their paths."""
    paths = set()
    for c, n in sizes.items():
        (folder / c).mkdir(parents=True)
        for i in range(n):
            path = folder / c / f"{i:02d}.png"
            Image.fromarray(np.full((2, 2, 3), i, dtype=np.uint8)).save(path)
            paths.add(str(path))
    return paths


def _paths(dataset: FileDataset) -> set[str]:
    paths = [p for p, _ in dataset.samples]
    assert len(set(paths)) == len(paths)  # no file twice within a split
    return set(paths)


@pytest.mark.parametrize("folders", [(), ("train",), ("train", "val"), ("train", "test")],
                         ids=["flat", "train-only", "train+val", "train+test"])
def test_carved_splits_are_disjoint_cover_the_pool_and_keep_class_proportions(tmp_path, folders):
    pool = write_sized_pool(tmp_path / "train" if folders else tmp_path, SIZES)
    fixed = {split: write_sized_pool(tmp_path / split, {c: 3 for c in SIZES}) for split in folders[1:]}
    splits = _open(tmp_path, val_fraction=0.2, seed=5)
    found = {split: _paths(getattr(splits, split)) for split in ("train", "val", "test")}
    carved = [split for split in ("val", "test") if split not in fixed]
    for split, paths in fixed.items():
        assert found[split] == paths  # a folder that exists is used as it is
    # The train pool is cut into train and the carved splits: pairwise disjoint, together the whole pool.
    parts = [found["train"]] + [found[split] for split in carved]
    assert set.union(*parts) == pool and sum(map(len, parts)) == len(pool)
    assert found["val"].isdisjoint(found["test"])
    for split in carved:  # round(0.2 * n) of each class: 2, 4, 6
        assert torch.bincount(getattr(splits, split).targets, minlength=3).tolist() == [2, 4, 6]
    kept = [n - len(carved) * round(0.2 * n) for n in SIZES.values()]
    assert torch.bincount(splits.train.targets, minlength=3).tolist() == kept


def test_carved_splits_are_deterministic_for_a_seed(tmp_path):
    write_sized_pool(tmp_path, SIZES)
    first, again, other = (_open(tmp_path, val_fraction=0.2, seed=s) for s in (1, 1, 2))
    for split in ("train", "val", "test"):
        assert getattr(first, split).samples == getattr(again, split).samples
    assert _paths(first.test) != _paths(other.test)
    # Val is carved first, so it holds the files a val-only carve picked (as before test was carved).
    # The pool in the order image_folder lists it: class folders, then file names, both sorted.
    everything = sorted(str(p) for p in tmp_path.glob("*/*.png"))
    targets = np.array([CLASSES.index(Path(p).parent.name) for p in everything])
    val_only, _ = stratified_split(targets, [0.2], seed=1)
    assert _paths(first.val) == {everything[i] for i in val_only}


def test_carving_that_leaves_a_class_without_train_images_is_an_error(tmp_path):
    write_sized_pool(tmp_path, {"bird": 2, "cat": 4})
    with pytest.raises(DataError, match=r"class 'bird' has 2 images and none is left for train .*add val/ and test/"):
        _open(tmp_path, val_fraction=0.5)


def write_sized_images(folder: Path, sizes: list[tuple[int, int]]) -> None:
    """One blank PNG per (W, H) in `sizes`, dealt round-robin into the class folders."""
    for c in CLASSES:
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h)).save(folder / CLASSES[i % len(CLASSES)] / f"{i:03d}.png")


@pytest.mark.parametrize("side, size", [(1, 32), (16, 32), (47, 32), (48, 64), (57, 64), (80, 96), (96, 96),
                                        (224, 224), (239, 224), (3000, 224)])
def test_round_size_is_the_nearest_multiple_of_32_between_32_and_224(side, size):
    assert round_size(side) == size


def test_size_of_a_folder_of_32px_images_is_32_with_a_note(tmp_path):
    write_sized_images(tmp_path, [(32, 32)] * 12)
    splits = _open(tmp_path, val_fraction=0.25)
    assert splits.image_size == 32
    assert splits.extras["size_note"] == ("image size 32 (median of 6 training images 32x32, shorter side 32; "
                                          "data.size= overrides; ImageNet mean/std)")
    assert splits.extras["image_counts"] == {"train": 6, "val": 3, "test": 3}
    assert (splits.mean, splits.std) == (IMAGENET_MEAN, IMAGENET_STD)  # kept: fine-tuning recipes rely on them


def test_size_of_mixed_images_is_the_rounded_median_shorter_side(tmp_path):
    # Shorter sides 30, 41, 57, 60, 70, 90, 200 (landscape and portrait): the median is 60, rounded to 64.
    sizes = [(30, 500), (90, 41), (57, 57), (60, 80), (120, 70), (90, 100), (300, 200)]
    write_sized_images(tmp_path, sizes)
    splits = _open(tmp_path, val_fraction=0.0)
    assert len(splits.train) == 7 and splits.image_size == 64
    note = splits.extras["size_note"]
    assert "median of 7 training images 90x80, shorter side 60 rounded to a multiple of 32" in note


def test_size_of_huge_images_is_capped_at_224(tmp_path):
    write_sized_images(tmp_path, [(1600, 1200)] * 3 + [(1200, 1600)] * 3)
    splits = _open(tmp_path, val_fraction=0.0)
    assert splits.image_size == 224
    assert "shorter side 1200 capped at 224" in splits.extras["size_note"]


def test_data_size_overrides_the_derived_size(tmp_path):
    write_sized_images(tmp_path, [(32, 32)] * 6)
    splits = _open(tmp_path, val_fraction=0.0, size=48)
    assert splits.image_size == 48
    assert splits.extras["size_note"] == "image size 48 (data.size=48; ImageNet mean/std)"


def test_size_of_a_large_folder_reads_a_fixed_sample_of_headers(tmp_path, monkeypatch):
    from zrenie.data.formats import image_folder as module

    # Nine images of side 40 and six of side 200: a sample of 5 gives 32 or 224 depending on which
    # files it holds, so equal notes across opens and data.seed values show the sample is fixed.
    write_sized_images(tmp_path, [(40, 40)] * 9 + [(200, 200)] * 6)
    monkeypatch.setattr(module, "SIZE_SAMPLE", 5)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    first = _open(tmp_path, val_fraction=0.0)
    header_reads = len(opened) - 15  # drop_unreadable opens each of the 15 files once
    again, other_seed = _open(tmp_path, val_fraction=0.0), _open(tmp_path, val_fraction=0.0, seed=7)
    assert header_reads == 5
    assert "median of 5 sampled of 15 training images" in first.extras["size_note"]
    assert first.image_size == again.image_size == other_seed.image_size
    assert first.extras["size_note"] == again.extras["size_note"] == other_seed.extras["size_note"]
