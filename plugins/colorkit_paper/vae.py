"""The colour-field VAE of Deshpande et al. (CVPR 2017), section 6.1, and its "ours+skip"
variant (section 7.3, grey-level encoder of section 6.3 with U-Net skips).

Encoder (paper, ``S = 64``, widths ``w = (128, 256, 512, 1024)``, ``d = 64``)::

    ab (B,2,S,S) -> C(5,2,w0) B -> C(5,2,w1) B -> C(5,2,w2) B -> C(4,2,w3) B   # (B,w3,S/16,S/16)
                 -> F(2d) -> (mu, logvar)                                       # (B,d) each

Decoder::

    z (B,d) -> U(S/16) -> C(4,1,w3) B -> U(2) C(5,1,w2) B -> U(2) C(5,1,w1) B
            -> U(2) C(5,1,w0) B -> U(2) C_tanh(5,1,2)                           # (B,2,S,S)

``U(S/16)`` of a 1x1 map is a replication (the paper's ``U(4)`` at ``S = 64``). Any
``image_size`` that is a power of two >= 16 works; the paper uses 64.

"ours+skip" adds a grey-level encoder ``G (B,1,S,S) -> C(5,2,w0) B -> C(5,2,w1) B ->
C(5,2,w2) B -> C(4,2,d) B`` whose maps (S/2 ... S/16) are concatenated to the decoder's
input at the matching resolution. The colour encoder is unchanged: q(z | C).

Units: ``ab`` = Lab ab / 128, ``grey`` = L / 100.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field, PositiveInt, field_validator
from torch import Tensor, nn

from colorkit.core.interfaces import ComponentConfig, Embedder, Posterior
from colorkit.core.layers import ConvBlock, SameConv2d, is_power_of_two, up2
from colorkit.core.registry import ColorkitError

PAPER_WIDTHS = (128, 256, 512, 1024)


class VAEConfig(ComponentConfig):
    latent_dim: int = Field(64, ge=1)
    """d, the embedding size (paper: 64)."""
    widths: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] = PAPER_WIDTHS
    """Channels of the four encoder convs (the decoder mirrors them)."""
    image_size: int = 64
    """Side of the square colour field, a power of two >= 16 (paper: 64)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout before the encoder's fully connected layer (paper: "FC layers use dropout",
    rate not given; 0 keeps the posterior deterministic given C)."""
    hint_channels: int = Field(0, ge=0, le=16)
    """``vae-skip``: channels of colour-hint maps read by the grey-level encoder beside the
    grey image (0: none; the ``mdn-skip`` method sets it when it learns from hints). The
    plain ``vae`` has no grey-level encoder and ignores it."""

    @field_validator("image_size")
    @classmethod
    def _pow2(cls, v: int) -> int:
        if v < 16 or not is_power_of_two(v):
            raise ValueError(f"image_size must be a power of two >= 16, got {v}")
        return v


VAE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"widths": PAPER_WIDTHS, "latent_dim": 64},
    "small": {"widths": (32, 64, 128, 256), "latent_dim": 64},
    "tiny": {"widths": (8, 16, 16, 32), "latent_dim": 8},
}


class ColourEncoder(nn.Module):
    """``ab (B,2,S,S) -> (mu, logvar)``, each ``(B, d)``."""

    def __init__(self, widths: tuple[int, ...], latent_dim: int, image_size: int, dropout: float) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.convs = nn.Sequential(
            ConvBlock(2, w0, 5, 2), ConvBlock(w0, w1, 5, 2), ConvBlock(w1, w2, 5, 2), ConvBlock(w2, w3, 4, 2)
        )
        side = image_size // 16
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(w3 * side * side, 2 * latent_dim)  # F(2d)

    def forward(self, ab: Tensor) -> tuple[Tensor, Tensor]:
        h = self.convs(ab).flatten(1)  # (B, w3 * (S/16)^2)
        mu, logvar = self.fc(self.drop(h)).chunk(2, dim=1)  # (B, d) each
        return mu, logvar


class GreyEncoder(nn.Module):
    """Section 6.3's grey-level encoder; returns the maps at S/2, S/4, S/8, S/16."""

    def __init__(self, widths: tuple[int, ...], latent_dim: int, hint_channels: int = 0) -> None:
        super().__init__()
        w0, w1, w2, _ = widths
        self.hint_channels = hint_channels
        self.blocks = nn.ModuleList([
            ConvBlock(1 + hint_channels, w0, 5, 2), ConvBlock(w0, w1, 5, 2), ConvBlock(w1, w2, 5, 2),
            ConvBlock(w2, latent_dim, 4, 2),
        ])

    def forward(self, grey: Tensor, hint_feats: Tensor | None = None) -> list[Tensor]:
        maps, h = [], grey - 0.5  # centre L/100 like Zhang et al. (L - 50)
        if self.hint_channels:
            b, _, hh, ww = grey.shape
            extra = grey.new_zeros(b, self.hint_channels, hh, ww) if hint_feats is None else hint_feats.to(grey)
            h = torch.cat([h, extra], dim=1)
        for block in self.blocks:
            h = block(h)
            maps.append(h)
        return maps  # [(B,w0,S/2), (B,w1,S/4), (B,w2,S/8), (B,d,S/16)]


