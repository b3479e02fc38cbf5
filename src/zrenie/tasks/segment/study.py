"""`zrenie segment study`: every model with every loss on the same data, seed and budget (the homework's study).

    zrenie segment study models=segnet,unet,unet_strided losses=bce,dice,focal,tversky,lovasz data=lesions

Each combination is an ordinary training run in `OUT/<model>-<loss>/`; every other `key=value` applies to all
of them (`epochs=`, `data.size=`, `out=` ...), and the study sets `deterministic=true` and `seed=0` unless told
otherwise, so the same command gives the same table (at the same `threads=`: reductions split by thread count).
The study writes `OUT/study.csv` and `OUT/study.md` (test mIoU, Dice and pixel accuracy, epochs, median seconds
per epoch) and `OUT/study.html`: the validation curves of all runs in one plot, then per combination its learning
curves and its predictions on the same test images.

A combination whose run finished (`results.json`) is read back instead of retrained, and one stopped after a
checkpoint is resumed from its `last.pt`, so an interrupted study continues where it stopped; either must have
been run with the same settings (`overwrite=true` retrains every combination).
"""

from __future__ import annotations

import csv
import inspect
import io
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import yaml

from zrenie.config import TrainConfig, atomic_path, build_config, from_dict, parse_overrides, to_dict
from zrenie.engine.rng import cpu_threads
from zrenie.errors import ConfigError
from zrenie.registry import MODELS
from zrenie.report.html import Section, format_value, render_page, render_section
from zrenie.tasks import Task, Verb, get_task
from zrenie.tasks.segment.loss import LOSSES
from zrenie.tasks.segment.metrics import confusion_matrix, scores_from_confusion

DEFAULT_MODELS = ("segnet", "unet", "unet_strided")
DEFAULT_LOSSES = ("bce", "dice", "focal", "tversky", "lovasz")
DEFAULTS = {"data.name": "lesions", "out": "runs/segment_study", "seed": 0, "deterministic": True}
COLUMNS = ("model", "loss", "miou", "dice", "pixel_acc", "epochs", "s/epoch")
TIMING = ("s/epoch",)  # the columns that differ between two runs of the same study
GRID_IMAGES = 4  # test images shown for every combination, the same ones
CURVES_PNG, GRID_PNG = "study_learning_curves.png", "study_predictions.png"  # in each run folder
RUN_PNGS = (CURVES_PNG, GRID_PNG)
ALL_CURVES_PNG = "study_curves.png"
# Keys that say how a run was carried out, not what it learnt: a finished run may differ in these.
HOW_IT_RAN = {"out", "resume", "overwrite", "threads", "progress", "report", "tensorboard", "log_every"}
# Keys the study itself sets for each combination.
SET_BY_STUDY = {"model", "model.name", "loss", "segment.loss"}


def parse_study_args(args: Sequence[str]) -> tuple[list[str], list[str], dict[str, Any]]:
    """`["models=unet,segnet", "losses=dice", "epochs=3"]` -> (models, losses, config overrides)."""
    chosen = {"models": list(DEFAULT_MODELS), "losses": list(DEFAULT_LOSSES)}
    rest = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in chosen:
            chosen[key] = [name.strip() for name in value.split(",") if name.strip()]
        else:
            rest.append(arg)
    return chosen["models"], chosen["losses"], parse_overrides(rest)


def check_names(models: Sequence[str], losses: Sequence[str], overrides: dict[str, Any]) -> None:
    """One line for an unknown model or loss, an empty list, or an override of what the study varies."""
    known = MODELS.list(tag="segment")
    for kind, names, allowed in (("model", models, known), ("loss", losses, LOSSES)):
        if not names:
            raise ConfigError(f"{kind}s= is empty; choose among {', '.join(allowed)}")
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ConfigError(f"unknown segmentation {kind} {', '.join(map(repr, unknown))}; known: "
                              f"{', '.join(allowed)}")
    clash = sorted(SET_BY_STUDY & set(overrides))
    if clash:
        raise ConfigError(f"the study sets model.name and segment.loss from models= and losses=; drop {clash[0]}=")


