import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, top_k_accuracy_score

from zrenie.tasks.classify.metrics import ClassificationMetric


@pytest.mark.parametrize("num_classes", [3, 10])
def test_metrics_match_scikit_learn_over_batches(num_classes):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(257, num_classes, generator=g)
    targets = torch.randint(0, num_classes, (257,), generator=g)
    logits[targets == 0, 0] += 2  # some signal, so accuracies are not all near chance
    metric = ClassificationMetric(num_classes)
    for chunk in range(0, 257, 64):
        lg, tg = logits[chunk:chunk + 64], targets[chunk:chunk + 64]
        metric.update({"outputs": lg, "loss": F.cross_entropy(lg, tg)}, {"target": tg})
    got = metric.compute()
    y, p = targets.numpy(), logits.argmax(1).numpy()
    assert got["acc1"] == pytest.approx(accuracy_score(y, p))
    assert got["mean_class_acc"] == pytest.approx(balanced_accuracy_score(y, p))
    k = min(5, num_classes)
    key = "acc5" if k == 5 else f"acc{k}"
    assert got[key] == pytest.approx(top_k_accuracy_score(y, logits.numpy(), k=k, labels=np.arange(num_classes)))
    assert got["loss"] == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)
    np.testing.assert_array_equal(metric.confusion.numpy(), confusion_matrix(y, p, labels=range(num_classes)))


def test_state_sums_like_a_distributed_all_reduce():
    """Two shards' summed states compute the same figures as one pass over everything."""
    g = torch.Generator().manual_seed(1)
    logits, targets = torch.randn(100, 7, generator=g), torch.randint(0, 7, (100,), generator=g)
    whole, a, b = ClassificationMetric(7), ClassificationMetric(7), ClassificationMetric(7)
    loss = torch.tensor(0.5)
    whole.update({"outputs": logits, "loss": loss}, {"target": targets})
    a.update({"outputs": logits[:37], "loss": loss}, {"target": targets[:37]})
    b.update({"outputs": logits[37:], "loss": loss}, {"target": targets[37:]})
    for k in a.state:
        a.state[k] += b.state[k]
    assert a.compute() == pytest.approx(whole.compute())


def test_an_absent_class_has_no_accuracy_and_does_not_count_in_the_mean():
    """Class 2 never occurs: its recall is undefined (NaN), not 0, and the mean is over classes 0 and 1."""
    logits = torch.tensor([[3.0, 0, 0], [3.0, 0, 0], [0, 3.0, 0], [3.0, 0, 0]])
    targets = torch.tensor([0, 0, 1, 1])
    metric = ClassificationMetric(3)
    metric.update({"outputs": logits, "loss": torch.tensor(0.0)}, {"target": targets})
    per_class = metric.per_class_accuracy()
    assert per_class[:2].tolist() == [1.0, 0.5] and per_class[2].isnan()
    assert metric.compute()["mean_class_acc"] == pytest.approx(0.75)


def test_mistakes_are_the_most_confident_wrong_predictions_by_index():
    logits = torch.tensor([[0.0, 5.0], [0.0, 1.0], [9.0, 0.0], [0.0, 3.0]])
    metric = ClassificationMetric(2, mistakes=2)
    metric.update({"outputs": logits, "loss": torch.tensor(0.0)},
                  {"target": torch.tensor([0, 0, 0, 1]), "index": torch.tensor([10, 11, 12, 13])})
    metric.merge_records(metric.local_records())
    assert [(r["index"], r["true"], r["pred"]) for r in metric.examples()] == [(10, 0, 1), (11, 0, 1)]
