"""Probe: does the spread of the hints, or how far a learned model's colorizations are
pulled towards it, decide the error with hints? A measurement, not part of any method.

    python benchmarks/hint_spread_probe.py OUT [--counts 5,10] [--alphas 1,0.75,0.5]

``OUT`` is the output folder of ``colorkit bench --methods mdn --seeds N --hints ...``
(its ``runs/mdn/seed-*`` and ``runs/prior-kmeans/seed-0``). With the bench's own hint
points (``colorkit.eval.hints.bench_hint_maps``, seed 0) on the demo test split it prints,
per hint count, at the pixels without a hint (ab/128; the paired intervals are 95 %
bootstraps over test images of the per-image values averaged over the runs' seeds):

- ``levin`` (the grey image plus Levin's propagation) against a **symmetric spread**: the
  same 3x3 neighbourhood with the weights ``exp(-a (Y_r - Y_s)^2 / 30)`` (Y in L units),
  the same for both neighbours, plus a small pull ``eps`` of every pixel towards grey,
  applied to the grey image and to ``prior-kmeans``'s colorizations;
- the runs' own colorizations (their MDN reads the hints, without the spread of the
  residual) multiplied by ``alpha`` and then given the generic fallback: ``alpha = 1`` is
  what ``mdn`` does, ``alpha = 0`` is ``levin``; in between the k colorizations are pulled
  towards the hints' spread.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from hint_refiner_probe import boot, scores

import colorkit
from colorkit.core.hints import sample_with_hints
from colorkit.core.propagate import propagate, propagate_residual
from colorkit.eval.hints import bench_hint_maps

K = 5


def paired(d: torch.Tensor) -> str:
    mean, low, high = boot(d)
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"


def symmetric_spread(grey: np.ndarray, mask: np.ndarray, values: np.ndarray, a: float, eps: float) -> np.ndarray:
    """``values (C, H, W)`` at ``mask (H, W)`` spread over ``grey (H, W)`` (L / 100) with
    symmetric Gaussian weights on the lightness difference and a pull ``eps`` to 0."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    h, w = grey.shape
    n = h * w
    idx = np.arange(n).reshape(h, w)
    rows, cols = [], []
    for dy, dx in [(0, 1), (1, 0), (1, 1), (1, -1)]:  # each undirected edge once
        x0, x1 = max(0, -dx), w - max(0, dx)
        rows.append(idx[:h - dy, x0:x1].ravel())
        cols.append(idx[dy:, x0 + dx:x1 + dx].ravel())
    r, s = np.concatenate(rows), np.concatenate(cols)
    y = grey.ravel().astype(np.float64) * 100.0
    wt = np.exp(-a * (y[r] - y[s]) ** 2 / 30.0)
    lap = sp.csr_matrix((np.concatenate([-wt, -wt]), (np.concatenate([r, s]), np.concatenate([s, r]))), shape=(n, n))
    lap = (lap + sp.diags(np.bincount(r, wt, n) + np.bincount(s, wt, n) + eps)).tocsr()
    m = mask.ravel()
    free, hinted = np.flatnonzero(~m), np.flatnonzero(m)
    v = values.reshape(values.shape[0], -1).T.astype(np.float64)
    x = np.where(m[:, None], v, 0.0)
    if len(hinted):
        x[free] = splu(lap[free][:, free].tocsc()).solve(-(lap[free][:, hinted] @ v[hinted]))
    return x.T.reshape(values.shape)


def symmetric_residual(samples: torch.Tensor, grey: torch.Tensor, hints: torch.Tensor, a: float,
                       eps: float) -> torch.Tensor:
    """The generic fallback with :func:`symmetric_spread` instead of Levin's propagation."""
    out = samples.float().clone()
    k, hw = samples.shape[1], samples.shape[-2:]
    for i in range(samples.shape[0]):
        m = hints[i, 0].numpy() > 0
        if m.any():
            res = ((hints[i, None, 1:] - out[i]) * hints[i, None, :1]).reshape(-1, *hw).numpy()
            out[i] += torch.from_numpy(symmetric_spread(grey[i, 0].numpy(), m, res, a, eps)).reshape(k, 2, *hw).float()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--counts", default="5,10")
    ap.add_argument("--alphas", default="1,0.75,0.5")
    ap.add_argument("--a", type=float, default=1.0)
    ap.add_argument("--eps", type=float, default=1e-4)
    args = ap.parse_args()
    test = colorkit.prepare("demo", progress=False).split("test")
    batch = test.batch(list(range(len(test))))
    g, ab = batch["grey"], batch["ab"]
    prior = colorkit.load(args.out / "runs/prior-kmeans/seed-0").method
    runs = [colorkit.load(p).method for p in sorted((args.out / "runs/mdn").glob("seed-*"))]
    for m in runs:
        m.configure_sampling(hint_residual=False)

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(0)

    for count in [int(c) for c in args.counts.split(",")]:
        hm = bench_hint_maps(ab, list(range(len(g))), count, 0)
        free = 1 - hm[:, :1]
        zero = torch.zeros(len(g), 1, 2, *g.shape[-2:])
        lev = scores(propagate(g, hm[:, :1], hm[:, 1:])[:, None], ab, free)
        pk_lev = scores(sample_with_hints(prior, g, K, hints=hm, generator=gen()), ab, free)
        sym = scores(symmetric_residual(zero, g, hm, args.a, args.eps), ab, free)
        pk_sym = scores(symmetric_residual(prior.sample(g, K, generator=gen()), g, hm, args.a, args.eps), ab, free)
        print(f"--- {count} hints, {len(g)} test images, {len(runs)} runs")
        print(f"levin {lev[0].mean():.4f}; symmetric spread {sym[0].mean():.4f}, minus levin {paired(sym[0] - lev[0])}")
        print(f"prior-kmeans + levin {pk_lev[0].mean():.4f}; + symmetric {pk_sym[0].mean():.4f}, "
              f"difference {paired(pk_sym[0] - pk_lev[0])}")
        raw = [m.sample(g, K, hints=hm, generator=gen()) for m in runs]
        for alpha in [float(a) for a in args.alphas.split(",")]:
            s = [scores(propagate_residual(alpha * r, g, hm), ab, free) for r in raw]
            eob, mean, var = (sum(x[j] for x in s) / len(s) for j in range(3))
            print(f"alpha {alpha:.2f}: error-of-best {eob.mean():.4f}, mean over k {mean.mean():.4f}, "
                  f"variance {var.mean():.2e}; minus levin {paired(eob - lev[0])}, "
                  f"minus prior-kmeans + levin {paired(eob - pk_lev[0])}")


if __name__ == "__main__":
    main()
