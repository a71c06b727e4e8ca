"""A stage's learning-rate schedule as ``torch.optim.lr_scheduler.LambdaLR``.

``Stage.lr_schedule = "cosine"`` sets every optimizer's rate before each step to
``lr0 * (1 + cos(pi * t)) / 2`` (:func:`colorkit.core.interfaces.lr_factor`), ``t`` being
the fraction of the stage's steps done; ``"constant"`` leaves the rates alone (no scheduler).
The factor depends only on the step's position in the stage, so a resumed run follows the
schedule exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from colorkit.core.interfaces import lr_factor


def stage_lr_lambda(schedule: str, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """The learning-rate factor of ``schedule`` at step ``k`` of a stage (0-based, counted
    over all its epochs) of ``steps_per_epoch`` steps per epoch and ``epochs`` epochs."""

    def factor(k: int) -> float:
        epoch, i = divmod(k, steps_per_epoch)
        return lr_factor(schedule, (epoch + i / steps_per_epoch) / max(1, epochs))

    return factor


class StageSchedule:
    """One ``LambdaLR`` per optimizer of a stage, starting at step ``start`` of the stage
    (``start > 0`` when a resumed run continues it): :meth:`advance` before each step but
    the first sets the rate of the step about to be taken (the first step's rate is set when
    the schedulers are made). Nothing is made for ``"constant"``."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], schedule: str, steps_per_epoch: int,
                 epochs: int, start: int = 0) -> None:
        self.schedulers: list[LambdaLR] = []
        self.started = False
        if schedule == "constant" or steps_per_epoch == 0 or start >= steps_per_epoch * epochs:
            return
        factor = stage_lr_lambda(schedule, steps_per_epoch, epochs)
        self.schedulers = [LambdaLR(opt, lambda k: factor(start + k)) for opt in optimizers.values()]

    def advance(self) -> None:
        """Called before every step: sets the rates of the step about to be taken."""
        if not self.started:
            self.started = True
            return
        with warnings.catch_warnings():  # a step may leave one of several optimizers unstepped
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            for sched in self.schedulers:
                sched.step()
