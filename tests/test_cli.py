"""The CLI end to end on tiny runs, and every bad input as one line with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zrenie.cli import main

from unsafe_payloads import payloads

TINY = ["data=digits", "data.batch_size=64", "model.width=8", "epochs=1", "progress=false", "tensorboard=false"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "zrenie", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits"
    assert main(["classify", "train", *TINY, f"out={out}"]) == 0
    return out


def test_train_writes_run_and_report(trained, capsys):
    assert (trained / "report.html").is_file() and (trained / "best.pt").is_file()
    assert "epochs: 1" in (trained / "config.yaml").read_text()


def test_eval_prints_test_metrics(trained, capsys):
    assert main(["classify", "eval", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "acc1" in out and "acc5" in out


def test_predict_table_and_json(trained, tmp_path, capsys):
    rgb = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(rgb)
    gray = tmp_path / "g.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(gray)
    out_json = tmp_path / "pred.json"
    assert main(["classify", "predict", str(trained), str(rgb), str(gray), "--json", str(out_json)]) == 0
    preds = json.loads(out_json.read_text())
    assert [len(p["top"]) for p in preds] == [5, 5]
    for p in preds:
        probs = [t["prob"] for t in p["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert "probability" in capsys.readouterr().out


def test_list_commands(capsys):
    assert main(["list", "models"]) == 0
    assert {"simple_cnn", "resnet_cifar"} <= set(capsys.readouterr().out.split())
    assert main(["list", "datasets"]) == 0
    assert {"digits", "shapes", "cifar10", "mnist", "image_folder"} <= set(capsys.readouterr().out.split())


def test_python_dash_m_and_help():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "zrenie classify train" in proc.stdout


def _assert_one_line_error(proc, pattern):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert pattern in lines[0]


@pytest.mark.parametrize("args, pattern", [
    (["epochz=3"], "unknown config key 'epochz'"),
    (["epochs=three"], "config key 'epochs': expected int"),
    (["data=cifar10", "data.root=/nonexistent/cifar"], "/nonexistent/cifar does not exist"),
    (["data=image_folder"], "needs data.root"),
    (["model=no_such_net"], "unknown model 'no_such_net'"),
    (["model=alexnet", "model.width=null"], "alexnet: input 8x8 is smaller than the minimum 63x63; pass small_input=true for small images"),
    (["model=resnet18", "model.kwargs.depth=3"], "does not take these options"),
    (["model=resnet_cifar", "model.kwargs.depth=21"], "depth must be 6n+2"),
])
def test_bad_train_input(tmp_path, args, pattern, capsys, recwarn):
    # In process (the entry point's own start-up is covered by the tests that run `python -m zrenie`): the
    # exit code and stderr are main()'s, and no warning may come along with the one line.
    code = main(["classify", "train", *TINY, f"out={tmp_path / 'r'}", *args])
    captured = capsys.readouterr()
    _assert_one_line_error(subprocess.CompletedProcess([], code, captured.out, captured.err), pattern)
    assert not [str(w.message) for w in recwarn.list]
    assert not (tmp_path / "r").exists()  # a run that never started leaves nothing behind


def test_existing_run_directory_is_refused_and_untouched(trained):
    before = (trained / "best.pt").read_bytes()
    proc = run_cli("classify", "train", *TINY, f"out={trained}")
    _assert_one_line_error(proc, "already holds a run")
    assert (trained / "best.pt").read_bytes() == before


def test_predict_on_non_image(trained, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    _assert_one_line_error(run_cli("classify", "predict", str(trained), str(text)), "not a readable image")
    _assert_one_line_error(run_cli("classify", "predict", str(trained), str(tmp_path / "missing.png")),
                           "image not found")


def test_checkpoint_of_another_task_or_model(trained, tmp_path):
    state = torch.load(trained / "best.pt", weights_only=True)
    state["task"] = "detect"
    other = tmp_path / "other.pt"
    torch.save(state, other)
    _assert_one_line_error(run_cli("classify", "eval", str(other)), "checkpoint of task 'detect'")
    # Resuming with another architecture: the weights do not fit, nothing is written.
    before = (trained / "last.pt").read_bytes()
    proc = run_cli("classify", "train", f"resume={trained}", "model=resnet_cifar", "epochs=2")
    _assert_one_line_error(proc, "weights do not fit this model")
    assert (trained / "last.pt").read_bytes() == before



def test_checkpoint_with_pickled_object_is_refused(trained, tmp_path):
    marker = tmp_path / "MARKER"
    for name, payload in payloads(marker):
        name += ".pt"
        state = torch.load(trained / "best.pt", weights_only=True)
        state["payload"] = payload  # needs full unpickling to load
        evil = tmp_path / name
        torch.save(state, evil)
        _assert_one_line_error(run_cli("classify", "eval", str(evil)), "refused")
        assert not marker.exists()  # the command was never run


def test_export_safetensors_round_trips_the_weights(trained, tmp_path, capsys):
    from safetensors.torch import load_file, safe_open

    out = tmp_path / "w.safetensors"
    assert main(["classify", "export", str(trained), str(out)]) == 0
    weights = load_file(out)
    state = torch.load(trained / "best.pt", weights_only=True)["models"]["model"]["state"]
    assert weights.keys() == state.keys()
    assert all(torch.equal(weights[k], state[k]) for k in weights)
    with safe_open(out, "pt") as f:
        assert f.metadata()["model_name"] == "simple_cnn"
        assert json.loads(f.metadata()["models"])["model"]["builder"] == "simple_cnn"
    _assert_one_line_error(run_cli("classify", "export", str(trained), str(tmp_path / "w.bin")),
                           "must end in .safetensors")


def test_report_verb_rewrites_the_report(trained, capsys):
    (trained / "report.html").unlink()
    assert main(["classify", "report", str(trained)]) == 0
    assert (trained / "report.html").is_file() and "report:" in capsys.readouterr().out


def test_shipped_recipes_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    """Recipes ship inside the package (as Ultralytics ships its dataset YAMLs): `zrenie list recipes` and
    `zrenie classify train digits_cnn` work outside the repository."""
    import yaml

    from zrenie.config import build_config, list_recipes

    monkeypatch.chdir(tmp_path)
    assert {"digits_cnn", "hw2_cifar10_cnn", "transfer_demo"} <= set(list_recipes())
    by_name = build_config("digits_cnn")
    shipped = yaml.safe_load(open(Path(zrenie_src()) / "recipes" / "digits_cnn.yaml"))
    assert by_name.epochs == shipped["epochs"] and by_name.classify.label_smoothing == 0.1
    proc = subprocess.run([sys.executable, "-m", "zrenie", "list", "recipes"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0 and "digits_cnn" in proc.stdout
    _assert_one_line_error(run_cli("classify", "train", "no_such_recipe"), "expected key=value or a recipe")


def zrenie_src():
    import zrenie

    return Path(zrenie.__file__).parent


def test_eval_with_tta_prints_the_gain(trained, capsys):
    assert main(["classify", "eval", str(trained), "classify.tta=ten_crop"]) == 0
    assert "tta ten_crop vs none: acc1 " in capsys.readouterr().out


def test_compare_runs(trained, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["classify", "train", *TINY, "epochs=2", f"out={other}"]) == 0
    capsys.readouterr()
    out = tmp_path / "cmp.png"
    assert main(["compare", str(trained), str(other), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test/acc1" in text and "val/acc1" in text and out.is_file()
    _assert_one_line_error(run_cli("compare", str(tmp_path)), "is not a run directory")


def test_transfer_study_runs_every_mode(tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text(f"""
pretrain: {{data: {{name: digits, subset_classes: [0, 1, 2, 3, 4]}}, model: {{name: simple_cnn, width: 8}}}}
target: {{data: {{name: digits, subset_classes: [5, 6, 7, 8, 9]}}, model: {{name: simple_cnn, width: 8}}}}
modes: [scratch, frozen, full]
seeds: [0, 1]
out: {tmp_path / "study"}
""")
    assert main(["classify", "transfer", str(study), "epochs=1", "progress=false", "tensorboard=false",
                 "report=false", "data.batch_size=64"]) == 0
    out = capsys.readouterr().out
    for row in ("| pretrain (source task) |", "| scratch (random init) |", "| frozen feature extractor |",
                "| fine-tune everything |"):
        assert row in out and row in (tmp_path / "study" / "summary.md").read_text()
    phases = [line for line in out.splitlines() if line.startswith("transfer study: seed")]
    assert len(phases) == 8 and "phase 3/4: frozen feature extractor" in phases[2]
    for seed in (0, 1):  # one folder of runs per seed, each with its own test results
        assert (tmp_path / "study" / f"seed{seed}" / "full" / "results.json").is_file()
    assert (tmp_path / "study" / "transfer_curves.png").is_file()


def test_weights_of_another_architecture_are_one_line(trained, tmp_path):
    proc = run_cli("classify", "train", *TINY, f"out={tmp_path / 'r'}", "model=resnet_cifar", "model.width=null",
                   f"model.weights={trained / 'best.pt'}")
    _assert_one_line_error(proc, "weights are for another architecture (")
    assert not (tmp_path / "r").exists()


def test_batchnorm_off_is_a_recipe_key(tmp_path):
    assert main(["classify", "train", *TINY, f"out={tmp_path / 'nobn'}", "model.batchnorm=false"]) == 0
    state = torch.load(tmp_path / "nobn" / "best.pt", weights_only=True)
    assert not any("running_mean" in k for k in state["models"]["model"]["state"])


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    import signal
    import time

    out = tmp_path / "sigint"
    # A child of a shell's background job starts with SIGINT ignored, and Python then leaves it ignored:
    # restore the default, as a terminal's Ctrl-C finds it.
    proc = subprocess.Popen([sys.executable, "-m", "zrenie", "classify", "train", *TINY, "epochs=200",
                             "data.batch_size=16", f"out={out}"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out / "metrics.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and f"resume={out}" in stderr
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] >= 1
    assert main(["classify", "train", f"resume={out}", "epochs=2", "progress=false"]) == 0
