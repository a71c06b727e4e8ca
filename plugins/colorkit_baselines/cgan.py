"""cGAN baseline of Deshpande et al. (CVPR 2017), section 5: pix2pix (Isola et al. 2017).

Training (one stage, two optimizers, pix2pix's order and settings):

* ``D``: 0.5 * [ BCE(D(G, C), 1) + BCE(D(G, f(G)), 0) ] on PatchGAN logits (``gan_loss
  = "bce"``, pix2pix's vanilla GAN; ``"lsgan"`` uses squared errors to 1 / 0 instead);
* ``G``: BCE(D(G, f(G)), 1) + ``l1_weight`` * mean |C - f(G)|, with ``l1_weight`` = 100;
* Adam, lr 2e-4, betas (0.5, 0.999), for both.

Test (section 5): dropout is the only noise and stays on (``dropout_at_test``); each of the
``num_samples`` = 256 draws is a forward pass with fresh dropout masks from the sampling
generator (the grey batch is repeated along the batch axis, ``sample_batch`` images per
pass), then k-means to k (see :mod:`.sampling`). BatchNorm uses its running statistics at
test time (eval mode): the repeated batch would otherwise be normalised with statistics of
copies of one image, and results would depend on how samples are chunked.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from colorkit.core.interfaces import Stage, StepContext
from colorkit.core.registry import ColorkitError

from .pix2pix import PatchDiscriminator, UNetGenerator
from .sampling import SampledConfig, SampledMethod


class CGANConfig(SampledConfig):
    width: int = Field(64, ge=1, description="generator width ngf (pix2pix: 64)")
    d_width: int = Field(64, ge=1, description="discriminator width ndf (pix2pix: 64)")
    d_layers: int = Field(3, ge=1, description="PatchGAN strided layers (3: the 70x70 PatchGAN)")
    dropout: float = Field(0.5, ge=0, lt=1)
    dropout_blocks: int = Field(3, ge=0, description="decoder blocks with dropout (pix2pix: 3)")
    dropout_at_test: bool = Field(True, description="keep dropout on when sampling (the only noise)")
    gan_loss: Literal["bce", "lsgan"] = "bce"
    l1_weight: float = Field(100.0, ge=0, description="lambda of the L1 term (pix2pix: 100)")
    lr: float = Field(2e-4, gt=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.5, 0.999)


class CGAN(SampledMethod):
    """pix2pix cGAN baseline (paper 5): dropout-noise samples, k-means centres."""

    Config = CGANConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        # small: ~350 images/s per training step on 2 CPU cores (uncontended), so 100 epochs
        # of ~270 images of 64x64 take ~80 s.
        "small": {"width": 16, "d_width": 16, "epochs": 100, "batch_size": 32},
        "tiny": {"width": 4, "d_width": 4, "epochs": 1, "batch_size": 8, "num_samples": 16},
    }
    config: CGANConfig

    def __init__(self, config: CGANConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        c = self.config
        if c.image_size & (c.image_size - 1):
            raise ColorkitError(
                f"cgan needs a power-of-two image_size (its U-Net halves it down to 1x1); got image_size={c.image_size}"
            )
        self.G = UNetGenerator(c.image_size, c.width, c.dropout, c.dropout_blocks, c.dropout_at_test)
        self.D = PatchDiscriminator(c.d_width, c.d_layers)

    def forward(self, grey: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One colorization per grey image (B,1,S,S) -> (B,2,S,S), dropout from ``generator``."""
        return self.G(grey, generator)

    def _gan(self, logits: Tensor, real: bool) -> Tensor:
        target = torch.full_like(logits, 1.0 if real else 0.0)
        if self.config.gan_loss == "lsgan":
            return F.mse_loss(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)

    def stages(self) -> list[Stage]:
        c = self.config

        def adam(module: torch.nn.Module) -> torch.optim.Optimizer:
            return torch.optim.Adam(module.parameters(), lr=c.lr, betas=c.betas)

        def step(batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
            grey, ab = batch["grey"], batch["ab"]
            fake = self.G(grey, ctx.generator)  # (B, 2, S, S)
            d_loss = 0.5 * (self._gan(self.D(grey, ab), True) + self._gan(self.D(grey, fake.detach()), False))
            ctx.optimize("D", d_loss)
            self.D.requires_grad_(False)  # G's step: no gradients into D
            try:
                g_gan = self._gan(self.D(grey, fake), True)
                l1 = (fake - ab).abs().mean()
                g_loss = g_gan + c.l1_weight * l1
                ctx.optimize("G", g_loss)
            finally:
                self.D.requires_grad_(True)
            return {"loss": g_loss.detach(), "d_loss": d_loss.detach(), "g_gan": g_gan.detach(), "l1": l1.detach()}

        return [Stage(
            name="cgan", modules={"G": self.G, "D": self.D},
            make_optimizers=lambda: {"G": adam(self.G), "D": adam(self.D)},
            step=step, epochs=c.epochs, batch_size=c.batch_size,
        )]

    def draw(self, grey: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        b = grey.shape[0]
        out = self.G(grey.repeat_interleave(n, 0), generator)  # (B*n, 2, S, S)
        return out.unflatten(0, (b, n))  # (B, n, 2, S, S)
