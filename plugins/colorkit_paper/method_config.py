"""The configuration of the ``mdn`` and ``mdn-skip`` methods (:mod:`colorkit_paper.method`):
every field with its meaning, the checks across fields, and the three presets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from colorkit.core.interfaces import loading_saved_weights

from .decoder_losses import WeightedDecoderLoss, check_decoder_loss_names
from .losses import PAPER_WEIGHTS
from .mdn import PAPER_WIDTHS, VARIANCE
from .pretext import PretextConfig

MAX_VARIANCE = 10.0


class MDNConfig(PretextConfig):
    latent_dim: int = Field(64, ge=1)
    """d, the size of the colour-field embedding (paper: 64)."""
    embedder: str = "vae"
    embedder_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra config of the embedder (e.g. ``widths``); its preset is the method's."""
    backbone: str = "effnet-lite0"
    """Any registered backbone: ``effnet-lite0`` (ImageNet-trained, frozen), ``colornet``
    (trained on the data set's pretext) or ``timm:resnet18`` ..."""
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra config of the backbone, e.g. ``{"levels": [3, 4]}`` for ``effnet-lite0`` (the
    ``small`` preset of ``mdn-skip``). Given, it replaces the preset's (keep ``levels`` in it
    to keep them); a preset's are left out when another backbone is named."""
    components: int = Field(8, ge=1)
    variance: float = Field(VARIANCE, gt=0, le=MAX_VARIANCE, allow_inf_nan=False)
    """Fixed spherical variance sigma^2 of every GMM component (paper: .1); at most 10 (the
    codes' prior is N(0, I): beyond that, samples leave it and decode to black)."""
    mdn_widths: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt] = PAPER_WIDTHS
    mdn_fc: int = Field(4096, ge=1)
    mdn_dropout: float = Field(0.5, ge=0, lt=1)
    decoder_loss: dict[str, float] = Field(default_factory=lambda: dict(PAPER_WEIGHTS))
    """The VAE's decoder loss: registered decoder-loss names and their weights (eq. 4 by
    default: ``hist`` + 0.1 ``mah`` + 1e-3 ``grad``); a single name means weight 1, e.g.
    ``--option decoder_loss=l2`` or a plugin's loss. See ``colorkit plugins --kind decoder_loss``."""
    decoder_loss_kwargs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Config fields of the named decoder losses, ``{name: {field: value}}``."""
    loss_impl: Literal["auto", "torch", "triton"] = "auto"
    """Implementation of the paper's loss terms: torch, the fused Triton kernel, or auto."""
    kl_weight: float = Field(1e-2, ge=0)
    """KL weight relative to the decoder loss (paper: 1e-2)."""
    vae_epochs: int = Field(10, ge=0)
    vae_batch_size: int = Field(32, ge=1)
    vae_lr: float = Field(5e-4, gt=0)
    """Adam learning rate of the VAE (1e-3 and above made the KL term spike on small data)."""
    vae_lr_schedule: Literal["constant", "cosine"] = "constant"
    """``cosine``: the VAE's learning rate decays from ``vae_lr`` to 0 over its stage."""
    mdn_epochs: int = Field(10, ge=0)
    mdn_batch_size: int = Field(32, ge=1)
    mdn_lr: float = Field(1e-3, gt=0)
    mdn_lr_schedule: Literal["constant", "cosine"] = "constant"
    """``cosine``: the MDN's learning rate decays from ``mdn_lr`` to 0 over its stage."""
    mdn_init: Literal["random", "kmeans"] = "random"
    """``kmeans``: in a stage ``mdn-init`` (no epochs) before the MDN stage, set every
    component's mean to a k-means centre of the training split's VAE codes (output weights
    scaled by 0.1, bias = centre) and the mixture logits to the log cluster sizes, so
    training starts from the best input-agnostic mixture instead of one where a single
    component wins everything."""
    flip: bool = True
    """Random horizontal flips (half of each batch) in the VAE and MDN stages (on the demo
    set they lowered the VAE's held-out reconstruction error by 0.010 ab/128)."""
    crop_scale: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    """Random resized crops in the VAE and MDN stages: each training image is cut to a
    random square covering at least this fraction of its area and resized to
    ``image_size`` (1: no crops). Training images larger than ``image_size`` (a data set
    prepared with ``--size 128``) are resized to it in any case, so crops can come from
    the larger pixels. With crops the MDN stage computes the backbone's features in every
    step (they differ each time)."""
    feature_cache_mb: float = Field(1024, ge=0, allow_inf_nan=False)
    """The MDN stage computes the frozen backbone's features of the training images once
    (and of their mirror images with ``flip``) and keeps them in memory and in the prepared
    data set's ``features/`` folder, when the table fits in this many MiB; 0: compute them
    in every step."""
    reference_codes: int = Field(2048, ge=8, le=65536)
    """The VAE codes (posterior means) of at most this many training images are kept in the
    model (a uniform random subset, float32): ``vae-kmeans`` decodes their k-means centres,
    and ``mdn_init='kmeans'`` starts from them."""
    distinct_radius: float = Field(8.0, ge=0, allow_inf_nan=False)
    """``distinct`` sampling skips a component whose mean lies within this distance (in
    code units, times sqrt(latent_dim / 64)) of one already chosen."""
    hints: bool = False
    """Learn from colour hints (the presets turn it on): every training step draws a random
    number of hint points from the true colours (none for a quarter of the images, else a
    geometric number with mean 8, at most 32), the MDN reads them beside the grey features
    (area-pooled mask and ab) and ``mdn-skip``'s decoder reads them with the grey image
    (the mask, the ab and the hints spread along the grey image), so one model serves 0 to
    many hints (``sample(..., hints=)``). Off: hints reach the model only through the
    generic fallback (the residual at the hints spread after sampling)."""
    hint_residual: bool = True
    """With hints: after decoding, spread each colorization's residual at the hint points
    along the grey image (the generic fallback), so every colorization takes the hint's
    colour at its point."""
    sequence_choice: Literal["scene-mean", "first-frame"] = "scene-mean"
    """Clips: choose each scene's k components from its mean mixture weights over all its
    frames (a first pass over the clip) or from its first frame's (see ``sequence.py``)."""
    sequence_smoothing: float = Field(0.5, ge=0, lt=1, allow_inf_nan=False)
    """Clips: a code follows ``z_t <- a z_{t-1} + (1 - a) z_t`` within a scene (0: none)."""

    @field_validator("decoder_loss", mode="before")
    @classmethod
    def _one_name(cls, v: Any) -> Any:
        return {v: 1.0} if isinstance(v, str) else v

    @field_validator("decoder_loss")
    @classmethod
    def _registered(cls, v: dict[str, float]) -> dict[str, float]:
        if loading_saved_weights():  # training only: a saved run loads without its decoder losses
            return v
        return check_decoder_loss_names(v)

    @model_validator(mode="after")
    def _decoder_losses_build(self) -> MDNConfig:
        """The decoder losses with their ``decoder_loss_kwargs`` are built once here, so a
        bad setting is refused with the options, before any data is prepared."""
        if loading_saved_weights():
            return self
        unknown = sorted(set(self.decoder_loss_kwargs) - set(self.decoder_loss))
        if unknown:
            raise ValueError(f"decoder_loss_kwargs names {', '.join(map(repr, unknown))}, which decoder_loss does "
                             f"not use (it uses {', '.join(map(repr, self.decoder_loss))})")
        WeightedDecoderLoss(self.decoder_loss, self.decoder_loss_kwargs, impl=self.loss_impl)
        return self


