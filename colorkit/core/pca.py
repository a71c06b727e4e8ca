"""Exact PCA solvers for the colour statistics (:func:`colorkit.core.stats.compute_stats`):
an SVD of in-memory centred data and the top-k eigenpairs of a symmetric PSD matrix."""

from __future__ import annotations

import torch
from torch import Tensor


def flip_signs(comps: Tensor) -> Tensor:
    """Deterministic signs: the largest-magnitude entry of each component is positive."""
    idx = comps.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(torch.gather(comps, 1, idx))
    signs[signs == 0] = 1
    return comps * signs


def top_eigh(a: Tensor, k: int, *, tol: float = 1e-9, max_iter: int = 400) -> tuple[Tensor, Tensor]:
    """Top-``k`` eigenpairs of a symmetric PSD matrix ``a`` ``(n, n)``: ``(evals (k,)``
    descending, ``evecs (n, k))``. Full ``eigh`` up to n = 512; above, block subspace
    iteration with Rayleigh-Ritz (block 2k + 10) until every residual
    ``||a v - lambda v||`` is below ``tol * lambda_1`` (full ``eigh`` if it has not
    converged after ``max_iter`` steps). Both are exact to that tolerance; the iteration
    costs O(n^2 k) per step instead of eigh's O(n^3) (n = 8192: ~2 s instead of ~5 min on
    2 cores)."""
    n = a.shape[0]
    if n <= 512:
        evals, evecs = torch.linalg.eigh(a)
        return evals.flip(0)[:k], evecs.flip(1)[:, :k]
    m = min(n, 2 * k + 10)
    gen = torch.Generator().manual_seed(0)
    q = torch.linalg.qr(torch.randn(n, m, generator=gen, dtype=a.dtype)).Q
    for it in range(max_iter):
        q = torch.linalg.qr(a @ q).Q
        if it % 5 == 4:
            ev, w = torch.linalg.eigh(q.T @ a @ q)
            ev, w = ev.flip(0), w.flip(1)
            q = q @ w  # Ritz vectors, descending
            top, lam = q[:, :k], ev[:k]
            resid = (a @ top - top * lam).norm(dim=0)
            if bool((resid <= tol * ev[0].abs()).all()):
                return lam, top
    evals, evecs = torch.linalg.eigh(a)
    return evals.flip(0)[:k], evecs.flip(1)[:, :k]


def pca_in_memory(xc: Tensor, k: int) -> tuple[Tensor, Tensor, str]:
    """Top-``k`` ``(variances (k,), components (k, D), method)`` of centred data
    ``xc`` ``(N, D)`` float64. Up to 512 rows: ``torch.linalg.svd``. Above: the same SVD
    through the Gram matrix (``xc = U S V^T``, ``xc xc^T = U S^2 U^T``,
    ``V = xc^T U S^-1``), 10x faster on CPU (1024 x 8192: 0.9 s vs 9 s)."""
    n = xc.shape[0]
    if n <= 512:
        # SVD of the tall transpose (xc^T = V S U^T): LAPACK is much faster on tall input.
        v, s, _ = torch.linalg.svd(xc.T, full_matrices=False)
        return (s[:k] ** 2) / (n - 1), v[:, :k].T, "svd"
    evals, u = top_eigh(xc @ xc.T, k)
    s = evals.clamp(min=0.0).sqrt()
    comps = (u.T @ xc) / s.clamp(min=1e-300)[:, None]
    q, r = torch.linalg.qr(comps.T)  # clean up round-off: orthonormal, same order and signs
    comps = (q * torch.sign(r.diagonal())).T
    return evals / (n - 1), comps, "svd-gram"
