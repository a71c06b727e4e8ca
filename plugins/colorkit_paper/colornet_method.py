"""The ``colornet`` reference: the grey-feature colorization CNN used on its own.

``mdn`` feeds the features of a colorization CNN (``colornet``, trained on Zhang et al.'s
ab-bin classification pretext) to its mixture density network. Used on its own, the same
CNN is a colorization method in the style of Zhang et al. (ECCV 2016), with a distribution
over the Q in-gamut ab bins at every pixel of its feature map. Scoring it beside ``mdn``
measures what the global, spatially coherent code adds instead of assuming it.

Sampling, ``(B, k, 2, H, W)`` in ab / 128:

* ``annealed-mean`` (default): Zhang et al.'s single output, the mean of the bin centres
  under the distribution re-tempered to temperature ``T`` (0.38, their choice), repeated
  k times (so its variance is 0);
* ``per-pixel``: k independent draws of a bin at every pixel (``generator``): diversity
  without spatial coherence.

Both are computed at the feature resolution (``image_size / reduction``) and up-sampled
bilinearly to the grey image's size. The backbone is trained by its pretext stage, cached
per data set and schedule, so a bench that also trains ``mdn`` with the same preset trains
it once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor

from colorkit.core.interfaces import ComponentConfig, Method, Stage
from colorkit.core.layers import grey_at_size
from colorkit.core.registry import ColorkitError

from .pretext import PretextBackbone, PretextConfig


class ColorNetMethodConfig(PretextConfig):
    backbone: str = "colornet"
    """A registered backbone with a pretext classifier (``logits(grey)``), e.g. ``colornet``."""
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)
    temperature: float = Field(0.38, gt=0, description="annealed-mean temperature (Zhang et al.: 0.38)")

    @field_validator("backbone")
    @classmethod
    def _has_classifier(cls, v: str) -> str:
        """Checked with the options, before any training (the factory must define ``logits``)."""
        from colorkit.core.plugin_manager import registry

        factory = registry("backbone").get(v).factory
        if not callable(getattr(factory, "logits", None)):
            raise ValueError(f"backbone {v!r} has no pretext classifier (logits); the colornet reference needs one, "
                             "e.g. backbone='colornet' (scope an option to one method with METHOD:KEY=VALUE)")
        return v


# The same pretext schedules as mdn's presets, so both share one cached backbone.
COLORNET_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {"pretext_epochs": 10, "pretext_lr": 1e-3},
    "tiny": {"pretext_epochs": 1, "pretext_batch_size": 8, "pretext_lr": 1e-3},
}


class ColorNetColorizer(PretextBackbone, Method):
    """Reference: the pretext-trained colorization CNN, annealed mean or per-pixel samples."""

    Config: ClassVar[type[ComponentConfig]] = ColorNetMethodConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = COLORNET_PRESETS
    sample_modes: ClassVar[tuple[str, ...]] = ("annealed-mean", "per-pixel")
    sample_options: ClassVar[tuple[str, ...]] = ("temperature",)
    role: ClassVar[str] = "reference"

    def __init__(self, config: ColorNetMethodConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        from colorkit import create_backbone

        c = self.config
        self.backbone = create_backbone(c.backbone, **{"preset": c.preset, **c.backbone_kwargs})
        if not callable(getattr(self.backbone, "logits", None)):
            raise ColorkitError(f"backbone {c.backbone!r} has no pretext classifier (logits); the colornet "
                                "reference needs one, e.g. backbone='colornet'")

    def stages(self) -> list[Stage]:
        pre = self._pretext_stage()
        if pre is None:
            raise ColorkitError(f"backbone {self.config.backbone!r} has no pretext stage to train")
        return [pre]

    def bin_probabilities(self, grey: Tensor) -> Tensor:
        """``(B, Q, h, w)`` probabilities over the in-gamut ab bins at the feature resolution."""
        logits = self.backbone.logits(grey)  # (B, 23*23, h, w)
        in_gamut = self.stats.in_gamut.reshape(-1).to(logits.device).bool()
        return logits[:, in_gamut].float().softmax(dim=1)

    @torch.no_grad()
    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        mode = self.check_mode(mode)
        (h, w), g = grey.shape[-2:], grey_at_size(grey, self.config.image_size)
        was = self.training
        self.eval()
        try:
            p = self.bin_probabilities(g)  # (B, Q, fh, fw)
        finally:
            self.train(was)
        centres = self.stats.class_centers().to(p.device, p.dtype)  # (Q, 2)
        b, q, fh, fw = p.shape
        if mode == "annealed-mean":
            t = p.clamp_min(1e-12).log() / self.config.temperature
            pt = t.softmax(dim=1)
            ab = torch.einsum("bqhw,qc->bchw", pt, centres).unsqueeze(1).expand(b, k, 2, fh, fw)
        else:
            flat = p.permute(0, 2, 3, 1).reshape(-1, q)  # (B*fh*fw, Q)
            draws = torch.multinomial(flat, k, replacement=True, generator=generator)  # (B*fh*fw, k)
            ab = centres[draws].reshape(b, fh, fw, k, 2).permute(0, 3, 4, 1, 2)  # (B, k, 2, fh, fw)
        ab = F.interpolate(ab.reshape(b * k, 2, fh, fw), size=(h, w), mode="bilinear", align_corners=False)
        return ab.reshape(b, k, 2, h, w)
