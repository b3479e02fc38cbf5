"""`zrenie detect convert SRC DST --to coco|voc|yolo`: a detection dataset from one on-disk format to another.

The source's format is told by what SRC is:

    a folder with Annotations/ or annotations/*.xml    Pascal VOC (devkit or flat layout)
    a folder with annotations/instances_*.json         COCO as `write_coco` lays it out, one part per JSON
    a .yaml / .yml file                                a YOLO data YAML
    a .json file                                       a COCO instances JSON; its images in --images DIR
                                                       (default: images/ beside the JSON or one level up)

Boxes, labels, class names and order, crowd / difficult flags (except in YOLO, which has none), the
source's train / val / test parts and the image files (copied, or hard-linked with --link) carry over;
YOLO's normalised text keeps boxes to 1e-6 pixels. COCO segmentations are not carried (boxes only).

Everything is read and checked before anything is written, and the output is written into a temporary
folder beside DST that is renamed to DST at the end: on an error DST does not exist.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from zrenie.config import DataConfig
from zrenie.data.formats.coco import read_coco_boxes, write_coco
from zrenie.data.formats.det_io import BoxSource, parse_categories, records_summary
from zrenie.data.formats.voc import read_voc, write_voc
from zrenie.data.formats.yolo import read_yolo, write_yolo
from zrenie.errors import ConfigError, DataError, write_error
from zrenie.tasks import Verb

FORMATS = ("coco", "voc", "yolo")
WRITERS: dict[str, Callable[..., None]] = {"coco": write_coco, "voc": write_voc, "yolo": write_yolo}
PARTS = ("train", "val", "test")


def _coco_images(json_path: Path, images: str | Path | None) -> Path:
    if images is not None:
        return Path(images).expanduser()
    for guess in (json_path.parent / "images", json_path.parent.parent / "images"):
        if guess.is_dir():
            return guess
    raise ConfigError(f"convert: pass --images DIR, the folder of the images {json_path} names")


def _coco_folder(folder: Path, categories: list | None, strict: bool) -> BoxSource:
    """A folder `write_coco` wrote: one part per annotations/instances_<part>.json ("train2017" is train)."""
    parts, merged = {}, None
    for path in sorted((folder / "annotations").glob("instances_*.json")):
        part = re.sub(r"\d+$", "", path.stem.removeprefix("instances_"))
        if part not in PARTS or part in parts:
            raise DataError(f"convert: {path} is not instances_train, _val or _test (or named twice); convert the "
                            f"JSON alone with --images")
        source = read_coco_boxes(path, folder / "images", categories, strict)
        if merged is not None and source.classes != merged.classes:
            raise DataError(f"convert: {path} has other categories than the other JSONs of {folder / 'annotations'}")
        merged = merged or source
        parts[part] = source.parts["train"]
    merged.parts = {p: parts[p] for p in PARTS if p in parts}
    return merged


def read_source(src: str | Path | DataConfig | dict, images: str | Path | None = None,
                categories: list | str | None = None, strict: bool = False) -> tuple[str, BoxSource]:
    """The format and contents of a source: a path (see the module docstring), or a data spec, a
    `DataConfig` or dict with `name` coco / voc / yolo and `root` (and `ann` for coco)."""
    wanted = parse_categories(categories)
    if isinstance(src, (DataConfig, dict)):
        spec = src if isinstance(src, dict) else {"name": src.name, "root": src.root, "ann": src.ann,
                                                  "categories": src.categories, "strict": src.strict}
        name, root = spec.get("name"), spec.get("root")
        wanted = wanted or parse_categories(spec.get("categories"))
        strict = strict or bool(spec.get("strict"))
        if name not in FORMATS or root is None:
            raise ConfigError(f"convert: a data spec needs name coco, voc or yolo and a root, got {spec!r}")
        if name == "coco":
            if not spec.get("ann"):
                raise ConfigError("convert: a coco data spec needs ann (the instances JSON)")
            return "coco", read_coco_boxes(spec["ann"], root, wanted, strict)
        return name, (read_voc if name == "voc" else read_yolo)(root, wanted, strict)
    path = Path(src).expanduser()
    if path.is_dir():
        if (path / "Annotations").is_dir() or any((path / "annotations").glob("*.xml")):
            return "voc", read_voc(path, wanted, strict)
        if any((path / "annotations").glob("instances_*.json")):
            return "coco", _coco_folder(path, wanted, strict)
        raise DataError(f"convert: {path} is neither a VOC folder (Annotations/ or annotations/*.xml) nor a COCO "
                        f"folder (annotations/instances_*.json); pass a YOLO data YAML or a COCO JSON itself")
    if path.suffix.lower() in (".yaml", ".yml"):
        return "yolo", read_yolo(path, wanted, strict)
    if path.suffix.lower() == ".json":
        return "coco", read_coco_boxes(path, _coco_images(path, images), wanted, strict)
    if not path.exists():
        raise DataError(f"convert: {path} does not exist")
    raise DataError(f"convert: cannot tell the format of {path}: expected a VOC folder, a YOLO .yaml or a COCO .json")


def convert(src: str | Path | DataConfig | dict, dst: str | Path, to: str = "coco", images: str | Path | None = None,
            categories: list | str | None = None, link: bool = False, strict: bool = False) -> dict[str, Any]:
    """Writes the detection dataset `src` to the new folder `dst` in format `to`.

    Args:
        src: a VOC folder, a YOLO data YAML, a COCO JSON (or a folder `write_coco` wrote), or a data spec.
        dst: a folder that does not exist yet (or is empty).
        to: "coco", "voc" or "yolo".
        images: the image folder of a COCO JSON source.
        categories: keep these classes, in this order (`data.categories`); None keeps all.
        link: hard-link image files instead of copying them.
        strict: a box outside its image or a missing image is an error instead of a counted warning.

    Returns:
        {"from", "to", "dst", "images", "boxes", "classes", "parts"}: what was written.
    """
    if to not in FORMATS:
        raise ConfigError(f"convert: --to {to!r}; expected one of {', '.join(FORMATS)}")
    dst = Path(dst).expanduser().absolute()
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DataError(f"convert: {dst} already exists and is not an empty folder; choose a new one")
    fmt, source = read_source(src, images, categories, strict)
    if not any(source.parts.values()):
        raise DataError(f"convert: {src} holds no image to convert")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    except OSError as err:
        raise write_error(err, dst) or err from None
    try:
        WRITERS[to](source.classes, source.parts, tmp, link=link, final=dst)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folder is private; the result is a plain folder
        if dst.exists():
            dst.rmdir()
        os.rename(tmp, dst)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        refused = write_error(err, dst) if isinstance(err, Exception) else None
        if refused is not None:
            raise refused from None
        raise
    return {"from": fmt, "to": to, "dst": str(dst), **records_summary(source.classes, source.parts)}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _run_verb(ns: Any, api: Any) -> int:
    done = convert(ns.src, ns.dst, to=ns.to, images=ns.images, categories=ns.categories, link=ns.link,
                   strict=ns.strict)
    parts = ", ".join(f"{p} {n}" for p, n in done["parts"].items())
    print(f"{done['from']} -> {done['to']}: {done['images']} images ({parts}), {done['boxes']} boxes, "
          f"{len(done['classes'])} classes ({', '.join(done['classes'][:10])}"
          f"{', ...' if len(done['classes']) > 10 else ''}) in {done['dst']}")
    return 0


CONVERT = Verb(
    help="convert a detection dataset between COCO JSON, Pascal VOC XML and YOLO txt",
    arguments=[(("src",), {"help": "a VOC folder, a YOLO data YAML, or a COCO instances JSON (with --images)"}),
               (("dst",), {"help": "the new folder to write"}),
               (("--to",), {"required": True, "choices": FORMATS, "help": "the format to write"}),
               (("--images",), {"default": None, "metavar": "DIR",
                                "help": "the image folder of a COCO JSON (default: images/ beside it or above)"}),
               (("--categories",), {"default": None, "metavar": "A,B",
                                    "help": "keep these classes, in this order, and drop the other objects"}),
               (("--link",), {"action": "store_true", "help": "hard-link the image files instead of copying them"}),
               (("--strict",), {"action": "store_true",
                                "help": "a box outside its image or a missing image is an error, not a warning"})],
    run=_run_verb,
    examples=["zrenie detect convert data/hardhat data/hardhat_yolo --to yolo",
              "zrenie detect convert data/hardhat_yolo/data.yaml data/hardhat_coco --to coco --categories helmet,head",
              "zrenie detect convert coco/annotations/instances_val2017.json coco_voc --to voc --images coco/val2017"])
