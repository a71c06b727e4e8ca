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

from colorkit import __version__
from colorkit.core.checkpoint import (
    atomic_write_text,
    load_method_checkpoint,
    lock_dir,
    read_json,
    read_meta,
    resolve_dir,
    write_component,
)
from colorkit.core.interfaces import BuildContext
from colorkit.core.registry import ColorkitError
from colorkit.train.components import check_components_installed, components_used
from colorkit.train.config import DataConfig, MethodSpec, RunConfig, SampleConfig, StatsConfig, environment
from colorkit.train.engine import TrainConfig, Trainer, resolve_device

RUN_FORMAT = "colorkit-run-v1"

DEMO_MODEL_DIR = Path(__file__).parents[1] / "models" / "demo-mdn"
"""The bundled demo model: the ``mdn`` method, ``small`` preset, trained on the 312 shipped
demo photos at 64x64 (weights stored in half precision; built by
``scripts/build_demo_model.py``). A model of a small demo set, not of the world's photos."""
DEMO_MODEL_NOTE = ("the bundled demo model (mdn, small preset) was trained only on ~300 small (64x64) demo photos; "
                   "train your own for real use")


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
                      if getattr(st, "meta", None) and k in st.meta},
            "train_seconds": summary["train_seconds"], "stage_seconds": summary["stage_seconds"],
            "stage_budget": summary["stage_budget"], "threads": summary["threads"],
            "thread_changes": summary["thread_changes"],
            "role": getattr(m, "role", "learned"), "provenance": m.provenance(),
            **({"diagnostics": {"train": diagnostics}} if diagnostics else {}),
            "wall_seconds": time.perf_counter() - t0, "world_size": summary["world_size"],
            "device": summary["device"],
        })
    return out


def finalize_run(out: Path, method: Any, stats: Any, info: dict[str, Any]) -> None:
    """Write the final model and statistics (each file atomically), then ``run.json`` last
    and atomically: until it exists the run counts as unfinished (``train_state`` stays for
    ``--resume``); then drop ``train_state``."""
    write_component(out, method)
    stats.save(out / "stats.safetensors")
    run = {"format": RUN_FORMAT, "complete": True, "units": "ab/128 (Lab a,b divided by 128); seconds",
           "versions": _versions_safe(), "host": platform.node(),
           "components": components_used(info.get("method") or getattr(method, "registry_name", ""),
                                         getattr(method, "config", None)), **info}
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


