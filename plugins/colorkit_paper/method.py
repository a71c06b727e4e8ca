"""The method of Deshpande et al. (CVPR 2017): VAE embedding (section 3) + MDN P(z|G)
(section 4) on fixed grey-level features, as colorkit methods ``mdn`` and ``mdn-skip``.

Training stages, in order (each frozen once done):

1. ``colornet`` pretext (section 6.2's fixed colorization CNN; only for a backbone that
   needs training, skipped when a cached one for this data set is found);
2. ``vae``: L_dec (eq. 4, per-sample sum) + ``kl_weight`` * KL (per-sample sum), batch mean;
3. ``mdn``: eq. (6) with z drawn fresh each step from the frozen VAE posterior.

Sampling (``(B, k, 2, H, W)`` in ab/128): ``topk`` decodes the k means with the largest pi
(section 6.2, k <= 8); ``mixture`` draws z from the GMM (component ~ pi, z = mu +
sqrt(0.1) eps). ``mdn-skip`` ("ours+skip", section 7.3) uses the ``vae-skip`` embedder,
whose decoder also sees the grey image.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from colorkit.core.interfaces import ComponentConfig, Method, Stage, StepContext
from colorkit.core.registry import ColorkitError

from .decoder_losses import WeightedDecoderLoss, check_decoder_loss_names
from .layers import grey_at_size
from .losses import PAPER_WEIGHTS
from .mdn import PAPER_WIDTHS, VARIANCE, MixtureDensityNetwork, mdn_loss, sample_mixture, topk_means
from .pretext import PretextBackbone, PretextConfig


class MDNConfig(PretextConfig):
    latent_dim: int = 64
    """d, the size of the colour-field embedding (paper: 64)."""
    embedder: str = "vae"
    embedder_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra config of the embedder (e.g. ``widths``); its preset is the method's."""
    backbone: str = "colornet"
    """Any registered backbone, e.g. ``colornet`` or ``timm:resnet18``."""
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)
    components: int = 8
    variance: float = Field(VARIANCE, gt=0, allow_inf_nan=False)
    """Fixed spherical variance sigma^2 of every GMM component (paper: .1)."""
    mdn_widths: tuple[int, int, int, int, int] = PAPER_WIDTHS
    mdn_fc: int = 4096
    mdn_dropout: float = 0.5
    decoder_loss: dict[str, float] = Field(default_factory=lambda: dict(PAPER_WEIGHTS))
    """The VAE's decoder loss: registered decoder-loss names and their weights (eq. 4 by
    default: ``hist`` + 0.1 ``mah`` + 1e-3 ``grad``); a single name means weight 1, e.g.
    ``--option decoder_loss=l2`` or a plugin's loss. See ``colorkit plugins --kind decoder_loss``."""
    decoder_loss_kwargs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Config fields of the named decoder losses, ``{name: {field: value}}``."""
    loss_impl: Literal["auto", "torch", "triton"] = "auto"
    """Implementation of the paper's loss terms: torch, the fused Triton kernel, or auto."""
    kl_weight: float = 1e-2
    """KL weight relative to the decoder loss (paper: 1e-2)."""
    vae_epochs: int = 10
    vae_batch_size: int = 32
    vae_lr: float = 5e-4
    """Adam learning rate of the VAE (1e-3 and above made the KL term spike on small data)."""
    vae_lr_schedule: Literal["constant", "cosine"] = "constant"
    """``cosine``: the VAE's learning rate decays from ``vae_lr`` to 0 over its stage."""
    mdn_epochs: int = 10
    mdn_batch_size: int = 32
    mdn_lr: float = 1e-3
    mdn_lr_schedule: Literal["constant", "cosine"] = "constant"
    """``cosine``: the MDN's learning rate decays from ``mdn_lr`` to 0 over its stage."""
    mdn_init: Literal["random", "kmeans"] = "random"
    """``kmeans``: in a stage ``mdn-init`` (no epochs) before the MDN stage, set every
    component's mean to a k-means centre of the training split's VAE codes (output weights
    scaled by 0.1, bias = centre) and the mixture logits to the log cluster sizes, so
    training starts from the best input-agnostic mixture instead of one where a single
    component wins everything."""
    flip: bool = False
    """Random horizontal flips (half of each batch) in the VAE and MDN stages."""
    sequence_choice: Literal["scene-mean", "first-frame"] = "scene-mean"
    """Clips: choose each scene's k components from its mean mixture weights over all its
    frames (a first pass over the clip) or from its first frame's (see ``sequence.py``)."""
    sequence_smoothing: float = Field(0.5, ge=0, lt=1, allow_inf_nan=False)
    """Clips: a code follows ``z_t <- a z_{t-1} + (1 - a) z_t`` within a scene (0: none)."""

    @model_validator(mode="before")
    @classmethod
    def _former_names(cls, data: Any) -> Any:
        """Configs saved before ``decoder_loss`` named it ``loss_weights``."""
        if isinstance(data, dict) and "loss_weights" in data and "decoder_loss" not in data:
            data = dict(data)
            data["decoder_loss"] = data.pop("loss_weights")
        return data

    @field_validator("decoder_loss", mode="before")
    @classmethod
    def _one_name(cls, v: Any) -> Any:
        return {v: 1.0} if isinstance(v, str) else v

    @field_validator("decoder_loss")
    @classmethod
    def _registered(cls, v: dict[str, float]) -> dict[str, float]:
        return check_decoder_loss_names(v)


