"""`zrenie TASK VERB [recipe.yaml] key=value ...`: argument grammar only; the work is in `zrenie.api`."""

from __future__ import annotations

import argparse
import fnmatch
import inspect
import json
import os
import sys
import warnings
from pathlib import Path

EXAMPLES = """examples:
  zrenie classify train data=digits model=simple_cnn epochs=15 out=runs/digits
  zrenie classify train hw2_cifar10_cnn data.root=/data/cifar-10-batches-py     # a shipped recipe by name
  zrenie classify train resume=runs/digits
  zrenie classify eval runs/digits
  zrenie classify predict runs/digits img1.png img2.jpg
  zrenie classify export runs/digits runs/digits/model.safetensors
  zrenie detect train detect_shapes_centernet                                   # object detection
  zrenie classic search data=digits model=knn grid.n_neighbors=1,3,5,7          # classical ML
  zrenie compare runs/a runs/b --out compare.png
  zrenie list models
  zrenie imgproc gaussian_blur in.jpg out.png sigma=2
"""
def _parser() -> argparse.ArgumentParser:
    """Built from the task registry when the command runs, so every registered task has its verbs."""
    from zrenie.tasks import get_task, list_tasks

    p = argparse.ArgumentParser(prog="zrenie", description="Deep learning for computer vision.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in list_tasks():
        task = get_task(name)
        verbs_help = ", ".join([v for v in task.engine_verbs if v != "keys"] + list(task.verbs))
        verbs = sub.add_parser(name, help=f"{name}: {verbs_help}", formatter_class=argparse.RawDescriptionHelpFormatter,
                               epilog=f"examples:\n  zrenie {name} train --help\n  zrenie {name} keys").add_subparsers(
            dest="verb", metavar="VERB", required=True)
        _add_task_verbs(verbs, name, task.engine_verbs)
        for verb, spec in task.verbs.items():
            epilog = "examples:\n" + "\n".join(f"  {line}" for line in spec.examples) if spec.examples else None
            vp = verbs.add_parser(verb, help=spec.help, epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
            for flags, kwargs in spec.arguments:
                vp.add_argument(*flags, **kwargs)
    raw = argparse.RawDescriptionHelpFormatter
    cp = sub.add_parser("compare", help="final metrics of several runs side by side, and their learning curves",
                        formatter_class=raw, epilog="example:\n  zrenie compare runs/a runs/b --out compare.png")
    cp.add_argument("runs", nargs="+", help="run directories")
    cp.add_argument("--out", default="compare.png", help="plot of the learning curves (default: compare.png)")
    ls = sub.add_parser("list", help="list tasks, models, datasets or recipes", formatter_class=raw,
                        epilog="examples:\n  zrenie list models 'resnet*'\n  zrenie list models --task classify\n"
                               "  zrenie list recipes")
    ls.add_argument("what", choices=("tasks", "models", "datasets", "recipes"))
    ls.add_argument("pattern", nargs="?", default="*")
    ls.add_argument("--task", help="models of this task only (list models --task classify)")
    im = sub.add_parser("imgproc", help="image processing ops (zrenie imgproc list)", add_help=False)
    im.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("demo", help="train the CNN on the built-in digits and write runs/demo/report.html")
    return p


def _add_task_verbs(verbs, task: str, offered: tuple[str, ...]) -> None:
    """The shared verbs, those of them the task offers."""
    def add(name: str, **kwargs) -> argparse.ArgumentParser:  # a verb the task does not offer is built, unlisted
        return verbs.add_parser(name, **kwargs) if name in offered else argparse.ArgumentParser()

    raw = argparse.RawDescriptionHelpFormatter
    t = add("train", help="train a model (config keys as key=value)", formatter_class=raw,
            epilog=f"every key with its type, default and help: zrenie {task} keys\n\nexamples:\n"
                   f"  zrenie {task} train data=digits epochs=5 out=runs/a\n"
                   f"  zrenie {task} train RECIPE optim.lr=0.05    (zrenie list recipes)\n"
                   f"  zrenie {task} train resume=runs/a           (continue a stopped run)")
    t.add_argument("args", nargs="*", metavar="[recipe] key=value",
                   help="a recipe (a .yaml file or a shipped one: zrenie list recipes) and/or config overrides, "
                        "e.g. data=digits epochs=5 optim.lr=0.05")
    k = add("keys", help="list every config key of this task with its type, default and help",
            formatter_class=raw, epilog=f"examples:\n  zrenie {task} keys\n  zrenie {task} keys 'optim.*'")
    k.add_argument("pattern", nargs="?", default="*", help="a glob over the dotted keys, e.g. 'optim.*'")
    e = add("eval", help="re-evaluate a run's best.pt on a split", formatter_class=raw,
            epilog=f"examples:\n  zrenie {task} eval runs/a\n  zrenie {task} eval runs/a split=val")
    e.add_argument("run", help="run directory or checkpoint file")
    e.add_argument("args", nargs="*", metavar="key=value",
                   help="split=test|val|train and config keys, e.g. classify.tta=flip data.root=...")
    e.add_argument("--json", metavar="FILE", help="also write the metrics as JSON (name -> value)")
    pr = add("predict", help="predict image files with a trained run", formatter_class=raw,
             epilog=f"examples:\n  zrenie {task} predict runs/a photo.jpg\n"
                    f"  zrenie {task} predict runs/a ~/photos -r --json predictions.json")
    pr.add_argument("run", help="run directory or checkpoint file")
    pr.add_argument("images", nargs="+", help="image files (any size and mode) or folders of them, and the "
                                              "task's options as key=value (detect: conf=0.3 iou=0.5)")
    pr.add_argument("-r", "--recursive", action="store_true", help="look for images in subfolders too")
    pr.add_argument("--topk", type=int, default=5, help="classes shown per image (classification)")
    pr.add_argument("--json", metavar="FILE", help="also write the predictions as JSON ('-' for stdout only)")
    pr.add_argument("--out", metavar="DIR", default="predictions",
                    help="where tasks that predict pictures write them, per image (segment: NAME_mask.png, "
                         "NAME_overlay.png; default: predictions)")
    ex = add("export", help="write a run's weights as .safetensors", formatter_class=raw,
             epilog=f"example:\n  zrenie {task} export runs/a runs/a/model.safetensors")
    ex.add_argument("run", help="run directory or checkpoint file")
    ex.add_argument("out", nargs="?", help="output file (default: RUN/model.safetensors)")
    rp = add("report", help="re-evaluate best.pt on the test split and rewrite report.html",
             formatter_class=raw, epilog=f"example:\n  zrenie {task} report runs/a")
    rp.add_argument("run", help="run directory")


def _split_args(args: list[str]) -> tuple[str | None, list[str]]:
    """A recipe (a .yaml file or the name of a shipped recipe) and the key=value overrides."""
    from zrenie.config import is_recipe, list_recipes

    recipe, rest = None, []
    for arg in args:
        if is_recipe(arg):
            recipe = arg
        elif "=" not in arg:
            from zrenie.errors import ConfigError

            raise ConfigError(f"expected key=value or a recipe (a .yaml file or one of {', '.join(list_recipes())}), "
                              f"got {arg!r}")
        else:
            rest.append(arg)
    return recipe, rest


def _train(task: str, args: list[str]) -> int:
    from zrenie.api import train
    from zrenie.config import parse_overrides
    from zrenie.engine.logging import console

    recipe, rest = _split_args(args)
    result = train(task, recipe=recipe, **parse_overrides(rest))
    from zrenie.engine.distributed import is_main

    if not is_main():  # every process ran the test pass; one prints it
        return 0
    if result.get("test") is not None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in result["test"].items())
        console.print(f"test: {shown}", highlight=False, soft_wrap=True)
    if result.get("report") is not None:
        console.print(f"report: {result['report']}", highlight=False, soft_wrap=True)
    return 0


def _eval(task: str, run: str, args: list[str], json_path: str | None = None) -> int:
    from zrenie.api import evaluate
    from zrenie.config import atomic_path, parse_overrides

    overrides = parse_overrides(args)
    split = overrides.pop("split", "test")
    result = evaluate(run, split=split, task=task, **overrides)
    print(f"{split} ({result['checkpoint']}):")
    for k, v in result["metrics"].items():
        print(f"  {k:16s} {v:.4f}")
    for note in result.get("notes", []):
        print(note)
    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(result["metrics"], indent=2))
        print(f"metrics: {json_path}")
    return 0


