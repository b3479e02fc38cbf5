"""Segmentation losses of the course's five-loss study, each with `ignore_index`.

A model's logits are `(B, K, H, W)` and the target `(B, H, W)` holds class indices. Multi-class
losses take K >= 2 channels and a softmax; binary losses take one channel (the object's logit)
and a sigmoid, with targets 0 (background) and 1 (object). Pixels whose target is `ignore_index`
count nowhere: not in a sum, not in a mean, not in a class's area.

| name       | K      | what it is                                                                 |
|------------|--------|----------------------------------------------------------------------------|
| ce         | >= 2   | cross-entropy, the mean over valid pixels                                  |
| wce        | >= 2   | cross-entropy with class weights (`class_weights=balanced`, as classify)   |
| bce        | 1      | binary cross-entropy on the logit                                          |
| dice       | any    | soft Dice: 1 - 2|P.T| / (|P| + |T|) per class over the batch             |
| focal      | any    | focal loss (Lin et al. 2017): softmax for K >= 2, sigmoid for K = 1        |
| tversky    | any    | Tversky (Salehi et al. 2017): |P.T| / (|P.T| + a|P.~T| + b|~P.T|)         |
| lovasz     | any    | Lovasz-Softmax for K >= 2, Lovasz hinge for K = 1 (Berman et al. 2018)     |
| bce_dice   | 1      | bce + dice                                                                 |
| ce_dice    | >= 2   | ce + dice                                                                  |

Dice, Tversky and Lovasz are set-level losses: they are computed over all valid pixels of the batch,
per class, and averaged over classes, counting a class only where the batch's targets contain it
(a class absent from both target and prediction has no overlap to score; one predicted where it is
absent is penalised through the other classes' false negatives and, for Lovasz, its own errors).
Dice and Tversky follow segmentation_models_pytorch's definition (no smoothing term, eps 1e-7), so
the two libraries' numbers agree; the tests check that.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from zrenie.errors import ConfigError, ShapeError

LOSSES = ("ce", "wce", "bce", "dice", "focal", "tversky", "lovasz", "bce_dice", "ce_dice")
BINARY_ONLY = ("bce", "bce_dice")
MULTICLASS_ONLY = ("ce", "wce", "ce_dice")
EPS = 1e-7


def _check(logits: Tensor, target: Tensor) -> None:
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0] or \
            logits.shape[2:] != target.shape[1:]:
        raise ShapeError(f"segmentation loss: expected logits (B, K, H, W) and target (B, H, W) of the same B, H, W, "
                         f"got {tuple(logits.shape)} and {tuple(target.shape)}")


def _upcast(logits: Tensor) -> Tensor:
    """Half and bfloat16 logits (AMP) are scored in float32; float32 and float64 as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _flat_valid(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Logits `(N, K)` and targets `(N,)` of the valid pixels only."""
    k = logits.shape[1]
    flat = logits.permute(0, 2, 3, 1).reshape(-1, k)
    labels = target.reshape(-1)
    valid = labels != ignore_index
    return flat[valid], labels[valid]


def _probs_and_onehot(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Probabilities and one-hot targets `(N, K')` of the valid pixels: sigmoid for K = 1 (object channel
    only), softmax for K >= 2."""
    flat, labels = _flat_valid(_upcast(logits), target, ignore_index)
    if flat.shape[1] == 1:
        return flat.sigmoid(), labels[:, None].to(flat.dtype)
    return flat.softmax(1), F.one_hot(labels, flat.shape[1]).to(flat.dtype)


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Soft Dice loss: `1 - 2 sum(p t) / (sum(p) + sum(t))` per class over the batch, mean over classes,
    a class absent from the batch's targets counting 0. Equals `tversky_loss(alpha=0.5, beta=0.5)`."""
    return tversky_loss(logits, target, 0.5, 0.5, ignore_index)


def tversky_loss(logits: Tensor, target: Tensor, alpha: float = 0.5, beta: float = 0.5,
                 ignore_index: int = 255) -> Tensor:
    """Tversky loss: `1 - TP / (TP + alpha FP + beta FN)` per class (soft counts over the batch).

    Args:
        alpha: weight of false positives.
        beta: weight of false negatives (beta > alpha favours recall, for small objects).
    """
    _check(logits, target)
    probs, onehot = _probs_and_onehot(logits, target, ignore_index)
    tp = (probs * onehot).sum(0)
    fp = (probs * (1 - onehot)).sum(0)
    fn = ((1 - probs) * onehot).sum(0)
    score = tp / (tp + alpha * fp + beta * fn).clamp_min(EPS)
    present = onehot.sum(0) > 0
    return ((1 - score) * present).mean() if len(onehot) else logits.sum() * 0


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0, alpha: float | None = None,
               ignore_index: int = 255) -> Tensor:
    """Focal loss `-alpha_t (1 - p_t)^gamma log p_t`, the mean over valid pixels.

    K >= 2: softmax over classes, `alpha` (if given) weighs every class alike (kornia's `focal_loss`).
    K = 1: sigmoid of the object logit, `alpha` weighs objects and `1 - alpha` background
    (`torchvision.ops.sigmoid_focal_loss`). `gamma = 0` and no alpha is the (binary) cross-entropy.
    """
    _check(logits, target)
    flat, labels = _flat_valid(_upcast(logits), target, ignore_index)
    if not len(labels):
        return logits.sum() * 0
    if flat.shape[1] == 1:
        t = labels.to(flat.dtype)
        ce = F.binary_cross_entropy_with_logits(flat[:, 0], t, reduction="none")
        p = flat[:, 0].sigmoid()
        p_t = p * t + (1 - p) * (1 - t)
        weight = 1.0 if alpha is None else alpha * t + (1 - alpha) * (1 - t)
        return (weight * (1 - p_t) ** gamma * ce).mean()
    log_p = flat.log_softmax(1).gather(1, labels[:, None])[:, 0]
    factor = (1 - log_p.exp()) ** gamma
    return -((1.0 if alpha is None else alpha) * factor * log_p).mean()


