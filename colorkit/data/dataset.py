"""A prepared data set (uint8 images in ``shard-NNNNN.npy`` files) and its splits.

:class:`PreparedDataset` is what :func:`colorkit.data.prepare` returns; its
:meth:`~PreparedDataset.split` gives a :class:`SplitData`, a ``torch.utils.data.Dataset``
whose :meth:`~SplitData.batch` converts many images in one vectorised call (what the
training engine uses). Rows are read from the shards per batch, never all loaded at once.

Units: ``grey`` = Lab L / 100 ``(1, H, W)``; ``ab`` = Lab (a, b) / 128 ``(2, H, W)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from colorkit.core.color import uint8_hwc_to_model
from colorkit.core.registry import ColorkitError

SPLITS = ("train", "test", "all")


def _open_images(path: Path) -> np.ndarray:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ColorkitError(f"{path}: expected uint8 images (N, H, W, 3), found {arr.dtype} {arr.shape}")
    return arr


class _Shards:
    """Rows of a sharded prepared set, read with ``pread`` straight into the output (one
    file handle per shard, opened on first use): no pixels stay mapped or held in this
    process, so its memory does not grow with the data set however many epochs run."""

    def __init__(self, root: Path, shards: Sequence[tuple[str, int]]) -> None:
        self.root = Path(root)
        self.shards = [(str(f), int(n)) for f, n in shards]
        self.starts = np.cumsum([0] + [n for _, n in self.shards]).astype(np.int64)
        self._files: dict[int, tuple[int, int, tuple[int, ...]]] = {}  # k -> (fd, data offset, shape)

    @property
    def n(self) -> int:
        return int(self.starts[-1])

    def shard(self, k: int) -> np.ndarray:
        """Shard ``k`` memory-mapped (for whole-array reads)."""
        m = _open_images(self.root / self.shards[k][0])
        if m.shape[0] != self.shards[k][1]:
            raise ColorkitError(f"{self.root / self.shards[k][0]}: holds {m.shape[0]} images, "
                                f"the index says {self.shards[k][1]}; prepare the data set again")
        return m

    def _file(self, k: int) -> tuple[int, int, tuple[int, ...]]:
        got = self._files.get(k)
        if got is None:
            path = self.root / self.shards[k][0]
            with open(path, "rb") as f:
                try:
                    version = np.lib.format.read_magic(f)
                    shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                             else np.lib.format.read_array_header_2_0(f))
                except ValueError as exc:
                    raise ColorkitError(f"{path}: not a prepared shard ({exc}); prepare the data set again") from None
                offset = f.tell()
            if dtype != np.uint8 or fortran or len(shape) != 4 or shape[0] != self.shards[k][1] or shape[-1] != 3:
                raise ColorkitError(f"{path}: expected {self.shards[k][1]} uint8 images (N, H, W, 3), found "
                                    f"{dtype} {shape}; prepare the data set again")
            got = (os.open(path, os.O_RDONLY), offset, tuple(shape))
            self._files[k] = got
        return got

    def gather(self, rows: np.ndarray, out: np.ndarray, dest: np.ndarray) -> None:
        """``out[dest[i]] = image[rows[i]]`` for sorted ``rows`` (``out`` C-contiguous)."""
        which = np.searchsorted(self.starts, rows, side="right") - 1
        row_bytes = int(np.prod(out.shape[1:]))
        for r, k, d in zip(rows.tolist(), which.tolist(), dest.tolist()):
            fd, offset, shape = self._file(k)
            target = memoryview(out[d]).cast("B")
            got = os.preadv(fd, [target], offset + (r - int(self.starts[k])) * row_bytes)
            if got != row_bytes:
                raise ColorkitError(f"{self.root / self.shards[k][0]}: truncated shard; prepare the data set again")

    def close(self) -> None:
        for fd, _, _ in self._files.values():
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass
        self._files = {}

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}
        return state


class SplitData(Dataset):
    """One split (``train`` or ``test``) of a prepared data set.

    ``len(split)`` images; ``split[i]`` (``i`` a position in this split) gives
    ``{"grey": (1,H,W) float32, "ab": (2,H,W) float32, "index": int}`` where ``index`` is
    the image's row in the whole prepared set (``PreparedDataset.files[index]``).
    :meth:`batch` does the same for many positions at once; :meth:`rgb_uint8` gives the
    stored pixels. Rows are read per call from the shards (``pread``); pickles without
    the open files (safe for DataLoader workers). ``root``: the prepared cache folder.
    """

    def __init__(self, root: Path, indices: np.ndarray, name: str,
                 shards: Sequence[tuple[str, int]] | None = None, size: int | None = None) -> None:
        root = Path(root)
        if root.suffix == ".npy":  # a single images.npy (older callers)
            shards = [(root.name, int(_open_images(root).shape[0]))]
            root = root.parent
        self.root = root
        self.indices = np.asarray(indices, dtype=np.int64)  # (N_split,) rows of the prepared set
        self.name = name
        self._store = _Shards(root, shards or [])
        self._size = size

    @property
    def images_path(self) -> Path:
        """The prepared cache folder's index (kept for callers that take its parent)."""
        return self.root / "index.json"

    def _hw(self) -> tuple[int, int]:
        if self._size is None:
            self._size = int(self._store._file(0)[2][1]) if self._store.shards else 0
        return self._size, self._size

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __repr__(self) -> str:
        return f"SplitData({self.name!r}, n={len(self)}, cache={str(self.root)!r})"

    def _rows(self, positions: Sequence[int] | Tensor | np.ndarray) -> np.ndarray:
        if isinstance(positions, Tensor):
            positions = positions.detach().cpu().numpy()
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        n = len(self)
        if pos.size and (pos.min() < -n or pos.max() >= n):
            raise IndexError(f"position out of range for the {self.name} split of {n} images")
        return self.indices[pos]

    def rgb_uint8(self, positions: Sequence[int] | Tensor | np.ndarray) -> np.ndarray:
        """Stored sRGB pixels of the images at ``positions`` (in this split), ``(B, H, W, 3)``
        uint8, in the order given."""
        rows = self._rows(positions)
        h, w = self._hw()
        if rows.size == 0:
            return np.zeros((0, h, w, 3), dtype=np.uint8)
        order = np.argsort(rows, kind="stable")  # read the memory maps in file order
        out = np.empty((rows.size, h, w, 3), dtype=np.uint8)
        self._store.gather(rows[order], out, order)
        return out

    def batch(
        self, positions: Sequence[int] | Tensor | np.ndarray, device: torch.device | str | None = None
    ) -> dict[str, Tensor]:
        """Images at ``positions`` (in this split) converted in one vectorised call:
        ``{"grey": (B,1,H,W), "ab": (B,2,H,W)}`` float32 and ``"index": (B,)`` int64 rows of
        the prepared set. Conversion runs on ``device`` (default CPU)."""
        rows = self._rows(positions)
        grey, ab = uint8_hwc_to_model(self.rgb_uint8(positions), device=device)
        return {"grey": grey, "ab": ab, "index": torch.from_numpy(rows.copy()).to(grey.device)}

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"SplitData index must be an int, got {type(i).__name__}; use batch() for many")
        b = self.batch([int(i)])
        return {"grey": b["grey"][0], "ab": b["ab"][0], "index": int(b["index"][0])}


