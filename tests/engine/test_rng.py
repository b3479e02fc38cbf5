"""Deterministic mode is scoped: the process's settings before a deterministic block (or run) are the
settings after it, and the CLI's warning format is restored after a command."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

import zrenie
from zrenie.cli import main
from zrenie.engine.rng import deterministic_mode


def _settings():
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
            os.environ.get("CUBLAS_WORKSPACE_CONFIG"))


@pytest.fixture
def restore_settings():
    saved = _settings()
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]
    if saved[4] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


def test_on_inside_and_off_again_after(restore_settings):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    before = _settings()
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    assert _settings() == before


def test_a_setting_that_was_on_stays_on(restore_settings):
    torch.use_deterministic_algorithms(True)  # strict: errors, not warnings, on nondeterministic kernels
    before = _settings()
    assert before[:2] == (True, False)
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
    assert _settings() == before


def test_restored_when_the_block_raises(restore_settings):
    torch.use_deterministic_algorithms(False)
    before = _settings()
    with pytest.raises(KeyError, match="inside"):
        with deterministic_mode(True):
            assert torch.are_deterministic_algorithms_enabled()
            raise KeyError("inside")
    assert _settings() == before


def test_disabled_block_changes_nothing(restore_settings):
    torch.use_deterministic_algorithms(False)
    before = _settings()
    with deterministic_mode(False):
        assert _settings() == before
    assert _settings() == before


def test_deterministic_training_run_restores_the_setting(tiny, restore_settings):
    torch.use_deterministic_algorithms(False)
    seen = []
    zrenie.train("classify", callbacks=[lambda info: seen.append(torch.are_deterministic_algorithms_enabled())],
                 **tiny(epochs=1, deterministic=True))
    assert seen and all(seen)  # the run itself was deterministic
    assert not torch.are_deterministic_algorithms_enabled()


def test_cli_restores_the_warning_format(capsys):
    before, filters = warnings.formatwarning, list(warnings.filters)
    assert main(["list", "models"]) == 0
    assert warnings.formatwarning is before and warnings.filters == filters
    assert main(["classify", "train", "epochz=3"]) == 2  # the error path restores it too
    assert warnings.formatwarning is before
    assert "unknown config key 'epochz'" in capsys.readouterr().err


def test_the_thread_count_is_set_for_the_run_recorded_and_restored(tmp_path):
    """Results reproduce only at the same thread count: the run records it in config.yaml, a resumed run uses
    it, and the process gets its own count back afterwards."""
    import yaml

    import zrenie

    seen = []
    before = torch.get_num_threads()
    zrenie.train("classify", data="digits", epochs=1, threads=1, out=str(tmp_path / "t"), progress=False,
                 tensorboard=False, report=False, callbacks=[lambda info: seen.append(torch.get_num_threads())],
                 **{"model.width": 8})
    assert set(seen) == {1} and torch.get_num_threads() == before
    assert yaml.safe_load((tmp_path / "t" / "config.yaml").read_text())["threads"] == 1
    zrenie.train("classify", data="digits", epochs=1, out=str(tmp_path / "d"), progress=False, tensorboard=False,
                 report=False, **{"model.width": 8})
    assert yaml.safe_load((tmp_path / "d" / "config.yaml").read_text())["threads"] == before
