"""Run directories: what ``colorkit train`` leaves and ``colorize``/``bench`` load.

``RUN_DIR`` holds ``run.json`` (method, options, dataset, split sizes, timings, versions,
units; written last: its presence marks a finished run), ``model.json`` +
``model.safetensors`` (the method), ``stats.safetensors`` (colour statistics),
``log.jsonl`` and ``loss.png`` (training curves). While training, ``train_state/`` holds the
resumable checkpoint.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from colorkit import __version__
from colorkit.checkpoint import atomic_write_text, load_component, write_component
from colorkit.engine import TrainConfig, Trainer, resolve_device
from colorkit.registry import ColorkitError

RUN_FORMAT = "colorkit-run-v1"


def _versions_safe() -> dict[str, str]:
    import numpy

    out = {"colorkit": __version__, "torch": torch.__version__, "python": platform.python_version(),
           "numpy": numpy.__version__}
    for mod in ("kornia", "timm", "PIL"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional here
            pass
    try:
        import triton

        out["triton"] = triton.__version__
    except Exception:  # noqa: BLE001 - triton is optional off Linux
        pass
    return out


def check_options(method: str, preset: str, options: dict[str, Any] | None) -> None:
    """Validate a method's preset and options before any expensive work."""
    from colorkit.plugins import registry

    factory = registry("conditional_model").get(method).factory
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


def build_method(method: str, stats: Any, *, preset: str, options: dict[str, Any] | None, dataset: Any) -> Any:
    from colorkit.api import create_method
    from colorkit.plugins import registry

    entry = registry("conditional_model").get(method)
    kwargs = dict(options or {})
    fields = getattr(getattr(entry.factory, "Config", None), "model_fields", {})
    if "cache_dir" in fields and "cache_dir" not in kwargs and dataset is not None:
        kwargs["cache_dir"] = str(Path(dataset.root) / "backbones")
    if "image_size" in fields and "image_size" not in kwargs and dataset is not None:
        kwargs["image_size"] = dataset.size
    try:
        return create_method(method, stats=stats, preset=preset, **kwargs)
    except ColorkitError:
        raise
    except (ValueError, TypeError) as exc:  # pydantic ValidationError is a ValueError
        msg = " ".join(str(exc).split())
        raise ColorkitError(f"invalid options for method {method!r}: {msg}") from None


def train(method: str, *, dataset: str | Path = "demo", out: str | Path | None = None, preset: str = "small",
          epochs: int | None = None, seed: int = 0, size: int = 64, device: str = "auto", resume: bool = False,
          progress: bool = True, options: dict[str, Any] | None = None, prepared: Any = None,
          stats: Any = None, engine: dict[str, Any] | None = None) -> Path:
    """Train ``method`` on ``dataset``'s training split into a run directory; returns it."""
    from colorkit.data import prepare
    from colorkit.stats import load_or_compute_stats

    out = Path(out) if out is not None else Path("runs") / method
    check_options(method, preset, options)
    if (out / "run.json").is_file() and not resume:
        raise ColorkitError(f"{out} already holds a finished run; choose another --out or delete it")
    ds = prepared if prepared is not None else prepare(dataset, size=size, seed=seed, progress=progress)
    st = stats if stats is not None else load_or_compute_stats(ds)
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    m = build_method(method, st, preset=preset, options=options, dataset=ds)
    m.registry_name = method
    t0 = time.perf_counter()
    trainer = Trainer(TrainConfig(seed=seed, epochs=epochs, device=device, progress=progress, **(engine or {})))
    summary = trainer.fit(m, ds.split("train"), out, resume=resume)
    from colorkit import distributed as D

    diagnostics = m.diagnostics(ds.split("train"), k=5) if D.rank() == 0 else None
    if D.rank() == 0:
        finalize_run(out, m, st, {
            "method": method, "preset": preset, "options": options or {}, "seed": seed, "epochs_override": epochs,
            "dataset": {"source": str(ds.source), "size": ds.size, "n_train": len(ds.train_idx),
                        "n_test": len(ds.test_idx), "hash": ds.info().get("hash")},
            "train_seconds": summary["train_seconds"], "stage_seconds": summary["stage_seconds"],
            "stage_budget": summary["stage_budget"], "threads": torch.get_num_threads(),
            "role": getattr(m, "role", "learned"),
            **({"diagnostics": {"train": diagnostics}} if diagnostics else {}),
            "wall_seconds": time.perf_counter() - t0, "world_size": summary["world_size"],
            "device": summary["device"],
        })
    return out


def finalize_run(out: Path, method: Any, stats: Any, info: dict[str, Any]) -> None:
    """Write the final model and statistics, then ``run.json`` last: until it exists the run
    counts as unfinished (``train_state`` stays for ``--resume``); then drop ``train_state``."""
    write_component(out, method)
    stats.save(out / "stats.safetensors")
    run = {"format": RUN_FORMAT, "complete": True, "units": "ab/128 (Lab a,b divided by 128); seconds",
           "versions": _versions_safe(), "host": platform.node(), **info}
    atomic_write_text(out / "run.json", json.dumps(run, indent=2, sort_keys=True))
    shutil.rmtree(out / "train_state", ignore_errors=True)
    shutil.rmtree(out / "train_state.old", ignore_errors=True)


def read_run(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        if (run_dir / "train_state").is_dir():
            raise ColorkitError(f"{run_dir} is an unfinished training run; finish it with `colorkit train ... --out {run_dir} --resume`")
        raise ColorkitError(f"{run_dir} is not a colorkit run directory (no run.json)")
    info = json.loads(path.read_text())
    if info.get("format") != RUN_FORMAT:
        raise ColorkitError(f"{path}: format {info.get('format')!r}, expected {RUN_FORMAT!r}")
    return info


class Colorizer:
    """A trained method loaded from a run directory: ``colorize(image, k)``."""

    def __init__(self, run_dir: str | Path, device: str = "auto") -> None:
        self.run_dir = Path(run_dir)
        self.info = read_run(self.run_dir)
        self.device = resolve_device(device)
        self.method = load_component(self.run_dir, kind="conditional_model", map_location=self.device)
        self.method.eval()
        if hasattr(self.method.stats, "to"):
            self.method.stats = self.method.stats.to(self.device)
        self.size = int(self.info["dataset"]["size"])

    @property
    def name(self) -> str:
        return self.info["method"]

    @torch.no_grad()
    def sample(self, grey: torch.Tensor, k: int = 5, *, mode: str | None = None, seed: int = 0) -> torch.Tensor:
        """``grey`` (B,1,s,s) at the model size -> ab (B,k,2,s,s), ab/128."""
        if k < 1:
            raise ColorkitError(f"k must be at least 1, got {k}")
        gen = torch.Generator(device=self.device).manual_seed(seed)
        return self.method.sample(grey.to(self.device), k, mode=mode, generator=gen)

    @torch.no_grad()
    def colorize(self, image: Any, k: int = 5, *, mode: str | None = None, seed: int = 0,
                 output: str = "images") -> Any:
        """Colorize one image (path, PIL image, or uint8 HxWx3 / HxW array) at its own
        resolution: the predicted ab is upsampled and joined with the input's L channel.

        ``output="images"``: a list of ``k`` PIL images; ``"tensors"``: RGB ``(k, 3, H, W)``
        in [0, 1]."""
        from colorkit.imageio import colorize_full_resolution

        return colorize_full_resolution(self, image, k=k, mode=mode, seed=seed, output=output)


def load(run_dir: str | Path, device: str = "auto") -> Colorizer:
    """``colorkit.load(run_dir).colorize(image, k=5)``."""
    return Colorizer(run_dir, device=device)
