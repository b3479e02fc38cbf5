"""Segmentation losses against independent references: naive per-pixel loops, torchvision, kornia,
segmentation_models_pytorch, and values worked by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from zrenie.errors import ConfigError
from zrenie.tasks.segment.loss import LOSSES, build_loss, dice_loss, focal_loss, lovasz_loss, tversky_loss

IGNORE = 255


def _batch(k: int, seed: int = 0, ignore_share: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, k, 5, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, max(k, 2), (2, 5, 7), generator=g)
    target[torch.rand(2, 5, 7, generator=g) < ignore_share] = IGNORE
    return logits, target


def _valid_pixels(logits, target):
    """(logit vector, label) of every valid pixel, by explicit loops."""
    out = []
    for b in range(target.shape[0]):
        for i in range(target.shape[1]):
            for j in range(target.shape[2]):
                if int(target[b, i, j]) != IGNORE:
                    out.append((logits[b, :, i, j], int(target[b, i, j])))
    return out


def test_ce_and_wce_equal_a_naive_loop():
    logits, target = _batch(4)
    weights = torch.tensor([0.5, 1.0, 2.0, 3.0])
    pixels = _valid_pixels(logits, target)
    nll = [-(x - torch.logsumexp(x, 0))[y].item() for x, y in pixels]
    assert build_loss("ce", 4)(logits, target).item() == pytest.approx(sum(nll) / len(nll), rel=1e-6)
    w = [weights[y].item() for _, y in pixels]
    expected = sum(a * b for a, b in zip(w, nll)) / sum(w)
    assert build_loss("wce", 4, class_weights=weights)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_bce_equals_a_naive_loop():
    logits, target = _batch(1)
    pixels = _valid_pixels(logits, target)
    expected = [-(y * math.log(1 / (1 + math.exp(-x.item()))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x.item()))))
                for x, y in pixels]
    assert build_loss("bce", 1)(logits, target).item() == pytest.approx(sum(expected) / len(expected), rel=1e-6)


def test_dice_worked_by_hand():
    # one image, two classes, probabilities given directly through large logits: p = one-hot of the prediction
    target = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 1, 1, 1]]])
    logits = F.one_hot(pred, 2).permute(0, 3, 1, 2).double() * 100
    # class 0: tp 1, |P| 1, |T| 2 -> dice 2/3; class 1: tp 2, |P| 3, |T| 2 -> dice 4/5
    expected = 1 - (2 / 3 + 4 / 5) / 2
    assert dice_loss(logits, target).item() == pytest.approx(expected, abs=1e-9)
    assert dice_loss(F.one_hot(target, 2).permute(0, 3, 1, 2).double() * 100, target).item() == pytest.approx(0)


@pytest.mark.parametrize("k", [1, 3])
def test_dice_tversky_lovasz_equal_segmentation_models_pytorch(k):
    import segmentation_models_pytorch.losses as smp_losses  # a dev dependency: missing is a failure
    logits, target = _batch(k, seed=k)
    logits = logits.float()  # smp's Lovasz mixes float32 into float64 inputs
    mode = "binary" if k == 1 else "multiclass"
    y = target if k > 1 else target[:, None]  # smp's binary mode takes (B, 1, H, W) targets
    dice = smp_losses.DiceLoss(mode, from_logits=True, ignore_index=IGNORE)(logits, y)
    assert dice_loss(logits, target).item() == pytest.approx(dice.item(), abs=1e-5)
    tv = smp_losses.TverskyLoss(mode, from_logits=True, ignore_index=IGNORE, alpha=0.3, beta=0.7)(logits, y)
    assert tversky_loss(logits, target, 0.3, 0.7).item() == pytest.approx(tv.item(), abs=1e-5)
    lov = smp_losses.LovaszLoss(mode, ignore_index=IGNORE)(logits, y)
    assert lovasz_loss(logits, target).item() == pytest.approx(lov.item(), abs=1e-5)


def test_binary_focal_equals_torchvision():
    from torchvision.ops import sigmoid_focal_loss

    logits, target = _batch(1, seed=3)
    valid = target != IGNORE
    for alpha in (None, 0.25):
        expected = sigmoid_focal_loss(logits[:, 0][valid], target[valid].double(), alpha=-1 if alpha is None else alpha,
                                      gamma=2.0, reduction="mean")
        assert focal_loss(logits, target, 2.0, alpha).item() == pytest.approx(expected.item(), rel=1e-6)


def test_softmax_focal_equals_kornia_and_a_naive_loop():
    logits, target = _batch(4, seed=4)
    pixels = _valid_pixels(logits, target)
    naive = [-(1 - p) ** 2 * math.log(p) for p in (torch.softmax(x, 0)[y].item() for x, y in pixels)]
    assert focal_loss(logits, target, 2.0).item() == pytest.approx(sum(naive) / len(naive), rel=1e-6)
    import kornia
    valid = target != IGNORE
    flat = logits.permute(0, 2, 3, 1)[valid]  # (N, K)
    # kornia's "mean" runs over pixels x classes (zeros off the target class), so it is 1/K of the pixel mean
    expected = kornia.losses.focal_loss(flat, target[valid], alpha=None, gamma=2.0, reduction="mean") * 4
    assert focal_loss(logits, target, 2.0).item() == pytest.approx(expected.item(), rel=1e-6)
    # gamma 0 without alpha is the cross-entropy
    assert focal_loss(logits, target, 0.0).item() == pytest.approx(build_loss("ce", 4)(logits, target).item())


def test_lovasz_is_zero_for_a_perfect_prediction_and_one_for_a_wrong_one():
    target = torch.tensor([[[0, 1], [1, 0]]])
    perfect = F.one_hot(target, 2).permute(0, 3, 1, 2).double() * 100
    assert lovasz_loss(perfect, target).item() == pytest.approx(0, abs=1e-9)
    assert lovasz_loss(-perfect, target).item() == pytest.approx(1, abs=1e-9)  # every pixel wrong: IoU 0


@pytest.mark.parametrize("name", LOSSES)
def test_edge_cases_all_ignored_empty_masks_and_an_absent_class(name):
    k = 1 if name in ("bce", "bce_dice") else 3
    fn = build_loss(name, k, class_weights=torch.ones(k))
    logits = torch.randn(2, k, 4, 4, requires_grad=True)
    ignored = torch.full((2, 4, 4), IGNORE)
    loss = fn(logits, ignored)
    assert loss.item() == 0 and loss.requires_grad  # nothing to learn from, and backward still works
    loss.backward()
    empty = torch.zeros(2, 4, 4, dtype=torch.long)  # background only: object class(es) absent
    assert math.isfinite(fn(logits, empty).item())
    absent = torch.randint(0, 2, (2, 4, 4))  # class 2 never occurs
    value = fn(logits, absent)
    assert math.isfinite(value.item()) and value.item() >= 0


def test_binary_losses_refuse_many_classes_in_one_line():
    with pytest.raises(ConfigError, match="bce is a binary loss .* the data has 5 classes"):
        build_loss("bce", 5)
    with pytest.raises(ConfigError, match="needs two or more classes"):
        build_loss("ce", 1)
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        build_loss("hinge", 2)
