"""Classification report sections, checked against scikit-learn on random labels."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import f1_score, confusion_matrix, precision_score, recall_score

from zrenie.errors import ShapeError
from zrenie.report.html import write_report
from zrenie.report.plots import plot_confusion_matrix
from zrenie.tasks.classify import viz
from zrenie.tasks.classify.viz import classification_sections, per_class_accuracy

NUM_CLASSES = 6


@pytest.fixture
def labels():
    """Random labels where class 5 never occurs as a true label (its accuracy is undefined)."""
    rng = np.random.default_rng(0)
    true = rng.integers(0, NUM_CLASSES - 1, size=300)
    pred = np.where(rng.random(300) < 0.6, true, rng.integers(0, NUM_CLASSES, size=300))
    return true, pred


def _misclassified(n: int, channels: int = 1):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, channels, 8, 8, generator=generator)
    true = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    pred = (true + 1) % NUM_CLASSES
    confidence = torch.rand(n, generator=generator)
    return images, true, pred, confidence


def test_per_class_accuracy_matches_sklearn(labels):
    true, pred = labels
    cm = confusion_matrix(true, pred, labels=range(NUM_CLASSES))
    accuracy, precision, support = per_class_accuracy(torch.from_numpy(cm))
    expected_recall = recall_score(true, pred, labels=range(NUM_CLASSES), average=None, zero_division=np.nan)
    expected_precision = precision_score(true, pred, labels=range(NUM_CLASSES), average=None, zero_division=np.nan)
    np.testing.assert_allclose(accuracy.numpy(), expected_recall, equal_nan=True)
    np.testing.assert_allclose(precision.numpy(), expected_precision, equal_nan=True)
    np.testing.assert_array_equal(support.numpy(), np.bincount(true, minlength=NUM_CLASSES))
    assert math.isnan(accuracy[NUM_CLASSES - 1])


def test_sections_from_sklearn_confusion(tmp_path, labels):
    true, pred = labels
    cm = confusion_matrix(true, pred, labels=range(NUM_CLASSES))
    classes = [f"c{i}" for i in range(NUM_CLASSES)]
    metrics = {"acc1": float((true == pred).mean()), "acc5": 1.0, "loss": 0.75}
    sections = classification_sections(tmp_path, metrics, classes, torch.from_numpy(cm), _misclassified(10))

    assert [s.title for s in sections] == [
        "Confusion matrix", "Per-class precision, recall and F1", "Misclassified test images",
    ]
    rows = sections[1].table
    expected = recall_score(true, pred, labels=range(NUM_CLASSES), average=None, zero_division=np.nan)
    expected_f1 = f1_score(true, pred, labels=range(NUM_CLASSES), average=None, zero_division=0)
    assert [r["class"] for r in rows] == classes
    for row, want, want_f1 in zip(rows[:-1], expected[:-1], expected_f1[:-1]):
        assert row["recall (accuracy)"] == pytest.approx(want)
        assert row["f1"] == pytest.approx(want_f1)
    assert rows[-1]["recall (accuracy)"] is None and rows[-1]["support"] == 0
    assert sum(r["correct"] for r in rows) == int((true == pred).sum())

    # The picture is the one drawn from the matrix passed in, pixel for pixel.
    reference = plot_confusion_matrix(cm, classes, tmp_path / "reference.png")
    with Image.open(tmp_path / "confusion_matrix.png") as got, Image.open(reference) as want:
        assert np.array_equal(np.asarray(got), np.asarray(want))
    with Image.open(tmp_path / "misclassified.png") as im:
        assert im.size[0] > 300

    page = write_report(tmp_path, "digits", sections).read_text()
    # The test metrics belong to the run report's summary, shown once there, not repeated here.
    assert "Test metrics" not in page
    assert not any(s.table == metrics for s in sections)
    assert 'src="confusion_matrix.png"' in page and 'src="misclassified.png"' in page


def test_misclassified_grid_keeps_the_32_most_confident(tmp_path, monkeypatch):
    drawn = {}

    def fake_grid(images, captions, out_png, ncols=8):
        drawn.update(images=images, captions=captions)
        out_png.write_bytes(b"")
        return out_png

    monkeypatch.setattr(viz, "image_grid", fake_grid)
    images, true, pred, confidence = _misclassified(40, channels=3)
    classes = [f"c{i}" for i in range(NUM_CLASSES)]
    sections = classification_sections(tmp_path, {}, classes, torch.eye(NUM_CLASSES), (images, true, pred, confidence))

    order = torch.argsort(confidence, descending=True)[:32]
    assert drawn["images"].shape == (32, 3, 8, 8)
    assert torch.equal(drawn["images"], images[order])
    i = int(order[0])
    assert drawn["captions"][0] == f"true c{int(true[i])} / pred c{int(pred[i])} ({float(confidence[i]):.2f})"
    assert sections[-1].text.startswith("32 of 40")


def test_no_misclassified_images(tmp_path):
    classes = ["a", "b"]
    sections = classification_sections(tmp_path, {"acc1": 1.0}, classes, torch.eye(2) * 5, None)
    assert len(sections) == 2
    assert not (tmp_path / "misclassified.png").exists()
    empty = (torch.zeros(0, 1, 8, 8), torch.zeros(0), torch.zeros(0), torch.zeros(0))
    sections = classification_sections(tmp_path, {"acc1": 1.0}, classes, torch.eye(2) * 5, empty)
    assert sections[-1].images == [] and "No misclassified" in sections[-1].text
    assert not (tmp_path / "misclassified.png").exists()


def test_shape_errors(tmp_path):
    with pytest.raises(ShapeError, match=r"\[3, 3\]"):
        classification_sections(tmp_path, {}, ["a", "b", "c"], torch.eye(2), None)
    images, true, pred, confidence = _misclassified(4)
    with pytest.raises(ShapeError, match="same length"):
        classes = [str(i) for i in range(NUM_CLASSES)]
        classification_sections(tmp_path, {}, classes, torch.eye(NUM_CLASSES), (images, true[:3], pred, confidence))
