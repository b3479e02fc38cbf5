"""The run folder: made only when training starts, never a stub after a failed start, never written into
when it holds someone's files, and every interruption names the command that resumes."""

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
