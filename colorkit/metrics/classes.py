"""Streaming metric classes (torchmetrics-style) over sets of k colorizations.

Each class is a :class:`colorkit.core.interfaces.Metric`: ``per_image(samples, target, grey)``
gives ``(B,)`` values through the same private helpers as the functional forms in
:mod:`colorkit.metrics.functional` (which documents the definitions); ``update`` adds their
sum and count to the state, ``compute`` divides the state summed over processes, so the
result is the mean over every image seen by every process. ``compute`` with nothing
updated returns nan.

Shapes: ``samples (B, k, 2, H, W)`` and ``target (B, 2, H, W)`` in ab / 128,
``grey (B, 1, H, W)`` in L / 100 (may be None for metrics that do not use it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from torch import Tensor

from colorkit.core.interfaces import Metric
from colorkit.core.registry import ColorkitError
from colorkit.metrics import functional as F

if TYPE_CHECKING:  # pragma: no cover
    from colorkit.core.stats import ColorStats


class SampleMetric(Metric):
    """Base of colorkit's metrics: the mean over images of :meth:`per_image`.

    ``registry_name`` is the name the metric is registered under; ``needs_stats`` says the
    metric cannot be built without colour statistics; ``needs_grey`` that ``grey`` is used.
    """

    registry_name: str = ""
    needs_stats: ClassVar[bool] = False
    needs_grey: ClassVar[bool] = False

    def __init__(self, stats: ColorStats | None = None) -> None:
        if self.needs_stats:
            if stats is None:
                raise ColorkitError(
                    f"metric {self.registry_name!r} needs colour statistics: pass "
                    "stats=ColorStats (e.g. colorkit.core.stats.ColorStats of the training set)"
                )
            if not callable(getattr(stats, "weight_of", None)):
                raise ColorkitError(
                    f"metric {self.registry_name!r} needs stats with a weight_of(ab) method; "
                    f"got {type(stats).__name__}"
                )
        super().__init__(stats)

    def _check(self, samples: Tensor, target: Tensor | None, grey: Tensor | None) -> None:
        if self.needs_grey and grey is None:
            raise ColorkitError(f"metric {self.registry_name!r} needs the grey image (B, 1, H, W)")
        F.check_samples(samples, target, grey)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.registry_name!r}, images={int(self.count)})"


class ErrorOfBest(SampleMetric):
    """Error-of-best (paper Table 3): per image, the minimum over its k colorizations of the
    mean absolute error over pixels and both channels; averaged over images. ab/128."""

    registry_name = "error_of_best"
    higher_is_better = False
    units = "ab/128"

    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor | None = None) -> Tensor:
        self._check(samples, target, grey)
        return F.error_of_best_per_image(samples, target)


class Variance(SampleMetric):
    """Variance (paper Table 3): per image, the population variance (divisor k) across the
    k colorizations at each pixel and channel, averaged over pixels and channels, then
    images. (ab/128)^2; a proxy for diversity."""

    registry_name = "variance"
    higher_is_better = True
    units = "(ab/128)^2"

    def per_image(self, samples: Tensor, target: Tensor | None = None, grey: Tensor | None = None) -> Tensor:
        self._check(samples, target, grey)
        return F.variance_per_image(samples)


class MAEAll(SampleMetric):
    """Absolute error "All" (paper Table 1): mean |colorization - ground truth| over the k
    colorizations (k = 1 in the paper's ablation), both channels and every pixel. ab/128."""

    registry_name = "mae_all"
    higher_is_better = False
    units = "ab/128"
    grid: ClassVar[bool] = False

    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor | None = None) -> Tensor:
        self._check(samples, target, grey)
        return F.mae_per_image(samples, target, grid=self.grid)


class MAEGrid(MAEAll):
    """Absolute error "Grid" (paper Table 1): as ``mae_all`` over the central 8 x 8 grid of
    pixels of :func:`colorkit.metrics.central_grid_indices`. ab/128."""

    registry_name = "mae_grid"
    grid = True


class WMAEAll(SampleMetric):
    """Weighted absolute error "All" (paper Table 2): mean over the k colorizations, both
    channels and every pixel of ``w * |colorization - ground truth|``, w the colourfulness
    weight of the pixel's ground-truth bin (``stats.weight_of(target)``); not divided by the
    sum of the weights. Needs ``stats``."""

    registry_name = "wmae_all"
    higher_is_better = False
    units = "ab/128 x colourfulness weight"
    needs_stats = True
    grid: ClassVar[bool] = False

    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor | None = None) -> Tensor:
        self._check(samples, target, grey)
        return F.wmae_per_image(samples, target, self.stats, grid=self.grid)


