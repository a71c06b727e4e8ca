"""Reading the losses off the training device: the NaN/inf stop and the logged records.

On the CPU (``TrainConfig.sync_every`` 1) every loss is checked when ``ctx.optimize`` gets
it, before its backward pass, and each logged step's scalars are read right after the step.
On a GPU that would make the device wait for the host every step, so the losses and the
logged scalars stay on the device and are read together every ``sync_every`` steps and at
the end of every epoch (one transfer, and one all-reduce of the per-step flags in a
distributed run). A non-finite loss then stops the run at that read, before the epoch's
checkpoint is written: the last good checkpoint is kept, and the error names the stage,
epoch and step where the loss went bad, as on the CPU. The records logged before that step
are still written.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from colorkit.core import distributed as D
from colorkit.core.registry import ColorkitError
from colorkit.train.callbacks import Callbacks


class TrainingDiverged(ColorkitError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def diverged(name: str, value: Any, where: dict[str, Any]) -> TrainingDiverged:
    return TrainingDiverged(
        f"loss {name!r} became {value} in stage {where['stage']!r} at epoch {where['epoch'] + 1}, "
        f"step {where['step']}; training stopped, the last good checkpoint is kept in {where['ckpt']}"
    )


class Readout:
    """The losses given to ``ctx.optimize`` and the scalars each step returns, read every
    ``every`` steps (``1``: at once) into ``history`` and the loggers of ``callbacks``."""

    def __init__(self, every: int, device: torch.device, history: list[dict[str, Any]],
                 callbacks: Callbacks) -> None:
        self.every, self.device, self.history, self.callbacks = every, device, history, callbacks
        self.dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        self.steps = 0  # steps since the last read
        self.losses: list[tuple[int, str, dict[str, Any], Tensor]] = []  # (step since read, name, where, loss)
        self.records: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # (step since read, meta, values)

    @property
    def immediate(self) -> bool:
        return self.every == 1

    def check(self, name: str, loss: Tensor, where: dict[str, Any]) -> None:
        """A loss given to ``ctx.optimize``: checked now, or kept for the next read."""
        if self.immediate:
            if not D.all_agree(bool(torch.isfinite(loss.detach()).item())):
                raise diverged(name, loss.item(), where)
            return
        snapshot = {k: where[k] for k in ("stage", "epoch", "step", "ckpt")}
        self.losses.append((self.steps, name, snapshot, loss.detach()))

    def step_end(self, logs: dict[str, Any], meta: dict[str, Any] | None) -> dict[str, float] | None:
        """After a step: ``logs`` (what it returned), ``meta`` (``stage``, ``epoch``,
        ``global_step``) when the step is logged. Returns the step's scalars when they were
        read at once."""
        if self.immediate:
            values = {k: float(v) for k, v in logs.items()}
            if meta is not None:
                self._emit({**meta, **values})
            return values
        if meta is not None:
            kept = {k: v.detach() if isinstance(v, Tensor) else float(v) for k, v in logs.items()}
            self.records.append((self.steps, meta, kept))
        self.steps += 1
        if self.steps >= self.every:
            self.read()
        return None

    def read(self) -> None:
        """Everything kept since the last read, read in one transfer: raises
        :class:`TrainingDiverged` at the first step with a non-finite loss (on any process)
        after writing the records logged before it."""
        steps, losses, records = self.steps, self.losses, self.records
        self.steps, self.losses, self.records = 0, [], []
        if steps == 0:
            return
        dev, dt = self.device, self.dtype
        vals = [loss.to(device=dev, dtype=dt).reshape(()) for *_, loss in losses]
        logged = [v.to(device=dev, dtype=dt).reshape(())
                  for _, _, kept in records for v in kept.values() if isinstance(v, Tensor)]
        loss_vals = torch.stack(vals) if vals else torch.zeros(0, dtype=dt, device=dev)
        bad = torch.zeros(steps, dtype=dt, device=dev)
        if vals:
            at = torch.tensor([s for s, *_ in losses], device=dev)
            bad.index_add_(0, at, (~torch.isfinite(loss_vals)).to(dt))
        if D.is_distributed():
            bad = D.all_reduce_sum(bad)
        host = torch.cat([bad, loss_vals, *([torch.stack(logged)] if logged else [])]).tolist()
        bad_steps = [i for i, b in enumerate(host[:steps]) if b > 0]
        first_bad = bad_steps[0] if bad_steps else steps
        loss_host = host[steps : steps + len(losses)]
        it = iter(host[steps + len(losses) :])
        for s, meta, kept in records:
            values = {k: next(it) if isinstance(v, Tensor) else v for k, v in kept.items()}
            if s < first_bad:
                self._emit({**meta, **values})
        if bad_steps:
            at_step = [i for i, (s, *_) in enumerate(losses) if s == first_bad]
            i = next((i for i in at_step if not math.isfinite(loss_host[i])), at_step[0] if at_step else None)
            if i is None:  # no loss of this process at that step: another one's went bad
                raise TrainingDiverged("a loss became NaN or infinite on another process; training stopped, the "
                                       "last good checkpoint is kept")
            _, name, where, _ = losses[i]
            raise diverged(name, loss_host[i], where)

    def _emit(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        self.callbacks.log(record)
