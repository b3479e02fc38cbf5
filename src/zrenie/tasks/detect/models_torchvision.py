"""torchvision's detectors as zrenie detectors: Faster and Mask R-CNN, RetinaNet, FCOS (ResNet-50-FPN) and SSD300.

Each builder calls torchvision's own (random init: `weights=None, weights_backbone=None`, nothing
downloads) and gives the model the detector protocol of `base.py` by changing its class to a subclass
that only adds methods: the modules, parameter names and forward pass stay torchvision's, so a
torchvision weight file loads (`load_torchvision_weights`, `model.weights=FILE`) and the model still
answers torchvision's own `model(images, targets)`.

Labels. zrenie's are `0..K-1`. The R-CNNs and SSD score a background class 0 (softmax over K+1
outputs), so their labels are shifted by +1 going in and -1 coming out; RetinaNet and FCOS score each
class with its own sigmoid and no background output, so they take the labels as they are.

Input size. torchvision resizes every image so that its short side is `min_size` (800) unless the
long side would pass `max_size` (1333). Here the default keeps the data's size (`data.size` decides):
set `model.kwargs.min_size` / `max_size` to have torchvision resize. SSD300 always resizes to 300x300,
the size its default boxes are laid out for (`steps` 8..300), and its last layers need about 260 px.

NMS. `self.nms = "zrenie"` makes the final class-aware NMS `zrenie.ops.batched_nms`: torchvision's own
postprocessing runs with its NMS threshold above 1 (it keeps every candidate) and no cap on detections,
then zrenie's NMS and the cap run on those candidates, at the point where torchvision's would, before the
rescale to the input size and, for Mask R-CNN, before the mask head. This wraps torchvision's
`postprocess_detections` instead of copying it or patching `box_ops` module-wide.

Listing models imports no torchvision: the classes that extend torchvision's are composed on first use
(`composed`), from mixins written here, and the module's `__getattr__` names them for pickle.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from zrenie.errors import CheckpointError, ConfigError, ShapeError
from zrenie.nn.transfer import FrozenBatchNorm2d, read_weights
from zrenie.registry import MODELS
from zrenie.tasks.detect.base import Detections, batched_nms_of

# torchvision's NMS drops a box whose IoU with a better one is > the threshold; IoU never passes 1.
KEEP_ALL_IOU = 2.0
KEEP_ALL_DETECTIONS = 1_000_000


class KeepInputSize:
    """Mixin for torchvision's input transform (`NativeSizeTransform`): no resize, images keep the size
    the data gives them."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None
               ) -> tuple[Tensor, dict[str, Tensor] | None]:
        return image, target


@contextmanager
def modes(model: nn.Module, train: bool, keep_eval: tuple[type, ...] = ()) -> Iterator[None]:
    """Puts `model` in train or eval mode, `keep_eval` modules in eval mode, and restores every module's
    own mode afterwards (a frozen part stays frozen)."""
    before = [(m, m.training) for m in model.modules()]
    model.train(train)
    for m in model.modules():
        if isinstance(m, keep_eval):
            m.eval()
    try:
        yield
    finally:
        for m, was in before:
            m.training = was


@contextmanager
def thresholds(owner: nn.Module, score: float, iou: float, max_det: int) -> Iterator[None]:
    """Sets torchvision's `score_thresh`, `nms_thresh`, `detections_per_img` of `owner` for one call."""
    names = ("score_thresh", "nms_thresh", "detections_per_img")
    before = [getattr(owner, n) for n in names]
    for n, v in zip(names, (score, iou, max_det)):
        setattr(owner, n, v)
    try:
        yield
    finally:
        for n, v in zip(names, before):
            setattr(owner, n, v)


