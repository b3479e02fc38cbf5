"""usage:
  zrenie imgproc list [PATTERN]
  zrenie imgproc OP|"OP | OP(args) | ..." INPUT OUTPUT [key=value ...] [--compare] [-q]
  zrenie imgproc OP --help

Runs one image-processing op, or a pipeline of ops, on an image file, a built-in photo or a folder.

INPUT is a file, photo:NAME (see `zrenie imgproc list`), or a folder (then OUTPUT is a folder and
every image keeps its name). Values are YAML scalars or lists: sigma=2, border=replicate,
"kernel=[[0,-1,0],[-1,5,-1],[0,-1,0]]". A trailing key=value goes to every stage that takes it.
Outputs keep the input's bit depth (16-bit PNG in, 16-bit PNG out) and are written atomically
(temp + rename) with the permissions of a plain open(). OUTPUT may not be INPUT, by any path
(./in.png, a link): the command refuses rather than overwrite its input.

options:
  --compare    also write OUTPUT's name + _compare.png: input and output side by side
  -q, --quiet  print nothing but errors (otherwise one `wrote ...` line per file written)
  -h, --help   this text; after OP, the op's parameters, their defaults and examples

folders: every file with an image extension (.png, .jpg, .tif, ...) is processed, other and hidden
files are skipped. An image that cannot be read or written is reported on its own line and the rest
carry on; the last line says `N written, M failed`. A bad parameter stops the command at the first
image, before anything is written.

exit status: 0 done; 1 some images of a folder failed (the others were written); 2 a usage error,
a bad parameter or an unreadable INPUT file, and nothing was written.

examples:
  zrenie imgproc gaussian_blur in.jpg out.png sigma=2
  zrenie imgproc "rgb_to_hsv | hue_shift(0.1) | hsv_to_rgb" photo:astronaut hue.png --compare
  zrenie imgproc median_blur photos/ smoothed/ kernel_size=5 -q
  zrenie imgproc list "*blur*"
  zrenie imgproc canny --help
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import math
import re
import shlex
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from torch import Tensor

from zrenie.errors import ConfigError, DataError, ZrenieError
from zrenie.imgproc import adjust, color, color_extra, edges, filters, histogram, morphology
from zrenie.imgproc.io import IMAGE_EXTENSIONS, check_writable, read_float, write_float

# name -> op, grouped as `list` prints them. Ops that return something other than an image
# (image_histogram, spatial_gradient) stay Python-only.
_GROUPS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "colour spaces": (color, (
        "rgb_to_grayscale", "grayscale_to_rgb", "rgb_to_bgr", "bgr_to_rgb", "rgb_to_hsv", "hsv_to_rgb", "rgb_to_hls",
        "hls_to_rgb", "rgb_to_lab", "lab_to_rgb", "rgb_to_xyz", "xyz_to_rgb", "rgb_to_ycbcr", "ycbcr_to_rgb",
        "rgb_to_linear_rgb", "linear_rgb_to_rgb")),
    # Python-only: RGBA and YUV 4:2:0 (four channels, two planes) and yuv_to_rgb, whose U and V span less
    # than [0, 1], so that an image file is rarely a valid input
    "more colour spaces": (color_extra, ("rgb_to_luv", "luv_to_rgb", "rgb_to_yuv", "bayer_to_rgb")),
    "colour processing": (adjust, (
        "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "hue_shift", "adjust_gamma",
        "sepia", "invert", "white_balance_gray_world")),
    "histogram": (histogram, ("equalize_hist", "clahe", "quantize_colors")),
    "filters": (filters, (
        "box_blur", "gaussian_blur", "median_blur", "bilateral_filter", "sobel", "scharr", "laplacian",
        "unsharp_mask", "filter2d", "filter2d_separable")),
    "edges": (edges, ("canny",)),
    "morphology": (morphology, (
        "erode", "dilate", "opening", "closing", "morphological_gradient", "top_hat", "black_hat")),
}
OPS: dict[str, Callable[..., Tensor]] = {name: getattr(module, name) for module, names in _GROUPS.values()
                                         for name in names}
# Ops defined on RGB; a gray input is repeated to 3 channels before them.
_RGB_INPUT = {name for name in OPS if name.startswith("rgb_to_") and name != "rgb_to_linear_rgb"} | {
    "bgr_to_rgb", "adjust_saturation", "adjust_hue", "sepia", "white_balance_gray_world"}
IMAGE_SUFFIXES = set(IMAGE_EXTENSIONS)
USAGE = ("usage: zrenie imgproc list | zrenie imgproc OP|PIPELINE INPUT OUTPUT [key=value ...] [--compare] [-q] "
         "(zrenie imgproc --help for more)")
_OPTIONS = {"--compare": "compare", "-q": "quiet", "--quiet": "quiet", "-h": "help", "--help": "help"}
# Values of the required parameters in `OP --help` examples; a test runs every example.
_EXAMPLE_VALUES = {"factor": "1.5", "shift": "0.1", "gamma": "2.2", "sigma": "2",
                   "kernel": "[[0,-1,0],[-1,5,-1],[0,-1,0]]", "kernel_x": "[0.25,0.5,0.25]",
                   "kernel_y": "[0.25,0.5,0.25]"}
_EXAMPLE_INPUTS = {"grayscale_to_rgb": "gray.png", "bayer_to_rgb": "mosaic.png"}  # the photos are RGB
# How each annotation is written on the command line, for help and error messages.
_KIND_WORDS = {float: "number", int: "integer", bool: "true/false", str: "text", Tensor: "kernel list",
               type(None): "None"}
_NO_MATCH = object()
Stages = list[tuple[str, dict[str, Any]]]  # [(op name, its keyword arguments)]


def _parameters(name: str) -> list[inspect.Parameter]:
    """The op's parameters after the image."""
    return list(inspect.signature(OPS[name]).parameters.values())[1:]


