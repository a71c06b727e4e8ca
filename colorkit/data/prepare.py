"""Prepare a data set once: stream its images, resize, convert, skip bad files, write
fixed-size shards, split.

Deshpande et al. (CVPR 2017, section 7.1) resize every image straight to 64x64 and hold
out a random test set of 1000 images per data set. :func:`prepare` does the same for a
folder, a ``.tar`` / ``.tar.gz`` / ``.zip`` archive, an LMDB directory, or a registered
data set name (a folder, a fetched recipe such as ``lfw``, or a generated set; see
:mod:`colorkit.data.sources` for the data set plugin API), and caches the result in
``<cache>/datasets/<key>/`` (the files: :mod:`colorkit.data.shards`). Memory stays flat
however many images there are, and nothing is extracted to disk.

``<cache>`` is ``cache_dir``, else ``$COLORKIT_CACHE``, else ``~/.cache/colorkit``.
``<key>`` covers the source's fingerprint (for files: the resolved path plus a content
digest of every file, remembered against each file's full stat so an unchanged folder is
not read again, while any rewritten file, even one with its old size and mtime restored,
is read and changes the key) and the preparation settings. Two folders never share a
cache, and a changed file makes a new one.

Interrupted work: the cache is built in a locked temporary folder and moved in place when
complete; a run killed at any point is resumed by the next ``prepare`` of the same source
with the same result (:mod:`colorkit.data.build`).

Split: :mod:`colorkit.data.split` (the paper's 1000 random test images, scaled down for
small sets; recomputed on every call, not part of the cache).

The work is shared by a few modules, each with one job: :mod:`~colorkit.data.resolve`
(what a ``--dataset`` names), :mod:`~colorkit.data.sources` (where the records come from),
:mod:`~colorkit.data.build` (records -> shards, locking, resuming),
:mod:`~colorkit.data.shards` (the cache's files), :mod:`~colorkit.data.split` and
:mod:`~colorkit.data.cache` (where the cache lives).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from colorkit.core import fs
from colorkit.core.registry import ColorkitError
from colorkit.data import images as _images
from colorkit.data.archives import FolderSource
from colorkit.data.build import build_cache, clean_dead_tmp
from colorkit.data.cache import cache_root, default_cache_dir
from colorkit.data.dataset import PreparedDataset
from colorkit.data.resolve import resolve_source
from colorkit.data.shards import FORMAT, SHARD_SIZE, read_index
from colorkit.data.split import PAPER_TEST_SIZE, check_test_size, default_test_size, split_indices


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


def prepare(
    source: Any,
    *,
    size: int = 64,
    crop: bool = False,
    split_seed: int = 0,
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
    ``split_seed``, ``test_size``: the train/test split (default size: see module docstring).
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
    base = cache_root(cache_dir)
    src, name = resolve_source(source, cache_dir=base)
    if isinstance(src, FolderSource) and not src.files:
        exts = ", ".join(e.lstrip(".") for e in _images.IMAGE_EXTENSIONS)
        raise ColorkitError(f"no image files ({exts}) found under {src.root}")
    settings = _settings(size, crop, min_side, shard_size)
    digest = content_hash(src.fingerprint(), settings)
    final = base / "datasets" / digest[:32]
    index = read_index(final, digest)
    if index is None:
        fs.discard_dir(final)
        n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        index = build_cache(
            src, final, settings, digest,
            workers=n_workers, progress=progress, desc=f"preparing {name} ({size}x{size})",
            split_seed=split_seed, test_size=test_size,
        )
    n = int(index["n_images"])
    expected = src.expected_images
    if expected is not None and int(index["n_files"]) != expected and progress is not False:
        print(f"colorkit: note: {name} holds {index['n_files']} images; the published data set has {expected}",
              file=sys.stderr)
    rule = index.get("split_rule")
    t = check_test_size(test_size, n, src.location, rule)
    train_idx, test_idx = split_indices(n, t, split_seed)
    return PreparedDataset(
        root=final,
        source=src.root or src.path or src.location,
        size=size,
        crop=crop,
        files=list(index["files"]),
        train_idx=train_idx,
        test_idx=test_idx,
        skipped=dict(index["skipped"]),
        skipped_files=dict(index["skipped_files"]),
        hash=digest,
        seed=split_seed,
        test_size=t,
        n_candidates=int(index["n_files"]),
        name=name,
        shards=[(str(s["file"]), int(s["n"])) for s in index["shards"]],
        content_hash=str(index.get("content_hash", "")),
        split_rule=rule,
        meta_list=index.get("meta"),
    )


__all__ = [
    "FORMAT",
    "PAPER_TEST_SIZE",
    "SHARD_SIZE",
    "clean_dead_tmp",
    "content_hash",
    "default_cache_dir",
    "default_test_size",
    "prepare",
    "resolve_source",
    "split_indices",
]
