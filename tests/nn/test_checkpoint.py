"""Checkpoint files: the previous release's version 1 run still loads, evaluates and resumes; files that
are not zrenie checkpoints or come from a newer zrenie are one-line errors; models rebuild from their
stored builder and kwargs; `load_run` hands out cached read-only handles and leaves process state alone."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

import zrenie
from zrenie.errors import CheckpointError, ConfigError
from zrenie.nn.checkpoint import build_from_spec, load_checkpoint, load_run
from zrenie.registry import MODELS

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run"
DIGITS = [str(i) for i in range(10)]


@pytest.fixture
def v1_copy(tmp_path):
    """The version 1 run folder, copied: tests never write into tests/fixtures."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "v1_run"))


def _raw(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


# --- version 1 files ----------------------------------------------------------------------------------


def test_v1_checkpoint_loads_as_version_2():
    raw = _raw(FIXTURE / "best.pt")
    assert raw["version"] == 1 and "models" not in raw  # the reference really is the old flat layout
    state = load_checkpoint(FIXTURE / "best.pt")
    assert state["version"] == 2 and state["format"] == "zrenie-checkpoint" and state["task"] == "classify"
    for section in ("models", "optimizers", "schedulers", "scalers", "ema"):
        assert list(state[section]) == ["model"], section
    spec = state["models"]["model"]
    assert spec["builder"] == "simple_cnn"
    assert spec["kwargs"] == {"num_classes": 10, "in_channels": 1, "width": 4}
    _assert_same_tensors(spec["state"], raw["model"])
    assert state["ema"]["model"]["updates"] == raw["ema"]["updates"]
    _assert_same_tensors(state["ema"]["model"]["weights"], raw["ema"]["weights"])
    # EMA weights are not the raw weights (otherwise the line above would not tell them apart).
    assert any(not torch.equal(spec["state"][k], raw["ema"]["weights"][k]) for k in spec["state"]
               if spec["state"][k].is_floating_point())
    assert state["optimizers"]["model"].keys() == raw["optimizer"].keys()
    assert state["preprocess"] == raw["meta"]
    assert (state["epoch"], state["best"]) == (raw["epoch"], raw["best"])


def test_v1_run_evaluates_to_the_old_release_metrics(v1_copy):
    expected = json.loads((FIXTURE / "results.json").read_text())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = zrenie.evaluate(v1_copy)
    assert result["metrics"].keys() == expected.keys()
    for k, v in expected.items():
        assert result["metrics"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    # The stored `tta: flip` was applied: the result carries the comparison with tta none.
    assert "metrics_without_tta" in result and result["notes"][0].startswith("tta flip vs none")
    notices = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert any("'tta' is now 'classify.tta'" in m for m in notices), notices


def test_v1_run_resumes_and_writes_version_2(v1_copy):
    first_row = (FIXTURE / "metrics.csv").read_text().splitlines()[1]
    v1_weights = _raw(FIXTURE / "last.pt")["model"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        zrenie.train("classify", resume=str(v1_copy), epochs=2, progress=False, tensorboard=False, report=False)
    state = _raw(v1_copy / "last.pt")
    assert state["version"] == 2 and state["epoch"] == 2
    assert state["models"]["model"]["builder"] == "simple_cnn"
    new_weights = state["models"]["model"]["state"]
    assert new_weights.keys() == v1_weights.keys()
    assert any(not torch.equal(new_weights[k], v1_weights[k]) for k in new_weights)  # epoch 2 trained
    # The stored config now holds the renamed keys at their new places, with the old values.
    own = state["config"]["classify"]
    assert (own["tta"], own["label_smoothing"], own["mixup"]) == ("flip", 0.1, 0.2)
    assert "tta" not in state["config"] and "label_smoothing" not in state["config"]["optim"]
    rows = (v1_copy / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert rows[1] == first_row  # epoch 1 is the old release's row, kept as it was


# --- files that are refused ---------------------------------------------------------------------------


def test_newer_version_is_refused(tmp_path):
    state = _raw(FIXTURE / "best.pt")
    state["version"] = 3
    path = tmp_path / "future.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "newer" in msg and "\n" not in msg and str(path) in msg


def test_plain_torch_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 1}, path)
    with pytest.raises(CheckpointError, match="not a zrenie checkpoint") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


# --- build_from_spec ----------------------------------------------------------------------------------


def test_builder_validation_is_a_config_error():
    with pytest.raises(ConfigError, match="depth") as err:
        build_from_spec("resnet_cifar", {"depth": 21})
    assert "21" in str(err.value)
    build_from_spec("resnet_cifar", {"depth": 20, "width": 4})  # 6n+2 is accepted


def test_unknown_builder_option_is_a_config_error():
    with pytest.raises(ConfigError, match="does not take these options") as err:
        build_from_spec("simple_cnn", {"nope": 1})
    assert "nope" in str(err.value)


@pytest.fixture
def typeerror_builder():
    name = "test_builder_typeerror"

    def builder(**kwargs):
        raise TypeError("boom")

    MODELS.register(name)(builder)
    yield name
    MODELS._builders.pop(name, None)  # keep the shared registry as other tests expect it
    MODELS._tags.pop(name, None)


def test_typeerror_inside_a_builder_surfaces_unchanged(typeerror_builder):
    with pytest.raises(TypeError) as err:
        build_from_spec(typeerror_builder, {"anything": 1})
    assert type(err.value) is TypeError and str(err.value) == "boom"


# --- load_run -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "digits"
    zrenie.train("classify", data="digits", epochs=1, out=str(out), progress=False, tensorboard=False,
                 report=False, **{"data.batch_size": 64, "model.width": 8})
    return out


def test_load_run_gives_a_read_only_handle(tiny_run):
    handle = load_run(tiny_run)
    assert handle.task == "classify" and handle.classes == DIGITS
    assert list(handle.models) == ["model"]
    for model in handle.models.values():
        assert not any(m.training for m in model.modules())
        params = list(model.parameters())
        assert params and not any(p.requires_grad for p in params)


def test_load_run_is_cached_until_the_file_changes(tiny_run):
    first = load_run(tiny_run)
    assert load_run(tiny_run) is first
    best = tiny_run / "best.pt"
    st = best.stat()
    os.utime(best, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    second = load_run(tiny_run)
    assert second is not first
    assert load_run(tiny_run) is second
    a, b = first.model.state_dict(), second.model.state_dict()
    _assert_same_tensors(a, b)  # the same file, read again


@pytest.fixture
def restore_process_state():
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.get_rng_state(), torch.get_num_threads(), torch.get_default_dtype())
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.set_rng_state(saved[2])
    torch.set_num_threads(saved[3])
    torch.set_default_dtype(saved[4])


def _fresh_copy(run, tmp_path):
    """best.pt under a path no handle is cached for, so that load_run really reads it and builds the model
    (`cache=False` only skips storing the handle; a cached one is still returned)."""
    return Path(shutil.copy(run / "best.pt", tmp_path / "best.pt"))


@pytest.mark.parametrize("deterministic", [False, True])
def test_load_run_leaves_flags_threads_and_dtype_alone(tiny_run, tmp_path, restore_process_state, deterministic):
    path = _fresh_copy(tiny_run, tmp_path)
    # States other than the defaults, so that a reset to the defaults would show too.
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(3)
    torch.set_default_dtype(torch.float64)
    before = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), torch.get_default_dtype())
    load_run(path, cache=False)
    after = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), torch.get_default_dtype())
    assert after == before


def test_load_run_leaves_the_rng_alone(tiny_run, tmp_path, restore_process_state):
    path = _fresh_copy(tiny_run, tmp_path)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    load_run(path, cache=False)
    assert torch.equal(torch.get_rng_state(), before)
