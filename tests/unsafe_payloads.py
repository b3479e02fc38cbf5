"""Pickled objects that a safe checkpoint loader must refuse, as real attacks build them."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


class RunsCommand:
    """Unpickling this runs a shell command: the payload of a real malicious checkpoint."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class Custom:
    """A class of this module: unpickling it means importing and running code the file names."""

    def __init__(self):
        self.value = 1


def payloads(marker: Path) -> list[tuple[str, object]]:
    """(name, payload) pairs; the first one creates `marker` if it is ever unpickled."""
    return [("system", RunsCommand(f"touch {shlex.quote(str(marker))}")), ("custom", Custom())]