def _keys(task: str, pattern: str) -> int:
    from rich.console import Console
    from rich.table import Table

    from zrenie.config import describe_keys, new_config

    table = Table("key", "type", "default", "help", title=f"zrenie {task} train: config keys")
    for info in describe_keys(new_config(task)):
        if fnmatch.fnmatch(info.key, pattern):
            table.add_row(info.key, info.type, "null" if info.value is None else str(info.value), info.help)
    Console(width=160).print(table)
    return 0


def _predict_options(args: list[str]) -> tuple[list[str], dict]:
    """Splits predict's arguments into images and the task's `key=value` options (`conf=0.3 iou=0.5`);
    an argument that names an existing file stays an image even with a `=` in its name."""
    import yaml

    images, options = [], {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key.isidentifier() and not Path(arg).exists():
            options[key] = yaml.safe_load(value)
        else:
            images.append(arg)
    return images, options


def _predict(task: str, run: str, images: list[str], topk: int, json_path: str | None,
             recursive: bool = False, out: str = "predictions") -> int:
    from zrenie.api import predict
    from zrenie.engine.logging import console
    from zrenie.nn.checkpoint import load_checkpoint, resolve_checkpoint
    from zrenie.tasks import get_task

    path = resolve_checkpoint(run)
    state = load_checkpoint(path, task=task)
    images, options = _predict_options(images)
    if "topk" in inspect.signature(get_task(task).predict).parameters:
        options.setdefault("topk", topk)
    results = predict(path, images, task=task, recursive=recursive, **options)
    console.print(f"checkpoint: {path} (epoch {state['epoch']}, best {state.get('best')})", highlight=False,
                  soft_wrap=True)
    text = json.dumps([r.to_dict() for r in results], indent=2)
    pictures = [path for r in results for path in r.write_files(out)]
    if results:
        pictures += type(results[0]).write_collection(results, out)
    if pictures:
        console.print(f"wrote {len(pictures)} files to {out}/", highlight=False, soft_wrap=True)
    if json_path == "-":
        print(text)
        return 0
    from rich.console import Console
    from rich.table import Table

    rows = [row for r in results for row in r.rows()]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console().print(table)
    if json_path:
        from zrenie.config import atomic_path

        with atomic_path(json_path) as tmp:
            tmp.write_text(text)
        print(f"predictions: {json_path}")
    return 0


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


def _list(what: str, pattern: str, task: str | None) -> int:
    if what == "models":
        from zrenie.models import list_models

        names = list_models(pattern, task=task)
    elif what == "tasks":
        from zrenie.tasks import list_tasks

        names = [n for n in list_tasks() if fnmatch.fnmatch(n, pattern)]
    elif what == "datasets":
        from zrenie.data.catalog import list_datasets

        names = list_datasets(pattern)
    else:
        from zrenie.config import list_recipes, shipped_recipes

        names = [f"{name:24s} {shipped_recipes() / name}.yaml" for name in list_recipes(pattern)]
    print("\n".join(names))
    return 0


def _dispatch(ns: argparse.Namespace) -> int:
    from zrenie.tasks import list_tasks

    if ns.command in list_tasks():
        return _dispatch_task(ns)
    if ns.command == "list":
        return _list(ns.what, ns.pattern, ns.task)
    if ns.command == "compare":
        return _compare(ns.runs, ns.out)
    if ns.command == "imgproc":
        from zrenie.cli.imgproc import main as imgproc_main

        return imgproc_main(ns.args)
    if ns.command == "demo":
        return _train("classify", ["digits_cnn", "out=runs/demo", "overwrite=true"])
    _parser().print_help()
    return 0


def _dispatch_task(ns: argparse.Namespace) -> int:
    import zrenie.api
    from zrenie.tasks import get_task

    task = ns.command
    if ns.verb == "train":
        return _train(task, ns.args)
    if ns.verb == "eval":
        return _eval(task, ns.run, ns.args, ns.json)
    if ns.verb == "predict":
        return _predict(task, ns.run, ns.images, ns.topk, ns.json, ns.recursive, ns.out)
    if ns.verb == "keys":
        return _keys(task, ns.pattern)
    if ns.verb in ("export", "report"):
        path = (zrenie.api.export(ns.run, ns.out, task=task) if ns.verb == "export"
                else zrenie.api.report(ns.run, task=task))
        print(f"{ns.verb}: {path}")
        return 0
    return get_task(task).verbs[ns.verb].run(ns, zrenie.api)


def main(argv: list[str] | None = None) -> int:
    from zrenie.errors import ZrenieError, write_error

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["imgproc"]:  # its own grammar, --help and -q included
        ns = argparse.Namespace(command="imgproc", args=argv[1:])
    else:
        ns = _parser().parse_args(argv)
    from zrenie.engine.trainer import TrainingInterrupted

    previous_format = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.formatwarning = lambda message, category, *a, **k: f"warning: {message}\n"
        try:
            return _dispatch(ns)
        except TrainingInterrupted as err:
            print(str(err), file=sys.stderr)
            return err.exit_code
        except BrokenPipeError:  # `zrenie ... --json - | head`: the reader left; nothing to say
            sys.stdout = open(os.devnull, "w")
            return 0
        except ZrenieError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # a folder made or a file written outside atomic_path (run folder, lock)
            failure = write_error(err)
            if failure is None:
                raise
            print(f"error: {failure}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            warnings.formatwarning = previous_format  # catch_warnings restores filters, not the format


if __name__ == "__main__":
    sys.exit(main())
