"""Hook implementations of the ``synth`` plugin."""

from __future__ import annotations

import os
from pathlib import Path

from colorkit.core.plugin_manager import hookimpl


def synth_dataset(variant: str = "", cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A synthetic world with a known colour distribution (spec: ``synth:seed=3,modes=3,...``),
    generated into ``cache_dir`` (the cache folder in use)."""
    from .world import generate

    return generate(variant, cache_dir=cache_dir)


@hookimpl
def register_datasets(register) -> None:
    register("synth", synth_dataset,
             description="synthetic shapes whose colour modes and themes are known exactly (default spec)")
    register("synth:", synth_dataset,
             description="synth with a spec, e.g. synth:seed=3,classes=5,modes=3,themes=6,n=2000,size=64")


@hookimpl
def register_metrics(register) -> None:
    from .modes import MODE_METRICS

    for cls in MODE_METRICS:
        register(cls.registry_name, cls)


@hookimpl
def register_methods(register) -> None:
    from .oracle import Oracle

    register("oracle", Oracle, description="reference: renders each synth image's true themes, most probable first")


@hookimpl
def register_commands(cli) -> None:
    from .video_bench import bench_video

    cli.add_command(bench_video)
