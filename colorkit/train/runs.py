"""Run directories: what ``colorkit train`` leaves and ``colorize``/``bench`` load.

``RUN_DIR`` holds ``run.json`` (method, options, dataset, split sizes, timings, versions,
units; written last: its presence marks a finished run), ``model.json`` +
``model.safetensors`` (the method), ``stats.safetensors`` (colour statistics),
``log.jsonl`` and ``loss.png`` (training curves); while training, ``train_state/``."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from colorkit.core.checkpoint import (
    read_json,
    read_meta,
    resolve_dir,
    write_component,
)
from colorkit.core.environment import versions
from colorkit.core.fs import atomic_write_text, lock_dir
from colorkit.core.interfaces import BuildContext, Method
from colorkit.core.registry import ColorkitError
from colorkit.train.components import components_used
from colorkit.train.config import DataConfig, MethodSpec, RunConfig, StatsConfig, environment
from colorkit.train.engine import TrainConfig, Trainer

RUN_FORMAT = "colorkit-run-v1"




def check_options(method: str, preset: str, options: dict[str, Any] | None) -> None:
    """Validate a method's preset and options before any expensive work."""
    from colorkit.core.plugin_manager import registry

    factory = registry("method").get(method).factory
    make = getattr(factory, "make_config", None)
    if make is None:
        return
    try:
        make(None, preset=preset, **(options or {}))
    except ColorkitError:
        raise
    except (ValueError, TypeError) as exc:
        msg = " ".join(str(exc).split())
        raise ColorkitError(f"invalid options for method {method!r}: {msg}") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's config code may raise anything
        msg = " ".join(str(exc).split()) or "no message"
        raise ColorkitError(f"method {method!r} rejected its options ({type(exc).__name__}: {msg})") from None


def build_method(method: str, stats: Any, *, preset: str, options: dict[str, Any] | None, dataset: Any) -> Any:
    from colorkit.api import create_method
    from colorkit.core.plugin_manager import registry

    entry = registry("method").get(method)
    kwargs = dict(options or {})
    from_context = getattr(entry.factory, "options_from_context", None)  # a Method class; a plain factory has none
    if dataset is not None and from_context is not None:
        context = BuildContext(cache_dir=str(Path(dataset.root) / "backbones"), image_size=dataset.size)
        kwargs = {**from_context(context), **kwargs}
    try:
        return create_method(method, stats=stats, preset=preset, **kwargs)
    except ColorkitError:
        raise
    except (ValueError, TypeError) as exc:  # pydantic ValidationError is a ValueError
        msg = " ".join(str(exc).split())
        raise ColorkitError(f"invalid options for method {method!r}: {msg}") from None


MAX_MODEL_SIZE = 1024
"""Largest model input side a run may declare (``dataset.size``; the paper trains at 64)."""

def run_dir_for(method: str, out: str | Path | None) -> Path:
    """The run directory ``train`` uses: ``out``, or ``runs/<method>``."""
    return Path(out) if out is not None else Path("runs") / method


def train(method: str, *, dataset: str | Path = "demo", out: str | Path | None = None, preset: str = "small",
          epochs: int | None = None, seed: int = 0, size: int = 64, device: str = "auto", resume: bool = False,
          progress: bool = True, options: dict[str, Any] | None = None, prepared: Any = None,
          stats: Any = None, engine: dict[str, Any] | None = None, data: DataConfig | None = None,
          stats_config: StatsConfig | None = None) -> Path:
    """Train ``method`` on ``dataset``'s training split into a run directory; returns it.

    A shorthand for :func:`train_config`: the keywords make its :class:`RunConfig`.
    ``seed`` is the training seed; the train/test split is ``data``'s (``split_seed``, 0
    by default). ``data`` (a :class:`~colorkit.train.config.DataConfig`) replaces
    ``dataset`` and ``size``; ``stats_config`` chooses the colour statistics (e.g.
    ``StatsConfig(weighting="inverse")``); ``engine`` holds further ``TrainConfig`` fields."""
    data = data if data is not None else DataConfig(dataset=str(dataset), size=size)
    cfg = RunConfig(data=data, stats=stats_config or StatsConfig(),
                    method=MethodSpec(name=method, preset=preset, options=options or {}),
                    train=TrainConfig(seed=seed, epochs=epochs, device=device, progress=progress, **(engine or {})))
    return train_config(cfg, out=out, resume=resume, prepared=prepared, stats=stats)


