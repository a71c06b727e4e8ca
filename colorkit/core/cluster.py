"""Batched k-means in torch, shared by every method that clusters samples.

The baselines of Deshpande et al. (CVPR 2017), section 5 and 6.3, draw 256 colorizations per
grey image (CVAE: z ~ N(0, I); cGAN: dropout noise) and report the centres of a k-means
clustering of them (k = 5) as the diverse colorizations. :func:`diverse_from_samples` does
exactly that; :func:`kmeans` is the general routine underneath.

* Initialisation: greedy k-means++ (Arthur and Vassilvitskii 2007; sklearn's variant, which
  draws ``2 + floor(ln k)`` candidates per step and keeps the one lowering the potential most),
  batched over the leading dimension.
* Lloyd iterations vectorised over the batch: distances by ``|x|^2 - 2 x.c + |c|^2``
  (one ``baddbmm``), means by a one-hot ``bmm``. Stops when every item's centre shift is
  at most ``tol`` times the item's mean per-feature variance (sklearn's rule) or after ``iters``.
* An empty cluster is re-seeded at the point farthest from its centre (deterministic).
* At return the centres are exactly the means of their members under the returned labels and
  every cluster has at least one member (``k <= N`` is required).

Randomness comes only from the initialisation and only from ``generator`` (or torch's
global generator when it is ``None``); the same generator state gives the same result.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor

__all__ = ["KMeansResult", "kmeans", "kmeans_plus_plus", "diverse_from_samples"]


class KMeansResult(NamedTuple):
    """``centers`` (B, k, D), ``labels`` (B, N) int64 in [0, k), ``inertia`` (B,): the sum
    over points of the squared distance to their center."""

    centers: Tensor
    labels: Tensor
    inertia: Tensor


def _sq_dists(x: Tensor, c: Tensor) -> Tensor:
    """Squared Euclidean distances (B, N, k) between x (B, N, D) and c (B, k, D)."""
    x2 = x.pow(2).sum(-1, keepdim=True)  # (B, N, 1)
    c2 = c.pow(2).sum(-1).unsqueeze(1)  # (B, 1, k)
    return torch.baddbmm(x2 + c2, x, c.transpose(1, 2), alpha=-2.0).clamp_min_(0.0)


def _assign(x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest centre of each point: labels (B, N), squared distances to it (B, N)."""
    d, labels = _sq_dists(x, c).min(-1)
    return labels, d


def _means(x: Tensor, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Cluster sums divided by counts: means (B, k, D) (0 where empty), counts (B, k)."""
    onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)  # (B, N, k)
    counts = onehot.sum(1)  # (B, k)
    sums = torch.bmm(onehot.transpose(1, 2), x)  # (B, k, D)
    return sums / counts.clamp_min(1).unsqueeze(-1), counts


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, moved to ``like``'s."""
    dev = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=dev, dtype=torch.float64).to(like.device)


def kmeans_plus_plus(x: Tensor, k: int, *, generator: torch.Generator | None = None,
                     n_trials: int | None = None) -> Tensor:
    """Greedy k-means++ seeding of x (B, N, D): k initial centres (B, k, D), rows of x."""
    b, n, _ = x.shape
    trials = n_trials or 2 + int(math.log(k))
    bidx = torch.arange(b, device=x.device)
    first = (_uniform((b,), generator, x) * n).long().clamp_max(n - 1)  # (B,)
    centres = [x[bidx, first]]  # list of (B, D)
    closest = _sq_dists(x, centres[0].unsqueeze(1)).squeeze(-1)  # (B, N)
    for _ in range(1, k):
        pot = closest.double()
        total = pot.sum(1, keepdim=True)  # (B, 1)
        # All points already coincide with a centre: fall back to uniform draws.
        weights = torch.where(total > 0, pot, torch.ones_like(pot))
        cdf = weights.cumsum(1)
        u = _uniform((b, trials), generator, x) * cdf[:, -1:]
        cand = torch.searchsorted(cdf, u, right=True).clamp_max(n - 1)  # (B, T)
        cand_x = torch.gather(x, 1, cand.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, T, D)
        d_cand = torch.minimum(closest.unsqueeze(-1), _sq_dists(x, cand_x))  # (B, N, T)
        best = d_cand.sum(1).argmin(1)  # (B,)
        centres.append(cand_x[bidx, best])
        closest = d_cand[bidx, :, best]
    return torch.stack(centres, 1)


