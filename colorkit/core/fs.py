"""Writing files safely: the one place colorkit writes a file or a folder atomically and
takes a folder lock. Every writer in the package uses these helpers:

- :func:`atomic_write_bytes` / :func:`atomic_write_text`: a temporary file beside the
  target, fsync, rename; the final name only ever holds a whole file (pictures are encoded
  to bytes by :mod:`colorkit.core.images`). :class:`AtomicFile` is the same for a file
  written piece by piece (a stream, a file another library writes by name).
- :func:`atomic_dir` / :class:`AtomicDir`: a whole folder written aside and swapped in; at
  every instant one complete copy exists.
- :func:`replace`: rename a finished file or folder into place and sync its folder;
  :func:`discard_dir`: remove a folder without leaving a half-removed one under its name.
- :class:`FileLock`: an exclusive lock on a file (the ``filelock`` package, ``flock``),
  released by the kernel when the holder dies; :func:`lock_dir`: the re-entrant lock of an
  output folder with a one-line error naming the holder.
- :func:`staged_files`: several files written aside and moved into a folder together,
  only once all are whole.
- :func:`ensure_writable_dir`: create a folder and prove it is writable before long work.
- :func:`open_write`: the one way a file is opened for writing, never through a symbolic
  link (``O_NOFOLLOW``) and only when it is a regular file. New files get the permissions
  the umask gives (0644 under umask 022). Reading is in :mod:`colorkit.core.regular`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import filelock

from colorkit.core.registry import ColorkitError
from colorkit.core.regular import kind_of


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace(src: str | Path, dst: str | Path) -> None:
    """Rename ``src`` to ``dst`` in one step (a file over a file, a folder onto a missing or
    empty folder; ``OSError`` otherwise) and sync the folder, so the new name survives a
    crash. Both must be in the same file system (write ``src`` beside ``dst``)."""
    os.replace(src, dst)
    _fsync_dir(Path(dst).parent)


def discard_dir(path: str | Path) -> bool:
    """Remove the folder ``path``: renamed aside first (``.tmp-stale-...`` beside it), so its
    name is free at once and a removal cut short leaves only a ``.tmp-`` folder. ``False``
    (and nothing removed) when it cannot be moved; ``True`` when it is gone."""
    path = Path(path)
    if not path.exists():
        return True
    trash = path.with_name(f".tmp-stale-{path.name[:16]}-{os.getpid()}-{time.time_ns()}")
    try:
        os.replace(path, trash)
    except OSError:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def current_umask() -> int:
    """The process's umask, read from ``/proc/self/status`` where there is one (so, without
    changing it, writer threads never see a umask of 0)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status", encoding="ascii") as fh:
        return int(next(x for x in fh if x.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def default_permissions(path: str | Path) -> None:
    """Give ``path`` the permissions a new file or folder gets under the umask (temporary
    folders are created private, and a library may write a file anew, private)."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~current_umask())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


class AtomicFile:
    """A file written beside its final name and renamed into place when complete.

    ``AtomicFile(path)`` creates the empty temporary file ``tmp`` (``.NAME.XXXXXXXX.tmp`` in
    ``path``'s folder, made new with ``O_EXCL`` so never through a link, with the umask's
    permissions; ``suffix`` ends its name, for writers that pick a format by it;
    ``part=True`` names it ``<name>.part``, truncated, for a single writer that holds a
    lock; a link under that name is refused). Write it by name or through :meth:`open`,
    then :meth:`commit` (fsync, rename) or :meth:`abort` (remove). As a context manager it
    yields ``tmp`` and commits on success, aborts on any error."""

    def __init__(self, path: str | Path, *, suffix: str = "", part: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if part:
            self.tmp = self.path.with_name(self.path.name + ".part")
            open_write(self.tmp, "wb").close()
            return
        for _ in range(100):
            self.tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp{suffix}")
            try:
                fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            return
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(self.path))

    def open(self, mode: str = "wb") -> IO[Any]:
        """The temporary file opened for writing (see :func:`open_write`)."""
        return open_write(self.tmp, mode)

    def commit(self, *, sync: bool = True, public: bool = False) -> Path:
        """Rename ``tmp`` to ``path`` (after an fsync of its data when ``sync``), with the
        permissions the umask gives (``public`` is kept for callers that name it); ``tmp``
        must still be a regular file. The temporary file is removed if this fails."""
        try:
            if not stat.S_ISREG(os.lstat(self.tmp).st_mode):  # never a link moved in under the final name
                raise ColorkitError(f"{self.tmp} was replaced while it was written; {self.path} was not changed")
            if sync:
                _fsync_file(self.tmp)
            default_permissions(self.tmp)  # also when a library wrote it anew (private) by its name
            if sync:
                replace(self.tmp, self.path)
            else:
                os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class AtomicDir:
    """A folder written aside (``tmp``, beside ``path``) and swapped in by :meth:`commit`.

    The previous contents of ``path`` stay intact until the new folder is complete. At
    every instant at least one complete copy exists: ``path``, or ``path.old`` while the new
    one is being moved in (a copy left there by a crash is moved back first, never deleted
    while it is the only one). ``sync``: fsync every file before the swap. ``public``: the
    umask's permissions instead of a private folder. ``keep``: a test of an existing
    ``path`` at the moment of the swap; when it holds (another process finished the same
    folder first), that copy is kept and the new one removed."""

    def __init__(self, path: str | Path, *, sync: bool = True, public: bool = False,
                 keep: Callable[[Path], bool] | None = None) -> None:
        self.path = Path(path)
        self.sync, self.public, self.keep = sync, public, keep
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=self.path.name + ".tmp-", dir=self.path.parent))

    def commit(self) -> Path:
        path, tmp = self.path, self.tmp
        try:
            if self.sync:
                for f in tmp.rglob("*"):
                    if f.is_file():
                        _fsync_file(f)
                _fsync_dir(tmp)
            default_permissions(tmp)
            old = path.with_name(path.name + ".old")
            if old.exists():
                if path.exists():
                    shutil.rmtree(old)  # a crash after the new copy landed: old is garbage
                else:
                    os.replace(old, path)  # a crash between the renames: old is the only copy
                    _fsync_dir(path.parent)
            if self.keep is not None and path.exists() and self.keep(path):
                self.abort()
                return path
            if path.exists():
                os.replace(path, old)
            replace(tmp, path)
            if old.exists():
                shutil.rmtree(old)
        except BaseException:
            self.abort()
            raise
        return path

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, sync: bool = True, public: bool = False,
               keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Write a directory atomically: ``with atomic_dir(p) as tmp: write into tmp`` (see
    :class:`AtomicDir` for the guarantees and the options)."""
    d = AtomicDir(path, sync=sync, public=public, keep=keep)
    try:
        yield d.tmp
    except BaseException:
        d.abort()
        raise
    d.commit()


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


def atomic_write_bytes(path: str | Path, data: bytes, *, part: bool = False) -> None:
    """Write a file atomically (temp file beside it + fsync + rename); the temp file is
    removed if anything fails, so the final name only ever holds a whole file. ``part``:
    the temporary file is ``<name>.part`` (see :class:`AtomicFile`)."""
    with AtomicFile(path, part=part) as tmp, open_write(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str, *, part: bool = False) -> None:
    """Write a text file (UTF-8) atomically, as :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), part=part)


class _Moved(Exception):
    """The locked file no longer has the lock's name (its folder was moved or removed)."""


class FileLock:
    """An exclusive lock on the file ``path`` (``flock`` through the ``filelock``
    package). The kernel drops it when the holder dies, even by ``kill -9``, so a free lock
    means that no live process holds it. The holder writes its pid into the file
    (:meth:`holder` reads it). A lock taken on a file that meanwhile lost its name (its
    folder was moved or removed) does not count: it is taken again on the file now under
    that name, or not at all when the folder is gone. Not re-entrant: a second
    ``FileLock`` on the same path, in the same process too, waits or fails."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: filelock.FileLock | None = None

    def _stamp(self, fd: int) -> None:
        try:
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise _Moved(str(self.path))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock, waiting for it when ``blocking``. ``False`` when it is held by
        another (and not ``blocking``) or the file's folder does not exist."""
        while True:
            if not self.path.parent.is_dir():
                return False
            lock = filelock.FileLock(self.path, timeout=-1 if blocking else 0, thread_local=False,
                                     on_acquired=self._stamp)
            try:
                lock.acquire()
            except filelock.Timeout:
                return False
            except (_Moved, FileNotFoundError):  # the file or its folder went away meanwhile: look again
                continue
            self._lock = lock
            return True

    def release(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release(force=True)

    def holder(self) -> str:
        """The pid written by the holder, or ``"?"``."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


_held_locks: dict[str, FileLock] = {}


@contextlib.contextmanager
def lock_dir(directory: str | Path, what: str = "--out") -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (:class:`FileLock` on ``directory/.lock``;
    released when the process ends, even by kill -9). A second process gets a one-line
    :class:`ColorkitError` naming the holder's pid; the same process may take it again
    (re-entrant). Taking the lock also checks that the directory is writable (it writes
    the lock file and syncs it)."""
    directory = Path(directory)
    key = str(directory.resolve())
    if key in _held_locks:
        yield directory
        return
    ensure_writable_dir(directory, what)
    lock = FileLock(directory / ".lock")
    try:
        taken = lock.acquire(blocking=False)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ColorkitError(f"refusing to use the lock {directory / '.lock'}: it is a symbolic link; colorkit "
                                "never writes through a link (remove it)") from None
        raise ColorkitError(f"cannot write to {what} {directory}: {exc.strerror or exc}") from None
    if not taken:
        raise ColorkitError(f"{directory} is in use by another colorkit process (pid {lock.holder()}); wait for it "
                            f"to finish or choose another {what}")
    _held_locks[key] = lock
    try:
        yield directory
    finally:
        _held_locks.pop(key, None)
        lock.release()


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


# ------------------------------------------------------------------ never through a link
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]{1,8})?$")


def temporary_of(name: str) -> str | None:
    """The final name whose :class:`AtomicFile` temporary file ``name`` is, by its exact
    pattern (``.NAME.XXXXXXXX.tmp`` and an optional suffix); ``None`` for any other name."""
    m = _TEMPORARY.match(name)
    return m.group("name") if m else None


def _refusal(path: Path, kind: str) -> str:
    if "link" in kind:
        return f"refusing to write {path}: it is {kind}; colorkit never writes through a link (remove it)"
    return f"refusing to write {path}: it is {kind}, not a regular file (remove it)"


def open_write(path: str | Path, mode: str = "wb", encoding: str | None = None) -> IO[Any]:
    """Open ``path`` for writing (``"w"``/``"wb"``: emptied, ``"a"``/``"ab"``: appended to,
    ``"r+b"``: changed in place), never through a link: a symbolic link under that name,
    or anything but a regular file (a FIFO, a device, a folder), is a one-line
    :class:`ColorkitError` naming it, and nothing is written. A new file gets the
    permissions the umask gives."""
    path = Path(path)
    append, update = "a" in mode, "+" in mode
    flags = (os.O_RDWR if update else os.O_WRONLY) | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC
    try:
        fd = os.open(path, flags | (os.O_APPEND if append else 0), 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            try:
                kind = kind_of(os.lstat(path).st_mode)
            except OSError:
                kind = "a loop of symbolic links"
            raise ColorkitError(_refusal(path, kind)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ColorkitError(_refusal(path, kind_of(st.st_mode)))
        os.set_blocking(fd, True)
        if not append and not update:
            os.ftruncate(fd, 0)
        return os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise
