"""pets and cats_vs_dogs against a tiny generated Oxford-IIIT Pet folder, and against torchvision's OxfordIIITPet."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zrenie.config import DataConfig
from zrenie.data.base import FileDataset
from zrenie.data.formats import pets  # noqa: F401  (registers pets and cats_vs_dogs)
from zrenie.data.formats.image_folder import IMAGENET_MEAN, IMAGENET_STD
from zrenie.errors import DataError
from zrenie.registry import DATASETS

# (image id prefix, class id, species 1 cat / 2 dog, breed id within the species), as in the real files
BREEDS = [("Abyssinian", 1, 1, 1), ("american_bulldog", 2, 2, 1), ("basset_hound", 3, 2, 2), ("Bengal", 4, 1, 2)]
CLASSES = [b[0] for b in BREEDS]


def write_pets(parent: Path, trainval: int = 4, test: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """`parent/oxford-iiit-pet/` with images and annotations/{trainval,test}.txt; returns lossless pixels.

    The first image of each breed and split holds PNG data under its .jpg name (the real dataset has
    such files; Pillow decodes by content), so its pixels must round-trip exactly. One unlisted image
    and a .mat file sit in images/ too, as in the real folder, and must be ignored.
    """
    rng = np.random.default_rng(seed)
    base = parent / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations").mkdir()
    lossless, number = {}, 100
    for split, count in (("trainval", trainval), ("test", test)):
        lines = []
        for breed, class_id, species, breed_id in BREEDS:
            for i in range(count):
                number += 1
                image_id = f"{breed}_{number}"
                array = rng.integers(0, 256, size=(8 + i, 13, 3), dtype=np.uint8)  # (H, W, C), non-square
                path = base / "images" / f"{image_id}.jpg"
                if i == 0:
                    Image.fromarray(array).save(path, format="PNG")
                    lossless[str(path)] = array
                else:
                    Image.fromarray(array).save(path, format="JPEG", quality=90)
                lines.append(f"{image_id} {class_id} {species} {breed_id}")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(base / "images" / "Abyssinian_999.jpg")
    (base / "images" / "Abyssinian_101.mat").write_bytes(b"MATLAB 5.0")
    return lossless


def _open(name: str, root: Path, **overrides):
    return DATASETS.get(name)(DataConfig(name=name, root=str(root), **overrides))


def _pixels(dataset: FileDataset, index: int) -> torch.Tensor:
    image, _ = dataset[index]  # float (C, H, W) in [0, 1], no transform set
    return (image * 255).round().to(torch.uint8)


def _hwc(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).permute(2, 0, 1)  # HWC -> CHW; a writable copy, as torch wants


def _breed(path: str) -> str:
    return Path(path).stem.rsplit("_", 1)[0]


def test_pets_splits_labels_classes_and_pixels(tmp_path):
    lossless = write_pets(tmp_path)
    splits = _open("pets", tmp_path, val_fraction=0.25)  # root is the parent of oxford-iiit-pet/
    assert splits.classes == CLASSES  # in class-id order, named by the image id prefix
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 8)
    assert torch.bincount(splits.val.targets, minlength=4).tolist() == [1, 1, 1, 1]
    assert (splits.in_channels, splits.image_size, splits.hflip) == (3, 224, True)
    assert (splits.mean, splits.std) == (IMAGENET_MEAN, IMAGENET_STD)
    exact = jpeg = 0
    for dataset in (splits.train, splits.val, splits.test):
        for i, (path, target) in enumerate(dataset.samples):
            assert CLASSES[target] == _breed(path)
            if path in lossless:
                assert torch.equal(_pixels(dataset, i), _hwc(lossless[path]))
                exact += 1
            else:
                assert torch.equal(_pixels(dataset, i), _hwc(np.asarray(Image.open(path).convert("RGB"))))
                jpeg += 1
    assert (exact, jpeg) == (8, 16)
    paths = [p for p, _ in splits.train.samples + splits.val.samples + splits.test.samples]
    assert len(set(paths)) == 24 and not any("_999" in p for p in paths)


def test_cats_vs_dogs_labels_by_species_and_stratified_val(tmp_path):
    write_pets(tmp_path, trainval=5)
    splits = _open("cats_vs_dogs", tmp_path / "oxford-iiit-pet", val_fraction=0.2, size=96)
    species = {b[0]: b[2] - 1 for b in BREEDS}
    assert splits.classes == ["cat", "dog"] and splits.image_size == 96
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 8)
    assert torch.bincount(splits.val.targets, minlength=2).tolist() == [2, 2]
    for dataset in (splits.train, splits.val, splits.test):
        assert all(species[_breed(p)] == t for p, t in dataset.samples)
    again = _open("cats_vs_dogs", tmp_path, val_fraction=0.2)
    assert again.val.samples == splits.val.samples  # same seed, same split


def test_agrees_with_torchvision_oxford_iiit_pet(tmp_path):
    import torchvision.datasets

    write_pets(tmp_path)
    for name, target_type in (("pets", "category"), ("cats_vs_dogs", "binary-category")):
        splits = _open(name, tmp_path, val_fraction=0.0)
        for split, ours in (("trainval", splits.train), ("test", splits.test)):
            reference = torchvision.datasets.OxfordIIITPet(str(tmp_path), split=split, target_types=target_type)
            labels = reference._labels if target_type == "category" else reference._bin_labels
            assert ours.samples == [(str(p), label) for p, label in zip(reference._images, labels)]
            image, label = reference[1]
            assert label == ours.samples[1][1]
            assert torch.equal(_pixels(ours, 1), _hwc(np.asarray(image)))
        if name == "pets":  # torchvision title-cases the same names: american_bulldog -> American Bulldog
            assert [" ".join(p.title() for p in c.split("_")) for c in splits.classes] == reference.classes
        else:
            assert [c.title() for c in splits.classes] == reference.bin_classes


def test_missing_root_and_layout_errors_are_one_line(tmp_path):
    for name in ("pets", "cats_vs_dogs"):
        with pytest.raises(DataError, match=rf"{name}'?: .*absent does not exist \(expected layout: "
                                            r"oxford-iiit-pet/images/<Breed_Name>_<n>\.jpg"):
            _open(name, tmp_path / "absent")
    with pytest.raises(DataError, match=r"needs data\.root=PATH"):
        DATASETS.get("pets")(DataConfig(name="pets"))
    with pytest.raises(DataError, match=r"no images/ and annotations/ in .*or pass data\.download=true"):
        _open("pets", tmp_path)


def test_listed_but_missing_file_is_an_error_naming_it(tmp_path):
    write_pets(tmp_path)
    missing = tmp_path / "oxford-iiit-pet" / "images" / "basset_hound_111.jpg"
    missing.unlink()
    listing = tmp_path / "oxford-iiit-pet" / "annotations" / "trainval.txt"
    for name in ("pets", "cats_vs_dogs"):
        with pytest.raises(DataError) as err:
            _open(name, tmp_path)
        assert "\n" not in str(err.value)
        assert f"{missing} is listed in {listing} but missing" in str(err.value)


def test_malformed_annotations_are_errors_naming_the_line(tmp_path):
    write_pets(tmp_path)
    listing = tmp_path / "oxford-iiit-pet" / "annotations" / "test.txt"
    text = listing.read_text()
    listing.write_text("# Image CLASS-ID SPECIES BREED ID\n" + text + "Bengal_120 4 cat 2\n")
    with pytest.raises(DataError, match=r"test\.txt:10: expected '<image id> <class id> <species> <breed id>'"):
        _open("pets", tmp_path)
    listing.write_text(text + "Bengal_120 4 3 2\n")
    with pytest.raises(DataError, match=r"test\.txt:9: class id must be >= 1 and species 1 or 2"):
        _open("cats_vs_dogs", tmp_path)
    listing.write_text(text + "Bengal_101 1 1 2\n")
    with pytest.raises(DataError, match=r"class id 1 is both 'Abyssinian' and 'Bengal'"):
        _open("pets", tmp_path)
    listing.write_text(text + "Bengal_101 6 1 2\n")
    with pytest.raises(DataError, match=r"class ids \[5\] have no image"):
        _open("pets", tmp_path)


def test_corrupt_files_are_skipped_with_one_warning_or_raise_when_strict(tmp_path):
    write_pets(tmp_path)
    images = tmp_path / "oxford-iiit-pet" / "images"
    rng = np.random.default_rng(0)
    (images / "Abyssinian_102.jpg").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())  # trainval
    (images / "Bengal_124.jpg").write_bytes(b"\xff\xd8\xff garbage")  # test
    for name in ("pets", "cats_vs_dogs"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            splits = _open(name, tmp_path, val_fraction=0.0)
        messages = [str(w.message) for w in caught if "corrupt" in str(w.message)]
        assert len(messages) == 1 and "skipped 2 corrupt" in messages[0]
        assert (len(splits.train), len(splits.test)) == (15, 7)
        kept = [p for p, _ in splits.train.samples + splits.test.samples]
        assert not any(p.endswith(("Abyssinian_102.jpg", "Bengal_124.jpg")) for p in kept)
        with pytest.raises(DataError, match=r"corrupt or unreadable image: .*Abyssinian_102\.jpg"):
            _open(name, tmp_path, strict=True)


def test_download_calls_torchvision_then_reads_its_folder(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeOxfordIIITPet:  # stands in for the network: writes the folder the real downloader would
        def __init__(self, root, split="trainval", download=False, **kwargs):
            calls.append((root, download))
            write_pets(Path(root))

    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", FakeOxfordIIITPet)
    splits = _open("pets", tmp_path / "new", download=True, val_fraction=0.0)
    assert calls == [(str(tmp_path / "new"), True)]
    assert (len(splits.train), len(splits.test)) == (16, 8)
    _open("cats_vs_dogs", tmp_path / "new", download=True)  # present now: no second download
    assert len(calls) == 1