def combination_configs(models: Sequence[str], losses: Sequence[str], out: Path,
                        overrides: dict[str, Any]) -> dict[tuple[str, str], TrainConfig]:
    """The config of every combination (every key checked here, before anything trains)."""
    return {(model, loss): build_config(task="segment", **{**overrides, "model.name": model, "segment.loss": loss,
                                                            "out": str(out / f"{model}-{loss}")})
            for model in dict.fromkeys(models) for loss in dict.fromkeys(losses)}


def check_models(task: Task, configs: Iterable[TrainConfig], preprocess: dict) -> None:
    """Every run's model options, before the first run trains: a binary loss on multi-class data (the task's
    `num_outputs`) or an option a model does not take (`model.width` for segnet) is one line."""
    for cfg in configs:
        for builder, kwargs in task.model_specs(cfg, preprocess).values():
            try:
                inspect.signature(MODELS.get(builder)).bind(**kwargs)
            except TypeError as err:
                raise ConfigError(f"model {builder!r} does not take these options: {err}; the study gives every "
                                  f"run the same keys") from None


def _settings(cfg: TrainConfig) -> dict[str, Any]:
    """The run's keys as dotted names, less those that say how it ran."""
    flat: dict[str, Any] = {}

    def visit(value: Any, key: str) -> None:
        if isinstance(value, dict) and value and key != "model.kwargs":
            for k, v in value.items():
                visit(v, f"{key}.{k}" if key else str(k))
        elif key.partition(".")[0] not in HOW_IT_RAN:
            flat[key] = value

    visit(to_dict(cfg), "")
    return flat


def run_state(cfg: TrainConfig) -> str:
    """"finished", "stopped" (a checkpoint to resume) or "new"; a kept run of other settings is a ConfigError."""
    from zrenie.engine.run_dir import holds_run
    from zrenie.report.compare import RESULTS_FILE

    run_dir = Path(cfg.out)
    if cfg.overwrite or not run_dir.is_dir() or not holds_run(run_dir):
        return "new"
    path = run_dir / "config.yaml"
    try:
        stored = _settings(from_dict(yaml.safe_load(path.read_text()), where=str(path)))
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        raise ConfigError(f"{path}: missing or unreadable, so the run in {run_dir} cannot be matched to this "
                          f"study; choose another out= or pass overwrite=true") from None
    current = _settings(cfg)
    differ = sorted(k for k in current.keys() | stored.keys() if current.get(k) != stored.get(k))
    if differ:
        raise ConfigError(f"{run_dir} holds a run with other settings ({', '.join(differ[:4])}); choose another "
                          f"out= or pass overwrite=true to retrain every combination")
    return "finished" if (run_dir / RESULTS_FILE).is_file() else "stopped"


