"""Writing files safely: the one place colorkit writes a file or a folder atomically and
takes a folder lock. Every writer in the package uses these helpers:

- :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_png`: a
  temporary file beside the target, fsync, rename; the final name only ever holds a whole
  file.
- :func:`atomic_dir`: a whole folder written aside and swapped in; at every instant one
  complete copy exists.
- :func:`staged_files`: several files written aside and moved into a folder together,
  only once all are whole.
- :func:`lock_dir`: an exclusive, re-entrant lock on an output folder, released by the
  kernel when the process dies.
- :func:`ensure_writable_dir`: create a folder and prove it is writable before long work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from colorkit.core.registry import ColorkitError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Write a directory atomically: ``with atomic_dir(p) as tmp: write into tmp``.

    The previous contents of ``p`` stay intact until the new directory is complete. At
    every instant at least one complete copy exists: ``p``, or ``p.old`` while the new one
    is being moved in (a copy left there by a crash is moved back first, never deleted
    while it is the only one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        old = path.with_name(path.name + ".old")
        if old.exists():
            if path.exists():
                shutil.rmtree(old)  # a crash after the new copy landed: old is garbage
            else:
                os.replace(old, path)  # a crash between the renames: old is the only copy
                _fsync_dir(path.parent)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_files(directory: str | Path, prefix: str = ".staged-") -> Iterator[Path]:
    """Files that appear in ``directory`` together: ``with staged_files(d) as tmp: write
    into tmp``. When the block ends without an error every file written in ``tmp`` (no
    subfolders) is renamed into ``d``, replacing a file of the same name (renames need no
    space); on an error none is, and ``tmp`` is removed either way."""
    directory = Path(directory)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
    try:
        yield tmp
        for f in sorted(tmp.iterdir()):
            if f.is_file() and not f.name.startswith("."):  # not an atomic write's temporary file
                os.replace(f, directory / f.name)
        _fsync_dir(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file atomically (temp file beside it + fsync + rename); the temp file is
    removed if anything fails, so the final name only ever holds a whole file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file (UTF-8) atomically, as :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_png(path: str | Path, image: Any, **save_kwargs: Any) -> None:
    """Write a PNG atomically, as :func:`atomic_write_bytes`: ``image`` is a matplotlib
    figure (``savefig(**save_kwargs)``, then closed) or a PIL image."""
    import io

    buf = io.BytesIO()
    if hasattr(image, "savefig"):
        import matplotlib.pyplot as plt

        try:
            image.savefig(buf, format="png", **save_kwargs)
        finally:
            plt.close(image)
    else:
        image.save(buf, format="PNG", **save_kwargs)
    atomic_write_bytes(path, buf.getvalue())


_held_locks: dict[str, Any] = {}


@contextlib.contextmanager
def lock_dir(directory: str | Path, what: str = "--out") -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (``directory/.lock``, flock; released when
    the process ends, even by kill -9). A second process gets a one-line
    :class:`ColorkitError`; the same process may take it again (re-entrant). Taking the
    lock also checks that the directory is writable (it writes the lock file and syncs it)."""
    import fcntl

    directory = Path(directory)
    key = str(directory.resolve())
    if key in _held_locks:
        yield directory
        return
    ensure_writable_dir(directory, what)
    lock = directory / ".lock"
    try:
        fh = open(lock, "a+")  # noqa: SIM115 - held for the duration
    except OSError as exc:
        raise ColorkitError(f"cannot write to {what} {directory}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise ColorkitError(f"{directory} is in use by another colorkit process (pid {holder}); wait for it to "
                                f"finish or choose another {what}") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            raise ColorkitError(f"cannot write to {what} {directory}: {exc.strerror or exc}") from None
        _held_locks[key] = fh
        try:
            yield directory
        finally:
            _held_locks.pop(key, None)
    finally:
        fh.close()  # releases the flock


def ensure_writable_dir(directory: str | Path, what: str = "--out") -> Path:
    """Create ``directory`` if needed and check that a file can be written and synced in
    it (read-only, full or unreachable folders fail here, before any long work)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ColorkitError(f"cannot create {what} {directory}: {exc.strerror or exc}") from None
    if not directory.is_dir():
        raise ColorkitError(f"{what} {directory} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=directory)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise ColorkitError(f"cannot write to {what} {directory}: {exc.strerror or exc}") from None
    return directory
