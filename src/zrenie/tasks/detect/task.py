"""Object detection as the API sees it: its config section, models, step, test pass and predict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.config import TrainConfig
from zrenie.data.base import DatasetSplits
from zrenie.engine.evaluate import autocast_factory, evaluate, resolve_amp
from zrenie.errors import ConfigError
from zrenie.tasks import Task, register_task
from zrenie.tasks.detect.base import NMS_BACKENDS, losses_and_detections
from zrenie.tasks.detect.models_torchvision import SPECS as TORCHVISION_DETECTORS
from zrenie.tasks.detect.predict import DetectionResult

EXAMPLE_IMAGES = 12  # test images drawn in the report
PREDICT_CONF = 0.3


@dataclass
class DetectConfig:
    """Keys of `detect.`: how detections are selected for evaluation."""

    nms: str = field(default="torchvision", metadata={
        "help": "class-aware NMS of the detectors: torchvision.ops.batched_nms or zrenie.ops.batched_nms",
        "choices": NMS_BACKENDS})
    conf: float = field(default=0.01, metadata={
        "help": "score threshold of detections during evaluation, in [0, 1] (COCO AP wants a low one)",
        "range": "in [0, 1]"})
    iou: float = field(default=0.5, metadata={"help": "IoU threshold of NMS, in [0, 1]", "range": "in [0, 1]"})
    max_det: int = field(default=100, metadata={"help": "detections kept per image, >= 1 (COCO counts 100)",
                                                "range": ">= 1"})


class DetectStep:
    """`model.losses` in training; losses and `model.detect` in evaluation (one forward pass where the model allows)."""

    def __init__(self, classes: Sequence[str], own: DetectConfig, single_object: bool = False, examples: int = 0,
                 masks: bool = False):
        self.classes, self.own, self.single_object, self.examples = list(classes), own, single_object, examples
        self.masks = masks

    def train_step(self, models: dict[str, nn.Module], batch: dict, ctx=None) -> dict:
        parts = models["model"].losses(batch["image"], batch["target"])
        return {"loss": parts["loss"], "logs": {k: v for k, v in parts.items() if k != "loss"}}

    def eval_step(self, models: dict[str, nn.Module], batch: dict) -> dict:
        model, own = models["model"], self.own
        model.nms = own.nms
        losses, detections = losses_and_detections(model, batch["image"], batch["target"], own.conf, own.iou,
                                                   own.max_det)
        return {"loss": losses["loss"], "detections": [{k: v.float() if k != "labels" else v for k, v in d.items()}
                                             for d in detections]}

    def new_metric(self):
        from zrenie.tasks.detect.metrics import DetectionMetric
        from zrenie.tasks.detect.metrics_localize import LocalizationMetric

        return LocalizationMetric(self.classes) if self.single_object else DetectionMetric(self.classes, self.masks)


@register_task
class DetectTask(Task):
    """Ties the detection pieces to the task-agnostic engine and API."""

    name = "detect"
    section = DetectConfig
    target = "boxes"
    normalize_inputs = False  # every detector normalises its own input, as torchvision's do
    monitor = ("val/ap", "max")
    aliases = {"nms": "detect.nms", "data.classes": "data.categories"}  # the course project says data.classes
    defaults = {"data.name": "shapes", "model.name": "centernet", "optim.name": "adamw", "optim.lr": 1e-3,
                "optim.weight_decay": 1e-4, "data.batch_size": 16, "data.augment": "light"}

    @property
    def verbs(self) -> dict:
        from zrenie.tasks.detect.verbs import VERBS

        return VERBS

    @staticmethod
    def _single_object(cfg: TrainConfig) -> bool:
        return _builder_flag(cfg, "single_object")

    def build_data(self, cfg: TrainConfig) -> DatasetSplits:
        """Boxes, with instance masks for a model that learns them (Mask R-CNN): only then are masks loaded."""
        from zrenie.data.catalog import open_splits

        return open_splits(cfg.data, target="instances" if _builder_flag(cfg, "instance_masks") else "boxes")

    def metric_names(self, cfg: TrainConfig, preprocess: dict) -> list[str]:
        return self.build_step(cfg, preprocess).new_metric().names

    def model_specs(self, cfg: TrainConfig, preprocess: dict) -> dict[str, tuple[str, dict]]:
        kwargs: dict[str, Any] = {"num_classes": len(preprocess["classes"]), "in_channels": preprocess["in_channels"],
                                  "mean": list(preprocess["mean"]), "std": list(preprocess["std"])}
        if cfg.model.width is not None:
            kwargs["width"] = cfg.model.width
        if cfg.model.weights and cfg.model.name in TORCHVISION_DETECTORS:
            # a torchvision weight file was trained on torchvision's input statistics (SSD300's are 0-255)
            kwargs["mean"] = kwargs["std"] = None
        return {"model": (cfg.model.name, {**kwargs, **cfg.model.kwargs})}

    def prepare_models(self, models: dict[str, nn.Module], cfg: TrainConfig) -> None:
        """`model.weights` loaded for a new run: a whole detector (torchvision's files into torchvision's
        detectors) or a classification backbone into a zrenie detector's backbone."""
        model = models["model"]
        model.nms = cfg.detect.nms
        if cfg.model.weights and cfg.model.finetune != "scratch" and cfg.resume is None:
            from zrenie.tasks.detect.weights import load_detector_weights

            load_detector_weights(model, cfg.model.weights)
        if cfg.model.finetune == "frozen":
            backbone = getattr(model, "backbone", None)
            if backbone is None:
                raise ConfigError(f"model.finetune=frozen freezes a backbone, and {cfg.model.name} has none")
            for p in backbone.parameters():
                p.requires_grad_(False)

    def build_step(self, cfg: TrainConfig, preprocess: dict, splits: DatasetSplits | None = None,
                   examples: int = 0) -> DetectStep:
        return DetectStep(preprocess["classes"], cfg.detect, self._single_object(cfg), examples,
                          _builder_flag(cfg, "instance_masks"))

    def test(self, models: dict[str, nn.Module], splits: DatasetSplits, cfg: TrainConfig, device: torch.device,
             split: str = "test") -> dict[str, Any]:
        """Evaluates one split; returns `{"metrics", "per_class": {class: AP}, "examples": [(image, truth,
        detections)]}` (the first test images, for the report)."""
        step = self.build_step(cfg, {"classes": splits.classes})
        loader = self.build_loader(splits, split, cfg, device)
        metric = step.new_metric()
        metrics = evaluate(models, step, loader, metric, autocast_factory(device, resolve_amp(cfg.amp, device)))
        dataset, model, examples = getattr(splits, split), models["model"], []
        was_training = model.training
        model.eval()
        try:
            for i in range(min(EXAMPLE_IMAGES, len(dataset))):
                image, truth = dataset[i]
                with torch.no_grad():
                    found = model.detect(image[None].to(device), conf=PREDICT_CONF, iou=cfg.detect.iou,
                                         max_det=cfg.detect.max_det)[0]
                examples.append((image.cpu(), {k: torch.as_tensor(v) for k, v in truth.items()},
                                 {k: v.cpu() for k, v in found.items()}))
        finally:
            model.train(was_training)
        return {"metrics": metrics, "per_class": metric.per_class(), "examples": examples}

    def report_sections(self, run_dir: Any, tested: dict, preprocess: dict) -> list:
        from zrenie.tasks.detect.viz import detection_sections

        return detection_sections(run_dir, tested, preprocess["classes"])

    @torch.no_grad()
    def predict(self, handle, images: Sequence[Tensor], names: Sequence[str], conf: float = PREDICT_CONF,
                iou: float = 0.5, max_det: int = 100) -> list[DetectionResult]:
        """Boxes of each image in the image's own pixels.

        Args:
            handle: the run (`zrenie.nn.checkpoint.RunHandle`).
            images: each a float Tensor[C, H, W] in [0, 1] of any size.
            names: where each image came from, kept in its result.
            conf, iou, max_det: the score threshold, the NMS IoU and the most boxes per image.
        """
        from zrenie.data.transforms import prepare_image

        meta, results = handle.preprocess, []
        handle.model.nms = handle.config.get("detect", {}).get("nms", "torchvision")
        for name, image in zip(names, images):
            x = prepare_image(image, meta)
            found = handle.model.detect(x[None].to(handle.device), conf=conf, iou=iou, max_det=max_det)[0]
            scale = torch.tensor([image.shape[-1] / x.shape[-1], image.shape[-2] / x.shape[-2]] * 2)
            masks = found.get("masks")
            if masks is not None:  # probabilities at the model's input size -> the image's pixels, cut at 0.5
                masks = F.interpolate(masks[:, None].float().cpu(), size=tuple(image.shape[-2:]), mode="bilinear",
                                      align_corners=False)[:, 0] > 0.5
            results.append(DetectionResult(name, found["boxes"].cpu().float() * scale, found["scores"],
                                           found["labels"], meta["classes"], image.cpu(), masks))
        return results


def _builder_flag(cfg: TrainConfig, flag: str) -> bool:
    """An attribute of the model's registered builder (`single_object`, `instance_masks`), False if absent."""
    from zrenie.registry import MODELS

    return bool(getattr(MODELS.get(cfg.model.name), flag, False))
