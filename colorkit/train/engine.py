"""The training engine shared by every method.

``Trainer(config, callbacks=..., loggers=...).fit(method, train_split, run_dir)`` runs the
method's :class:`~colorkit.core.interfaces.Stage` list in order: seeded and sharded batches,
one optimisation step per batch through ``ctx.optimize`` (backward outside autocast,
gradients averaged across processes, optional gradient clipping), the stage's learning-rate
schedule (:mod:`colorkit.train.schedule`), an atomic checkpoint after every epoch
(:mod:`colorkit.train.state`), ``resume=True`` to continue an interrupted run to the same
result, and a clear stop on a NaN/inf loss that keeps the last good checkpoint
(:mod:`colorkit.train.readout`). Callbacks and loggers (``log.jsonl``, the progress bar,
``loss.png``) follow the run: :mod:`colorkit.train.callbacks`, :mod:`colorkit.train.loggers`.
Under torchrun, ``fit`` sets up and leaves the process group
(:func:`colorkit.core.distributed.process_group`).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import DistributedSampler

from colorkit.core import distributed as D
from colorkit.core import loadwatch
from colorkit.core.fs import lock_dir
from colorkit.core.interfaces import Method, StageEnd, StepContext
from colorkit.core.registry import ColorkitError
from colorkit.core.stages import MAX_SEED, Stage
from colorkit.core.stats import ColorStats
from colorkit.train.callbacks import Callback, Callbacks, EpochInfo, FitInfo, Logger, StepInfo
from colorkit.train.device import autocast_dtype, compile_modules, resolve_device, use_channels_last
from colorkit.train.loggers import JsonlLogger, LossPlot, ProgressBar
from colorkit.train.readout import Readout, TrainingDiverged
from colorkit.train.schedule import StageSchedule
from colorkit.train.split import TrainSplit
from colorkit.train.state import (
    Progress,
    Resume,
    has_state,
    load_state,
    restore_rng,
    save_state,
    state_dir,
    unflatten_optimizer,
)

__all__ = ["MAX_SEED", "TrainConfig", "Trainer", "TrainingDiverged", "autocast_dtype", "compile_modules", "engine_seed",
           "resolve_device", "use_channels_last"]

GPU_SYNC_EVERY = 50
"""Steps between reads of the losses from a GPU when ``TrainConfig.sync_every`` is unset."""


class TrainConfig(BaseModel):
    """How the engine trains (the method's own config says what it trains)."""

    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    epochs: int | None = None  # overrides every stage's epochs when set
    batch_size: int | None = None  # global batch; overrides every stage's when set
    device: str = "auto"
    progress: bool = True
    checkpoint_every: int = 1  # epochs between checkpoints
    log_every: int = 1  # steps between log lines in log.jsonl
    max_steps_per_epoch: int | None = None  # for smoke tests
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    channels_last: bool | None = None  # None: on CUDA
    compile: bool = False  # torch.compile every sub-module's forward
    compile_backend: str = "inductor"  # torch.compile backend when compile is set
    loader_workers: int | None = None  # DataLoader processes; None: 0 on CPU, up to 4 on CUDA
    grad_clip: float | None = Field(None, gt=0)
    """Clip each optimizer step's gradients (averaged across processes) to this total L2
    norm; ``None`` (the default): no clipping."""
    sync_every: int | None = Field(None, ge=1)
    """Steps between reads of the losses from the device (the NaN/inf stop, the logged
    values); ``None``: every step on the CPU, 50 elsewhere."""


class _Indexable(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i




@dataclass
class _Fit:
    """One call of ``fit``: what every stage of it shares."""

    method: Method
    split: TrainSplit
    run_dir: Path
    world: int
    rank: int
    amp_dtype: torch.dtype | None
    channels_last: bool
    progress: Progress
    resume: Resume | None  # the saved state of the stage a resumed run continues
    resume_stage: int | None
    callbacks: Callbacks
    readout: Readout


# ------------------------------------------------------------------ the engine
class Trainer:
    """Trains methods as ``config`` says. ``callbacks``: :class:`~colorkit.train.callbacks.Callback`
    objects of your own, called on every process; ``loggers``: replace the engine's own
    (``log.jsonl``, the progress bar when ``config.progress``, ``loss.png``), rank 0 only."""

    def __init__(self, config: TrainConfig | None = None, *, callbacks: list[Callback] | None = None,
                 loggers: list[Logger] | None = None) -> None:
        self.config = config or TrainConfig()
        self.device = resolve_device(self.config.device)
        self.callbacks = list(callbacks or [])
        self.loggers = None if loggers is None else list(loggers)
        self.generator: torch.Generator | None = None  # ctx.generator, made by fit
        self._fit_state: _Fit | None = None

    def _own_loggers(self, run_dir: Path) -> list[Logger]:
        if self.loggers is not None:
            return self.loggers
        bar: list[Logger] = [ProgressBar()] if self.config.progress else []
        return [JsonlLogger(run_dir / "log.jsonl"), *bar, LossPlot(run_dir / "loss.png")]

    # -- one optimisation step -----------------------------------------------
    def _optimize_fn(self, optimizers: dict[str, torch.optim.Optimizer], where: dict[str, Any]):
        fit, clip = self._fit_state, self.config.grad_clip
        assert fit is not None

        def optimize(name: str, loss: torch.Tensor) -> None:
            if name not in optimizers:
                raise KeyError(f"stage has no optimizer {name!r}; it has {sorted(optimizers)}")
            if loss.dim() != 0:
                raise ValueError(f"ctx.optimize needs a scalar loss, got shape {tuple(loss.shape)}")
            fit.readout.check(name, loss, where)
            opt = optimizers[name]
            opt.zero_grad(set_to_none=True)
            no_amp = (torch.autocast(self.device.type, enabled=False) if fit.amp_dtype is not None
                      else contextlib.nullcontext())
            with no_amp:  # autocast covers the forward pass and the loss, not the backward pass
                loss.backward()
            params = [p for g in opt.param_groups for p in g["params"]]
            D.all_reduce_gradients(params)
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
        return optimize

    def _batches(self, split: TrainSplit, steps: list[list[int]]):
        """The batches of ``steps`` on the device: read lazily by a DataLoader from a
        prepared split's shards, else through ``split.batch`` (any split)."""
        if not split.sharded:
            for idx in steps:
                yield {k: v.to(self.device, non_blocking=True) for k, v in split.batch(idx).items()}
            return
        from colorkit.data.loader import batch_loader, to_model_batch

        loader = batch_loader(split.data, steps, device=self.device, workers=self.config.loader_workers)
        for rgb, rows in loader:
            yield to_model_batch(rgb, rows, self.device)

    def fit(self, method: Method, train_split: Any, run_dir: str | Path, *, resume: bool = False,
            stages: list[Stage] | None = None) -> dict[str, Any]:
        """Train ``method`` on ``train_split`` (has ``len()`` and ``batch(indices)``; see
        :class:`~colorkit.train.split.TrainSplit`); checkpoints go to ``run_dir/train_state``.
        ``stages``: train only these of the method's stages (e.g. its ``embedding_stages()``),
        the same list on a resume; default ``method.stages()``. Returns a summary dict.

        ``run_dir`` is locked while training (another process training into it gets a
        one-line error) and checked to be writable first. Launched by torchrun, the call
        sets up the process group and leaves it when done."""
        run_dir = Path(run_dir)
        split = TrainSplit.of(train_split)
        first = D.launch_rank() == 0 and D.rank() == 0
        with lock_dir(run_dir) if first else contextlib.nullcontext(run_dir):
            if first:  # temporary folders of a killed checkpoint write
                for tmp in run_dir.glob(state_dir(run_dir).name + ".tmp-*"):
                    shutil.rmtree(tmp, ignore_errors=True)
            with D.process_group(self.device):
                try:
                    return self._fit(method, split, run_dir, resume=resume, stages=stages)
                finally:
                    self._fit_state = None

    def _fit(self, method: Method, split: TrainSplit, run_dir: Path, *, resume: bool,
             stages: list[Stage] | None = None) -> dict[str, Any]:
        """The whole run, top to bottom: place the model, start or resume, run each stage."""
        run_dir.mkdir(parents=True, exist_ok=True)
        world, rank, amp_dtype, channels_last = self._place(method)
        progress, saved = self._start_or_resume(method, run_dir, resume, rank)
        callbacks = Callbacks((self._own_loggers(run_dir) if rank == 0 else []) + self.callbacks)
        every = self.config.sync_every or (1 if self.device.type == "cpu" else GPU_SYNC_EVERY)
        # The saved optimizer and RNG state belong to the stage the run was interrupted in,
        # and only to it; later stages start afresh.
        f = self._fit_state = _Fit(method, split, run_dir, world, rank, amp_dtype, channels_last, progress, saved,
                                   None if saved is None else progress.stage_index, callbacks,
                                   Readout(every, self.device, progress.history, callbacks))
        callbacks.fit_start(FitInfo(run_dir, rank, world, progress.history))
        n, t_all, watch_mark = len(split), time.perf_counter(), loadwatch.mark()
        budget: dict[str, dict[str, int]] = {}
        for si, stage in enumerate(method.stages() if stages is None else stages):
            if si < progress.stage_index:  # done before a resume: its planned schedule
                e = self._epochs_of(stage)
                budget[stage.name] = {"epochs": e, "images": e * n}
                continue
            budget[stage.name] = self._run_stage(si, stage, f)
        method.eval()
        method.requires_grad_(False)
        summary = {
            "train_seconds": sum(progress.stage_seconds.values()),
            "stage_seconds": dict(progress.stage_seconds),
            "stage_budget": budget,
            "wall_seconds_this_call": time.perf_counter() - t_all,
            "steps": progress.global_step,
            "world_size": world,
            "device": str(self.device),
            "precision": "bf16 autocast" if amp_dtype is not None else "fp32",
            "channels_last": channels_last,
            "compiled": self.config.compile,
            "threads": loadwatch.own_threads(),
            "thread_changes": loadwatch.changes_since(watch_mark),
        }
        callbacks.fit_end(summary)
        return summary

    # -- the parts of a run, in the order they happen ------------------------
    def _place(self, method: Method) -> tuple[int, int, torch.dtype | None, bool]:
        """Device, memory format, compilation, weights shared across processes, the seeds
        (the global RNG and this process's ``ctx.generator``). Returns the world size, the
        rank, the autocast dtype and whether channels-last is used."""
        cfg = self.config
        world, rank = D.world_size(), D.rank()
        if self.device.type == "cuda" and self.device.index is None and world > 1:
            self.device = torch.device("cuda", D.local_rank())  # one GPU per process
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        method.to(self.device)
        channels_last = use_channels_last(cfg, self.device)
        if channels_last:
            method.to(memory_format=torch.channels_last)
        if cfg.compile:
            compile_modules(method, cfg.compile_backend)
        if world > 1:
            D.convert_batchnorm(method)
            D.broadcast_module(method)  # every process starts from rank 0's weights
        torch.manual_seed(cfg.seed + rank)
        self.generator = torch.Generator(device=self.device).manual_seed(engine_seed(cfg.seed, rank))
        if isinstance(method.stats, ColorStats):  # a method without colour statistics holds None
            method.stats = method.stats.to(self.device)
        return world, rank, autocast_dtype(cfg, self.device), channels_last

    def _start_or_resume(self, method: Method, run_dir: Path, resume: bool,
                         rank: int) -> tuple[Progress, Resume | None]:
        """The progress to start from and the saved state (``None`` for a new run)."""
        if resume:
            loaded = load_state(run_dir, method)
            if loaded is not None:
                progress, saved = loaded
                if rank == 0:
                    print(f"colorkit: resuming {run_dir} at stage {progress.stage_index + 1}, "
                          f"{progress.epoch} epoch(s) done", file=sys.stderr)
                return progress, saved
            if rank == 0:
                print(f"colorkit: warning: --resume found no saved training state in {run_dir} "
                      f"(no {state_dir(run_dir).name}/); training from the beginning", file=sys.stderr)
        elif has_state(run_dir) and rank == 0:
            raise ColorkitError(f"{run_dir} already holds an unfinished training run; pass --resume to continue it "
                                "or choose another --out")
        return Progress(), None

    def _epochs_of(self, stage: Any) -> int:
        """The epochs a stage runs: ``TrainConfig.epochs`` when set, else its own (a stage
        of 0 epochs, e.g. an initialisation step, stays at 0)."""
        if stage.epochs == 0:
            return 0
        return self.config.epochs if self.config.epochs is not None else stage.epochs

    def _resume_rng(self, resume: Resume | None, at_stage_start: bool) -> None:
        """Restore the saved generators at the point of the stage where they were saved: a
        checkpoint at a stage boundary saved them before the stage's hooks, one inside a
        stage after its ``on_start``."""
        if resume is not None and resume.at_stage_start == at_stage_start:
            restore_rng(resume.tensors, self.generator, self.device)

    def _run_stage(self, si: int, stage: Any, f: _Fit) -> dict[str, int]:
        """One stage: lifecycle hooks, optimizers, its epochs, checkpoints. Returns the
        stage's budget (epochs, images trained on)."""
        cfg, n, progress = self.config, len(f.split), f.progress
        resume = f.resume if si == f.resume_stage else None
        self._resume_rng(resume, at_stage_start=True)
        bsz = cfg.batch_size or stage.batch_size
        if bsz % f.world:
            raise ColorkitError(f"global batch size {bsz} is not divisible by the {f.world} processes")
        local = bsz // f.world
        if n < 2 * f.world:
            raise ColorkitError(f"training split has {n} images; at least {2 * f.world} are needed")
        t_stage = time.perf_counter() - progress.stage_seconds.get(stage.name, 0.0)
        skipped = stage.skip is not None and bool(stage.skip(f.split))
        start_epoch = progress.epoch if si == progress.stage_index else 0
        budget = {"epochs": 0, "images": start_epoch * n}
        if not skipped:
            if stage.on_start is not None:
                stage.on_start(f.split)
            epochs = budget["epochs"] = self._epochs_of(stage)  # read after on_start, which may change it
            self._resume_rng(resume, at_stage_start=False)  # exactly where the interrupted run saved it
            self._train_only(f.method, stage)
            optimizers = self._optimizers(stage, resume, f.run_dir)
            sampler = DistributedSampler(_Indexable(n), num_replicas=f.world, rank=f.rank, shuffle=True,
                                         seed=cfg.seed * 1000 + si, drop_last=False)
            per_epoch = len(_epoch_steps(list(range(len(sampler))), local))
            cut = cfg.max_steps_per_epoch is not None and per_epoch > cfg.max_steps_per_epoch  # epochs cut short
            per_epoch, cut = (cfg.max_steps_per_epoch, start_epoch < epochs) if cut else (per_epoch, False)
            schedule = StageSchedule(optimizers, stage.lr_schedule, per_epoch, epochs, start_epoch * per_epoch)
            where = {"stage": stage.name, "epoch": 0, "step": 0, "ckpt": state_dir(f.run_dir)}
            ctx = StepContext(optimizers=optimizers, optimize=self._optimize_fn(optimizers, where), epoch=0, step=0,
                              world_size=f.world, generator=self.generator)
            for epoch in range(start_epoch, epochs):
                sampler.set_epoch(epoch)
                steps = _epoch_steps(list(iter(sampler)), local)[:per_epoch]
                label = f"{f.method.registry_name or type(f.method).__name__}:{stage.name} {epoch + 1}/{epochs}"
                info = EpochInfo(stage.name, epoch, epochs, len(steps), progress.global_step, 0, label)
                f.callbacks.epoch_start(info)
                seen = self._run_epoch(stage, f, steps, ctx, where, schedule, epoch)
                budget["images"] += seen
                progress.epoch, progress.stage_index = epoch + 1, si
                progress.stage_seconds[stage.name] = time.perf_counter() - t_stage
                if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == epochs:
                    save_state(f.run_dir, f.method, progress, optimizers, self.generator, self.device)
                f.callbacks.epoch_end(EpochInfo(stage.name, epoch, epochs, len(steps), progress.global_step, seen,
                                                label))
            if stage.on_end is not None:
                done = max(start_epoch, epochs)
                stage.on_end(f.split, StageEnd(name=stage.name, epochs=done, planned_epochs=stage.epochs,
                                               complete=done == stage.epochs and not cut))
        progress.stage_index, progress.epoch = si + 1, 0
        progress.stage_seconds[stage.name] = time.perf_counter() - t_stage
        save_state(f.run_dir, f.method, progress, {}, self.generator, self.device)
        return budget

    @staticmethod
    def _train_only(method: Method, stage: Any) -> None:
        """Only the stage's modules learn; everything else is in eval mode, without grads."""
        method.eval()
        method.requires_grad_(False)
        for mod in stage.modules.values():
            mod.train()
            mod.requires_grad_(True)
        for mod in stage.frozen:
            mod.eval()
            mod.requires_grad_(False)

    @staticmethod
    def _optimizers(stage: Any, resume: Resume | None, run_dir: Path) -> dict[str, torch.optim.Optimizer]:
        """The stage's optimizers, with their saved state when resuming inside the stage."""
        optimizers = stage.make_optimizers()
        if resume is not None and resume.optimizers:
            missing = sorted(set(optimizers) - set(resume.optimizers))
            if missing:
                raise ColorkitError(f"cannot resume {run_dir}: its saved state of stage {stage.name!r} has no "
                                    f"optimizer {', '.join(map(repr, missing))} (use a new --out directory)")
            for name, opt in optimizers.items():
                opt.load_state_dict(unflatten_optimizer(resume.optimizers[name], resume.tensors))
        return optimizers

    def _run_epoch(self, stage: Any, f: _Fit, steps: list[list[int]], ctx: StepContext, where: dict[str, Any],
                   schedule: StageSchedule, epoch: int) -> int:
        """One pass over ``steps`` (lists of image indices); returns the images trained on."""
        progress, log_every = f.progress, self.config.log_every
        seen, t0 = 0, time.perf_counter()
        for i, (idx, batch) in enumerate(zip(steps, self._batches(f.split, steps))):
            loadwatch.checkpoint()  # fewer threads while other jobs hold the cores (a no-op without a watch)
            if f.channels_last:
                batch = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                         for k, v in batch.items()}
            where.update(epoch=epoch, step=progress.global_step)
            ctx.epoch, ctx.step = epoch, progress.global_step
            schedule.advance()
            amp = (torch.autocast(self.device.type, dtype=f.amp_dtype) if f.amp_dtype is not None
                   else contextlib.nullcontext())
            with amp:
                logs = stage.step(batch, ctx)
            progress.global_step += 1
            seen += len(idx) * f.world
            meta = ({"stage": stage.name, "epoch": epoch, "global_step": progress.global_step}
                    if progress.global_step % log_every == 0 else None)
            values = f.readout.step_end(logs, meta)
            f.callbacks.step_end(StepInfo(stage.name, epoch, i, progress.global_step, seen,
                                          time.perf_counter() - t0, values))
        f.readout.read()  # before the epoch's checkpoint: a bad loss stops the run here
        return seen


def engine_seed(seed: int, rank: int) -> int:
    """The seed of ``ctx.generator`` on process ``rank`` for a run seeded with ``seed``."""
    return (seed * 1_000_003 + rank + 1) % (2**63)


def _epoch_steps(order: list[int], local: int) -> list[list[int]]:
    """This process's image indices of one epoch cut into batches of ``local``; a last
    batch of one image is dropped (BatchNorm needs 2 per process)."""
    steps = [order[i : i + local] for i in range(0, len(order), local)]
    return [s for s in steps if len(s) >= 2]
