"""The run report page, read back with the standard library's HTML parser."""

import csv
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zrenie.config import new_config, to_dict
from zrenie.report.html import Section, format_value
from zrenie.report.plots import plot_learning_curves
from zrenie.report.run_report import (
    best_epoch,
    config_groups,
    format_count,
    format_duration,
    trivial_metrics,
    write_run_report,
)

EVIL = "<script>alert(1)</script>"
# Epoch 4 was not validated (eval_every); val/acc1 peaks at epoch 3, val/loss bottoms out at epoch 5.
METRICS_CSV = """epoch,lr,time,images_per_s,train/loss,train/acc1,val/loss,val/acc1,val/acc5
1,0.1,3.2,900,2.31,0.21,1.80,0.41,1
2,0.08,3.1,910,1.20,0.55,0.95,0.70,1
3,0.05,3.0,905,0.40,0.81,0.52,0.8123,1
4,0.02,3.0,899,0.15,0.90,,,
5,0.001,3.1,902,0.05,0.97,0.50,0.7988,1
"""
TEST_METRICS = {"loss": 0.4321, "acc1": 0.7654, "acc5": 1.0, "mean_class_acc": 0.7531}
INFO = {
    "device": "cpu",
    "amp": None,
    "wall_time_s": 125.4,
    "parameters": 12345,
    "counts": {"train": 1437, "val": 180, "test": 180},
    "image_size": 8,
    "weights": None,
    "resumed_from": None,
    "num_classes": 5,
}


class _Page(HTMLParser):
    """Tables as lists of rows of cell texts, with the h2/h3 headings and the <details> they sit in."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[str] = []
        self.headings: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self._details = 0
        self._heading: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "details":
            self._details += 1
        elif tag == "table":
            self.tables.append({"rows": [], "css": attrs.get("class"), "in_details": self._details > 0,
                                "after": self.headings[-1][1] if self.headings else None})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h2", "h3"):
            self._heading = tag
            self.headings.append((tag, ""))
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "details":
            self._details -= 1
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell))
            self._cell = None
        elif tag in ("h2", "h3"):
            self._heading = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            tag, text = self.headings[-1]
            self.headings[-1] = (tag, text + data)


def _parse(path: Path) -> tuple[str, _Page]:
    page = path.read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(page)
    return page, parser


def _csv_column(path: Path, column: str) -> tuple[list[int], list[float]]:
    """The epochs that have a value in `column`, read with the csv module alone."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r[column]]
    return [int(r["epoch"]) for r in rows], [float(r[column]) for r in rows]


def _config(**overrides) -> dict:
    config = to_dict(new_config("classify"))
    config["data"].update(name="digits", batch_size=64)
    config["model"]["kwargs"] = {EVIL: EVIL}
    config.update(overrides)
    return config


def _run(tmp_path: Path, config: dict | None = None, test_metrics=None, info=None, metrics_csv=METRICS_CSV) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    if metrics_csv is not None:
        (run_dir / "metrics.csv").write_text(metrics_csv)
    Image.new("RGB", (20, 10)).save(run_dir / "confusion_matrix.png")
    sections = [
        Section(title="Confusion matrix", images=["confusion_matrix.png"], text="rows: true class"),
        Section(title="Per-class precision, recall and F1", table=[{"class": "cat", "support": 7}]),
    ]
    config = _config() if config is None else config
    return write_run_report(run_dir, "classify: simple_cnn on digits", config,
                            TEST_METRICS if test_metrics is None else test_metrics, sections,
                            INFO if info is None else info)


def test_summary_shows_what_was_run(tmp_path):
    page, parsed = _parse(_run(tmp_path))
    summary = parsed.tables[0]
    assert summary["css"] == "summary" and not summary["in_details"]
    rows = dict(summary["rows"])
    assert rows["task"] == "classify"
    assert rows["model"] == "simple_cnn (12,345 (12.3 k) parameters)"
    assert rows["data"] == "digits"
    assert rows["images"] == "train 1,437 · val 180 · test 180"
    assert rows["image size"] == "8 x 8 px"
    assert rows["device"] == "cpu"
    assert rows["mixed precision"] == "off"
    assert rows["wall time"] == "2 min 05 s"
    assert rows["epochs"] == "5 of 10"  # the config asked for 10; metrics.csv holds 5
    assert "initial weights" not in rows and "resumed from" not in rows  # given as None


