"""The evaluation loop: modes restored, named sets, records gathered and de-duplicated, compute on rank 0."""

import torch
from torch import nn

from zrenie.engine import evaluate as evaluate_mod
from zrenie.engine.evaluate import evaluate, reduce_metric


class CountingStep:
    def eval_step(self, models, batch):
        return {"n": len(batch["index"]), "set": batch.get("set")}


class Records:
    names = ["n"]

    def __init__(self):
        self.state = {"n": torch.zeros((), dtype=torch.float64)}
        self.sets, self.mine, self.records = [], [], []

    def update(self, out, batch):
        self.state["n"] += out["n"]
        self.sets.append(out["set"])
        self.mine += [{"index": int(i), "value": int(i) * 2} for i in batch["index"]]

    def local_records(self):
        return self.mine

    def merge_records(self, records):
        self.records = records

    def compute(self):
        return {"n": self.state["n"].item(), "records": float(len(self.records))}


def _batches(*index_lists):
    return [{"image": torch.zeros(len(ix), 1), "index": torch.tensor(ix)} for ix in index_lists]


def test_models_are_evaluated_in_eval_mode_and_get_their_modes_back():
    model = nn.Sequential(nn.Dropout(0.5))
    model.train()
    seen = []

    class Step(CountingStep):
        def eval_step(self, models, batch):
            seen.append(models["m"].training)
            return super().eval_step(models, batch)

    evaluate({"m": model}, Step(), _batches([0, 1]), Records())
    assert seen == [False] and model.training


def test_named_sets_tag_their_batches():
    metric = Records()
    result = evaluate({}, CountingStep(), {"query": _batches([0, 1]), "gallery": _batches([2], [3, 4])}, metric)
    assert metric.sets == ["query", "gallery", "gallery"] and result["n"] == 5


def test_records_from_every_process_are_deduplicated_and_sorted(monkeypatch):
    """Two processes' records as all_gather_object returns them (one sample seen by both)."""
    metric = Records()
    metric.mine = [{"index": 3, "value": 6}, {"index": 0, "value": 0}]
    other = [{"index": 1, "value": 2}, {"index": 3, "value": 6}]
    monkeypatch.setattr(evaluate_mod.dist, "gather_objects", lambda obj: [obj, other])
    reduce_metric(metric)
    assert [r["index"] for r in metric.records] == [0, 1, 3]


def test_compute_on_main_broadcasts_rank_0s_result(monkeypatch):
    calls = []

    class Expensive(Records):
        compute_on_main = True

        def compute(self):
            calls.append(1)
            return {"n": 1.0}

    monkeypatch.setattr(evaluate_mod.dist, "is_main", lambda: False)
    monkeypatch.setattr(evaluate_mod.dist, "broadcast_object", lambda obj: {"n": 42.0})
    assert evaluate({}, CountingStep(), _batches([0]), Expensive()) == {"n": 42.0}
    assert calls == []  # a process other than rank 0 never computes it
