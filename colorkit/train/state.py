"""The resumable training state in ``RUN_DIR/train_state``: the method's weights, the
optimizers' state, the random generators and the progress (stage, epoch, global step,
seconds per stage), written atomically after every checkpointed epoch and at every stage
boundary, and read back by ``resume=True``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from colorkit.core import distributed as D
from colorkit.core.checkpoint import check_finite, load_tensors, read_meta, write_component
from colorkit.core.fs import atomic_dir, open_write
from colorkit.core.interfaces import Method
from colorkit.core.registry import ColorkitError
from colorkit.core.tensorfile import save_tensors

STATE_FORMAT = "colorkit-train-state-v1"


@dataclass
class Progress:
    """Where a run is: the stage, the epochs done in it, the global step, the logged
    history (what ``log.jsonl`` holds) and the seconds trained per stage."""

    stage_index: int = 0
    epoch: int = 0  # epochs completed in the current stage
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Resume:
    """The saved state of the stage a resumed run was interrupted in: its optimizers'
    state and the random generators' state, taken at the stage's start (``at_stage_start``:
    before its hooks ran) or after one of its epochs (after its ``on_start``)."""

    optimizers: dict[str, Any]
    tensors: dict[str, Tensor]
    at_stage_start: bool


def state_dir(run_dir: Path) -> Path:
    return run_dir / "train_state"


def has_state(run_dir: Path) -> bool:
    sdir = state_dir(run_dir)
    return sdir.exists() or sdir.with_name(sdir.name + ".old").exists()


def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's state as tensors (named ``prefix.<param>.<key>``) and JSON metadata."""
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


def unflatten_optimizer(meta: dict[str, Any], tensors: dict[str, Tensor]) -> dict[str, Any]:
    state = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {k: (tensors[v["tensor"]] if "tensor" in v else v["value"]) for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(run_dir: Path, method: Method, progress: Progress, optimizers: dict[str, torch.optim.Optimizer],
               generator: torch.Generator | None, device: torch.device) -> None:
    """Write ``run_dir/train_state`` atomically (rank 0 only)."""
    if D.rank() != 0:
        return
    with atomic_dir(state_dir(run_dir)) as tmp:
        write_component(tmp, method)
        tensors: dict[str, Tensor] = {"rng.cpu": torch.get_rng_state()}
        if generator is not None:
            tensors["rng.engine"] = generator.get_state()
        if torch.cuda.is_available() and device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        opt_meta = {}
        for name, opt in optimizers.items():
            t, m = flatten_optimizer(opt, f"opt.{name}")
            tensors.update(t)
            opt_meta[name] = m
        save_tensors(tmp / "optim.safetensors", tensors, {"format": STATE_FORMAT})
        with open_write(tmp / "progress.json", "w", encoding="utf-8") as fh:
            fh.write(json.dumps({
                "stage_index": progress.stage_index, "epoch": progress.epoch,
                "global_step": progress.global_step, "stage_seconds": progress.stage_seconds,
                "optimizers": opt_meta,
            }, indent=1))


def load_state(run_dir: Path, method: Method) -> tuple[Progress, Resume] | None:
    """The saved progress (history from ``log.jsonl`` up to its step) and state, with the
    weights loaded into ``method``; ``None`` when there is none."""
    sdir = state_dir(run_dir)
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
    if os.path.islink(hist_path):  # it is rewritten when training starts: never through a link
        raise ColorkitError(f"refusing to use {hist_path}: it is a symbolic link; colorkit never writes through a "
                            "link (remove it)")
    if hist_path.is_file():
        history = [json.loads(line) for line in hist_path.read_text().splitlines() if line.strip()]
        history = [h for h in history if h["global_step"] <= prog["global_step"]]
    p = Progress(prog["stage_index"], prog["epoch"], prog["global_step"], history, prog.get("stage_seconds", {}))
    return p, Resume(prog["optimizers"], extra, at_stage_start=p.epoch == 0)


def restore_rng(tensors: dict[str, Tensor], generator: torch.Generator | None, device: torch.device) -> None:
    """Set the global, engine and CUDA generators to their saved states."""
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.engine" in tensors and generator is not None:
        generator.set_state(tensors["rng.engine"])
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
