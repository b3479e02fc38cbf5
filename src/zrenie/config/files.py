"""Files of the config layer: recipes (shipped with the package or on disk) and `atomic_path`, the one way
zrenie writes a file. It sits in the lowest layer because every layer (imgproc, engine, report, api) writes
files and reads recipes through the config.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

import yaml

from zrenie.errors import ConfigError, write_error

_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")



def shipped_recipes() -> Path:
    """The folder of the recipes installed with zrenie (one per course homework and demo)."""
    return Path(__file__).resolve().parent.parent / "recipes"


def list_recipes(pattern: str = "*") -> list[str]:
    """Names of the shipped recipes matching a glob, e.g. `list_recipes("hw*")`."""
    return sorted(p.stem for p in shipped_recipes().glob(f"{pattern}.yaml"))


def resolve_recipe(recipe: str | Path) -> Path:
    """A recipe file: a path that exists, or the name of a shipped recipe (`digits_cnn`, `digits_cnn.yaml`)."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    shipped = shipped_recipes() / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise ConfigError(f"recipe not found: {recipe} (neither a file nor a shipped recipe; shipped: "
                      f"{', '.join(list_recipes())})")


def is_recipe(arg: str) -> bool:
    """Whether a command-line argument names a recipe (a .yaml path, an existing file or a shipped name)."""
    if "=" in arg:
        return False
    return arg.endswith((".yaml", ".yml")) or Path(arg).is_file() or arg in list_recipes()


class _RecipeLoader(yaml.SafeLoader):
    """YAML as PyYAML reads it, plus `1e-3` (no dot) as a float, which YAML 1.1 leaves a string."""


_RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def load_recipe(path: str | Path) -> dict:
    path = resolve_recipe(path)
    try:
        data = yaml.load(path.read_text(), Loader=_RecipeLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must hold a mapping of keys to values")
    return data


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; when the block ends, renames it over `path`.

    A reader (a resumed run, a browser refreshing the report) sees the old file or the new one, never a
    half-written one; if the block raises, the temporary file is removed and `path` is untouched. The
    file gets the permissions a plain `open()` would give (0666 less the umask), not mkstemp's 0600.
    A write the disk or the permissions refuse (full, read-only, denied) is a one-line `WriteError`
    naming `path`, with the temporary file removed and `path` as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise write_error(err, path) or err from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except Exception as err:
        # A full disk or a read-only mount is one line naming the file; torch.save, Pillow and savefig
        # each report it differently (a RuntimeError whose context is the OSError, for torch.save).
        failure = write_error(err, path)
        if failure is None:
            raise
        raise failure from None
    finally:
        tmp.unlink(missing_ok=True)