def run_study(models: Sequence[str], losses: Sequence[str], train: Callable[..., dict],
              say: Callable[[str], None] = print, grid_images: int = GRID_IMAGES, **overrides: Any) -> dict[str, Any]:
    """Trains every combination of `models` and `losses`; returns `{"rows", "table", "csv", "page"}`.

    Args:
        models: registered segmentation models (segnet, unet, unet_strided ...).
        losses: `segment.loss` values; a binary one (bce, bce_dice) needs two-class data.
        train: `zrenie.train` (passed in: a task sits below the API it would call).
        say: where the progress lines go.
        grid_images: how many test images (the first ones) each run's prediction grid shows.
        **overrides: config keys applied to every run, over the study's defaults (`DEFAULTS`).
    """
    overrides = {**DEFAULTS, **overrides}
    check_names(models, losses, overrides)
    base = build_config(task="segment", **overrides)
    out = Path(base.out)
    configs = combination_configs(models, losses, out, overrides)
    states = {combo: run_state(cfg) for combo, cfg in configs.items()}
    task = get_task("segment")  # looked up, not imported: task.py imports this module for its verbs
    splits = task.build_data(base)  # the data every run trains on; also what the prediction grids show
    check_models(task, configs.values(), splits.meta())
    samples = grid_samples(task, splits, base, grid_images)
    say(f"segment study: {len(dict.fromkeys(models))} models x {len(dict.fromkeys(losses))} losses on "
        f"{base.data.name}, seed {base.seed}, {base.epochs} epochs each, into {out}")
    for i, ((model, loss), cfg) in enumerate(configs.items()):
        head, run_dir = f"segment study {i + 1}/{len(configs)}: {model} + {loss}", Path(cfg.out)
        if states[(model, loss)] == "finished":
            say(f"{head}: finished earlier in {run_dir}, skipped (overwrite=true retrains it)")
        elif states[(model, loss)] == "stopped":
            say(f"{head}: resuming the stopped run in {run_dir}")
            train("segment", resume=str(run_dir))
        else:
            say(f"{head}: training into {run_dir}")
            train("segment", **{**overrides, "model.name": model, "segment.loss": loss, "out": str(run_dir)})
        if states[(model, loss)] != "finished" or not all((run_dir / png).is_file() for png in RUN_PNGS):
            with cpu_threads(base.threads):  # threads= holds for the pictures too
                draw_run_pictures(run_dir, task, samples, splits.classes, base.segment.ignore_index)
    run_dirs = [Path(cfg.out) for cfg in configs.values()]
    rows = [study_row(run_dir, model, loss) for (model, loss), run_dir in zip(configs, run_dirs)]
    table = markdown_table(rows)
    write_tables(out, rows, table)
    page = write_study_page(out, base, rows, run_dirs, splits, len(samples))
    return {"rows": rows, "table": table, "csv": out / "study.csv", "page": page}


def study_row(run_dir: Path, model: str, loss: str) -> dict[str, Any]:
    """One line of the table: a finished run's test scores, its epochs and their median wall time (the first
    epoch's warm-up and a busy machine's stalls move a mean, not the median)."""
    import json
    import statistics

    from zrenie.report.compare import RESULTS_FILE
    from zrenie.report.plots import read_epochs

    test = json.loads((run_dir / RESULTS_FILE).read_text())
    epochs = read_epochs(run_dir / "metrics.csv")
    times = [e["time"] for e in epochs if "time" in e]
    return {"model": model, "loss": loss, "miou": test["miou"], "dice": test["dice"], "pixel_acc": test["pixel_acc"],
            "epochs": len(epochs), "s/epoch": statistics.median(times) if times else None}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table: scores to 4 decimals, seconds to 1."""
    def cell(column: str, value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.1f}" if column in TIMING else f"{value:.4f}"
        return format_value(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(c, r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def write_tables(out: Path, rows: list[dict[str, Any]], table: str) -> None:
    """`study.csv` (full precision) and `study.md`."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(out / "study.csv") as tmp:
        tmp.write_text(text.getvalue())
    with atomic_path(out / "study.md") as tmp:
        tmp.write_text(table + "\n")


