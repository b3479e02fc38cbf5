"""Classification as the API sees it: data, model, step, test evaluation, report and predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from zrenie.config import TrainConfig
from zrenie.data.base import DatasetSplits
from zrenie.data.catalog import open_splits
from zrenie.data.loading import build_loader
from zrenie.registry import MODELS, TASKS
from zrenie.tasks.classify.metrics import ClassificationMetric
from zrenie.nn.transfer import load_pretrained, lr_multiplier_of, read_weights, set_trainable
from zrenie.tasks.classify.step import ClassifyStep, tta_logits

MAX_MISTAKES = 32


class ClassifyTask:
    """Ties the classification pieces to the task-agnostic engine and API."""

    name = "classify"
    monitor = "val/acc1"

    def build_data(self, cfg: TrainConfig) -> DatasetSplits:
        return open_splits(cfg.data)

    def build_model(self, cfg: TrainConfig, meta: dict, training: bool = False) -> nn.Module:
        """The architecture for this data; for training, `model.weights` loaded and layers frozen as configured.

        A resumed run gets its weights from the checkpoint, so `model.weights` is read only for a new run.
        """
        model = build_classifier(cfg, meta)
        if not training:
            return model
        if cfg.model.weights and cfg.model.finetune != "scratch" and cfg.resume is None:
            load_pretrained(model, read_weights(cfg.model.weights), cfg.model.weights)
        if cfg.model.finetune == "frozen" or cfg.model.unfreeze_every > 0:
            set_trainable(model, 0)  # with unfreeze_every, the step's on_epoch_start unfreezes block by block
        return model

    def lr_mult_of(self, cfg: TrainConfig, model: nn.Module):
        if cfg.optim.backbone_lr_mult == 1.0:
            return None
        return lr_multiplier_of(model, cfg.optim.backbone_lr_mult)

    def build_step(self, cfg: TrainConfig, meta: dict, train_targets: Tensor | None = None) -> ClassifyStep:
        weights = None
        if cfg.class_weights == "balanced" and train_targets is not None:
            weights = balanced_class_weights(train_targets, len(meta["classes"]))
        strong = cfg.data.augment == "strong"
        mixup = cfg.data.mixup if cfg.data.mixup is not None else (0.2 if strong else 0.0)
        cutmix = cfg.data.cutmix if cfg.data.cutmix is not None else (1.0 if strong else 0.0)
        step = ClassifyStep(len(meta["classes"]), cfg.optim.label_smoothing, cfg.tta, weights, mixup, cutmix)
        if cfg.model.unfreeze_every > 0 and cfg.model.finetune != "frozen":
            every = cfg.model.unfreeze_every
            step.on_epoch_start = lambda model, epoch: set_trainable(model, epoch // every)
        return step

    @torch.no_grad()
    def test(self, model: nn.Module, splits: DatasetSplits, cfg: TrainConfig, device: torch.device,
             split: str = "test", tta: str | None = None) -> dict[str, Any]:
        """Evaluates one split on this process alone and keeps what the report shows.

        Returns:
            `{"metrics": {name: float}, "confusion": Tensor[C, C], "mistakes": (images, true, pred, conf)}`.
        """
        dataset = getattr(splits, split)
        loader = build_loader(dataset, splits, cfg, device, train=False)
        loader.rank, loader.world = 0, 1
        model.eval()
        metric = ClassificationMetric(len(splits.classes))
        step = ClassifyStep(len(splits.classes), tta=cfg.tta if tta is None else tta)
        wrong_idx, wrong_true, wrong_pred, wrong_conf = [], [], [], []
        seen = 0
        for images, targets in loader:
            out = step.eval_step(model, (images, targets))
            metric.update(out, (images, targets))
            conf, pred = out["outputs"].softmax(1).max(1)
            miss = (pred != targets).nonzero().flatten()
            wrong_idx += (miss + seen).tolist()
            wrong_true.append(targets[miss].cpu())
            wrong_pred.append(pred[miss].cpu())
            wrong_conf.append(conf[miss].cpu())
            seen += len(targets)
        # The most confident mistakes first: they say most about what the model gets wrong.
        conf = torch.cat(wrong_conf)
        order = conf.argsort(descending=True)[:MAX_MISTAKES]
        images = torch.stack([dataset[wrong_idx[i]][0] for i in order.tolist()]) if len(order) else None
        mistakes = None if images is None else (images, torch.cat(wrong_true)[order], torch.cat(wrong_pred)[order],
                                                conf[order])
        return {"metrics": metric.compute(), "confusion": metric.confusion,
                "per_class": metric.per_class_accuracy(), "mistakes": mistakes}

    def report_sections(self, run_dir: Path, result: dict, classes: list[str]) -> list:
        from zrenie.tasks.classify.viz import classification_sections

        return classification_sections(run_dir, result["metrics"], classes, result["confusion"], result["mistakes"])

    @torch.no_grad()
    def predict(self, model: nn.Module, meta: dict, images: Sequence[Tensor], device: torch.device,
                topk: int = 5, tta: str = "none") -> list[list[tuple[str, float]]]:
        """Top-k (class, probability) per image.

        Args:
            images: each a float Tensor[C, H, W] in [0, 1] of any size; resized and converted to the
                channels the model was trained on.
        """
        batch = torch.stack([prepare_image(im, meta) for im in images]).to(device)
        mean = torch.tensor(meta["mean"], device=device).view(1, -1, 1, 1)
        std = torch.tensor(meta["std"], device=device).view(1, -1, 1, 1)
        batch = (batch - mean) / std
        model.eval()
        logits = tta_logits(model, batch, tta)
        probs = logits.softmax(1)
        k = min(topk, probs.shape[1])
        top = probs.topk(k, dim=1)
        return [[(meta["classes"][c], float(p)) for p, c in zip(ps.tolist(), cs.tolist())]
                for ps, cs in zip(top.values, top.indices)]


def build_classifier(cfg: TrainConfig, meta: dict) -> nn.Module:
    """The registered architecture with this data's classes and channels and the config's options."""
    import zrenie.models  # noqa: F401  (registers every architecture)
    from zrenie.errors import ConfigError

    kwargs = {"num_classes": len(meta["classes"]), "in_channels": meta["in_channels"], **cfg.model.kwargs}
    for key in ("dropout", "width", "batchnorm"):
        if getattr(cfg.model, key) is not None:
            kwargs[key] = getattr(cfg.model, key)
    if cfg.model.small_input:
        kwargs["small_input"] = True
    builder = MODELS.get(cfg.model.name)
    try:
        return builder(**kwargs)
    except TypeError as err:
        raise ConfigError(f"model {cfg.model.name!r} does not take these options: {err}") from None


def balanced_class_weights(targets: Tensor, num_classes: int) -> Tensor:
    """n_samples / (n_classes * count_c), scikit-learn's "balanced" class weights; absent classes get 0."""
    counts = torch.bincount(targets, minlength=num_classes).double()
    weights = len(targets) / (num_classes * counts.clamp_min(1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights)).float()


def prepare_image(image: Tensor, meta: dict) -> Tensor:
    """Converts channels (RGB <-> gray, BT.601 weights) and resizes to the model's square input.

    Args:
        image: Tensor[C, H, W] float in [0, 1], C in {1, 3, 4}.
    """
    import torch.nn.functional as F

    if image.shape[0] == 4:
        image = image[:3]
    if meta["in_channels"] == 1 and image.shape[0] == 3:
        image = (image * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    elif meta["in_channels"] == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    size = meta["image_size"]
    if tuple(image.shape[1:]) != (size, size):
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0].clamp(0, 1)
    return image


TASKS.register("classify")(ClassifyTask)
