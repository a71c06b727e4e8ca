"""colorkit's core components, registered through the same hooks as any plugin:
the shipped ``demo`` data set, the paper's data set recipes (``lfw``, ``lsun-church``,
``imagenet-val``) and the benchmark metrics."""

from __future__ import annotations

from pathlib import Path

from colorkit.core.plugin_manager import hookimpl

DEMO_DIR = Path(__file__).parent / "demo_data" / "images"


def demo_dataset() -> Path:
    """The shipped demo set: real colour photographs (see colorkit/demo_data/README.md)."""
    return DEMO_DIR


@hookimpl
def register_datasets(register) -> None:
    register("demo", demo_dataset, description="shipped demo set of permissively licensed colour photographs")
    from colorkit.data.recipes import RECIPES, recipe_factory

    for name, recipe in RECIPES.items():  # fetched first: `colorkit data fetch NAME`
        register(name, recipe_factory(name), description=recipe.description)


@hookimpl
def register_metrics(register) -> None:
    from colorkit.metrics import METRIC_CLASSES

    for cls in METRIC_CLASSES:
        register(cls.registry_name, cls)
