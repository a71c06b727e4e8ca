"""A tiny deterministic method and split for engine tests (no randomness in its step)."""

from __future__ import annotations

import torch
from torch import nn

from colorkit.core.interfaces import ComponentConfig, Method, Stage


class ToySplit:
    def __init__(self, n: int = 24, size: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.grey = torch.rand(n, 1, size, size, generator=g)
        self.ab = torch.tanh(torch.randn(n, 2, size, size, generator=g) * 0.3 + self.grey - 0.5)

    def __len__(self) -> int:
        return len(self.grey)

    def batch(self, idx):
        idx = torch.as_tensor(list(idx), dtype=torch.long)
        return {"grey": self.grey[idx], "ab": self.ab[idx], "index": idx}


class ToyConfig(ComponentConfig):
    width: int = 4
    epochs: int = 3
    batch_size: int = 8
    lr: float = 0.05
    nan_at_step: int = -1


class ToyMethod(Method):
    PRESETS = {"paper": {}, "small": {}, "tiny": {}}
    Config = ToyConfig

    def __init__(self, config=None, *, stats=None, **fields):
        super().__init__(config, stats=stats, **fields)
        w = self.config.width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.Conv2d(w, 2, 3, padding=1)
        )
        self.head = nn.Conv2d(2, 2, 1)

    def stages(self):
        c = self.config

        def step(batch, ctx):
            loss = (self.net(batch["grey"]) - batch["ab"]).pow(2).mean()
            if ctx.step == c.nan_at_step:
                loss = loss * float("nan")
            ctx.optimize("net", loss)
            return {"loss": loss.detach()}

        def step2(batch, ctx):
            loss = (self.head(self.net(batch["grey"])) - batch["ab"]).abs().mean()
            ctx.optimize("head", loss)
            return {"loss": loss.detach()}

        return [
            Stage(
                "net",
                {"net": self.net},
                lambda: {"net": torch.optim.Adam(self.net.parameters(), lr=c.lr)},
                step,
                epochs=c.epochs,
                batch_size=c.batch_size,
            ),
            Stage(
                "head",
                {"head": self.head},
                lambda: {"head": torch.optim.SGD(self.head.parameters(), lr=c.lr, momentum=0.9)},
                step2,
                epochs=c.epochs,
                batch_size=c.batch_size,
                frozen=[self.net],
            ),
        ]

    @torch.no_grad()
    def sample(self, grey, k, *, mode=None, generator=None):
        out = self.head(self.net(grey))
        return out[:, None].expand(-1, k, -1, -1, -1)


class Interrupted(Exception):
    """Raised by a step wrapped with :func:`interrupt_at`."""


def interrupt_at(method, stage: int, step: int) -> None:
    """Make ``method``'s stage number ``stage`` raise :class:`Interrupted` when it is about
    to take global step ``step`` (a simulated kill between checkpoints)."""
    orig = method.stages

    def stages():
        st = orig()
        inner = st[stage].step

        def wrapped(batch, ctx):
            if ctx.step == step:
                raise Interrupted
            return inner(batch, ctx)

        st[stage].step = wrapped
        return st

    method.stages = stages
