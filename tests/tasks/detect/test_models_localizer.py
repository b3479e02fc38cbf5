"""The localizer: its box parametrisation, its loss worked out by hand, and its one-object rule."""

import pytest
import torch
import torch.nn.functional as F

from zrenie.errors import DataError
from zrenie.tasks.detect.models_localizer import localizer, one_box_each


def test_loss_is_cross_entropy_plus_weighted_l1_and_giou_worked_by_hand():
    torch.manual_seed(0)
    model = localizer(3, width=8, box_weight=2.0)
    images = torch.rand(2, 3, 32, 32)
    targets = [{"boxes": torch.tensor([[4.0, 8, 20, 24]]), "labels": torch.tensor([2])},
               {"boxes": torch.tensor([[0.0, 0, 32, 16]]), "labels": torch.tensor([0])}]
    logits, boxes = model(images)
    true = torch.tensor([[4 / 32, 8 / 32, 20 / 32, 24 / 32], [0, 0, 1, 0.5]])
    ce = F.cross_entropy(logits, torch.tensor([2, 0]))
    giou = []
    for p, t in zip(boxes.tolist(), true.tolist()):  # generalized IoU of two boxes, by hand
        inter = max(0, min(p[2], t[2]) - max(p[0], t[0])) * max(0, min(p[3], t[3]) - max(p[1], t[1]))
        union = (p[2] - p[0]) * (p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
        hull = (max(p[2], t[2]) - min(p[0], t[0])) * (max(p[3], t[3]) - min(p[1], t[1]))
        giou.append(1 - (inter / union - (hull - union) / hull))
    expected = ce + 2.0 * ((boxes - true).abs().mean() + sum(giou) / 2)
    assert float(model.losses(images, targets)["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_detect_gives_one_box_per_image_in_pixels():
    model = localizer(4, width=8).eval()
    images = torch.rand(3, 3, 40, 40)
    logits, boxes = (t.detach() for t in model(images))
    found = model.detect(images, conf=0.0)
    assert [len(f["boxes"]) for f in found] == [1, 1, 1]
    torch.testing.assert_close(found[1]["boxes"][0], boxes[1] * 40)
    assert found[1]["labels"][0] == logits[1].argmax() and found[1]["scores"][0] == pytest.approx(
        float(logits[1].softmax(0).max()))
    assert all(len(f["boxes"]) == 0 for f in model.detect(images, conf=1.0))


def test_an_image_with_two_objects_is_one_data_error():
    with pytest.raises(DataError, match="one object per image.*image 1 .* 2 boxes"):
        one_box_each([{"boxes": torch.tensor([[0.0, 0, 4, 4]]), "labels": torch.tensor([1])},
                      {"boxes": torch.tensor([[0.0, 0, 4, 4], [1, 1, 3, 3]]), "labels": torch.tensor([1, 2])}],
                     (8, 8))
