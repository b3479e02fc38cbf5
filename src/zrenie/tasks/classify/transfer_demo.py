"""Scratch vs frozen feature extractor vs fine-tuning, on built-in data (course notebook 3_2).

A study file holds three parts: `pretrain` (config overrides of the source run), `target` (config
overrides shared by the transfer runs) and `modes` (a subset of scratch, frozen, full). The source
run's best.pt becomes `model.weights` of each transfer run; the runs go under `out`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from zrenie.config import atomic_path, load_recipe
from zrenie.errors import ConfigError

MODES = ("scratch", "frozen", "full")


def run_transfer_study(path: str | Path, train: Callable[..., dict], **overrides: Any) -> dict[str, Any]:
    """Runs the study; returns `{"rows": [...], "table": markdown, "plot": Path}`.

    Args:
        path: the study YAML.
        train: `zrenie.train` (passed in: a task sits below the API it would call).
        **overrides: dotted config keys applied to every run (e.g. `epochs=2` for a quick look).
    """
    from zrenie.report.compare import plot_runs

    study = load_recipe(path)
    unknown = set(study) - {"pretrain", "target", "modes", "out"}
    if unknown or "pretrain" not in study or "target" not in study:
        raise ConfigError(f"{path}: a transfer study holds pretrain, target, modes and out; got {sorted(study)}")
    modes = study.get("modes", list(MODES))
    if not set(modes) <= set(MODES):
        raise ConfigError(f"{path}: modes must be among {', '.join(MODES)}, got {modes}")
    out = Path(study.get("out", "runs/transfer_demo"))
    common = {"overwrite": True, **overrides}
    source = train("classify", **{**study["pretrain"], **common, "out": str(out / "pretrain")})
    rows, runs = [{"run": "pretrain (source task)", **source["test"]}], []
    for mode in modes:
        run = train("classify", **{**study["target"], **common, "out": str(out / mode),
                                          "model.finetune": mode, "model.weights": str(out / "pretrain" / "best.pt")})
        rows.append({"run": mode, **run["test"]})
        runs.append(out / mode)
    table = markdown_table(rows, ("run", "acc1", "mean_class_acc", "loss"))
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(table + "\n")
    return {"rows": rows, "table": table, "plot": plot_runs(runs, out / "transfer_curves.png")}


def markdown_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                                        for c in columns) + " |")
    return "\n".join(lines)
