"""Classification as the API sees it: its config section, data, model, step, test evaluation, report, predict."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from zrenie.config import TrainConfig
from zrenie.data.base import DatasetSplits
from zrenie.data.loading import Normalize
from zrenie.engine.evaluate import autocast_factory, evaluate, resolve_amp
from zrenie.nn.checkpoint import classifier_kwargs
from zrenie.nn.transfer import load_pretrained, lr_multiplier_of, read_weights, set_trainable
from zrenie.tasks import Task, Verb, register_task
from zrenie.tasks.classify.metrics import ClassificationMetric
from zrenie.tasks.classify.predict import ClassificationResult
from zrenie.tasks.classify.step import ClassifyStep, tta_logits

MAX_MISTAKES = 32

@dataclass
class ClassifyConfig:
    """Keys of `classify.`: losses, mixing and test-time augmentation of classification only."""

    tta: str = field(default="none", metadata={"help": "test-time augmentation: predictions averaged over views",
                                               "choices": ("none", "flip", "five_crop", "ten_crop")})
    class_weights: str = field(default="none", metadata={"help": "loss weights per class (balanced: n / (k n_c))",
                                                         "choices": ("none", "balanced")})
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing of the loss, in [0, 1)",
                                                          "range": "in [0, 1)"})
    mixup: float | None = field(default=None, metadata={
        "help": "MixUp alpha, >= 0 (0: off; null: the augment preset's, 0.2 for strong, else off)", "range": ">= 0"})
    cutmix: float | None = field(default=None, metadata={
        "help": "CutMix alpha, >= 0 (0: off; null: the augment preset's, 1.0 for strong, else off)", "range": ">= 0"})


def _transfer_verb(ns, api) -> int:
    from zrenie.config import parse_overrides
    from zrenie.tasks.classify.transfer_demo import run_transfer_study

    study = run_transfer_study(ns.study, api.train, seeds=ns.seeds, **parse_overrides(ns.args))
    print(study["table"])
    print(f"curves: {study['plot']}")
    return 0


@register_task
class ClassifyTask(Task):
    """Ties the classification pieces to the task-agnostic engine and API."""

    name = "classify"
    section = ClassifyConfig
    monitor = ("val/acc1", "max")
    renamed = {"tta": "classify.tta", "class_weights": "classify.class_weights", "data.mixup": "classify.mixup",
               "data.cutmix": "classify.cutmix", "optim.label_smoothing": "classify.label_smoothing"}
    verbs = {"transfer": Verb(
        help="scratch vs frozen vs fine-tune study (the shipped recipe transfer_demo)",
        arguments=[(("study",), {"help": "study YAML with pretrain, target, modes, seeds and out"}),
                   (("--seeds",), {"type": int, "nargs": "+", "help": "seeds to run (default: the study's)"}),
                   (("args",), {"nargs": "*", "metavar": "key=value", "help": "overrides applied to every run"})],
        run=_transfer_verb,
        examples=["zrenie classify transfer transfer_demo",
                  "zrenie classify transfer transfer_demo --seeds 0 epochs=3"])}

    def metric_names(self, cfg: TrainConfig, preprocess: dict) -> list[str]:
        return ClassificationMetric(len(preprocess["classes"])).names

    def model_specs(self, cfg: TrainConfig, preprocess: dict) -> dict[str, tuple[str, dict]]:
        return {"model": (cfg.model.name, classifier_kwargs(dataclasses.asdict(cfg.model), preprocess))}

    def prepare_models(self, models: dict[str, nn.Module], cfg: TrainConfig) -> None:
        """`model.weights` loaded for a new run (a resumed one gets its weights from the checkpoint), and
        layers frozen as `model.finetune` and `model.unfreeze_every` say."""
        model = models["model"]
        if cfg.model.weights and cfg.model.finetune != "scratch" and cfg.resume is None:
            load_pretrained(model, read_weights(cfg.model.weights), cfg.model.weights)
        if cfg.model.finetune == "frozen" or cfg.model.unfreeze_every > 0:
            set_trainable(model, 0)  # with unfreeze_every, the step's on_epoch_start unfreezes block by block

    def lr_mult_of(self, cfg: TrainConfig, name: str, model: nn.Module):
        if cfg.optim.backbone_lr_mult == 1.0:
            return None
        return lr_multiplier_of(model, cfg.optim.backbone_lr_mult)

    def build_step(self, cfg: TrainConfig, preprocess: dict, splits: DatasetSplits | None = None) -> ClassifyStep:
        own = cfg.classify
        weights = None
        if own.class_weights == "balanced" and splits is not None:
            weights = balanced_class_weights(splits.train.labels, len(preprocess["classes"]))
        strong = cfg.data.augment == "strong"
        mixup = own.mixup if own.mixup is not None else (0.2 if strong else 0.0)
        cutmix = own.cutmix if own.cutmix is not None else (1.0 if strong else 0.0)
        step = ClassifyStep(len(preprocess["classes"]), own.label_smoothing, own.tta, weights, mixup, cutmix)
        if cfg.model.unfreeze_every > 0 and cfg.model.finetune != "frozen":
            every = cfg.model.unfreeze_every
            step.on_epoch_start = lambda models, epoch: set_trainable(models["model"], epoch // every)
        return step

    def check_forward(self, models: dict[str, nn.Module], splits: DatasetSplits, device: torch.device) -> None:
        """One eval-mode forward of a validation image, so that an input the architecture cannot take
        (too small, wrong channels) is a one-line error before the run directory is written."""
        model = models["model"]
        image = splits.val[0][0]
        if image.dtype == torch.uint8:
            image = image.float() / 255
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                model(image[None].to(device))
        finally:
            model.train(was_training)

    def test(self, models: dict[str, nn.Module], splits: DatasetSplits, cfg: TrainConfig, device: torch.device,
             split: str = "test", tta: str | None = None) -> dict[str, Any]:
        """Evaluates one split with the engine's evaluation loop (every process its shard) for the report.

        Returns:
            `{"metrics": {name: float}, "confusion": Tensor[C, C], "mistakes": (images, true, pred, conf)}`,
            and `metrics_without_tta` with a note when `classify.tta` is on (what test-time augmentation buys).
        """
        tta = cfg.classify.tta if tta is None else tta
        dataset = getattr(splits, split)
        loader = self.build_loader(splits, split, cfg, device)
        metric = ClassificationMetric(len(splits.classes), mistakes=MAX_MISTAKES)
        step = ClassifyStep(len(splits.classes), tta=tta)
        metrics = evaluate(models, step, loader, metric, autocast_factory(device, resolve_amp(cfg.amp, device)))
        wrong = metric.examples()
        mistakes = None
        if wrong:
            images = torch.stack([dataset[r["index"]][0] for r in wrong])
            mistakes = (images, torch.tensor([r["true"] for r in wrong]), torch.tensor([r["pred"] for r in wrong]),
                        torch.tensor([r["conf"] for r in wrong]))
        result = {"metrics": metrics, "confusion": metric.confusion, "per_class": metric.per_class_accuracy(),
                  "mistakes": mistakes}
        if tta != "none":  # what test-time augmentation buys, measured on the same weights and split
            base = self.test(models, splits, cfg, device, split, tta="none")["metrics"]
            result["metrics_without_tta"] = base
            gains = "  ".join(f"{k} {result['metrics'][k] - base[k]:+.4f}" for k in base if k.startswith("acc"))
            result["notes"] = [f"tta {tta} vs none: {gains}"]
        return result

    def report_sections(self, run_dir: Path, tested: dict, preprocess: dict) -> list:
        from zrenie.tasks.classify.viz import classification_sections

        return classification_sections(run_dir, tested["metrics"], preprocess["classes"], tested["confusion"],
                                       tested["mistakes"])

    @torch.no_grad()
    def predict(self, handle, images: Sequence[Tensor], names: Sequence[str], topk: int = 5,
                tta: str | None = None) -> list[ClassificationResult]:
        """Top-k classes of each image.

        Args:
            handle: the run (`zrenie.nn.checkpoint.RunHandle`).
            images: each a float Tensor[C, H, W] in [0, 1] of any size; resized and converted to the
                channels the model was trained on.
            names: where each image came from, kept in its result.
            tta: test-time augmentation; None: the run's own `classify.tta`.
        """
        from zrenie.data.transforms import prepare_image  # torchvision, imported on use

        meta, device = handle.preprocess, handle.device
        tta = handle.config.get("classify", {}).get("tta", "none") if tta is None else tta
        batch = torch.stack([prepare_image(im, meta) for im in images]).to(device)
        probs = tta_logits(handle.model, Normalize(meta["mean"], meta["std"], device)(batch), tta).softmax(1)
        top = probs.topk(min(topk, probs.shape[1]), dim=1)
        return [ClassificationResult(name, [(meta["classes"][c], float(p)) for p, c in zip(ps.tolist(), cs.tolist())],
                                     image.cpu())
                for name, image, ps, cs in zip(names, images, top.values, top.indices)]

    def scores(self, models: dict[str, nn.Module], batch: Any) -> Tensor:
        from zrenie.tasks.classify.step import main_logits

        return main_logits(models["model"](batch["image"]))


def balanced_class_weights(targets: Tensor, num_classes: int) -> Tensor:
    """n_samples / (n_classes * count_c), scikit-learn's "balanced" class weights; absent classes get 0."""
    counts = torch.bincount(targets, minlength=num_classes).double()
    weights = len(targets) / (num_classes * counts.clamp_min(1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights)).float()
