"""DetectionMetric against pycocotools on a few batches, and the records path DDP takes."""

import contextlib
import copy
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from zrenie.tasks.detect.metrics import DetectionMetric

CLASSES = ["circle", "square", "triangle"]


def make_batches(n_batches: int, batch_size: int, seed: int) -> list[tuple[dict, dict]]:
    """(out, batch) pairs: truth boxes of 4-70 px in 96x96 images, detections near them and spurious ones."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for b in range(n_batches):
        targets, detections = [], []
        for _ in range(batch_size):
            k = int(torch.randint(0, 5, (1,), generator=g))
            xy = torch.rand(k, 2, generator=g) * 60
            boxes = torch.cat([xy, xy + 4 + torch.rand(k, 2, generator=g) * 66], 1)
            labels = torch.randint(0, 3, (k,), generator=g)
            crowd = (torch.rand(k, generator=g) < 0.1).long()
            found = torch.cat([boxes + torch.randn(k, 4, generator=g) * 3, torch.rand(3, 4, generator=g).sort(1)
                               .values[:, [0, 2, 1, 3]] * 90])
            found_labels = torch.cat([labels, torch.randint(0, 3, (3,), generator=g)])
            scores = torch.rand(len(found), generator=g)
            order = scores.argsort(descending=True)
            targets.append({"boxes": boxes, "labels": labels, "iscrowd": crowd})
            detections.append({"boxes": found[order], "scores": scores[order], "labels": found_labels[order]})
        out = {"loss": torch.tensor(float(b + 1)), "detections": detections}
        pairs.append((out, {"target": targets, "index": torch.arange(b * batch_size, (b + 1) * batch_size)}))
    return pairs


def pycocotools_of(pairs) -> COCOeval:
    """The COCO files written out by hand from the same tensors, evaluated by pycocotools."""
    images, anns, dets = [], [], []
    for out, batch in pairs:
        for index, truth, found in zip(batch["index"].tolist(), batch["target"], out["detections"]):
            images.append({"id": index + 100})
            for (x1, y1, x2, y2), c, crowd in zip(truth["boxes"].tolist(), truth["labels"].tolist(),
                                                  truth["iscrowd"].tolist()):
                anns.append({"id": len(anns) + 1, "image_id": index + 100, "category_id": c + 10,
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": crowd})
            for (x1, y1, x2, y2), c, s in zip(found["boxes"].tolist(), found["labels"].tolist(),
                                              found["scores"].tolist()):
                dets.append({"image_id": index + 100, "category_id": c + 10, "bbox": [x1, y1, x2 - x1, y2 - y1],
                             "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns,
                        "categories": [{"id": c + 10, "name": n} for c, n in enumerate(CLASSES)]}
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def test_metric_equals_pycocotools():
    pairs = make_batches(3, 8, seed=0)
    metric = DetectionMetric(CLASSES)
    for out, batch in pairs:
        metric.update(out, batch)
    got = metric.compute()
    theirs = pycocotools_of(pairs)
    assert list(got) == metric.names == ["loss", "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar100"]
    np.testing.assert_allclose([got[k] for k in metric.names[1:]], theirs.stats[[0, 1, 2, 3, 4, 5, 8]], atol=1e-6)
    assert got["loss"] == pytest.approx((1 + 2 + 3) / 3)  # equal batch sizes: the mean of batch losses
    precision = theirs.eval["precision"][:, :, :, 0, -1]
    want = [float(np.mean(p[p > -1])) if (p > -1).any() else -1.0 for p in precision.transpose(2, 0, 1)]
    assert list(metric.per_class()) == CLASSES
    np.testing.assert_allclose(list(metric.per_class().values()), want, atol=1e-12)


def test_records_gathered_from_two_processes_give_the_same_numbers():
    pairs = make_batches(3, 4, seed=1)
    single, first, second = DetectionMetric(CLASSES), DetectionMetric(CLASSES), DetectionMetric(CLASSES)
    for i, (out, batch) in enumerate(pairs):
        single.update(out, batch)
        (first if i != 1 else second).update({"detections": out["detections"], "loss": out["loss"]}, batch)
    # what reduce_metric does: sum the states, gather the records, de-duplicate and sort by index
    merged = {r["index"]: r for part in (second.local_records(), first.local_records()) for r in part}
    for key in first.state:
        first.state[key] = first.state[key] + second.state[key]
    first.merge_records([merged[i] for i in sorted(merged)])
    assert first.compute() == pytest.approx(single.compute())


def test_loss_is_weighted_by_images_and_optional():
    pairs = make_batches(2, 3, seed=2)
    metric = DetectionMetric(CLASSES)
    out, batch = pairs[0]
    metric.update(out, batch)  # loss 1, 3 images
    small = {"target": batch["target"][:1], "index": torch.tensor([50])}
    metric.update({"loss": torch.tensor(5.0), "detections": out["detections"][:1]}, small)  # loss 5, 1 image
    metric.update({"detections": pairs[1][0]["detections"]}, pairs[1][1])  # no loss
    assert metric.compute()["loss"] == pytest.approx((3 * 1 + 1 * 5) / 4)
    assert np.isnan(DetectionMetric(CLASSES).compute()["loss"])


def test_mask_ap_equals_pycocotools_segm():
    """Mask R-CNN's `mask_*` numbers: probabilistic masks cut at 0.5, against pycocotools on masks encoded
    here with pycocotools' own `mask.encode` (areas from its `mask.area`)."""
    from pycocotools import mask as mask_utils

    g = torch.Generator().manual_seed(5)
    h = w = 24
    targets, detections, images, anns, dets = [], [], [], [], []
    for i in range(6):
        k = int(torch.randint(1, 4, (1,), generator=g))
        masks = torch.rand(k, h, w, generator=g) < torch.rand(k, 1, 1, generator=g)  # object-sized blobs
        masks[:, :4] = False
        probs = (masks.float() * 0.5 + torch.rand(k, h, w, generator=g) * 0.6).clamp(0, 1)  # 1 in 6 spurious
        labels = torch.randint(0, 3, (k,), generator=g)
        scores = torch.rand(k, generator=g)
        boxes = torch.tensor([[0, 0, w, h]] * k, dtype=torch.float32)
        targets.append({"boxes": boxes, "labels": labels, "masks": masks})
        detections.append({"boxes": boxes, "scores": scores, "labels": labels, "masks": probs})
        images.append({"id": i + 1, "height": h, "width": w})
        for m, c in zip(masks.numpy(), labels.tolist()):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1, "segmentation": rle,
                         "area": float(mask_utils.area(rle)), "iscrowd": 0})
        for p, c, s in zip(probs.numpy(), labels.tolist(), scores.tolist()):
            dets.append({"image_id": i + 1, "category_id": c + 1, "score": s,
                         "segmentation": mask_utils.encode(np.asfortranarray((p > 0.5).astype(np.uint8)))})
    metric = DetectionMetric(CLASSES, masks=True)
    metric.update({"detections": detections}, {"target": targets, "index": torch.arange(6)})
    ours = metric.compute()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns,
                        "categories": [{"id": c + 1, "name": n} for c, n in enumerate(CLASSES)]}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "segm")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert metric.names[-3:] == ["mask_ap", "mask_ap50", "mask_ap75"]
    assert 0.05 < ours["mask_ap"] < 0.95, ours
    assert [ours["mask_ap"], ours["mask_ap50"], ours["mask_ap75"]] == pytest.approx(list(ev.stats[:3]), abs=1e-6)
