"""Prepare a folder of images once: resize, convert, skip bad files, cache, split.

Deshpande et al. (CVPR 2017, section 7.1) resize every image straight to 64x64 and hold
out a random test set of 1000 images per data set. :func:`prepare` does the same for any
folder (or registered data set name) and caches the result:

``<cache>/datasets/<hash>/images.npy``
    uint8 ``(N, size, size, 3)`` sRGB, written streaming (one image at a time after a
    header sized for all candidate files, rewritten with the kept count at the end), so
    memory stays flat for 100,000+ images. Read back memory-mapped.
``<cache>/datasets/<hash>/index.json``
    kept files (relative to the source folder), their indices among the candidate files,
    skip counts per reason and the reason (and detail) per skipped file, settings, the
    split asked for at creation, the content hash and the colorkit version.

``<cache>`` is ``cache_dir``, else ``$COLORKIT_CACHE``, else ``~/.cache/colorkit``.
``<hash>`` covers every candidate file's (relative path, size, mtime_ns) and the
preparation settings (size, crop, min_side, greyscale thresholds), so an unchanged folder
is reused without reading any image and any added, removed or modified file makes a new
cache. The cache is built in a temporary folder and moved in place with ``os.replace``: an
interrupted run never leaves a half-written cache.

Split: ``test_size`` images drawn at random (``numpy.random.default_rng(seed)``
permutation); the default is the paper's 1000, scaled down for small folders:
``min(1000, max(1, round(0.1 * N)), N - 1)`` (Python ``round``, half to even). The split is
recomputed from (N, seed, test_size) on every call; it does not change the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colorkit import __version__
from colorkit.data import images as _images
from colorkit.data.dataset import PreparedDataset
from colorkit.registry import ColorkitError

FORMAT = "colorkit-dataset-v1"
PAPER_TEST_SIZE = 1000
_STALE_TMP_SECONDS = 24 * 3600


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


def _check_test_size(test_size: int | None, n: int, root: Path) -> int:
    if test_size is None:
        return default_test_size(n)
    t = int(test_size)
    if t < 0 or t >= n:
        raise ColorkitError(
            f"test_size {test_size} does not fit the {n} usable images in {root}; expected 0 to "
            f"{n - 1} (at least one training image)"
        )
    return t


def resolve_source(source: str | os.PathLike[str]) -> tuple[Path, str]:
    """``(folder, name)`` for a folder path or a registered data set name.

    A bare name (a ``str`` without a path separator) that is registered as a data set wins
    over a folder of the same name in the working directory (write ``./name`` for that).
    """
    from colorkit.plugins import registry

    reg = registry("dataset")
    text = os.fspath(source)
    is_bare = isinstance(source, str) and "/" not in text and os.sep not in text
    if is_bare and text in reg:
        folder = reg.create(text)
        if not isinstance(folder, (str, os.PathLike)):
            raise ColorkitError(
                f"data set {text!r} ({reg.get(text).source}) gave {type(folder).__name__}; "
                "expected a folder path"
            )
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ColorkitError(f"data set {text!r} points to {folder}, which is not a folder")
        return folder.resolve(), text
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve(), path.resolve().name
    if path.exists():
        raise ColorkitError(f"--dataset {text!r} is a file; expected a folder of images or a data set name")
    known = ", ".join(reg.names()) or "none registered"
    raise ColorkitError(
        f"data set {text!r} is neither a folder nor a registered data set name; known names: {known}"
    )


def _settings(size: int, crop: bool, min_side: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "size": size,
        "crop": crop,
        "min_side": min_side,
        "grey_mean_ab": _images.GREY_MEAN_AB,
        "grey_max_chroma": _images.GREY_MAX_CHROMA,
        "extensions": list(_images.IMAGE_EXTENSIONS),
    }


def content_hash(root: Path, files: list[str], settings: dict[str, Any]) -> str:
    """sha256 over the settings and each file's (relative path, size, mtime_ns)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for rel in files:
        try:
            st = os.stat(root / rel)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- .npy writing
def _npy_header(n: int, size: int) -> bytes:
    import io

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


# ----------------------------------------------------------------------------- loading
def _iter_loaded(
    paths: Iterable[str], load: Callable[[str], _images.Loaded], workers: int
) -> Iterator[_images.Loaded]:
    """``load(p)`` for each path, in order, with at most ``4 * workers`` in flight.
    Pillow releases the GIL while decoding and resizing, so threads scale."""
    if workers <= 1:
        for p in paths:
            yield load(p)
        return
    it = iter(paths)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colorkit-prepare") as ex:
        window = deque(ex.submit(load, p) for p in islice(it, 4 * workers))
        try:
            while window:
                fut = window.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    window.append(ex.submit(load, nxt))
                yield fut.result()
        finally:
            for fut in window:
                fut.cancel()


def _safe_loader(root: Path, size: int, crop: bool, min_side: int) -> Callable[[str], _images.Loaded]:
    def load(rel: str) -> _images.Loaded:
        try:  # load_image handles bad files itself; this only guards against the unforeseen
            return _images.load_image(root / rel, size, crop=crop, min_side=min_side)
        except Exception as exc:  # noqa: BLE001
            return _images.Loaded(None, "corrupt-or-truncated", f"unexpected {type(exc).__name__}: {exc}")

    return load


