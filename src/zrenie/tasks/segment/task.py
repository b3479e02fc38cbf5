"""Semantic segmentation as the API sees it: its config section, models, step, test pass and predict."""

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
from zrenie.nn.transfer import read_weights
from zrenie.tasks import Task, register_task
from zrenie.tasks.segment.loss import BINARY_ONLY, LOSSES, build_loss
from zrenie.tasks.segment.metrics import SegmentationMetric, predictions
from zrenie.tasks.segment.models_encoder import freeze_pretrained, load_segmentation_weights, pretrained_part
from zrenie.tasks.segment.postprocess import POSTPROCESS
from zrenie.tasks.segment.predict import MaskResult, prepare_batch
from zrenie.tasks.segment.study import STUDY

WORST_IMAGES = 16
AUX_WEIGHT = 0.5  # auxiliary heads' share of the loss, as torchvision's reference segmentation training


@dataclass
class SegmentConfig:
    """Keys of `segment.`: the loss of the five-loss study and how pixels are counted."""

    loss: str = field(default="ce_dice", metadata={
        "help": "training loss (bce and bce_dice train one object logit, for two-class data)", "choices": LOSSES})
    class_weights: str = field(default="none", metadata={
        "help": "loss weights per class for wce (balanced: n / (k n_c) over train pixels)",
        "choices": ("none", "balanced")})
    ignore_index: int = field(default=255, metadata={
        "help": "mask value of pixels that count nowhere (Pascal VOC's borders), in [0, 255]", "range": "in [0, 255]"})
    focal_gamma: float = field(default=2.0, metadata={"help": "focal: the focusing exponent, >= 0", "range": ">= 0"})
    tversky_alpha: float = field(default=0.3, metadata={"help": "tversky: weight of false positives, >= 0",
                                                        "range": ">= 0"})
    tversky_beta: float = field(default=0.7, metadata={"help": "tversky: weight of false negatives, >= 0",
                                                       "range": ">= 0"})
    postprocess: str = field(default="none", metadata={
        "help": "refine predictions with the image: superpixels (SLIC majority vote) or crf (dense CRF, "
                "up to 128x128 pixels); eval then shows the scores with and without", "choices": POSTPROCESS})


def num_outputs(loss: str, classes: Sequence[str]) -> int:
    """The model's output channels: one object logit for a binary loss (two-class data only), else K."""
    if loss in BINARY_ONLY:
        if len(classes) != 2:
            raise ConfigError(f"segment.loss={loss} is a binary loss (one object channel) but the data has "
                              f"{len(classes)} classes ({', '.join(classes[:4])}...); use ce, ce_dice, dice, "
                              f"focal, tversky or lovasz")
        return 1
    return len(classes)


def pixel_class_weights(masks: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """n / (k n_c) over the valid pixels of `masks`, scikit-learn's "balanced"; absent classes get 0."""
    valid = masks[masks != ignore_index].long()
    counts = torch.bincount(valid.flatten(), minlength=num_classes).double()
    weights = counts.sum() / (num_classes * counts.clamp_min(1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights)).float()


class SegmentStep:
    """Per-pixel loss on logits `(B, K, H, W)` against masks `(B, H, W)`."""

    def __init__(self, classes: Sequence[str], loss: str, ignore_index: int = 255, class_weights: Tensor | None = None,
                 gamma: float = 2.0, tversky: tuple[float, float] = (0.3, 0.7), worst: int = 0):
        self.classes, self.ignore_index, self.worst = list(classes), ignore_index, worst
        self.loss = build_loss(loss, num_outputs(loss, classes), ignore_index, class_weights, gamma, None, tversky)

    def train_step(self, models: dict[str, nn.Module], batch: dict, ctx=None) -> dict:
        out = models["model"](batch["image"])
        logits, aux = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())  # auxiliary heads in training
        target = batch["target"].long()
        loss = self.loss(logits, target)
        for extra in aux:
            loss = loss + AUX_WEIGHT * self.loss(extra, target)
        return {"loss": loss, "outputs": logits}

    def eval_step(self, models: dict[str, nn.Module], batch: dict) -> dict:
        logits = models["model"](batch["image"])
        return {"loss": self.loss(logits, batch["target"].long()), "outputs": logits}

    def new_metric(self) -> SegmentationMetric:
        return SegmentationMetric(self.classes, self.ignore_index, self.worst)


