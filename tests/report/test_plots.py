"""Report pictures: files are real PNGs drawn from the data passed in."""

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

from zrenie.errors import DataError, ShapeError
from zrenie.report.plots import (
    _upscale_nearest,
    image_grid,
    plot_confusion_matrix,
    plot_learning_curves,
    plot_learning_rate,
    read_epochs,
    read_metric_columns,
    uses_log_scale,
)

METRICS_CSV = """epoch,lr,time,train/loss,val/loss,val/acc1,train/acc1,val/iou/mean
1,0.1,3.2,2.30,,,0.11,
2,0.1,3.1,1.90,1.95,0.42,0.40,0.30
3,0.05,3.0,1.50,,,0.55,
4,0.01,3.0,1.20,1.40,0.61,0.66,0.45
"""


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _count_colour(pixels: np.ndarray, rgb: tuple[int, ...], tol: int = 3) -> int:
    return int((np.abs(pixels.astype(int) - np.array(rgb)).max(axis=-1) <= tol).sum())


def _has_colour(pixels: np.ndarray, rgb: tuple[int, ...], tol: int = 3) -> bool:
    return _count_colour(pixels, rgb, tol) > 0


def _cmap_rgb(value: float) -> tuple[int, ...]:
    return tuple(int(round(255 * c)) for c in colormaps["Blues"](value)[:3])


def _no_temp_files(folder: Path) -> bool:
    return not any(p.name.startswith(".tmp-") for p in folder.iterdir())