def reselect(owner: nn.Module, postprocess: Callable[[], list[Detections]]) -> list[Detections]:
    """torchvision's `postprocess` run without its final NMS and cap, which zrenie's NMS then applies to
    the same candidates (torchvision's score filter, per-level top-k and clipping already done)."""
    iou, max_det = owner.nms_thresh, owner.detections_per_img
    with thresholds(owner, owner.score_thresh, KEEP_ALL_IOU, KEEP_ALL_DETECTIONS):
        candidates = postprocess()
    kept = [batched_nms_of("zrenie")(d["boxes"], d["scores"], d["labels"], iou)[:max_det] for d in candidates]
    return [{k: v[i] for k, v in d.items()} for d, i in zip(candidates, kept)]


class RoIHeadsSelection:
    """Mixin for the R-CNN box head (`ReselectingRoIHeads`), whose final NMS is `self.nms`'s (the
    detector sets it)."""

    nms = "torchvision"

    def postprocess_detections(self, *args: Any) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        if self.nms == "torchvision":
            return super().postprocess_detections(*args)

        def as_dicts() -> list[Detections]:
            boxes, scores, labels = super(RoIHeadsSelection, self).postprocess_detections(*args)
            return [{"boxes": b, "scores": s, "labels": l} for b, s, l in zip(boxes, scores, labels)]

        kept = reselect(self, as_dicts)
        return [d["boxes"] for d in kept], [d["scores"] for d in kept], [d["labels"] for d in kept]


