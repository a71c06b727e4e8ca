"""The ab grid of the colour statistics: bins, gamut and colourfulness weights.

Units: ab fields are Lab (a, b) / 128; the grid is in Lab units:

* ``G = 23`` bin centres at -110, -100, ..., 110 for a (rows) and b (columns), step 10.
* A value goes to the nearest centre with halves rounded **up**: cell ``k`` holds
  ``[c_k - 5, c_k + 5)``, so a = 95 -> the cell centred at 100, a = 105 -> 110,
  a = -105 -> -100 (round-half-to-even would give 100, 110 and -110). Values beyond the
  grid go to the edge cells. See :func:`ab_to_bin`.
* In-gamut cells (``gamut="reachable"``, default): cells that some sRGB colour (any L)
  falls into, found by converting a dense sampling of the RGB cube's surface (the
  projection of the gamut solid onto the ab plane is the projection of its surface):
  262 cells. ``gamut="centre"``: cells whose *centre* is an sRGB colour for some L in a
  sweep over (0, 100), stricter: 229 cells. Zhang et al.'s 313 bins came from ImageNet
  pixels in their own conversion; both rules are documented choices. Pixels in an
  out-of-gamut cell count for the nearest in-gamut cell (grid distance, ties to the lower
  flat index), in the histogram and in :meth:`ColorStats.weight_of`.

Weights (``weighting``):

* ``"rebalanced"`` (default; Zhang et al. 2016, eq. 3-4): ``p`` = histogram of training
  pixels over in-gamut cells; ``p_s`` = ``p`` smoothed with a Gaussian of ``sigma`` Lab
  units on the grid, renormalised over in-gamut cells; ``w = 1 / ((1 - lam) p_s + lam / Q)``
  with Q in-gamut cells; scaled so that ``sum_cells p * w = 1`` (the mean weight over
  training pixels is 1; Zhang et al. normalise under ``p_s`` instead).
* ``"inverse"``: the authors' release, ``w = 1 / p`` (raw, not normalised: the mean weight
  over training pixels equals the number of occupied cells); in-gamut cells with ``p = 0``
  get the largest finite weight.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from colorkit.core.color import AB_SCALE
from colorkit.core.registry import ColorkitError

G = 23
"""Bins per axis of the ab grid."""
BIN_STEP = 10.0
"""Grid step in Lab units."""
BIN_MIN = -110.0
"""Centre of the first bin in Lab units (the last is ``BIN_MIN + (G - 1) * BIN_STEP`` = 110)."""
WEIGHTINGS = ("rebalanced", "inverse")
GAMUT_RULES = ("reachable", "centre")

# ----------------------------------------------------------------------------- the grid
def bin_centers(dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``G`` bin centres in Lab units, ``(23,)``: -110, -100, ..., 110."""
    return BIN_MIN + BIN_STEP * torch.arange(G, dtype=dtype)


def ab_to_bin(ab: Tensor) -> tuple[Tensor, Tensor]:
    """Grid cell of every pixel of ``ab`` ``(..., 2, H, W)`` in ab/128 units:
    ``(i, j)``, each ``(..., H, W)`` int64 in [0, 22], ``i`` from a (rows), ``j`` from b.

    ``i = clamp(floor((a_lab - BIN_MIN) / 10 + 1/2), 0, 22)``: nearest centre, halves up.
    """
    if ab.dim() < 3 or ab.shape[-3] != 2:
        raise ColorkitError(f"ab_to_bin: expected ab of shape (..., 2, H, W), got {tuple(ab.shape)}")
    lab = ab.to(torch.float32) * AB_SCALE  # exact: a power-of-two scale
    idx = torch.floor((lab - (BIN_MIN - BIN_STEP / 2)) / BIN_STEP).clamp_(0, G - 1).long()
    return idx[..., 0, :, :], idx[..., 1, :, :]


def ab_to_bin_index(ab: Tensor) -> Tensor:
    """Flat grid cell ``i * G + j`` of every pixel, ``(..., H, W)`` int64 in [0, G*G)."""
    i, j = ab_to_bin(ab)
    return i * G + j


