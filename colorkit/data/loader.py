"""Batches for training read lazily through a ``torch.utils.data.DataLoader``.

:func:`batch_loader` turns a list of index batches (what the engine's seeded, sharded
sampler gives) into ``(rgb uint8 (B, H, W, 3), rows int64 (B,))`` tensors read from the
shards, in worker processes when ``workers > 0`` and into pinned memory for
CUDA. Only ``prefetch * max(1, workers)`` batches are in flight, so memory stays flat
however large the set. The Lab conversion (:func:`to_model_batch`) runs on the training
device, so the numbers are the same whatever the loader's settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from colorkit.core.color import uint8_hwc_to_model


class _BatchReader(Dataset):
    """``reader[list_of_positions] -> (uint8 (B, H, W, 3), rows (B,))``."""

    def __init__(self, split: Any) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, positions: Sequence[int]) -> tuple[Tensor, Tensor]:
        pos = np.asarray(positions, dtype=np.int64)
        rgb = self.split.rgb_uint8(pos)
        rows = self.split.indices[pos] if hasattr(self.split, "indices") else pos
        return torch.from_numpy(rgb), torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))


def default_workers(device: torch.device) -> int:
    """Loader processes: none on CPU (the conversion runs on the training device and
    reading the shards is cheap), up to 4 for a GPU."""
    if device.type != "cuda":
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def batch_loader(split: Any, batches: Iterable[Sequence[int]], *, device: torch.device | str = "cpu",
                 workers: int | None = None, prefetch: int = 2) -> Iterable[tuple[Tensor, Tensor]]:
    """A DataLoader yielding ``(rgb_uint8, rows)`` for each batch of positions in
    ``batches`` (in order). ``split`` needs ``rgb_uint8(positions)`` (a
    :class:`~colorkit.data.SplitData`); pinned memory when ``device`` is CUDA. With no
    worker processes on CPU the same reads run in this process as a plain generator (a
    DataLoader would only add per-batch overhead there)."""
    dev = torch.device(device)
    n_workers = default_workers(dev) if workers is None else int(workers)
    if n_workers == 0 and dev.type != "cuda":
        reader = _BatchReader(split)  # in this process: no DataLoader machinery per batch
        return (reader[b] for b in batches)
    return DataLoader(
        _BatchReader(split),
        sampler=list(batches),
        batch_size=None,
        num_workers=n_workers,
        pin_memory=dev.type == "cuda",
        prefetch_factor=prefetch if n_workers > 0 else None,
        persistent_workers=False,
    )


def to_model_batch(rgb: Tensor, rows: Tensor, device: torch.device) -> dict[str, Tensor]:
    """``{"grey", "ab", "index"}`` on ``device`` from a loader item, converted there."""
    rgb = rgb.to(device, non_blocking=True)
    if rgb.device.type == "cpu":
        grey, ab = uint8_hwc_to_model(rgb.numpy())
    else:
        from colorkit.core.color import rgb_to_model

        grey, ab = rgb_to_model(rgb.permute(0, 3, 1, 2).to(torch.float32).div_(255.0))
    return {"grey": grey, "ab": ab, "index": rows.to(device, non_blocking=True)}