METHOD_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {  # ~270 training images of 64x64 train in about a minute on 2 CPU cores
        "mdn_widths": (96, 80, 72, 64, 32), "mdn_fc": 512, "mdn_dropout": 0.2,
        "pretext_epochs": 10, "pretext_lr": 1e-3,
        "vae_epochs": 40, "vae_lr": 5e-4, "vae_batch_size": 8, "vae_lr_schedule": "cosine",
        "mdn_epochs": 20, "mdn_lr": 1e-3, "mdn_lr_schedule": "cosine", "mdn_init": "kmeans",
    },
    "tiny": {
        "latent_dim": 8, "mdn_widths": (8, 8, 8, 8, 8), "mdn_fc": 32, "mdn_dropout": 0.0,
        "pretext_epochs": 1, "pretext_batch_size": 8, "pretext_lr": 1e-3,
        "vae_epochs": 1, "vae_batch_size": 8, "vae_lr": 1e-3,
        "mdn_epochs": 1, "mdn_batch_size": 8, "mdn_lr": 1e-3,
    },
}


class MDNMethod(PretextBackbone, Method):
    """Deshpande et al.'s diverse colorization: VAE colour embedding + MDN over grey features."""

    Config: ClassVar[type[ComponentConfig]] = MDNConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = METHOD_PRESETS
    sample_modes: ClassVar[tuple[str, ...]] = ("topk", "mixture")
    sample_options: ClassVar[tuple[str, ...]] = ("variance", "sequence_choice", "sequence_smoothing")
    """``variance``: of the Gaussian noise added to a component's mean in ``mixture`` sampling;
    ``sequence_choice``, ``sequence_smoothing``: how clips are colorized (``sequence_sampler``)."""

    def __init__(self, config: MDNConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        from colorkit.api import create_backbone, create_embedder  # registry, at build time only

        c = self.config
        self.backbone = create_backbone(c.backbone, **{"preset": c.preset, **c.backbone_kwargs})
        self.embedder = create_embedder(c.embedder, **{
            "preset": c.preset, "latent_dim": c.latent_dim, "image_size": c.image_size, **c.embedder_kwargs})
        feat = self._feature_shape()  # (C, h, w) of the backbone at image_size
        self.mdn = MixtureDensityNetwork(feat[0], feat[1:], self.embedder.latent_dim, c.components,
                                         c.mdn_widths, c.mdn_fc, c.mdn_dropout)
        self.decoder_loss = WeightedDecoderLoss(c.decoder_loss, c.decoder_loss_kwargs, impl=c.loss_impl)

    def _feature_shape(self) -> tuple[int, int, int]:
        s, was = self.config.image_size, self.backbone.training
        self.backbone.eval()  # BN with batch 1
        with torch.no_grad():
            f = self.backbone(torch.zeros(1, 1, s, s))
        self.backbone.train(was)
        return tuple(f.shape[1:])  # type: ignore[return-value]

    # ------------------------------------------------------------------ training
    def stages(self) -> list[Stage]:
        c = self.config
        stages: list[Stage] = []
        pre = self._pretext_stage()
        if pre is not None:
            stages.append(pre)
        stages.append(Stage(
            name="vae", modules={"vae": self.embedder}, step=self._vae_step, epochs=c.vae_epochs,
            batch_size=c.vae_batch_size,
            make_optimizers=lambda: {"vae": torch.optim.Adam(self.embedder.parameters(), lr=c.vae_lr)},
            lr_schedule=c.vae_lr_schedule,
        ))
        if c.mdn_init == "kmeans":  # its own stage: a resumed MDN stage is never re-initialised
            stages.append(Stage(name="mdn-init", modules={}, make_optimizers=dict, step=_no_step, epochs=0,
                                on_start=self._kmeans_init))
        stages.append(Stage(
            name="mdn", modules={"mdn": self.mdn}, step=self._mdn_step, epochs=c.mdn_epochs,
            batch_size=c.mdn_batch_size, frozen=[self.backbone, self.embedder],
            make_optimizers=lambda: {"mdn": torch.optim.Adam(self.mdn.parameters(), lr=c.mdn_lr)},
            lr_schedule=c.mdn_lr_schedule,
        ))
        return stages

    @torch.no_grad()
    def _kmeans_init(self, train_split: Any, max_images: int = 4096) -> None:
        """Component means at the k-means centres of the training codes (see ``mdn_init``)."""
        from colorkit.core.cluster import kmeans

        n = len(train_split)
        gen = torch.Generator().manual_seed(0)
        pos = torch.randperm(n, generator=gen)[:max_images].sort().values
        was = self.embedder.training
        self.embedder.eval()
        dev = next(self.mdn.parameters()).device
        codes = []
        for start in range(0, pos.numel(), 256):
            b = train_split.batch(pos[start : start + 256])
            g = b["grey"].to(dev) if self.embedder.uses_grey else None
            codes.append(self.embedder.encode(b["ab"].to(dev), g).mu.float())
        self.embedder.train(was)
        z = torch.cat(codes)  # (N, d)
        m = self.config.components
        if z.shape[0] < m:
            raise ColorkitError(f"mdn_init='kmeans' needs at least {m} training images, got {z.shape[0]}")
        res = kmeans(z[None].cpu(), m, generator=gen)
        centers = res.centers[0].to(dev)  # (M, d)
        sizes = torch.bincount(res.labels[0], minlength=m).float().clamp_min(1).to(dev)
        self.mdn.init_output(centers, sizes.log(), weight_scale=0.1)

    def _flip(self, *xs: Tensor) -> tuple[Tensor, ...]:
        """The same random half of the batch mirrored left-right in every tensor."""
        if not self.config.flip:
            return xs
        sel = torch.rand(xs[0].shape[0], device=xs[0].device) < 0.5
        return tuple(torch.where(sel[:, None, None, None], x.flip(-1), x) for x in xs)

    def _vae_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        c = self.config
        ab, grey = self._flip(batch["ab"], batch["grey"])
        g = grey if self.embedder.uses_grey else None
        post = self.embedder.encode(ab, g)
        recon = self.embedder.decode(post.sample(), g)  # (B, 2, H, W)
        dec = self.decoder_loss(recon, ab, self.stats)  # (B,)
        kl = post.kl()  # (B,)
        loss = (dec + c.kl_weight * kl).mean()
        ctx.optimize("vae", loss)
        return {"loss": loss.detach(), "dec": dec.mean().detach(), "kl": kl.mean().detach()}

    def _mdn_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        ab, grey = self._flip(batch["ab"], batch["grey"])
        with torch.no_grad():
            feats = self.backbone(grey)  # (B, C, h, w)
            z = self.embedder.encode(ab, grey if self.embedder.uses_grey else None).sample()  # (B, d)
        log_pi, mu = self.mdn(feats)
        loss = mdn_loss(log_pi, mu, z, self.config.variance).mean()
        ctx.optimize("mdn", loss)
        return {"loss": loss.detach()}

    # ------------------------------------------------------------------ diagnostics
    @torch.no_grad()
    def mixture_weights(self, grey: Tensor) -> Tensor:
        """``(B, M)`` mixture weights pi of the MDN for grey images at ``image_size``."""
        was = self.training
        self.eval()
        try:
            log_pi, _ = self.mdn(self.backbone(grey.to(next(self.parameters()).device)))
        finally:
            self.train(was)
        return log_pi.float().exp()

    @torch.no_grad()
    def diagnostics(self, split: Any, *, k: int, batch_size: int = 64) -> dict[str, Any]:
        """Which mixture components are used on ``split``: per component, the fraction of
        images where it has the largest weight (``winner``) and where it is among the k
        largest (``in_top_k``, what ``topk`` sampling decodes); the mean per-image entropy
        of the weights and the entropy of their mean, in nats (log M is uniform use; a
        mixture that has collapsed to one component has both near 0)."""
        m = self.config.components
        kk = min(k, m)
        winner = torch.zeros(m, dtype=torch.float64)
        top = torch.zeros(m, dtype=torch.float64)
        ent, mean_pi, n = 0.0, torch.zeros(m, dtype=torch.float64), 0
        for start in range(0, len(split), batch_size):
            grey = split.batch(list(range(start, min(len(split), start + batch_size))))["grey"]
            pi = self.mixture_weights(grey_at_size(grey, self.config.image_size)).double().cpu()  # (B, M)
            winner += torch.bincount(pi.argmax(1), minlength=m).double()
            top += torch.bincount(pi.topk(kk, dim=1).indices.reshape(-1), minlength=m).double()
            ent += float(-(pi * pi.clamp_min(1e-30).log()).sum(1).sum())
            mean_pi += pi.sum(0)
            n += pi.shape[0]
        if n == 0:
            return {"components": m, "images": 0}
        mean_pi /= n
        return {
            "components": m,
            "images": n,
            "k": kk,
            "winner_fraction": [round(float(v), 6) for v in winner / n],
            "in_top_k_fraction": [round(float(v), 6) for v in top / n],
            "mean_weight": [round(float(v), 6) for v in mean_pi],
            "mean_entropy_nats": round(ent / n, 6),
            "entropy_of_mean_nats": round(float(-(mean_pi * mean_pi.clamp_min(1e-30).log()).sum()), 6),
            "max_entropy_nats": round(float(torch.log(torch.tensor(float(m)))), 6),
            "components_ever_winning": int((winner > 0).sum()),
        }

    # ------------------------------------------------------------------ sampling
    def sequence_sampler(self, k: int, *, mode: str | None = None,
                         generator: torch.Generator | None = None) -> Any:
        """Clips: the k components chosen per scene, codes smoothed over time (``sequence.py``)."""
        from .sequence import MixtureSequenceSampler

        return MixtureSequenceSampler(self, k, mode=mode, generator=generator)

    @torch.no_grad()
    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """``k`` colorizations of ``grey (B,1,H,W)`` (L/100) -> ``(B, k, 2, H, W)`` (ab/128).

        Images of another size are resized to ``image_size`` and the colour fields back.
        ``topk`` (default): the means of the k most probable components (k <= components);
        ``mixture``: k draws from the GMM using ``generator``."""
        mode = self.check_mode(mode)
        (h, w), g = grey.shape[-2:], grey_at_size(grey, self.config.image_size)
        was = self.training
        self.eval()
        try:
            log_pi, mu = self.mdn(self.backbone(g))  # (B, M), (B, M, d)
            if mode == "topk":
                z = topk_means(log_pi, mu, k)
            else:
                z = sample_mixture(log_pi, mu, k, self.config.variance, generator)
            b = g.shape[0]  # z: (B, k, d)
            gk = g.repeat_interleave(k, dim=0) if self.embedder.uses_grey else None
            ab = self.embedder.decode(z.reshape(b * k, -1), gk)  # (B*k, 2, s, s)
        finally:
            self.train(was)
        if (h, w) != tuple(g.shape[-2:]):
            ab = F.interpolate(ab, size=(h, w), mode="bilinear")
        return ab.reshape(b, k, 2, h, w)


def _no_step(batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:  # pragma: no cover - epochs=0
    raise ColorkitError("the mdn-init stage takes no training steps")


class MDNSkipConfig(MDNConfig):
    embedder: str = "vae-skip"


class MDNSkipMethod(MDNMethod):
    """"ours+skip" (section 7.3): as ``mdn`` with the ``vae-skip`` embedder (grey encoder +
    skip connections into the decoder)."""

    Config: ClassVar[type[ComponentConfig]] = MDNSkipConfig
