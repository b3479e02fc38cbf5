"""food101 against a tiny generated copy of the Food-101 folder, and against torchvision's Food101 reading it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zrenie.config import DataConfig
from zrenie.data.base import FileDataset
from zrenie.data.formats import food101  # noqa: F401  (registers food101)
from zrenie.data.formats.image_folder import IMAGENET_MEAN, IMAGENET_STD
from zrenie.errors import DataError
from zrenie.registry import DATASETS

CLASSES = ["apple_pie", "baby_back_ribs", "caesar_salad"]


def write_food101(parent: Path, train: int = 5, test: int = 2, seed: int = 0,
                  classes_txt: list[str] | None = None) -> dict[str, np.ndarray]:
    """`parent/food-101/` with images, meta/{train,test}.{txt,json}; returns the pixels of lossless files.

    The first image of each class and split holds PNG data under its .jpg name (Pillow decodes by
    content, as the real dataset's few odd files are), so its pixels must round-trip exactly.
    """
    rng = np.random.default_rng(seed)
    base = parent / "food-101"
    (base / "meta").mkdir(parents=True)
    lossless, ids = {}, iter(range(1000, 100000, 37))
    for split, count in (("train", train), ("test", test)):
        entries = {c: [] for c in CLASSES}
        for c in CLASSES:
            (base / "images" / c).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image_id = next(ids)
                array = rng.integers(0, 256, size=(9 + i, 11, 3), dtype=np.uint8)  # (H, W, C), non-square
                path = base / "images" / c / f"{image_id}.jpg"
                if i == 0:
                    Image.fromarray(array).save(path, format="PNG")
                    lossless[str(path)] = array
                else:
                    Image.fromarray(array).save(path, format="JPEG", quality=90)
                entries[c].append(f"{c}/{image_id}")
        lines = [e for c in CLASSES for e in entries[c]]
        (base / "meta" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        (base / "meta" / f"{split}.json").write_text(json.dumps(entries))  # what torchvision reads
    if classes_txt is not None:
        (base / "meta" / "classes.txt").write_text("\n".join(classes_txt) + "\n")
    return lossless


def _open(root: Path, **overrides):
    return DATASETS.get("food101")(DataConfig(name="food101", root=str(root), **overrides))


def _pixels(dataset: FileDataset, index: int) -> torch.Tensor:
    image, _ = dataset[index]  # float (C, H, W) in [0, 1], no transform set
    return (image * 255).round().to(torch.uint8)


def _hwc(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).permute(2, 0, 1)  # HWC -> CHW; a writable copy, as torch wants


def test_splits_labels_classes_and_pixels(tmp_path):
    lossless = write_food101(tmp_path)
    splits = _open(tmp_path, val_fraction=0.2)  # root is the parent of food-101/
    assert splits.classes == CLASSES  # no classes.txt: the sorted image folders
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 3, 6)
    assert torch.bincount(splits.val.targets, minlength=3).tolist() == [1, 1, 1]
    assert torch.bincount(splits.test.targets, minlength=3).tolist() == [2, 2, 2]
    assert (splits.in_channels, splits.image_size, splits.hflip) == (3, 224, True)
    assert (splits.mean, splits.std) == (IMAGENET_MEAN, IMAGENET_STD)
    exact = jpeg = 0
    for dataset in (splits.train, splits.val, splits.test):
        for i, (path, target) in enumerate(dataset.samples):
            assert CLASSES[target] == Path(path).parent.name
            if path in lossless:
                assert torch.equal(_pixels(dataset, i), _hwc(lossless[path]))
                exact += 1
            else:
                assert torch.equal(_pixels(dataset, i), _hwc(np.asarray(Image.open(path).convert("RGB"))))
                jpeg += 1
    assert (exact, jpeg) == (6, 15)
    train_paths = {p for p, _ in splits.train.samples}
    assert not train_paths & {p for p, _ in splits.val.samples}
    assert not train_paths & {p for p, _ in splits.test.samples}


def test_classes_txt_order_and_root_is_the_folder(tmp_path):
    order = ["caesar_salad", "apple_pie", "baby_back_ribs"]
    write_food101(tmp_path, classes_txt=order)
    splits = _open(tmp_path / "food-101", val_fraction=0.0, size=64)
    assert splits.classes == order and splits.image_size == 64
    assert len(splits.train) == 15 and len(splits.val) == 0
    assert all(order[t] == Path(p).parent.name for p, t in splits.train.samples + splits.test.samples)


def test_val_is_stratified_and_seeded(tmp_path):
    write_food101(tmp_path, train=10, test=1)
    a, b = _open(tmp_path, val_fraction=0.3, seed=1), _open(tmp_path, val_fraction=0.3, seed=1)
    assert torch.bincount(a.val.targets, minlength=3).tolist() == [3, 3, 3]
    assert torch.bincount(a.train.targets, minlength=3).tolist() == [7, 7, 7]
    assert a.val.samples == b.val.samples
    others = [_open(tmp_path, val_fraction=0.3, seed=s).val.samples for s in (2, 3, 4)]
    assert any(o != a.val.samples for o in others)


def test_agrees_with_torchvision_food101(tmp_path):
    import torchvision.datasets

    write_food101(tmp_path, classes_txt=CLASSES)
    splits = _open(tmp_path, val_fraction=0.0)
    for split, ours in (("train", splits.train), ("test", splits.test)):
        reference = torchvision.datasets.Food101(str(tmp_path), split=split)
        assert splits.classes == reference.classes
        theirs = [(str(p), label) for p, label in zip(reference._image_files, reference._labels)]
        assert sorted(ours.samples) == sorted(theirs)
        image, label = reference[0]
        index = ours.samples.index(theirs[0])
        assert label == ours.samples[index][1]
        assert torch.equal(_pixels(ours, index), _hwc(np.asarray(image)))


def test_missing_root_and_layout_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match=r"absent does not exist \(expected layout: food-101/images/<class>/<id>\.jpg"):
        _open(tmp_path / "absent")
    with pytest.raises(DataError, match=r"needs data\.root=PATH"):
        DATASETS.get("food101")(DataConfig(name="food101"))
    with pytest.raises(DataError, match=r"no images/ and meta/ in .*or pass data\.download=true"):
        _open(tmp_path)


def test_listed_but_missing_file_is_an_error_naming_it(tmp_path):
    write_food101(tmp_path)
    entry = (tmp_path / "food-101" / "meta" / "test.txt").read_text().split()[3]
    missing = tmp_path / "food-101" / "images" / f"{entry}.jpg"
    missing.unlink()
    with pytest.raises(DataError) as err:
        _open(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert f"{missing} is listed in {tmp_path / 'food-101' / 'meta' / 'test.txt'} but missing" in message


def test_malformed_lines_and_unknown_classes_are_errors(tmp_path):
    write_food101(tmp_path)
    meta = tmp_path / "food-101" / "meta"
    text = (meta / "train.txt").read_text()
    (meta / "train.txt").write_text(text + "pizza/123\n")
    with pytest.raises(DataError, match=r"train\.txt:16: class 'pizza' is not among the 3 classes"):
        _open(tmp_path)
    (meta / "train.txt").write_text("no_slash_here\n" + text)
    with pytest.raises(DataError, match=r"train\.txt:1: expected <class>/<id>"):
        _open(tmp_path)


def test_json_lists_are_read_when_the_txt_lists_are_absent(tmp_path):
    write_food101(tmp_path)
    reference = _open(tmp_path, val_fraction=0.0)
    for split in ("train", "test"):
        (tmp_path / "food-101" / "meta" / f"{split}.txt").unlink()
    splits = _open(tmp_path, val_fraction=0.0)
    assert splits.train.samples == reference.train.samples and splits.test.samples == reference.test.samples


def test_corrupt_files_are_skipped_with_one_warning_or_raise_when_strict(tmp_path):
    write_food101(tmp_path)
    images = tmp_path / "food-101" / "images"
    meta = tmp_path / "food-101" / "meta"
    broken_train = images / f"{(meta / 'train.txt').read_text().split()[2]}.jpg"
    broken_test = images / f"{(meta / 'test.txt').read_text().split()[5]}.jpg"
    rng = np.random.default_rng(0)
    broken_train.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    broken_test.write_bytes(b"\xff\xd8\xff garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = _open(tmp_path, val_fraction=0.0)
    messages = [str(w.message) for w in caught if "corrupt" in str(w.message)]
    assert len(messages) == 1 and "skipped 2 corrupt" in messages[0]
    assert (len(splits.train), len(splits.test)) == (14, 5)
    kept = {p for p, _ in splits.train.samples + splits.test.samples}
    assert str(broken_train) not in kept and str(broken_test) not in kept
    with pytest.raises(DataError, match=r"corrupt or unreadable image: .*\.jpg"):
        _open(tmp_path, strict=True)


def test_download_calls_torchvision_then_reads_its_folder(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeFood101:  # stands in for the network: writes the folder the real downloader would
        def __init__(self, root, split="train", download=False):
            calls.append((root, download))
            write_food101(Path(root))

    monkeypatch.setattr(torchvision.datasets, "Food101", FakeFood101)
    splits = _open(tmp_path / "new", download=True, val_fraction=0.0)
    assert calls == [(str(tmp_path / "new"), True)]
    assert (len(splits.train), len(splits.test)) == (15, 6)
    _open(tmp_path / "new", download=True)  # present now: no second download
    assert len(calls) == 1
