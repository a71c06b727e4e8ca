"""Inference: a trained model colorizing photos and clips.

:func:`load` gives a :class:`Colorizer` (:mod:`colorkit.inference.colorizer`);
:mod:`~colorkit.inference.photo` colorizes photos at their own resolution,
:mod:`~colorkit.inference.output` writes them (formats, the threaded writer),
:mod:`~colorkit.inference.grid` draws the grids, and :mod:`~colorkit.inference.clip`
colorizes clips frame by frame. ``Colorizer`` and ``load`` are imported on first use, so
that the lighter modules load without the training package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from colorkit.inference.colorizer import Colorizer, load

__all__ = ["Colorizer", "load"]


def __getattr__(name: str):
    if name in __all__:
        from colorkit.inference import colorizer as module

        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'colorkit.inference' has no attribute {name!r}")
