"""Prepare a data set once: stream its images, resize, convert, skip bad files, write
fixed-size shards, split.

Deshpande et al. (CVPR 2017, section 7.1) resize every image straight to 64x64 and hold
out a random test set of 1000 images per data set. :func:`prepare` does the same for a
folder, a ``.tar`` / ``.tar.gz`` / ``.zip`` archive, an LMDB directory, or a registered
data set name (a folder, a fetched recipe such as ``lfw``, or a generated set; see
:mod:`colorkit.data.sources` for the data set plugin API), and caches the result:

``<cache>/datasets/<key>/shard-NNNNN.npy``
    uint8 ``(n, size, size, 3)`` sRGB, ``shard_size`` images each (the last one fewer),
    written streaming: memory stays flat however many images there are, and nothing is
    extracted to disk. Read back per batch (``pread`` of the rows asked for).
``<cache>/datasets/<key>/shard-NNNNN.json``
    the shard's source positions, kept keys, skipped keys with reason and detail,
    per-image metadata and the sha256 of its pixels (written after the shard: the
    shard's completion marker).
``<cache>/datasets/<key>/index.json``
    all of the above joined, skip counts per reason, settings, the split rule, the key
    and a content hash over every shard's pixels and the kept/skipped lists.

``<cache>`` is ``cache_dir``, else ``$COLORKIT_CACHE``, else ``~/.cache/colorkit``.
``<key>`` covers the source's fingerprint (for files: the resolved path plus a content
digest of every file, remembered against each file's full stat so an unchanged folder is
not read again, while any rewritten file, even one with its old size and mtime restored,
is read and changes the key) and the preparation settings. Two folders never share a
cache, and a changed file makes a new one.

Interrupted work: the cache is built in ``.tmp-build-<key>`` (locked by the building
process) and moved in place with ``os.replace`` when complete, so an interrupted run never
leaves a half-written cache under the final name. A run killed at any point (even
``kill -9``) is resumed by the next ``prepare`` of the same source from its last complete
shard, and gives the same shards and the same content hash as an uninterrupted run. The
next ``prepare`` of any source removes the temporary folders of processes that are no
longer alive (their lock is free).

Split: ``test_size`` images drawn at random (``numpy.random.default_rng(seed)``
permutation); the default is the source's split rule when it has one (the paper's 1000
for the recipes), else the paper's 1000 scaled down for small sets:
``min(1000, max(1, round(0.1 * N)), N - 1)`` (Python ``round``, half to even). The split
is recomputed from (N, seed, test_size) on every call; it does not change the cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import sys
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colorkit import __version__
from colorkit.core.registry import ColorkitError
from colorkit.data import images as _images
from colorkit.data import sources as _sources
from colorkit.data.dataset import PreparedDataset

FORMAT = "colorkit-dataset-v2"
PAPER_TEST_SIZE = 1000
SHARD_SIZE = 1024
"""Images per shard (12 MiB at 64x64)."""
_LEGACY_TMP_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    """``$COLORKIT_CACHE`` if set, else ``~/.cache/colorkit``."""
    env = os.environ.get("COLORKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "colorkit"


def default_test_size(n: int) -> int:
    """The paper's 1000-image test set, scaled for small sets:
    ``min(1000, max(1, round(0.1 * n)), n - 1)`` (never below 0)."""
    return max(0, min(PAPER_TEST_SIZE, max(1, round(0.1 * n)), n - 1))


def split_indices(n: int, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``range(n)``: ``(train_idx, test_idx)``, each sorted
    int64, ``test_idx`` of length ``test_size``."""
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return np.sort(perm[test_size:]), np.sort(perm[:test_size])


def _check_test_size(test_size: int | None, n: int, root: Any, rule: dict[str, Any] | None = None) -> int:
    if test_size is None:
        if rule and isinstance(rule.get("test_size"), int) and 0 <= rule["test_size"] < n:
            return int(rule["test_size"])
        return default_test_size(n)
    t = int(test_size)
    if t < 0 or t >= n:
        raise ColorkitError(
            f"test_size {test_size} does not fit the {n} usable images in {root}; expected 0 to "
            f"{n - 1} (at least one training image)"
        )
    return t


