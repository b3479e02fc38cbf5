"""`zrenie imgproc` through main() and as a subprocess: ops, pipelines, folders, 16-bit files, errors."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from zrenie.cli import imgproc as cli
from zrenie.imgproc import adjust, color, edges, filters
from zrenie.imgproc.io import read_image

from ._photos import small_uint8


@pytest.fixture
def photo_png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(small_uint8("chelsea")).save(path)
    return path


def read_float(path) -> torch.Tensor:
    return read_image(path, channels=None).float() / 255


def test_list_names_every_op_with_parameters(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in cli.OPS:
        assert f"{name}(" in out
    assert "gaussian_blur(sigma, kernel_size=None, border='reflect')" in out
    assert "astronaut" in out


def test_single_op_with_a_parameter(photo_png, tmp_path):
    out = tmp_path / "out.png"
    assert cli.main(["gaussian_blur", str(photo_png), str(out), "sigma=2"]) == 0
    expected = filters.gaussian_blur(read_float(photo_png), 2)
    assert (read_float(out) - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_pipeline_equals_the_composition(photo_png, tmp_path):
    out = tmp_path / "hue.png"
    assert cli.main(["rgb_to_hsv | hue_shift(0.1) | hsv_to_rgb", str(photo_png), str(out)]) == 0
    expected = color.hsv_to_rgb(adjust.hue_shift(color.rgb_to_hsv(read_float(photo_png)), 0.1))
    assert (read_float(out) - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_trailing_parameters_reach_every_stage_that_takes_them():
    stages = cli.parse_pipeline("box_blur | median_blur(5)", {"border": "replicate"})
    assert stages == [("box_blur", {"border": "replicate"}), ("median_blur", {"kernel_size": 5, "border": "replicate"})]


def test_user_kernel_is_parsed_as_a_tensor():
    [(name, kwargs)] = cli.parse_pipeline("filter2d(kernel=[[0, -1, 0], [-1, 5, -1], [0, -1, 0]])")
    assert name == "filter2d" and kwargs["kernel"].shape == (3, 3)


def test_builtin_photo_canny_and_compare(tmp_path):
    out = tmp_path / "edges.png"
    assert cli.main(["canny", "photo:astronaut", str(out), "low=0.1", "high=0.2", "--compare"]) == 0
    from zrenie.data.builtin.photos import load_photo

    expected = edges.canny(load_photo("astronaut"), 0.1, 0.2)
    assert torch.equal(read_float(out), expected)
    side_by_side = Image.open(tmp_path / "edges_compare.png")
    assert side_by_side.size == (2 * 512 + 8, 512) and side_by_side.mode == "RGB"


def test_folder_mode_keeps_names(tmp_path):
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    Image.fromarray(small_uint8("coffee")).save(source / "a.png")
    Image.fromarray(small_uint8("china")[..., 0]).save(source / "b.jpg")  # gray, JPEG
    (source / "notes.txt").write_text("not an image")
    assert cli.main(["invert", str(source), str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["a.png", "b.jpg"]
    assert read_image(target / "b.jpg", channels=None).shape[0] == 1


def test_sixteen_bit_gray_png_keeps_its_depth(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    source, out = tmp_path / "g16.png", tmp_path / "o16.png"
    Image.fromarray(ramp).save(source)
    assert cli.main(["adjust_gamma", str(source), str(out), "gamma=2.0"]) == 0
    written = np.asarray(Image.open(out))
    assert written.dtype == np.uint16 or Image.open(out).mode.startswith("I")
    expected = (ramp / 65535) ** 2 * 65535
    assert np.abs(written.astype(np.float64) - expected).max() <= 1.0  # 16-bit precision, not 8-bit


def test_sixteen_bit_rgb_png_keeps_its_depth(tmp_path):
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 65535).astype(np.uint16)
    source, out = tmp_path / "c16.png", tmp_path / "o16.png"
    cv2.imwrite(str(source), rgb[..., ::-1])
    assert cli.main(["rgb_to_bgr", str(source), str(out)]) == 0
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)  # BGR of a BGR image: the RGB array
    assert written.dtype == np.uint16 and np.array_equal(written, rgb)


def test_gray_input_to_a_colour_op(tmp_path):
    source, out = tmp_path / "gray.png", tmp_path / "out.png"
    Image.fromarray(small_uint8("astronaut")[..., 1]).save(source)
    assert cli.main(["rgb_to_hsv | hue_shift(0.2) | hsv_to_rgb", str(source), str(out)]) == 0
    assert read_image(out, channels=None).shape[0] == 3


@pytest.mark.parametrize("args, words", [
    (["canny", "missing.jpg", "{tmp}/out.png"], "image not found: missing.jpg"),
    (["canny", "{tmp}/fake.png", "{tmp}/out.png"], "not a readable image"),
    (["gaussan_blur", "photo:astronaut", "{tmp}/out.png"], "did you mean gaussian_blur"),
    (["gaussian_blur", "photo:astronaut", "{tmp}/out.png", "sigmaa=2"], "unknown parameter 'sigmaa'"),
    (["gaussian_blur", "photo:astronaut", "{tmp}/out.png"], "missing a required argument: 'sigma'"),
    (["box_blur", "photo:nope", "{tmp}/out.png"], "unknown photo 'nope'"),
    (["box_blur", "photo:astronaut", "{tmp}/out.xyz"], "unknown image extension"),
    (["median_blur(kernel_size=4)", "photo:astronaut", "{tmp}/out.png"], "odd"),
    (["box_blur", "photo:astronaut"], "usage"),
])
def test_user_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, words):
    (tmp_path / "fake.png").write_text("this is text, not a PNG")
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.png"]


def test_module_entry_point_runs_and_fails_cleanly(tmp_path):
    out = tmp_path / "o.png"
    done = subprocess.run([sys.executable, "-m", "zrenie.cli.imgproc", "sepia", "photo:coffee", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and out.is_file(), done.stderr
    failed = subprocess.run([sys.executable, "-m", "zrenie.cli.imgproc", "sepia", str(tmp_path / "no.jpg"), str(out)],
                            capture_output=True, text=True)
    assert failed.returncode == 2
    assert failed.stderr.strip().count("\n") == 0 and "Traceback" not in failed.stderr


def test_every_cli_op_is_importable_and_has_a_module_form():
    import zrenie.imgproc as imgproc

    for name in cli.OPS:
        assert getattr(imgproc, name) is cli.OPS[name]
        module_name = "".join(part.capitalize() for part in name.split("_"))
        assert issubclass(getattr(imgproc, module_name), torch.nn.Module), module_name


def test_paths_may_contain_equals_signs(tmp_path, photo_png):
    odd = tmp_path / "a=b.png"
    photo_png.rename(odd)
    assert cli.main(["invert", str(odd), str(tmp_path / "c=d.png")]) == 0
    assert cli.main(["invert", str(odd), str(tmp_path / "e.png"), "--fast"]) == 2
