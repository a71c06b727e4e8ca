"""colorkit: diverse image colorization (Deshpande et al., "Learning Diverse Image
Colorization", CVPR 2017), its baselines, and a benchmark of diversity against error."""

from __future__ import annotations

from colorkit.api import (  # noqa: E402
    create_backbone,
    create_decoder_loss,
    create_embedder,
    create_method,
    create_metric,
    list_backbones,
    list_datasets,
    list_decoder_losses,
    list_embedders,
    list_methods,
    list_metrics,
)
from colorkit.core.environment import __version__  # noqa: E402
from colorkit.core.plugin_manager import hookimpl  # noqa: E402
from colorkit.core.registry import ColorkitError  # noqa: E402

# What a plugin author needs, importable from ``colorkit`` (loaded on first use, so that
# ``import colorkit`` and ``colorkit --help`` stay fast).
_I = "colorkit.core.interfaces"
_LAZY = {
    **{name: _I for name in ("Component", "ComponentConfig", "Backbone", "Embedder", "Posterior", "DecoderLoss",
                             "Method", "BuildContext", "Stage", "StageEnd", "StepContext", "Metric", "RatioMetric",
                             "noise",
                             "loading_saved_weights")},
    "ColorStats": "colorkit.core.stats",
    "TrainConfig": "colorkit.train.engine", "Trainer": "colorkit.train.engine",
    **{name: "colorkit.train.config" for name in ("DataConfig", "StatsConfig", "MethodSpec", "RunConfig",
                                                  "SampleConfig")},
    "check_component": "colorkit.testing.contract",
    # the workflow, for scripts and downstream packages (docs/quickstart.md, "From Python")
    "prepare": "colorkit.data",
    "default_cache_dir": "colorkit.data",
    "to_model_space": "colorkit.core.color",
    "from_model_space": "colorkit.core.color",
    "registry": "colorkit.core.plugin_manager",
    # colour hints (docs/hints.md)
    **{name: "colorkit.core.hints" for name in ("Hint", "hint_map", "hints_from_json", "load_hints_file",
                                                "parse_hint", "sample_with_hints", "simulate_hints")},
    "propagate_residual": "colorkit.core.propagate",
    # colorizing: a loaded model (colorkit.load), a folder and a clip into files
    "Colorizer": "colorkit.inference.colorizer",
    "colorize_folder": "colorkit.apps.folder",
    "colorize_clip": "colorkit.apps.video",
    # any kind by name, and a component defined in this process (colorkit/api.py)
    **{name: "colorkit.api" for name in ("create", "list", "register", "unregister")},
    # a data set's archive into the cache (docs/quickstart.md, "Data sets")
    "fetch": "colorkit.data.recipes",
    # a component whose tensors come from elsewhere (an installed package's weights)
    "ExternalWeights": "colorkit.core.interfaces",
}

_LAZY_MODULES = {"distributed": "colorkit.core.distributed", "train": "colorkit.train"}
"""Modules a plugin author uses: ``from colorkit import distributed as D`` (rank, world size,
all-reduce helpers). ``colorkit.train`` is the training package, and calling it trains:
``colorkit.train("mdn", out="runs/mdn")`` (:func:`colorkit.train.runs.train`)."""


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        import importlib

        value = importlib.import_module(_LAZY_MODULES[name])
        globals()[name] = value
        return value
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'colorkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """Every public name, the lazily loaded ones included (tab completion, ``dir(colorkit)``)."""
    return sorted({*globals(), *__all__, *_LAZY_MODULES})


def load(run_dir=None, device: str = "auto", options: dict | None = None):
    """Load a trained run: ``colorkit.load("runs/mdn").colorize("photo.jpg", k=5)``;
    ``options``: sampling settings such as ``{"mode": "mixture"}``.

    With no argument, the bundled demo model: the ``mdn`` method (``small`` preset)
    trained only on the ~300 small (64x64) shipped demo photos, in half precision. It
    works out of the box; it is not a model trained on a large data set."""
    from colorkit.inference import load as _load

    return _load(run_dir, device=device, options=options)


def color_stats(dataset, config=None, **options):
    """The colour statistics (PCA of the ab fields, colourfulness weights) of a prepared data
    set's training split, computed once and cached next to it: ``colorkit.color_stats(ds)``.
    ``config``: a :class:`~colorkit.train.config.StatsConfig` (or its fields as keywords)."""
    from colorkit.core.stats import load_or_compute_stats

    return load_or_compute_stats(dataset, config, **options)


def bench(methods, **settings) -> dict:
    """What ``colorkit bench`` does, from Python: train (or reuse, ``runs=[...]``) each method,
    score them and the reference methods on the same test images, write the tables into
    ``out``; returns the content of ``results.json``.

    ``methods``: names (``"mdn,cvae"`` or a list); ``settings``: the fields of
    :class:`~colorkit.eval.bench.BenchConfig` (``dataset=``, ``preset=``, ``epochs=``,
    ``k=``, ``seeds=``, ``runs=``, ``out=``, ``progress=``, ...)."""
    from colorkit.eval.bench import BenchConfig, run_bench

    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    return run_bench(BenchConfig(methods=[*methods], **settings))  # colorkit.list is the registry's


__all__ = [
    "load",
    "bench",
    "color_stats",
    "__version__",
    "ColorkitError",
    "hookimpl",
    "create_backbone",
    "create_decoder_loss",
    "create_embedder",
    "create_method",
    "create_metric",
    "list_backbones",
    "list_datasets",
    "list_decoder_losses",
    "list_embedders",
    "list_methods",
    "list_metrics",
    *_LAZY,
    *_LAZY_MODULES,
]