def _registered(text: str):
    from colorkit.core.plugin_manager import registry

    reg = registry("dataset")
    return reg if text in reg else None, reg


def _cache_kwarg(factory: Any, base: Path) -> dict[str, Any]:
    """``{"cache_dir": base}`` for a data set factory that takes ``cache_dir`` (a generated
    set writes its images there), else nothing."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    takes = "cache_dir" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {"cache_dir": base} if takes else {}


def resolve_source(source: Any, *, cache_dir: Path | None = None) -> tuple[Any, str]:
    """``(source, name)`` for a path, a registered data set name or a :class:`Source`.

    The first element is a :class:`~colorkit.data.sources.Source` for what ``prepare``
    reads. A bare name (a ``str`` without a path separator) that is registered as a data
    set wins over a folder of the same name in the working directory (write ``./name``).
    """
    from colorkit.data.recipes import Recipe

    if isinstance(source, _sources.Source):
        return source, source.name
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    text = os.fspath(source)
    is_bare = isinstance(source, str) and "/" not in text and os.sep not in text
    hit, reg = _registered(text) if is_bare else (None, None)
    if hit is not None:
        made = reg.create(text, **_cache_kwarg(reg.get(text).factory, base))
        if isinstance(made, Recipe):
            return made.source(base), text
        if isinstance(made, _sources.Source):
            return made, text
        if not isinstance(made, (str, os.PathLike)):
            raise ColorkitError(
                f"data set {text!r} ({reg.get(text).source}) gave {type(made).__name__}; "
                "expected a path, a colorkit.data.sources.Source or a Recipe"
            )
        path = Path(made).expanduser()
        if not path.exists():
            raise ColorkitError(f"data set {text!r} points to {path}, which does not exist")
        return _sources.source_for_path(path, name=text, cache_dir=base), text
    path = Path(text).expanduser()
    if path.exists():
        src = _sources.source_for_path(path, cache_dir=base)
        return src, src.name
    if reg is None:
        from colorkit.core.plugin_manager import registry

        reg = registry("dataset")
    known = ", ".join(reg.names()) or "none registered"
    raise ColorkitError(
        f"data set {text!r} is neither a folder, an archive (.tar, .tar.gz, .zip), an LMDB "
        f"directory nor a registered data set name; known names: {known}"
    )


def _settings(size: int, crop: bool, min_side: int, shard_size: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "size": size,
        "crop": crop,
        "min_side": min_side,
        "shard_size": shard_size,
        "grey_mean_ab": _images.GREY_MEAN_AB,
        "grey_max_chroma": _images.GREY_MAX_CHROMA,
        "extensions": list(_images.IMAGE_EXTENSIONS),
    }


def content_hash(fingerprint: str, settings: dict[str, Any]) -> str:
    """The cache key: sha256 over the settings and the source's fingerprint."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(b"\0" + fingerprint.encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- .npy shards
def _npy_header(n: int, size: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": (n, size, size, 3)}
    )
    return buf.getvalue()


