"""Training stages: what a method's :meth:`~colorkit.core.interfaces.Method.stages` returns
and what a stage's ``step`` gets (:class:`Stage`, :class:`StepContext`, :class:`StageEnd`),
the learning-rate schedules and :func:`noise`. Part of the plugin API (``from colorkit
import Stage, StepContext``); the engine that runs them is :mod:`colorkit.train.engine`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from colorkit.core.registry import ColorkitError

MAX_SEED = 2**32 - 1
"""Largest seed colorkit takes (training, split, sampling): seeds are 0 ... 2**32 - 1, a
range in which every random generator it seeds accepts whatever is derived from them."""


@dataclass
class StepContext:
    """What a stage's ``step`` gets besides the batch."""

    optimizers: dict[str, torch.optim.Optimizer]
    optimize: Callable[[str, Tensor], None]
    """``optimize(name, loss)``: zero grads, check the loss is finite, backward, average
    gradients across processes, step optimizer ``name``."""
    epoch: int
    step: int
    world_size: int = 1
    generator: torch.Generator | None = None
    """The engine's random generator for this process, on the training device: seeded from
    the run's seed and the process rank, saved in every checkpoint and restored on resume,
    so draws made with it (noise, posterior samples) repeat exactly. See :func:`noise`."""


@dataclass(frozen=True)
class StageEnd:
    """What the engine tells a stage's ``on_end`` hook."""

    name: str
    epochs: int
    """Epochs the stage has completed (those of an earlier, resumed call included)."""
    planned_epochs: int
    """The stage's own schedule, ``Stage.epochs``."""
    complete: bool
    """The stage ran exactly its own schedule: no ``epochs`` override changed it and no
    ``max_steps_per_epoch`` cut an epoch short (e.g. cache a result only when true)."""


LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, done: float) -> float:
    """The learning-rate multiplier of ``schedule`` after a fraction ``done`` (0-1) of a
    stage's steps (see :attr:`Stage.lr_schedule`)."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(max(done, 0.0), 1.0)))
    return 1.0


@dataclass
class Stage:
    """One phase of a method's training (e.g. backbone pretext, VAE, MDN).

    ``modules``: trained in this stage (their gradients are averaged across processes);
    ``frozen``: put in eval mode for the stage; ``make_optimizers``: called once when the
    stage starts; ``step(batch, ctx) -> {name: scalar tensor}``: one optimisation step,
    calling ``ctx.optimize``; the returned scalars are logged (``"loss"`` first).

    Lifecycle hooks, all optional and called on every process, in this order:

    * ``skip(train_split) -> bool``: asked when the engine reaches the stage; ``True``
      skips it entirely (e.g. its result was found in a cache): no ``on_start``, no
      epochs, no ``on_end``. Not asked again for a stage a resumed run already finished.
    * ``on_start(train_split)``: before the stage's first epoch in this call (also when a
      resumed run continues the stage mid-way).
    * ``on_end(train_split, end: StageEnd)``: after the stage's last epoch, before its
      final checkpoint; ``end.complete`` says whether it ran its own full schedule.

    ``lr_schedule``: ``"constant"`` keeps every optimizer's learning rate;
    ``"cosine"`` sets it before each step to ``lr0 * (1 + cos(pi * t)) / 2``, where ``lr0``
    is the rate the optimizer was made with and ``t`` the fraction of the stage's steps
    done (epochs of an ``--epochs`` override included), so it decays to 0 at the stage's
    end. It depends only on the step's position, so a resumed run follows it exactly.
    """

    name: str
    modules: dict[str, nn.Module]
    make_optimizers: Callable[[], dict[str, torch.optim.Optimizer]]
    step: Callable[[dict[str, Tensor], StepContext], dict[str, Tensor]]
    epochs: int
    batch_size: int = 64
    frozen: list[nn.Module] = field(default_factory=list)
    skip: Callable[[Any], bool] | None = None
    on_start: Callable[[Any], None] | None = None
    on_end: Callable[[Any, StageEnd], None] | None = None
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ColorkitError(f"stage {self.name!r}: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                                f"got {self.lr_schedule!r}")


def noise(kind: str, shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """``torch.randn`` (``kind="normal"``) or ``torch.rand`` (``"uniform"``) of ``shape``,
    drawn from ``generator`` on the generator's own device and returned on ``like``'s
    device and dtype. Use it with ``ctx.generator`` in a training step and with the
    ``generator`` of :meth:`Method.sample`: a CPU generator driving a CUDA model then gives
    the same draws on every device (``torch.randn(..., generator=g, device="cuda")`` with a
    CPU ``g`` is an error). ``generator=None`` draws from torch's global generator."""
    if kind not in ("normal", "uniform"):
        raise ValueError(f"noise kind must be 'normal' or 'uniform', got {kind!r}")
    dev = generator.device if generator is not None else like.device
    fn = torch.randn if kind == "normal" else torch.rand
    return fn(tuple(shape), generator=generator, device=dev).to(device=like.device, dtype=like.dtype)
