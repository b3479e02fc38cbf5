"""Training, evaluation and prediction on a GPU, with bf16 autocast and channels_last (skipped without CUDA).

A GPU-trained run must evaluate to the same numbers on the CPU: the checkpoint holds no device state.
"""

import pytest
import torch

import zrenie

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

COMMON = {"epochs": 2, "progress": False, "tensorboard": False, "report": False, "seed": 0,
          "device": "cuda", "amp": "bf16", "channels_last": True}
RUNS = {
    "classify": {"data": "shapes", "data.num_samples": 256, "data.batch_size": 32, "model.width": 8},
    "segment": {"data.num_samples": 64, "data.size": 32, "data.batch_size": 8, "model.width": 4,
                "model.kwargs": {"depth": 2}},
}


@pytest.mark.parametrize("task", sorted(RUNS))
def test_train_on_gpu_then_evaluate_on_cpu_and_gpu_alike(task, tmp_path):
    run = zrenie.train(task, out=str(tmp_path / task), **COMMON, **RUNS[task])
    on_gpu = zrenie.evaluate(run["run_dir"], device="cuda", amp="off")["metrics"]
    on_cpu = zrenie.evaluate(run["run_dir"], device="cpu", amp="off")["metrics"]
    for name in on_cpu:
        assert on_gpu[name] == pytest.approx(on_cpu[name], abs=2e-3), name
    (result,) = zrenie.predict(run["run_dir"], [torch.rand(3, 40, 52)], device="cuda")
    assert result.to_dict()


def test_segment_postprocess_runs_on_gpu(tmp_path):
    run = zrenie.train("segment", out=str(tmp_path / "seg"), **COMMON, **RUNS["segment"])
    for postprocess in ("crf", "superpixels"):
        metrics = zrenie.evaluate(run["run_dir"], device="cuda", postprocess=postprocess)["metrics"]
        assert 0 <= metrics["miou"] <= 1