def _reseed_empty(x: Tensor, centres: Tensor, counts: Tensor, dist: Tensor) -> Tensor:
    """Move each empty cluster's centre to the point farthest from its own centre."""
    empty = counts == 0  # (B, k)
    if not bool(empty.any()):
        return centres
    centres, dist = centres.clone(), dist.clone()
    bidx = torch.arange(x.shape[0], device=x.device)
    for j in range(centres.shape[1]):
        rows = empty[:, j]
        if bool(rows.any()):
            far = dist.argmax(1)  # (B,)
            centres[rows, j] = x[bidx, far][rows]
            dist[bidx[rows], far[rows]] = -1.0  # do not pick the same point twice
    return centres


def _fill_empty_labels(labels: Tensor, dist: Tensor, k: int) -> Tensor:
    """Give every empty cluster one member: the farthest point of a cluster with > 1 member."""
    labels, dist = labels.clone(), dist.clone()
    bidx = torch.arange(labels.shape[0], device=labels.device)
    for j in range(k):
        counts = torch.nn.functional.one_hot(labels, k).sum(1)  # (B, k)
        rows = counts[:, j] == 0
        if not bool(rows.any()):
            continue
        movable = torch.gather(counts, 1, labels) > 1  # (B, N)
        far = torch.where(movable, dist, torch.full_like(dist, -1.0)).argmax(1)  # (B,)
        labels[bidx[rows], far[rows]] = j
        dist[bidx[rows], far[rows]] = -1.0
    return labels


def kmeans(x: Tensor, k: int, *, iters: int = 50, generator: torch.Generator | None = None,
           tol: float = 1e-6, init: Tensor | None = None) -> KMeansResult:
    """k-means of each item of a batch of point sets ``x`` (B, N, D), independently.

    ``init`` (B, k, D), when given, replaces the k-means++ seeding (then nothing is random).
    Returns :class:`KMeansResult` with centres (B, k, D) in ``x``'s dtype, labels (B, N)
    and inertia (B,). Raises ``ValueError`` unless ``1 <= k <= N``.
    """
    if x.dim() != 3:
        raise ValueError(f"kmeans expects points of shape (B, N, D); got {tuple(x.shape)}")
    b, n, _ = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"kmeans needs 1 <= k <= N; got k={k} for N={n} points")
    if not x.is_floating_point():
        x = x.float()
    if init is not None:
        if init.shape != (b, k, x.shape[-1]):
            raise ValueError(f"init must have shape {(b, k, x.shape[-1])}; got {tuple(init.shape)}")
        centres = init.to(x)
    else:
        centres = kmeans_plus_plus(x, k, generator=generator)
    # sklearn's tolerance: relative to the mean per-feature variance of each item.
    tol_abs = tol * x.var(1, unbiased=False).mean(-1)  # (B,)
    for _ in range(iters):
        labels, dist = _assign(x, centres)
        means, counts = _means(x, labels, k)
        means = _reseed_empty(x, means, counts, dist)
        shift = (means - centres).pow(2).sum((1, 2))  # (B,)
        centres = means
        if bool((shift <= tol_abs).all()) and bool((counts > 0).all()):
            break
    labels, dist = _assign(x, centres)
    labels = _fill_empty_labels(labels, dist, k)
    centres, _ = _means(x, labels, k)
    inertia = torch.gather(_sq_dists(x, centres), 2, labels.unsqueeze(-1)).squeeze(-1).sum(1)
    return KMeansResult(centres, labels, inertia)


def diverse_from_samples(samples: Tensor, k: int, *, iters: int = 50,
                         generator: torch.Generator | None = None) -> Tensor:
    """Cluster S sampled colour fields per image to k (paper sections 5, 6.3).

    ``samples`` (B, S, C, H, W), e.g. ab fields (B, 256, 2, H, W) in ab / 128; returns the k
    cluster centres (B, k, C, H, W), ordered by cluster size, largest first (ties: lower
    cluster index first).
    """
    if samples.dim() != 5:
        raise ValueError(f"diverse_from_samples expects (B, S, C, H, W); got {tuple(samples.shape)}")
    b, _, c, h, w = samples.shape
    flat = rearrange(samples, "b s c h w -> b s (c h w)")
    res = kmeans(flat, k, iters=iters, generator=generator)
    sizes = torch.nn.functional.one_hot(res.labels, k).sum(1)  # (B, k)
    order = torch.sort(sizes, dim=1, descending=True, stable=True).indices  # (B, k)
    centres = torch.gather(res.centers, 1, order.unsqueeze(-1).expand(-1, -1, res.centers.shape[-1]))
    return rearrange(centres, "b k (c h w) -> b k c h w", c=c, h=h, w=w)
