"""SSD: output shapes, hard negative mining and the loss against naive loops, head sizes by hand,
a tiny overfit, the detection format and the two NMS backends."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from zrenie.errors import ConfigError
from zrenie.tasks.detect.models_ssd import SSD, hard_negative_mask, linear_scales, ssd, ssd_loss


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's ops are too small to share between threads: on a busy 2-core machine the
    hand-offs make a training step many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny(num_classes=3, **kwargs):
    torch.manual_seed(0)
    return ssd(num_classes, width=8, neck_channels=32, **kwargs)


def test_output_shapes_and_default_box_count():
    model = _tiny()
    logits, offsets, sizes = model(torch.rand(2, 3, 64, 64))
    # strides 8, 16, 32 on 64 px: 8x8, 4x4, 2x2 maps, 2 squares + 2 boxes for ratio 2 at each location
    count = (64 + 16 + 4) * 4
    assert sizes == [(8, 8), (4, 4), (2, 2)]
    assert logits.shape == (2, count, 4) and offsets.shape == (2, count, 4)
    assert model.default_boxes((64, 64), sizes, torch.device("cpu")).shape == (count, 4)
    # no neck, two extra stride-2 levels past the backbone's stride 32: 64 and 128 (1x1)
    plain = _tiny(strides=(16, 32, 64, 128), neck=False)
    assert plain(torch.rand(2, 3, 64, 64))[2] == [(4, 4), (2, 2), (1, 1), (1, 1)]
    assert linear_scales(3, 0.1, 0.3) == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_head_parameter_count_by_hand():
    k = 5
    model = ssd(k, width=8, neck_channels=32, aspect_ratios=[[2.0], [2.0, 3.0], []])
    # per level: a 3x3 conv from 32 channels (9 * 32 weights + 1 bias per output) to a (K + 1) and a 4
    boxes = [4, 6, 2]
    expected = sum((9 * 32 + 1) * a * (k + 1 + 4) for a in boxes)
    heads = sum(p.numel() for m in (model.class_heads, model.box_heads) for p in m.parameters())
    assert heads == expected


def _naive_mining(loss, positive, ratio):
    keep = torch.zeros_like(positive)
    for i in range(len(loss)):
        negatives = [j for j in range(loss.shape[1]) if not positive[i, j]]
        negatives.sort(key=lambda j: -loss[i, j].item())
        for j in negatives[:ratio * max(int(positive[i].sum()), 1)]:
            keep[i, j] = True
    return keep


def test_hard_negative_mining_and_loss_equal_naive_loops():
    g = torch.Generator().manual_seed(0)
    b, a, k = 3, 40, 4
    logits, offsets = torch.randn(b, a, k + 1, generator=g), torch.randn(b, a, 4, generator=g)
    classes = torch.randint(1, k + 1, (b, a), generator=g) * (torch.rand(b, a, generator=g) < 0.15)
    classes[2] = 0  # an image with no objects keeps its 3 hardest negatives
    target_offsets = torch.randn(b, a, 4, generator=g)
    ce = F.cross_entropy(logits.flatten(0, 1), classes.flatten(), reduction="none").view(b, a)
    mask = hard_negative_mask(ce, classes > 0, 3)
    assert torch.equal(mask, _naive_mining(ce, classes > 0, 3))
    assert int(mask[2].sum()) == 3
    cls_sum, box_sum, n = 0.0, 0.0, int((classes > 0).sum())
    for i in range(b):
        for j in range(a):
            if classes[i, j] > 0 or mask[i, j]:
                cls_sum += F.cross_entropy(logits[i, j][None], classes[i, j][None]).item()
            if classes[i, j] > 0:
                box_sum += F.smooth_l1_loss(offsets[i, j], target_offsets[i, j], reduction="sum").item()
    out = ssd_loss(logits, offsets, classes, target_offsets, 3)
    assert out["classification"].item() == pytest.approx(cls_sum / n, rel=1e-5)
    assert out["box"].item() == pytest.approx(box_sum / n, rel=1e-5)
    assert out["loss"].item() == pytest.approx((cls_sum + box_sum) / n, rel=1e-5)


def test_images_without_boxes():
    model = _tiny()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    out = model.losses(torch.rand(2, 3, 64, 64), [empty, empty])
    assert torch.isfinite(out["loss"]) and out["box"].item() == 0.0 and out["loss"].item() > 0
    out["loss"].backward()


def _refresh_batchnorm(model, images):
    """Exact batch-norm statistics of `images`, so eval mode sees what training saw."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(images)


def test_overfits_one_image_and_finds_both_boxes():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64) * 0.2
    image[0, 0, 10:28, 8:30] = 0.9
    image[0, 2, 30:60, 34:58] = 0.9
    boxes = torch.tensor([[8.0, 10.0, 30.0, 28.0], [34.0, 30.0, 58.0, 60.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([0, 2])}]
    model = _tiny()
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    first = None
    for _ in range(30):
        loss = model.losses(image, targets)["loss"]
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first
    _refresh_batchnorm(model, image)
    model.eval()
    found = model.detect(image, conf=0.3, iou=0.5)[0]
    assert len(found["boxes"]) == 2
    iou = box_iou(boxes, found["boxes"])
    best = iou.argmax(1)
    assert (iou.max(1).values >= 0.5).all() and found["labels"][best].tolist() == [0, 2]


def test_detect_format_and_nms_backends_agree():
    model = _tiny(num_classes=4).eval()
    images = torch.rand(2, 3, 64, 48)
    ref = model.detect(images, conf=0.001, iou=0.5, max_det=30)  # untrained: scores near (1 - 0.99) / K
    model.nms = "zrenie"
    ours = model.detect(images, conf=0.001, iou=0.5, max_det=30)
    for r, o in zip(ref, ours):
        assert set(r) == {"boxes", "scores", "labels"}
        n = len(r["scores"])
        assert 0 < n <= 30 and r["boxes"].shape == (n, 4) and r["labels"].dtype == torch.int64
        assert (r["scores"][:-1] >= r["scores"][1:]).all() and (r["scores"] >= 0.001).all()
        assert (r["boxes"][:, 0] >= 0).all() and (r["boxes"][:, 2] <= 48).all() and (r["boxes"][:, 3] <= 64).all()
        assert (r["labels"] >= 0).all() and (r["labels"] < 4).all()
        for key in r:
            torch.testing.assert_close(o[key], r[key])
    assert all(len(d["scores"]) == 0 for d in model.detect(images, conf=1.01))


@pytest.mark.parametrize("kwargs", [
    {"strides": (8, 16, 128)},  # 128 is neither a backbone map nor a doubling of the last
    {"strides": (16, 8)},
    {"scales": (0.1, 0.2)},
    {"aspect_ratios": [[2.0], [3.0]]},
    {"num_classes": 0},
])
def test_bad_configuration_is_config_error(kwargs):
    args = {"num_classes": 3, "width": 8, **kwargs}
    with pytest.raises(ConfigError):
        SSD(**args)