def _read_npy_shape(path: Path) -> tuple[int, ...] | None:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version != (1, 0):
                return None
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            if fortran or dtype != np.uint8:
                return None
            expected = f.tell() + int(np.prod(shape))
        if os.path.getsize(path) != expected:
            return None
        return tuple(shape)
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _ShardWriter:
    """Writes one shard: rows streamed to ``shard-N.npy.part``, then header fixed, file
    renamed, and its manifest written last (the completion marker)."""

    def __init__(self, folder: Path, number: int, start: int, size: int, capacity: int) -> None:
        self.folder, self.number, self.start, self.end = folder, number, start, start
        self.size, self.capacity = size, capacity
        self.name = f"shard-{number:05d}"
        self.files: list[str] = []
        self.positions: list[int] = []
        self.meta: list[Any] = []
        self.skipped: dict[str, str] = {}
        self.details: dict[str, str] = {}
        self.digest = hashlib.sha256()
        self.header = _npy_header(capacity, size)
        self.fh = open(folder / f"{self.name}.npy.part", "wb")
        self.fh.write(self.header)

    @property
    def full(self) -> bool:
        return len(self.files) >= self.capacity

    def add(self, pos: int, key: str, arr: np.ndarray, meta: Any) -> None:
        b = arr.tobytes()
        self.fh.write(b)
        self.digest.update(b)
        self.files.append(key)
        self.positions.append(pos)
        self.meta.append(meta)
        self.end = pos + 1

    def skip(self, pos: int, key: str, reason: str, detail: str) -> None:
        self.skipped[key] = reason
        self.details[key] = detail
        self.end = pos + 1

    def close(self) -> dict[str, Any] | None:
        """Finish the shard; ``None`` (and nothing written) if it saw no record."""
        n = len(self.files)
        if self.end == self.start:
            self.fh.close()
            os.unlink(self.folder / f"{self.name}.npy.part")
            return None
        new_header = _npy_header(n, self.size)
        if len(new_header) != len(self.header):  # pragma: no cover - numpy pads for growth
            raise RuntimeError("npy header length changed")
        self.fh.seek(0)
        self.fh.write(new_header)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.folder / f"{self.name}.npy.part", self.folder / f"{self.name}.npy")
        manifest = {
            "format": FORMAT, "shard": self.number, "file": f"{self.name}.npy", "n": n,
            "start": self.start, "end": self.end, "files": self.files, "positions": self.positions,
            "meta": self.meta if any(m is not None for m in self.meta) else None,
            "skipped_files": self.skipped, "skip_details": self.details,
            "sha256": self.digest.hexdigest(),
        }
        _write_json(self.folder / f"{self.name}.json", manifest)
        return manifest

    def abort(self) -> None:
        try:
            self.fh.close()
        except OSError:  # pragma: no cover
            pass


def _complete_shards(folder: Path, size: int) -> list[dict[str, Any]]:
    """The manifests of the contiguous run of complete, valid shards in ``folder``."""
    out: list[dict[str, Any]] = []
    pos = 0
    while True:
        name = f"shard-{len(out):05d}"
        try:
            m = json.loads((folder / f"{name}.json").read_text())
        except (OSError, ValueError):
            return out
        if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("start") != pos:
            return out
        if _read_npy_shape(folder / f"{name}.npy") != (m.get("n"), size, size, 3):
            return out
        out.append(m)
        pos = int(m["end"])


