"""Reading files colorkit did not make: regular files only. A FIFO, a device
(``/dev/zero``, ``/dev/urandom``), a socket, a folder or a loop of symbolic links is named
as such and never read, and opening never blocks (a file swapped for a FIFO after the
check is caught by the open file's own status). Writing is in :mod:`colorkit.core.fs`."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import IO, Any

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
MAX_RECORD_BYTES = 64 << 20
"""Largest JSON record colorkit reads back from a folder it wrote (``colorize.json``, ...)."""


def kind_of(mode: int) -> str:
    """What a file of mode ``mode`` is, in words (``"a FIFO"``, ``"a device"``, ...)."""
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
            if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file")


class NotRegularFile(OSError):
    """A path that is not a regular file (a FIFO, a device, a folder, a loop of links):
    never opened. ``reason``: ``"not-a-regular-file"`` or ``"symlink-loop"``."""

    def __init__(self, path: str | Path, reason: str, kind: str) -> None:
        super().__init__(errno.ELOOP if reason == "symlink-loop" else errno.EINVAL, f"it is {kind}, not a regular "
                         "file", str(path))
        self.reason, self.kind = reason, kind


def check_regular(path: str | Path) -> os.stat_result:
    """``path``'s status if it is a regular file (a link to one is fine); else
    :class:`NotRegularFile` (a loop of links included) or the ``OSError`` of ``stat``."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(path, "symlink-loop", "a loop of symbolic links") from None
        raise
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, "not-a-regular-file", kind_of(st.st_mode))
    return st


def open_regular(path: str | Path) -> IO[bytes]:
    """``path`` opened for reading (binary) if it is a regular file: a FIFO, a device or a
    folder raises :class:`NotRegularFile` without being read, and opening never blocks (a
    file swapped for a FIFO after the check is caught by the open file's own status)."""
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, "not-a-regular-file", kind_of(st.st_mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_json(path: str | Path, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """The JSON value in the regular file ``path``; ``ValueError`` when it is not UTF-8
    JSON, is larger than ``max_bytes`` or nested too deeply; ``OSError`` when it cannot be
    read (:class:`NotRegularFile` for a FIFO, a device, ...)."""
    with open_regular(path) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes:,} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
