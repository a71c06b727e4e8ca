"""Entry point ``knn`` (``[project.entry-points.colorkit]`` in pyproject.toml): registers
the k-nearest-neighbour method and the chroma-ratio metric with colorkit."""

from __future__ import annotations

from colorkit import hookimpl

from colorkit_knn import ChromaRatio, KNNColorizer


@hookimpl
def register_methods(register) -> None:
    register("knn", KNNColorizer, description="k-nearest-neighbour colour transfer from a bank of training images")


@hookimpl
def register_metrics(register) -> None:
    register("chroma_ratio", ChromaRatio,
             description="colorization chroma / true chroma (1: as colourful as the truth)")
