"""`zrenie imgproc` through main() and as a subprocess: ops, pipelines, folders, 16-bit files, errors."""

from __future__ import annotations

import inspect
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

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
    assert "gaussian_blur(sigma, kernel_size=None, border='reflect', backend='auto')" in out
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


# The command as a user runs it: `python -m zrenie imgproc ...` in a child process.

def zrenie_imgproc(*args, cwd, umask: int = -1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "zrenie", "imgproc", *map(str, args)], cwd=cwd, env=env,
                          umask=umask, capture_output=True, text=True, timeout=120)


@pytest.fixture
def imgproc_here(monkeypatch, capsys):
    """`zrenie imgproc ...` through main() in this process, for the variants of a case a child already runs."""

    def run(*args, cwd) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        code = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def assert_one_line_error(done: subprocess.CompletedProcess, words: str, code: int = 2) -> None:
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and words in done.stderr, done.stderr


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under `folder` (links not followed) with its mtime and bytes, to show nothing changed."""
    entries = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes() if path.is_file() else b""
            entries[str(path.relative_to(folder))] = (path.lstat().st_mtime_ns, content)
    return entries


def save_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def small_png(tmp_path) -> Path:
    """A 64x48 RGB PNG with a gradient, so inverting it is checkable byte for byte."""
    ramp = np.arange(48 * 64 * 3, dtype=np.uint32).reshape(48, 64, 3) % 256
    return save_png(tmp_path / "in.png", ramp.astype(np.uint8))



@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_through_zrenie(tmp_path, flag):
    done = zrenie_imgproc(flag, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("usage:") and "examples:" in done.stdout


@pytest.mark.parametrize("args", [["list", "--help"], ["--help"], ["-h"]])
def test_help_prints_usage_with_examples(tmp_path, args):
    if args[0] == "list":
        done = zrenie_imgproc(*args, cwd=tmp_path)
    else:  # the module's own entry point, until zrenie passes a leading option through (see above)
        done = subprocess.run([sys.executable, "-m", "zrenie.cli.imgproc", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("usage:") and "examples:\n  zrenie imgproc gaussian_blur" in done.stdout
    assert "N written, M failed" in done.stdout  # the folder mode's behaviour is documented
    assert list(tmp_path.iterdir()) == []


def test_op_help_shows_parameters_with_defaults_and_summary(tmp_path):
    done = zrenie_imgproc("gaussian_blur", "--help", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    summary = inspect.getdoc(filters.gaussian_blur).splitlines()[0]
    assert f"gaussian_blur: {summary}" in done.stdout
    signature = inspect.signature(filters.gaussian_blur).parameters
    assert signature["sigma"].default is inspect.Parameter.empty and "\n  sigma  (required" in done.stdout
    assert signature["kernel_size"].default is None and "\n  kernel_size=None  (" in done.stdout
    assert f"\n  border={signature['border'].default}  (text)" in done.stdout
    assert "examples:\n  zrenie imgproc gaussian_blur photo:astronaut gaussian_blur.png sigma=2" in done.stdout
    assert list(tmp_path.iterdir()) == []
    pipeline = zrenie_imgproc("invert | canny", "-h", cwd=tmp_path)
    assert pipeline.returncode == 0 and "invert: " in pipeline.stdout and "\n  l2_gradient=true  (" in pipeline.stdout


def test_help_of_an_unknown_op_is_an_error(tmp_path):
    assert_one_line_error(zrenie_imgproc("gausian_blur", "--help", cwd=tmp_path), "did you mean gaussian_blur")


def test_every_op_help_example_runs(tmp_path, small_png, monkeypatch):
    """The examples `OP --help` prints are commands that work, for every op (on a small image for speed)."""
    monkeypatch.chdir(tmp_path)
    save_png(tmp_path / "gray.png", small_uint8("coffee")[:48, :64, 1])
    save_png(tmp_path / "mosaic.png", small_uint8("coffee")[:48, :64, 0])  # a Bayer mosaic's one channel
    for name in cli.OPS:
        assert f"{name}: " in cli.op_help(name)
        single, folder = (shlex.split(example) for example in cli.op_examples(name))
        assert single[:3] == ["zrenie", "imgproc", name] and folder[3:5] == ["photos/", "out/"]
        source = str(small_png) if single[3] == "photo:astronaut" else single[3]
        assert cli.main([name, source, single[4], *single[5:], "-q"]) == 0, name
        assert (tmp_path / single[4]).is_file()


def test_every_default_in_help_reads_back_as_the_default():
    for name in cli.OPS:
        params = list(inspect.signature(cli.OPS[name]).parameters.values())[1:]
        required = inspect.Parameter.empty
        texts = {p.name: cli._EXAMPLE_VALUES[p.name] if p.default is required else cli._as_text(p.default)
                 for p in params}
        [(_, kwargs)] = cli.parse_pipeline(name, {key: cli._value(text, key) for key, text in texts.items()})
        for p in params:
            if p.default is not required:
                assert kwargs[p.name] == p.default and type(kwargs[p.name]) is type(p.default), (name, p.name)


@pytest.mark.parametrize("child, args, words", [
    (True, ["gaussian_blur", "in.png", "out.png", "sigma=abc"],
     "gaussian_blur: sigma: expected number or [number, number], got 'abc'"),
    (False, ["gaussian_blur", "in.png", "out.png", "sigma=0"], "sigma: expected a positive number, got 0"),
    (True, ["gaussian_blur", "in.png", "out.png", "sigma=-1"], "gaussian_blur(sigma=-1): "),
    (False, ["median_blur", "in.png", "out.png", "kernel_size=-3"], "kernel_size: expected a positive int"),
    (True, ["gaussian_blur", "in.png", "out.png", "sigm=2"],
     "unknown parameter 'sigm' for gaussian_blur; did you mean sigma?"),
    (False, ["gaussian_blur(sigm=2) | invert", "in.png", "out.png"], "did you mean sigma?"),
    (False, ["quantize_colors", "in.png", "out.png", "seed=1.5"], "seed: expected integer, got 1.5"),
    (True, ["quantize_colors", "in.png", "out.png", "sample=0"], "quantize_colors(sample=0): "),
    (False, ["invert", "in.png", "out.png", "--quite"], "did you mean --quiet?"),
])
def test_bad_parameter_values_are_one_line_exit_2_and_write_nothing(tmp_path, small_png, imgproc_here, child, args,
                                                                     words):
    before = snapshot(tmp_path)
    assert_one_line_error((zrenie_imgproc if child else imgproc_here)(*args, cwd=tmp_path), words)
    assert snapshot(tmp_path) == before


def test_bad_parameter_in_folder_mode_stops_before_writing(tmp_path, small_png):
    (tmp_path / "photos").mkdir()
    small_png.rename(tmp_path / "photos" / "a.png")
    save_png(tmp_path / "photos" / "b.png", small_uint8("coffee"))
    before = snapshot(tmp_path)
    assert_one_line_error(zrenie_imgproc("gaussian_blur", "photos", "out", "sigma=0", cwd=tmp_path),
                          "photos/a.png: gaussian_blur(sigma=0): sigma: expected a positive number")
    assert snapshot(tmp_path) == before


def test_values_the_help_shows_are_accepted():
    [(_, kwargs)] = cli.parse_pipeline("gaussian_blur", {"sigma": "1e-1", "kernel_size": "None"})
    assert kwargs == {"sigma": 0.1, "kernel_size": None}
    [(_, kwargs)] = cli.parse_pipeline("filter2d_separable(kernel_x=[1, 2, 1], kernel_y=[1, 0, -1])")
    assert torch.equal(kwargs["kernel_y"], torch.tensor([1.0, 0.0, -1.0]))


def test_prints_what_it_wrote_and_quiet_silences_it(tmp_path, small_png, imgproc_here):
    done = zrenie_imgproc("invert", "in.png", "out.png", "--compare", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout == "wrote out.png (64x48, 8-bit RGB)\nwrote out_compare.png (136x48, 8-bit RGB)\n"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), 255 - np.asarray(Image.open(small_png)))
    quiet = zrenie_imgproc("invert", "in.png", "quiet.png", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert (tmp_path / "quiet.png").is_file()
    save_png(tmp_path / "g16.png", (np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16))
    done = imgproc_here("canny", "g16.png", "o16.png", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "wrote o16.png (64x48, 16-bit gray)\n", done.stderr
    done = imgproc_here("invert", "g16.png", "o8.jpg", "--quiet", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "" and (tmp_path / "o8.jpg").is_file()


@pytest.mark.parametrize("child, output", [
    (False, "in.png"), (True, "./in.png"), (True, "link.png"), (False, "hard.png"), (False, "here/in.png"),
    (False, "sub/../in.png")])
def test_output_that_is_the_input_is_refused(tmp_path, small_png, imgproc_here, child, output):
    (tmp_path / "link.png").symlink_to("in.png")
    os.link(small_png, tmp_path / "hard.png")
    (tmp_path / "here").symlink_to(".")
    (tmp_path / "sub").mkdir()
    before = snapshot(tmp_path)
    assert_one_line_error((zrenie_imgproc if child else imgproc_here)("invert", "in.png", output, cwd=tmp_path),
                          "is the input")
    assert snapshot(tmp_path) == before


def test_compare_image_that_is_the_input_is_refused(tmp_path, small_png, imgproc_here):
    small_png.rename(tmp_path / "x_compare.png")
    before = snapshot(tmp_path)
    assert_one_line_error(imgproc_here("invert", "x_compare.png", "x.png", "--compare", cwd=tmp_path),
                          "output x_compare.png is the input x_compare.png")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("child, output", [(False, "photos"), (False, "./photos/"), (True, "link")])
def test_output_folder_that_is_the_input_folder_is_refused(tmp_path, small_png, imgproc_here, child, output):
    (tmp_path / "photos").mkdir()
    small_png.rename(tmp_path / "photos" / "a.png")
    (tmp_path / "link").symlink_to("photos")
    before = snapshot(tmp_path)
    assert_one_line_error((zrenie_imgproc if child else imgproc_here)("invert", "photos", output, cwd=tmp_path),
                          "is the INPUT folder")
    assert snapshot(tmp_path) == before


def test_outputs_written_twice_in_a_folder_are_refused(tmp_path, small_png, imgproc_here):
    (tmp_path / "photos").mkdir()
    small_png.rename(tmp_path / "photos" / "a.png")
    save_png(tmp_path / "photos" / "a.jpg", small_uint8("coffee"))
    before = snapshot(tmp_path)
    assert_one_line_error(imgproc_here("invert", "photos", "out", "--compare", cwd=tmp_path),
                          "out/a_compare.png would be written for both photos/a.jpg and photos/a.png")
    assert snapshot(tmp_path) == before


def test_folder_with_a_corrupt_image_writes_the_good_ones_and_exits_1(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b", "d"):
        save_png(photos / f"{name}.png", small_uint8({"a": "astronaut", "b": "coffee", "d": "china"}[name])[:40, :50])
    (photos / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (photos / "notes.txt").write_text("not an image, skipped")
    before = snapshot(photos)
    done = zrenie_imgproc("invert", "photos", "out", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == "".join(f"wrote out/{n}.png (50x40, 8-bit RGB)\n" for n in "abd")
    failure, summary = done.stderr.splitlines()
    assert failure.startswith("error: not a readable image: photos/c.png") and summary == "3 written, 1 failed"
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png", "d.png"]  # no temporary files left
    for name in "abd":
        expected = 255 - np.asarray(Image.open(photos / f"{name}.png"))
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{name}.png")), expected)
    assert snapshot(photos) == before
    quiet = zrenie_imgproc("invert", "photos", "out2", "-q", cwd=tmp_path)
    assert quiet.returncode == 1 and quiet.stdout == "" and quiet.stderr.endswith("\n3 written, 1 failed\n")


def test_folder_without_failures_exits_0_with_a_summary(tmp_path, small_png, imgproc_here):
    (tmp_path / "photos").mkdir()
    small_png.rename(tmp_path / "photos" / "a.png")
    done = imgproc_here("invert", "photos", "out", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == "wrote out/a.png (64x48, 8-bit RGB)\n1 written, 0 failed\n"


def test_outputs_get_the_umask_permissions_and_no_temporary_files(tmp_path, small_png):
    umask = 0o027
    (tmp_path / "photos").mkdir()
    save_png(tmp_path / "photos" / "a.png", small_uint8("coffee"))
    save_png(tmp_path / "photos" / "g16.png", (np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16))
    for args in (["in.png", "out.png"], ["photos", "out", "--compare"]):
        done = zrenie_imgproc("invert", *args, cwd=tmp_path, umask=umask)
        assert done.returncode == 0, done.stderr
    assert "16-bit gray" in done.stdout
    written = [tmp_path / "out.png"] + [tmp_path / "out" / n for n in ("a.png", "a_compare.png", "g16.png",
                                                                        "g16_compare.png")]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask == 0o640, path
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written[1:])
