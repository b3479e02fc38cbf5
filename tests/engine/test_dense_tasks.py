"""Two throwaway tasks, defined here and nowhere else: one segmentation-shaped, one detection-shaped.

toyseg: masks from the built-in shapes scenes, joint crop and flip on the device, a summed IoU metric.
toydet: a list of images of different sizes read through DataLoader workers, ragged boxes, a per-image
metric gathered by image index. Each trains, resumes after SIGKILL to the same weights, evaluates under
a 2-process DDP run to the metrics of one process, and predicts through the CLI and the API. Run as a
script, this file is the `zrenie` CLI with both tasks registered.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import box_iou

import zrenie
from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, channel_stats
from zrenie.data.builtin.shapes import shape_scenes
from zrenie.engine.evaluate import autocast_factory, evaluate, resolve_amp
from zrenie.registry import MODELS
from zrenie.report.result import Result
from zrenie.tasks import Task, register_task

SLOTS = 4  # toydet predicts at most this many boxes per image


def _maybe_die(epoch: int, batch: int) -> None:
    if os.environ.get("DENSE_SIGKILL_AT") == f"{epoch},{batch}":
        os.kill(os.getpid(), signal.SIGKILL)  # preemption without warning, mid-epoch


class _DenseTask(Task):
    """What both toy tasks share: loaders from the task, the engine's evaluation loop for tests."""

    def test(self, models, splits, cfg, device, split="test"):
        step = self.build_step(cfg, splits.meta(), splits)
        loader = self.build_loader(splits, split, cfg, device)
        return {"metrics": evaluate(models, step, loader, step.new_metric(),
                                    autocast_factory(device, resolve_amp(cfg.amp, device)))}


# ---- toyseg -----------------------------------------------------------------------------------------

@MODELS.register("toyseg_net", tags=("toyseg",))
def toyseg_net(num_classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, num_classes, 1))


class IoUSums:
    """Per-class intersection and union summed over pixels: mIoU over the classes that occur."""

    names = ["miou", "pixel_acc"]

    def __init__(self, num_classes: int):
        self.k = num_classes
        self.state = {"inter": torch.zeros(num_classes, dtype=torch.float64),
                      "union": torch.zeros(num_classes, dtype=torch.float64),
                      "correct": torch.zeros((), dtype=torch.float64), "count": torch.zeros((), dtype=torch.float64)}

    def update(self, out, batch):
        pred, true = out["outputs"], batch["target"]
        valid = true != 255
        for c in range(self.k):
            p, t = (pred == c) & valid, (true == c) & valid
            self.state["inter"][c] += (p & t).sum()
            self.state["union"][c] += (p | t).sum()
        self.state["correct"] += ((pred == true) & valid).sum()
        self.state["count"] += valid.sum()

    def compute(self):
        union = self.state["union"]
        iou = self.state["inter"][union > 0] / union[union > 0]
        return {"miou": iou.mean().item(), "pixel_acc": (self.state["correct"] / self.state["count"]).item()}


class SegStep:
    def __init__(self, num_classes: int):
        self.k = num_classes

    def train_step(self, models, batch, ctx):
        _maybe_die(ctx.epoch, ctx.batch)
        logits = models["model"](batch["image"])  # (B, K, H, W)
        return {"loss": F.cross_entropy(logits.float(), batch["target"], ignore_index=255)}

    def eval_step(self, models, batch):
        return {"outputs": models["model"](batch["image"]).argmax(1)}

    def new_metric(self):
        return IoUSums(self.k)


class MaskResult(Result):
    def __init__(self, source, mask, classes):
        self.source, self.mask, self.classes = source, mask, classes

    def to_dict(self):
        present = torch.unique(self.mask).tolist()
        return {"image": self.source, "size": list(self.mask.shape), "classes": [self.classes[c] for c in present]}


@register_task
class ToySegTask(_DenseTask):
    name = "toyseg"
    target = "mask"
    monitor = ("val/miou", "max")
    defaults = {"data.name": "shapes", "data.size": 32, "data.num_samples": 160, "data.num_classes": 3,
                "data.batch_size": 16, "data.augment": "standard", "optim.name": "adamw", "optim.lr": 3e-3,
                "optim.schedule": "constant", "optim.weight_decay": 0.0}

    def metric_names(self, cfg, preprocess):
        return IoUSums.names

    def model_specs(self, cfg, preprocess):
        return {"model": ("toyseg_net", {"num_classes": len(preprocess["classes"])})}

    def build_step(self, cfg, preprocess, splits=None):
        return SegStep(len(preprocess["classes"]))

    def predict(self, handle, images, names):
        from zrenie.data.loading import Normalize

        meta, out = handle.preprocess, []
        norm = Normalize(meta["mean"], meta["std"], handle.device)
        for name, image in zip(names, images):
            x = F.interpolate(image[None, :3], size=(meta["image_size"],) * 2, mode="bilinear", antialias=True)
            out.append(MaskResult(name, handle.model(norm(x.to(handle.device))).argmax(1)[0].cpu(), meta["classes"]))
        return out


