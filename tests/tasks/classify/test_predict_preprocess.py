"""`predict` prepares an image as `eval` prepared the test split: the checkpoint keeps the eval geometry."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import zrenie
from zrenie.data.transforms import eval_geometry, eval_transform, prepare_image
from zrenie.imgproc.io import read_image
from zrenie.nn.checkpoint import load_run


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """A run on 48x24 images whose class shows only in the middle: a squash and a centre crop see different things."""
    tmp = tmp_path_factory.mktemp("wide")
    rng = np.random.default_rng(0)
    root = tmp / "images"
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (24, 48, 3)).astype(np.uint8)  # noise at the sides
            pixels[:, 14:34] = np.array(colour, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    result = zrenie.train("classify", data="image_folder", out=str(tmp / "run"), epochs=1, progress=False,
                          tensorboard=False, report=False, **{
                              "data.root": str(root), "data.size": 16, "data.batch_size": 8, "data.workers": 0,
                              "data.val_fraction": 0.25, "model.width": 8})
    return result["run_dir"], sorted(root.rglob("*.png"))


def test_the_checkpoint_keeps_the_eval_geometry(wide_run):
    handle = load_run(wide_run[0])
    assert handle.preprocess["eval"] == {"resize": 18, "crop": 16}  # round(16 * 8 / 7) = 18, then the centre 16
    assert handle.preprocess["background"] == 255


def test_predict_inputs_are_the_eval_inputs(wide_run):
    run, files = wide_run
    meta = load_run(run).preprocess
    for path in files[:4]:
        uint8 = read_image(path)
        evaluated = eval_transform(16)(uint8)  # what the test pass fed the model
        predicted = prepare_image(uint8.float() / 255, meta)
        assert predicted.shape == evaluated.shape == (3, 16, 16)
        assert (predicted - evaluated).abs().max() <= 1 / 255 + 1e-6  # the same up to uint8 rounding
        squashed = v2.Resize([16, 16], antialias=True)(uint8).float() / 255  # what predict did before
        assert (squashed - evaluated).abs().max() > 0.2


def test_predict_probabilities_are_the_model_on_eval_inputs(wide_run):
    run, files = wide_run
    handle = load_run(run)
    meta = handle.preprocess
    batch = torch.stack([eval_transform(16)(read_image(p)) for p in files[:6]])
    mean, std = torch.tensor(meta["mean"]).view(3, 1, 1), torch.tensor(meta["std"]).view(3, 1, 1)
    with torch.no_grad():
        expected = handle.model((batch - mean) / std).softmax(1)
    results = zrenie.predict(run, files[:6], topk=2)
    for result, probs in zip(results, expected):
        got = {c: p for c, p in result.top}
        for c, name in enumerate(meta["classes"]):
            assert got[name] == pytest.approx(float(probs[c]), abs=2e-3)


def test_geometry_by_dataset_kind():
    assert eval_geometry(None) == {"resize": None}
    assert eval_geometry(32, per_sample=False) == {"resize": [32, 32], "antialias": False}
    assert eval_geometry(32, target="mask") == {"resize": [32, 32]}
    assert eval_geometry(224) == {"resize": 256, "crop": 224}  # the ImageNet protocol


def test_a_digits_run_predicts_its_own_test_images_as_eval_does(tiny):
    """In-memory data: the model saw the images at their stored size; predict leaves an image of that size alone."""
    result = zrenie.train("classify", **tiny(epochs=1))
    handle = load_run(result["run_dir"])
    assert handle.preprocess["eval"] == {"resize": [8, 8], "antialias": False}
    test = zrenie.load_dataset("digits", split="test")
    image, _ = test[0]
    assert torch.equal(prepare_image(image, handle.preprocess), image)


def test_a_checkpoint_from_before_keeps_its_squash(wide_run):
    """Runs saved without `eval` (older releases) are resized whole, as they were when they were made."""
    meta = {k: v for k, v in load_run(wide_run[0]).preprocess.items() if k != "eval"}
    image = read_image(wide_run[1][0]).float() / 255
    expected = v2.Resize([16, 16], antialias=True)(image)
    assert torch.allclose(prepare_image(image, meta), expected)
