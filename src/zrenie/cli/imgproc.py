"""`zrenie imgproc`: run one op or a pipeline of ops on an image file, a built-in photo or a folder.

    zrenie imgproc list [PATTERN]
    zrenie imgproc OP|"OP | OP(args) | ..." INPUT OUTPUT [key=value ...] [--compare]

INPUT is a file, `photo:NAME` (see `zrenie imgproc list`), or a folder (then OUTPUT is a folder and
every image keeps its name). Values are YAML scalars or lists: `sigma=2`, `border=replicate`,
`kernel=[[0,-1,0],[-1,5,-1],[0,-1,0]]`. A trailing key=value goes to every stage that takes it.
--compare also writes OUTPUT's name + `_compare.png`: input and output side by side. Outputs keep
the input's bit depth (16-bit PNG in, 16-bit PNG out) and are written atomically (temp + rename).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
import sys
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from torch import Tensor

from zrenie.errors import ConfigError, DataError, ZrenieError
from zrenie.imgproc import adjust, color, edges, filters, histogram, morphology
from zrenie.imgproc.io import check_writable, read_float, write_float

# name -> op, grouped as `list` prints them. Ops that return something other than an image
# (image_histogram, spatial_gradient) stay Python-only.
_GROUPS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "colour spaces": (color, (
        "rgb_to_grayscale", "grayscale_to_rgb", "rgb_to_bgr", "bgr_to_rgb", "rgb_to_hsv", "hsv_to_rgb", "rgb_to_hls",
        "hls_to_rgb", "rgb_to_lab", "lab_to_rgb", "rgb_to_xyz", "xyz_to_rgb", "rgb_to_ycbcr", "ycbcr_to_rgb",
        "rgb_to_linear_rgb", "linear_rgb_to_rgb")),
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
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
USAGE = "usage: zrenie imgproc list | zrenie imgproc OP|PIPELINE INPUT OUTPUT [key=value ...] [--compare]"


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


def parse_pipeline(spec: str, overrides: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """`"rgb_to_hsv | hue_shift(0.1) | hsv_to_rgb"` -> [(name, kwargs), ...], checked against signatures."""
    stages = []
    for text in _split_top_level(spec, "|"):
        match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*", text, flags=re.S)
        if not match:
            raise ConfigError(f"cannot parse pipeline stage {text.strip()!r}; expected name or name(args)")
        name, arg_text = match.group(1), match.group(2)
        if name not in OPS:
            close = difflib.get_close_matches(name, OPS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `zrenie imgproc list`"
            raise ConfigError(f"unknown op {name!r}{hint}")
        names = [p.name for p in _parameters(name)]
        kwargs: dict[str, Any] = {}
        for position, arg in enumerate(a for a in _split_top_level(arg_text or "", ",") if a.strip()):
            key, has_key, raw = arg.partition("=")
            if has_key and key.strip().isidentifier():
                kwargs[key.strip()] = _value(raw.strip(), f"{name}.{key.strip()}")
            elif position < len(names):
                kwargs[names[position]] = _value(arg.strip(), f"{name} argument {position + 1}")
            else:
                raise ConfigError(f"{name}: too many arguments; it takes {', '.join(names)}")
        stages.append((name, kwargs))
    for key, value in (overrides or {}).items():
        takers = [kw for name, kw in stages if key in (p.name for p in _parameters(name))]
        if not takers:
            known = sorted({p.name for name, _ in stages for p in _parameters(name)})
            raise ConfigError(f"unknown parameter {key!r} for {', '.join(n for n, _ in stages)}; "
                              f"expected one of {', '.join(known)}")
        for kwargs in takers:
            kwargs[key] = value
    for name, kwargs in stages:
        try:
            inspect.signature(OPS[name]).bind(None, **kwargs)
        except TypeError as err:
            raise ConfigError(f"{name}: {err}; it takes {', '.join(p.name for p in _parameters(name))}") from None
    return stages


def run_pipeline(stages: list[tuple[str, dict[str, Any]]], image: Tensor) -> Tensor:
    """Applies the stages in order to Tensor[C, H, W] or Tensor[B, C, H, W]."""
    for name, kwargs in stages:
        if name in _RGB_INPUT and image.shape[-3] == 1:
            image = color.grayscale_to_rgb(image)
        try:
            image = OPS[name](image, **kwargs)
        except TypeError as err:  # e.g. a string where a number belongs
            raise ConfigError(f"{name}: bad argument ({err})") from None
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


def process_file(stages, source: str, target: Path, compare: bool) -> None:
    image, bits = _load(source)
    out = run_pipeline(stages, image)
    write_float(out, target, bits)
    if compare:
        write_float(_side_by_side(image, out), target.with_name(f"{target.stem}_compare.png"))


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() if argv else USAGE)
        return 0 if argv else 2
    if argv[0] == "list":
        print(list_ops(argv[1] if len(argv) > 1 else "*"))
        return 0
    compare = "--compare" in argv
    args = [a for a in argv if a != "--compare"]
    flags = [a for a in args if a.startswith("--")]
    if flags:
        raise ConfigError(f"unknown option {flags[0]}; the only option is --compare")
    if len(args) < 3:
        raise ConfigError(USAGE)
    (spec, source, output), assignments = args[:3], args[3:]
    for text in assignments:
        if "=" not in text:
            raise ConfigError(f"expected key=value after OUTPUT, got {text!r}")
    overrides = {key: _value(raw, key) for key, _, raw in (a.partition("=") for a in assignments)}
    stages = parse_pipeline(spec, overrides)
    target = Path(output)
    if Path(source).is_dir():
        files = sorted(p for p in Path(source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {source}")
        if target.exists() and not target.is_dir():
            raise DataError(f"input {source} is a folder, so the output must be a folder too; {output} is a file")
        for file in files:
            process_file(stages, str(file), target / file.name, compare)
        print(f"wrote {len(files)} images to {target}")
        return 0
    check_writable(target)
    process_file(stages, source, target, compare)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs `zrenie imgproc ARGV...`; 0 on success, 2 with one `error: ...` line on a user error."""
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except ZrenieError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
