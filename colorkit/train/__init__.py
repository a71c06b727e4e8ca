"""Training: the engine (one loop, stage lifecycle hooks, checkpoints, resume) and run
directories (build a method, train it, read the run back; :mod:`colorkit.inference` loads it as
a Colorizer).

The package is also callable: ``colorkit.train("mdn", out="runs/mdn")`` is
:func:`colorkit.train.runs.train` (what ``colorkit train`` does), so scripts need only the
top-level ``colorkit`` names."""

from __future__ import annotations

import sys
import types


class _TrainPackage(types.ModuleType):
    def __call__(self, method: str, **settings):
        """Train ``method`` into a run directory and return it; ``settings``: see
        :func:`colorkit.train.runs.train` (``data=``, ``dataset=``, ``out=``, ``preset=``,
        ``epochs=``, ``seed=``, ``device=``, ``resume=``, ``options=``, ...)."""
        from colorkit.train.runs import train

        return train(method, **settings)


sys.modules[__name__].__class__ = _TrainPackage
