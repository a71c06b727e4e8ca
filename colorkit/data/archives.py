"""File sources: a folder of images, a ``.tar`` / ``.tar.gz`` or ``.zip`` archive, an LMDB
database (a directory, a ``.mdb`` file, or shipped inside a ``.zip``), and
:func:`source_for_path`, which picks one for a path.

Archives are read as streams (no extraction to disk; an LMDB inside a zip is the one
copy, to a scratch folder in the cache, removed after preparation), member names are only
used as keys, and over-large or over-compressed members are skipped as ``too-large``.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from colorkit.core import fs
from colorkit.core.registry import ColorkitError
from colorkit.core.regular import NotRegularFile, check_regular
from colorkit.data import images as _images
from colorkit.data import records as _records
from colorkit.data.digests import DigestMemo
from colorkit.data.records import MAX_RECORD_BYTES, Record, Source, is_image_name


# ----------------------------------------------------------------------------- folder
class FolderSource(Source):
    """Image files under a folder (recursively, sorted; see :func:`images.find_images`)."""

    def __init__(self, root: Path, name: str | None = None, memo: DigestMemo | None = None) -> None:
        self.root = Path(root).resolve()
        self.name = name or self.root.name
        self.location = str(self.root)
        self.files = _images.find_images(self.root)
        self.memo = memo or DigestMemo(None)

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"folder\0{self.root}\n".encode())
        for rel in self.files:
            try:
                d = self.memo.digest(self.root / rel)
            except NotRegularFile as exc:
                d = exc.reason  # never opened: a FIFO or a device would never end
            except OSError:
                d = "unreadable"
            h.update(f"{rel}\0{d}\n".encode())
        self.memo.save()
        return h.hexdigest()

    def size_hint(self) -> int:
        return len(self.files)

    def records(self, start: int = 0) -> Iterator[Record]:
        for rel in self.files[start:]:
            yield Record(rel, path=str(self.root / rel))


# ----------------------------------------------------------------------------- archives
class _FileSource(Source):
    def __init__(self, path: Path, name: str | None = None, memo: DigestMemo | None = None) -> None:
        self.path = Path(path).resolve()
        self.name = name or self.path.name
        self.location = str(self.path)
        self.memo = memo or DigestMemo(None)

    def fingerprint(self) -> str:
        d = self.memo.digest(self.path)
        self.memo.save()
        return f"{type(self).__name__}\0{self.path}\0{d}"


class TarSource(_FileSource):
    """Image members of a ``.tar`` / ``.tar.gz`` archive, read as one stream in archive
    order (no extraction, no random access needed)."""

    def records(self, start: int = 0) -> Iterator[Record]:
        i = 0
        try:
            with open(self.path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tf:
                for m in tf:
                    if not m.isfile() or not is_image_name(m.name):
                        continue
                    if i < start:
                        i += 1
                        continue
                    i += 1
                    if m.size > MAX_RECORD_BYTES:
                        yield Record(m.name, reason="too-large", detail=f"member of {m.size} bytes")
                        continue
                    f = tf.extractfile(m)
                    yield _read_member(m.name, f, m.size, raw.tell)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            raise ColorkitError(f"{self.path}: cannot read the tar archive ({type(exc).__name__}: {exc})") from None


def _too_compressed(size: int, compressed: int) -> bool:
    return size > _records.RATIO_MIN_BYTES and size > _records.MAX_COMPRESSION_RATIO * max(1, compressed)


def _read_member(name: str, f: Any, size: int, raw_tell: Any) -> Record:
    """A tar member's bytes, read in 1 MiB pieces; skipped as ``too-large`` when the bytes
    read so far came from too few compressed bytes (a compression bomb)."""
    if f is None:
        return Record(name, data=b"")
    start = raw_tell() if raw_tell is not None else None
    buf = bytearray()
    while chunk := f.read(1 << 20):
        buf += chunk
        if start is not None and _too_compressed(len(buf), raw_tell() - start):
            ratio = len(buf) // max(1, raw_tell() - start)
            return Record(name, reason="too-large", detail=f"member of {size} bytes compressed about {ratio}:1 "
                                                           "(a compression bomb?)")
    return Record(name, data=bytes(buf))


class ZipSource(_FileSource):
    """Image members of a ``.zip`` archive in name order; if it holds an LMDB
    (``data.mdb``) instead, see :class:`ZipLMDBSource`."""

    def _names(self, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
        return sorted((z for z in zf.infolist() if not z.is_dir() and is_image_name(z.filename)),
                      key=lambda z: z.filename)

    def size_hint(self) -> int | None:
        try:
            with zipfile.ZipFile(self.path) as zf:
                return len(self._names(zf))
        except (zipfile.BadZipFile, OSError):
            return None

    def records(self, start: int = 0) -> Iterator[Record]:
        try:
            with zipfile.ZipFile(self.path) as zf:
                for z in self._names(zf)[start:]:
                    if z.file_size > MAX_RECORD_BYTES:
                        yield Record(z.filename, reason="too-large", detail=f"member of {z.file_size} bytes")
                        continue
                    if _too_compressed(z.file_size, z.compress_size):
                        ratio = z.file_size // max(1, z.compress_size)
                        yield Record(z.filename, reason="too-large", detail=f"member of {z.file_size} bytes "
                                                                            f"compressed {ratio}:1 (a zip bomb?)")
                        continue
                    try:
                        data = zf.read(z)
                    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:  # one bad member
                        yield Record(z.filename, reason="corrupt-or-truncated", detail=f"{type(exc).__name__}: {exc}")
                        continue
                    yield Record(z.filename, data=data)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ColorkitError(f"{self.path}: cannot read the zip archive ({type(exc).__name__}: {exc})") from None


def _open_lmdb(path: Path):
    try:
        import lmdb
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ColorkitError(f"reading LMDB needs the 'lmdb' package ({exc})") from None
    try:
        # readonly, no lock file written, no readahead: a shared or read-only copy works.
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, max_readers=8, subdir=path.is_dir())
    except lmdb.Error as exc:
        raise ColorkitError(f"{path}: cannot open as an LMDB database ({exc})") from None


class LMDBSource(Source):
    """Values of an LMDB database (the LSUN layout: key = image id, value = encoded image),
    in key order."""

    def __init__(self, path: Path, name: str | None = None, memo: DigestMemo | None = None) -> None:
        self.path = Path(path).resolve()
        self.name = name or self.path.name
        self.location = str(self.path)
        self.memo = memo or DigestMemo(None)

    def _data_file(self) -> Path:
        return self.path / "data.mdb" if self.path.is_dir() else self.path

    def fingerprint(self) -> str:
        d = self.memo.digest(self._data_file())
        self.memo.save()
        return f"lmdb\0{self.path}\0{d}"

    def size_hint(self) -> int | None:
        import lmdb

        env = _open_lmdb(self.path)
        try:
            return int(env.stat()["entries"])
        except lmdb.Error:
            return None  # reported when the records are read
        finally:
            env.close()

    def records(self, start: int = 0) -> Iterator[Record]:
        import lmdb

        env = _open_lmdb(self.path)
        try:
            yield from self._records(env, start)
        except lmdb.Error as exc:  # a damaged page, a truncated file
            raise ColorkitError(f"{self.path}: cannot read the LMDB database ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())})") from None
        finally:
            env.close()

    def _records(self, env: Any, start: int) -> Iterator[Record]:
        with env.begin(buffers=False) as txn:
            cur = txn.cursor()
            i = 0
            for key, value in cur:
                if i < start:
                    i += 1
                    continue
                i += 1
                k = key.decode("utf-8", "replace")
                if len(value) > MAX_RECORD_BYTES:
                    yield Record(k, reason="too-large", detail=f"value of {len(value)} bytes")
                    continue
                yield Record(k, data=bytes(value))


class ZipLMDBSource(_FileSource):
    """An LMDB database shipped inside a ``.zip`` (LSUN's ``*_lmdb.zip``). LMDB needs a
    real file, so the zip's ``data.mdb`` is copied once to ``scratch`` (a folder in the
    cache), read, and removed after preparation; nothing else is extracted."""

    def __init__(self, path: Path, scratch: Path, name: str | None = None, memo: DigestMemo | None = None) -> None:
        super().__init__(path, name, memo)
        self.scratch = scratch

    def _member(self, zf: zipfile.ZipFile) -> zipfile.ZipInfo:
        for z in zf.infolist():
            if z.filename.endswith("data.mdb"):
                return z
        raise ColorkitError(f"{self.path}: the zip holds no LMDB data.mdb")  # pragma: no cover

    def _extracted(self) -> Path:
        with zipfile.ZipFile(self.path) as zf:
            z = self._member(zf)
            out = self.scratch / "data.mdb"
            if out.is_file() and out.stat().st_size == z.file_size:
                return self.scratch
            self.scratch.mkdir(parents=True, exist_ok=True)
            with fs.AtomicFile(out, part=True) as tmp, zf.open(z) as src, fs.open_write(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            return self.scratch

    def size_hint(self) -> int | None:
        return LMDBSource(self._extracted()).size_hint()

    def records(self, start: int = 0) -> Iterator[Record]:
        yield from LMDBSource(self._extracted()).records(start)

    def cleanup(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def zip_holds_lmdb(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("data.mdb") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def is_lmdb_dir(path: Path) -> bool:
    return path.is_dir() and (path / "data.mdb").is_file()


def source_for_path(path: Path, *, name: str | None = None, cache_dir: Path | None = None) -> Source:
    """The :class:`Source` for a folder, archive or LMDB directory; a one-line error for
    anything else."""
    memo = DigestMemo(cache_dir)
    path = Path(path).expanduser()
    low = path.name.lower()
    if is_lmdb_dir(path):
        return LMDBSource(path, name, memo)
    if path.is_dir():
        return FolderSource(path, name, memo)
    if not path.exists():
        raise ColorkitError(f"{path} does not exist; expected a folder, .tar, .tar.gz, .zip or LMDB directory")
    try:
        check_regular(path)
    except OSError as exc:
        raise ColorkitError(f"--dataset {str(path)!r}: {exc.strerror or exc}; expected a folder of images, .tar, "
                            ".tar.gz, .zip or an LMDB directory") from None
    if low.endswith((".tar", ".tar.gz", ".tgz")):
        return TarSource(path, name, memo)
    if low.endswith(".zip"):
        if zip_holds_lmdb(path):
            scratch = (
                (cache_dir or Path(".")) / "scratch" / hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
            )
            return ZipLMDBSource(path, scratch, name, memo)
        return ZipSource(path, name, memo)
    if low.endswith(".mdb"):
        return LMDBSource(path, name, memo)
    raise ColorkitError(
        f"--dataset {str(path)!r} is a file of an unsupported kind; expected a folder of images, "
        ".tar, .tar.gz, .zip, an LMDB directory or a data set name"
    )


__all__ = ["FolderSource", "LMDBSource", "TarSource", "ZipLMDBSource", "ZipSource", "is_lmdb_dir", "source_for_path",
           "zip_holds_lmdb"]