def train_config(config: RunConfig, *, out: str | Path | None = None, resume: bool = False, prepared: Any = None,
                 stats: Any = None) -> Path:
    """Train the run ``config`` describes into a run directory (default ``runs/METHOD``) and
    return it; ``run.json`` holds the whole ``"config"`` and the ``"environment"`` overrides.
    ``prepared`` (the prepared data set) and ``stats`` (its colour statistics) spare
    preparing and computing them. The run directory is locked for the whole call (a second
    training into it fails with a one-line error) and checked to be writable before any
    work. A finished run is never overwritten: ``resume=True`` on one returns it untouched."""
    method = config.method.name
    out = run_dir_for(method, out)
    check_options(method, config.method.preset, config.method.options)
    created = not os.path.lexists(out)
    lock = lock_dir(out) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext(out)
    with lock:
        try:
            return _train_in(out, config, resume=resume, prepared=prepared, stats=stats)
        except BaseException:
            if created and os.environ.get("RANK", "0") == "0":
                # A run that failed before writing anything leaves no folder behind (the lock
                # is held: no other process is in it).
                with contextlib.suppress(OSError):
                    if set(os.listdir(out)) <= {".lock"}:
                        (out / ".lock").unlink(missing_ok=True)
                        out.rmdir()
            raise


def _train_in(out: Path, cfg: RunConfig, *, resume: bool, prepared: Any, stats: Any) -> Path:
    method = cfg.method.name
    if (out / "run.json").is_file():
        if not resume:
            raise ColorkitError(f"{out} already holds a finished run; choose another --out or delete it")
        info = read_run(out)
        if info["method"] != method:
            raise ColorkitError(f"{out} holds a finished {info['method']!r} run, not {method!r}; "
                                "choose another --out")
        print(f"colorkit: {out} is already complete ({method}); nothing to resume", file=sys.stderr)
        for leftover in ("train_state", "train_state.old"):  # a kill after run.json, before the clean-up
            shutil.rmtree(out / leftover, ignore_errors=True)
        return out
    return _train_locked(cfg, out=out, resume=resume, prepared=prepared, stats=stats)


def _train_locked(cfg: RunConfig, *, out: Path, resume: bool, prepared: Any, stats: Any) -> Path:
    progress = cfg.train.progress
    ds = prepared if prepared is not None else cfg.data.prepare(progress=progress)
    if prepared is not None:  # the data section says what was actually used
        info = ds.info()
        cfg = cfg.model_copy(update={"data": DataConfig(
            dataset=str(ds.source), size=ds.size, crop=bool(info.get("crop", False)), split_seed=ds.seed,
            test_size=ds.test_size, cache_dir=cfg.data.cache_dir)})
    from colorkit.core.stats import load_or_compute_stats

    st = stats if stats is not None else load_or_compute_stats(ds, cfg.stats, progress=progress)
    method, seed, epochs = cfg.method.name, cfg.train.seed, cfg.train.epochs
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    m = build_method(method, st, preset=cfg.method.preset, options=cfg.method.options, dataset=ds)
    m.registry_name = method
    t0 = time.perf_counter()
    trainer = Trainer(cfg.train)
    summary = trainer.fit(m, ds.split("train"), out, resume=resume)
    from colorkit.core import distributed as D

    first = D.launch_rank() == 0  # fit has left the process group: torchrun's rank says who writes
    diagnostics = m.diagnostics(ds.split("train"), k=5) if first else None
    if first:
        finalize_run(out, m, st, {
            "method": method, "preset": cfg.method.preset, "options": cfg.method.options, "seed": seed,
            "epochs_override": epochs,
            "config": cfg.model_dump(mode="json"), "environment": environment(),
            "dataset": {"source": str(ds.source), "size": ds.size, "n_train": len(ds.train_idx),
                        "n_test": len(ds.test_idx), "hash": ds.info().get("hash")},
            "stats": {k: st.meta.get(k) for k in ("weighting", "k", "lambda", "sigma", "gamut")
                      if k in st.meta},
            "train_seconds": summary["train_seconds"], "stage_seconds": summary["stage_seconds"],
            "stage_budget": summary["stage_budget"], "threads": summary["threads"],
            "thread_changes": summary["thread_changes"],
            "role": m.role, "provenance": m.provenance(),
            **({"diagnostics": {"train": diagnostics}} if diagnostics else {}),
            "wall_seconds": time.perf_counter() - t0, "world_size": summary["world_size"],
            "device": summary["device"],
        })
    return out