class Colorizer:
    """A trained method loaded from a run directory: ``colorize(image, k)``. Without a run
    directory, the bundled demo model (:data:`DEMO_MODEL_DIR`)."""

    def __init__(self, run_dir: str | Path | None = None, device: str = "auto",
                 options: dict[str, Any] | None = None) -> None:
        """``options``: sampling settings, ``{"mode": ..., <a field in the method's sample_options>: ...}``
        (``--option`` of ``colorkit colorize`` and ``bench``)."""
        self.bundled = run_dir is None
        self.run_dir = DEMO_MODEL_DIR if run_dir is None else Path(run_dir)
        if self.bundled and not (self.run_dir / "run.json").is_file():
            raise ColorkitError(f"the bundled demo model is missing from this installation ({self.run_dir}); "
                                "reinstall colorkit or give a run directory")
        self.info = read_run(self.run_dir)
        self.device = resolve_device(device)
        check_components_installed(self.info, self.run_dir)
        self.method = load_method_checkpoint(self.run_dir, kind="method", name=self.info["method"],
                                             map_location=self.device)
        self.method.eval()
        if hasattr(self.method.stats, "to"):
            self.method.stats = self.method.stats.to(self.device)
        self.size = int(self.info["dataset"]["size"])
        self._check_size()
        self.sampling = SampleConfig.from_options(options or {})
        if self.sampling.mode is not None:
            self.method.check_mode(self.sampling.mode)
        self.method.configure_sampling(**self.sampling.options)

    def _check_size(self) -> None:
        """``dataset.size`` of run.json is the side the weights were trained at: the colour
        statistics' (their PCA basis has its shape) and the config's ``image_size``."""
        sizes = {}
        stats_size = getattr(getattr(self.method, "stats", None), "image_size", None)
        if isinstance(stats_size, int):
            sizes["stats.safetensors"] = stats_size
        config_size = getattr(getattr(self.method, "config", None), "image_size", None)
        if isinstance(config_size, int):
            sizes["model.json's image_size"] = config_size
        wrong = {where: v for where, v in sizes.items() if v != self.size}
        if wrong:
            said = ", ".join(f"{where} says {v}" for where, v in wrong.items())
            raise ColorkitError(f"{self.run_dir / 'run.json'}: dataset.size {self.size} does not match the weights "
                                f"({said}); refusing a run that does not add up")

    @property
    def name(self) -> str:
        return self.info["method"]

    @property
    def label(self) -> str:
        """What to call this model in messages: ``demo model (mdn)`` or the run directory."""
        return f"demo model ({self.name})" if self.bundled else f"{self.run_dir} ({self.name})"

    def weights_sha256(self) -> str:
        """sha256 of the weights file: the model's identity, wherever the run directory is."""
        import hashlib

        h = hashlib.sha256()
        with open(resolve_dir(self.run_dir) / "model.safetensors", "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    @torch.no_grad()
    def sample(self, grey: torch.Tensor, k: int = 5, *, mode: str | None = None, seed: int = 0,
               hints: torch.Tensor | None = None) -> torch.Tensor:
        """``grey`` (B,1,s,s) at the model size -> ab (B,k,2,s,s), ab/128. ``hints``: a hint
        map (B,3,s,s) (:func:`colorkit.core.hints.hint_map`); ``None``: no hints."""
        from colorkit.core.hints import sample_with_hints
        from colorkit.data.imageio import check_k

        check_k(k)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        ab = sample_with_hints(self.method, grey.to(self.device), k, hints=hints, mode=mode or self.sampling.mode,
                               generator=gen)
        want = (grey.shape[0], k, 2, *grey.shape[-2:])
        if not isinstance(ab, torch.Tensor) or tuple(ab.shape) != want:
            from colorkit.core.plugin_manager import registry

            raise ColorkitError(f"method {self.name!r} of {registry('method').get(self.name).source} gave samples of "
                                f"shape {tuple(getattr(ab, 'shape', ())) or type(ab).__name__} for k={k}, expected "
                                f"{want} (B, k, 2, H, W)")
        if not bool(torch.isfinite(ab).all()):
            raise ColorkitError(f"{self.label} produced NaN or infinite colours with these sampling settings "
                                f"(mode {mode or self.sampling.mode!r}, {self.sampling.options or 'no options'}); "
                                "nothing was written")
        return ab

    @torch.no_grad()
    def colorize(self, image: Any, k: int = 5, *, mode: str | None = None, seed: int = 0,
                 output: str = "images", max_pixels: int | None = None, hints: Any = None) -> Any:
        """Colorize one image (path, PIL image, or uint8 HxWx3 / HxW array) at its own
        resolution: the predicted ab is upsampled and joined with the input's L channel.

        ``output="images"``: a list of ``k`` PIL images; ``"tensors"``: RGB ``(k, 3, H, W)``
        in [0, 1]. Both hold all k at once: for large photos use :meth:`iter_colorize`.
        Images above ``max_pixels`` (default 50 megapixels) are refused. ``hints``: colour
        points of the photo, a list of :class:`colorkit.Hint` (or their JSON form, a list
        of ``{"x", "y", "color"}``), in the photo's own pixels."""
        from colorkit.data.imageio import colorize_full_resolution

        return colorize_full_resolution(self, image, k=k, mode=mode, seed=seed, output=output,
                                        max_pixels=max_pixels, hints=hints)

    def iter_colorize(self, image: Any, k: int = 5, *, mode: str | None = None, seed: int = 0,
                      max_pixels: int | None = None, hints: Any = None) -> Any:
        """The same colorizations as :meth:`colorize`, one PIL image at a time (memory
        independent of k)."""
        from colorkit.data.imageio import iter_colorizations

        return iter_colorizations(self, image, k=k, mode=mode, seed=seed, max_pixels=max_pixels, hints=hints)

    def colorize_video(self, source: str | Path, k: int = 5, *, mode: str | None = None, seed: int = 0,
                       fps: float | None = None, scene_threshold: float | None = None,
                       max_pixels: int | None = None) -> Any:
        """The ``k`` versions of a clip (a video file, or a folder of numbered frames at
        ``fps``), each consistent from frame to frame: an iterator of frames, each with
        ``versions[j]`` (``(H, W, 3)`` uint8 RGB at the clip's resolution). Write them with
        :class:`colorkit.data.video.VideoWriter`; ``colorkit colorize clip.mp4`` does it
        all. Needs the ``video`` extra for video files. ``scene_threshold``: see
        :class:`colorkit.core.sequence.SceneDetector` (default 0.4)."""
        from colorkit.core.sequence import SCENE_THRESHOLD
        from colorkit.data.video_colorize import VideoColorization

        return VideoColorization(self, source, k=k, mode=mode, seed=seed, fps=fps, max_pixels=max_pixels,
                                 scene_threshold=SCENE_THRESHOLD if scene_threshold is None else scene_threshold)


def load(run_dir: str | Path | None = None, device: str = "auto",
         options: dict[str, Any] | None = None) -> Colorizer:
    """``colorkit.load(run_dir).colorize(image, k=5)``; ``colorkit.load()`` is the bundled
    demo model (see :data:`DEMO_MODEL_DIR`); ``options``: sampling settings
    (``{"mode": "mixture", "variance": 0.05}``, see :class:`Colorizer`)."""
    return Colorizer(run_dir, device=device, options=options)