def _clean_stale_tmp(parent: Path) -> None:
    now = time.time()
    for p in parent.glob(".tmp-*"):
        try:
            if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _build(
    root: Path,
    files: list[str],
    final: Path,
    settings: dict[str, Any],
    digest: str,
    *,
    workers: int,
    progress: bool,
    desc: str,
    seed: int,
    test_size: int | None,
) -> dict[str, Any]:
    """Decode every candidate into a temporary folder, then move it to ``final``.
    Returns the index (as written to index.json)."""
    from tqdm.auto import tqdm

    size = settings["size"]
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name[:16]}-", dir=parent))
    try:
        kept_idx: list[int] = []
        skipped_files: dict[str, str] = {}
        skip_details: dict[str, str] = {}
        load = _safe_loader(root, size, settings["crop"], settings["min_side"])
        header = _npy_header(len(files), size)
        with open(tmp / "images.npy", "wb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
            f.write(header)
            bar = tqdm(total=len(files), desc=desc, unit="img", disable=None if progress else True, file=sys.stderr)
            with bar:
                for i, res in enumerate(_iter_loaded(files, load, workers)):
                    if res.array is not None:
                        f.write(res.array.tobytes())
                        kept_idx.append(i)
                    else:
                        skipped_files[files[i]] = res.reason or "corrupt-or-truncated"
                        skip_details[files[i]] = res.detail
                    bar.update(1)
            n_kept = len(kept_idx)
            if n_kept == 0:
                counts = ", ".join(f"{r} {c}" for r, c in sorted(Counter(skipped_files.values()).items()))
                raise ColorkitError(f"no usable images in {root}: all {len(files)} files skipped ({counts})")
            new_header = _npy_header(n_kept, size)
            if len(new_header) != len(header):  # pragma: no cover - numpy pads for growth
                raise RuntimeError("npy header length changed")
            f.seek(0)
            f.write(new_header)
            f.flush()
            os.fsync(f.fileno())
        counts = Counter(skipped_files.values())
        index = {
            "format": FORMAT,
            "colorkit_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": str(root),
            "hash": digest,
            "settings": settings,
            "size": size,
            "crop": settings["crop"],
            "n_files": len(files),
            "n_images": n_kept,
            "files": [files[i] for i in kept_idx],
            "kept_indices": kept_idx,
            "skipped": {r: counts[r] for r in _images.SKIP_REASONS if counts[r]},
            "skipped_files": skipped_files,
            "skip_details": skip_details,
            "split": _initial_split(n_kept, seed, test_size, root),
        }
        return _finish(tmp, final, index)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _initial_split(n: int, seed: int, test_size: int | None, root: Path) -> dict[str, Any] | None:
    """The split asked for when the cache was made (recorded for reference; every call
    recomputes its own). ``None`` if ``test_size`` does not fit (prepare then raises)."""
    try:
        t = _check_test_size(test_size, n, root)
    except ColorkitError:
        return None
    train, test = split_indices(n, t, seed)
    return {"seed": seed, "test_size": t, "train": train.tolist(), "test": test.tolist()}


def _finish(tmp: Path, final: Path, index: dict[str, Any]) -> dict[str, Any]:
    (tmp / "index.json").write_text(json.dumps(index, indent=1))
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process finished the same cache first; use it if it is valid.
        shutil.rmtree(tmp, ignore_errors=True)
        other = _read_index(final, index["hash"])
        if other is None:
            raise
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
    shape = _read_npy_shape(folder / "images.npy")
    size = index.get("size")
    if shape is None or shape != (len(index.get("files", [])), size, size, 3):
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
    source: str | os.PathLike[str],
    *,
    size: int = 64,
    crop: bool = False,
    seed: int = 0,
    test_size: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    min_side: int = _images.MIN_SIDE,
    workers: int | None = None,
) -> PreparedDataset:
    """Prepare (or reuse the cache of) the images under ``source`` at ``size x size``.

    ``source``: a folder, or a registered data set name (``colorkit.list_datasets()``).
    ``crop``: centre square crop before resizing (default: the paper's straight resize).
    ``seed``, ``test_size``: the train/test split (default size: see module docstring).
    ``cache_dir``: base cache folder (default ``$COLORKIT_CACHE`` or ``~/.cache/colorkit``).
    ``min_side``: shorter sides below this many pixels are skipped as ``too-small``.
    ``workers``: loader threads (default: CPU count, at most 8).

    Raises :class:`ColorkitError` for an unknown source, a folder without usable images, or
    a ``test_size`` that leaves no training image.
    """
    if not isinstance(size, int) or size < 8:
        raise ColorkitError(f"size {size!r} is not usable; expected an integer of at least 8 pixels")
    if min_side < 1:
        raise ColorkitError(f"min_side {min_side!r} must be at least 1 pixel")
    root, name = resolve_source(source)
    files = _images.find_images(root)
    if not files:
        exts = ", ".join(e.lstrip(".") for e in _images.IMAGE_EXTENSIONS)
        raise ColorkitError(f"no image files ({exts}) found under {root}")
    settings = _settings(size, crop, min_side)
    digest = content_hash(root, files, settings)
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = base / "datasets" / digest[:32]
    index = _read_index(final, digest)
    if index is None:
        _discard(final)
        n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        index = _build(
            root, files, final, settings, digest,
            workers=n_workers, progress=progress, desc=f"preparing {name} ({size}x{size})",
            seed=seed, test_size=test_size,
        )
    n = int(index["n_images"])
    t = _check_test_size(test_size, n, root)
    train_idx, test_idx = split_indices(n, t, seed)
    return PreparedDataset(
        root=final,
        source=root,
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
    )

