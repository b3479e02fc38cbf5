"""What every detector of `detect` is to the task: two methods on raw `[0, 1]` images.

A detector is an `nn.Module` registered in `MODELS` with the tag "detect". Its builder takes
`num_classes`, `in_channels`, `mean` and `std` (the dataset's, so the model normalises its own input, as
torchvision's detectors do) and any of its own keyword arguments (`model.kwargs.*`). It has:

    losses(images, targets) -> {"loss": total Tensor[], other parts: Tensor[] ...}
        images: Tensor[B, C, H, W] in [0, 1] (or a list of Tensor[C, H, W] for detectors that take
        images of several sizes); targets: B dicts {"boxes": Tensor[k, 4] XYXY absolute pixel edges,
        "labels": Tensor[k] int64 in [0, num_classes)}, k may be 0.
    detect(images, conf=0.05, iou=0.5, max_det=100) -> B dicts {"boxes": Tensor[n, 4] XYXY pixels of the
        input image, "scores": Tensor[n] in [0, 1] descending, "labels": Tensor[n] int64}
        with scores >= conf, class-aware NMS at IoU `iou` (through `self.nms`), at most max_det.

`nms` is a plain attribute, "torchvision" (default) or "zrenie", set by the task from `detect.nms`.

The built-in detectors (`OneForward` subclasses) compute both from one forward pass: `losses` and `detect`
take its `outputs=`, and `losses_and_detections` runs it once for validation. Torchvision's detectors
compute losses in train mode only, so there it is two passes.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from zrenie.errors import ConfigError, ShapeError

NMS_BACKENDS = ("torchvision", "zrenie")

Detections = dict[str, Tensor]


def batched_nms_of(name: str) -> Callable[[Tensor, Tensor, Tensor, float], Tensor]:
    """The class-aware NMS function `(boxes, scores, labels, iou) -> kept indices` of a backend."""
    if name == "torchvision":
        from torchvision.ops import batched_nms
        return batched_nms
    if name == "zrenie":
        from zrenie.ops import batched_nms
        return batched_nms
    raise ConfigError(f"detect.nms: unknown backend {name!r}; choose one of {', '.join(NMS_BACKENDS)}")


def select_detections(boxes: Tensor, scores: Tensor, labels: Tensor, conf: float, iou: float, max_det: int,
                      nms: str = "torchvision", pre_nms: int = 1000) -> Detections:
    """One image's candidates -> its detections: score >= conf and a positive area, the best `pre_nms`,
    class-aware NMS, the best `max_det`, sorted by score.

    Args:
        boxes: Tensor[N, 4] XYXY pixels; scores: Tensor[N]; labels: Tensor[N] int64.
    """
    keep = (scores >= conf) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # no empty boxes
    boxes, scores, labels = boxes[keep].float(), scores[keep].float(), labels[keep]
    if len(scores) > pre_nms:
        top = scores.topk(pre_nms).indices
        boxes, scores, labels = boxes[top], scores[top], labels[top]
    kept = batched_nms_of(nms)(boxes, scores, labels, iou)[:max_det]
    return {"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]}


def stack_images(images: Tensor | Sequence[Tensor], name: str) -> Tensor:
    """A batch Tensor[B, C, H, W] from a Tensor or a list of same-size images; one ShapeError otherwise."""
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ShapeError(f"{name}: expected images (B, C, H, W), got {tuple(images.shape)}")
        return images
    sizes = {tuple(im.shape) for im in images}
    if len(sizes) != 1:
        raise ShapeError(f"{name} takes a batch of images of one size, got {sorted(sizes)}; "
                         f"set data.size to resize them")
    return torch.stack(list(images))


class OneForward(nn.Module):
    """A detector whose `losses(images, targets, outputs=None)` and `detect(..., outputs=None)` read the same
    `forward(images)` outputs, so that validation runs it once (`losses_and_detections`)."""

    detector_name = "detector"

    def outputs_of(self, images: Tensor | Sequence[Tensor], outputs: Any = None) -> tuple[Tensor, Any]:
        """The image batch and the forward outputs (computed here unless given)."""
        images = stack_images(images, self.detector_name)
        return images, self(images) if outputs is None else outputs


def losses_and_detections(model: nn.Module, images: Tensor | Sequence[Tensor], targets: Sequence[dict],
                          conf: float, iou: float, max_det: int) -> tuple[dict[str, Tensor], list[Detections]]:
    """A validation step's losses and detections: one forward pass for a `OneForward` detector, two otherwise."""
    if isinstance(model, OneForward):
        images, outputs = model.outputs_of(images)
        return (model.losses(images, targets, outputs=outputs),
                model.detect(images, conf=conf, iou=iou, max_det=max_det, outputs=outputs))
    return model.losses(images, targets), model.detect(images, conf=conf, iou=iou, max_det=max_det)


def per_channel(values: Sequence[float], channels: int, name: str) -> list[float]:
    """One value per input channel: a single value repeats; any other count than `channels` is a ConfigError."""
    values = [float(v) for v in values]
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ConfigError(f"{name} has {len(values)} values for {channels} input channels")
    return values


class InputNormalize(nn.Module):
    """`(x - mean) / std` per channel, with the statistics stored as buffers (they travel in checkpoints).

    Args:
        mean, std: one value per channel, or one for all `channels`.
        channels: input channels (None: as many as `mean` has).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels: int | None = None):
        super().__init__()
        channels = len(mean) if channels is None else channels
        mean, std = per_channel(mean, channels, "mean"), per_channel(std, channels, "std")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