class Decoder(nn.Module):
    """``z (B,d)`` [+ grey-encoder maps] ``-> ab (B,2,S,S)`` in [-1, 1].

    ``skip_channels``: channels concatenated before each of the four ReLU convs, coarsest
    first (S/16, S/8, S/4, S/2); zeros for the plain VAE."""

    def __init__(self, widths: tuple[int, ...], latent_dim: int, image_size: int,
                 skip_channels: tuple[int, int, int, int] = (0, 0, 0, 0)) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        s = skip_channels
        self.side = image_size // 16
        self.blocks = nn.ModuleList([
            ConvBlock(latent_dim + s[0], w3, 4, 1),  # at S/16
            ConvBlock(w3 + s[1], w2, 5, 1),  # at S/8
            ConvBlock(w2 + s[2], w1, 5, 1),  # at S/4
            ConvBlock(w1 + s[3], w0, 5, 1),  # at S/2
        ])
        self.out = SameConv2d(w0, 2, 5, 1)  # C_tanh(5,1,2) at S

    def forward(self, z: Tensor, skips: list[Tensor] | None = None) -> Tensor:
        h = z[:, :, None, None].expand(-1, -1, self.side, self.side)  # U(S/16) of 1x1: (B,d,S/16,S/16)
        for i, block in enumerate(self.blocks):
            if i > 0:
                h = up2(h)
            if skips is not None:
                h = torch.cat([h, skips[i]], dim=1)
            h = block(h)
        return torch.tanh(self.out(up2(h)))  # (B, 2, S, S)


class VAE(Embedder):
    """Colour-field VAE (paper section 6.1): q(z|C) and decoder f(z), d = latent_dim."""

    Config: ClassVar[type[ComponentConfig]] = VAEConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = VAE_PRESETS
    uses_grey = False

    def __init__(self, config: VAEConfig | dict | None = None, **fields: Any) -> None:
        super().__init__(config, **fields)
        c = self.config
        self.latent_dim = c.latent_dim
        self.encoder = ColourEncoder(c.widths, c.latent_dim, c.image_size, c.dropout)
        self.decoder = Decoder(c.widths, c.latent_dim, c.image_size, self._skip_channels())

    def _skip_channels(self) -> tuple[int, int, int, int]:
        return (0, 0, 0, 0)

    def _check(self, x: Tensor, channels: int, what: str) -> None:
        s = self.config.image_size
        if x.dim() != 4 or x.shape[1] != channels or x.shape[-2:] != (s, s):
            raise ColorkitError(
                f"{type(self).__name__} expects {what} of shape (B, {channels}, {s}, {s}); got {tuple(x.shape)}"
            )

    def encode(self, ab: Tensor, grey: Tensor | None = None) -> Posterior:
        self._check(ab, 2, "ab")
        return Posterior(*self.encoder(ab))

    def decode(self, z: Tensor, grey: Tensor | None = None, hint_feats: Tensor | None = None) -> Tensor:
        return self.decoder(z)


class VAESkip(VAE):
    """"ours+skip" (paper section 7.3): the VAE plus a grey-level encoder whose feature maps
    are concatenated into the decoder (U-Net skips); ``decode(z, grey)``."""

    uses_grey = True

    def __init__(self, config: VAEConfig | dict | None = None, **fields: Any) -> None:
        super().__init__(config, **fields)
        self.grey_encoder = GreyEncoder(self.config.widths, self.config.latent_dim, self.config.hint_channels)

    def _skip_channels(self) -> tuple[int, int, int, int]:
        w0, w1, w2, _ = self.config.widths
        return (self.config.latent_dim, w2, w1, w0)

    def decode(self, z: Tensor, grey: Tensor | None = None, hint_feats: Tensor | None = None) -> Tensor:
        """``hint_feats (B, hint_channels, S, S)``: colour-hint maps read with the grey image
        (``None``: no hints, zeros)."""
        if grey is None:
            raise ColorkitError("vae-skip decodes with the grey image: call decode(z, grey)")
        self._check(grey, 1, "grey")
        skips = self.grey_encoder(grey, hint_feats)[::-1]  # coarsest first
        return self.decoder(z, skips)