def grid_samples(task: Task, splits, cfg: TrainConfig, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `count` test images (float [0, 1], as the test pass sees them) and their masks."""
    task.build_loader(splits, "test", cfg, torch.device("cpu"))  # sets the test split's eval transform
    samples = [splits.test[i] for i in range(min(count, len(splits.test)))]
    return [(im.float() / 255 if im.dtype == torch.uint8 else im.float(), torch.as_tensor(t).long())
            for im, t in samples]


def draw_run_pictures(run_dir: Path, task: Task, samples: list[tuple[torch.Tensor, torch.Tensor]],
                      classes: list[str], ignore_index: int) -> None:
    """A run's learning curves (loss, mIoU, Dice) and its best.pt's predictions on `samples`: image, truth,
    prediction with the image's mIoU, errors."""
    from zrenie.nn.checkpoint import load_run
    from zrenie.report.plots import plot_learning_curves
    from zrenie.tasks.segment.viz import prediction_grid  # the report's grid, here of fixed test images

    per_class = ["pixel_acc", *(f"iou/{c}" for c in classes)]
    plot_learning_curves(run_dir / "metrics.csv", run_dir / CURVES_PNG, exclude=per_class)
    handle = load_run(run_dir / "best.pt", "cpu", cache=False)
    images = [image for image, _ in samples]
    results = task.predict(handle, images, [f"test[{i}]" for i in range(len(images))])
    tiles = []
    for (image, truth), result in zip(samples, results):
        iou = scores_from_confusion(confusion_matrix(result.mask, truth, len(classes), ignore_index))["iou"]
        present = ~iou.isnan()
        tiles.append((image, truth, result.mask, iou[present].mean().item() if present.any() else 1.0))
    prediction_grid(tiles, classes, run_dir / GRID_PNG)


def write_study_page(out: Path, cfg: TrainConfig, rows: list[dict[str, Any]], run_dirs: list[Path], splits,
                     grid_images: int) -> Path:
    """`out/study.html`: the settings, the table, all validation curves, then each run's curves and predictions."""
    from zrenie.report.compare import plot_runs

    plot_runs(run_dirs, out / ALL_CURVES_PNG, metrics=("miou", "dice"))
    settings = {"data": cfg.data.name, "image size": cfg.data.size or splits.image_size, "epochs": cfg.epochs,
                "batch size": cfg.data.batch_size, "optimiser": f"{cfg.optim.name}, lr {cfg.optim.lr}",
                "model width": cfg.model.width or "each model's own", "model options": cfg.model.kwargs or "none",
                "seed": cfg.seed, "deterministic": cfg.deterministic, "CPU threads": cfg.threads or "torch's default",
                "train / val / test images": f"{len(splits.train)} / {len(splits.val)} / {len(splits.test)}"}
    sections = [Section("Settings (the same for every run)", table=settings),
                Section("Test scores", table=rows, text="mIoU, Dice (of the object classes) and pixel accuracy of "
                        "each run's best.pt on the test split; s/epoch is the median wall time of an epoch (training "
                        "and validation)."),
                Section("Validation curves of every run", images=[ALL_CURVES_PNG])]
    sections += [Section(f"{row['model']} + {row['loss']}", images=[f"{d.name}/{png}" for png in RUN_PNGS],
                         text=f"test mIoU {row['miou']:.4f}, Dice {row['dice']:.4f}; run folder {d.name}/ (its "
                              f"report.html when report=true). Predictions on the first {grid_images} test images.")
                 for row, d in zip(rows, run_dirs)]
    page = render_page(f"segment study: {cfg.data.name}", [render_section(out, s) for s in sections])
    with atomic_path(out / "study.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out / "study.html"


def _run_verb(ns: Any, api: Any) -> int:
    models, losses, overrides = parse_study_args(ns.args)
    if ns.grid < 1:
        raise ConfigError(f"--grid {ns.grid}: a prediction grid shows at least 1 image")
    study = run_study(models, losses, api.train, grid_images=ns.grid, **overrides)
    print(study["table"])
    print(f"table: {study['csv']}\npage: {study['page']}")
    return 0


STUDY = Verb(
    help="every model with every loss on the same data, seed and budget: one table and one HTML page",
    arguments=[(("args",), {"nargs": "*", "metavar": "key=value",
                            "help": f"models=A,B (default {','.join(DEFAULT_MODELS)}), losses=X,Y (default "
                                    f"{','.join(DEFAULT_LOSSES)}), then config keys applied to every run "
                                    f"(default data=lesions out=runs/segment_study seed=0 deterministic=true)"}),
               (("--grid",), {"type": int, "default": GRID_IMAGES, "metavar": "N",
                              "help": f"test images in each run's prediction grid (default {GRID_IMAGES})"})],
    run=_run_verb,
    examples=["zrenie segment study models=segnet,unet,unet_strided losses=bce,dice,focal,tversky,lovasz "
              "data=lesions",
              "zrenie segment study models=unet,unet_strided losses=dice,lovasz epochs=3 data.size=32 out=runs/quick"])
