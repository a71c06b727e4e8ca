"""The training engine shared by every method.

``fit(method, train_split, run_dir, config)`` runs the method's :class:`~colorkit.core.interfaces.Stage`
list in order: seeded and sharded batches, one optimisation step per batch through
``ctx.optimize``, a progress bar with loss and throughput, a JSONL log and loss-curve PNG,
an atomic checkpoint after every epoch (``RUN_DIR/train_state``), ``resume=True`` to
continue an interrupted run to the same result, and a clear stop on a NaN/inf loss that
keeps the last good checkpoint. Distributed under torchrun: see :mod:`colorkit.core.distributed`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor
from torch.utils.data import DistributedSampler

from colorkit.core import distributed as D
from colorkit.core.checkpoint import (
    atomic_dir,
    atomic_write_png,
    check_finite,
    load_tensors,
    lock_dir,
    read_meta,
    save_tensors,
    write_component,
)
from colorkit.core.interfaces import Method, StageEnd, StepContext, lr_factor
from colorkit.core.registry import ColorkitError


class TrainingDiverged(ColorkitError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainConfig(BaseModel):
    """How the engine trains (the method's own config says what it trains)."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
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


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype training runs under (``None``: plain fp32)."""
    if config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    return config.channels_last if config.channels_last is not None else device.type == "cuda"


def compile_modules(method: torch.nn.Module, backend: str) -> list[str]:
    """``torch.compile`` the forward of each direct sub-module of ``method`` in place
    (weights and state-dict keys unchanged). Returns the compiled modules' names. Code a
    stage calls through other methods (``encode``/``decode``) runs uncompiled."""
    names = []
    for name, mod in method.named_children():
        if any(True for _ in mod.parameters()):
            mod.compile(backend=backend)
            names.append(name)
    return names


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ColorkitError(f"invalid device {device!r}; expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ColorkitError(f"device {device!r} asked for, but no CUDA GPU is available here; use --device cpu "
                                "or auto")
        if dev.index is not None and dev.index >= count:
            raise ColorkitError(f"device {device!r} asked for, but this machine has {count} CUDA GPU(s) "
                                f"(cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ColorkitError(f"device {device!r} asked for, but MPS is not available here; use --device cpu or auto")
    elif dev.type != "cpu":
        raise ColorkitError(f"device {device!r} is not supported; expected auto, cpu, cuda, cuda:N or mps")
    return dev


class _Indexable(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@dataclass
class _Progress:
    stage_index: int = 0
    epoch: int = 0  # epochs completed in the current stage
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ optimizer state I/O
def _flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    state_meta: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        entry: dict[str, Any] = {}
        for k, v in st.items():
            if isinstance(v, Tensor):
                key = f"{prefix}.{pid}.{k}"
                tensors[key] = v
                entry[k] = {"tensor": key}
            else:
                entry[k] = {"value": v}
        state_meta[str(pid)] = entry
    return tensors, {"state": state_meta, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(meta: dict[str, Any], tensors: dict[str, Tensor]) -> dict[str, Any]:
    state = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {k: (tensors[v["tensor"]] if "tensor" in v else v["value"]) for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


# ------------------------------------------------------------------ the engine
class Trainer:
    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig()
        self.device = resolve_device(self.config.device)
        self.generator: torch.Generator | None = None  # ctx.generator, made by fit

    # -- checkpoints -------------------------------------------------------
    def _state_dir(self, run_dir: Path) -> Path:
        return run_dir / "train_state"

    def _save_state(self, run_dir: Path, method: Method, progress: _Progress,
                    optimizers: dict[str, torch.optim.Optimizer]) -> None:
        if D.rank() != 0:
            return
        with atomic_dir(self._state_dir(run_dir)) as tmp:
            write_component(tmp, method)
            tensors: dict[str, Tensor] = {"rng.cpu": torch.get_rng_state()}
            if self.generator is not None:
                tensors["rng.engine"] = self.generator.get_state()
            if torch.cuda.is_available() and self.device.type == "cuda":
                tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
            opt_meta = {}
            for name, opt in optimizers.items():
                t, m = _flatten_optimizer(opt, f"opt.{name}")
                tensors.update(t)
                opt_meta[name] = m
            save_tensors(tmp / "optim.safetensors", tensors, {"format": "colorkit-train-state-v1"})
            (tmp / "progress.json").write_text(json.dumps({
                "stage_index": progress.stage_index, "epoch": progress.epoch,
                "global_step": progress.global_step, "stage_seconds": progress.stage_seconds,
                "optimizers": opt_meta,
            }, indent=1))

    def _load_state(self, run_dir: Path, method: Method) -> tuple[_Progress, dict[str, Any], dict[str, Tensor]] | None:
        sdir = self._state_dir(run_dir)
        if not sdir.is_dir():
            old = sdir.with_name(sdir.name + ".old")
            if not old.is_dir():
                return None
            sdir = old
        meta = read_meta(sdir)
        if meta.get("name") != method.registry_name or meta.get("config") != method.config.model_dump(mode="json"):
            raise ColorkitError(
                f"cannot resume: {sdir} holds {meta.get('name')!r} with a different config than the run asked for "
                "(use the same options, or a new --out directory)"
            )
        state = load_tensors(sdir / "model.safetensors")
        check_finite(state, sdir / "model.safetensors")
        method.load_state_dict(state, strict=True)
        prog = json.loads((sdir / "progress.json").read_text())
        extra = load_tensors(sdir / "optim.safetensors")
        hist_path = run_dir / "log.jsonl"
        history = []
        if hist_path.is_file():
            history = [json.loads(line) for line in hist_path.read_text().splitlines() if line.strip()]
            history = [h for h in history if h["global_step"] <= prog["global_step"]]
        p = _Progress(prog["stage_index"], prog["epoch"], prog["global_step"], history, prog.get("stage_seconds", {}))
        return p, prog["optimizers"], extra

    def _restore_rng(self, tensors: dict[str, Tensor]) -> None:
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.engine" in tensors and self.generator is not None:
            self.generator.set_state(tensors["rng.engine"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)

    # -- one stage ---------------------------------------------------------
    def _optimize_fn(self, optimizers: dict[str, torch.optim.Optimizer], where: dict[str, Any]):
        def optimize(name: str, loss: Tensor) -> None:
            if name not in optimizers:
                raise KeyError(f"stage has no optimizer {name!r}; it has {sorted(optimizers)}")
            if loss.dim() != 0:
                raise ValueError(f"ctx.optimize needs a scalar loss, got shape {tuple(loss.shape)}")
            if not D.all_agree(bool(torch.isfinite(loss.detach()).item())):
                raise TrainingDiverged(
                    f"loss {name!r} became {loss.item()} in stage {where['stage']!r} at epoch {where['epoch'] + 1}, "
                    f"step {where['step']}; training stopped, the last good checkpoint is kept in {where['ckpt']}"
                )
            opt = optimizers[name]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for g in opt.param_groups for p in g["params"]]
            D.all_reduce_gradients(params)
            opt.step()
        return optimize

    def _batches(self, train_split: Any, steps: list[list[int]]):
        """The batches of ``steps`` on the device: read lazily by a DataLoader from a
        prepared split's shards, else through ``train_split.batch`` (any split)."""
        if not hasattr(train_split, "rgb_uint8"):
            for idx in steps:
                yield {k: v.to(self.device, non_blocking=True) for k, v in train_split.batch(idx).items()}
            return
        from colorkit.data.loader import batch_loader, to_model_batch

        loader = batch_loader(train_split, steps, device=self.device, workers=self.config.loader_workers)
        for rgb, rows in loader:
            yield to_model_batch(rgb, rows, self.device)
    def _has_state(self, run_dir: Path) -> bool:
        sdir = self._state_dir(run_dir)
        return sdir.exists() or sdir.with_name(sdir.name + ".old").exists()

    def fit(self, method: Method, train_split: Any, run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
        """Train ``method`` on ``train_split`` (has ``len()`` and ``batch(indices)``);
        checkpoints go to ``run_dir/train_state``. Returns a summary dict.

        ``run_dir`` is locked while training (another process training into it gets a
        one-line error) and checked to be writable first."""
        run_dir = Path(run_dir)
        first = os.environ.get("RANK", "0") == "0" and D.rank() == 0
        with lock_dir(run_dir) if first else contextlib.nullcontext(run_dir):
            if first:  # temporary folders of a killed checkpoint write
                for tmp in run_dir.glob(self._state_dir(run_dir).name + ".tmp-*"):
                    shutil.rmtree(tmp, ignore_errors=True)
            return self._fit(method, train_split, run_dir, resume=resume)

    def _fit(self, method: Method, train_split: Any, run_dir: Path, *, resume: bool) -> dict[str, Any]:
        """The whole run, top to bottom: place the model, start or resume, run each stage,
        plot the losses."""
        run_dir.mkdir(parents=True, exist_ok=True)
        run = self._place(method)
        progress, saved = self._start_or_resume(method, run_dir, resume, run.rank)
        log = _Log(run_dir / "log.jsonl", run.rank, progress)
        n = len(train_split)
        t_all = time.perf_counter()
        budget: dict[str, dict[str, int]] = {}
        # The saved optimizer and RNG state belong to the stage the run was interrupted in,
        # and only to it; later stages start afresh.
        resume_stage = progress.stage_index if "rng.cpu" in saved[1] else None
        for si, stage in enumerate(method.stages()):
            if si < progress.stage_index:  # done before a resume: its planned schedule
                e = self._epochs_of(stage)
                budget[stage.name] = {"epochs": e, "images": e * n}
                continue
            budget[stage.name] = self._run_stage(si, stage, method, train_split, run_dir, run, progress, log,
                                                 saved if si == resume_stage else None)
        method.eval()
        method.requires_grad_(False)
        if run.rank == 0:
            plot_losses(progress.history, run_dir / "loss.png")
        return {
            "train_seconds": sum(progress.stage_seconds.values()),
            "stage_seconds": dict(progress.stage_seconds),
            "stage_budget": budget,
            "wall_seconds_this_call": time.perf_counter() - t_all,
            "steps": progress.global_step,
            "world_size": run.world,
            "device": str(self.device),
            "precision": "bf16 autocast" if run.amp_dtype is not None else "fp32",
            "channels_last": run.channels_last,
            "compiled": self.config.compile,
        }

    # -- the parts of a run, in the order they happen ------------------------
    def _place(self, method: Method) -> _Run:
        """Processes, device, memory format, compilation, weights shared across processes,
        the seeds (the global RNG and this process's ``ctx.generator``)."""
        cfg = self.config
        D.init_from_env(self.device)
        world, rank = D.world_size(), D.rank()
        if self.device.type == "cuda" and self.device.index is None and world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
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
        if hasattr(method.stats, "to"):
            method.stats = method.stats.to(self.device)
        return _Run(world, rank, autocast_dtype(cfg, self.device), channels_last)

    def _start_or_resume(self, method: Method, run_dir: Path, resume: bool,
                         rank: int) -> tuple[_Progress, tuple[dict[str, Any], dict[str, Tensor]]]:
        """The progress to start from and the saved optimizer and RNG state (empty for a new run)."""
        if resume:
            loaded = self._load_state(run_dir, method)
            if loaded is not None:
                progress, opt_states, opt_tensors = loaded
                if rank == 0:
                    print(f"colorkit: resuming {run_dir} at stage {progress.stage_index + 1}, "
                          f"{progress.epoch} epoch(s) done", file=sys.stderr)
                return progress, (opt_states, opt_tensors)
            if rank == 0:
                print(f"colorkit: warning: --resume found no saved training state in {run_dir} "
                      f"(no {self._state_dir(run_dir).name}/); training from the beginning", file=sys.stderr)
        elif self._has_state(run_dir) and rank == 0:
            raise ColorkitError(f"{run_dir} already holds an unfinished training run; pass --resume to continue it "
                                "or choose another --out")
        return _Progress(), ({}, {})

    def _epochs_of(self, stage: Any) -> int:
        """The epochs a stage runs: ``TrainConfig.epochs`` when set, else its own (a stage
        of 0 epochs, e.g. an initialisation step, stays at 0)."""
        if stage.epochs == 0:
            return 0
        return self.config.epochs if self.config.epochs is not None else stage.epochs

    def _run_stage(self, si: int, stage: Any, method: Method, train_split: Any, run_dir: Path, run: _Run,
                   progress: _Progress, log: _Log,
                   saved: tuple[dict[str, Any], dict[str, Tensor]] | None) -> dict[str, int]:
        """One stage: lifecycle hooks, optimizers, its epochs, checkpoints. ``saved``: the
        optimizer and RNG state of a resumed run interrupted in this stage. Returns the
        stage's budget (epochs, images trained on)."""
        cfg, n = self.config, len(train_split)
        # A checkpoint taken at a stage boundary (no epoch done yet) saved the RNG before
        # the next stage's hooks; one taken inside a stage saved it after on_start.
        if saved is not None and progress.epoch == 0:
            self._restore_rng(saved[1])
        bsz = cfg.batch_size or stage.batch_size
        if bsz % run.world:
            raise ColorkitError(f"global batch size {bsz} is not divisible by the {run.world} processes")
        local = bsz // run.world
        if n < 2 * run.world:
            raise ColorkitError(f"training split has {n} images; at least {2 * run.world} are needed")
        t_stage = time.perf_counter() - progress.stage_seconds.get(stage.name, 0.0)
        skipped = stage.skip is not None and bool(stage.skip(train_split))
        start_epoch = progress.epoch if si == progress.stage_index else 0
        budget = {"epochs": 0, "images": start_epoch * n}
        if not skipped:
            if stage.on_start is not None:
                stage.on_start(train_split)
            epochs = budget["epochs"] = self._epochs_of(stage)  # read after on_start, which may change it
            if saved is not None and progress.epoch > 0:
                self._restore_rng(saved[1])  # exactly where the interrupted run saved it, after on_start
            self._train_only(method, stage)
            optimizers = self._optimizers(stage, saved, run_dir)
            sampler = DistributedSampler(_Indexable(n), num_replicas=run.world, rank=run.rank, shuffle=True,
                                         seed=cfg.seed * 1000 + si, drop_last=False)
            where = {"stage": stage.name, "epoch": 0, "step": 0, "ckpt": self._state_dir(run_dir)}
            ctx = StepContext(optimizers=optimizers, optimize=self._optimize_fn(optimizers, where), epoch=0, step=0,
                              world_size=run.world, generator=self.generator)
            cut = False
            for epoch in range(start_epoch, epochs):
                sampler.set_epoch(epoch)
                steps = _epoch_steps(list(iter(sampler)), local)
                if cfg.max_steps_per_epoch is not None and len(steps) > cfg.max_steps_per_epoch:
                    steps, cut = steps[: cfg.max_steps_per_epoch], True
                label = f"{method.registry_name or type(method).__name__}:{stage.name} {epoch + 1}/{epochs}"
                budget["images"] += self._run_epoch(stage, train_split, steps, ctx, where, run, progress, log,
                                                    epoch, epochs, label)
                progress.epoch, progress.stage_index = epoch + 1, si
                progress.stage_seconds[stage.name] = time.perf_counter() - t_stage
                if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == epochs:
                    self._save_state(run_dir, method, progress, optimizers)
            if stage.on_end is not None:
                done = max(start_epoch, epochs)
                stage.on_end(train_split, StageEnd(name=stage.name, epochs=done, planned_epochs=stage.epochs,
                                                   complete=done == stage.epochs and not cut))
        progress.stage_index, progress.epoch = si + 1, 0
        progress.stage_seconds[stage.name] = time.perf_counter() - t_stage
        self._save_state(run_dir, method, progress, {})
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
    def _optimizers(stage: Any, saved: tuple[dict[str, Any], dict[str, Tensor]] | None,
                    run_dir: Path) -> dict[str, torch.optim.Optimizer]:
        """The stage's optimizers, with their saved state when resuming inside the stage."""
        optimizers = stage.make_optimizers()
        if saved is not None and saved[0]:
            opt_states, opt_tensors = saved
            missing = sorted(set(optimizers) - set(opt_states))
            if missing:
                raise ColorkitError(f"cannot resume {run_dir}: its saved state of stage {stage.name!r} has no "
                                    f"optimizer {', '.join(map(repr, missing))} (use a new --out directory)")
            for name, opt in optimizers.items():
                opt.load_state_dict(_unflatten_optimizer(opt_states[name], opt_tensors))
        return optimizers

    def _run_epoch(self, stage: Any, train_split: Any, steps: list[list[int]], ctx: StepContext,
                   where: dict[str, Any], run: _Run, progress: _Progress, log: _Log, epoch: int,
                   epochs: int, label: str) -> int:
        """One pass over ``steps`` (lists of image indices); returns the images trained on."""
        bar = None
        if self.config.progress and run.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(steps), desc=label, unit="step", leave=False, file=sys.stderr, dynamic_ncols=True,
                       disable=None)
        seen, t0 = 0, time.perf_counter()
        for i, (idx, batch) in enumerate(zip(steps, self._batches(train_split, steps))):
            if run.channels_last:
                batch = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                         for k, v in batch.items()}
            where.update(epoch=epoch, step=progress.global_step)
            ctx.epoch, ctx.step = epoch, progress.global_step
            if stage.lr_schedule != "constant":
                factor = lr_factor(stage.lr_schedule, (epoch + i / len(steps)) / max(1, epochs))
                for opt in ctx.optimizers.values():
                    for group in opt.param_groups:
                        group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor
            amp = (torch.autocast(self.device.type, dtype=run.amp_dtype) if run.amp_dtype is not None
                   else contextlib.nullcontext())
            with amp:
                logs = stage.step(batch, ctx)
            progress.global_step += 1
            seen += len(idx) * run.world
            if progress.global_step % self.config.log_every == 0:
                log.write(stage.name, epoch, logs)
            if bar is not None:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                first = next(iter(logs.items()), None)
                post = {first[0]: f"{float(first[1]):.4g}"} if first else {}
                bar.set_postfix(**post, img_s=f"{rate:.0f}")
                bar.update(1)
        if bar is not None:
            bar.close()
        return seen


