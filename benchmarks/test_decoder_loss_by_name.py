"""pytest-benchmark: the decoder loss mdn builds from registered names against the direct
eq. 4 call it replaces (same numbers; the lookup by name happens once, at build time, so
the per-step cost should be the same). Run with

    .venv/bin/python -m pytest benchmarks/test_decoder_loss_by_name.py --benchmark-enable -p no:randomly

The other files in this folder are scripts (``python benchmarks/bench_*.py``): they measure
peak memory of child processes, multi-minute training runs and data preparation, and append
a row with the machine's description to ``benchmarks/results/*.csv``; pytest-benchmark's
repeated timing loop fits neither the one-off runs nor the memory figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "paper"))

from colorkit_paper.decoder_losses import WeightedDecoderLoss  # noqa: E402
from colorkit_paper.losses import PAPER_WEIGHTS, decoder_loss  # noqa: E402
from paper_helpers import synthetic_stats  # noqa: E402

pytest.importorskip("pytest_benchmark")

S, B = 64, 32


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(B, 2, S, S, generator=g) * 1.6 - 0.8
    pred = (target + 0.3 * torch.randn(B, 2, S, S, generator=g)).requires_grad_(True)
    return pred, target, synthetic_stats(S, seed=1)


def _step(loss_fn, pred, target, stats):
    pred.grad = None
    loss_fn(pred, target, stats).mean().backward()


def test_eq4_direct(benchmark, data):
    pred, target, stats = data
    benchmark(_step, lambda p, t, s: decoder_loss(p, t, s, weights=dict(PAPER_WEIGHTS), impl="torch"),
              pred, target, stats)


def test_eq4_by_registered_names(benchmark, data):
    pred, target, stats = data
    benchmark(_step, WeightedDecoderLoss(dict(PAPER_WEIGHTS), impl="torch"), pred, target, stats)