# ---- toydet -----------------------------------------------------------------------------------------

class SceneFiles(Dataset):
    """Scenes of two sizes (24 and 32 pixels) served one sample at a time, as a file dataset would be."""

    target_kind = "boxes"
    labels = None

    def __init__(self, scenes, classes):
        self.scenes, self.classes, self.transform = scenes, classes, None

    def __len__(self):
        return len(self.scenes)

    def __getitem__(self, index):
        scene = self.scenes[index]
        image = torch.from_numpy(scene.image)
        target = {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(scene.boxes), format="XYXY",
                                                    canvas_size=tuple(image.shape[-2:])),
                  "labels": torch.from_numpy(scene.labels)}
        return self.transform(image, target) if self.transform else (image.float() / 255, target)


@MODELS.register("toydet_net", tags=("toydet",))
def toydet_net(num_classes: int = 3) -> nn.Module:
    return ToyDetector(num_classes)


class ToyDetector(nn.Module):
    """One vector per image (any size) -> SLOTS x (box, objectness, class); it normalises its own input."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.k = num_classes
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                                      nn.Flatten(), nn.Linear(256, 64), nn.ReLU())
        self.head = nn.Linear(64, SLOTS * (5 + num_classes))

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        feats = torch.cat([self.features((im[None] - 0.5) / 0.25) for im in images])
        return self.head(feats).view(len(images), SLOTS, 5 + self.k)  # boxes in [0, 1] of the image side


def _slot_targets(targets, images):
    """The first SLOTS objects by x1 of each image, as (boxes / side, valid, labels), each (B, SLOTS, ...)."""
    boxes = torch.zeros(len(targets), SLOTS, 4)
    valid = torch.zeros(len(targets), SLOTS, dtype=torch.bool)
    labels = torch.zeros(len(targets), SLOTS, dtype=torch.long)
    for i, (t, im) in enumerate(zip(targets, images)):
        order = t["boxes"][:, 0].argsort()[:SLOTS]
        n = len(order)
        boxes[i, :n] = t["boxes"][order] / im.shape[-1]
        valid[i, :n] = True
        labels[i, :n] = t["labels"][order]
    return boxes, valid, labels


def _detections(out: torch.Tensor, images) -> list[dict]:
    dets = []
    for o, im in zip(out, images):
        keep = o[:, 4] > 0
        dets.append({"boxes": o[keep, :4].clamp(0, 1) * im.shape[-1], "labels": o[keep, 5:].argmax(1),
                     "scores": o[keep, 4].sigmoid()})
    return dets


class PerImageHits:
    """Per-image records keyed by index (gathered under DDP): true boxes found at IoU >= 0.5 with their label."""

    names = ["precision", "recall"]
    compute_on_main = True  # as a COCO evaluation would: rank 0 computes, the others receive its result

    def __init__(self):
        self.mine, self.records = [], []

    def update(self, out, batch):
        for i, det, true in zip(batch["index"].tolist(), out["detections"], batch["target"]):
            hits = 0
            if len(det["boxes"]) and len(true["boxes"]):
                iou = box_iou(det["boxes"].float(), true["boxes"].float())
                same = det["labels"][:, None] == true["labels"][None]
                hits = int(((iou >= 0.5) & same).any(0).sum())
            self.mine.append({"index": i, "image_id": i, "hits": hits, "n_pred": len(det["boxes"]),
                              "n_true": len(true["boxes"])})

    def local_records(self):
        return self.mine

    def merge_records(self, records):
        self.records = records

    def compute(self):
        hits = sum(r["hits"] for r in self.records)
        return {"precision": hits / max(1, sum(r["n_pred"] for r in self.records)),
                "recall": hits / max(1, sum(r["n_true"] for r in self.records))}


class DetStep:
    def train_step(self, models, batch, ctx):
        _maybe_die(ctx.epoch, ctx.batch)
        images = batch["image"]
        out = models["model"](images)
        boxes, valid, labels = _slot_targets(batch["target"], images)
        loss = F.binary_cross_entropy_with_logits(out[..., 4], valid.float())
        if valid.any():
            loss = loss + F.l1_loss(out[..., :4][valid], boxes[valid]) + F.cross_entropy(out[..., 5:][valid],
                                                                                          labels[valid])
        return {"loss": loss}

    def eval_step(self, models, batch):
        return {"detections": _detections(models["model"](batch["image"]), batch["image"])}

    def new_metric(self):
        return PerImageHits()


class BoxesResult(Result):
    def __init__(self, source, det, classes):
        self.source, self.det, self.classes = source, det, classes

    def to_dict(self):
        return {"image": self.source, "boxes": self.det["boxes"].tolist(),
                "labels": [self.classes[c] for c in self.det["labels"].tolist()]}


@register_task
class ToyDetTask(_DenseTask):
    name = "toydet"
    target = "boxes"
    normalize_inputs = False  # the detector normalises inside, as torchvision's do
    monitor = ("val/recall", "max")
    defaults = {"data.batch_size": 8, "data.workers": 0, "optim.name": "adamw", "optim.lr": 3e-3,
                "optim.schedule": "constant", "optim.weight_decay": 0.0}

    def build_data(self, cfg):
        scenes = shape_scenes(40, 24, 3, seed=cfg.data.seed) + shape_scenes(40, 32, 3, seed=cfg.data.seed + 1)
        order = np.random.default_rng(cfg.data.seed).permutation(len(scenes))
        classes = ["circle", "square", "triangle"]
        part = [SceneFiles([scenes[i] for i in order[a:b]], classes) for a, b in ((0, 50), (50, 65), (65, 80))]
        mean, std = channel_stats(torch.from_numpy(np.stack([s.image for s in scenes if s.image.shape[-1] == 32])))
        return DatasetSplits(*part, classes=classes, in_channels=3, image_size=None, mean=mean, std=std)

    def metric_names(self, cfg, preprocess):
        return PerImageHits.names

    def model_specs(self, cfg, preprocess):
        return {"model": ("toydet_net", {"num_classes": len(preprocess["classes"])})}

    def build_step(self, cfg, preprocess, splits=None):
        return DetStep()

    def predict(self, handle, images, names):
        out = _detections(handle.model([im[:3].to(handle.device) for im in images]), images)
        return [BoxesResult(n, d, handle.classes) for n, d in zip(names, out)]


# ---- tests ------------------------------------------------------------------------------------------

COMMON = {"progress": False, "tensorboard": False, "report": False, "seed": 0, "deterministic": True}


def _script(task: str, *args: str, extra_env: dict | None = None, torchrun: int = 0):
    from launch import run_script  # tests/ is on the path under pytest; this file also runs as a script

    return run_script(__file__, task, "train", *args, extra_env=extra_env, processes=torchrun)


def _args(out: Path, **extra) -> list[str]:
    return [f"{k}={v}" for k, v in {**COMMON, **extra}.items()] + [f"out={out}"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["models"]["model"]["state"]


@pytest.mark.parametrize("task", ["toyseg", "toydet"])
def test_trains_and_predicts_through_api_and_cli(task, tmp_path, capsys):
    from PIL import Image

    from zrenie.cli import main

    run = zrenie.train(task, out=str(tmp_path / "api"), epochs=2, **COMMON)
    assert set(run["test"]) == {k.split("/")[1] for k in run["val"]}  # the same metrics, val and test
    Image.new("RGB", (40, 28), (200, 30, 30)).save(tmp_path / "img.png")  # a size no training image had
    results = zrenie.predict(run["run_dir"], [tmp_path / "img.png"])
    assert results[0].to_dict()["image"] == str(tmp_path / "img.png")
    capsys.readouterr()
    assert main([task, "predict", str(run["run_dir"]), str(tmp_path / "img.png"), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["image"] == str(tmp_path / "img.png")


@pytest.mark.parametrize("task, kill_at", [("toyseg", "1,3"), ("toydet", "1,2")])
def test_sigkill_mid_epoch_resumes_to_the_same_weights(task, kill_at, tmp_path):
    reference = _script(task, *_args(tmp_path / "ref", epochs=3))
    assert reference.returncode == 0, reference.stderr[-2000:]
    killed = _script(task, *_args(tmp_path / "cut", epochs=3), extra_env={"DENSE_SIGKILL_AT": kill_at})
    assert killed.returncode == -signal.SIGKILL
    resumed = _script(task, f"resume={tmp_path / 'cut'}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ref, cut = _weights(tmp_path / "ref"), _weights(tmp_path / "cut")
    assert all(torch.equal(ref[k], cut[k]) for k in ref)


@pytest.mark.parametrize("task", ["toyseg", "toydet"])
def test_two_process_evaluation_equals_one_process(task, tmp_path):
    out = tmp_path / "ddp"
    proc = _script(task, *_args(out, epochs=1), torchrun=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "metrics.csv", newline="") as f:
        val = {k[4:]: float(v) for k, v in list(csv.DictReader(f))[-1].items() if k.startswith("val/")}
    single_val = zrenie.evaluate(out / "best.pt", split="val")["metrics"]
    single_test = zrenie.evaluate(out / "best.pt", split="test")["metrics"]
    ddp_test = json.loads((out / "results.json").read_text())
    assert val == pytest.approx(single_val, abs=1e-6)
    assert ddp_test == pytest.approx(single_test, abs=1e-9)


if __name__ == "__main__":
    from zrenie.cli import main

    torch.set_num_threads(1)
    sys.exit(main())
