"""CenterNet's pieces against naive loops and the properties that define them, and a one-image overfit."""

import math

import pytest
import torch
from torchvision.ops import box_iou

from zrenie.tasks.detect.models_centernet import (
    STRIDE, centernet, decode_peaks, draw_heatmaps, focal_loss, gaussian_radius,
)


@pytest.mark.parametrize("h,w", [(10.0, 10.0), (4.0, 30.0), (25.0, 7.0), (2.0, 2.0)])
def test_gaussian_radius_is_the_largest_corner_shift_keeping_iou_0_7(h, w):
    """Shifting both corners of a box by r (any of the three ways CornerNet considers) keeps IoU >= 0.7,
    and the smallest case is tight: one of them reaches 0.7 exactly."""
    r = float(gaussian_radius(torch.tensor([h]), torch.tensor([w]))[0])
    box = torch.tensor([[0.0, 0.0, w, h]])
    cases = [torch.tensor([[r, r, w + r, h + r]]),      # both corners shifted the same way (case 1)
             torch.tensor([[-r, -r, w + r, h + r]]),    # the box grown by r on each side (case 2)
             torch.tensor([[r, r, w - r, h - r]])]      # the box shrunk by r on each side (case 3)
    ious = [float(box_iou(box, c)[0, 0]) if c[0, 2] > c[0, 0] and c[0, 3] > c[0, 1] else 0.0 for c in cases]
    assert min(ious) == pytest.approx(0.7, abs=1e-4)
    assert all(i >= 0.7 - 1e-4 for i in ious)


def test_heatmaps_equal_a_naive_loop_with_overlaps_kept_by_maximum():
    centers = torch.tensor([[3.0, 4.0], [5.0, 4.0], [0.0, 0.0], [7.0, 2.0]])
    radii = torch.tensor([2.0, 1.0, 3.0, 0.0])
    image_index = torch.tensor([0, 0, 1, 1])
    labels = torch.tensor([1, 1, 0, 2])
    heat = draw_heatmaps(centers, radii, image_index, labels, (2, 3, 6, 9))
    naive = torch.zeros(2, 3, 6, 9)
    for (cx, cy), r, b, k in zip(centers.tolist(), radii.tolist(), image_index.tolist(), labels.tolist()):
        sigma = (2 * r + 1) / 6
        for y in range(6):
            for x in range(9):
                if abs(x - cx) <= r and abs(y - cy) <= r:
                    v = math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
                    naive[b, k, y, x] = max(naive[b, k, y, x], v)
    torch.testing.assert_close(heat, naive)
    assert heat[0, 1, 4, 3] == 1 and heat[1, 2, 2, 7] == 1 and heat[1, 2].sum() == 1


def test_focal_loss_equals_a_per_pixel_loop():
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 4, 5)
    target = torch.rand(1, 2, 4, 5) * 0.9
    target[0, 0, 1, 2] = target[0, 1, 3, 4] = 1.0
    total, positives = 0.0, 0
    for z, y in zip(logits.flatten().tolist(), target.flatten().tolist()):
        p = 1 / (1 + math.exp(-z))
        if y == 1:
            total -= (1 - p) ** 2 * math.log(p)
            positives += 1
        else:
            total -= (1 - y) ** 4 * p ** 2 * math.log(1 - p)
    assert float(focal_loss(logits, target)) == pytest.approx(total / positives, rel=1e-5)


def test_decoded_peaks_are_local_maxima_with_their_size_and_offset():
    heat = torch.zeros(1, 2, 8, 8)
    heat[0, 1, 2, 3] = 0.9
    heat[0, 1, 2, 4] = 0.5  # beside the peak: suppressed by the 3x3 max-pool
    heat[0, 0, 6, 6] = 0.7
    size = torch.zeros(1, 2, 8, 8)
    offset = torch.zeros(1, 2, 8, 8)
    size[0, :, 2, 3] = torch.tensor([4.0, 2.0])
    offset[0, :, 2, 3] = torch.tensor([0.5, 0.25])
    boxes, scores, labels = decode_peaks(heat, size, offset, 3, (32, 32))[0]
    assert scores.tolist()[:2] == pytest.approx([0.9, 0.7]) and labels.tolist()[:2] == [1, 0]
    cx, cy = (3 + 0.5) * STRIDE, (2 + 0.25) * STRIDE
    torch.testing.assert_close(boxes[0], torch.tensor([cx - 8, cy - 4, cx + 8, cy + 4]))
    assert 0.5 not in scores.tolist()


def test_parameter_count_and_heads_worked_out_by_hand():
    model = centernet(8, head_channels=64)
    heads = 0
    for out in (8, 2, 2):  # 3x3 conv (no bias) + BN, then a 1x1 conv with bias
        heads += 64 * 64 * 9 + 2 * 64 + 64 * out + out
    assert sum(p.numel() for p in model.heatmap.parameters()) + sum(p.numel() for p in model.size.parameters()) + \
        sum(p.numel() for p in model.offset.parameters()) == heads
    assert float(model.heatmap[-1].bias[0].detach()) == pytest.approx(-math.log(9), rel=1e-6)


def test_centernet_overfits_one_image_and_finds_its_boxes():
    torch.manual_seed(0)
    image = torch.full((1, 3, 64, 64), 0.2)
    image[0, :, 8:24, 10:30] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)
    image[0, :, 36:60, 40:52] = torch.tensor([0.1, 0.2, 0.9]).view(3, 1, 1)
    target = [{"boxes": torch.tensor([[10.0, 8, 30, 24], [40, 36, 52, 60]]), "labels": torch.tensor([0, 1])}]
    model = centernet(2, width=8, head_channels=32)
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    for _ in range(60):
        loss = model.losses(image, target)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    found = model.detect(image, conf=0.2)[0]
    iou = box_iou(target[0]["boxes"], found["boxes"])
    same = target[0]["labels"][:, None] == found["labels"][None]
    assert ((iou >= 0.5) & same).any(1).all(), (found, iou)


def test_an_image_without_objects_trains_on_the_heatmap_alone():
    model = centernet(3, width=8, head_channels=16)
    parts = model.losses(torch.rand(2, 3, 32, 32), [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long()}] * 2)
    assert torch.isfinite(parts["loss"]) and parts["size"] == 0 and parts["offset"] == 0
