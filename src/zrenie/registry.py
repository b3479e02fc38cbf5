"""Name -> builder tables for models, datasets and tasks.

A registry is a plain dict filled by decorators at import time; duplicate names are rejected so that
two modules can never silently shadow each other. Each registry knows the packages whose modules
register into it and imports them the first time it is read (`pkgutil.iter_modules`): every module of
the package, and every subpackage as a whole (a task folder's `__init__` imports what registers), so a
new architecture, dataset or task is one new module or folder and no list needs editing.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from typing import Any, Callable

from zrenie.errors import ZrenieError


class Registry:
    """A named table of builders: `register` fills it, `get` and `list` read it.

    Args:
        kind: what it holds, for messages ("model", "dataset", "task").
        packages: packages whose modules (and subpackages) are imported before the first read.
    """

    def __init__(self, kind: str, packages: tuple[str, ...] = ()):
        self.kind = kind
        self.packages = packages
        self._builders: dict[str, Callable[..., Any]] = {}
        self._tags: dict[str, set[str]] = {}
        self._discovered = False

    def register(self, name: str | None = None, tags: tuple[str, ...] = ()) -> Callable:
        """Decorator; `tags` say what a builder serves: a model's tasks (`list_models(task="segment")`), a
        dataset's target kinds ("class", "mask", "boxes")."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if key in self._builders:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._builders[key] = fn
            self._tags[key] = set(tags)
            return fn

        return decorator

    def tag(self, name: str, *tags: str) -> None:
        """Adds tags to a registered name (a task that reuses a backbone tags it from its own folder)."""
        self._tags.setdefault(name, set()).update(tags)

    def discover(self) -> None:
        """Imports every module of `packages` once, so that each registers what it defines."""
        if self._discovered:
            return
        self._discovered = True
        for package in self.packages:
            _import_tree(package)

    def get(self, name: str) -> Callable[..., Any]:
        self.discover()
        try:
            return self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "none"
            raise ZrenieError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def list(self, pattern: str = "*", tag: str | None = None) -> list[str]:
        self.discover()
        return sorted(n for n in self._builders
                      if fnmatch.fnmatch(n, pattern) and (tag is None or tag in self._tags.get(n, ())))

    def tags(self, name: str) -> set[str]:
        self.discover()
        return set(self._tags.get(name, ()))

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._builders


def _import_tree(package: str) -> None:
    """Imports the modules and subpackages of `package` (not the subpackages' own modules: a report's
    plotting code has no business being imported to list names)."""
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(getattr(module, "__path__", []), prefix=package + "."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)


MODELS = Registry("model", ("zrenie.nn.backbones", "zrenie.tasks"))
DATASETS = Registry("dataset", ("zrenie.data.builtin", "zrenie.data.formats"))
TASKS = Registry("task", ("zrenie.tasks",))
