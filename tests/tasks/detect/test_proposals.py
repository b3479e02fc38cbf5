"""`zrenie detect proposals` on three tiny images: recall recomputed with torchvision's box_iou, files, bad keys."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
from torchvision.ops import box_iou as tv_box_iou

from zrenie.errors import ConfigError, DataError
from zrenie.ops import selective_search
from zrenie.tasks.detect.proposals import PROPOSALS, first_hits, proposals_config, recall_curve, run_proposals

ARGS = ["data=shapes", "data.size=32", "data.num_samples=20", "num_images=3", "scale=50", "strategies=ctsf"]


def test_run_measures_recall_as_torchvision_iou_does(tmp_path):
    cfg = proposals_config([*ARGS, f"out={tmp_path}"])
    result = run_proposals(cfg, say=lambda _: None, progress=False)
    assert result["images"] == 3
    from zrenie.data.catalog import open_splits

    test = open_splits(cfg.data, target="boxes").test
    found = {0.5: [], 0.7: []}  # per true box, the number of proposals needed (None: never covered)
    for i in range(3):
        image, target = test[i]
        boxes = selective_search(image, scale=[50.0], strategies=["ctsf"])
        iou = tv_box_iou(torch.as_tensor(target["boxes"]).float(), boxes)
        for t in found:
            for row in iou:
                hit = (row >= t).nonzero()
                found[t].append(int(hit[0]) + 1 if len(hit) else None)
    assert result["boxes"] == len(found[0.5])
    for n in (1, 5, len(result["rows"])):
        for t, needed in found.items():
            expected = sum(k is not None and k <= n for k in needed) / len(needed)
            assert result["rows"][n - 1][f"recall@{t}"] == pytest.approx(expected)
    with open(tmp_path / "proposals.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result["rows"]) and float(rows[-1]["recall@0.5"]) == result["rows"][-1]["recall@0.5"]
    assert (tmp_path / "proposals_recall.png").stat().st_size > 1000


def test_first_hits_and_recall_curve_match_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(40, 2, generator=g) * 20
    boxes = torch.cat([xy, xy + 2 + torch.rand(40, 2, generator=g) * 10], dim=1)
    truth, proposals = boxes[:6], boxes[6:]
    ranks = first_hits(truth, proposals, 0.3)
    iou = tv_box_iou(truth, proposals)
    for g_idx, rank in enumerate(ranks.tolist()):
        expected = next((p for p in range(len(proposals)) if iou[g_idx, p] >= 0.3), -1)
        assert rank == expected
    curve = recall_curve(ranks, 10)
    for n in range(1, 11):
        assert curve[n - 1].item() == pytest.approx(sum(0 <= r < n for r in ranks.tolist()) / 6)
    assert -1 in ranks.tolist() and len(set(ranks.tolist())) > 2  # the case of a box never hit is exercised
    assert first_hits(truth, proposals[:0], 0.5).tolist() == [-1] * 6  # no proposals: never found


def test_verb_prints_the_table(tmp_path, capsys):
    assert PROPOSALS.run(SimpleNamespace(args=[*ARGS, "num_images=1", f"out={tmp_path}"]), None) == 0
    out = capsys.readouterr().out
    assert "recall@0.5" in out and str(tmp_path / "proposals.csv") in out


@pytest.mark.parametrize("args, error, match", [
    (["nmu_images=3"], ConfigError, "nmu_images"),
    (["num_images=0"], ConfigError, "num_images"),
    (["scale=0"], ConfigError, "scale"),
    (["data=digits"], DataError, "boxes"),
])
def test_bad_keys_are_one_line(tmp_path, args, error, match):
    with pytest.raises(error, match=match):
        run_proposals(proposals_config([*ARGS, f"out={tmp_path}", *args]), say=lambda _: None, progress=False)

