"""Bootstrap confidence intervals over test images.

Every figure ``colorkit bench`` prints is a mean over test images; these functions say how
much that mean would move with another draw of test images of the same kind.

* :func:`bootstrap_ci`: the percentile interval of the mean of ``values`` (one value per
  image) over ``resamples`` resamples of the images with replacement.
* :func:`paired_bootstrap`: the same for the mean *difference* ``a - b`` of two methods
  scored on the same images; resampling images (not each method separately) keeps the
  pairing, so the interval is much tighter than two separate intervals would suggest.

Both are seeded, so the same values give the same interval. The defaults (1000 resamples,
95 %) are what the bench uses.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

RESAMPLES = 1000
LEVEL = 0.95


def _as_array(values: Tensor | np.ndarray | list[float]) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().double().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return arr


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    means = np.empty(resamples, dtype=np.float64)
    chunk = max(1, 2_000_000 // max(n, 1))  # bound the index matrix to ~16 MB
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def bootstrap_ci(values: Tensor | np.ndarray | list[float], *, resamples: int = RESAMPLES, level: float = LEVEL,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of the mean of ``values`` (one per
    image). NaN values are an error; fewer than 2 values give ``(nan, nan)``."""
    arr = _as_array(values)
    if np.isnan(arr).any():
        raise ValueError("bootstrap_ci got NaN values")
    if arr.size < 2:
        return (float("nan"), float("nan"))
    means = _resampled_means(arr, resamples, seed)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def paired_bootstrap(a: Tensor | np.ndarray | list[float], b: Tensor | np.ndarray | list[float], *,
                     resamples: int = RESAMPLES, level: float = LEVEL,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean difference ``mean(a - b)`` and its paired percentile interval: returns
    ``(difference, low, high)``. ``a[i]`` and ``b[i]`` must be the same image."""
    xa, xb = _as_array(a), _as_array(b)
    if xa.shape != xb.shape:
        raise ValueError(f"paired_bootstrap needs one value per image for both; got {xa.shape} and {xb.shape}")
    diff = xa - xb
    low, high = bootstrap_ci(diff, resamples=resamples, level=level, seed=seed)
    return (float(diff.mean()) if diff.size else float("nan"), low, high)


def to_tensor(values: list[Tensor]) -> Tensor:
    """Concatenate per-batch ``(B,)`` values into one ``(N,)`` float64 tensor."""
    return (
        torch.cat([v.detach().double().cpu().reshape(-1) for v in values])
        if values
        else torch.zeros(0, dtype=torch.float64)
    )
