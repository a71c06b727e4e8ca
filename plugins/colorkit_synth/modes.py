"""Mode metrics of the ``synth`` data set: do the k colorizations cover the image's
possible themes (``mode_recall``), is each a valid theme (``mode_precision``), and is
each object one colour (``coherence``)?

Per image and colorization, every *region* (the background and each object, from the
image's label map) is summarised on its interior (the region eroded by ``size / 32``
pixels, the whole region when that leaves nothing):

* its mean ab, and
* its *spread*: the root mean square distance of the region's ab values to that mean.

A colorization *reproduces* a theme when every region's mean ab lies within
:data:`MODE_TOL` of the colour that theme gives the region (Euclidean distance in the ab
plane). Then

* ``mode_recall`` = (possible themes reproduced by at least one of the k) / min(k, number
  of possible themes);
* ``mode_precision`` = fraction of the k colorizations that reproduce some possible theme;
* ``coherence`` = fraction of (colorization, region) pairs whose spread is at most
  :data:`COHERENCE_TOL`.

Each is a fraction in [0, 1], averaged over images; higher is better. Tolerances are in
ab / 128 units. Modes of one region are at least 0.25 apart (see
:data:`colorkit_synth.world.MIN_SEPARATION`), so a region mean can be within
``MODE_TOL = 0.1`` of at most one mode.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from colorkit.core.interfaces import Metric
from colorkit.core.registry import ColorkitError

MODE_TOL = 0.1
"""Largest distance between a region's mean ab and a theme's colour for a match (ab/128, 12.8 Lab units)."""
COHERENCE_TOL = 0.05
"""Largest RMS spread of ab inside a region for it to count as one colour (ab/128, 6.4 Lab units)."""


def labels_at(labels: Tensor, h: int, w: int) -> Tensor:
    """A label map ``(S, S)`` resized (nearest) to ``(h, w)``, int64."""
    lab = torch.as_tensor(labels)
    if tuple(lab.shape) != (h, w):
        lab = F.interpolate(lab[None, None].float(), size=(h, w), mode="nearest")[0, 0]
    return lab.long()


def region_weights(labels: Tensor, n_regions: int, h: int, w: int) -> tuple[Tensor, Tensor]:
    """Interior masks ``(R, h, w)`` float and a ``(R,)`` bool of regions present at this size."""
    lab = labels_at(labels, h, w)
    if lab.min() < 0 or lab.max() >= n_regions:
        raise ColorkitError(f"label map has values {int(lab.min())}-{int(lab.max())}; expected 0-{n_regions - 1}")
    masks = F.one_hot(lab, n_regions).permute(2, 0, 1).float()  # (R, h, w)
    e = max(1, round(h / 32))
    eroded = 1.0 - F.max_pool2d(1.0 - masks[None], 2 * e + 1, stride=1, padding=e)[0]
    use = torch.where(eroded.flatten(1).sum(1, keepdim=True)[..., None] > 0, eroded, masks)
    return use, masks.flatten(1).sum(1) > 0


def check_record(rec: Any) -> None:
    if not isinstance(rec, dict) or "labels" not in rec or not isinstance(rec.get("themes"), list) or not rec["themes"]:
        raise ColorkitError("mode metrics need synth metadata per image (a 'labels' map and a list of 'themes'); "
                            "use them on a synth data set")


def region_summaries(samples: Tensor, rec: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """Each present region's interior summarised in one image's colorizations ``(k, 2, H, W)``:
    ``(means (k, R', 2), spreads (k, R'), regions (R',))``, ``regions`` the indices of the
    regions present at this size (0 is the background)."""
    check_record(rec)
    _, _, h, w = samples.shape
    n_regions = len(rec["themes"][0]["ab"])
    wts, present = region_weights(rec["labels"], n_regions, h, w)  # (R, h, w), (R,)
    wts = wts[present]
    x = samples.float().cpu()
    cnt = wts.flatten(1).sum(1)  # (R',)
    means = torch.einsum("kchw,rhw->krc", x, wts) / cnt[None, :, None]  # (k, R', 2)
    sq = torch.einsum("khw,rhw->kr", x.pow(2).sum(1), wts) / cnt[None]  # (k, R')
    spread = (sq - means.pow(2).sum(-1)).clamp_min(0).sqrt()  # (k, R')
    return means, spread, present.nonzero()[:, 0]


def image_scores(samples: Tensor, rec: dict[str, Any]) -> tuple[float, float, float]:
    """``(recall, precision, coherence)`` of one image's colorizations ``(k, 2, H, W)``."""
    means, spread, regions = region_summaries(samples, rec)
    k = samples.shape[0]
    colours = torch.tensor([g["ab"] for g in rec["themes"]], dtype=torch.float32)[:, regions]  # (G, R', 2)
    dist = (means[:, None] - colours[None]).norm(dim=-1)  # (k, G, R')
    match = (dist <= MODE_TOL).all(dim=-1)  # (k, G)
    g = colours.shape[0]
    recall = float(match.any(0).sum()) / min(k, g)
    precision = float(match.any(1).float().mean())
    coherence = float((spread <= COHERENCE_TOL).float().mean())
    return recall, precision, coherence


class _ModeMetric(Metric):
    uses_meta: ClassVar[bool] = True
    higher_is_better: ClassVar[bool | None] = True
    units: ClassVar[str] = "fraction (0-1)"
    contract_dataset: ClassVar[str] = "synth:n=24,size=32"
    which: ClassVar[int] = 0

    def per_image(self, samples: Tensor, target: Tensor | None, grey: Tensor | None,
                  meta: list[dict[str, Any]] | None = None) -> Tensor:
        if meta is None:
            raise ColorkitError(f"metric {self.registry_name!r} needs the batch's metadata (meta=...); "
                                "use it on a data set with per-image themes such as synth")
        if samples.dim() != 5 or samples.shape[2] != 2 or len(meta) != samples.shape[0]:
            raise ColorkitError(f"metric {self.registry_name!r}: expected samples (B, k, 2, H, W) and B metadata "
                                f"records; got {tuple(samples.shape)} and {len(meta)} records")
        return torch.tensor([image_scores(s, rec)[self.which] for s, rec in zip(samples, meta)], dtype=torch.float64)

    def update(self, samples: Tensor, target: Tensor | None, grey: Tensor | None,
               meta: list[dict[str, Any]] | None = None) -> None:
        vals = self.per_image(samples, target, grey, meta)
        self.total += vals.sum()
        self.count += vals.numel()


class ModeRecall(_ModeMetric):
    """Fraction of an image's possible themes that at least one of the k colorizations
    reproduces (every region's mean ab within 0.1 ab/128 of the theme's colour), divided
    by min(k, number of themes); synth data sets only."""

    registry_name = "mode_recall"
    which = 0


class ModePrecision(_ModeMetric):
    """Fraction of the k colorizations that reproduce some possible theme of the image;
    synth data sets only."""

    registry_name = "mode_precision"
    which = 1


class Coherence(_ModeMetric):
    """Fraction of (colorization, region) pairs whose ab spread (RMS distance to the
    region's mean) is at most 0.05 ab/128: one colour per object; synth data sets only."""

    registry_name = "coherence"
    which = 2


MODE_METRICS = (ModeRecall, ModePrecision, Coherence)
