"""Tiny data made on the spot: a folder of smooth, colourful images, prepared, with stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def make_image_folder(path: str | Path, n: int = 40, size: int = 48, seed: int = 0) -> Path:
    """Write ``n`` colourful images (smooth random fields plus a few shapes, so PCA and
    colour histograms have structure) as PNG/JPEG under ``path``; returns ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        base = rng.uniform(0.1, 0.9, size=3)
        grad = rng.uniform(-0.5, 0.5, size=(2, 3))
        img = base + xx[..., None] * grad[0] + yy[..., None] * grad[1]
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
        disk = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[disk] = rng.uniform(0, 1, size=3)
        img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
        arr = (img * 255).astype(np.uint8)
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(arr).save(path / f"img_{i:03d}.{ext}")
    return path


def tiny_dataset(folder: str | Path, *, size: int = 32, split_seed: int = 0, test_size: int = 8,
                 cache_dir: str | Path | None = None) -> Any:
    """``colorkit.data.prepare`` of ``folder`` at ``size`` (no progress bars)."""
    from colorkit.data import prepare

    return prepare(folder, size=size, split_seed=split_seed, test_size=test_size, cache_dir=cache_dir, progress=False)


def tiny_stats(dataset: Any, k: int = 20) -> Any:
    """Colour statistics of ``dataset``'s training split (needs more than ``k`` images)."""
    from colorkit.core.stats import compute_stats

    return compute_stats(dataset, components=k)
