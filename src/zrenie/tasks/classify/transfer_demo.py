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


PHASES = {"scratch": "scratch (random init)", "frozen": "frozen feature extractor", "full": "fine-tune everything"}


def run_transfer_study(path: str | Path, train: Callable[..., dict], seeds: list[int] | None = None,
                       say: Callable[[str], None] = print, **overrides: Any) -> dict[str, Any]:
    """Runs the study once per seed; returns `{"rows": [...], "table": markdown, "plot": Path}`.

    Each seed (the study's `seeds`, default [0]; `seeds=` overrides) pretrains on the source task, then trains
    each mode on the target task from that seed's source weights. The table gives the mean test accuracy of
    each run over the seeds and its spread (min-max), so a single run of any seed falls inside it.

    Args:
        path: the study YAML (or the name of a shipped one: transfer_demo).
        train: `zrenie.train` (passed in: a task sits below the API it would call).
        say: where the phase lines go.
        **overrides: dotted config keys applied to every run (e.g. `epochs=2` for a quick look).
    """
    from zrenie.report.compare import plot_runs

    study = load_recipe(path)
    unknown = set(study) - {"pretrain", "target", "modes", "out", "seeds"}
    if unknown or "pretrain" not in study or "target" not in study:
        raise ConfigError(f"{path}: a transfer study holds pretrain, target, modes, seeds and out; got {sorted(study)}")
    modes = study.get("modes", list(MODES))
    if not set(modes) <= set(MODES):
        raise ConfigError(f"{path}: modes must be among {', '.join(MODES)}, got {modes}")
    seeds = list(seeds if seeds is not None else study.get("seeds", [0]))
    out = Path(study.get("out", "runs/transfer_demo"))
    results: dict[str, list[dict]] = {}
    runs = []
    for s, seed in enumerate(seeds):
        folder = out / f"seed{seed}" if len(seeds) > 1 else out
        common = {"overwrite": True, **overrides, "seed": seed}
        phases = [("pretrain", study["pretrain"], {})] + [
            (mode, study["target"], {"model.finetune": mode, "model.weights": str(folder / "pretrain" / "best.pt")})
            for mode in modes]
        for p, (phase, base, extra) in enumerate(phases):
            say(f"transfer study: seed {seed} ({s + 1}/{len(seeds)}), phase {p + 1}/{len(phases)}: "
                f"{PHASES.get(phase, 'pretrain on the source task')}")
            run = train("classify", **{**base, **common, **extra, "out": str(folder / phase)})
            results.setdefault(phase, []).append(run["test"])
            if s == 0 and phase != "pretrain":
                runs.append(folder / phase)
    rows = [summary_row(PHASES.get(phase, "pretrain (source task)"), tests) for phase, tests in results.items()]
    table = markdown_table(rows, ("run", "acc1 mean", "acc1 min-max", "seeds"))
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(table + "\n")
    return {"rows": rows, "table": table, "plot": plot_runs(runs, out / "transfer_curves.png")}


def summary_row(name: str, tests: list[dict[str, float]]) -> dict[str, Any]:
    """Mean and min-max of the test acc1 of one run over seeds."""
    accs = [t["acc1"] for t in tests]
    return {"run": name, "acc1 mean": sum(accs) / len(accs), "acc1 min-max": f"{min(accs):.3f}-{max(accs):.3f}",
            "seeds": len(accs), "acc1 per seed": accs}


def markdown_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                                        for c in columns) + " |")
    return "\n".join(lines)
