"""Training from an on-disk ImageFolder goes through DataLoader workers and survives corrupt files."""

import numpy as np
import pytest
from PIL import Image

import zrenie
from zrenie.errors import DataError
from zrenie.nn.checkpoint import load_checkpoint, resolve_checkpoint


# Red and blue are separable at a glance: a trained model gets them all, an untrained one is at
# chance (0.5), so the threshold tells whether training happened.
LEARNT = 0.9


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / name).mkdir(parents=True)
        for i in range(24):
            size = (int(rng.integers(20, 40)), int(rng.integers(20, 40)))
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def _train(folder, out, **extra):
    # No data.size: the size comes from the images (median shorter side about 26 px -> 32).
    with pytest.warns(UserWarning, match="skipped 1 corrupt"):
        return zrenie.train("classify", data="image_folder", out=str(out), epochs=3, progress=False,
                            tensorboard=False, **{
                                "data.root": str(folder), "data.batch_size": 8,
                                "data.workers": 1, "data.val_fraction": 0.25, "model.width": 8, **extra})


def test_image_folder_trains_with_workers_and_skips_corrupt_file(folder, tmp_path):
    result = _train(folder, tmp_path / "run")
    assert result["test"]["acc1"] >= LEARNT
    assert load_checkpoint(resolve_checkpoint(result["run_dir"]))["preprocess"]["image_size"] == 32
    preds = zrenie.predict(result["run_dir"], [folder / "blue" / "0.jpg"], topk=2)
    assert [c for c, _ in preds[0].top] == ["blue", "red"]
    # The same run without learning stays below the threshold: it measures training, not chance.
    assert _train(folder, tmp_path / "lr0", **{"optim.lr": 0.0})["test"]["acc1"] < LEARNT


def test_strict_mode_refuses_corrupt_file(folder, tmp_path):
    with pytest.raises(DataError, match="broken.jpg"):
        zrenie.train("classify", data="image_folder", out=str(tmp_path / "run"), epochs=1, progress=False,
                     **{"data.root": str(folder), "data.strict": True})
    assert not (tmp_path / "run").exists()  # nothing written for a run that never started


def test_load_dataset_returns_float_samples():
    test = zrenie.load_dataset("digits", split="test", size=16)
    image, label = test[0]
    assert image.shape == (1, 16, 16) and image.dtype.is_floating_point and 0 <= image.min() <= image.max() <= 1
    assert isinstance(label, int) and len(test) == 359
    with pytest.raises(zrenie.ZrenieError, match="unknown split"):
        zrenie.load_dataset("digits", split="holdout")
