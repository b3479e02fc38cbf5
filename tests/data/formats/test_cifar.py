"""CIFAR loaders against fake batch folders written in the real pickle format, and against torchvision."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from zrenie.config import DataConfig
from zrenie.data.base import stratified_split
from zrenie.data.formats import cifar  # noqa: F401  (registers cifar10 and cifar100)
from zrenie.errors import DataError
from zrenie.registry import DATASETS

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS_PER_BATCH = 2


class Python2Pickler(pickle._Pickler):
    """Writes bytes as python 2 wrote its `str` (BINSTRING opcodes), as in the files the authors ship.

    Loaded with `encoding="latin1"` (as torchvision does) they become `str`; python 3's own protocol-2
    pickles would write `_codecs.encode` calls instead, which is not what is on disk.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def _dump(path: Path, obj: dict, python2: bool = True) -> None:
    """Pickles `obj` as the distributed batches are (python 2), or as python 3 would (bytes stay bytes)."""
    buffer = io.BytesIO()
    if python2:
        Python2Pickler(buffer, protocol=2).dump(obj)
    else:
        pickle.dump(obj, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    path.write_bytes(buffer.getvalue())


def _fake_batch(rng: np.random.Generator, n_classes: int, per_class: int) -> tuple[np.ndarray, list[int]]:
    labels = [c for c in range(n_classes) for _ in range(per_class)]
    rng.shuffle(labels)
    data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    return data, [int(x) for x in labels]


def write_cifar10(parent: Path, seed: int = 0, python2: bool = True) -> dict:
    """A cifar-10-batches-py folder as the authors ship it; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_data, train_labels = [], []
    for i in range(1, 6):
        data, labels = _fake_batch(rng, 10, PER_CLASS_PER_BATCH)
        _dump(folder / f"data_batch_{i}", {b"batch_label": b"training batch %d of 5" % i, b"labels": labels,
                                           b"data": data, b"filenames": [b"x.png"] * len(labels)}, python2)
        train_data.append(data)
        train_labels += labels
    test_data, test_labels = _fake_batch(rng, 10, PER_CLASS_PER_BATCH)
    _dump(folder / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": test_labels,
                                  b"data": test_data}, python2)
    _dump(folder / "batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                                    b"num_cases_per_batch": 20, b"num_vis": 3072}, python2)
    return {"train": np.concatenate(train_data), "train_labels": np.array(train_labels),
            "test": test_data, "test_labels": np.array(test_labels), "folder": folder}


def write_cifar100(parent: Path, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    folder = parent / "cifar-100-python"
    folder.mkdir(parents=True)
    classes = [f"class_{i:03d}" for i in range(100)]
    train, train_labels = _fake_batch(rng, 100, 2)
    test, test_labels = _fake_batch(rng, 100, 1)
    for name, data, labels in (("train", train, train_labels), ("test", test, test_labels)):
        _dump(folder / name, {b"filenames": [b"x.png"] * len(labels), b"fine_labels": labels,
                              b"coarse_labels": [lab // 5 for lab in labels], b"data": data})
    _dump(folder / "meta", {b"fine_label_names": [c.encode() for c in classes],
                            b"coarse_label_names": [b"super_%d" % i for i in range(20)]})
    return {"train": train, "train_labels": np.array(train_labels), "test": test,
            "test_labels": np.array(test_labels), "classes": classes}


def _chw(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data.reshape(-1, 3, 32, 32))


@pytest.mark.parametrize("python2", [True, False], ids=["python2-pickle", "python3-pickle"])
def test_cifar10_pixels_labels_classes_round_trip(tmp_path, python2):
    written = write_cifar10(tmp_path, python2=python2)
    splits = DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(tmp_path), val_fraction=0.0))
    assert splits.classes == CIFAR10_CLASSES
    assert torch.equal(splits.train.images, _chw(written["train"]))
    assert torch.equal(splits.train.targets, torch.from_numpy(written["train_labels"]))
    assert torch.equal(splits.test.images, _chw(written["test"]))
    assert torch.equal(splits.test.targets, torch.from_numpy(written["test_labels"]))
    assert (splits.in_channels, splits.image_size, splits.hflip) == (3, 32, True)
    # one pixel by hand: channel 1 (green) of image 7 at row 3, column 5 is value 1024 + 3 * 32 + 5 of its row
    assert splits.train.images[7, 1, 3, 5] == written["train"][7, 1024 + 3 * 32 + 5]


def test_cifar10_root_may_be_the_batches_folder(tmp_path):
    written = write_cifar10(tmp_path)
    splits = DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(written["folder"]), val_fraction=0.0))
    assert torch.equal(splits.test.images, _chw(written["test"]))


def test_cifar10_val_is_a_stratified_part_of_train(tmp_path):
    written = write_cifar10(tmp_path)
    cfg = DataConfig(name="cifar10", root=str(tmp_path), val_fraction=0.2, seed=3)
    splits = DATASETS.get("cifar10")(cfg)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80, 20, 20)
    assert torch.bincount(splits.val.targets, minlength=10).tolist() == [2] * 10
    val_idx, train_idx = stratified_split(written["train_labels"], [0.2], seed=3)
    assert torch.equal(splits.val.images, _chw(written["train"][val_idx]))
    assert torch.equal(splits.train.images, _chw(written["train"][train_idx]))
    expected_mean = splits.train.images.float().div(255).mean(dim=(0, 2, 3))
    assert np.allclose(splits.mean, expected_mean.numpy(), atol=1e-6)


def test_cifar10_size_resizes_bilinearly(tmp_path):
    written = write_cifar10(tmp_path)
    splits = DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(tmp_path), val_fraction=0.0, size=48))
    assert splits.image_size == 48 and splits.train.images.shape == (100, 3, 48, 48)
    x = _chw(written["test"]).float() / 255
    expected = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False)
    assert torch.equal(splits.test.images, (expected * 255).round().to(torch.uint8))


def test_cifar10_agrees_with_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets
    import torchvision.datasets.cifar

    written = write_cifar10(tmp_path)
    # torchvision checks the md5 of the real files; the fake ones are in the same format, not the same bytes
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    splits = DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(tmp_path), val_fraction=0.0))
    for train, ours in ((True, splits.train), (False, splits.test)):
        reference = torchvision.datasets.CIFAR10(str(tmp_path), train=train, download=False)
        assert torch.equal(ours.images, torch.from_numpy(reference.data).permute(0, 3, 1, 2))  # HWC -> CHW
        assert ours.targets.tolist() == reference.targets
        assert splits.classes == reference.classes
    reference_image, _ = torchvision.datasets.CIFAR10(str(tmp_path), train=False)[4]  # a PIL image
    assert torch.equal(splits.test.images[4], torch.from_numpy(np.array(reference_image)).permute(2, 0, 1))


def test_cifar100_fine_labels_and_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets
    import torchvision.datasets.cifar

    written = write_cifar100(tmp_path)
    splits = DATASETS.get("cifar100")(DataConfig(name="cifar100", root=str(tmp_path), val_fraction=0.5))
    assert splits.classes == written["classes"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (100, 100, 100)
    assert torch.bincount(splits.val.targets, minlength=100).tolist() == [1] * 100
    assert torch.equal(splits.test.images, _chw(written["test"]))
    assert torch.equal(splits.test.targets, torch.from_numpy(written["test_labels"]))
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    reference = torchvision.datasets.CIFAR100(str(tmp_path), train=False)
    assert torch.equal(splits.test.images, torch.from_numpy(reference.data).permute(0, 3, 1, 2))
    assert splits.classes == reference.classes


def test_missing_root_says_path_layout_and_download(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"nowhere does not exist.*cifar-10-batches-py.*data\.download=true"):
        DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(missing)))
    with pytest.raises(DataError, match=r"no batches\.meta in .*data\.download=true"):
        DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(tmp_path)))
    with pytest.raises(DataError, match=r"needs data\.root=PATH"):
        DATASETS.get("cifar100")(DataConfig(name="cifar100"))


def test_missing_or_corrupt_batch_names_the_file(tmp_path):
    written = write_cifar10(tmp_path)
    (written["folder"] / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"missing CIFAR file: .*data_batch_3$"):
        DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(tmp_path)))
    (written["folder"] / "data_batch_3").write_bytes((written["folder"] / "data_batch_2").read_bytes()[:500])
    with pytest.raises(DataError, match=r"not a readable CIFAR pickle: .*data_batch_3"):
        DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(tmp_path)))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    written = write_cifar10(tmp_path)

    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    _dump(written["folder"] / "test_batch", {b"data": Payload(), b"labels": []}, python2=False)
    with pytest.raises(DataError, match=r"test_batch.*refusing to load builtins\.print"):
        DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(tmp_path)))


def test_download_goes_through_torchvision_then_reads_its_files(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:  # stands in for the network: writes what the real downloader would extract
        def __init__(self, root, train=True, download=False):
            calls.append((root, download))
            write_cifar10(Path(root), seed=5)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    root = tmp_path / "fresh"
    splits = DATASETS.get("cifar10")(DataConfig(name="cifar10", root=str(root), download=True, val_fraction=0.0))
    assert calls == [(str(root), True)]
    assert len(splits.train) == 100 and len(splits.test) == 20
