"""A prepared data set (uint8 images in a memory-mapped ``images.npy``) and its splits.

:class:`PreparedDataset` is what :func:`colorkit.data.prepare` returns; its
:meth:`~PreparedDataset.split` gives a :class:`SplitData`, a ``torch.utils.data.Dataset``
whose :meth:`~SplitData.batch` converts many images in one vectorised call (what the
training engine uses). Images are read from the memory map, never all loaded at once.

Units: ``grey`` = Lab L / 100 ``(1, H, W)``; ``ab`` = Lab (a, b) / 128 ``(2, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from colorkit.color import uint8_hwc_to_model
from colorkit.registry import ColorkitError

SPLITS = ("train", "test", "all")


def _open_images(path: Path) -> np.ndarray:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ColorkitError(f"{path}: expected uint8 images (N, H, W, 3), found {arr.dtype} {arr.shape}")
    return arr


class SplitData(Dataset):
    """One split (``train`` or ``test``) of a prepared data set.

    ``len(split)`` images; ``split[i]`` (``i`` a position in this split) gives
    ``{"grey": (1,H,W) float32, "ab": (2,H,W) float32, "index": int}`` where ``index`` is
    the image's row in the whole prepared set (``PreparedDataset.files[index]``).
    :meth:`batch` does the same for many positions at once; :meth:`rgb_uint8` gives the
    stored pixels. Pickles without the memory map (safe for DataLoader workers).
    """

    def __init__(self, images_path: Path, indices: np.ndarray, name: str) -> None:
        self.images_path = Path(images_path)
        self.indices = np.asarray(indices, dtype=np.int64)  # (N_split,) rows of images.npy
        self.name = name
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        """The whole prepared set, memory-mapped read-only, ``(N, H, W, 3)`` uint8."""
        if self._images is None:
            self._images = _open_images(self.images_path)
        return self._images

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_images"] = None
        return state

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __repr__(self) -> str:
        return f"SplitData({self.name!r}, n={len(self)}, images={str(self.images_path)!r})"

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
        if rows.size == 0:
            h, w = self.images.shape[1:3]
            return np.zeros((0, h, w, 3), dtype=np.uint8)
        order = np.argsort(rows, kind="stable")  # read the memory map in file order
        out = np.empty((rows.size, *self.images.shape[1:]), dtype=np.uint8)
        out[order] = self.images[rows[order]]
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
    """A folder of images prepared once at ``size x size`` and cached.

    ``root``: the cache folder (``images.npy``, ``index.json``); ``source``: the folder the
    images came from; ``files``: kept images, relative to ``source``, in storage order;
    ``train_idx`` / ``test_idx``: int64 rows of ``images.npy``; ``skipped``: reason ->
    count; ``skipped_files``: relative path -> reason.
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

    @property
    def n(self) -> int:
        """Number of kept images."""
        return len(self.files)

    @property
    def images_path(self) -> Path:
        return self.root / "images.npy"

    def images(self) -> np.ndarray:
        """All kept images, memory-mapped read-only, ``(n, size, size, 3)`` uint8 sRGB."""
        return _open_images(self.images_path)

    def split(self, name: str) -> SplitData:
        """The ``"train"`` or ``"test"`` split as a :class:`SplitData`; ``"all"``: every kept
        image in storage order (how a held-out test set is scored)."""
        if name == "train":
            return SplitData(self.images_path, self.train_idx, "train")
        if name == "test":
            return SplitData(self.images_path, self.test_idx, "test")
        if name == "all":
            return SplitData(self.images_path, np.arange(self.n, dtype=np.int64), "all")
        raise ColorkitError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")

    def info(self) -> dict[str, Any]:
        """Counts and settings as plain JSON-able values."""
        return {
            "name": self.name,
            "source": str(self.source),
            "cache": str(self.root),
            "hash": self.hash,
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
