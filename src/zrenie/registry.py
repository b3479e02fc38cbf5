"""Name -> builder tables for models, datasets and tasks.

A registry is a plain dict filled by decorators at import time; duplicate names are rejected
so that two modules can never silently shadow each other.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable

from zrenie.errors import ZrenieError


class Registry:
    """A named table of builders: `register` fills it, `get` and `list` read it."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if key in self._builders:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._builders[key] = fn
            return fn

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "none"
            raise ZrenieError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._builders if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._builders


MODELS = Registry("model")
DATASETS = Registry("dataset")
TASKS = Registry("task")
