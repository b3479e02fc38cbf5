"""The run report: what was run and how it went, as one `report.html` in the run directory.

Top to bottom: a summary (task, model and its size, data and its counts, device, wall time, the
best epoch), the metrics of best.pt (validation at its epoch beside the test pass, the only place
the test metrics appear), the resolved config (collapsed), the learning curves and learning rate,
then the task's own sections. Everything is rendered through `zrenie.report.html`, which escapes
every string and keeps the page self-contained.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zrenie.report.html import Section, render_page, render_section, render_table, save_page
from zrenie.report.plots import plot_learning_curves, plot_learning_rate, read_epochs

METRICS_CSV = "metrics.csv"
CONFIG_FILE = "config.yaml"
CURVES_PNG = "learning_curves.png"
LR_PNG = "learning_rate.png"
SPLIT_ORDER = ("train", "val", "test")
TOP_LEVEL_GROUP = "run"  # heading of the config keys that sit in no section (epochs, seed, device ...)

_TOP_K = re.compile(r"acc(\d+)")


def trivial_metrics(names: Iterable[str], num_classes: int | None) -> set[str]:
    """The top-k accuracies that say nothing about the model: `accK` with K >= the number of classes.

    With K classes or fewer every label is among the top K, so `acc5` of a 5-class problem is 1 for
    any model. With `num_classes` unknown nothing is left out.
    """
    if num_classes is None:
        return set()
    return {name for name in names if (m := _TOP_K.fullmatch(name)) and int(m.group(1)) >= num_classes}


def best_epoch(epochs: list[dict[str, float]], monitor: str, mode: str) -> tuple[dict[str, float], str] | None:
    """The row of metrics.csv whose weights are best.pt, and how it was chosen.

    As the trainer decides: the first epoch with the best `monitor` value (`mode` "max" or "min");
    the last epoch when `monitor` is "none" or no epoch has a value for it.

    Returns:
        `(row, reason)`, or None when there are no epochs.
    """
    if not epochs:
        return None
    if monitor == "none":
        return epochs[-1], "last epoch (monitor none)"
    scored = [row for row in epochs if monitor in row]
    if not scored:
        return epochs[-1], f"last epoch (no {monitor} in {METRICS_CSV})"
    sign = 1.0 if mode == "max" else -1.0
    best = max(scored, key=lambda row: sign * row[monitor])  # max keeps the first of equal values
    return best, f"{'highest' if mode == 'max' else 'lowest'} {monitor}"


def config_groups(config: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The config as `{section: {dotted key: value text}}`, top-level scalars under `TOP_LEVEL_GROUP`.

    Keys are the full dotted names and values read back with the CLI's `key=value` grammar
    (`optim.lr=0.1`, `model.weights=null`), so a line of the table can be pasted as an override.
    """
    groups: dict[str, dict[str, str]] = {TOP_LEVEL_GROUP: {}}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            groups[str(key)] = _flatten(value, str(key))
        else:
            groups[TOP_LEVEL_GROUP][str(key)] = config_text(value)
    return {name: keys for name, keys in groups.items() if keys}


def _flatten(mapping: Mapping[str, Any], prefix: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}.{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted))
        else:
            flat[dotted] = config_text(value)
    return flat