def describe(name: str) -> str:
    """One line: `gaussian_blur(sigma, kernel_size=None, border='reflect')  Gaussian blur as ...`."""
    params = ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                       for p in _parameters(name))
    summary = (inspect.getdoc(OPS[name]) or "").split("\n")[0]
    return f"{name}({params})  {summary}"


def list_ops(pattern: str = "*") -> str:
    """Every op matching `pattern`, grouped, one per line with its parameters."""
    lines = []
    for group, (_, names) in _GROUPS.items():
        matched = [n for n in names if fnmatch.fnmatch(n, pattern)]
        if matched:
            lines += [f"{group}:"] + [f"  {describe(n)}" for n in matched]
    from zrenie.data.builtin.photos import list_photos

    lines.append("photos (INPUT photo:NAME): " + ", ".join(list_photos()))
    return "\n".join(lines)


def _kind(hint: Any) -> str:
    """How a value of annotation `hint` is written: `number or [number, number]`."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        words = [_kind(option) for option in typing.get_args(hint)]
        return ", ".join(words[:-1]) + " or " + words[-1]
    if typing.get_origin(hint) is tuple:
        return "[" + ", ".join(_kind(item) for item in typing.get_args(hint)) + "]"
    return _KIND_WORDS.get(hint, getattr(hint, "__name__", str(hint)))


def _conform(value: Any, hint: Any) -> Any:
    """`value` as annotation `hint` takes it, or _NO_MATCH; unknown annotations are left to the op.

    A list of numbers becomes a tensor where a Tensor belongs, the text None becomes None (help
    shows defaults as Python writes them) and `1e-3` a number (YAML 1.1 reads it as text).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            result = _conform(value, option)
            if result is not _NO_MATCH:
                return result
        return _NO_MATCH
    if origin is tuple:
        if not isinstance(value, tuple) or len(value) != len(args):
            return _NO_MATCH
        items = [_conform(item, item_hint) for item, item_hint in zip(value, args)]
        return _NO_MATCH if any(item is _NO_MATCH for item in items) else tuple(items)
    if hint is type(None):
        return None if value is None or value == "None" else _NO_MATCH
    if hint is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return _NO_MATCH
        return value if math.isfinite(value) else _NO_MATCH
    if hint in (int, float):  # bool is an int to Python, not to a user
        numbers = (int,) if hint is int else (int, float)
        return value if isinstance(value, numbers) and not isinstance(value, bool) else _NO_MATCH
    if hint in (bool, str):
        return value if isinstance(value, hint) else _NO_MATCH
    if hint is Tensor:
        if isinstance(value, tuple) and value and all(isinstance(v, (int, float)) for v in value):
            return torch.tensor(value, dtype=torch.float32)
        return value if isinstance(value, Tensor) else _NO_MATCH
    return value