# ----------------------------------------------------------------------------- locks, temp folders
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _FolderLock:
    """An exclusive ``flock`` on ``folder/lock``; the kernel drops it when the holder dies
    (even by ``kill -9``), so a free lock means no live process owns the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None

    def acquire(self, block: bool) -> bool:
        path = self.folder / "lock"
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                return False  # the folder went away
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the folder may have been removed or replaced while we waited
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode())
                except OSError:  # pragma: no cover
                    pass
                return True
            os.close(fd)
            if not self.folder.is_dir():
                return False

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def clean_dead_tmp(parent: Path, keep: Path | None = None) -> list[Path]:
    """Remove ``parent/.tmp-*`` folders whose owner is no longer alive: those with a free
    lock, those whose recorded pid is gone, and unlocked legacy folders older than a day.
    Returns the removed folders."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for p in sorted(parent.glob(".tmp-*")):
        if keep is not None and p == keep or not p.is_dir():
            continue
        dead = False
        if (p / "lock").exists():
            lk = _FolderLock(p)
            if lk.acquire(block=False):
                try:
                    trash = p.with_name(f".tmp-dead-{os.getpid()}-{time.time_ns()}")
                    os.replace(p, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                    removed.append(p)
                except OSError:
                    pass
                finally:
                    lk.release()
            continue
        try:
            owner = json.loads((p / "owner.json").read_text())
            dead = not _pid_alive(int(owner["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            try:
                dead = time.time() - p.stat().st_mtime > _LEGACY_TMP_SECONDS
            except OSError:
                dead = False
        if dead:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


# ----------------------------------------------------------------------------- decoding
IN_FLIGHT_BYTES = 128 * 1024**2
"""Encoded bytes of the records waiting to be decoded, whatever the number of workers: a
next record is read only while those in flight hold fewer (so at most this plus one
record, :data:`colorkit.data.sources.MAX_RECORD_BYTES`)."""


def _iter_decoded(
    records: Iterable[_sources.Record], decode: Callable[[_sources.Record], _images.Loaded], workers: int,
    max_bytes: int = IN_FLIGHT_BYTES,
) -> Iterator[tuple[_sources.Record, _images.Loaded]]:
    """``(record, decode(record))`` in order, with at most ``4 * workers`` records in flight
    and, beyond the first, no new one read while those in flight hold ``max_bytes`` of
    encoded data. Pillow releases the GIL while decoding and resizing, so threads scale."""
    if workers <= 1:
        for r in records:
            yield r, decode(r)
        return
    it = iter(records)

    def size(r: _sources.Record) -> int:
        return len(r.data) if r.data is not None else 0

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colorkit-prepare") as ex:
        window: deque[tuple[_sources.Record, Any]] = deque()
        held = 0
        done = False
        try:
            while True:
                while not done and len(window) < 4 * workers and (not window or held < max_bytes):
                    nxt = next(it, None)
                    if nxt is None:
                        done = True
                        break
                    window.append((nxt, ex.submit(decode, nxt)))
                    held += size(nxt)
                if not window:
                    break
                rec, fut = window.popleft()
                res = fut.result()
                held -= size(rec)
                yield rec, res
        finally:
            for _, fut in window:
                fut.cancel()


def _safe_decoder(size: int, crop: bool, min_side: int) -> Callable[[_sources.Record], _images.Loaded]:
    def decode(rec: _sources.Record) -> _images.Loaded:
        try:  # decode_record handles bad data itself; this only guards against the unforeseen
            return _sources.decode_record(rec, size, crop, min_side)
        except Exception as exc:  # noqa: BLE001
            return _images.Loaded(None, "corrupt-or-truncated", f"unexpected {type(exc).__name__}: {exc}")

    return decode


def _build(
    source: _sources.Source,
    final: Path,
    settings: dict[str, Any],
    digest: str,
    *,
    workers: int,
    progress: bool | Callable[[int, int | None], None],
    desc: str,
    seed: int,
    test_size: int | None,
) -> dict[str, Any]:
    """Stream every record into shards in ``.tmp-build-<key>`` (resuming what a dead
    process left there), then move it to ``final``. Returns the index."""
    from tqdm.auto import tqdm

    size, shard_size = settings["size"], settings["shard_size"]
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    build = parent / f".tmp-build-{final.name}"
    clean_dead_tmp(parent, keep=build)
    lock = _FolderLock(build)
    while True:
        build.mkdir(exist_ok=True)
        if lock.acquire(block=False):
            break
        print(f"colorkit: waiting for another process preparing the same data set ({build})", file=sys.stderr)
        if lock.acquire(block=True):
            break
    try:
        done = _read_index(final, digest)  # another process may have finished meanwhile
        if done is not None:
            shutil.rmtree(build, ignore_errors=True)
            return done
        manifests = _complete_shards(build, size)
        pos = int(manifests[-1]["end"]) if manifests else 0
        total = source.size_hint()
        callback = progress if callable(progress) else None
        bar = tqdm(total=total, initial=pos, desc=desc, unit="img", file=sys.stderr,
                   disable=True if (not progress or callback) else None)
        if manifests:
            print(f"colorkit: resuming the preparation of {source.name} at image {pos} "
                  f"({len(manifests)} shard(s) kept)", file=sys.stderr)
        decode = _safe_decoder(size, settings["crop"], settings["min_side"])
        writer = _ShardWriter(build, len(manifests), pos, size, shard_size)
        try:
            with bar, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
                i = pos
                seen = {k for m in manifests for k in (*m["files"], *m["skipped_files"])}
                for i, (rec, res) in enumerate(_iter_decoded(source.records(pos), decode, workers), start=pos):
                    if rec.key in seen:  # a second member of the same name (tar appends): counted, not kept
                        n = 2
                        while f"{rec.key} (duplicate {n})" in seen:
                            n += 1
                        key = f"{rec.key} (duplicate {n})"
                        seen.add(key)
                        writer.skip(i, key, "duplicate-name", f"another member is also named {rec.key}")
                    elif res.array is not None:
                        seen.add(rec.key)
                        writer.add(i, rec.key, res.array, rec.meta)
                    else:
                        seen.add(rec.key)
                        writer.skip(i, rec.key, res.reason or "corrupt-or-truncated", res.detail)
                    if writer.full:
                        manifests.append(writer.close())
                        writer = _ShardWriter(build, len(manifests), i + 1, size, shard_size)
                    bar.update(1)
                    if callback is not None:
                        callback(i + 1, total)
            last = writer.close()
            if last is not None:
                manifests.append(last)
        except BaseException:
            writer.abort()
            raise
        if hasattr(source, "cleanup"):
            source.cleanup()
        index = _assemble(source, manifests, settings, digest, seed, test_size)
        if index["n_images"] == 0:
            counts = ", ".join(f"{r} {c}" for r, c in sorted(Counter(index["skipped_files"].values()).items()))
            shutil.rmtree(build, ignore_errors=True)
            if index["n_files"] == 0:
                exts = ", ".join(e.lstrip(".") for e in _images.IMAGE_EXTENSIONS)
                raise ColorkitError(f"no image files ({exts}) found in {source.location}")
            raise ColorkitError(
                f"no usable images in {source.location}: all {index['n_files']} files skipped ({counts})"
            )
        return _finish(build, final, index)
    finally:
        lock.release()


def _assemble(source: _sources.Source, manifests: list[dict[str, Any]], settings: dict[str, Any],
              digest: str, seed: int, test_size: int | None) -> dict[str, Any]:
    files: list[str] = []
    kept: list[int] = []
    meta: list[Any] = []
    skipped_files: dict[str, str] = {}
    skip_details: dict[str, str] = {}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    has_meta = False
    for m in manifests:
        files.extend(m["files"])
        kept.extend(m["positions"])
        meta.extend(m["meta"] if m["meta"] is not None else [None] * m["n"])
        has_meta = has_meta or m["meta"] is not None
        skipped_files.update(m["skipped_files"])
        skip_details.update(m["skip_details"])
        h.update(json.dumps([m["sha256"], m["files"], sorted(m["skipped_files"].items())]).encode())
    counts = Counter(skipped_files.values())
    n_kept = len(files)
    rule = getattr(source, "split_rule", None)
    return {
        "format": FORMAT,
        "colorkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "name": source.name,
        "source": source.location,
        "hash": digest,
        "content_hash": h.hexdigest(),
        "settings": settings,
        "size": settings["size"],
        "crop": settings["crop"],
        "shard_size": settings["shard_size"],
        "shards": [{"file": m["file"], "n": m["n"], "sha256": m["sha256"]} for m in manifests],
        "n_files": int(manifests[-1]["end"]) if manifests else 0,
        "n_images": n_kept,
        "files": files,
        "kept_indices": kept,
        "meta": meta if has_meta else None,
        "skipped": {r: counts[r] for r in _images.SKIP_REASONS if counts[r]}
        | {r: c for r, c in sorted(counts.items()) if r not in _images.SKIP_REASONS},
        "skipped_files": skipped_files,
        "skip_details": skip_details,
        "split_rule": rule,
        "split": _initial_split(n_kept, seed, test_size, source.location, rule),
    }


def _initial_split(
    n: int, seed: int, test_size: int | None, root: Any, rule: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The split asked for when the cache was made (recorded for reference; every call
    recomputes its own). ``None`` if ``test_size`` does not fit (prepare then raises)."""
    if n == 0:
        return None
    try:
        t = _check_test_size(test_size, n, root, rule)
    except ColorkitError:
        return None
    _, test = split_indices(n, t, seed)
    return {"seed": seed, "test_size": t, "test": test.tolist()}


def _finish(build: Path, final: Path, index: dict[str, Any]) -> dict[str, Any]:
    _write_json(build / "index.json", index)
    (build / "lock").unlink(missing_ok=True)  # a waiting process then finds the finished cache
    try:
        os.replace(build, final)
    except OSError:
        # Another process finished the same cache first; use it if it is valid.
        other = _read_index(final, index["hash"])
        if other is None:
            raise
        shutil.rmtree(build, ignore_errors=True)
        return other
    return index


def _read_index(folder: Path, digest: str) -> dict[str, Any] | None:
    """The cached index if ``folder`` holds a complete, matching cache, else ``None``."""
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("hash") != digest:
        return None
    size = index.get("size")
    shards = index.get("shards")
    if not isinstance(shards, list) or sum(int(s.get("n", -1)) for s in shards) != len(index.get("files", [])):
        return None
    for s in shards:
        if _read_npy_shape(folder / str(s.get("file"))) != (s.get("n"), size, size, 3):
            return None
    return index


def _discard(folder: Path) -> None:
    if folder.exists():
        trash = folder.with_name(f".tmp-stale-{folder.name[:16]}-{os.getpid()}-{time.time_ns()}")
        try:
            os.replace(folder, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)


def prepare(
    source: Any,
    *,
    size: int = 64,
    crop: bool = False,
    seed: int = 0,
    test_size: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | Callable[[int, int | None], None] = True,
    min_side: int = _images.MIN_SIDE,
    workers: int | None = None,
    shard_size: int = SHARD_SIZE,
) -> PreparedDataset:
    """Prepare (or reuse the cache of) the images of ``source`` at ``size x size``.

    ``source``: a folder, ``.tar`` / ``.tar.gz`` / ``.zip`` archive, LMDB directory, a
    registered data set name (``colorkit.list_datasets()``) or a
    :class:`~colorkit.data.sources.Source`.
    ``crop``: centre square crop before resizing (default: the paper's straight resize).
    ``seed``, ``test_size``: the train/test split (default size: see module docstring).
    ``cache_dir``: base cache folder (default ``$COLORKIT_CACHE`` or ``~/.cache/colorkit``).
    ``progress``: a progress bar (``True``), none (``False``) or a callable
    ``progress(done, total_or_None)`` called after each image.
    ``min_side``: shorter sides below this many pixels are skipped as ``too-small``.
    ``workers``: decoder threads (default: CPU count, at most 8).
    ``shard_size``: images per shard.

    Raises :class:`ColorkitError` for an unknown source, a source without usable images,
    or a ``test_size`` that leaves no training image.
    """
    if not isinstance(size, int) or size < 8:
        raise ColorkitError(f"size {size!r} is not usable; expected an integer of at least 8 pixels")
    if min_side < 1:
        raise ColorkitError(f"min_side {min_side!r} must be at least 1 pixel")
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ColorkitError(f"shard_size {shard_size!r} must be a positive integer")
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    src, name = resolve_source(source, cache_dir=base)
    if isinstance(src, _sources.FolderSource) and not src.files:
        exts = ", ".join(e.lstrip(".") for e in _images.IMAGE_EXTENSIONS)
        raise ColorkitError(f"no image files ({exts}) found under {src.root}")
    settings = _settings(size, crop, min_side, shard_size)
    digest = content_hash(src.fingerprint(), settings)
    final = base / "datasets" / digest[:32]
    index = _read_index(final, digest)
    if index is None:
        _discard(final)
        n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        index = _build(
            src, final, settings, digest,
            workers=n_workers, progress=progress, desc=f"preparing {name} ({size}x{size})",
            seed=seed, test_size=test_size,
        )
    n = int(index["n_images"])
    expected = getattr(src, "expected_images", None)
    if expected is not None and int(index["n_files"]) != expected and progress is not False:
        print(f"colorkit: note: {name} holds {index['n_files']} images; the published data set has {expected}",
              file=sys.stderr)
    rule = index.get("split_rule")
    t = _check_test_size(test_size, n, src.location, rule)
    train_idx, test_idx = split_indices(n, t, seed)
    return PreparedDataset(
        root=final,
        source=getattr(src, "root", None) or getattr(src, "path", None) or src.location,
        size=size,
        crop=crop,
        files=list(index["files"]),
        train_idx=train_idx,
        test_idx=test_idx,
        skipped=dict(index["skipped"]),
        skipped_files=dict(index["skipped_files"]),
        hash=digest,
        seed=seed,
        test_size=t,
        n_candidates=int(index["n_files"]),
        name=name,
        shards=[(str(s["file"]), int(s["n"])) for s in index["shards"]],
        content_hash=str(index.get("content_hash", "")),
        split_rule=rule,
        meta_list=index.get("meta"),
    )
