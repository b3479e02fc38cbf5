"""IDX loaders against files written byte by byte with struct, plain and gzipped, and against torchvision."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from zrenie.config import DataConfig
from zrenie.data.formats import mnist_idx
from zrenie.data.formats.mnist_idx import FASHION_CLASSES, read_idx
from zrenie.errors import DataError
from zrenie.registry import DATASETS

TRAIN_PER_CLASS, TEST_PER_CLASS = 4, 1


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x0000 08 <ndim>, big-endian uint32 sizes, then the values."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, gz: bool = False, seed: int = 0) -> dict:
    """The four MNIST files with random 28x28 images; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, per_class in (("train", TRAIN_PER_CLASS), ("t10k", TEST_PER_CLASS)):
        labels = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), per_class))
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        arrays[prefix] = (images, labels)
    return arrays


def _open(name: str, root: Path, **overrides) -> object:
    return DATASETS.get(name)(DataConfig(name=name, root=str(root), **overrides))


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_pixels_and_labels_round_trip(tmp_path, gz):
    written = write_idx_folder(tmp_path, gz=gz)
    splits = _open("mnist", tmp_path, val_fraction=0.0)
    train_images, train_labels = written["train"]
    test_images, test_labels = written["t10k"]
    assert torch.equal(splits.train.images, torch.from_numpy(train_images).unsqueeze(1))  # (N, 1, 28, 28)
    assert splits.train.targets.tolist() == train_labels.tolist()
    assert torch.equal(splits.test.images, torch.from_numpy(test_images).unsqueeze(1))
    assert splits.test.targets.tolist() == test_labels.tolist()
    assert splits.classes == [str(d) for d in range(10)]
    assert (splits.in_channels, splits.image_size, splits.hflip) == (1, 28, False)
    assert len(splits.mean) == len(splits.std) == 1


def test_val_is_stratified_and_size_resizes(tmp_path):
    write_idx_folder(tmp_path)
    splits = _open("mnist", tmp_path, val_fraction=0.25, size=32, seed=7)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 10)
    assert torch.bincount(splits.val.targets, minlength=10).tolist() == [1] * 10
    assert splits.image_size == 32 and splits.train.images.shape[1:] == (1, 32, 32)
    again = _open("mnist", tmp_path, val_fraction=0.25, size=32, seed=7)
    assert torch.equal(again.val.images, splits.val.images)


def test_fashion_mnist_classes_and_flip(tmp_path):
    write_idx_folder(tmp_path / "FashionMNIST" / "raw", gz=True)
    splits = _open("fashion_mnist", tmp_path)
    assert splits.classes == FASHION_CLASSES
    assert splits.classes[0] == "T-shirt/top" and splits.classes[9] == "Ankle boot"
    assert splits.hflip is True


@pytest.mark.parametrize("name, folder, upstream", [("mnist", "MNIST", "MNIST"),
                                                    ("fashion_mnist", "FashionMNIST", "FashionMNIST")])
def test_agrees_with_torchvision_on_its_raw_layout(tmp_path, name, folder, upstream):
    import torchvision.datasets

    write_idx_folder(tmp_path / folder / "raw", seed=3)
    splits = _open(name, tmp_path, val_fraction=0.0)
    for train, ours in ((True, splits.train), (False, splits.test)):
        reference = getattr(torchvision.datasets, upstream)(str(tmp_path), train=train, download=False)
        assert torch.equal(ours.images[:, 0], reference.data)
        assert torch.equal(ours.targets, reference.targets)
        if name == "fashion_mnist":  # torchvision names the digits "0 - zero", ..., zrenie "0", ...
            assert splits.classes == reference.classes


def test_read_idx_rejects_wrong_magic_and_truncation(tmp_path):
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    wrong = tmp_path / "wrong-magic"
    wrong.write_bytes(struct.pack(">I", 0x00000801) + good[4:])
    with pytest.raises(DataError, match=r"wrong-magic has magic number 0x00000801, expected 0x00000803"):
        read_idx(wrong, ndim=3)
    short = tmp_path / "short"
    short.write_bytes(good[:-5])
    with pytest.raises(DataError, match=r"short holds 1563 values .* needs 1568"):
        read_idx(short, ndim=3)
    (tmp_path / "tiny").write_bytes(good[:6])
    with pytest.raises(DataError, match=r"tiny is truncated"):
        read_idx(tmp_path / "tiny", ndim=3)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-12])
    with pytest.raises(DataError, match=r"not a readable IDX file: .*cut\.gz"):
        read_idx(tmp_path / "cut.gz", ndim=3)


def test_dataset_errors_name_the_file(tmp_path):
    write_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing IDX file: .*t10k-labels-idx1-ubyte"):
        _open("mnist", tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match=r"holds 10 images but .*t10k-labels-idx1-ubyte 3 labels"):
        _open("mnist", tmp_path)


def test_missing_root_says_path_layout_and_download(tmp_path):
    with pytest.raises(DataError, match=r"absent does not exist.*train-images-idx3-ubyte.*data\.download=true"):
        _open("mnist", tmp_path / "absent")
    with pytest.raises(DataError, match=r"no IDX files in .*FashionMNIST.raw.*data\.download=true"):
        _open("fashion_mnist", tmp_path)


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeMNIST:  # stands in for the network: leaves the gzipped files where torchvision puts them
        def __init__(self, root, train=True, download=False):
            calls.append((root, download))
            write_idx_folder(Path(root) / "MNIST" / "raw", gz=True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    splits = _open("mnist", tmp_path / "new", download=True)
    assert calls == [(str(tmp_path / "new"), True)]
    assert len(splits.test) == 10
    found = mnist_idx.locate(DataConfig(name="mnist", root=str(tmp_path / "new")), "mnist")
    assert found["train_images"] == tmp_path / "new" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