def _as_text(value: Any) -> str:
    """`value` as it is typed after `key=`: `reflect`, `[3,5]`, `true`; it reads back as `value`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ",".join(_as_text(item) for item in value) + "]"
    if isinstance(value, Tensor):
        return f"<{'x'.join(map(str, value.shape))} kernel>"
    return str(value)


def _argument_docs(name: str) -> dict[str, str]:
    """{parameter: its description on one line} from the `Args:` section of the op's docstring."""
    docs: dict[str, str] = {}
    current, in_args = None, False
    for line in (inspect.getdoc(OPS[name]) or "").splitlines():
        if line.strip() == "Args:":
            in_args = True
        elif in_args and line and not line.startswith(" "):  # the next section, e.g. Returns:
            break
        elif in_args and (match := re.fullmatch(r" {4}(\w+): (.*)", line)):
            current = match.group(1)
            docs[current] = match.group(2)
        elif in_args and current and line.startswith(" " * 8):
            docs[current] += " " + line.strip()
    return docs


def op_examples(name: str) -> list[str]:
    """Command lines that run `name` on a photo and on a folder, with its required parameters."""
    required = [p for p in _parameters(name) if p.default is inspect.Parameter.empty]
    if required:
        values = [f"{p.name}={_EXAMPLE_VALUES.get(p.name, 'VALUE')}" for p in required]
    else:  # show the syntax with the first parameter at its default
        values = [f"{p.name}={_as_text(p.default)}" for p in _parameters(name)[:1]]
    source = _EXAMPLE_INPUTS.get(name, "photo:astronaut")
    return [shlex.join(["zrenie", "imgproc", name, source, f"{name}.png", *values]),
            shlex.join(["zrenie", "imgproc", name, "photos/", "out/", *values, "--compare"])]


def op_help(name: str) -> str:
    """`zrenie imgproc OP --help`: the docstring's first line, every parameter with its default, examples."""
    hints = typing.get_type_hints(OPS[name])
    docs = _argument_docs(name)
    summary = (inspect.getdoc(OPS[name]) or "").split("\n")[0]
    lines = [f"usage: zrenie imgproc {name} INPUT OUTPUT [key=value ...] [--compare] [-q]", "",
             f"{name}: {summary}", ""]
    if _parameters(name):
        lines.append(f"parameters (key=value after OUTPUT, or {name}(value, key=value) in a pipeline):")
    else:
        lines.append("parameters: none")
    for p in _parameters(name):
        kind = _kind(hints.get(p.name, Any))
        if p.default is inspect.Parameter.empty:
            lines.append(f"  {p.name}  (required; {kind})")
        else:
            lines.append(f"  {p.name}={_as_text(p.default)}  ({kind})")
        if p.name in docs:
            lines.append(f"      {docs[p.name]}")
    return "\n".join(lines + ["", "examples:", *(f"  {example}" for example in op_examples(name))])


def _split_top_level(text: str, separator: str) -> list[str]:
    """Splits at `separator` outside brackets, so `filter2d(kernel=[[1,2],[3,4]])` stays whole."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _value(text: str, where: str) -> Any:
    """A YAML scalar or list; nested lists become tensors (user kernels), flat lists tuples."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{where}: cannot parse value {text!r}") from None
    if isinstance(value, list):
        if value and all(isinstance(row, list) for row in value):
            try:
                return torch.tensor(value, dtype=torch.float32)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: a kernel must be a rectangular list of numbers, got {text!r}") from None
        return tuple(value)
    return value


