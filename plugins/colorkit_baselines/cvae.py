"""CVAE baseline of Deshpande et al. (CVPR 2017), sections 5 and 6.3 (Sohn et al. 2015).

A conditional VAE trained on its own: an encoder Q(z | C, G), a grey-level encoder, and a
decoder f(z, G) with U-Net skip connections from the grey encoder; loss KL + L2.

* Grey encoder, 64x64x1 -> C(5,2,128) B -> C(5,2,256) B -> C(5,2,512) B -> C(4,2,d): a
  4x4xd map (paper 6.3). ``C`` is conv -> ReLU, ``B`` batch norm, as the paper writes them.
* Colour encoder, the VAE's (6.1): -> C(5,2,128) B -> C(5,2,256) B -> C(5,2,512) B ->
  C(4,2,1024) B -> F(2d) (mean, log-variance). Choice: it sees the grey image as a third
  input channel (``encoder_sees_grey=True``), so it really is Q(z | C, G) as section 5 and
  Sohn et al. have it; ``False`` gives the VAE encoder on C alone. The paper's dropout on
  fully connected layers is not used (it would add noise to the posterior).
* Decoder input: z (B, d) replicated 4x4, times the grey map (B, d, 4, 4). Then, as the
  VAE's decoder (6.1), C(4,1,1024) B at 4x4, then U(2) C(5,1,512) B -> U(2) C(5,1,256) B ->
  U(2) C(5,1,128) B -> U(2) C(5,1,2) tanh, where each C after an up-sampling also receives
  the grey encoder's map of that resolution (8x8x512, 16x16x256, 32x32x128), concatenated
  along channels (U-Net skips). The 4x4 convolution pads as TensorFlow's ``SAME`` (one
  row/column before, two after), so it keeps the 4x4 size.
* Loss per sample: ||C - f||^2 (summed over pixels and both channels) + ``kl_weight`` * KL,
  averaged over the batch; ``kl_weight`` = 1e-2 as for the paper's VAE.
* Test (6.3): ``num_samples`` = 256 codes z ~ N(0, I) decoded with the fixed grey image,
  k-means to k; the centres are the colorizations (see :mod:`.sampling`).

Sizes scale with ``image_size`` (a multiple of 16): the grey map is image_size/16 square.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from einops import repeat
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from colorkit.core.interfaces import Posterior, Stage, StepContext, noise
from colorkit.core.layers import ConvBlock
from colorkit.core.registry import ColorkitError

from .sampling import SampledConfig, SampledMethod


def conv_relu_bn(cin: int, cout: int, k: int, s: int, bn: bool = True) -> nn.Sequential:
    """The paper's C_ReLU(k, s, cout) [-> B] with symmetric zero padding ``(k - 1) // 2``
    (halves the size at s=2, keeps it at s=1): :class:`colorkit.core.layers.ConvBlock`."""
    return ConvBlock(cin, cout, k, s, bn=bn, padding="symmetric")


class GreyEncoder(nn.Module):
    """Grey (B,1,S,S) -> maps at S/2, S/4, S/8 (widths w) and the S/16 grey map (d channels)."""

    def __init__(self, widths: tuple[int, int, int], d: int) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.blocks = nn.ModuleList([
            conv_relu_bn(1, w1, 5, 2),  # (B, w1, S/2, S/2)
            conv_relu_bn(w1, w2, 5, 2),  # (B, w2, S/4, S/4)
            conv_relu_bn(w2, w3, 5, 2),  # (B, w3, S/8, S/8)
            conv_relu_bn(w3, d, 4, 2, bn=False),  # (B, d, S/16, S/16)
        ])

    def forward(self, grey: Tensor) -> list[Tensor]:
        feats, h = [], grey
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        return feats


class ColourEncoder(nn.Module):
    """ab (B,2,S,S) [+ grey (B,1,S,S)] -> Posterior with mu, logvar (B, d)."""

    def __init__(self, widths: tuple[int, int, int, int], d: int, image_size: int, sees_grey: bool) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.sees_grey = sees_grey
        self.convs = nn.Sequential(
            conv_relu_bn(3 if sees_grey else 2, w1, 5, 2),
            conv_relu_bn(w1, w2, 5, 2),
            conv_relu_bn(w2, w3, 5, 2),
            conv_relu_bn(w3, w4, 4, 2),  # (B, w4, S/16, S/16)
        )
        self.fc = nn.Linear(w4 * (image_size // 16) ** 2, 2 * d)

    def forward(self, ab: Tensor, grey: Tensor) -> Posterior:
        x = torch.cat([ab, grey], 1) if self.sees_grey else ab
        mu, logvar = self.fc(self.convs(x).flatten(1)).chunk(2, dim=1)
        return Posterior(mu, logvar)


class SkipDecoder(nn.Module):
    """(B, d, S/16, S/16) with grey maps [S/8, S/4, S/2] -> ab (B, 2, S, S) in [-1, 1]."""

    def __init__(self, widths: tuple[int, int, int, int], d: int, skip_widths: tuple[int, int, int]) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        w0, w1, w2, w3 = widths
        s1, s2, s3 = skip_widths  # grey encoder widths at S/2, S/4, S/8
        # C(4,1,w0) B at S/16 with TF SAME padding (1 before, 2 after), as the VAE's decoder.
        self.bottleneck = nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(d, w0, 4, 1), nn.ReLU(inplace=True),
                                        nn.BatchNorm2d(w0))
        self.blocks = nn.ModuleList([
            conv_relu_bn(w0 + s3, w1, 5, 1),  # (B, w1, S/8, S/8)
            conv_relu_bn(w1 + s2, w2, 5, 1),  # (B, w2, S/4, S/4)
            conv_relu_bn(w2 + s1, w3, 5, 1),  # (B, w3, S/2, S/2)
        ])
        self.out = nn.Conv2d(w3, 2, 5, 1, padding=2)

    def forward(self, h: Tensor, skips: list[Tensor]) -> Tensor:
        h = self.bottleneck(h)  # (B, w0, S/16, S/16)
        for block, skip in zip(self.blocks, skips):
            h = block(torch.cat([self.up(h), skip], 1))
        return torch.tanh(self.out(self.up(h)))  # (B, 2, S, S)


class CVAEConfig(SampledConfig):
    latent_dim: int = Field(64, ge=1, description="d, the code size (paper: 64)")
    grey_widths: tuple[PositiveInt, PositiveInt, PositiveInt] = (128, 256, 512)
    colour_widths: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] = (128, 256, 512, 1024)
    decoder_widths: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] = (1024, 512, 256, 128)
    encoder_sees_grey: bool = Field(True, description="Q(z|C,G): grey as a third encoder input channel")
    kl_weight: float = Field(1e-2, ge=0)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (the paper gives none)")


class CVAE(SampledMethod):
    """Conditional VAE baseline (paper 6.3): 256 samples z ~ N(0, I), k-means centres."""

    Config = CVAEConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        # small: ~100 images/s per training step on 2 CPU cores (uncontended), so 30 epochs
        # of ~270 images of 64x64 take ~80 s.
        "small": {
            "grey_widths": (32, 64, 128), "colour_widths": (32, 64, 128, 256),
            "decoder_widths": (256, 128, 64, 32), "epochs": 30, "batch_size": 32,
        },
        "tiny": {
            "latent_dim": 8, "grey_widths": (4, 8, 8), "colour_widths": (4, 8, 8, 16),
            "decoder_widths": (16, 8, 8, 4), "epochs": 1, "batch_size": 8, "num_samples": 16,
        },
    }
    config: CVAEConfig

    def __init__(self, config: CVAEConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        c = self.config
        if c.image_size % 16:
            raise ColorkitError(f"cvae needs an image_size divisible by 16; got image_size={c.image_size}")
        self.grey_encoder = GreyEncoder(c.grey_widths, c.latent_dim)
        self.colour_encoder = ColourEncoder(c.colour_widths, c.latent_dim, c.image_size, c.encoder_sees_grey)
        self.decoder = SkipDecoder(c.decoder_widths, c.latent_dim, c.grey_widths)

    def decode(self, z: Tensor, feats: list[Tensor]) -> Tensor:
        """z (N, d) with grey-encoder maps of N images -> ab (N, 2, S, S)."""
        *skips, grey_map = feats  # grey_map (N, d, S/16, S/16)
        h = repeat(z, "n d -> n d h w", h=grey_map.shape[2], w=grey_map.shape[3]) * grey_map
        return self.decoder(h, skips[::-1])

    def forward(self, ab: Tensor, grey: Tensor,
                generator: torch.Generator | None = None) -> tuple[Tensor, Posterior]:
        """Reconstruction (B, 2, S, S) of ab from z ~ Q(z | C, G) (its mean in eval mode)."""
        post = self.colour_encoder(ab, grey)
        z = post.mu
        if self.training:  # reparameterisation, noise from ``generator``
            eps = noise("normal", tuple(z.shape), generator, z)
            z = z + eps * torch.exp(0.5 * post.logvar)
        return self.decode(z, self.grey_encoder(grey)), post

    def losses(self, ab: Tensor, grey: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        recon, post = self(ab, grey, generator)
        l2 = (recon - ab).pow(2).flatten(1).sum(1)  # (B,)
        kl = post.kl()  # (B,)
        return {"loss": (l2 + self.config.kl_weight * kl).mean(), "l2": l2.mean(), "kl": kl.mean()}

    def stages(self) -> list[Stage]:
        c = self.config

        def step(batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
            out = self.losses(batch["ab"], batch["grey"], ctx.generator)
            ctx.optimize("vae", out["loss"])
            return {k: v.detach() for k, v in out.items()}

        return [Stage(
            name="cvae", modules={"cvae": self},
            make_optimizers=lambda: {"vae": torch.optim.Adam(self.parameters(), lr=c.lr)},
            step=step, epochs=c.epochs, batch_size=c.batch_size,
        )]

    def draw(self, grey: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        b = grey.shape[0]
        feats = [f.repeat_interleave(n, 0) for f in self.grey_encoder(grey)]  # (B*n, ...)
        z = noise("normal", (b * n, self.config.latent_dim), generator, grey)  # (B*n, d)
        return self.decode(z, feats).unflatten(0, (b, n))  # (B, n, 2, S, S)
