"""The train/test split of a prepared data set.

Deshpande et al. (CVPR 2017, section 7.1) hold out a random test set of 1000 images per
data set. ``test_size`` images are drawn at random (``numpy.random.default_rng(split_seed)``
permutation); the default is the source's split rule when it has one (the paper's 1000 for
the recipes), else the paper's 1000 scaled down for small sets:
``min(1000, max(1, round(0.1 * N)), N - 1)`` (Python ``round``, half to even). The split is
recomputed from (N, split_seed, test_size) on every call; it is not part of the cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from colorkit.core.registry import ColorkitError

PAPER_TEST_SIZE = 1000


def default_test_size(n: int) -> int:
    """The paper's 1000-image test set, scaled for small sets:
    ``min(1000, max(1, round(0.1 * n)), n - 1)`` (never below 0)."""
    return max(0, min(PAPER_TEST_SIZE, max(1, round(0.1 * n)), n - 1))


def split_indices(n: int, test_size: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``range(n)``: ``(train_idx, test_idx)``, each sorted
    int64, ``test_idx`` of length ``test_size``."""
    perm = np.random.default_rng(split_seed).permutation(n).astype(np.int64)
    return np.sort(perm[test_size:]), np.sort(perm[:test_size])


def check_test_size(test_size: int | None, n: int, root: Any, rule: dict[str, Any] | None = None) -> int:
    """The test set size to use for ``n`` usable images: ``test_size``, else the rule's,
    else :func:`default_test_size`. A one-line error when it leaves no training image."""
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


def initial_split(
    n: int, split_seed: int, test_size: int | None, root: Any, rule: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The split asked for when the cache was made (recorded for reference; every call
    recomputes its own). ``None`` if ``test_size`` does not fit (prepare then raises)."""
    if n == 0:
        return None
    try:
        t = check_test_size(test_size, n, root, rule)
    except ColorkitError:
        return None
    _, test = split_indices(n, t, split_seed)
    return {"seed": split_seed, "test_size": t, "test": test.tolist()}


__all__ = ["PAPER_TEST_SIZE", "check_test_size", "default_test_size", "initial_split", "split_indices"]
