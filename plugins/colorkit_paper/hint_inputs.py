"""How ``mdn`` and ``mdn-skip`` read colour hints (see :mod:`colorkit.core.hints`).

A hint map is ``(B, 3, S, S)``: mask, a / 128, b / 128 at the model size. The MDN reads it
area-pooled to its grey features' size (:data:`MDN_HINT_CHANNELS` channels: the fraction
of hinted pixels and the mean hinted ab of each cell), so it can choose codes whose colour
fields agree with the hints. ``mdn-skip``'s decoder reads :func:`decoder_hint_features`
(:data:`DECODER_HINT_CHANNELS` channels) beside the grey image: the hints spread along the
grey image's edges (Levin et al.'s propagation, :mod:`colorkit.core.propagate`) and the
hint map itself, so it learns where a hint's colour holds and where it stops. In training
the hints are simulated from the true colours (:func:`training_hints`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from colorkit.core.hints import simulate_hints, training_hint_counts

MDN_HINT_CHANNELS = 3
DECODER_HINT_CHANNELS = 5
SPREAD_REDUCTION = 2


def decoder_hint_features(grey: Tensor, hints: Tensor) -> Tensor:
    """``grey (B, 1, S, S)``, hint map ``(B, 3, S, S)`` -> ``(B, 5, S, S)``: the hints'
    ab spread along the grey image (zeros for an image without hints), then the map.

    The spread is solved at half the side (S/2, the finest scale the decoder's skips
    read; a quarter of the unknowns, about 8x faster to solve) and enlarged bilinearly."""
    from colorkit.core.hints import resize_hint_map
    from colorkit.core.propagate import propagate

    s = grey.shape[-1]
    half = (max(1, grey.shape[-2] // SPREAD_REDUCTION), max(1, s // SPREAD_REDUCTION))
    g = F.adaptive_avg_pool2d(grey, half)
    h = resize_hint_map(hints.to(grey), half)
    spread = propagate(g, h[:, :1], h[:, 1:]).to(grey)
    spread = F.interpolate(spread, size=grey.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([spread, hints.to(grey)], dim=1)


def training_hints(ab: Tensor, generator: torch.Generator | None) -> Tensor:
    """Simulated hint maps ``(B, 3, S, S)`` for a training batch of true colour fields: a
    random number of points per image (:func:`colorkit.core.hints.training_hint_counts`)
    with the true colour there."""
    counts = training_hint_counts(ab.shape[0], generator=generator)
    return simulate_hints(ab.detach(), counts, generator=generator)
