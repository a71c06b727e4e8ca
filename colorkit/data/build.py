"""Build a prepared cache: stream a source's records through decoder threads into shards
in a locked temporary folder, then move the folder in place.

The cache is built in ``<cache>/datasets/.tmp-build-<key>``, locked by the building
process (:class:`colorkit.core.fs.FileLock` on its ``lock`` file), and renamed to its final
name when complete, so an interrupted run never leaves a half-written cache under the
final name. A run killed at any point (even ``kill -9``) is resumed by the next build of
the same source from its last complete shard (:func:`colorkit.data.shards.complete_shards`)
and gives the same shards and the same content hash as an uninterrupted run. The next
build of any source removes the temporary folders of processes that are no longer alive
(:func:`clean_dead_tmp`: their lock is free).
"""

from __future__ import annotations

import hashlib
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

from PIL import Image

from colorkit.core import fs
from colorkit.core.environment import __version__
from colorkit.core.registry import ColorkitError
from colorkit.data import images as _images
from colorkit.data.records import Record, Source, decode_record
from colorkit.data.shards import FORMAT, ShardWriter, complete_shards, read_index, write_json
from colorkit.data.split import initial_split

_LEGACY_TMP_SECONDS = 24 * 3600


# ----------------------------------------------------------------------------- decoding
IN_FLIGHT_BYTES = 128 * 1024**2
"""Encoded bytes of the records waiting to be decoded, whatever the number of workers: a
next record is read only while those in flight hold fewer (so at most this plus one
record, :data:`colorkit.data.sources.MAX_RECORD_BYTES`)."""


def iter_decoded(
    records: Iterable[Record], decode: Callable[[Record], _images.Loaded], workers: int,
    max_bytes: int = IN_FLIGHT_BYTES,
) -> Iterator[tuple[Record, _images.Loaded]]:
    """``(record, decode(record))`` in order, with at most ``4 * workers`` records in flight
    and, beyond the first, no new one read while those in flight hold ``max_bytes`` of
    encoded data. Pillow releases the GIL while decoding and resizing, so threads scale."""
    if workers <= 1:
        for r in records:
            yield r, decode(r)
        return
    it = iter(records)

    def size(r: Record) -> int:
        return len(r.data) if r.data is not None else 0

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colorkit-prepare") as ex:
        window: deque[tuple[Record, Any]] = deque()
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


def safe_decoder(size: int, crop: bool, min_side: int) -> Callable[[Record], _images.Loaded]:
    def decode(rec: Record) -> _images.Loaded:
        try:  # decode_record handles bad data itself; this only guards against the unforeseen
            return decode_record(rec, size, crop, min_side)
        except Exception as exc:  # noqa: BLE001
            return _images.Loaded(None, "corrupt-or-truncated", f"unexpected {type(exc).__name__}: {exc}")

    return decode


def build_cache(
    source: Source,
    final: Path,
    settings: dict[str, Any],
    digest: str,
    *,
    workers: int,
    progress: bool | Callable[[int, int | None], None],
    desc: str,
    split_seed: int,
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
    lock = fs.FileLock(build / "lock")
    while True:
        build.mkdir(exist_ok=True)
        if lock.acquire(blocking=False):
            break
        print(f"colorkit: waiting for another process preparing the same data set ({build})", file=sys.stderr)
        if lock.acquire(blocking=True):
            break
    try:
        done = read_index(final, digest)  # another process may have finished meanwhile
        if done is not None:
            shutil.rmtree(build, ignore_errors=True)
            return done
        manifests = complete_shards(build, size)
        pos = int(manifests[-1]["end"]) if manifests else 0
        total = source.size_hint()
        callback = progress if callable(progress) else None
        bar = tqdm(total=total, initial=pos, desc=desc, unit="img", file=sys.stderr,
                   disable=True if (not progress or callback) else None)
        if manifests:
            print(f"colorkit: resuming the preparation of {source.name} at image {pos} "
                  f"({len(manifests)} shard(s) kept)", file=sys.stderr)
        decode = safe_decoder(size, settings["crop"], settings["min_side"])
        writer = ShardWriter(build, len(manifests), pos, size, shard_size)
        try:
            with bar, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
                i = pos
                seen = {k for m in manifests for k in (*m["files"], *m["skipped_files"])}
                for i, (rec, res) in enumerate(iter_decoded(source.records(pos), decode, workers), start=pos):
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
                        writer = ShardWriter(build, len(manifests), i + 1, size, shard_size)
                    bar.update(1)
                    if callback is not None:
                        callback(i + 1, total)
            last = writer.close()
            if last is not None:
                manifests.append(last)
        except BaseException:
            writer.abort()
            raise
        source.cleanup()
        index = assemble(source, manifests, settings, digest, split_seed, test_size)
        if index["n_images"] == 0:
            counts = ", ".join(f"{r} {c}" for r, c in sorted(Counter(index["skipped_files"].values()).items()))
            shutil.rmtree(build, ignore_errors=True)
            if index["n_files"] == 0:
                exts = ", ".join(e.lstrip(".") for e in _images.IMAGE_EXTENSIONS)
                raise ColorkitError(f"no image files ({exts}) found in {source.location}")
            raise ColorkitError(
                f"no usable images in {source.location}: all {index['n_files']} files skipped ({counts})"
            )
        return finish(build, final, index)
    finally:
        lock.release()


def assemble(source: Source, manifests: list[dict[str, Any]], settings: dict[str, Any],
              digest: str, split_seed: int, test_size: int | None) -> dict[str, Any]:
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
    rule = source.split_rule
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
        "split": initial_split(n_kept, split_seed, test_size, source.location, rule),
    }


def finish(build: Path, final: Path, index: dict[str, Any]) -> dict[str, Any]:
    write_json(build / "index.json", index)
    (build / "lock").unlink(missing_ok=True)  # a waiting process then finds the finished cache
    try:
        fs.replace(build, final)
    except OSError:
        # Another process finished the same cache first; use it if it is valid.
        other = read_index(final, index["hash"])
        if other is None:
            raise
        shutil.rmtree(build, ignore_errors=True)
        return other
    return index


# ----------------------------------------------------------------------------- temp folders
def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
            lk = fs.FileLock(p / "lock")
            if lk.acquire(blocking=False):
                try:
                    if fs.discard_dir(p):
                        removed.append(p)
                finally:
                    lk.release()
            continue
        try:
            owner = json.loads((p / "owner.json").read_text())
            dead = not pid_alive(int(owner["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            try:
                dead = time.time() - p.stat().st_mtime > _LEGACY_TMP_SECONDS
            except OSError:
                dead = False
        if dead:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


__all__ = ["IN_FLIGHT_BYTES", "build_cache", "clean_dead_tmp", "iter_decoded"]
