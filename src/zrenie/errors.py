"""Errors meant for users: one line that names the file, key or shape at fault.

The CLI prints them without a traceback and exits with code 2.
"""

import errno


class ZrenieError(Exception):
    """Base class of every error zrenie reports to a user."""


class ConfigError(ZrenieError):
    """An unknown config key, a value of the wrong type, an unreadable recipe."""


class DataError(ZrenieError):
    """A missing dataset, a wrong layout, a corrupt or unreadable image."""


class CheckpointError(ZrenieError):
    """A checkpoint that is missing, unsafe, or belongs to another model or task."""


class ShapeError(ZrenieError):
    """A tensor of the wrong rank, channel count, dtype, size or value range."""


class RunDirError(ZrenieError):
    """An output directory that already holds another run."""


class WriteError(ZrenieError):
    """A file or folder that cannot be written: a full disk, a read-only mount, a denied permission."""


# The causes of a failed write that are the machine's, not a bug: named in words, with what to do.
_WRITE_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def write_cause(err: BaseException) -> OSError | None:
    """The OSError behind `err` whose errno says the disk or the permissions refused a write, or None.

    It is `err` itself or in its chain: torch.save reports a failed write as a RuntimeError
    ("enforce fail at inline_container.cc") whose context is the OSError.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _WRITE_CAUSES:
            return err
        err = err.__cause__ or err.__context__
    return None


def write_error(err: BaseException, path: object = None) -> WriteError | None:
    """A one-line WriteError naming `path` (by default the file the OSError names) and the cause behind
    `err`, or None when `err` is not a refused write."""
    cause = write_cause(err)
    if cause is None:
        return None
    where = path if path is not None else (cause.filename or "a file")
    return WriteError(f"cannot write {where}: {_WRITE_CAUSES[cause.errno]}")