def config_text(value: Any) -> str:
    """A config value as it is typed in an override: strings bare, the rest as JSON (null, true, [0.9, 0.99])."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def format_duration(seconds: float) -> str:
    """`12.3 s`, `4 min 05 s`, `2 h 03 min`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_count(n: int) -> str:
    """`11,689,512 (11.7 M)`: exact, then at a glance."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n:,} ({n / scale:.3g} {unit})"
    return f"{n:,}"


def _num_classes(config: Mapping[str, Any], info: Mapping[str, Any]) -> int | None:
    if info.get("num_classes") is not None:
        return int(info["num_classes"])
    data = config.get("data") or {}
    if data.get("subset_classes"):
        return len(data["subset_classes"])
    return data.get("num_classes")


def _summary(config: Mapping[str, Any], info: Mapping[str, Any], epochs: list[dict[str, float]],
             best: tuple[dict[str, float], str] | None) -> dict[str, Any]:
    """The key/value table at the top: only what the config and `info` hold."""
    data = config.get("data") or {}
    model = config.get("model") or {}
    rows: dict[str, Any] = {}
    if "task" in config:
        rows["task"] = config["task"]
    if "name" in model:
        params = info.get("parameters")
        rows["model"] = model["name"] + (f" ({format_count(int(params))} parameters)" if params is not None else "")
    if info.get("weights"):
        rows["initial weights"] = info["weights"]
    if "name" in data:
        rows["data"] = data["name"]
    counts = info.get("counts") or {}
    if counts:
        order = sorted(counts, key=lambda split: SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER))
        rows["images"] = " · ".join(f"{split} {int(counts[split]):,}" for split in order)
    if info.get("image_size") is not None:
        rows["image size"] = f"{int(info['image_size'])} x {int(info['image_size'])} px"
    if "device" in info:
        rows["device"] = info["device"]
    if "amp" in info:
        rows["mixed precision"] = info["amp"] or "off"
    if info.get("wall_time_s") is not None:
        rows["wall time"] = format_duration(float(info["wall_time_s"]))
    if info.get("resumed_from"):
        rows["resumed from"] = info["resumed_from"]
    trained = int(epochs[-1].get("epoch", len(epochs))) if epochs else None
    planned = config.get("epochs")
    if trained is not None:
        rows["epochs"] = f"{trained} of {planned}" if planned is not None and planned != trained else str(trained)
    elif planned is not None:
        rows["epochs"] = str(planned)
    if best is not None:
        row, reason = best
        rows["best epoch"] = f"{_epoch_of(row, epochs)} ({reason})"
    return rows


def _epoch_of(row: dict[str, float], epochs: list[dict[str, float]]) -> int:
    return int(row["epoch"]) if "epoch" in row else next(i + 1 for i, r in enumerate(epochs) if r is row)


def _metrics_table(val: dict[str, float], test: Mapping[str, float], val_label: str) -> list[dict[str, Any]]:
    """One row per metric: its validation value at the best epoch beside its test value."""
    names = list(dict.fromkeys([*val, *test]))
    rows = []
    for name in names:
        row: dict[str, Any] = {"metric": name}
        if name in val:
            row[val_label] = val[name]
        if name in test:
            row["test"] = test[name]
        rows.append(row)
    return rows


def _render_config(config: Mapping[str, Any], run_dir: Path) -> str:
    groups = config_groups(config)
    count = sum(len(keys) for keys in groups.values())
    saved = f', saved as <a href="{CONFIG_FILE}">{CONFIG_FILE}</a>' if (run_dir / CONFIG_FILE).is_file() else ""
    blocks = [f"<div><h3>{html.escape(name)}</h3>\n{render_table(keys, css_class='config')}</div>"
              for name, keys in groups.items()]
    return (f"<details>\n<summary>Configuration: {count} keys</summary>\n"
            f'<p class="text">The resolved config{saved}; each line reads as a key=value override.</p>\n'
            f'<div class="groups">\n' + "\n".join(blocks) + "\n</div>\n</details>")


def _curve_section(run_dir: Path, epochs: list[dict[str, float]], exclude: set[str], best: int | None) -> Section:
    curves = plot_learning_curves(run_dir / METRICS_CSV, run_dir / CURVES_PNG, exclude=exclude, best_epoch=best)
    images = [curves.name]
    if any("lr" in row for row in epochs):
        images.append(plot_learning_rate(run_dir / METRICS_CSV, run_dir / LR_PNG).name)
    text = ("Dashed line: the best epoch. A loss that spans more than a factor of 10 is drawn on a log axis "
            "(its title says so), where the late epochs and the train/val gap stay visible.")
    if exclude:
        text += f" Left out: {', '.join(sorted(exclude))} (K >= the number of classes, always 1)."
    return Section(title="Learning curves", images=images, text=text)


def write_run_report(run_dir: Path, title: str, config: dict, test_metrics: dict[str, float],
                     sections: list[Section], info: dict[str, Any], val_metrics: dict[str, float] | None = None,
                     model_file: str = "best.pt") -> Path:
    """Writes `run_dir/report.html`, with the learning-curve PNGs it shows.

    Args:
        run_dir: the run directory; its metrics.csv (one row per epoch, `epoch`, `lr` and `split/metric`
            columns) gives the best epoch and the curves, and is optional.
        title: the page title and top heading.
        config: the resolved config as plain nested data (`zrenie.config.to_dict(cfg)`); its `monitor`
            and `monitor_mode` pick the best epoch.
        test_metrics: the test pass of best.pt by metric name (acc1, loss, ...). Shown once, here; task
            sections should not repeat them.
        sections: the task's sections, shown after the curves.
        val_metrics: the val numbers of a run without metrics.csv (a task with its own loop); with a csv they
            come from its best epoch.
        model_file: what the metrics are of, in the heading (a task with its own loop keeps another file).
        info: what the run knows beyond the config, each key optional and shown only when given:
            `device` (str), `amp` (None for off, or "bf16" / "fp16"), `wall_time_s` (float),
            `parameters` (int), `counts` ({"train": int, "val": int, "test": int}), `image_size` (int),
            `weights` (the initial weights, str), `resumed_from` (str), and `num_classes` (int; leaves
            out accK with K >= it, falling back to config data.num_classes or data.subset_classes).

    Returns:
        The path of report.html.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    has_csv = (run_dir / METRICS_CSV).is_file()
    epochs = read_epochs(run_dir / METRICS_CSV) if has_csv else []
    monitor = str(config.get("monitor", "none"))
    best = best_epoch(epochs, monitor, str(config.get("monitor_mode", "min")))
    split = "val" if monitor == "none" else monitor.split("/", 1)[0]
    val = {}
    if best is not None:
        val = {k.split("/", 1)[1]: v for k, v in best[0].items() if k.startswith(f"{split}/")}
    metric_names = {k.split("/", 1)[1] for row in epochs for k in row if "/" in k} | set(test_metrics)
    trivial = trivial_metrics(metric_names, _num_classes(config, info))
    if best is None and val_metrics:
        val = dict(val_metrics)
    val = {k: v for k, v in val.items() if k not in trivial}
    test = {k: v for k, v in test_metrics.items() if k not in trivial}

    body = [render_table(_summary(config, info, epochs, best), css_class="summary")]
    if val or test:
        label = f"{split} (epoch {_epoch_of(best[0], epochs)})" if best is not None else split
        body.append(f"<h2>Metrics of {model_file}</h2>\n" + render_table(_metrics_table(val, test, label)))
    if config:
        body.append(_render_config(config, run_dir))
    if has_csv:
        best_at = _epoch_of(best[0], epochs) if best is not None else None
        body.append(render_section(run_dir, _curve_section(run_dir, epochs, trivial, best_at)))
    body.extend(render_section(run_dir, s) for s in sections)
    return save_page(run_dir, render_page(title, body))
