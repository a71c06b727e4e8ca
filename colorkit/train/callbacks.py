"""Callbacks: code of your own the engine calls as a run goes, and the loggers.

Pass them to the trainer: ``Trainer(config, callbacks=[MyCallback()])``. Subclass
:class:`Callback` and override the events you need; every method is optional:

.. code-block:: python

    from colorkit.train.callbacks import Callback

    class LossesPerEpoch(Callback):
        def __init__(self):
            self.epochs = []
        def on_epoch_end(self, epoch):
            self.epochs.append((epoch.stage, epoch.epoch, epoch.steps))

Events, in the order they happen: ``on_fit_start(fit)`` once; per epoch ``on_epoch_start``,
``on_step_end`` after every step, ``on_epoch_end`` after the epoch (and after its checkpoint
when one is taken); ``on_fit_end(summary)`` once the last stage is done. A :class:`Logger`
also gets ``log(record)`` for every logged step (``TrainConfig.log_every``): a dict
``{"stage", "epoch", "global_step", <name>: float, ...}`` of the scalars the stage's step
returned. On a GPU the records are read from the device every ``TrainConfig.sync_every``
steps and at each epoch's end, so they can arrive a few steps late; on the CPU each comes
right after its step.

Callbacks run on every process of a distributed run (``fit.rank`` says which); the
engine's own loggers (``log.jsonl``, the progress bar, ``loss.png``: see
:mod:`colorkit.train.loggers`) run on rank 0 only. A callback must not draw from torch's
random generators (that would change the run) nor change the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FitInfo:
    """What ``on_fit_start`` gets. ``history``: the records logged so far (those of an
    earlier, resumed call included); the engine appends each new record to it."""

    run_dir: Path
    rank: int
    world_size: int
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class EpochInfo:
    """One epoch of a stage: ``epoch`` counts from 0, of ``epochs``; ``steps`` in it;
    ``global_step``: steps taken in the run so far; ``images``: trained on in this epoch so
    far (all processes); ``label`` names it for display."""

    stage: str
    epoch: int
    epochs: int
    steps: int
    global_step: int
    images: int
    label: str


@dataclass(frozen=True)
class StepInfo:
    """One step just taken: ``index`` within the epoch (from 0), ``global_step`` after it,
    ``images`` of the epoch so far (all processes), ``seconds`` since the epoch started, and
    the step's scalars when they were read right away (the CPU), else ``None`` (see
    :meth:`Logger.log`)."""

    stage: str
    epoch: int
    index: int
    global_step: int
    images: int
    seconds: float
    values: dict[str, float] | None


class Callback:
    """The events of a training run (see the module's docs); each does nothing here."""

    def on_fit_start(self, fit: FitInfo) -> None:
        """Before the first stage of this call (after a resume's state is loaded)."""

    def on_epoch_start(self, epoch: EpochInfo) -> None:
        """Before the epoch's first step."""

    def on_step_end(self, step: StepInfo) -> None:
        """After every optimisation step."""

    def on_epoch_end(self, epoch: EpochInfo) -> None:
        """After the epoch's last step, its logged records and its checkpoint."""

    def on_fit_end(self, summary: dict[str, Any]) -> None:
        """After the last stage; ``summary`` is what ``Trainer.fit`` returns."""


class Logger(Callback):
    """A callback that also receives every logged record: ``log.jsonl``, the progress bar
    and ``loss.png`` are loggers (:mod:`colorkit.train.loggers`)."""

    def log(self, record: dict[str, Any]) -> None:
        """One logged step: ``{"stage", "epoch", "global_step", <name>: float, ...}``."""


class Callbacks:
    """Calls every callback of a list in turn, and ``log`` on the loggers among them."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)
        self.loggers = [c for c in self.callbacks if isinstance(c, Logger)]

    def fit_start(self, fit: FitInfo) -> None:
        for c in self.callbacks:
            c.on_fit_start(fit)

    def epoch_start(self, epoch: EpochInfo) -> None:
        for c in self.callbacks:
            c.on_epoch_start(epoch)

    def step_end(self, step: StepInfo) -> None:
        for c in self.callbacks:
            c.on_step_end(step)

    def epoch_end(self, epoch: EpochInfo) -> None:
        for c in self.callbacks:
            c.on_epoch_end(epoch)

    def fit_end(self, summary: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_fit_end(summary)

    def log(self, record: dict[str, Any]) -> None:
        for c in self.loggers:
            c.log(record)
