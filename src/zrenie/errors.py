"""Errors meant for users: one line that names the file, key or shape at fault.

The CLI prints them without a traceback and exits with code 2.
"""


class ZrenieError(Exception):
    """Base class of every error zrenie reports to a user."""


class ConfigError(ZrenieError):
    """An unknown config key, a value of the wrong type, an unreadable recipe."""


class DataError(ZrenieError):
    """A missing dataset, a wrong layout, a corrupt or unreadable image."""


class CheckpointError(ZrenieError):
    """A checkpoint that is missing, unsafe, or belongs to another model or task."""


class ShapeError(ZrenieError):
    """A tensor of the wrong rank, channel count, dtype or size."""


class RunDirError(ZrenieError):
    """An output directory that already holds another run."""
