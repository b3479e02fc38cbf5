"""Engine options that change how the loop runs, each on a seconds-long run."""

import math

import pytest
import torch

import zrenie
from zrenie.engine.evaluate import resolve_amp
from zrenie.tasks.classify.step import ClassifyStep, flip_tta_logits


def test_amp_resolution():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_amp("auto", cpu) is None and resolve_amp("off", cuda) is None
    assert resolve_amp("bf16", cpu) is torch.bfloat16 and resolve_amp("fp16", cuda) is torch.float16


@pytest.mark.parametrize("extra", [
    {"amp": "bf16"},
    {"channels_last": True, "optim.grad_clip": 1.0},
    {"optim.name": "adamw", "optim.lr": 3e-3, "optim.schedule": "cosine", "optim.warmup_epochs": 0.5},
    {"classify.tta": "flip", "ema": 0.99, "classify.label_smoothing": 0.1},
], ids=["bf16", "channels_last+clip", "adamw+cosine", "tta+ema+smoothing"])
def test_options_train_to_finite_useful_metrics(tiny, extra):
    result = zrenie.train("classify", **tiny("opt", **extra))
    assert all(math.isfinite(v) for v in result["test"].values())
    assert result["test"]["acc1"] > 0.3


def test_flip_tta_averages_probabilities_of_image_and_mirror():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x = torch.randn(4, 1, 3, 4)
    expected = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    assert torch.allclose(flip_tta_logits(model, x).exp(), expected, atol=1e-6)
    out = ClassifyStep(3, tta="flip").eval_step({"model": model}, {"image": x, "target": torch.tensor([0, 1, 2, 0])})
    assert torch.allclose(out["outputs"].softmax(1), expected, atol=1e-6)


@pytest.mark.slow
def test_torch_compile_trains(tiny):
    result = zrenie.train("classify", **tiny("compiled", compile=True, epochs=1))
    assert result["test"]["acc1"] > 0.2


@pytest.mark.slow
def test_demo_recipe_reaches_target_accuracy(tmp_path):
    result = zrenie.train("classify", recipe="recipes/digits_cnn.yaml", out=str(tmp_path / "demo"), progress=False)
    assert result["test"]["acc1"] >= 0.98
    assert (tmp_path / "demo" / "report.html").is_file()
