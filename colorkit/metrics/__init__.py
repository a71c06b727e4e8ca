"""Metrics of diverse colorization (Deshpande et al., CVPR 2017, section 7) and beyond.

Registered (see :func:`colorkit.list_metrics`), each a streaming
:class:`colorkit.core.interfaces.Metric` with a functional form in
:mod:`colorkit.metrics.functional` that documents the exact definition:

=====================  ============================================  ==========================
name                   what                                          units
=====================  ============================================  ==========================
``error_of_best``      min over k of the mean abs. error (Table 3)   ab/128
``variance``           variance across the k outputs (Table 3)       (ab/128)^2
``mae_all``            mean abs. error, all pixels (Table 1)         ab/128
``mae_grid``           mean abs. error, central 8x8 grid (Table 1)   ab/128
``wmae_all``           colourfulness-weighted ``mae_all`` (Table 2)  ab/128 x weight
``wmae_grid``          colourfulness-weighted ``mae_grid`` (Table 2) ab/128 x weight
``colorfulness``       Hasler-Suesstrunk M of the outputs            M (0-255 RGB)
``colorfulness_gt``    Hasler-Suesstrunk M of the ground truth       M (0-255 RGB)
``pairwise_distance``  mean abs. difference between output pairs     ab/128
``hist_kl``            sym. KL of pooled ab histograms vs truth      nats
``grad_log_ratio``     log2 ab gradient energy, outputs / truth      log2 ratio
``colorfulness_diff``  colourfulness of outputs minus truth's        M (0-255 RGB)
=====================  ============================================  ==========================

``mae_all`` is also the realism counterpart of ``error_of_best``: the mean error over *all*
k outputs, which a method cannot lower by spreading its guesses.

Inputs: ``samples (B, k, 2, H, W)``, ``target (B, 2, H, W)`` in ab / 128, ``grey (B, 1, H, W)``
in L / 100; the weighted errors need ``stats`` (:class:`colorkit.core.stats.ColorStats`).

.. code-block:: python

    from colorkit.metrics import MetricCollection, compute_all

    compute_all(["error_of_best", "variance"], samples, target, grey)   # {name: float}

    metrics = MetricCollection(["mae_all", "wmae_all"], stats=stats)
    for samples, target, grey in batches:
        metrics.update(samples, target, grey)
    metrics.compute()                                                   # {name: float}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from colorkit.core.interfaces import Metric
from colorkit.core.registry import ColorkitError
from colorkit.metrics.bootstrap import to_tensor
from colorkit.metrics.classes import (
    METRIC_CLASSES,
    Colorfulness,
    ColorfulnessDiff,
    ColorfulnessGT,
    ErrorOfBest,
    GradLogRatio,
    HistKL,
    MAEAll,
    MAEGrid,
    PairwiseDistance,
    SampleMetric,
    Variance,
    WMAEAll,
    WMAEGrid,
)
from colorkit.metrics.functional import central_grid_indices


def declares(metric: Any, attr: str = "units") -> bool:
    """Whether a metric class (or instance) sets ``attr`` itself or in a base class of its
    own; the values on colorkit's base classes (``units = "ab/128"``) are only fallbacks,
    so a metric that declares no units is not taken to be in ab / 128."""
    from colorkit.core.interfaces import RatioMetric

    cls = metric if isinstance(metric, type) else type(metric)
    fallbacks = set(RatioMetric.__mro__) | set(SampleMetric.__mro__)
    return any(attr in vars(c) for c in getattr(cls, "__mro__", ()) if c not in fallbacks)

if TYPE_CHECKING:  # pragma: no cover
    from colorkit.core.stats import ColorStats

__all__ = [
    "METRIC_CLASSES",
    "declares",
    "Colorfulness",
    "ColorfulnessDiff",
    "ColorfulnessGT",
    "ErrorOfBest",
    "GradLogRatio",
    "HistKL",
    "MAEAll",
    "MAEGrid",
    "MetricCollection",
    "PairwiseDistance",
    "SampleMetric",
    "Variance",
    "WMAEAll",
    "WMAEGrid",
    "central_grid_indices",
    "compute_all",
]


class MetricCollection:
    """Several metrics updated together: ``update`` feeds each, ``compute`` returns
    ``{name: float}`` (each reduced across processes when distributed), ``reset`` clears all.

    ``metrics``: registered names (built with ``colorkit.create_metric(name, stats=stats)``,
    so plugin metrics work too), :class:`Metric` instances (keyed by their
    ``registry_name``), or a mapping ``{name: name or Metric}``. Names must be unique.

    ``keep_per_image=True`` also keeps the value of every image for the metrics that are a
    mean over images (``Metric.mean_of_images``): :meth:`per_image` returns them, and
    ``compute`` gives their mean (this process's images only), for bootstrap intervals.
    """

    def __init__(self, metrics: Iterable[str | Metric] | Mapping[str, str | Metric],
                 stats: ColorStats | None = None, *, keep_per_image: bool = False) -> None:
        from colorkit.core.plugin_manager import registry

        if isinstance(metrics, str):
            metrics = [metrics]
        items = metrics.items() if isinstance(metrics, Mapping) else (
            (m if isinstance(m, str) else m.registry_name, m) for m in metrics)
        self.metrics: dict[str, Metric] = {}
        for key, m in items:
            if not key:
                raise ColorkitError(f"metric {m!r} has no registry_name: pass a mapping {{name: metric}}")
            if key in self.metrics:
                raise ColorkitError(f"metric {key!r} given twice")
            self.metrics[key] = registry("metric").create(m, stats=stats) if isinstance(m, str) else m
        self._kept: dict[str, list[Tensor]] | None = None
        if keep_per_image:
            self._kept = {name: [] for name, m in self.metrics.items() if m.mean_of_images}

    def update(self, samples: Tensor, target: Tensor, grey: Tensor | None = None, meta: list | None = None) -> None:
        """Feed every metric; metrics with ``uses_meta`` get ``meta`` (the batch's per-image
        metadata records) and are skipped when it is ``None``."""
        for name, m in self.metrics.items():
            if m.uses_meta and meta is None:
                continue
            kw = {"meta": meta} if m.uses_meta else {}
            if self._kept is not None and name in self._kept:
                self._kept[name].append(m.per_image(samples, target, grey, **kw).detach())
            else:
                m.update(samples, target, grey, **kw)

    def per_image(self) -> dict[str, Tensor | None]:
        """With ``keep_per_image``: ``{name: (N,) float64 values of the images fed since the
        last reset}`` for the metrics that are a mean over images, ``None`` for the others."""
        if self._kept is None:
            raise ColorkitError("per-image values are kept only with MetricCollection(..., keep_per_image=True)")
        return {name: to_tensor(self._kept[name]) if name in self._kept else None for name in self.metrics}

    def compute(self) -> dict[str, float]:
        out = {}
        for name, m in self.metrics.items():
            if self._kept is not None and name in self._kept:
                v = to_tensor(self._kept[name])
                out[name] = float(v.mean()) if v.numel() else math.nan
            else:
                out[name] = m.compute()
        return out

    def reset(self) -> None:
        for m in self.metrics.values():
            m.reset()
        if self._kept is not None:
            self._kept = {name: [] for name in self._kept}

    def __getitem__(self, name: str) -> Metric:
        return self.metrics[name]

    def __iter__(self):
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def __repr__(self) -> str:
        return f"MetricCollection({', '.join(self.metrics)})"


def compute_all(names: Iterable[str], samples: Tensor, target: Tensor, grey: Tensor | None = None,
                stats: ColorStats | None = None) -> dict[str, float]:
    """Each named metric over one batch: ``{name: mean over the B images}``.

    ``samples (B, k, 2, H, W)``, ``target (B, 2, H, W)`` in ab / 128, ``grey (B, 1, H, W)`` in
    L / 100; ``stats`` for the weighted errors. Reduced across processes when distributed."""
    collection = MetricCollection([names] if isinstance(names, str) else list(names), stats=stats)
    collection.update(samples, target, grey)
    return collection.compute()
