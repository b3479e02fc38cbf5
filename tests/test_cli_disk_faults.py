"""A full disk, a read-only mount and a denied permission, injected for real.

The disk faults need a file system the test can fill or make read-only: a tmpfs mounted in a private
mount namespace (`unshare --user --map-root-user --mount`, no privileges needed where user namespaces are
enabled). Where the kernel refuses that, the tests are skipped and say so.
"""

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
import torch

from zrenie.config import atomic_path
from zrenie.errors import WriteError, write_cause
from zrenie.nn.checkpoint import load_checkpoint

TINY = ["data=digits", "data.batch_size=16", "model.width=8", "progress=false", "tensorboard=false",
        "seed=0", "deterministic=true"]
ZRENIE = f"{shlex.quote(sys.executable)} -m zrenie"


def _namespaces_work() -> str | None:
    """None when a tmpfs can be mounted in a private namespace here, else why not."""
    if shutil.which("unshare") is None:
        return "no `unshare` on this machine"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a user namespace here ({probe.stderr.strip() or probe.returncode})"
    return None


needs_tmpfs = pytest.mark.skipif(_namespaces_work() is not None, reason=str(_namespaces_work()))


def _in_namespace(script: str) -> subprocess.CompletedProcess:
    """Runs a bash script in a private user and mount namespace (its mounts vanish with it)."""
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", script],
                          capture_output=True, text=True, timeout=300)


def _one_line(stderr: str, rc: int, *words: str) -> str:
    lines = stderr.strip().splitlines()
    assert rc == 2 and "Traceback" not in stderr and len(lines) >= 1, stderr
    assert all(w in lines[-1] for w in words), stderr
    return lines[-1]


def _train(out, epochs, *extra):
    subprocess.run([sys.executable, "-m", "zrenie", "classify", "train", *TINY, f"epochs={epochs}", f"out={out}",
                    *extra], check=True, capture_output=True)
    return out


def test_torch_save_on_a_full_device_is_recognised_as_a_full_disk():
    """torch.save reports ENOSPC as a RuntimeError from inline_container.cc; the cause is found in its chain."""
    f = open("/dev/full", "wb")  # buffered, as save_checkpoint's file is
    with pytest.raises(RuntimeError) as caught:
        torch.save({"w": torch.zeros(100_000)}, f)
    with pytest.raises(OSError):
        f.close()  # what is left in the buffer fails too
    cause = write_cause(caught.value)
    assert cause is not None and cause.errno == errno.ENOSPC


def test_a_refused_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"the good one")
    with pytest.raises(WriteError, match=rf"^cannot write {target}: no space left on device$"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_bytes() == b"the good one"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    with pytest.raises(ValueError):  # anything else passes through untouched
        with atomic_path(target):
            raise ValueError("not a write problem")


@needs_tmpfs
def test_a_full_disk_mid_run_keeps_the_last_checkpoint_and_resume_finishes_the_same(tmp_path):
    reference = _train(tmp_path / "reference", 2, "report=false")
    size = (reference / "last.pt").stat().st_size
    mnt, after = tmp_path / "mnt", tmp_path / "after_fault"
    mnt.mkdir()
    # room for config.yaml, best.pt and last.pt of the first epoch, not for a third checkpoint
    script = f"""
        mount -t tmpfs -o size={int(size * 2.6) // 4096 * 4096} tmpfs {mnt}
        {ZRENIE} classify train {' '.join(TINY)} epochs=2 report=false out={mnt}/run 2> {tmp_path}/fault.err
        echo $? > {tmp_path}/fault.rc
        cp -a {mnt}/run {after}
        mount -o remount,size=64m {mnt}
        {ZRENIE} classify train resume={mnt}/run 2> {tmp_path}/resume.err
        echo $? > {tmp_path}/resume.rc
        cp {mnt}/run/results.json {mnt}/run/metrics.csv {tmp_path}/
    """
    proc = _in_namespace(script)
    assert proc.returncode == 0, proc.stderr
    stderr = (tmp_path / "fault.err").read_text()
    line = _one_line(stderr, int((tmp_path / "fault.rc").read_text()), "no space left on device",
                     f"{mnt}/run/last.pt is intact", f"zrenie classify train resume={mnt}/run")
    assert line.startswith(f"error: cannot write {mnt}/run/"), line
    assert not list(after.glob(".*.tmp")) and not (after / ".lock").exists()
    state = load_checkpoint(after / "last.pt")  # whole, and the epoch it says
    assert state["epoch"] >= 1
    assert int((tmp_path / "resume.rc").read_text()) == 0, (tmp_path / "resume.err").read_text()
    epochs = [row.split(",")[0] for row in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]
    assert json.loads((tmp_path / "results.json").read_text()) == \
        json.loads((reference / "results.json").read_text())


@needs_tmpfs
def test_every_writer_on_a_read_only_mount_is_one_line_and_writes_nothing(tmp_path):
    run = _train(tmp_path / "run", 1)
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("L", (8, 8), 128).save(image)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    commands = {
        "train": ["classify", "train", *TINY, "epochs=1", f"out={mnt}/new"],
        "resume": ["classify", "train", f"resume={mnt}/run", "epochs=2"],
        "report": ["classify", "report", f"{mnt}/run"],
        "export": ["classify", "export", f"{mnt}/run"],
        "predict": ["classify", "predict", f"{mnt}/run", str(image), "--json", f"{mnt}/p.json"],
    }
    # one interpreter runs every command (as `zrenie` would, through cli.main), saving their start-ups
    runner = tmp_path / "runner.py"
    runner.write_text(f"""
import contextlib, io, json, sys
from zrenie.cli import main
results = {{}}
for name, argv in {commands!r}.items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    results[name] = [rc, err.getvalue()]
json.dump(results, open({str(tmp_path / "results.json")!r}, "w"))
""")
    proc = _in_namespace(f"mount -t tmpfs tmpfs {mnt} && cp -a {run} {mnt}/run && mount -o remount,ro {mnt} && "
                         f"{shlex.quote(sys.executable)} {runner} && ls -A {mnt} {mnt}/run > {tmp_path}/listing")
    assert proc.returncode == 0, proc.stderr
    for name, (rc, stderr) in json.loads((tmp_path / "results.json").read_text()).items():
        _one_line(stderr, rc, "read-only file system", f"cannot write {mnt}")
    listing = (tmp_path / "listing").read_text().split()
    assert "new" not in listing and "p.json" not in listing and "model.safetensors" not in listing
    assert not [name for name in listing if name.endswith(".tmp")]


def test_a_folder_without_write_permission_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    command = [sys.executable, "-m", "zrenie", "classify", "train", *TINY, "epochs=1", f"out={locked}/run"]
    if os.geteuid() == 0:  # root writes anywhere: drop the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and no `setpriv` to drop CAP_DAC_OVERRIDE, so no write can be denied")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    proc = subprocess.run(command, capture_output=True, text=True)
    _one_line(proc.stderr, proc.returncode, f"cannot write {locked}/run: permission denied")
    assert list(locked.iterdir()) == []