def _unknown(kind: str, name: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(known) or '(none)'}"
    return ConfigError(f"unknown {kind} {name!r} for {where}; {hint}")


def _stage_names(spec: str) -> list[tuple[str, str | None]]:
    """`"invert | gaussian_blur(2)"` -> [("invert", None), ("gaussian_blur", "2")]; unknown ops are errors."""
    stages = []
    for text in _split_top_level(spec, "|"):
        match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*", text, flags=re.S)
        if not match:
            raise ConfigError(f"cannot parse pipeline stage {text.strip()!r}; expected name or name(args)")
        name = match.group(1)
        if name not in OPS:
            close = difflib.get_close_matches(name, OPS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `zrenie imgproc list`"
            raise ConfigError(f"unknown op {name!r}{hint}")
        stages.append((name, match.group(2)))
    return stages


def parse_pipeline(spec: str, overrides: dict[str, Any] | None = None) -> Stages:
    """`"rgb_to_hsv | hue_shift(0.1) | hsv_to_rgb"` -> [(name, kwargs), ...], checked against signatures.

    Names, the count of positional values and each value's type are checked here, before any image
    is read; the ranges (a positive sigma, an odd kernel size) are the ops' own checks.
    """
    stages = []
    for name, arg_text in _stage_names(spec):
        names = [p.name for p in _parameters(name)]
        kwargs: dict[str, Any] = {}
        for position, arg in enumerate(a for a in _split_top_level(arg_text or "", ",") if a.strip()):
            key, has_key, raw = arg.partition("=")
            if has_key and key.strip().isidentifier():
                if key.strip() not in names:
                    raise _unknown("parameter", key.strip(), names, name)
                kwargs[key.strip()] = _value(raw.strip(), f"{name}.{key.strip()}")
            elif position < len(names):
                kwargs[names[position]] = _value(arg.strip(), f"{name} argument {position + 1}")
            else:
                raise ConfigError(f"{name}: too many arguments; it takes {', '.join(names) or 'none'}")
        stages.append((name, kwargs))
    for key, value in (overrides or {}).items():
        takers = [kw for name, kw in stages if key in (p.name for p in _parameters(name))]
        if not takers:
            known = sorted({p.name for name, _ in stages for p in _parameters(name)})
            raise _unknown("parameter", key, known, ", ".join(n for n, _ in stages))
        for kwargs in takers:
            kwargs[key] = value
    for name, kwargs in stages:
        try:
            inspect.signature(OPS[name]).bind(None, **kwargs)
        except TypeError as err:
            raise ConfigError(f"{name}: {err}; it takes {', '.join(p.name for p in _parameters(name))}") from None
        hints = typing.get_type_hints(OPS[name])
        for key, value in kwargs.items():
            conformed = _conform(value, hints.get(key, Any))
            if conformed is _NO_MATCH:
                shown = _as_text(value) if isinstance(value, Tensor) else repr(value)
                raise ConfigError(f"{name}: {key}: expected {_kind(hints[key])}, got {shown}")
            kwargs[key] = conformed
    return stages


def _call_text(name: str, kwargs: dict[str, Any]) -> str:
    """`gaussian_blur(sigma=-1)`: the stage as the user wrote it, for its error messages."""
    return f"{name}({', '.join(f'{k}={_as_text(v)}' for k, v in kwargs.items())})" if kwargs else name


def run_pipeline(stages: Stages, image: Tensor) -> Tensor:
    """Applies the stages in order to Tensor[C, H, W] or Tensor[B, C, H, W]; errors name the stage."""
    for name, kwargs in stages:
        if name in _RGB_INPUT and image.shape[-3] == 1:
            image = color.grayscale_to_rgb(image)
        try:
            image = OPS[name](image, **kwargs)
        except ZrenieError as err:
            raise type(err)(f"{_call_text(name, kwargs)}: {err}") from None
        except (TypeError, ValueError, RuntimeError) as err:  # a value the op's own checks let through
            raise ConfigError(f"{_call_text(name, kwargs)}: {type(err).__name__}: {err}") from None
    return image


def _load(source: str) -> tuple[Tensor, int]:
    if source.startswith("photo:"):
        from zrenie.data.builtin.photos import load_photo

        return load_photo(source[len("photo:"):]), 8
    return read_float(source)


def _side_by_side(before: Tensor, after: Tensor) -> Tensor:
    """Tensor[3, H, W + 8 + W']: the input, a white gap, the output; gray ones repeated to RGB."""
    before, after = (x.expand(3, -1, -1) if x.shape[0] == 1 else x for x in (before, after))
    height = max(before.shape[1], after.shape[1])
    before, after = (torch.nn.functional.pad(x, (0, 0, 0, height - x.shape[1])) for x in (before, after))
    return torch.cat([before, torch.ones(3, height, 8), after.clamp(0, 1)], dim=2)


def _outputs(target: Path, compare: bool) -> list[Path]:
    """The files one input becomes: OUTPUT, and with --compare OUTPUT's name + `_compare.png`."""
    return [target, target.with_name(f"{target.stem}_compare.png")] if compare else [target]


def _write(image: Tensor, path: Path, bits: int) -> str:
    """Writes `image` atomically and returns `wrote PATH (WxH, 8-bit RGB)`."""
    try:
        write_float(image, path, bits)
    except OSError as err:
        raise DataError(f"cannot write {path}: {err.strerror or err}") from None
    written_bits = 16 if bits == 16 and path.suffix.lower() == ".png" else 8  # write_float's rule
    return (f"wrote {path} ({image.shape[-1]}x{image.shape[-2]}, {written_bits}-bit "
            f"{'gray' if image.shape[-3] == 1 else 'RGB'})")


def write_outputs(image: Tensor, result: Tensor, bits: int, target: Path, compare: bool) -> list[str]:
    """Writes `result` to `target` (and the side-by-side image); one `wrote ...` line per file."""
    lines = [_write(result, target, bits)]
    if compare:
        lines.append(_write(_side_by_side(image, result), _outputs(target, True)[1], 8))
    return lines


def _refuse_overwrite(inputs: list[Path], outputs: list[Path]) -> None:
    """Raises ConfigError when an output is an input, by any path to it (`./in.png`, a link, a hard link)."""
    identities = {}
    for path in inputs:
        try:
            stat = path.stat()
        except OSError:  # a missing input: reading it reports that
            continue
        identities[(stat.st_dev, stat.st_ino)] = path
    for path in outputs:
        try:
            stat = path.stat()
        except OSError:  # not there yet, so not an input
            continue
        if (stat.st_dev, stat.st_ino) in identities:
            raise ConfigError(f"output {path} is the input {identities[(stat.st_dev, stat.st_ino)]}; "
                              "choose another OUTPUT so that the input stays as it is")


def process_file(stages: Stages, source: str, target: Path, compare: bool) -> list[str]:
    """One INPUT file or photo to OUTPUT; returns the `wrote ...` lines."""
    outputs = _outputs(target, compare)
    for path in outputs:
        check_writable(path)
    if not source.startswith("photo:"):
        _refuse_overwrite([Path(source)], outputs)
    image, bits = _load(source)
    return write_outputs(image, run_pipeline(stages, image), bits, target, compare)


def _plan_folder(source: Path, target: Path, compare: bool) -> list[tuple[Path, Path]]:
    """[(input image, output)] for folder mode, refused before anything is read if it would clobber."""
    files = sorted(p for p in source.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {source}")
    if target.exists() and not target.is_dir():
        raise DataError(f"input {source} is a folder, so the output must be a folder too; {target} is a file")
    if target.exists() and source.samefile(target):
        raise ConfigError(f"OUTPUT folder {target} is the INPUT folder {source}; write to another folder "
                          "so that the inputs stay as they are")
    plan = [(file, target / file.name) for file in files]
    written_by: dict[Path, Path] = {}
    for file, out in plan:
        for path in _outputs(out, compare):
            check_writable(path)
            if path in written_by:  # a.png and a.jpg share a_compare.png
                raise ConfigError(f"{path} would be written for both {written_by[path]} and {file}; "
                                  "rename one of them or leave out --compare")
            written_by[path] = file
    _refuse_overwrite(files, list(written_by))
    return plan


def process_folder(stages: Stages, source: Path, target: Path, compare: bool, quiet: bool) -> int:
    """Every image in `source` to `target`; a bad image is reported and skipped, as `cp -r` does.

    Returns 0, or 1 when an image failed. A stage that fails on the first image read is a bad
    parameter (every image would fail), so it stops the command before anything is written.
    """
    written, failed = 0, 0

    def report_failure(message: str) -> None:
        nonlocal failed
        failed += 1
        print(f"error: {' '.join(message.split())}", file=sys.stderr)

    for file, out in _plan_folder(source, target, compare):
        try:
            image, bits = read_float(file)
        except DataError as err:
            report_failure(str(err))
            continue
        try:
            result = run_pipeline(stages, image)
        except ZrenieError as err:
            if not written:
                raise type(err)(f"{file}: {err}") from None
            report_failure(f"{file}: {err}")
            continue
        try:
            lines = write_outputs(image, result, bits, out, compare)
        except DataError as err:
            report_failure(str(err))
            continue
        written += 1
        if not quiet:
            print("\n".join(lines))
    if failed:
        print(f"{written} written, {failed} failed", file=sys.stderr)
    elif not quiet:
        print(f"{written} written, 0 failed")
    return 1 if failed else 0


def _split_options(argv: list[str]) -> tuple[set[str], list[str]]:
    """({"compare", "quiet", "help"} as given, the other arguments); unknown options are errors."""
    options, rest = set(), []
    for arg in argv:
        if arg in _OPTIONS:
            options.add(_OPTIONS[arg])
        elif re.fullmatch(r"--?[A-Za-z][\w-]*", arg):
            close = difflib.get_close_matches(arg, _OPTIONS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"unknown option {arg}; {hint}options are --compare, -q/--quiet, -h/--help")
        else:
            rest.append(arg)
    return options, rest


def _help(args: list[str]) -> str:
    """The module's usage text, or with OP (or a pipeline) each op's own help."""
    if not args or args[0] == "list":
        return (__doc__ or USAGE).strip()
    return "\n\n".join(op_help(name) for name, _ in _stage_names(args[0]))


def _overrides(assignments: list[str]) -> dict[str, Any]:
    overrides = {}
    for text in assignments:
        key, has_key, raw = text.partition("=")
        if not has_key or not key.isidentifier():
            raise ConfigError(f"expected key=value after OUTPUT, got {text!r}")
        overrides[key] = _value(raw, key)
    return overrides


def _run(argv: list[str]) -> int:
    options, args = _split_options(argv)
    if "help" in options:
        print(_help(args))
        return 0
    if args and args[0] == "list":
        print(list_ops(args[1] if len(args) > 1 else "*"))
        return 0
    if len(args) < 3:
        raise ConfigError(USAGE)
    (spec, source, output), assignments = args[:3], args[3:]
    stages = parse_pipeline(spec, _overrides(assignments))
    compare, quiet = "compare" in options, "quiet" in options
    if Path(source).is_dir():
        return process_folder(stages, Path(source), Path(output), compare, quiet)
    lines = process_file(stages, source, Path(output), compare)
    if not quiet:
        print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs `zrenie imgproc ARGV...`; 0 on success, 1 when images of a folder failed, 2 on a user error."""
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except ZrenieError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # one line, whatever the message holds
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
