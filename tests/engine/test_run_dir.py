"""The run folder: made only when training starts, never a stub after a failed start, never written into
when it holds someone's files, and every interruption names the command that resumes."""

from pathlib import Path

import pytest
import torch

import zrenie
from zrenie.engine.trainer import NonFiniteLossError, TrainingInterrupted
from zrenie.errors import RunDirError


def test_a_start_that_fails_before_any_checkpoint_leaves_no_folder(tiny):
    def poison(info):
        raise RuntimeError("stop in the first step")

    out = tiny("stub")
    with pytest.raises(RuntimeError):
        zrenie.train("classify", callbacks=[poison], **out)
    from pathlib import Path

    assert not Path(out["out"]).exists()
    assert zrenie.train("classify", **out)["test"]  # the same command now just works


def test_a_nan_in_the_first_epoch_removes_what_it_wrote(tiny, tmp_path):
    from pathlib import Path

    out = tiny("nan1")
    Path(out["out"]).mkdir()  # an empty folder the user made

    def poison(info):
        raise NonFiniteLossError("simulated")

    with pytest.raises(NonFiniteLossError):
        zrenie.train("classify", callbacks=[poison], **out)
    assert Path(out["out"]).is_dir() and not any(Path(out["out"]).iterdir())


def test_a_folder_with_the_users_files_is_refused_unless_overwrite(tiny, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirError, match="not a zrenie run.*thesis.tex.*overwrite=true"):
        zrenie.train("classify", **tiny("x", out=str(folder)))
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]
    zrenie.train("classify", **tiny("x", out=str(folder), overwrite=True))
    assert (folder / "thesis.tex").read_text() == "precious" and (folder / "best.pt").is_file()


def test_a_finished_run_is_refused_with_a_resume_command_that_works(tiny):
    out = tiny("done", epochs=1)
    zrenie.train("classify", **out)
    with pytest.raises(RunDirError, match=r"`zrenie classify train resume=.*done`"):
        zrenie.train("classify", **out)


def test_ctrl_c_in_the_test_pass_names_the_command_that_finishes_it(tiny, monkeypatch):
    import zrenie.api as api

    out = tiny("testpass", epochs=1)
    original = api._finish
    monkeypatch.setattr(api, "_finish", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(TrainingInterrupted, match=r"test pass.*`zrenie classify train resume="):
        zrenie.train("classify", **out)
    monkeypatch.setattr(api, "_finish", original)
    resumed = zrenie.train("classify", resume=out["out"], progress=False)  # nothing left to train: tests, reports
    assert resumed["test"]["acc1"] > 0 and torch.load(f"{out['out']}/best.pt", weights_only=True)


class Killed(BaseException):
    """A crash at a chosen point of the end-of-epoch writes (nothing after it runs)."""


@pytest.mark.parametrize("epoch", [2, 3], ids=["middle-epoch", "final-epoch"])
@pytest.mark.parametrize("stage", ["before best.pt", "before metrics.csv", "before last.pt"])
def test_a_kill_inside_the_end_of_epoch_writes_loses_nothing(tiny, monkeypatch, stage, epoch):
    """Whatever the end of an epoch managed to write, resume ends with every metrics row and the test
    metrics of an uninterrupted run (last.pt, written last, is the commit point: with last.pt written first,
    a kill at the final epoch left a stale best.pt that the resumed run then tested)."""
    import csv

    import zrenie.engine.logging as logging_mod
    import zrenie.engine.trainer as trainer_mod

    def rows(run):
        with open(f"{run}/metrics.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in csv.DictReader(f)]

    reference = zrenie.train("classify", **tiny("ref", epochs=3))
    out = tiny("killed", epochs=3)
    real_save, real_log = trainer_mod.save_checkpoint, logging_mod.RunLogger.log_epoch

    def save(state, path):
        if state["epoch"] == epoch and (stage, path.name) in (("before best.pt", "best.pt"),
                                                               ("before last.pt", "last.pt")):
            raise Killed
        return real_save(state, path)

    def log_epoch(self, row):
        if row["epoch"] == epoch and stage == "before metrics.csv":
            raise Killed
        return real_log(self, row)

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save)
    monkeypatch.setattr(logging_mod.RunLogger, "log_epoch", log_epoch)
    with pytest.raises(Killed):
        zrenie.train("classify", **out)
    monkeypatch.undo()
    (Path(out["out"]) / ".last.pt.leftover.tmp").write_bytes(b"half a checkpoint")
    resumed = zrenie.train("classify", resume=out["out"], progress=False)
    assert rows(out["out"]) == rows(reference["run_dir"])
    assert resumed["test"] == reference["test"]
    assert not list(Path(out["out"]).glob(".*.tmp"))


def test_resume_restores_a_metrics_row_that_a_kill_lost(tiny):
    """A last.pt whose epoch has no row in metrics.csv (killed by an older release between the two) gets it back."""
    import csv

    out = tiny("lostrow", epochs=1)
    zrenie.train("classify", **out)
    csv_path = Path(out["out"]) / "metrics.csv"
    header = csv_path.read_text().splitlines()[0]
    csv_path.write_text(header + "\n")  # the row is gone
    zrenie.train("classify", resume=out["out"], epochs=2, progress=False)
    with open(csv_path, newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
