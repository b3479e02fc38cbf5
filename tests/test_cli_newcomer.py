"""A newcomer's first hour through the real `zrenie` entry point: keys, folders to predict, what was loaded,
and files that follow the user's umask."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from zrenie.cli import main

TINY = ["data=digits", "data.batch_size=64", "model.width=8", "epochs=1", "progress=false", "tensorboard=false"]


def zrenie_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "zrenie", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("newcomer") / "digits"
    assert main(["classify", "train", *TINY, f"out={out}"]) == 0
    return out


def test_keys_lists_every_key_with_type_default_and_help():
    from zrenie.config import describe_keys, new_config

    proc = zrenie_cli("classify", "keys")
    assert proc.returncode == 0
    for info in describe_keys(new_config("classify")):
        assert info.key in proc.stdout
    assert "classify.label_smoothing" in proc.stdout and "data.batch_size" in proc.stdout
    only = zrenie_cli("classify", "keys", "optim.*").stdout
    assert "optim.lr" in only and "data.batch_size" not in only
    assert "zrenie classify keys" in zrenie_cli("classify", "train", "--help").stdout


def test_predict_takes_a_folder_and_says_which_checkpoint(trained, tmp_path):
    folder = tmp_path / "new"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        Image.new("L", (8, 8), 120).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    flat = zrenie_cli("classify", "predict", str(trained), str(folder), "--json", "-")
    assert flat.returncode == 0, flat.stderr
    assert [r["image"] for r in json.loads(flat.stdout)] == [str(folder / "a.png"), str(folder / "b.jpg")]
    assert f"checkpoint: {trained / 'best.pt'} (epoch 1" in flat.stderr
    deep = zrenie_cli("classify", "predict", str(trained), str(folder), "-r", "--json", "-")
    assert len(json.loads(deep.stdout)) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = zrenie_cli("classify", "predict", str(trained), str(empty))
    assert proc.returncode == 2 and "no image files in" in proc.stderr and "Traceback" not in proc.stderr


def test_written_files_follow_the_umask(trained, tmp_path):
    """Exports, reports and predictions are for sharing: 0644 under the usual umask, not mkstemp's 0600."""
    old = os.umask(0o022)
    try:
        assert main(["classify", "export", str(trained), str(tmp_path / "w.safetensors")]) == 0
        assert main(["classify", "report", str(trained)]) == 0
        Image.new("L", (8, 8), 120).save(tmp_path / "x.png")
        assert main(["classify", "predict", str(trained), str(tmp_path / "x.png"), "--json",
                     str(tmp_path / "p.json")]) == 0
    finally:
        os.umask(old)
    for path in (tmp_path / "w.safetensors", trained / "report.html", tmp_path / "p.json", trained / "best.pt",
                 trained / "config.yaml", trained / "metrics.csv"):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_every_bad_value_is_one_line_and_writes_nothing(tmp_path, capsys, recwarn):
    # in process: the entry point's start-up is covered by the tests that run `python -m zrenie`
    for args in (["data.batch_size=0"], ["data.size=-3"], ["optim.lr=-1"], ["epochs=0"], ["epochs=abc"]):
        out = tmp_path / args[0].split("=")[0]
        code = main(["classify", "train", *TINY, *args, f"out={out}"])
        stderr = capsys.readouterr().err
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, (args, stderr)
        assert args[0].split("=")[0] in lines[0] and not out.exists()
    assert not [str(w.message) for w in recwarn.list]


def test_a_run_starts_with_a_header_that_says_what_runs(tmp_path):
    proc = zrenie_cli("classify", "train", *TINY, f"out={tmp_path / 'h'}")
    assert proc.returncode == 0, proc.stderr
    header = proc.stderr.split("epoch 1/1")[0]
    assert header.startswith("zrenie classify train")
    for line in ("model   simple_cnn  (", "data    digits: train 1,259, val 179, test 359; image size 8",
                 "device  cpu, AMP off", f"output  {tmp_path / 'h'}"):
        assert line in header, header


def test_image_folder_header_says_where_the_image_size_came_from(tmp_path):
    for cls, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (32, 32), colour).save(tmp_path / "pics" / cls / f"{i}.png")
    proc = zrenie_cli("classify", "train", "data=image_folder", f"data.root={tmp_path / 'pics'}", "model.width=8",
                      "epochs=1", "data.workers=0", "progress=false", "tensorboard=false", "report=false",
                      f"out={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr
    assert "image size 32 (median of" in proc.stderr.split("epoch 1/1")[0]


def _in_process(argv: list[str]) -> tuple[int, str]:
    """(exit code, stdout) of `zrenie ARGV` run by `zrenie.cli.main` in this process."""
    import contextlib
    import io

    from zrenie.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's --help
            code = stop.code or 0
    return code, out.getvalue()


def test_every_command_answers_help_with_examples():
    for args in (["--help"], ["classify", "--help"], ["classify", "train", "--help"], ["classify", "eval", "--help"],
                 ["classify", "predict", "--help"], ["classify", "export", "--help"], ["classify", "keys", "--help"],
                 ["classify", "report", "--help"], ["classify", "transfer", "--help"], ["list", "--help"],
                 ["compare", "--help"], ["imgproc", "--help"]):
        code, out = _in_process(list(args))  # the parser is main()'s; a child per command costs seconds each
        assert code == 0 and "usage" in out, (args, out)
        assert "example" in out, args


def test_out_pointing_at_the_users_files_is_refused_through_the_cli(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    proc = zrenie_cli("classify", "train", *TINY, f"out={folder}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert "not a zrenie run" in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
