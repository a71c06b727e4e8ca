"""Decoder losses (paper section 3.1, eqs. 2-4) against direct, naive implementations of
the equations as written, plus float64 gradchecks."""

from __future__ import annotations

import math

import pytest
import torch
from colorkit_paper.decoder_losses import GradLoss, HistLoss, L2Loss, MahLoss, PaperLoss
from paper_helpers import synthetic_stats

import colorkit

SIZE = 4  # 2*4*4 = 32 dims >= the 20 principal components


@pytest.fixture(scope="module")
def stats64():
    return synthetic_stats(SIZE, dtype=torch.float64, seed=3)


@pytest.fixture(scope="module")
def fields():
    g = torch.Generator().manual_seed(1)
    pred = (torch.rand(3, 2, SIZE, SIZE, generator=g, dtype=torch.float64) - 0.5) * 1.6
    target = (torch.rand(3, 2, SIZE, SIZE, generator=g, dtype=torch.float64) - 0.5) * 1.6
    return pred, target


# ---------------------------------------------------------------- naive equations
def naive_l2(C, f):
    out = []
    for b in range(C.shape[0]):
        s = 0.0
        for c in range(2):
            for i in range(SIZE):
                for j in range(SIZE):
                    s += (float(C[b, c, i, j]) - float(f[b, c, i, j])) ** 2
        out.append(s)
    return torch.tensor(out, dtype=torch.float64)


def naive_cell(x: float) -> int:
    """Nearest grid centre (-110 ... 110, step 10, halves up) of an ab/128 value."""
    return min(max(math.floor((x * 128 + 110) / 10 + 0.5), 0), 22)


def naive_hist(C, f, stats):
    """Eq. 2 as the text says: 1/H_p (here: the colourfulness weight of the true pixel's
    bin) times the squared difference at pixel p."""
    out = []
    for b in range(C.shape[0]):
        s = 0.0
        for i in range(SIZE):
            for j in range(SIZE):
                w = float(stats.bin_weights[naive_cell(float(C[b, 0, i, j])), naive_cell(float(C[b, 1, i, j]))])
                s += w * sum((float(C[b, c, i, j]) - float(f[b, c, i, j])) ** 2 for c in range(2))
        out.append(s)
    return torch.tensor(out, dtype=torch.float64)


def naive_mah(C, f, stats):
    """Section 3.1 exactly as written: projections C^T P_k and f^T P_k, residual vectors
    C_res = C - sum_k (C^T P_k) P_k and f_res likewise."""
    P, var = stats.pca_components.double(), stats.pca_variances.double()
    out = []
    for b in range(C.shape[0]):
        c, fv = C[b].reshape(-1), f[b].reshape(-1)
        c_proj = [torch.dot(c, P[k]) for k in range(P.shape[0])]
        f_proj = [torch.dot(fv, P[k]) for k in range(P.shape[0])]
        maha = sum((c_proj[k] - f_proj[k]) ** 2 / var[k] for k in range(P.shape[0]))
        c_res = c - sum(c_proj[k] * P[k] for k in range(P.shape[0]))
        f_res = fv - sum(f_proj[k] * P[k] for k in range(P.shape[0]))
        out.append(maha + torch.sum((c_res - f_res) ** 2) / var[-1])
    return torch.stack(out)


def naive_grad(C, f):
    """Eq. 3: ||grad_h C - grad_h f||^2 + ||grad_v C - grad_v f||^2, forward differences."""
    out = []
    for b in range(C.shape[0]):
        s = 0.0
        for c in range(2):
            for i in range(SIZE):
                for j in range(SIZE):
                    if j + 1 < SIZE:
                        gc = float(C[b, c, i, j + 1] - C[b, c, i, j])
                        gf = float(f[b, c, i, j + 1] - f[b, c, i, j])
                        s += (gc - gf) ** 2
                    if i + 1 < SIZE:
                        gc = float(C[b, c, i + 1, j] - C[b, c, i, j])
                        gf = float(f[b, c, i + 1, j] - f[b, c, i, j])
                        s += (gc - gf) ** 2
        out.append(s)
    return torch.tensor(out, dtype=torch.float64)


# ---------------------------------------------------------------- golden values
@pytest.mark.parametrize(
    "cls, naive",
    [
        (L2Loss, lambda C, f, s: naive_l2(C, f)),
        (HistLoss, naive_hist),
        (MahLoss, naive_mah),
        (GradLoss, lambda C, f, s: naive_grad(C, f)),
    ],
    ids=["l2", "hist", "mah", "grad"],
)
def test_term_matches_naive_equation(cls, naive, fields, stats64):
    pred, target = fields
    got = cls(preset="tiny", impl="torch")(pred, target, stats64)
    assert got.shape == (pred.shape[0],)
    torch.testing.assert_close(got, naive(target, pred, stats64), rtol=1e-10, atol=1e-10)


def test_paper_loss_is_eq4(fields, stats64):
    pred, target = fields
    want = naive_hist(target, pred, stats64) + 0.1 * naive_mah(target, pred, stats64) + 1e-3 * naive_grad(target, pred)
    got = PaperLoss(preset="tiny", impl="torch")(pred, target, stats64)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_paper_loss_weights_are_config(fields, stats64):
    pred, target = fields
    only_mah = PaperLoss(hist=0.0, mah=1.0, grad=0.0, impl="torch")(pred, target, stats64)
    torch.testing.assert_close(only_mah, MahLoss(impl="torch")(pred, target, stats64))
    with_l2 = PaperLoss(hist=0.0, mah=0.0, grad=0.0, l2=2.0, impl="torch")(pred, target, stats64)
    torch.testing.assert_close(with_l2, 2 * naive_l2(target, pred))


def test_zero_when_equal(fields, stats64):
    _, target = fields
    for name in ("l2", "hist", "mah", "grad", "paper"):
        loss = colorkit.create_decoder_loss(name, preset="tiny", impl="torch")(target.clone(), target, stats64)
        torch.testing.assert_close(loss, torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("cls", [HistLoss, MahLoss, GradLoss, L2Loss, PaperLoss])
def test_gradcheck(cls, stats64):
    g = torch.Generator().manual_seed(7)
    pred = (torch.rand(2, 2, SIZE, SIZE, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    target = torch.rand(2, 2, SIZE, SIZE, generator=g, dtype=torch.float64) - 0.5
    loss = cls(impl="torch")
    assert torch.autograd.gradcheck(lambda p: loss(p, target, stats64), (pred,))
