"""`zrenie TASK VERB [recipe.yaml] key=value ...`: argument grammar only; the work is in `zrenie.api`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

EXAMPLES = """examples:
  zrenie classify train data=digits model=simple_cnn epochs=15 out=runs/digits
  zrenie classify train recipes/hw2_cifar10_cnn.yaml data.root=/data/cifar-10-batches-py
  zrenie classify train resume=runs/digits
  zrenie classify eval runs/digits
  zrenie classify predict runs/digits img1.png img2.jpg
  zrenie classify export runs/digits runs/digits/model.safetensors
  zrenie compare runs/a runs/b --out compare.png
  zrenie list models
  zrenie imgproc gaussian_blur in.jpg out.png sigma=2
"""
TASKS = ("classify",)
# `zrenie demo` = recipes/digits_cnn.yaml written out, for installs without the repository's recipes
# (a test keeps the two equal).
DEMO = {"data": "digits", "data.size": 16, "data.batch_size": 64, "data.augment": "light", "model": "simple_cnn",
        "optim.lr": 0.1, "optim.schedule": "onecycle", "optim.label_smoothing": 0.1, "epochs": 30, "ema": 0.99,
        "out": "runs/demo", "overwrite": "true"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zrenie", description="Deep learning for computer vision.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for task in TASKS:
        tp = sub.add_parser(task, help=f"{task}: train, eval, predict, export, report")
        verbs = tp.add_subparsers(dest="verb", metavar="VERB", required=True)
        t = verbs.add_parser("train", help="train a model (config keys as key=value)")
        t.add_argument("args", nargs="*", metavar="[recipe.yaml] key=value",
                       help="a YAML recipe and/or config overrides, e.g. data=digits epochs=5 optim.lr=0.05")
        e = verbs.add_parser("eval", help="re-evaluate a run's best.pt on a split")
        e.add_argument("run", help="run directory or checkpoint file")
        e.add_argument("args", nargs="*", metavar="key=value", help="split=test|val|train, tta=flip|five_crop|ten_crop, data.root=...")
        pr = verbs.add_parser("predict", help="top-k classes of image files")
        pr.add_argument("run", help="run directory or checkpoint file")
        pr.add_argument("images", nargs="+", help="image files (any size and mode)")
        pr.add_argument("--topk", type=int, default=5)
        pr.add_argument("--json", metavar="FILE", help="also write the predictions as JSON ('-' for stdout only)")
        ex = verbs.add_parser("export", help="write a run's weights as .safetensors")
        ex.add_argument("run", help="run directory or checkpoint file")
        ex.add_argument("out", nargs="?", help="output file (default: RUN/model.safetensors)")
        if task == "classify":
            tr = verbs.add_parser("transfer", help="scratch vs frozen vs fine-tune study (recipes/transfer_demo.yaml)")
            tr.add_argument("study", help="study YAML with pretrain, target, modes, out")
            tr.add_argument("args", nargs="*", metavar="key=value", help="overrides applied to every run")
        rp = verbs.add_parser("report", help="re-evaluate best.pt on the test split and rewrite report.html")
        rp.add_argument("run", help="run directory")
    cp = sub.add_parser("compare", help="final metrics of several runs side by side, and their learning curves")
    cp.add_argument("runs", nargs="+", help="run directories")
    cp.add_argument("--out", default="compare.png", help="plot of the learning curves (default: compare.png)")
    ls = sub.add_parser("list", help="list models, datasets or recipes")
    ls.add_argument("what", choices=("models", "datasets", "recipes"))
    ls.add_argument("pattern", nargs="?", default="*")
    im = sub.add_parser("imgproc", help="image processing ops (zrenie imgproc list)", add_help=False)
    im.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("demo", help="train the CNN on the built-in digits and write runs/demo/report.html")
    return p


def _split_args(args: list[str]) -> tuple[str | None, list[str]]:
    recipe, rest = None, []
    for arg in args:
        if "=" not in arg and arg.endswith((".yaml", ".yml")):
            recipe = arg
        elif "=" not in arg:
            from zrenie.errors import ConfigError

            raise ConfigError(f"expected key=value or a .yaml recipe, got {arg!r}")
        else:
            rest.append(arg)
    return recipe, rest


def _train(task: str, args: list[str]) -> int:
    from zrenie.api import train
    from zrenie.config import parse_overrides
    from zrenie.engine.logging import console

    recipe, rest = _split_args(args)
    result = train(task, recipe=recipe, **parse_overrides(rest))
    if result.get("test") is not None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in result["test"].items())
        console.print(f"test: {shown}", highlight=False, soft_wrap=True)
    if result.get("report") is not None:
        console.print(f"report: {result['report']}", highlight=False, soft_wrap=True)
    return 0


def _eval(task: str, run: str, args: list[str]) -> int:
    from zrenie.api import evaluate
    from zrenie.config import parse_overrides

    overrides = parse_overrides(args)
    split = overrides.pop("split", "test")
    result = evaluate(run, split=split, task=task, **overrides)
    print(f"{split} ({result['checkpoint']}):")
    for k, v in result["metrics"].items():
        print(f"  {k:16s} {v:.4f}")
    if "metrics_without_tta" in result:
        base = result["metrics_without_tta"]
        gains = "  ".join(f"{k} {result['metrics'][k] - base[k]:+.4f}" for k in base if k.startswith("acc"))
        print(f"tta {overrides['tta']} vs none: {gains}")
    return 0


def _predict(task: str, run: str, images: list[str], topk: int, json_path: str | None) -> int:
    from zrenie.api import predict

    results = predict(run, images, topk=topk, task=task)
    text = json.dumps(results, indent=2)
    if json_path == "-":
        print(text)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("image", "rank", "class", "probability")
    for r in results:
        for i, t in enumerate(r["top"]):
            table.add_row(r["image"] if i == 0 else "", str(i + 1), t["class"], f"{t['prob']:.4f}")
    Console().print(table)
    if json_path:
        _write_text_atomic(Path(json_path), text)
        print(f"predictions: {json_path}")
    return 0


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _compare(runs: list[str], out: str) -> int:
    from rich.console import Console
    from rich.table import Table

    from zrenie.report.compare import plot_runs, run_summary

    rows = [run_summary(Path(r)) for r in runs]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = Table(*columns)
    for r in rows:
        table.add_row(*(f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in columns))
    Console(width=200).print(table)
    print(f"curves: {plot_runs([Path(r) for r in runs], Path(out))}")
    return 0


def _list(what: str, pattern: str) -> int:
    if what == "models":
        from zrenie.models import list_models

        names = list_models(pattern)
    elif what == "datasets":
        from zrenie.data.catalog import list_datasets

        names = list_datasets(pattern)
    else:
        names = sorted(str(p) for p in Path("recipes").glob(f"{pattern}.yaml"))
    print("\n".join(names))
    return 0


def _dispatch(ns: argparse.Namespace) -> int:
    if ns.command in TASKS:
        if ns.verb == "train":
            return _train(ns.command, ns.args)
        if ns.verb == "eval":
            return _eval(ns.command, ns.run, ns.args)
        if ns.verb == "transfer":
            from zrenie.config import parse_overrides
            from zrenie.tasks.classify.transfer_demo import run_transfer_study

            study = run_transfer_study(ns.study, **parse_overrides(ns.args))
            print(study["table"])
            print(f"curves: {study['plot']}")
            return 0
        if ns.verb in ("export", "report"):
            import zrenie.api

            path = (zrenie.api.export(ns.run, ns.out, task=ns.command) if ns.verb == "export"
                    else zrenie.api.report(ns.run, task=ns.command))
            print(f"{ns.verb}: {path}")
            return 0
        return _predict(ns.command, ns.run, ns.images, ns.topk, ns.json)
    if ns.command == "list":
        return _list(ns.what, ns.pattern)
    if ns.command == "compare":
        return _compare(ns.runs, ns.out)
    if ns.command == "imgproc":
        from zrenie.cli.imgproc import main as imgproc_main

        return imgproc_main(ns.args)
    if ns.command == "demo":
        return _train("classify", [f"{k}={v}" for k, v in DEMO.items()])
    _parser().print_help()
    return 0


def main(argv: list[str] | None = None) -> int:
    from zrenie.errors import ZrenieError

    ns = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from zrenie.engine.trainer import TrainingInterrupted

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.formatwarning = lambda message, category, *a, **k: f"warning: {message}\n"
        try:
            return _dispatch(ns)
        except TrainingInterrupted as err:
            print(str(err), file=sys.stderr)
            return 130
        except ZrenieError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