@lru_cache(maxsize=4)
def in_gamut_cells(rule: str = "reachable") -> Tensor:
    """``(G, G)`` bool: cells of the ab grid that sRGB colours reach (see module docstring)."""
    from colorkit.core.color import lab_to_rgb, rgb_to_lab

    if rule == "reachable":
        n = 256  # samples per cube edge; the count is stable from 256 to 2048
        v = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
        u, w = torch.meshgrid(v, v, indexing="ij")
        faces = []
        for ch in range(3):
            others = [c for c in range(3) if c != ch]
            for val in (0.0, 1.0):
                f: list[Tensor] = [u, u, u]
                f[ch] = torch.full_like(u, val)
                f[others[0]], f[others[1]] = u, w
                faces.append(torch.stack(f))
        lab = rgb_to_lab(torch.stack(faces))  # (6, 3, n+1, n+1)
        flat = ab_to_bin_index(lab[:, 1:] / AB_SCALE)
        occ = torch.zeros(G * G, dtype=torch.bool)
        occ[flat.reshape(-1)] = True
        return occ.view(G, G)
    if rule == "centre":
        c = bin_centers(torch.float64)
        L = torch.linspace(0.0, 100.0, 1001, dtype=torch.float64)[1:-1]  # (0, 100), step 0.1
        A, B = torch.meshgrid(c, c, indexing="ij")
        n = L.numel()
        lab = torch.stack([L[:, None, None].expand(n, G, G), A.expand(n, G, G), B.expand(n, G, G)], 1)
        rgb = lab_to_rgb(lab, clip=False)  # (n, 3, G, G)
        fz = (L[:, None, None] + 16.0) / 116.0 - B / 200.0  # kornia clamps fz at 0: Z < 0 is out
        ok = ((rgb >= 0.0) & (rgb <= 1.0)).all(dim=1) & (fz >= 0)
        return ok.any(dim=0)
    raise ColorkitError(f"unknown gamut rule {rule!r}; expected one of {', '.join(GAMUT_RULES)}")


def nearest_in_gamut(in_gamut: Tensor) -> Tensor:
    """``(G*G,)`` int64: for each flat cell, the nearest in-gamut flat cell (itself if in
    gamut; squared grid distance, ties to the lower flat index)."""
    ok = in_gamut.reshape(-1).cpu()
    ii, jj = torch.meshgrid(torch.arange(G), torch.arange(G), indexing="ij")
    pos = torch.stack([ii.reshape(-1), jj.reshape(-1)], 1)  # (G*G, 2)
    cand = torch.nonzero(ok).squeeze(1)  # (Q,)
    if cand.numel() == 0:
        raise ColorkitError("no in-gamut cells: expected at least one")
    d = ((pos[:, None, :] - pos[cand][None, :, :]) ** 2).sum(-1)  # (G*G, Q)
    return cand[d.argmin(dim=1)]


# ----------------------------------------------------------------------------- weights
def _gaussian_smooth(p: Tensor, sigma: float) -> Tensor:
    """Smooth ``(G, G)`` with a Gaussian of ``sigma`` Lab units (zero padding)."""
    if sigma <= 0:
        return p.clone()
    s = sigma / BIN_STEP  # in cells
    r = max(1, math.ceil(3 * s))
    x = torch.arange(-r, r + 1, dtype=p.dtype)
    k = torch.exp(-(x**2) / (2 * s * s))
    k = k / k.sum()
    img = p[None, None]
    img = F.conv2d(F.pad(img, (r, r, 0, 0)), k.view(1, 1, 1, -1))
    img = F.conv2d(F.pad(img, (0, 0, r, r)), k.view(1, 1, -1, 1))
    return img[0, 0]


def colourfulness_weights(
    p: Tensor, in_gamut: Tensor, *, weighting: str = "rebalanced", lam: float = 0.5, sigma: float = 5.0
) -> tuple[Tensor, Tensor]:
    """``(p_smoothed, weights)`` (each ``(G, G)`` float64) from the empirical cell
    probabilities ``p`` (zero outside gamut). Out-of-gamut cells get the weight of their
    nearest in-gamut cell. See the module docstring for the formulas."""
    if weighting not in WEIGHTINGS:
        raise ColorkitError(f"unknown weighting {weighting!r}; expected one of {', '.join(WEIGHTINGS)}")
    if not 0.0 < lam <= 1.0:
        raise ColorkitError(f"lam {lam!r} out of range; expected 0 < lam <= 1")
    if sigma < 0:
        raise ColorkitError(f"sigma {sigma!r} out of range; expected >= 0 Lab units")
    p = p.to(torch.float64)
    mask = in_gamut.to(torch.bool)
    q = int(mask.sum())
    p_s = _gaussian_smooth(p, sigma) * mask
    p_s = p_s / p_s.sum()
    if weighting == "rebalanced":
        w = 1.0 / ((1.0 - lam) * p_s + lam / q)
        w = w / (p * w).sum()
    else:
        w = torch.zeros_like(p)
        occupied = p > 0
        w[occupied] = 1.0 / p[occupied]
        w[~occupied] = w[occupied].max()
    w = w.reshape(-1)[nearest_in_gamut(mask)].view(G, G)
    return p_s, w
