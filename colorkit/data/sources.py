"""Where images come from: folders, archives, LMDB databases and generated sets, read as a
stream of :class:`Record` s.

The data set plugin API
-----------------------
A data set registered through the ``register_datasets`` hook is a factory; ``prepare``
calls it (a family name such as ``synth:`` receives the text after the colon as
``variant=``, e.g. ``synth:seed=3,n=6000`` -> ``factory(variant="seed=3,n=6000")``; a factory
with a ``cache_dir`` parameter also receives the cache folder in use, ``--cache-dir`` or the
default, and writes anything it makes there) and accepts what it returns:

* a path (``str`` / ``os.PathLike``) to a folder of images, a ``.tar``, ``.tar.gz`` /
  ``.tgz``, ``.zip`` archive or an LMDB directory (what ``--dataset PATH`` accepts too);
* a :class:`Source`: any object with

  ``name``            a short name for messages and ``data info``;
  ``location``        a string saying where the images come from (a path, or a spec);
  ``fingerprint()``   a string that changes whenever the images could change (for files:
                      the resolved path plus a content digest; for a generated set: the
                      spec and the generator's version). It is part of the cache key, so
                      an unchanged source reuses its prepared cache and any change makes a
                      new one;
  ``records(start)``  an iterator over :class:`Record` s from position ``start`` on, always
                      in the same order (a resumed preparation skips the first ``start``);
  ``size_hint()``     the expected number of records, or ``None`` (progress bar only);
  ``split_rule``      optional ``dict`` recorded in the data info (e.g. the paper's
                      ``{"test_size": 1000, "seed": 0}``), whose ``test_size`` is the
                      default when none is asked for;

* a :class:`colorkit.data.recipes.Recipe`: a published data set that
  ``colorkit data fetch NAME`` downloads first (see that module).

A :class:`Record` carries either the encoded file (``data``: bytes, decoded by Pillow in
worker threads, the usual case for files and archives) or an already made image
(``image``: a PIL image or a ``(H, W, 3)`` uint8 array, the usual case for a generated set),
plus ``meta``, a small JSON-able ``dict`` kept per image in the prepared cache (e.g. the
parameters a generated image was drawn with; read back with
``PreparedDataset.meta(row)``). Every record is then resized, checked and either kept or
skipped with a reason exactly like a file in a folder (:mod:`colorkit.data.images`).

A generated data set is therefore a ``Source`` subclass whose ``records`` yields
``Record(key=f"{i:06d}", image=array, meta={...})`` from its spec, and whose
``fingerprint`` returns ``f"synth-v1:{spec}"``.

Opening a source never runs code from it and never touches the network; archives are
read as streams (no extraction to disk), member names are only used as keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from colorkit.core.registry import ColorkitError
from colorkit.data import images as _images

#: Largest encoded image read from an archive or LMDB (a member claiming more is skipped
#: as ``too-large`` without being read).
MAX_RECORD_BYTES = 256 * 1024 * 1024

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")

#: Largest compression ratio accepted for an archive member above :data:`RATIO_MIN_BYTES`
#: (declared by a zip's directory or observed while reading a compressed tar); photos
#: compress little, a member of zeros about 1000:1. Such a member is skipped as ``too-large``.
MAX_COMPRESSION_RATIO = 100
RATIO_MIN_BYTES = 1 << 20


@dataclass
class Record:
    """One candidate image: ``key`` (a unique name: relative path, member name or LMDB
    key), and either ``data`` (encoded bytes) or ``image`` (PIL image or uint8 HxWx3
    array); ``meta``: JSON-able per-image metadata; ``reason``/``detail``: a skip already
    decided by the source (e.g. an over-large member)."""

    key: str
    data: bytes | None = None
    image: Any = None
    meta: dict[str, Any] | None = None
    path: str | None = None
    reason: str | None = None
    detail: str = ""


class Source:
    """Base class of image sources (see the module docstring for the protocol)."""

    name: str = "source"
    location: str = ""
    split_rule: dict[str, Any] | None = None

    def fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def records(self, start: int = 0) -> Iterator[Record]:  # pragma: no cover - abstract
        raise NotImplementedError

    def size_hint(self) -> int | None:
        return None


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _images.IMAGE_EXTENSIONS


# ----------------------------------------------------------------------------- fingerprints
_memo_lock = threading.Lock()


def _memo_path(cache_dir: Path | None) -> Path | None:
    return None if cache_dir is None else cache_dir / "fingerprints.json"


def _stat_key(st: os.stat_result) -> list[int]:
    # ctime cannot be set back by a user (unlike mtime), so any rewrite shows here.
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class DigestMemo:
    """Content digests of files, remembered against their full stat (size, mtime, ctime,
    inode, device) so an unchanged file is not read again; any rewrite of a file changes
    its ctime and makes it read again."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.path = _memo_path(cache_dir)
        self.data: dict[str, list[Any]] = {}
        self.dirty = False
        if self.path is not None:
            try:
                raw = json.loads(self.path.read_text())
                if isinstance(raw, dict):
                    self.data = {k: v for k, v in raw.items() if isinstance(v, list) and len(v) == 6}
            except (OSError, ValueError):
                self.data = {}

    def digest(self, path: Path) -> str:
        st = os.stat(path)
        key = str(path)
        sk = _stat_key(st)
        old = self.data.get(key)
        if old is not None and old[:5] == sk:
            return str(old[5])
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        d = h.hexdigest()
        self.data[key] = [*sk, d]
        self.dirty = True
        return d

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        with _memo_lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
                tmp.write_text(json.dumps(self.data))
                os.replace(tmp, self.path)
            except OSError:
                pass  # the memo only saves time


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
                    if not m.isfile() or not _is_image_name(m.name):
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
    return size > RATIO_MIN_BYTES and size > MAX_COMPRESSION_RATIO * max(1, compressed)


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
        return sorted((z for z in zf.infolist() if not z.is_dir() and _is_image_name(z.filename)),
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
            tmp = self.scratch / "data.mdb.part"
            with zf.open(z) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, out)
            return self.scratch

    def size_hint(self) -> int | None:
        return LMDBSource(self._extracted()).size_hint()

    def records(self, start: int = 0) -> Iterator[Record]:
        yield from LMDBSource(self._extracted()).records(start)

    def cleanup(self) -> None:
        import shutil

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


