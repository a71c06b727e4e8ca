"""Entry point ``knn`` (``[project.entry-points.colorkit]`` in pyproject.toml): registers
the k-nearest-neighbour method with colorkit."""

from __future__ import annotations

from colorkit import hookimpl

from colorkit_knn import KNNColorizer


@hookimpl
def register_conditional_models(register) -> None:
    register("knn", KNNColorizer, description="k-nearest-neighbour colour transfer from a bank of training images")
