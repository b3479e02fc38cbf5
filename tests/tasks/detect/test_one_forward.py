"""Validation's one forward pass: `losses_and_detections` equals separate `losses` and `detect` calls, and runs
each built-in detector's forward once."""

import pytest
import torch

import zrenie
from zrenie.tasks.detect.base import losses_and_detections


@pytest.mark.parametrize("name, kwargs", [("centernet", {}), ("ssd", {}), ("yolo", {"version": "v1"}),
                                          ("yolo", {"version": "anchor"}), ("localizer", {})])
def test_one_pass_gives_what_two_passes_give(name, kwargs):
    torch.manual_seed(0)
    model = zrenie.build_model(name, num_classes=3, width=8, **kwargs).eval()
    images = torch.rand(2, 3, 64, 64)
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([2])}]
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        losses, detections = losses_and_detections(model, images, targets, 0.0, 0.5, 20)
        assert len(calls) == 1
        expected_losses = model.losses(images, targets)
        expected = model.detect(images, conf=0.0, iou=0.5, max_det=20)
    assert {k: float(v) for k, v in losses.items()} == pytest.approx({k: float(v) for k, v in expected_losses.items()})
    for got, want in zip(detections, expected):
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(got[key], want[key])