def finalize_run(out: Path, method: Method, stats: Any, info: dict[str, Any]) -> None:
    """Write the final model and statistics (each file atomically), then ``run.json`` last
    and atomically: until it exists the run counts as unfinished (``train_state`` stays for
    ``--resume``); then drop ``train_state``."""
    write_component(out, method)
    stats.save(out / "stats.safetensors")
    run = {"format": RUN_FORMAT, "complete": True, "units": "ab/128 (Lab a,b divided by 128); seconds",
           "versions": versions(), "host": platform.node(),
           "components": components_used(info.get("method") or method.registry_name, method.config), **info}
    atomic_write_text(out / "run.json", json.dumps(run, indent=2, sort_keys=True))
    shutil.rmtree(out / "train_state", ignore_errors=True)
    shutil.rmtree(out / "train_state.old", ignore_errors=True)


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a finished run, checked: a JSON object of this format with the keys
    colorkit reads, whose method is the one ``model.json`` holds."""
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        if (run_dir / "train_state").is_dir() or (run_dir / "train_state.old").is_dir():
            raise ColorkitError(
                f"{run_dir} is an unfinished training run; finish it with `colorkit train ... --out {run_dir} --resume`"
            )
        raise ColorkitError(f"{run_dir} is not a colorkit run directory (no run.json)")
    info = read_json(path)
    if not isinstance(info, dict):
        raise ColorkitError(f"{path} holds a JSON {type(info).__name__}, expected an object")
    if info.get("format") != RUN_FORMAT:
        raise ColorkitError(f"{path}: format {info.get('format')!r}, expected {RUN_FORMAT!r}")
    ds = info.get("dataset")
    problems = []
    if not isinstance(info.get("method"), str) or not info.get("method"):
        problems.append("method (a string)")
    if not isinstance(ds, dict) or not isinstance(ds.get("size"), int) or isinstance(ds.get("size"), bool) \
            or not 1 <= ds["size"] <= MAX_MODEL_SIZE:
        problems.append(f"dataset.size (an integer from 1 to {MAX_MODEL_SIZE})")
    if not isinstance(info.get("train_seconds"), (int, float)) or isinstance(info.get("train_seconds"), bool):
        problems.append("train_seconds (a number)")
    if problems:
        raise ColorkitError(f"{path} lacks valid {', '.join(problems)}")
    meta = read_meta(resolve_dir(run_dir))
    if meta.get("kind") != "method" or meta.get("name") != info["method"]:
        raise ColorkitError(
            f"{run_dir}: run.json says method {info['method']!r} but model.json holds the "
            f"{meta.get('kind')} {meta.get('name')!r}; refusing a run whose weights are not its method's"
        )
    return info
