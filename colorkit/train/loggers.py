"""The engine's own loggers (rank 0 of a run): :class:`JsonlLogger` (``log.jsonl``),
:class:`ProgressBar` (loss and throughput on stderr) and :class:`LossPlot` (``loss.png``).
Each is a :class:`~colorkit.train.callbacks.Logger`; ``Trainer(config, loggers=[...])``
replaces them."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from colorkit.core.fs import open_write
from colorkit.core.images import atomic_write_png
from colorkit.train.callbacks import EpochInfo, FitInfo, Logger, StepInfo

RECORD_KEYS = ("stage", "epoch", "global_step")


class JsonlLogger(Logger):
    """``path`` (``RUN_DIR/log.jsonl``): one JSON line per logged step. Rewritten from the
    run's history when a call starts, so a resumed run drops the lines logged after its
    checkpoint; made only once there is a line to write (a training that fails before its
    first step leaves no empty log). Never written through a symbolic link."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_fit_start(self, fit: FitInfo) -> None:
        if fit.history or os.path.lexists(self.path):
            with open_write(self.path, "w", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(h) + "\n" for h in fit.history))

    def log(self, record: dict[str, Any]) -> None:
        with open_write(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


class ProgressBar(Logger):
    """A tqdm bar per epoch on stderr: the first logged scalar (``loss``) and images per
    second over all processes."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.shown: tuple[str, float] | None = None

    def on_epoch_start(self, epoch: EpochInfo) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epoch.steps, desc=epoch.label, unit="step", leave=False, file=sys.stderr,
                        dynamic_ncols=True, disable=None)

    def log(self, record: dict[str, Any]) -> None:
        first = next(((k, v) for k, v in record.items() if k not in RECORD_KEYS), None)
        if first is not None:
            self.shown = first

    def on_step_end(self, step: StepInfo) -> None:
        if self.bar is None:
            return
        if step.values is not None:
            self.shown = next(iter(step.values.items()), None)
        rate = step.images / max(step.seconds, 1e-9)
        post = {self.shown[0]: f"{self.shown[1]:.4g}"} if self.shown else {}
        self.bar.set_postfix(**post, img_s=f"{rate:.0f}")
        self.bar.update(1)

    def on_epoch_end(self, epoch: EpochInfo) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LossPlot(Logger):
    """``path`` (``RUN_DIR/loss.png``), drawn from the whole history when the run ends."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.history: list[dict[str, Any]] = []

    def on_fit_start(self, fit: FitInfo) -> None:
        self.history = fit.history

    def on_fit_end(self, summary: dict[str, Any]) -> None:
        plot_losses(self.history, self.path)


def plot_losses(history: list[dict[str, Any]], path: Path) -> None:
    """One panel per stage, every logged scalar against the global step (log scale when
    positive), a moving average over the noisy per-step values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages: list[str] = []
    for h in history:
        if h["stage"] not in stages:
            stages.append(h["stage"])
    if not stages:
        return
    fig, axes = plt.subplots(1, len(stages), figsize=(max(6.0, 4.5 * len(stages)), 3.6), squeeze=False)
    for ax, st in zip(axes[0], stages):
        rows = [h for h in history if h["stage"] == st]
        keys = [k for k in rows[0] if k not in RECORD_KEYS]
        steps = [h["global_step"] for h in rows]
        positive = True
        for k in keys:
            vals = [h.get(k, math.nan) for h in rows]
            w = max(1, len(vals) // 50)
            smooth = [
                sum(vals[max(0, i - w + 1) : i + 1]) / len(vals[max(0, i - w + 1) : i + 1]) for i in range(len(vals))
            ]
            ax.plot(steps, smooth, label=k)
            positive = positive and all(v > 0 for v in vals)
        if positive:
            ax.set_yscale("log")
        ax.set_title(f"stage: {st}")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.suptitle(
        "training losses as each stage logs them\n(decoder losses: per-sample sums in ab/128 units)", fontsize=8
    )
    fig.tight_layout()
    atomic_write_png(path, fig, dpi=90)