def engine_seed(seed: int, rank: int) -> int:
    """The seed of ``ctx.generator`` on process ``rank`` for a run seeded with ``seed``."""
    return (seed * 1_000_003 + rank + 1) % (2**63)


def _epoch_steps(order: list[int], local: int) -> list[list[int]]:
    """This process's image indices of one epoch cut into batches of ``local``; a last
    batch of one image is dropped (BatchNorm needs 2 per process)."""
    steps = [order[i : i + local] for i in range(0, len(order), local)]
    return [s for s in steps if len(s) >= 2]


@dataclass(frozen=True)
class _Run:
    world: int
    rank: int
    amp_dtype: torch.dtype | None
    channels_last: bool


class _Log:
    """``log.jsonl``: one JSON line per logged step (rank 0 only), mirrored in
    ``progress.history`` for the loss plot; rewritten from the history on (re)start."""

    def __init__(self, path: Path, rank: int, progress: _Progress) -> None:
        self.path, self.rank, self.progress = path, rank, progress
        if rank == 0:
            path.write_text("".join(json.dumps(h) + "\n" for h in progress.history))

    def write(self, stage: str, epoch: int, logs: dict[str, Tensor]) -> None:
        if self.rank != 0:
            return
        rec = {"stage": stage, "epoch": epoch, "global_step": self.progress.global_step,
               **{k: float(v) for k, v in logs.items()}}
        self.progress.history.append(rec)
        with self.path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")


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
        keys = [k for k in rows[0] if k not in {"stage", "epoch", "global_step"}]
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