def test_best_epoch_is_the_argmax_of_the_monitored_column(tmp_path):
    run_dir = tmp_path / "run"
    page, parsed = _parse(_run(tmp_path, config=_config(monitor="val/acc1", monitor_mode="max")))
    epochs, acc1 = _csv_column(run_dir / "metrics.csv", "val/acc1")
    best = epochs[int(np.argmax(acc1))]
    assert best == 3
    assert dict(parsed.tables[0]["rows"])["best epoch"] == f"{best} (highest val/acc1)"

    metrics = parsed.tables[1]
    assert parsed.headings[0] == ("h2", "Metrics of best.pt")
    assert metrics["rows"][0] == ["metric", f"val (epoch {best})", "test"]
    by_name = {row[0]: row[1:] for row in metrics["rows"][1:]}
    with open(run_dir / "metrics.csv", newline="") as f:
        best_row = next(r for r in csv.DictReader(f) if r["epoch"] == str(best))
    assert by_name["acc1"] == [format_value(float(best_row["val/acc1"])), format_value(TEST_METRICS["acc1"])]
    assert by_name["loss"] == [format_value(float(best_row["val/loss"])), format_value(TEST_METRICS["loss"])]
    assert by_name["mean_class_acc"] == ["", format_value(TEST_METRICS["mean_class_acc"])]  # test only


def test_best_epoch_follows_monitor_mode_and_none(tmp_path):
    epochs = [{"epoch": 1.0, "val/loss": 0.9}, {"epoch": 2.0, "val/loss": 0.4}, {"epoch": 3.0},
              {"epoch": 4.0, "val/loss": 0.4}]
    assert best_epoch(epochs, "val/loss", "min") == (epochs[1], "lowest val/loss")  # the first of equals
    assert best_epoch(epochs, "val/loss", "max")[0] is epochs[0]
    assert best_epoch(epochs, "none", "max") == (epochs[-1], "last epoch (monitor none)")
    assert best_epoch(epochs, "val/miou", "max")[1] == "last epoch (no val/miou in metrics.csv)"
    assert best_epoch([], "val/loss", "min") is None

    _, parsed = _parse(_run(tmp_path, config=_config(monitor="none")))
    assert dict(parsed.tables[0]["rows"])["best epoch"] == "5 (last epoch (monitor none))"
    assert parsed.tables[1]["rows"][0][1] == "val (epoch 5)"


def test_test_metrics_appear_exactly_once(tmp_path):
    page, parsed = _parse(_run(tmp_path))
    text = "".join(parsed.text)
    for name in ("acc1", "loss", "mean_class_acc"):
        assert text.count(format_value(TEST_METRICS[name])) == 1, name
    headers = [row for table in parsed.tables for row in table["rows"][:1]]
    assert sum(row.count("test") for row in headers) == 1
    assert "Test metrics" not in text


def test_top_k_accuracy_left_out_when_k_covers_every_class(tmp_path):
    run_dir = tmp_path / "run"
    page, parsed = _parse(_run(tmp_path))  # five classes: acc5 is 1 for any model
    cells = [cell for table in parsed.tables if not table["in_details"] for row in table["rows"] for cell in row]
    assert "acc5" not in cells and "acc1" in cells
    # The curves are those of every column but acc5, pixel for pixel.
    reference = plot_learning_curves(run_dir / "metrics.csv", tmp_path / "reference.png", exclude={"acc5"},
                                     best_epoch=3)
    with Image.open(run_dir / "learning_curves.png") as got, Image.open(reference) as want:
        assert np.array_equal(np.asarray(got), np.asarray(want))

    _, six = _parse(_run(tmp_path / "six", info={**INFO, "num_classes": 6}))
    assert "acc5" in [row[0] for row in six.tables[1]["rows"]]


def test_trivial_metrics():
    names = ["loss", "acc1", "acc3", "acc5", "mean_class_acc", "acc10x"]
    assert trivial_metrics(names, 5) == {"acc5"}
    assert trivial_metrics(names, 3) == {"acc3", "acc5"}
    assert trivial_metrics(names, 1) == {"acc1", "acc3", "acc5"}
    assert trivial_metrics(names, 6) == set()
    assert trivial_metrics(names, None) == set()


def test_num_classes_falls_back_to_the_config(tmp_path):
    config = _config()
    config["data"]["num_classes"] = 4
    info = {k: v for k, v in INFO.items() if k != "num_classes"}
    page, _ = _parse(_run(tmp_path, config=config, info=info))
    assert "acc5" not in page.split("<details>")[0]
    page, _ = _parse(_run(tmp_path / "unknown", info=info))
    assert "acc5" in page.split("<details>")[0]  # unknown class count: nothing is left out


