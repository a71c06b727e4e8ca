"""The base classes of metrics (part of the plugin API, importable from
:mod:`colorkit.core.interfaces` and ``colorkit``): :class:`Metric`, a streaming mean over
images, and :class:`RatioMetric`, a ratio of sums."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from colorkit.core.stats import ColorStats


def _registered_name(cls: type, kind: str) -> str:
    from colorkit.core.plugin_manager import registered_name

    return registered_name(cls, kind)


class Metric(ABC):
    """A streaming metric (torchmetrics-style): ``update`` accumulates sums, ``compute``
    reduces them (summing the state across processes when torch.distributed is
    initialised), ``reset`` clears. ``higher_is_better`` and ``units`` describe the value.

    ``update(samples (B,k,2,H,W), target (B,2,H,W), grey (B,1,H,W))`` with ab / 128 and L / 100.

    Writing one (see docs/plugin-tutorial.md): the constructor takes ``stats`` (the data
    set's :class:`~colorkit.core.stats.ColorStats`, or ``None``); set the class attributes
    ``units`` (written beside every value the bench reports) and ``higher_is_better``.
    For a mean over images implement only :meth:`per_image`: the base ``update`` sums
    its values into ``total``/``count``, ``compute`` divides after summing both across
    processes, and the bench adds a bootstrap interval over images. For anything else
    (a ratio of sums: :class:`RatioMetric`; a statistic of pooled data) override
    ``reset`` (create the state tensors), ``update`` and ``compute`` together, keep the
    state as sums that add across batches and processes, and reduce them with
    :func:`colorkit.core.distributed.all_reduce_sum` in ``compute``.
    """

    kind: ClassVar[str] = "metric"
    higher_is_better: ClassVar[bool | None] = None
    units: ClassVar[str] = "ab/128"
    registry_name: str = ""
    uses_meta: ClassVar[bool] = False
    """When true, ``update(samples, target, grey, meta=records)`` also takes the batch's
    per-image metadata (:mod:`colorkit.data.meta`); such a metric is skipped on data sets
    without metadata, and names in ``contract_dataset`` a data set with metadata for the
    contract checks."""
    contract_dataset: ClassVar[str | None] = None
    """A data set spec with per-image metadata for the contract checks of a ``uses_meta``
    metric; ``None`` for others."""
    mean_of_images: ClassVar[bool] = True
    """The value is the mean of :meth:`per_image` over images (the bench then bootstraps it
    over images); ``False`` for a metric whose ``compute`` is anything else."""

    def __init__(self, stats: ColorStats | None = None) -> None:
        self.stats = stats
        self.registry_name = _registered_name(type(self), self.kind) or self.registry_name
        self.reset()

    def reset(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)

    @abstractmethod
    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor) -> Tensor:
        """The metric's value for each image, ``(B,)``; ``update`` sums these."""

    def update(self, samples: Tensor, target: Tensor, grey: Tensor) -> None:
        vals = self.per_image(samples, target, grey).detach().double().cpu()
        self.total += vals.sum()
        self.count += vals.numel()

    def compute(self) -> float:
        from colorkit.core.distributed import all_reduce_sum

        total, count = all_reduce_sum(torch.stack([self.total, self.count]))
        return float(total / count) if count > 0 else math.nan


class RatioMetric(Metric):
    """A metric that is a ratio of sums over all images, e.g. "fraction of pixels that
    ..." where images have different numbers of counted pixels: ``per_image_parts``
    returns a numerator and a denominator per image, ``update`` sums both, ``compute``
    sums them over every process (under torch.distributed) and divides once, so the
    value is the same however the images are split into batches and processes (a mean
    of per-batch or per-process ratios would not be). ``nan`` when the denominator is 0.
    The bench reports it without a bootstrap interval (it is not a mean over images)."""

    mean_of_images: ClassVar[bool] = False

    def reset(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64)  # numerator
        self.count = torch.zeros((), dtype=torch.float64)  # denominator

    @abstractmethod
    def per_image_parts(self, samples: Tensor, target: Tensor, grey: Tensor) -> tuple[Tensor, Tensor]:
        """``(numerator (B,), denominator (B,))`` of each image."""

    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor) -> Tensor:
        num, den = self.per_image_parts(samples, target, grey)
        return num / den

    def update(self, samples: Tensor, target: Tensor, grey: Tensor) -> None:
        num, den = self.per_image_parts(samples, target, grey)
        self.total += num.detach().double().sum().cpu()
        self.count += den.detach().double().sum().cpu()

    def compute(self) -> float:
        from colorkit.core.distributed import all_reduce_sum

        total, count = all_reduce_sum(torch.stack([self.total, self.count]))
        return float(total / count) if count > 0 else math.nan
