"""image_folder against trees with real symlinks: loops, files linked twice, folders linked in from outside."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zrenie.config import DataConfig
from zrenie.data.formats import image_folder  # noqa: F401  (registers image_folder)
from zrenie.errors import DataError
from zrenie.registry import DATASETS

CLASSES = ["bird", "cat", "dog"]
SPLITS = ("train", "val", "test")


def write_classes(folder: Path, per_class: int = 6, classes: list[str] = CLASSES, seed: int = 0) -> None:
    """`folder/<class>/` with `per_class` distinct 8x8 PNGs named 00.png, 01.png, ..."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).save(folder / c / f"{i:02d}.png")


def regular_images(root: Path) -> list[str]:
    """Real paths of the image files under `root`, listed without following a single symlink."""
    found = []
    for dirpath, _, filenames in os.walk(root):  # followlinks=False: linked folders are not entered
        found.extend(os.path.realpath(os.path.join(dirpath, f)) for f in filenames
                     if f.endswith(".png") and not os.path.islink(os.path.join(dirpath, f)))
    return found


def open_recording(root: Path, **overrides):
    """(splits, messages of the warnings raised while opening `root`)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = DATASETS.get("image_folder")(DataConfig(name="image_folder", root=str(root), **overrides))
    return splits, [str(w.message) for w in caught]


def open_silently(root: Path, **overrides):
    """The splits of `root`, failing on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return DATASETS.get("image_folder")(DataConfig(name="image_folder", root=str(root), **overrides))


def samples(splits) -> dict[str, list[tuple[str, int]]]:
    return {split: list(getattr(splits, split).samples) for split in SPLITS}


def reals(splits, split: str) -> list[str]:
    return [os.path.realpath(path) for path, _ in getattr(splits, split).samples]


def assert_one_split_each(splits) -> None:
    """No real file twice in a split, nor in two splits."""
    everything = [real for split in SPLITS for real in reals(splits, split)]
    assert len(everything) == len(set(everything))


@pytest.mark.parametrize("layout, link, target, skipped", [
    ("flat", "cat/loop", ".", "skipped 6 duplicate image path(s) and 1 folder(s) reached twice"),
    ("flat", "cat/loop", "..", "skipped 1 folder(s) reached twice"),
    ("flat", "cat/deep/loop", "..", "skipped 6 duplicate image path(s) and 1 folder(s) reached twice"),
    ("split", "train/cat/loop", "../..", "skipped 1 folder(s) reached twice"),
], ids=["to-itself", "to-root", "two-up", "to-data-root"])
def test_a_symlink_loop_lists_each_image_once(tmp_path, layout, link, target, skipped):
    pool = tmp_path / "train" if layout == "split" else tmp_path
    write_classes(pool)
    if layout == "split":
        write_classes(tmp_path / "val", per_class=2, seed=1)
    (tmp_path / link).parent.mkdir(parents=True, exist_ok=True)
    before = samples(open_silently(tmp_path, val_fraction=0.2))
    os.symlink(target, tmp_path / link)
    splits, messages = open_recording(tmp_path, val_fraction=0.2)
    listed = [real for split in SPLITS for real in reals(splits, split)]
    naive = regular_images(tmp_path)
    assert len(listed) == len(naive) == (24 if layout == "split" else 18)
    assert set(listed) == set(naive)
    assert_one_split_each(splits)
    assert samples(splits) == before  # the loop changes nothing: same files, paths, order and splits
    assert len(messages) == 1 and skipped in messages[0]
    assert messages[0].startswith(f"{tmp_path}: ") and f"e.g. {tmp_path / link}" in messages[0]


def test_a_loop_used_to_leak_carved_val_into_train(tmp_path):
    # 41 copies of each image would leave almost every val file also in train; now the parts are disjoint.
    write_classes(tmp_path)
    os.symlink(".", tmp_path / "dog" / "again")
    splits, messages = open_recording(tmp_path, val_fraction=0.25)
    assert [len(getattr(splits, split)) for split in SPLITS] == [6, 6, 6]  # 2 of 6 per class carved each
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert set(reals(splits, a)).isdisjoint(reals(splits, b))
    assert len(messages) == 1 and f"e.g. {tmp_path / 'dog' / 'again' / '00.png'}" in messages[0]