def test_read_metric_columns_groups_by_metric_and_skips_empty_cells(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(METRICS_CSV)
    curves, x_label = read_metric_columns(csv_path)
    assert x_label == "epoch"
    assert list(curves) == ["loss", "acc1", "iou/mean"]  # lr and time are not curves
    assert curves["loss"]["train"] == ([1.0, 2.0, 3.0, 4.0], [2.30, 1.90, 1.50, 1.20])
    assert curves["loss"]["val"] == ([2.0, 4.0], [1.95, 1.40])
    assert set(curves["acc1"]) == {"val", "train"}
    assert curves["iou/mean"]["val"] == ([2.0, 4.0], [0.30, 0.45])


def test_plot_learning_curves_writes_png(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(METRICS_CSV)
    out = plot_learning_curves(csv_path, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    with Image.open(out) as im:
        assert im.format == "PNG"
        width, height = im.size
    assert 600 <= width <= 2000 and 200 <= height <= 1500  # three subplots side by side
    assert _no_temp_files(out.parent)


def test_plot_learning_curves_without_metric_columns_or_file(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,lr\n1,0.1\n")
    out = plot_learning_curves(csv_path, tmp_path / "curves.png")
    with Image.open(out) as im:
        assert im.size[0] > 100
    with pytest.raises(DataError, match="missing.csv"):
        plot_learning_curves(tmp_path / "missing.csv", tmp_path / "x.png")


def test_read_epochs_keeps_numbers_and_drops_empty_cells(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(METRICS_CSV)
    epochs = read_epochs(csv_path)
    assert len(epochs) == 4
    assert epochs[0] == {"epoch": 1.0, "lr": 0.1, "time": 3.2, "train/loss": 2.30, "train/acc1": 0.11}
    assert epochs[1]["val/iou/mean"] == 0.30
    assert list(epochs[1]) == [
        "epoch", "lr", "time", "train/loss", "val/loss", "val/acc1", "train/acc1", "val/iou/mean",
    ]


def test_log_scale_only_for_a_loss_spanning_more_than_ten():
    assert uses_log_scale("loss", [2.3, 0.9, 0.2])  # 11.5x
    assert not uses_log_scale("loss", [2.3, 0.9, 0.3])  # 7.7x
    assert uses_log_scale("loss_box", [5.0, 0.1])
    assert not uses_log_scale("acc1", [0.01, 0.99])  # a bounded score stays linear
    assert not uses_log_scale("loss", [3.0, 0.01, -0.5])  # a log axis cannot show values <= 0
    assert not uses_log_scale("loss", [])


def test_plot_learning_curves_exclude_and_best_epoch(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(METRICS_CSV)
    full = _pixels(plot_learning_curves(csv_path, tmp_path / "full.png"))
    fewer = _pixels(plot_learning_curves(csv_path, tmp_path / "fewer.png", exclude={"acc1", "iou/mean"}))
    assert fewer.shape[1] < full.shape[1] / 2  # one subplot instead of three
    marked = _pixels(plot_learning_curves(csv_path, tmp_path / "marked.png", best_epoch=4))
    assert marked.shape == full.shape and not np.array_equal(marked, full)


def test_loss_spanning_more_than_ten_is_drawn_on_a_log_axis(tmp_path):
    narrow, wide = tmp_path / "narrow.csv", tmp_path / "wide.csv"
    narrow.write_text("epoch,train/loss\n1,2.0\n2,1.0\n3,0.5\n")
    wide.write_text("epoch,train/loss\n1,2.0\n2,0.2\n3,0.02\n")
    # On a log axis 2.0, 0.2, 0.02 are equally spaced; on a linear one the last two points are nearly level.
    for path, log in ((narrow, False), (wide, True)):
        pixels = _pixels(plot_learning_curves(path, path.with_suffix(".png")))
        line = _line_heights(pixels, (31, 119, 180))  # matplotlib's C0
        drops = np.diff(line)
        assert (abs(drops[0] - drops[1]) < 0.2 * drops[0]) == log


def _line_heights(pixels: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """The row of the line's marker at its first, middle and last column (rows grow downwards)."""
    ys, xs = np.nonzero((np.abs(pixels.astype(int) - np.array(rgb)).max(axis=-1) <= 3))
    columns = [xs.min() + 3, (xs.min() + xs.max()) // 2, xs.max() - 3]
    return np.array([ys[np.abs(xs - c) <= 1].mean() for c in columns])


def test_plot_learning_rate(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(METRICS_CSV)
    out = plot_learning_rate(csv_path, tmp_path / "lr.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 200
    assert _count_colour(_pixels(out), (44, 160, 44)) > 100  # matplotlib's C2 line
    (tmp_path / "no_lr.csv").write_text("epoch,train/loss\n1,1.0\n")
    with pytest.raises(DataError, match="no lr column"):
        plot_learning_rate(tmp_path / "no_lr.csv", tmp_path / "x.png")


def test_confusion_matrix_colours_follow_the_matrix(tmp_path):
    classes = ["cat", "dog", "bird"]
    identity = _pixels(plot_confusion_matrix(torch.eye(3) * 10, classes, tmp_path / "identity.png"))
    uniform = _pixels(plot_confusion_matrix(np.ones((3, 3)), classes, tmp_path / "uniform.png"))
    # Normalised rows: the identity's three diagonal cells are 1.0 (darkest blue), the uniform matrix's
    # nine cells are all 1/3. The colour bar holds a thin strip of every colour in both pictures.
    darkest, third = _cmap_rgb(1.0), _cmap_rgb(1 / 3)
    cell_area = 2000  # pixels: a cell of a 3x3 matrix is about 90 px wide at 100 dpi
    assert _count_colour(identity, darkest) > _count_colour(uniform, darkest) + 3 * cell_area
    assert _count_colour(uniform, third) > _count_colour(identity, third) + 9 * cell_area


def test_confusion_matrix_is_deterministic_and_depends_on_counts(tmp_path):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 20, size=(5, 5))
    classes = [f"class {i}" for i in range(5)]
    a = _pixels(plot_confusion_matrix(cm, classes, tmp_path / "a.png"))
    b = _pixels(plot_confusion_matrix(torch.from_numpy(cm), classes, tmp_path / "b.png"))
    other = cm.copy()
    other[0, 1] += 7
    c = _pixels(plot_confusion_matrix(other, classes, tmp_path / "c.png"))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    raw = _pixels(plot_confusion_matrix(cm, classes, tmp_path / "raw.png", normalize=False))
    assert not np.array_equal(a, raw)


def test_confusion_matrix_many_classes_and_bad_shapes(tmp_path):
    cm = torch.randint(0, 5, (30, 30))
    out = plot_confusion_matrix(cm, [str(i) for i in range(30)], tmp_path / "big.png")
    with Image.open(out) as im:
        assert min(im.size) >= 500
    with pytest.raises(ShapeError, match="class names"):
        plot_confusion_matrix(torch.eye(3), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ShapeError, match=r"\[C, C\]"):
        plot_confusion_matrix(torch.ones(2, 3), ["a", "b"], tmp_path / "x.png")


def test_upscale_nearest_repeats_pixels():
    images = torch.rand(2, 1, 8, 8)
    big = _upscale_nearest(images)
    assert big.shape == (2, 1, 64, 64)
    assert torch.equal(big[:, :, ::8, ::8], images)
    assert _upscale_nearest(torch.rand(1, 3, 96, 80)).shape == (1, 3, 96, 80)


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_writes_captioned_grid(tmp_path, channels):
    images = torch.rand(10, channels, 8, 8)
    captions = [f"true {i} / pred {(i + 1) % 10} (0.{i}1)" for i in range(10)]
    out = image_grid(images, captions, tmp_path / "grid" / "g.png", ncols=5)
    with Image.open(out) as im:
        width, height = im.size
    assert 500 <= width <= 1500 and height > 200
    assert height < width  # two rows of five
    assert _no_temp_files(out.parent)


def test_image_grid_shows_the_images_passed(tmp_path):
    images = torch.zeros(3, 3, 16, 16)
    images[1, 0] = 1.0  # one pure red image
    with_red = _pixels(image_grid(images, ["a", "b", "c"], tmp_path / "red.png"))
    without = _pixels(image_grid(torch.zeros(3, 3, 16, 16), ["a", "b", "c"], tmp_path / "black.png"))
    assert _has_colour(with_red, (255, 0, 0), tol=0)
    assert not _has_colour(without, (255, 0, 0), tol=30)


def test_image_grid_rejects_bad_input(tmp_path):
    with pytest.raises(ShapeError, match="captions"):
        image_grid(torch.rand(3, 1, 8, 8), ["a"], tmp_path / "x.png")
    with pytest.raises(ShapeError, match="1 or 3"):
        image_grid(torch.rand(3, 2, 8, 8), ["a", "b", "c"], tmp_path / "x.png")
    empty = image_grid(torch.rand(0, 3, 8, 8), [], tmp_path / "empty.png")
    assert empty.is_file()
