"""Segmentation metrics over a whole split: torchmetrics and a confusion matrix worked by hand."""

import pytest
import torch
import torch.nn.functional as F

from zrenie.tasks.segment.metrics import SegmentationMetric, confusion_matrix, predictions

IGNORE = 255


def _feed(metric, batches):
    for i, (logits, target) in enumerate(batches):
        index = torch.arange(len(target)) + i * len(target)
        metric.update({"loss": torch.tensor(0.5), "outputs": logits}, {"target": target, "index": index})


def _random_batches(k, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        target = torch.randint(0, k, (2, 6, 5), generator=g)
        target[torch.rand(2, 6, 5, generator=g) < 0.1] = IGNORE
        out.append((torch.randn(2, k, 6, 5, generator=g), target))
    return out


def test_worked_by_hand():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, IGNORE, 0]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 0, 2, 0]]])
    logits = F.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    metric = SegmentationMetric(["bg", "a", "b"])
    _feed(metric, [(logits, target)])
    # valid pixels: 7; confusion rows true, columns predicted:
    # bg: (0->0, 0->1, 0->0) = [2, 1, 0]; a: [0, 2, 0]; b: [1, 0, 1]   (the ignored pixel counts nowhere)
    assert metric.confusion.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    m = metric.compute()
    iou = {"bg": 2 / (2 + 1 + 1), "a": 2 / (2 + 1 + 0), "b": 1 / (1 + 0 + 1)}
    assert m["iou/bg"] == pytest.approx(iou["bg"]) and m["iou/a"] == pytest.approx(iou["a"])
    assert m["miou"] == pytest.approx(sum(iou.values()) / 3)
    dice_a, dice_b = 2 * 2 / (4 + 1), 2 * 1 / (2 + 1)  # object classes only
    assert m["dice"] == pytest.approx((dice_a + dice_b) / 2)
    assert m["pixel_acc"] == pytest.approx(5 / 7)
    assert list(m) == metric.names


@pytest.mark.parametrize("k", [2, 5])
def test_split_totals_equal_torchmetrics(k):
    import torchmetrics.classification as tm
    batches = _random_batches(k, seed=k)
    metric = SegmentationMetric([f"c{i}" for i in range(k)])
    _feed(metric, batches)
    jaccard = tm.MulticlassJaccardIndex(k, average="none", ignore_index=IGNORE)
    f1 = tm.MulticlassF1Score(k, average="none", ignore_index=IGNORE, multidim_average="global")
    acc = tm.MulticlassAccuracy(k, average="micro", ignore_index=IGNORE)
    for logits, target in batches:
        for reference in (jaccard, f1, acc):
            reference.update(predictions(logits), target)
    m = metric.compute()
    per_class = jaccard.compute()
    assert [m[f"iou/c{i}"] for i in range(k)] == pytest.approx(per_class.tolist(), abs=1e-6)
    assert m["miou"] == pytest.approx(per_class.mean().item(), abs=1e-6)  # every class occurs here
    assert m["dice"] == pytest.approx(f1.compute()[1:].mean().item(), abs=1e-6)
    assert m["pixel_acc"] == pytest.approx(acc.compute().item(), abs=1e-6)


def test_not_a_mean_of_batch_means():
    """Two batches of very different sizes of object: the split's IoU is the pooled one."""
    small = torch.zeros(1, 4, 4, dtype=torch.long)
    small[0, 0, 0] = 1
    big = torch.ones(1, 4, 4, dtype=torch.long)
    pred_small = torch.zeros_like(small)  # misses the one object pixel: IoU(object) 0 in this batch
    pred_big = big.clone()  # all right: IoU(object) 1
    metric = SegmentationMetric(["bg", "object"])
    _feed(metric, [(F.one_hot(pred_small, 2).permute(0, 3, 1, 2).float(), small),
                   (F.one_hot(pred_big, 2).permute(0, 3, 1, 2).float(), big)])
    assert metric.compute()["iou/object"] == pytest.approx(16 / 17)  # not (0 + 1) / 2


def test_one_channel_models_predict_the_object_where_the_logit_is_positive():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -0.1]]]])
    assert predictions(logits).tolist() == [[[1, 0], [1, 0]]]
    assert confusion_matrix(predictions(logits), torch.tensor([[[1, 1], [0, 0]]]), 2).tolist() == [[1, 1], [1, 1]]


def test_worst_images_come_first():
    target = torch.zeros(3, 2, 2, dtype=torch.long)
    target[:, 0, 0] = 1
    pred = target.clone()
    pred[1] = 0  # image 1 misses its object
    metric = SegmentationMetric(["bg", "object"], worst=2)
    _feed(metric, [(F.one_hot(pred, 2).permute(0, 3, 1, 2).float(), target)])
    metric.merge_records(metric.local_records())
    worst = metric.examples()
    assert [r["index"] for r in worst][0] == 1 and worst[0]["miou"] == pytest.approx(0.75 / 2)