class WMAEGrid(WMAEAll):
    """Weighted absolute error "Grid" (paper Table 2): ``wmae_all`` over the central 8 x 8
    grid of pixels. Needs ``stats``."""

    registry_name = "wmae_grid"
    grid = True


class Colorfulness(SampleMetric):
    """Hasler-Suesstrunk colourfulness M of the colorizations (L from ``grey`` joined with
    each predicted ab, sRGB 0-255), averaged over the k colorizations, then images. Not a
    score by itself: compare it with ``colorfulness_gt``."""

    registry_name = "colorfulness"
    higher_is_better = None
    units = "Hasler-Suesstrunk M (0-255 RGB)"
    needs_grey = True

    def per_image(self, samples: Tensor, target: Tensor | None, grey: Tensor) -> Tensor:
        self._check(samples, target, grey)
        return F.colorfulness_per_image(samples, grey)


class ColorfulnessGT(SampleMetric):
    """Hasler-Suesstrunk colourfulness M of the ground truth (``grey`` joined with
    ``target``, sRGB 0-255), averaged over images: the reference for ``colorfulness``."""

    registry_name = "colorfulness_gt"
    higher_is_better = None
    units = "Hasler-Suesstrunk M (0-255 RGB)"
    needs_grey = True

    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor) -> Tensor:
        if target is None:
            raise ColorkitError(f"metric {self.registry_name!r} needs the ground truth target")
        self._check(samples, target, grey)
        return F.colorfulness_gt_per_image(target, grey)


class PairwiseDistance(SampleMetric):
    """Mean pairwise distance between an image's k colorizations: over pairs i < j, the
    mean absolute difference per pixel and channel; 0 when k = 1. ab/128; diversity."""

    registry_name = "pairwise_distance"
    higher_is_better = True
    units = "ab/128"

    def per_image(self, samples: Tensor, target: Tensor | None = None, grey: Tensor | None = None) -> Tensor:
        self._check(samples, target, grey)
        return F.pairwise_per_image(samples)


class HistKL(SampleMetric):
    """Realism of the colours used: symmetric KL divergence (nats) between the ab histogram
    of the k colorizations pooled together and the ground truth's, over the 23 x 23 ab cells
    (both mixed with 0.1 % of the uniform histogram). 0 when the same colours are used in
    the same proportions."""

    registry_name = "hist_kl"
    higher_is_better = False
    units = "nats (symmetric KL of ab histograms)"

    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor | None = None) -> Tensor:
        self._check(samples, target, grey)
        return F.hist_kl_per_image(samples, target)


class GradLogRatio(SampleMetric):
    """Spatial coherence: log2 of the ab gradient energy of the colorizations (mean over
    k) over that of the ground truth. 0: as smooth as real colour fields; negative:
    smoother (washed-out blobs); positive: noisier (per-pixel speckle)."""

    registry_name = "grad_log_ratio"
    higher_is_better = None
    units = "log2 ratio (0 = ground truth's smoothness)"

    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor | None = None) -> Tensor:
        self._check(samples, target, grey)
        return F.grad_log_ratio_per_image(samples, target)


class ColorfulnessDiff(SampleMetric):
    """Colourfulness against the ground truth: Hasler-Suesstrunk M of the colorizations
    (mean over k) minus M of the ground truth. 0: as colourful; negative: washed out."""

    registry_name = "colorfulness_diff"
    higher_is_better = None
    units = "Hasler-Suesstrunk M (0-255 RGB), difference"
    needs_grey = True

    def per_image(self, samples: Tensor, target: Tensor, grey: Tensor) -> Tensor:
        self._check(samples, target, grey)
        return F.colorfulness_diff_per_image(samples, target, grey)


METRIC_CLASSES: tuple[type[SampleMetric], ...] = (
    ErrorOfBest,
    Variance,
    MAEAll,
    MAEGrid,
    WMAEAll,
    WMAEGrid,
    Colorfulness,
    ColorfulnessGT,
    PairwiseDistance,
    HistKL,
    GradLogRatio,
    ColorfulnessDiff,
)
