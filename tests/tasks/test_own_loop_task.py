"""A task with its own loop (as style transfer optimises pixels): the API still makes, checks and keeps its run folder."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import zrenie
from zrenie.cli import main
from zrenie.errors import RunDirError
from zrenie.tasks import Task, register_task


@dataclass
class LoopConfig:
    steps: int = field(default=3, metadata={"help": "optimisation steps of the loop", "range": ">= 1"})


@register_task
class OwnLoopTask(Task):
    name = "ownloop"
    section = LoopConfig

    def run(self, cfg, run_dir):
        (run_dir / "steps.txt").write_text(str(cfg.ownloop.steps))
        return {"run_dir": run_dir, "steps": cfg.ownloop.steps}


def test_api_creates_the_run_folder_and_calls_the_loop(tmp_path):
    out = tmp_path / "loop"
    result = zrenie.train("ownloop", out=str(out), **{"ownloop.steps": 5})
    assert result["steps"] == 5 and (out / "steps.txt").read_text() == "5"
    assert "ownloop:\n  steps: 5" in (out / "config.yaml").read_text()
    with pytest.raises(RunDirError, match="already holds a run"):
        zrenie.train("ownloop", out=str(out))


def test_cli_runs_it_from_the_registry(tmp_path):
    assert main(["ownloop", "train", f"out={tmp_path / 'cli'}", "ownloop.steps=2"]) == 0
    assert (tmp_path / "cli" / "steps.txt").read_text() == "2"