def _lovasz_grad(sorted_truth: Tensor) -> Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss at sorted errors (Berman et al., Alg. 1)."""
    total = sorted_truth.sum()
    intersection = total - sorted_truth.cumsum(0)
    union = total + (1 - sorted_truth).cumsum(0)
    jaccard = 1 - intersection / union
    if len(sorted_truth) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_loss(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Lovasz-Softmax (K >= 2: mean over classes present in the batch's targets) or the Lovasz hinge (K = 1),
    over all valid pixels of the batch (not per image)."""
    _check(logits, target)
    flat, labels = _flat_valid(_upcast(logits), target, ignore_index)
    if not len(labels):
        return logits.sum() * 0
    if flat.shape[1] == 1:
        signs = 2 * labels.to(flat.dtype) - 1
        errors = 1 - flat[:, 0] * signs
        errors_sorted, order = errors.sort(descending=True)
        return torch.dot(F.relu(errors_sorted), _lovasz_grad(labels.to(flat.dtype)[order]))
    probs = flat.softmax(1)
    losses = []
    for c in range(flat.shape[1]):
        truth = (labels == c).to(flat.dtype)
        if truth.sum() == 0:
            continue
        errors_sorted, order = (truth - probs[:, c]).abs().sort(descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(truth[order])))
    return torch.stack(losses).mean()


def build_loss(name: str, num_outputs: int, ignore_index: int = 255, class_weights: Tensor | None = None,
               gamma: float = 2.0, alpha: float | None = None, tversky: tuple[float, float] = (0.3, 0.7),
               ) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss `name` as `fn(logits (B, K, H, W), target (B, H, W)) -> scalar`.

    Args:
        num_outputs: the model's K; a binary loss with K >= 2 (or a multi-class one with K = 1) is a
            ConfigError naming both.
        class_weights: `wce` only, Tensor[K].
        gamma, alpha: `focal`.
        tversky: `(alpha, beta)` of `tversky`.
    """
    if name not in LOSSES:
        raise ConfigError(f"segment.loss: unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    if name in BINARY_ONLY and num_outputs != 1:
        raise ConfigError(f"segment.loss={name} is a binary loss (one object channel) but the data has "
                          f"{num_outputs} classes; use ce, wce, ce_dice, dice, focal, tversky or lovasz")
    if name in MULTICLASS_ONLY and num_outputs < 2:
        raise ConfigError(f"segment.loss={name} needs two or more classes; use bce or bce_dice for one object")
    if name == "wce" and class_weights is None:
        raise ConfigError("segment.loss=wce needs class weights (segment.class_weights=balanced or a list)")

    def bce(logits: Tensor, target: Tensor) -> Tensor:
        _check(logits, target)
        flat, labels = _flat_valid(_upcast(logits), target, ignore_index)
        if not len(labels):
            return logits.sum() * 0
        return F.binary_cross_entropy_with_logits(flat[:, 0], labels.to(flat.dtype))

    def ce(logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        _check(logits, target)
        if not (target != ignore_index).any():
            return logits.sum() * 0
        logits = _upcast(logits)
        weight = None if weight is None else weight.to(logits)
        return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)

    losses: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
        "ce": ce,
        "wce": lambda x, t: ce(x, t, class_weights),
        "bce": bce,
        "dice": lambda x, t: dice_loss(x, t, ignore_index),
        "focal": lambda x, t: focal_loss(x, t, gamma, alpha, ignore_index),
        "tversky": lambda x, t: tversky_loss(x, t, *tversky, ignore_index),
        "lovasz": lambda x, t: lovasz_loss(x, t, ignore_index),
        "bce_dice": lambda x, t: bce(x, t) + dice_loss(x, t, ignore_index),
        "ce_dice": lambda x, t: ce(x, t) + dice_loss(x, t, ignore_index),
    }
    return losses[name]