# ----------------------------------------------------------------------------- decoding
def decode_record(rec: Record, size: int, crop: bool, min_side: int) -> _images.Loaded:
    """Resize and check one record like a file in a folder; never raises for bad data."""
    import io

    from PIL import Image, UnidentifiedImageError

    if rec.reason is not None:
        return _images.Loaded(None, rec.reason, rec.detail)
    try:
        if rec.path is not None:
            return _images.load_image(rec.path, size, crop=crop, min_side=min_side)
        if rec.image is not None:
            img = rec.image
            if isinstance(img, np.ndarray):
                if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                    return _images.Loaded(
                        None, "unsupported-mode", f"array {img.dtype} {img.shape}; expected uint8 (H, W, 3)"
                    )
                img = Image.fromarray(img, "RGB")
            return _images._load_opened(img, size, crop, min_side)
        data = rec.data or b""
        if not data:
            return _images.Loaded(None, "empty-file", "0 bytes")
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            return _images.Loaded(None, "not-an-image", "Pillow cannot identify the file")
        except Image.DecompressionBombError as exc:
            return _images.Loaded(None, "too-large", str(exc))
        with img:
            return _images._load_opened(img, size, crop, min_side)
    except Exception as exc:  # noqa: BLE001 - any decoder error is a per-file reason
        return _images.Loaded(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")


__all__ = [
    "ARCHIVE_SUFFIXES",
    "MAX_RECORD_BYTES",
    "DigestMemo",
    "FolderSource",
    "LMDBSource",
    "Record",
    "Source",
    "TarSource",
    "ZipLMDBSource",
    "ZipSource",
    "decode_record",
    "source_for_path",
]