class TorchvisionDetector:
    """The detector protocol on a torchvision detector (a mixin placed before torchvision's class).

    Attributes set by `build_detector`: `name`, `num_classes`, `label_offset`, `class_specific`.
    """

    name: str
    num_classes: int
    label_offset: int
    class_specific: tuple[str, ...]
    takes_masks = False

    @property
    def nms(self) -> str:
        return self.__dict__.get("_nms", "torchvision")

    @nms.setter
    def nms(self, backend: str) -> None:
        batched_nms_of(backend)  # one ConfigError for an unknown name
        self.__dict__["_nms"] = backend
        if isinstance(getattr(self, "roi_heads", None), RoIHeadsSelection):
            self.roi_heads.nms = backend

    def losses(self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """torchvision's loss dict, its sum as "loss". torchvision returns losses only in train mode: an
        eval-mode call runs in train mode with batchnorm and dropout left in eval mode, so the running
        statistics do not move (and the features are the eval network's)."""
        images = image_list(images, self.name)
        if len(targets) != len(images):
            raise ShapeError(f"{self.name}: {len(images)} images but {len(targets)} targets")
        targets = [self.torchvision_target(t, im) for t, im in zip(targets, images)]
        if self.training:
            parts = self(images, targets)
        else:
            with modes(self, True, keep_eval=(nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)):
                parts = self(images, targets)
        return {"loss": sum(parts.values()), **parts}

    def torchvision_target(self, target: dict[str, Tensor], image: Tensor) -> dict[str, Tensor]:
        """A zrenie target as torchvision takes it: plain tensors, labels shifted past the background."""
        boxes = target["boxes"].as_subclass(Tensor).to(image.device, torch.float32).reshape(-1, 4)
        labels = target["labels"].as_subclass(Tensor).to(image.device, torch.int64) + self.label_offset
        out = {"boxes": boxes, "labels": labels}
        if self.takes_masks:
            out["masks"] = instance_masks(target, image, len(boxes), self.name)
        return out

    def detect(self, images: Tensor | Sequence[Tensor], conf: float = 0.05, iou: float = 0.5,
               max_det: int = 100) -> list[Detections]:
        """Detections per image in the input's pixels, in eval mode (the module's modes are restored).
        torchvision keeps scores strictly above `conf`."""
        images = image_list(images, self.name)
        owner = self.roi_heads if hasattr(self, "roi_heads") else self
        with thresholds(owner, conf, iou, max_det), modes(self, False):
            outputs = self(images)
        return [self.zrenie_detections(o) for o in outputs]

    def zrenie_detections(self, output: dict[str, Tensor]) -> Detections:
        out = {"boxes": output["boxes"], "scores": output["scores"], "labels": output["labels"] - self.label_offset}
        if "masks" in output:
            out["masks"] = output["masks"][:, 0]  # (n, 1, H, W) -> (n, H, W), probabilities
        return out

    def load_weights(self, path: str | Path) -> list[str]:
        """`model.weights=FILE`: see `load_torchvision_weights`."""
        return load_torchvision_weights(self, path)

    def postprocess_detections(self, *args: Any) -> list[Detections]:
        """The single-stage detectors' final selection (R-CNNs do theirs in `roi_heads`)."""
        if self.nms == "torchvision":
            return super().postprocess_detections(*args)
        return reselect(self, lambda: super(TorchvisionDetector, self).postprocess_detections(*args))


# Classes made of a mixin and torchvision's class: name -> (mixin, torchvision.models.detection.MODULE.CLASS,
# class attributes, docstring).
COMPOSED: dict[str, tuple[type, str, dict[str, Any], str]] = {
    "FasterRCNNDetector": (TorchvisionDetector, "faster_rcnn.FasterRCNN", {},
                           "torchvision's Faster R-CNN with the detector protocol."),
    "MaskRCNNDetector": (TorchvisionDetector, "mask_rcnn.MaskRCNN", {"takes_masks": True},
                         "torchvision's Mask R-CNN with the detector protocol; `detect` also returns "
                         "\"masks\" Tensor[n, H, W]."),
    "RetinaNetDetector": (TorchvisionDetector, "retinanet.RetinaNet", {},
                          "torchvision's RetinaNet with the detector protocol."),
    "FCOSDetector": (TorchvisionDetector, "fcos.FCOS", {}, "torchvision's FCOS with the detector protocol."),
    "SSDDetector": (TorchvisionDetector, "ssd.SSD", {}, "torchvision's SSD300-VGG16 with the detector protocol."),
    "ReselectingRoIHeads": (RoIHeadsSelection, "roi_heads.RoIHeads", {}, RoIHeadsSelection.__doc__),
    "NativeSizeTransform": (KeepInputSize, "transform.GeneralizedRCNNTransform", {}, KeepInputSize.__doc__),
}


@functools.cache
def composed(name: str) -> type:
    """The class `name` of `COMPOSED`: its mixin first, then torchvision's class (imported now)."""
    mixin, where, attrs, doc = COMPOSED[name]
    module, base = where.rsplit(".", 1)
    base_class = getattr(importlib.import_module(f"torchvision.models.detection.{module}"), base)
    return type(name, (mixin, base_class), {"__module__": __name__, "__qualname__": name, "__doc__": doc, **attrs})


def __getattr__(name: str) -> type:
    """`models_torchvision.FasterRCNNDetector` and the others, composed on first access (pickle looks them up)."""
    if name in COMPOSED:
        return composed(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class DetectorSpec:
    """What differs between the five detectors.

    Attributes:
        builder: the name of torchvision's builder; detector: the `COMPOSED` class it becomes.
        label_offset: 1 where output 0 is the background class.
        class_specific: state_dict key prefixes whose shapes depend on the number of classes.
        resizes: whether `min_size` / `max_size` apply (SSD300's input size is fixed).
    """

    builder: str
    detector: str
    label_offset: int
    class_specific: tuple[str, ...]
    resizes: bool = True


SPECS: dict[str, DetectorSpec] = {
    "fasterrcnn_resnet50_fpn": DetectorSpec(
        "fasterrcnn_resnet50_fpn", "FasterRCNNDetector", 1, ("roi_heads.box_predictor.",)),
    "maskrcnn_resnet50_fpn": DetectorSpec(
        "maskrcnn_resnet50_fpn", "MaskRCNNDetector", 1,
        ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")),
    "retinanet_resnet50_fpn": DetectorSpec(
        "retinanet_resnet50_fpn", "RetinaNetDetector", 0, ("head.classification_head.cls_logits.",)),
    "fcos_resnet50_fpn": DetectorSpec(
        "fcos_resnet50_fpn", "FCOSDetector", 0, ("head.classification_head.cls_logits.",)),
    "ssd300_vgg16": DetectorSpec(
        "ssd300_vgg16", "SSDDetector", 1, ("head.classification_head.module_list.",), resizes=False),
}

# Keyword arguments the builder sets itself: model.kwargs may not.
RESERVED_KWARGS = {"weights", "weights_backbone", "progress", "num_classes", "image_mean", "image_std",
                   "backbone", "trainable_backbone_layers", "size", "anchor_generator"}


def image_list(images: Tensor | Sequence[Tensor], name: str) -> list[Tensor]:
    """Tensor[B, 3, H, W] or a list of Tensor[3, H, W] -> the list torchvision takes."""
    images = list(images)
    for im in images:
        if im.dim() != 3 or im.shape[0] != 3:
            raise ShapeError(f"{name}: expected images (3, H, W), got {tuple(im.shape)}")
    return images


def instance_masks(target: dict[str, Tensor], image: Tensor, n: int, name: str) -> Tensor:
    """A target's Tensor[n, H, W] uint8 instance masks; an image without boxes may have none."""
    if "masks" not in target:
        if n == 0:
            return torch.zeros((0, *image.shape[-2:]), dtype=torch.uint8, device=image.device)
        raise ConfigError(f"{name} needs instance masks (target 'masks'); use a dataset with masks "
                          f"(data=shapes) or model=fasterrcnn_resnet50_fpn")
    masks = target["masks"].as_subclass(Tensor).to(image.device)
    if masks.shape != (n, *image.shape[-2:]):
        raise ShapeError(f"{name}: expected masks {(n, *image.shape[-2:])} for {n} boxes, got {tuple(masks.shape)}")
    return masks.to(torch.uint8)


def options_of(detector: type) -> set[str]:
    """The keyword arguments of torchvision's detector class, through the constructors its `**kwargs`
    reach (Mask R-CNN's go to Faster R-CNN's, theirs to the input transform's)."""
    names: set[str] = set()
    for cls in (*detector.__mro__, *composed("NativeSizeTransform").__mro__):
        if cls.__module__.startswith("torchvision.") and "__init__" in vars(cls):
            names |= set(inspect.signature(cls.__init__).parameters)
    return names - RESERVED_KWARGS - {"self", "kwargs", "_skip_resize"}


def check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """model.kwargs must be options of torchvision's model class that the builder leaves free."""
    known = options_of(composed(SPECS[name].detector))
    if not SPECS[name].resizes:
        known -= {"min_size", "max_size", "fixed_size"}
    for key in kwargs:
        if key in ("weights", "weights_backbone"):
            raise ConfigError(f"model.kwargs.{key}: {name} starts from random init; "
                              f"load a file with model.weights=FILE")
        if key not in known:
            raise ConfigError(f"model.kwargs.{key}: not an option of {name}; known: {', '.join(sorted(known))}")


def build_detector(name: str, num_classes: int, in_channels: int, mean: Sequence[float] | None,
                   std: Sequence[float] | None, frozen_batchnorm: bool, kwargs: dict[str, Any]
                   ) -> TorchvisionDetector:
    """torchvision's `name` at random init, given the detector protocol (see the module docstring)."""
    spec = SPECS[name]
    if in_channels != 3:
        raise ConfigError(f"{name} takes 3-channel images, got in_channels={in_channels}")
    if num_classes < 1:
        raise ConfigError(f"{name}: num_classes must be >= 1, got {num_classes}")
    check_kwargs(name, kwargs)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    native = spec.resizes and "min_size" not in kwargs and "max_size" not in kwargs
    builder = getattr(importlib.import_module("torchvision.models.detection"), spec.builder)
    if mean is not None:  # else torchvision's own statistics: ImageNet's, or SSD300's 0-255 ones
        kwargs["image_mean"] = list(mean)
    if std is not None:
        kwargs["image_std"] = list(std)
    net = builder(weights=None, weights_backbone=None, num_classes=num_classes + spec.label_offset, **kwargs)
    net.__class__ = composed(spec.detector)  # adds methods only: the same modules, state_dict and forward
    if native:
        net.transform.__class__ = composed("NativeSizeTransform")
    if hasattr(net, "roi_heads"):
        net.roi_heads.__class__ = composed("ReselectingRoIHeads")
    net.name, net.num_classes, net.label_offset = name, num_classes, spec.label_offset
    net.class_specific = spec.class_specific
    if frozen_batchnorm:
        freeze_backbone_batchnorm(net)
    net.nms = "torchvision"
    return net


def _register(name: str, doc: str) -> None:
    def builder(num_classes: int, in_channels: int = 3, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None, frozen_batchnorm: bool = False, **kwargs: Any
                ) -> TorchvisionDetector:
        return build_detector(name, num_classes, in_channels, mean, std, frozen_batchnorm, kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    builder.instance_masks = COMPOSED[SPECS[name].detector][2].get("takes_masks", False)  # read by the task
    MODELS.register(name, tags=("detect",))(builder)


_COMMON = ("`mean`/`std` (torchvision's by default, the statistics its weight files were trained with) normalise "
           "the input; `min_size`/`max_size` (default: keep the input size) and torchvision's other model options "
           "(rpn_*, box_*, topk_candidates...) pass through; "
           "`frozen_batchnorm=True` freezes the backbone's batchnorm, for fine-tuning a weight file.")
_register("fasterrcnn_resnet50_fpn", "torchvision's Faster R-CNN ResNet-50-FPN (v1). " + _COMMON)
_register("maskrcnn_resnet50_fpn", "torchvision's Mask R-CNN ResNet-50-FPN (v1); targets need 'masks'. " + _COMMON)
_register("retinanet_resnet50_fpn", "torchvision's RetinaNet ResNet-50-FPN (v1). " + _COMMON)
_register("fcos_resnet50_fpn", "torchvision's FCOS ResNet-50-FPN. " + _COMMON)
_register("ssd300_vgg16", "torchvision's SSD300 on VGG-16 (input resized to 300x300; VGG has no batchnorm). "
          "`mean`/`std` as above; torchvision's files were trained with mean (0.48235, 0.45882, 0.40784), std 1/255.")


def load_torchvision_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Loads a torchvision state_dict file of the same detector (`model.weights=FILE`).

    A file for another number of classes loads everything but the class-specific predictor layers,
    which keep their random init (a warning names them). Only weights change: build the model with
    `frozen_batchnorm=True` to fine-tune as torchvision does (its pretrained detectors freeze the
    backbone's batchnorm). torchvision's COCO_V1 R-CNN and RetinaNet files were trained with batchnorm
    eps 0; the model keeps eps 1e-5 (eps is in no state_dict: a checkpoint evaluates as it trained).

    Returns:
        the state_dict keys left at their initial values.
    """
    if not isinstance(model, TorchvisionDetector):
        raise ConfigError(f"model.weights={path}: a torchvision detector file loads into {', '.join(SPECS)}, "
                          f"not {type(model).__name__}")
    state = read_weights(path)
    own = model.state_dict()
    # torchvision's pretrained files hold FrozenBatchNorm2d layers, which have no num_batches_tracked.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and state[k].shape != own[k].shape]
    skipped = [k for k in mismatched if k.startswith(model.class_specific)]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched if k not in skipped]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}" for label, keys in
                 (("shape of", wrong), ("missing", missing), ("unexpected", unexpected)) if keys]
        raise CheckpointError(f"{path}: not a {model.name} state_dict ({'; '.join(parts)})")
    model.load_state_dict({k: (v if k in skipped else state.get(k, v)) for k, v in own.items()})
    if skipped:
        warnings.warn(f"{path}: holds another number of classes than the model's {model.num_classes}; "
                      f"left at random init: {', '.join(skipped)}", stacklevel=2)
    return skipped


def freeze_backbone_batchnorm(model: nn.Module) -> None:
    """Locks the backbone's batchnorm layers in eval mode with their scale and shift fixed, as torchvision's
    FrozenBatchNorm2d has them in a pretrained detector (a few images per batch make poor statistics).
    The layers keep nn.BatchNorm2d's state_dict keys, so files and checkpoints load either way."""
    for m in model.backbone.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = FrozenBatchNorm2d
            m.eval()
            m.requires_grad_(False)
