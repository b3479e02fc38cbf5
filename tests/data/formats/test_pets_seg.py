"""pets_seg against a tiny generated Oxford-IIIT Pet folder with trimaps, and torchvision's segmentation targets."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zrenie
from zrenie.config import DataConfig
from zrenie.data.formats.pets import pets_seg
from zrenie.errors import DataError
from zrenie.registry import DATASETS

# (image id prefix, class id, species, breed id), as in the real annotation files
BREEDS = [("Abyssinian", 1, 1, 1), ("american_bulldog", 2, 2, 1)]


def write_pets_with_trimaps(parent: Path, trainval: int = 4, test: int = 2) -> Path:
    """`parent/oxford-iiit-pet/` with JPEG images, trimaps (1 pet, 2 background, 3 border) and the two lists."""
    rng = np.random.default_rng(0)
    base = parent / "oxford-iiit-pet"
    for sub in ("images", "annotations/trimaps"):
        (base / sub).mkdir(parents=True)
    number = 100
    for split, count in (("trainval", trainval), ("test", test)):
        lines = []
        for breed, class_id, species, breed_id in BREEDS:
            for i in range(count):
                number += 1
                image_id, (h, w) = f"{breed}_{number}", (10 + i, 14)
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(base / "images" / f"{image_id}.jpg")
                trimap = rng.choice([1, 2, 3], (h, w)).astype(np.uint8)
                Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{image_id}.png")
                lines.append(f"{image_id} {class_id} {species} {breed_id}")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return base


def _mask(dataset, index: int) -> np.ndarray:
    return dataset[index][1].as_subclass(torch.Tensor).numpy()


def test_masks_are_torchvision_trimaps_mapped_pet_1_background_0_border_ignored(tmp_path):
    import torchvision.datasets

    write_pets_with_trimaps(tmp_path)
    splits = pets_seg(DataConfig(name="pets_seg", root=str(tmp_path), val_fraction=0.0, size=32))
    assert "pets_seg" in DATASETS.list(tag="mask")
    assert splits.classes == ["background", "pet"] and splits.image_size == 32
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 0, 4)
    for split, ours in (("trainval", splits.train), ("test", splits.test)):
        reference = torchvision.datasets.OxfordIIITPet(str(tmp_path), split=split, target_types="segmentation")
        assert [image for image, _ in ours.pairs] == [str(p) for p in reference._images]
        for i in range(len(reference)):
            image, trimap = reference[i]
            trimap = np.asarray(trimap)
            expected = np.select([trimap == 1, trimap == 2, trimap == 3], [1, 0, 255], default=-1)
            assert np.array_equal(_mask(ours, i), expected)
            pixels = (ours[i][0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            assert np.array_equal(pixels, np.asarray(image))


def test_val_is_carved_from_trainval_by_breed_and_seeded(tmp_path):
    write_pets_with_trimaps(tmp_path, trainval=5)
    cfg = DataConfig(name="pets_seg", root=str(tmp_path / "oxford-iiit-pet"), val_fraction=0.2)
    splits, again = pets_seg(cfg), pets_seg(cfg)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 2, 4)
    assert sorted(Path(image).stem.rsplit("_", 1)[0] for image, _ in splits.val.pairs) == ["Abyssinian",
                                                                                           "american_bulldog"]
    assert again.val.pairs == splits.val.pairs
    assert not {p for p, _ in splits.val.pairs} & {p for p, _ in splits.train.pairs}


def test_bad_trimaps_are_one_line_errors_naming_the_file(tmp_path):
    base = write_pets_with_trimaps(tmp_path)
    trimaps = base / "annotations" / "trimaps"
    Image.fromarray(np.ones((5, 5), np.uint8)).save(trimaps / "Abyssinian_101.png")
    Image.fromarray(np.full((11, 14), 4, np.uint8)).save(trimaps / "Abyssinian_102.png")
    splits = pets_seg(DataConfig(name="pets_seg", root=str(tmp_path), val_fraction=0.0))
    with pytest.raises(DataError, match=r"trimap .*Abyssinian_101.png is 5x5 but its image .*Abyssinian_101.jpg "
                                        r"is 14x10"):
        splits.train[0]
    with pytest.raises(DataError, match=r"trimap .*Abyssinian_102.png: value 4 is not 1 \(pet\)"):
        splits.train[1]


def test_missing_trimaps_are_counted_once_or_refused_and_missing_images_refused(tmp_path):
    base = write_pets_with_trimaps(tmp_path)
    (base / "annotations" / "trimaps" / "Abyssinian_102.png").unlink()  # trainval
    (base / "annotations" / "trimaps" / "american_bulldog_111.png").unlink()  # test
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = pets_seg(DataConfig(name="pets_seg", root=str(tmp_path), val_fraction=0.0))
    messages = [str(w.message) for w in caught if "trimap" in str(w.message)]
    assert len(messages) == 1 and "skipped 2 image(s) without a trimap" in messages[0]
    assert (len(splits.train), len(splits.test)) == (7, 3)
    with pytest.raises(DataError, match=r"Abyssinian_102.jpg listed in .*trainval.txt has no trimap"):
        pets_seg(DataConfig(name="pets_seg", root=str(tmp_path), strict=True))
    (base / "images" / "Abyssinian_103.jpg").unlink()
    with pytest.raises(DataError, match=r"Abyssinian_103.jpg is listed in .*trainval.txt but missing"):
        pets_seg(DataConfig(name="pets_seg", root=str(tmp_path)))


def test_segment_trains_one_epoch_on_pets_seg(tmp_path):
    write_pets_with_trimaps(tmp_path / "data")
    run = zrenie.train("segment", out=str(tmp_path / "run"), epochs=1, progress=False, tensorboard=False,
                       report=False, **{"data.name": "pets_seg", "data.root": str(tmp_path / "data"),
                                        "data.size": 16, "data.workers": 0, "data.batch_size": 4,
                                        "data.val_fraction": 0.5, "model.width": 4, "model.kwargs": {"depth": 2}})
    assert {"miou", "dice", "iou/pet"} <= set(run["test"])