@dataclass
class PreparedDataset:
    """A data set prepared once at ``size x size`` and cached.

    ``root``: the cache folder (``shard-NNNNN.npy``, ``index.json``); ``source``: the
    folder, archive or spec the images came from; ``files``: kept images' keys (relative
    paths or member names), in storage order; ``train_idx`` / ``test_idx``: int64 rows of
    the prepared set; ``skipped``: reason -> count; ``skipped_files``: key -> reason;
    ``shards``: ``(file, n_images)`` per shard; ``content_hash``: sha256 over the pixels
    and the kept/skipped lists (equal for equal caches however they were built).
    """

    root: Path
    source: Path
    size: int
    crop: bool
    files: list[str]
    train_idx: np.ndarray
    test_idx: np.ndarray
    skipped: dict[str, int]
    skipped_files: dict[str, str] = field(default_factory=dict)
    hash: str = ""
    seed: int = 0
    test_size: int = 0
    n_candidates: int = 0
    name: str = ""
    shards: list[tuple[str, int]] = field(default_factory=list)
    content_hash: str = ""
    split_rule: dict[str, Any] | None = None
    meta_list: list[Any] | None = None

    @property
    def n(self) -> int:
        """Number of kept images."""
        return len(self.files)

    #: :meth:`images` refuses to load more than this many bytes at once.
    MAX_IMAGES_BYTES = 2 * 1024**3

    def images(self) -> np.ndarray:
        """All kept images in one array, ``(n, size, size, 3)`` uint8 sRGB: the shard
        itself (memory-mapped) when there is one shard, else a copy (refused above
        :attr:`MAX_IMAGES_BYTES`; read large sets through :meth:`split` instead)."""
        if len(self.shards) == 1:
            return _open_images(self.root / self.shards[0][0])
        nbytes = self.n * self.size * self.size * 3
        if nbytes > self.MAX_IMAGES_BYTES:
            raise ColorkitError(f"{self.n} images need {nbytes / 1e9:.1f} GB in one array; read them "
                                "through PreparedDataset.split(...) batches instead")
        split = SplitData(self.root, np.arange(self.n), "all", self.shards, self.size)
        return split.rgb_uint8(np.arange(self.n))

    def meta(self, row: int) -> dict[str, Any] | None:
        """Per-image metadata the source gave for kept image ``row`` (``None`` if none)."""
        return None if self.meta_list is None else self.meta_list[row]

    def split(self, name: str) -> SplitData:
        """The ``"train"`` or ``"test"`` split as a :class:`SplitData`; ``"all"``: every kept
        image in storage order (how a held-out test set is scored)."""
        if name == "train":
            return SplitData(self.root, self.train_idx, "train", self.shards, self.size)
        if name == "test":
            return SplitData(self.root, self.test_idx, "test", self.shards, self.size)
        if name == "all":
            return SplitData(self.root, np.arange(self.n, dtype=np.int64), "all", self.shards, self.size)
        raise ColorkitError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")

    def info(self) -> dict[str, Any]:
        """Counts and settings as plain JSON-able values."""
        return {
            "name": self.name,
            "source": str(self.source),
            "cache": str(self.root),
            "hash": self.hash,
            "content_hash": self.content_hash,
            "shards": len(self.shards),
            "split_rule": self.split_rule,
            "size": self.size,
            "size_units": "pixels (square)",
            "crop": self.crop,
            "n_files": self.n_candidates,
            "n_images": self.n,
            "n_train": int(self.train_idx.size),
            "n_test": int(self.test_idx.size),
            "seed": self.seed,
            "test_size": self.test_size,
            "skipped": dict(sorted(self.skipped.items())),
            "n_skipped": int(sum(self.skipped.values())),
        }

    def __repr__(self) -> str:
        return (
            f"PreparedDataset(source={str(self.source)!r}, n={self.n}, train={self.train_idx.size}, "
            f"test={self.test_idx.size}, size={self.size}, skipped={sum(self.skipped.values())})"
        )
