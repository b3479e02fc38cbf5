"""`zrenie segment study`: every model x loss trained alike, one table and one page, reproducible and resumable."""

import csv
import json

import pytest

import zrenie
from zrenie.cli import main
from zrenie.errors import ConfigError
from zrenie.tasks.segment.study import STUDY, TIMING, run_study
from zrenie.tasks.segment.task import SegmentTask

TINY = {"epochs": 1, "progress": False, "tensorboard": False, "report": False, "threads": 1, "data.num_samples": 24,
        "data.size": 32, "data.batch_size": 8, "model.width": 4, "model.kwargs": {"depth": 2}}
TINY_ARGS = ["epochs=1", "progress=false", "tensorboard=false", "report=false", "threads=1", "data.num_samples=24",
             "data.size=32", "data.batch_size=8", "model.width=4", "model.kwargs.depth=2"]
MODELS, LOSSES = ["unet", "unet_strided"], ["bce", "dice"]


@pytest.fixture
def with_verb(monkeypatch):
    """The CLI with the study verb registered on the segment task."""
    monkeypatch.setattr(SegmentTask, "verbs", {**SegmentTask.verbs, "study": STUDY})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "a"
    lines: list[str] = []
    return run_study(MODELS, LOSSES, zrenie.train, say=lines.append, grid_images=1, out=str(out), **TINY) | {
        "out": out, "lines": lines}


def _rows(path):
    """A CSV table without its wall-time columns, which no two runs share."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in (*TIMING, "time", "images_per_s")}
                for row in csv.DictReader(f)]


def test_every_combination_is_a_run_with_a_row_curves_and_predictions(study):
    out = study["out"]
    assert sum("training into" in line for line in study["lines"]) == 4
    rows = _rows(out / "study.csv")
    assert [(r["model"], r["loss"]) for r in rows] == [(m, l) for m in MODELS for l in LOSSES]
    page = (out / "study.html").read_text()
    for m in MODELS:
        for l in LOSSES:
            run = out / f"{m}-{l}"
            assert (run / "best.pt").is_file() and (run / "study_learning_curves.png").is_file()
            assert f'src="{m}-{l}/study_predictions.png"' in page and (run / "study_predictions.png").is_file()
            results = json.loads((run / "results.json").read_text())  # each row holds its own run's scores
            row = next(r for r in rows if (r["model"], r["loss"]) == (m, l))
            assert float(row["miou"]) == pytest.approx(results["miou"], abs=1e-9)
            assert float(row["dice"]) == pytest.approx(results["dice"], abs=1e-9)
    assert "study_curves.png" in page and (out / "study_curves.png").is_file()
    assert (out / "study.md").read_text().startswith("| model | loss | miou | dice |")


def test_the_same_command_gives_the_same_table_and_skips_finished_runs(study, tmp_path, capsys, with_verb):
    again = tmp_path / "b"
    assert main(["segment", "study", "--grid", "1", f"models={','.join(MODELS)}", f"losses={','.join(LOSSES)}",
                 f"out={again}", *TINY_ARGS]) == 0
    printed = capsys.readouterr().out
    assert "| unet_strided | dice |" in printed and str(again / "study.html") in printed
    assert _rows(again / "study.csv") == _rows(study["out"] / "study.csv")
    for run in ("unet-bce", "unet_strided-dice"):  # the losses too, to the last digit, not only the thresholded scores
        assert _rows(again / run / "metrics.csv") == _rows(study["out"] / run / "metrics.csv")
    (again / "unet-dice" / "results.json").unlink()  # as if stopped after training: resumed, tested again
    lines: list[str] = []
    run_study(["unet"], LOSSES, zrenie.train, say=lines.append, grid_images=1, out=str(again), **TINY)
    assert "unet + bce: finished earlier" in lines[1] and "skipped" in lines[1] and "unet + dice: resuming" in lines[2]
    assert _rows(again / "study.csv") == _rows(study["out"] / "study.csv")[:2]


@pytest.mark.parametrize("args, message", [
    (["models=unet,pspnet"], "unknown segmentation model 'pspnet'; known: "),
    (["losses=dice,hinge"], "unknown segmentation loss 'hinge'; known: ce, wce, bce"),
    (["models=unet", "data=shapes", "losses=dice,bce"], "segment.loss=bce is a binary loss"),
    (["model=segnet"], "the study sets model.name and segment.loss"),
    (["models=unet,segnet"], "model 'segnet' does not take these options"),  # TINY's model.width
])
def test_bad_names_are_one_line_before_anything_trains(args, message, tmp_path, capsys, with_verb):
    assert main(["segment", "study", f"out={tmp_path / 's'}", *TINY_ARGS, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_a_kept_run_of_other_settings_is_refused(study):
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(epochs\)"):
        run_study(MODELS, LOSSES, zrenie.train, out=str(study["out"]), **{**TINY, "epochs": 2})