def test_a_train_file_linked_into_val_is_used_in_val_only(tmp_path):
    write_classes(tmp_path / "train")
    write_classes(tmp_path / "val", per_class=2, seed=1)
    linked = tmp_path / "val" / "cat" / "a.png"
    os.symlink(os.path.join("..", "..", "train", "cat", "03.png"), linked)
    splits, messages = open_recording(tmp_path, val_fraction=0.2)
    original = str(tmp_path / "train" / "cat" / "03.png")
    assert original not in [path for path, _ in splits.train.samples + splits.test.samples]
    assert (str(linked), CLASSES.index("cat")) in splits.val.samples
    assert len(splits.val) == 7 and len(splits.train) + len(splits.test) == 17
    assert_one_split_each(splits)
    assert len(messages) == 1
    assert messages[0].startswith(f"{tmp_path}: 1 file(s) in both train and val/test")
    assert f"e.g. {original}" in messages[0]


def test_a_file_in_val_and_test_stays_in_test(tmp_path):
    for split, seed in zip(SPLITS, (0, 1, 2)):
        write_classes(tmp_path / split, per_class=3, seed=seed)
    os.symlink(tmp_path / "val" / "dog" / "01.png", tmp_path / "test" / "dog" / "z.png")  # absolute link
    os.symlink(tmp_path / "val" / "dog" / "02.png", tmp_path / "train" / "dog" / "z.png")
    splits, messages = open_recording(tmp_path)
    assert str(tmp_path / "test" / "dog" / "z.png") in [path for path, _ in splits.test.samples]
    assert [len(getattr(splits, split)) for split in SPLITS] == [9, 8, 10]
    assert str(tmp_path / "val" / "dog" / "02.png") in [path for path, _ in splits.val.samples]
    assert_one_split_each(splits)
    assert len(messages) == 1 and "2 file(s) in both train and val/test" in messages[0]


def test_a_train_class_whose_files_are_all_in_val_is_an_error(tmp_path):
    write_classes(tmp_path / "train")
    (tmp_path / "val").mkdir()
    os.symlink(tmp_path / "train" / "cat", tmp_path / "val" / "cat")
    with pytest.raises(DataError, match=r"every image of class 'cat' in train is also in val/ or test/"):
        open_recording(tmp_path)


def test_a_class_folder_linked_in_from_outside_is_followed_without_a_warning(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    write_classes(root, classes=["bird", "dog"])
    write_classes(outside, classes=["cats", "more"], seed=1)
    os.symlink(outside / "cats", root / "cat")
    os.symlink(outside / "more", root / "dog" / "more")  # a folder linked inside a class, also legitimate
    splits = open_silently(root, val_fraction=0.0)
    assert splits.classes == CLASSES
    cat = [path for path, target in splits.train.samples if target == CLASSES.index("cat")]
    assert cat == [str(root / "cat" / f"{i:02d}.png") for i in range(6)]  # paths as linked, not resolved
    assert set(reals(splits, "train")) == set(regular_images(root) + regular_images(outside))
    assert len(splits.train) == 24


@pytest.mark.parametrize("link, kept_in, kept_path", [
    ("dog/x.png", "cat", "cat/00.png"),  # the link's class sorts after the file's own: the link is dropped
    ("bird/x.png", "bird", "bird/x.png"),  # it sorts before: the file is kept under bird, at the link's path
], ids=["later-class", "earlier-class"])
def test_a_file_under_two_class_names_is_kept_once_in_the_first_class(tmp_path, link, kept_in, kept_path):
    write_classes(tmp_path)
    os.symlink(os.path.join("..", "cat", "00.png"), tmp_path / link)
    splits, messages = open_recording(tmp_path, val_fraction=0.0)
    assert len(splits.train) == 18
    assert (str(tmp_path / kept_path), CLASSES.index(kept_in)) in splits.train.samples
    assert reals(splits, "train").count(str((tmp_path / "cat" / "00.png").resolve())) == 1
    assert_one_split_each(splits)
    dropped = tmp_path / ("cat/00.png" if kept_in == "bird" else link)
    assert len(messages) == 1 and "skipped 1 duplicate image path(s)" in messages[0]
    assert f"e.g. {dropped}" in messages[0]


def test_a_class_folder_that_links_to_another_class_is_an_error(tmp_path):
    write_classes(tmp_path, classes=["bird", "cat"])
    os.symlink("cat", tmp_path / "dog")
    with pytest.raises(DataError, match=r"class folder .*dog holds no images of its own"):
        open_recording(tmp_path)


@pytest.mark.parametrize("layout", ["flat", "split"])
def test_no_links_no_warning(tmp_path, layout):
    if layout == "flat":
        write_classes(tmp_path)
    else:
        for split, seed in zip(SPLITS, (0, 1, 2)):
            write_classes(tmp_path / split, per_class=3, seed=seed)
    splits = open_silently(tmp_path, val_fraction=0.2)
    assert sum(len(getattr(splits, split)) for split in SPLITS) == len(regular_images(tmp_path))
    assert_one_split_each(splits)
