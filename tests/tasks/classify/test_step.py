import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torchvision.transforms import v2

from zrenie.tasks.classify.step import ClassifyStep, _crops, mix_batch, tta_logits
from zrenie.tasks.classify.task import balanced_class_weights


def test_balanced_class_weights_match_scikit_learn():
    targets = torch.tensor([0] * 50 + [1] * 5 + [2] * 20)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=targets.numpy())
    assert balanced_class_weights(targets, 3).numpy() == pytest.approx(expected)


def test_weighted_loss_matches_cross_entropy_with_weights():
    logits, targets = torch.randn(8, 3), torch.tensor([0, 0, 0, 0, 1, 2, 2, 1])
    w = torch.tensor([0.5, 2.0, 1.0])
    step = ClassifyStep(3, class_weights=w)
    model = torch.nn.Identity()
    out = step.train_step({"model": model}, {"image": logits, "target": targets})
    assert out["loss"].item() == pytest.approx(F.cross_entropy(logits, targets, weight=w).item())


def test_five_and_ten_crop_views_equal_torchvision():
    x = torch.rand(2, 3, 28, 28)
    big = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    tl, tr, bl, br, center = v2.FiveCrop(28)(big)
    ours = _crops(x, "ten_crop")
    for got, ref in zip(ours, [tl, tr, bl, br, center, tl.flip(3), tr.flip(3), bl.flip(3), br.flip(3),
                               center.flip(3)]):
        assert torch.equal(got, ref)


def test_tta_none_is_the_plain_model():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4))
    x = torch.rand(3, 3, 4, 4)
    assert torch.allclose(tta_logits(model, x, "none"), model(x))
    assert torch.allclose(tta_logits(model, x, "five_crop").exp().sum(1), torch.ones(3))


@pytest.mark.parametrize("mixup, cutmix", [(0.2, 0.0), (0.0, 1.0)])
def test_mixing_keeps_probability_mass_and_matches_area(mixup, cutmix):
    g = torch.Generator().manual_seed(0)
    images = torch.stack([torch.full((1, 10, 10), float(i)) for i in range(6)])
    targets = torch.arange(6)
    mixed, soft = mix_batch(images, targets, 6, mixup, cutmix, g)
    assert torch.allclose(soft.sum(1), torch.ones(6))
    # Each image's own share of the label equals its own share of the pixels (exact for CutMix:
    # lam is the pasted area; for MixUp every pixel is lam * own + (1 - lam) * other).
    for i in range(6):
        others = [k for k in range(6) if k != i and soft[i, k] > 0]
        if not others:  # paired with itself
            continue
        j = others[0]
        if cutmix:
            own = (mixed[i] == i).float().mean()
            assert soft[i, i].item() == pytest.approx(own.item(), abs=1e-6)
        else:
            expected = soft[i, i] * i + soft[i, j] * j
            assert mixed[i].mean().item() == pytest.approx(expected.item(), abs=1e-5)
