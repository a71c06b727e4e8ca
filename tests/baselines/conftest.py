"""Fixtures for the baseline tests: colour statistics (ignored by the baselines), a local
optimisation loop standing in for the engine, and a small structured data set."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from colorkit.core.interfaces import Method, StepContext


@pytest.fixture
def stats():
    """The baselines do not use colour statistics; any object will do."""
    return SimpleNamespace(name="unused-stats")


def _make_ctx(optimizers: dict[str, torch.optim.Optimizer], generator: torch.Generator | None = None) -> StepContext:
    """What the engine's StepContext does, minus the distributed parts."""

    def optimize(name: str, loss: torch.Tensor) -> None:
        assert loss.dim() == 0 and bool(torch.isfinite(loss)), f"bad loss {name}: {loss}"
        opt = optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return StepContext(optimizers=optimizers, optimize=optimize, epoch=0, step=0, generator=generator)


def toy_batch(n: int = 8, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Grey gradients whose colour is a function of the grey level (learnable), ab in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    grey = torch.rand(n, 1, 1, 1, generator=g) * torch.linspace(0, 1, size).view(1, 1, 1, size).expand(n, 1, size, size)
    ab = torch.cat([0.6 * grey - 0.3, 0.3 - 0.4 * grey], 1)
    return {"grey": grey.contiguous(), "ab": ab.contiguous(), "index": torch.arange(n)}


@pytest.fixture
def make_ctx():
    """``make_ctx(optimizers, generator=None) -> StepContext`` for a local training loop."""
    return _make_ctx


@pytest.fixture
def batch():
    return toy_batch()


@pytest.fixture
def make_batch():
    """``make_batch(n=8, size=32, seed=0)``: a learnable toy batch."""
    return toy_batch


@pytest.fixture
def train_steps(make_ctx):
    """``train_steps(method, batch, n)``: n optimisation steps of the method's stage."""

    def run(m: Method, batch, n: int = 2) -> None:
        stage = m.stages()[0]
        ctx = make_ctx(stage.make_optimizers(), torch.Generator().manual_seed(5))
        m.train()
        for _ in range(n):
            stage.step(batch, ctx)

    return run
