"""Small tensors and tensor checks shared by the contract checks (:mod:`colorkit.testing.contract`)."""

from __future__ import annotations

import torch
from torch import Tensor

from colorkit.testing.errors import fail

AB_LIMIT = 1.5  # |ab/128| beyond this means the values are not in paper units


def check_finite(what: str, label: str, t: Tensor) -> None:
    if not torch.isfinite(t).all():
        fail(what, f"{label} has NaN or inf values")


def check_ab(what: str, label: str, ab: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(ab.shape) != shape:
        fail(what, f"{label} has shape {tuple(ab.shape)}, expected {shape} (B, k, 2, H, W)")
    if not ab.is_floating_point():
        fail(what, f"{label} has dtype {ab.dtype}, expected a floating-point tensor")
    check_finite(what, label, ab)
    m = float(ab.detach().abs().max())
    if m > AB_LIMIT:
        fail(what, f"{label} reaches |ab| = {m:.3g}: expected Lab ab / 128 (about [-1, 1]), not Lab units")


def random_grey(b: int, s: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, s, s, generator=g)


def random_ab(b: int, s: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed + 1)
    return torch.tanh(torch.randn(b, 2, s, s, generator=g) * 0.3)