METHOD_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"hints": True},
    "small": {  # ~270 training images of 64x64 train in about a minute on 2 CPU cores
        "mdn_widths": (96, 80, 72, 64, 32), "mdn_fc": 512, "mdn_dropout": 0.2,
        "pretext_epochs": 10, "pretext_lr": 1e-3,
        "vae_epochs": 40, "vae_lr": 5e-4, "vae_batch_size": 8, "vae_lr_schedule": "cosine",
        "mdn_epochs": 20, "mdn_lr": 1e-3, "mdn_lr_schedule": "cosine", "mdn_init": "kmeans", "hints": True,
    },
    "tiny": {  # the tests' smallest model: a tiny colornet, no flips
        "backbone": "colornet", "flip": False,
        "latent_dim": 8, "mdn_widths": (8, 8, 8, 8, 8), "mdn_fc": 32, "mdn_dropout": 0.0,
        "pretext_epochs": 1, "pretext_batch_size": 8, "pretext_lr": 1e-3,
        "vae_epochs": 1, "vae_batch_size": 8, "vae_lr": 1e-3,
        "mdn_epochs": 1, "mdn_batch_size": 8, "mdn_lr": 1e-3, "hints": True,
    },
}


MDN_SKIP_PRESETS: dict[str, dict[str, Any]] = {
    **METHOD_PRESETS,
    # The MDN reads a hypercolumn of EfficientNet-Lite0 levels 3 and 4 (docs/synth.md, "Harder
    # worlds": more of a 16-theme world's colourings on three world seeds, the default world
    # and the demo photos unchanged).
    "small": {**METHOD_PRESETS["small"], "backbone_kwargs": {"levels": [3, 4]}},
}


class MDNSkipConfig(MDNConfig):
    embedder: str = "vae-skip"