@register_task
class SegmentTask(Task):
    """Ties the segmentation pieces to the task-agnostic engine and API."""

    name = "segment"
    section = SegmentConfig
    target = "mask"
    monitor = ("val/miou", "max")
    verbs = {"study": STUDY}
    aliases = {"loss": "segment.loss", "class_weights": "segment.class_weights",
               "ignore_index": "segment.ignore_index", "postprocess": "segment.postprocess"}
    defaults = {"data.name": "shapes", "model.name": "unet", "optim.name": "adamw", "optim.lr": 1e-3,
                "optim.weight_decay": 1e-4, "data.batch_size": 16, "data.augment": "light"}

    def metric_names(self, cfg: TrainConfig, preprocess: dict) -> list[str]:
        return SegmentationMetric(preprocess["classes"]).names

    def model_specs(self, cfg: TrainConfig, preprocess: dict) -> dict[str, tuple[str, dict]]:
        kwargs: dict[str, Any] = {"num_classes": num_outputs(cfg.segment.loss, preprocess["classes"]),
                                  "in_channels": preprocess["in_channels"]}
        if cfg.model.width is not None:
            kwargs["width"] = cfg.model.width
        return {"model": (cfg.model.name, {**kwargs, **cfg.model.kwargs})}

    def prepare_models(self, models: dict[str, nn.Module], cfg: TrainConfig) -> None:
        """`model.weights` loaded for a new run (a resumed one gets its weights from the checkpoint): into the
        whole model when the file holds all of it, else into its encoder; `model.finetune=frozen` trains the
        decoder only."""
        model = models["model"]
        if cfg.model.unfreeze_every > 0:
            raise ConfigError("model.unfreeze_every: gradual unfreezing is classify's; segment trains the whole "
                              "model or, with model.finetune=frozen, the decoder only")
        if cfg.optim.backbone_lr_mult != 1.0 and pretrained_part(model) is None:
            raise ConfigError(f"optim.backbone_lr_mult scales a pretrained encoder's learning rate, and "
                              f"{cfg.model.name} has none; use model=unet model.kwargs.encoder=resnet34")
        if cfg.model.weights and cfg.model.finetune != "scratch" and cfg.resume is None:
            load_segmentation_weights(model, read_weights(cfg.model.weights), cfg.model.weights)
        if cfg.model.finetune == "frozen":
            freeze_pretrained(model)

    def lr_mult_of(self, cfg: TrainConfig, name: str, model: nn.Module):
        part = pretrained_part(model)
        if cfg.optim.backbone_lr_mult == 1.0 or part is None:
            return None
        prefix, mult = f"{part[0]}.", cfg.optim.backbone_lr_mult
        return lambda param: mult if param.startswith(prefix) else 1.0

    def build_step(self, cfg: TrainConfig, preprocess: dict, splits: DatasetSplits | None = None,
                   worst: int = 0) -> SegmentStep:
        own = cfg.segment
        weights = None
        if own.class_weights == "balanced":
            if splits is None or not isinstance(getattr(splits.train, "targets", None), Tensor):
                raise ConfigError("segment.class_weights=balanced needs masks held in memory to count pixels")
            weights = pixel_class_weights(splits.train.targets, len(preprocess["classes"]), own.ignore_index)
        elif own.loss == "wce":
            raise ConfigError("segment.loss=wce needs segment.class_weights=balanced")
        return SegmentStep(preprocess["classes"], own.loss, own.ignore_index, weights, own.focal_gamma,
                           (own.tversky_alpha, own.tversky_beta), worst)

    def test(self, models: dict[str, nn.Module], splits: DatasetSplits, cfg: TrainConfig, device: torch.device,
             split: str = "test") -> dict[str, Any]:
        """Evaluates one split; returns `{"metrics", "confusion", "worst": [(image, truth, prediction, miou)]}`."""
        step = self.build_step(cfg, {"classes": splits.classes}, splits, worst=WORST_IMAGES)
        loader = self.build_loader(splits, split, cfg, device)
        metric = step.new_metric()
        metrics = evaluate(models, step, loader, metric, autocast_factory(device, resolve_amp(cfg.amp, device)))
        dataset, worst = getattr(splits, split), []
        model = models["model"]
        for record in metric.examples():
            image, truth = dataset[record["index"]]
            with torch.no_grad():
                x = loader.normalize(image[None].to(device)) if loader.normalize is not None else image[None]
                pred = predictions(model(x.to(device)))[0].cpu()
            worst.append((image, torch.as_tensor(truth), pred, record["miou"]))
        result = {"metrics": metrics, "confusion": metric.confusion, "worst": worst}
        method = cfg.segment.postprocess
        if method != "none":  # what refining buys, on the same weights and split
            refined = self._postprocessed(model, dataset, loader.normalize, step, method, device)
            refined["loss"] = metrics["loss"]
            result.update(metrics=refined, metrics_without_postprocess=metrics, notes=[
                f"postprocess {method} vs none: " + "  ".join(f"{k} {refined[k]:.4f} ({refined[k] - metrics[k]:+.4f})"
                                                              for k in ("miou", "dice", "pixel_acc"))])
        return result

    @staticmethod
    @torch.no_grad()
    def _postprocessed(model: nn.Module, dataset, normalize, step: SegmentStep, method: str,
                       device: torch.device) -> dict[str, float]:
        """The split's metrics after `method`, one image at a time (the refinements work per image)."""
        from zrenie.tasks.segment.postprocess import refine

        metric = SegmentationMetric(step.classes, step.ignore_index)
        was_training = model.training
        model.eval()
        try:
            for i in range(len(dataset)):
                image, truth = dataset[i]
                x = image[None].to(device)
                logits = model(normalize(x) if normalize is not None else x)[0].cpu()
                labels = refine(method, image, logits)
                onehot = torch.nn.functional.one_hot(labels, len(step.classes)).permute(2, 0, 1)[None].float()
                metric.update({"loss": torch.zeros(()), "outputs": onehot},
                              {"target": torch.as_tensor(truth).long()[None], "index": torch.tensor([i])})
        finally:
            model.train(was_training)
        return metric.compute()

    def report_sections(self, run_dir: Any, tested: dict, preprocess: dict) -> list:
        from zrenie.tasks.segment.viz import segmentation_sections

        return segmentation_sections(run_dir, tested, preprocess["classes"])

    @torch.no_grad()
    def predict(self, handle, images: Sequence[Tensor], names: Sequence[str]) -> list[MaskResult]:
        """Class map of each image at the image's own size, and its colour overlay.

        Args:
            handle: the run (`zrenie.nn.checkpoint.RunHandle`).
            images: each a float Tensor[C, H, W] in [0, 1] of any size.
            names: where each image came from, kept in its result.
        """
        meta, results = handle.preprocess, []
        for name, image in zip(names, images):
            batch = prepare_batch(image, meta, handle.device)
            logits = handle.model(batch)
            logits = F.interpolate(logits.float(), size=image.shape[-2:], mode="bilinear", align_corners=False)
            results.append(MaskResult(name, predictions(logits)[0].cpu(), meta["classes"], image.cpu()))
        return results

    def scores(self, models: dict[str, nn.Module], batch: Any) -> Tensor:
        """Per-class scores of an image for explanations: the logits averaged over its pixels."""
        return models["model"](batch["image"]).mean((2, 3))