def test_config_is_a_collapsed_table_of_dotted_keys(tmp_path):
    config = _config(seed=7)
    page, parsed = _parse(_run(tmp_path, config=config))
    assert "<script" not in page.lower() and "script" not in parsed.tags
    tables = [t for t in parsed.tables if t["in_details"]]
    groups = {t["after"]: dict(t["rows"]) for t in tables}
    assert list(groups) == ["run", "data", "model", "optim", "classify"]
    assert groups["run"]["seed"] == "7" and groups["run"]["task"] == "classify"
    assert groups["data"]["data.batch_size"] == "64"
    assert groups["optim"]["optim.lr"] == "0.1"
    assert groups["optim"]["optim.betas"] == "null"
    assert groups["model"]["model.small_input"] == "false"
    assert groups["model"][f"model.kwargs.{EVIL}"] == EVIL  # escaped on the page, read back intact
    assert sum(len(keys) for keys in config_groups(config).values()) == sum(len(t["rows"]) for t in tables)
    # Collapsed, between the summary and the pictures.
    assert page.index('class="summary"') < page.index("<details>") < page.index("<img")
    assert "<details open" not in page


def test_config_groups_flatten_nested_sections():
    config = {"task": "classify", "epochs": 3, "optim": {"lr": 0.001, "D": {"lr": 2e-4}, "betas": [0.5, 0.99]},
              "model": {"kwargs": {}}}
    assert config_groups(config) == {
        "run": {"task": "classify", "epochs": "3"},
        "optim": {"optim.lr": "0.001", "optim.D.lr": "0.0002", "optim.betas": "[0.5, 0.99]"},
        "model": {"model.kwargs": "{}"},
    }
    assert config_groups({"task": "t", "empty": {}}) == {"run": {"task": "t", "empty": "{}"}}


def test_learning_curves_and_learning_rate_pictures(tmp_path):
    run_dir = tmp_path / "run"
    page, parsed = _parse(_run(tmp_path))
    assert parsed.images == ["learning_curves.png", "learning_rate.png", "confusion_matrix.png"]
    for name in ("learning_curves.png", "learning_rate.png"):
        with Image.open(run_dir / name) as im:
            assert im.format == "PNG"
    titles = [text for tag, text in parsed.headings if tag == "h2"]
    assert titles == ["Metrics of best.pt", "Learning curves", "Confusion matrix",
                      "Per-class precision, recall and F1"]
    assert "://" not in page and not {"script", "link", "iframe"} & set(parsed.tags)


def test_without_metrics_csv_or_lr_column(tmp_path):
    _, parsed = _parse(_run(tmp_path, metrics_csv=None, info={"device": "cuda:0", "amp": "bf16"}))
    rows = dict(parsed.tables[0]["rows"])
    assert rows["device"] == "cuda:0" and rows["mixed precision"] == "bf16"
    assert rows["epochs"] == "10" and "best epoch" not in rows and "wall time" not in rows
    assert parsed.tables[1]["rows"][0] == ["metric", "test"]
    assert parsed.images == ["confusion_matrix.png"]

    no_lr = "epoch,train/loss,val/loss\n1,1.0,1.1\n2,0.8,0.9\n"
    run_dir = tmp_path / "no_lr" / "run"
    _, parsed = _parse(_run(tmp_path / "no_lr", metrics_csv=no_lr, info={}, config=_config(monitor="val/loss",
                                                                                            monitor_mode="min")))
    assert parsed.images == ["learning_curves.png", "confusion_matrix.png"]
    assert not (run_dir / "learning_rate.png").exists()


def test_shown_extras(tmp_path):
    info = {**INFO, "weights": "resnet18-f37072fd.pth", "resumed_from": "runs/a/last.pt", "parameters": 11_689_512,
            "wall_time_s": 7384.0}
    _, parsed = _parse(_run(tmp_path, info=info))
    rows = dict(parsed.tables[0]["rows"])
    assert rows["initial weights"] == "resnet18-f37072fd.pth"
    assert rows["resumed from"] == "runs/a/last.pt"
    assert rows["wall time"] == "2 h 03 min"
    assert rows["model"] == "simple_cnn (11,689,512 (11.7 M) parameters)"


@pytest.mark.parametrize("seconds, text", [(0.25, "0.2 s"), (59.94, "59.9 s"), (60, "1 min 00 s"),
                                           (3599.4, "59 min 59 s"), (3600, "1 h 00 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_format_count():
    assert format_count(999) == "999"
    assert format_count(25_557_032) == "25,557,032 (25.6 M)"
