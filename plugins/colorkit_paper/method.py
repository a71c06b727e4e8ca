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

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from colorkit.core.hints import check_hint_map, resize_hint_map
from colorkit.core.interfaces import (
    ComponentConfig,
    Embedder,
    ExternalWeights,
    Method,
    Stage,
    StepContext,
    loading_saved_weights,
)
from colorkit.core.layers import grey_at_size
from colorkit.core.propagate import propagate_residual
from colorkit.core.registry import ColorkitError

from .decoder_losses import WeightedDecoderLoss
from .hint_inputs import DECODER_HINT_CHANNELS, MDN_HINT_CHANNELS, decoder_hint_features, training_hints
from .mdn import MixtureDensityNetwork, distinct_means, mdn_loss, sample_mixture, topk_means
from .method_config import (  # noqa: F401 - importable from here
    MAX_VARIANCE,
    MDN_SKIP_PRESETS,
    METHOD_PRESETS,
    MDNConfig,
    MDNSkipConfig,
)
from .pretext import PretextBackbone


class MDNMethod(PretextBackbone, Method):
    """Deshpande et al.'s diverse colorization: VAE colour embedding + MDN over grey features."""

    Config: ClassVar[type[ComponentConfig]] = MDNConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = METHOD_PRESETS
    sample_modes: ClassVar[tuple[str, ...]] = ("topk", "mixture", "distinct", "vae-kmeans")
    optional_state: ClassVar[tuple[str, ...]] = ("codes", "codes_count")
    reference_modes: ClassVar[tuple[str, ...]] = ("vae-kmeans",)
    """``vae-kmeans`` decodes the k-means centres of the training codes, the same k fields
    codes for every input: the method's own decoder without its MDN, blind to the grey
    image's content in its choice of codes (``mdn-skip``'s decoder still draws on the grey
    image's edges). ``colorkit bench`` scores it as a reference."""
    decoder_loss_option: ClassVar[str | None] = "decoder_loss"
    sample_options: ClassVar[tuple[str, ...]] = ("variance", "distinct_radius", "sequence_choice",
                                                 "sequence_smoothing", "hint_residual")
    """``variance``: of the Gaussian noise added to a component's mean in ``mixture``
    sampling; ``distinct_radius``: how far apart ``distinct`` keeps the chosen means;
    ``sequence_choice``, ``sequence_smoothing``: how clips are colorized (``sequence_sampler``)."""

    @classmethod
    def make_config(cls, config: ComponentConfig | dict | None = None, **fields: Any) -> ComponentConfig:
        """As every component's, except that a preset's ``backbone_kwargs`` are for the preset's
        backbone: a config that names another backbone and no ``backbone_kwargs`` of its own
        gets none (``backbone=colornet`` on ``mdn-skip``'s ``small`` preset, whose EfficientNet
        levels colornet does not have). A ``backbone_kwargs`` given replaces the preset's."""
        made = super().make_config(config, **fields)
        preset = cls.PRESETS[made.preset]
        own = preset.get("backbone_kwargs")
        if isinstance(config, ComponentConfig):  # its backbone_kwargs count as given unless they are the preset's
            given = "backbone_kwargs" in fields or config.backbone_kwargs != own
        else:
            given = "backbone_kwargs" in {*(config or {}), *fields}
        if (own is not None and not given
                and made.backbone != preset.get("backbone", cls.Config.model_fields["backbone"].default)):
            return cls.Config.model_validate({**made.model_dump(), "backbone_kwargs": {}})
        return made

    def __init__(self, config: MDNConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        from colorkit import create_backbone, create_embedder  # registry, at build time only

        c = self.config
        self.takes_hints = c.hints  # the class says False; a model trained with hints takes them
        self.backbone = create_backbone(c.backbone, **{"preset": c.preset, **c.backbone_kwargs})
        self.embedder = create_embedder(c.embedder, **{
            "preset": c.preset, "latent_dim": c.latent_dim, "image_size": c.image_size,
            **self._embedder_hint_fields(), **c.embedder_kwargs})
        feat = self._feature_shape()  # (C, h, w) of the backbone at image_size
        self.mdn = MixtureDensityNetwork(feat[0], feat[1:], self.embedder.latent_dim, c.components,
                                         c.mdn_widths, c.mdn_fc, c.mdn_dropout,
                                         hint_channels=MDN_HINT_CHANNELS if c.hints else 0)
        self._features: Any = None  # the MDN stage's FeatureTable (see feature_cache)
        self.register_buffer("codes", torch.zeros(c.reference_codes, self.embedder.latent_dim))
        self.register_buffer("codes_count", torch.zeros((), dtype=torch.long))
        self._centres: dict[int, Tensor] = {}
        # The decoder loss is for training only: a saved run loads (and samples) without it.
        self._decoder_loss = None if loading_saved_weights() else self._make_decoder_loss()

    def _embedder_hint_fields(self) -> dict[str, Any]:
        """``hint_channels`` for an embedder whose decoder reads the grey image (vae-skip)."""
        from colorkit.core.plugin_manager import registry

        if not self.config.hints:
            return {}
        cls = registry("embedder").get(self.config.embedder).factory
        if not cls.uses_grey or "hint_channels" not in cls.Config.model_fields:
            return {}
        return {"hint_channels": DECODER_HINT_CHANNELS}

    def _decoder_hints(self, grey: Tensor, hints: Tensor | None) -> Tensor | None:
        """What the decoder reads of a hint map, or ``None`` when it reads none."""
        if hints is None or not self.embedder.uses_grey or not getattr(self.embedder.config, "hint_channels", 0):
            return None
        return decoder_hint_features(grey, hints)

    def _make_decoder_loss(self) -> WeightedDecoderLoss:
        c = self.config
        return WeightedDecoderLoss(c.decoder_loss, c.decoder_loss_kwargs, impl=c.loss_impl)

    @property
    def decoder_loss(self) -> WeightedDecoderLoss:
        if self._decoder_loss is None:
            self._decoder_loss = self._make_decoder_loss()
        return self._decoder_loss

    def _feature_shape(self) -> tuple[int, int, int]:
        s, was = self.config.image_size, self.backbone.training
        self.backbone.eval()  # BN with batch 1
        with torch.no_grad():
            f = self.backbone(torch.zeros(1, 1, s, s))
        self.backbone.train(was)
        return tuple(f.shape[1:])  # type: ignore[return-value]

    # ------------------------------------------------------------------ training
    def provenance(self) -> dict[str, str]:
        return self.backbone.provenance()

    def external_weights(self) -> ExternalWeights | None:
        """The backbone's external weights (an ImageNet backbone's), under its name."""
        ext = self.backbone.external_weights()
        return None if ext is None else ext.under("backbone")

    def stages(self) -> list[Stage]:
        c = self.config
        self.backbone.load_pretrained()  # an ImageNet backbone's weights; never when a run is loaded
        stages: list[Stage] = []
        pre = self._pretext_stage()
        if pre is not None:
            stages.append(pre)
        stages.append(Stage(
            name="vae", modules={"vae": self.embedder}, step=self._vae_step, epochs=c.vae_epochs,
            batch_size=c.vae_batch_size,
            make_optimizers=lambda: {"vae": torch.optim.Adam(self.embedder.parameters(), lr=c.vae_lr)},
            lr_schedule=c.vae_lr_schedule, on_end=lambda split, end: self._store_codes(split),
        ))
        if c.mdn_init == "kmeans":  # its own stage: a resumed MDN stage is never re-initialised
            stages.append(Stage(name="mdn-init", modules={}, make_optimizers=dict, step=_no_step, epochs=0,
                                on_start=self._kmeans_init))
        stages.append(Stage(
            name="mdn", modules={"mdn": self.mdn}, step=self._mdn_step, epochs=c.mdn_epochs,
            batch_size=c.mdn_batch_size, frozen=[self.backbone, self.embedder],
            make_optimizers=lambda: {"mdn": torch.optim.Adam(self.mdn.parameters(), lr=c.mdn_lr)},
            lr_schedule=c.mdn_lr_schedule, on_start=self._feature_table, on_end=self._drop_features,
        ))
        return stages

    def embedding_stages(self) -> list[Stage]:
        """The ``vae`` stage (the colour embedder's training; the pretext and MDN stages
        are left out)."""
        return [s for s in self.stages() if s.name == "vae"]

    def colour_embedder(self) -> Embedder:
        return self.embedder

    def _feature_table(self, train_split: Any) -> None:
        from .feature_cache import build_table

        c = self.config
        if not hasattr(train_split, "indices") or c.crop_scale < 1:  # features per batch
            self._features = None
            return
        self._features = build_table(self.backbone, train_split, image_size=c.image_size, flip=c.flip,
                                     budget_mb=c.feature_cache_mb, use_disk=c.use_cache, resize=self._at_size)

    def _drop_features(self, train_split: Any, end: Any) -> None:
        self._features = None

    @torch.no_grad()
    def _store_codes(self, train_split: Any) -> None:
        """Keep the VAE codes (posterior means) of a random subset of the training images."""
        n, cap = len(train_split), self.codes.shape[0]
        gen = torch.Generator().manual_seed(0)
        pos = torch.randperm(n, generator=gen)[:cap].sort().values
        was = self.embedder.training
        self.embedder.eval()
        dev = self.codes.device
        filled = 0
        for start in range(0, pos.numel(), 256):
            b = train_split.batch(pos[start : start + 256])
            ab, grey = (self._at_size(x.to(dev)) for x in (b["ab"], b["grey"]))
            mu = self.embedder.encode(ab, grey if self.embedder.uses_grey else None).mu.float()
            self.codes[filled : filled + mu.shape[0]] = mu
            filled += mu.shape[0]
        self.embedder.train(was)
        self.codes_count.fill_(filled)
        self._centres.clear()

    def _kept_codes(self) -> Tensor:
        n = int(self.codes_count)
        if n == 0:
            raise ColorkitError("this model keeps no training codes: train it first")
        return self.codes[:n]

    @torch.no_grad()
    def _kmeans_init(self, train_split: Any) -> None:
        """Component means at the k-means centres of the training codes (see ``mdn_init``)."""
        from colorkit.core.cluster import kmeans

        if int(self.codes_count) == 0:
            self._store_codes(train_split)
        z = self._kept_codes()  # (N, d)
        m = self.config.components
        if z.shape[0] < m:
            raise ColorkitError(f"mdn_init='kmeans' needs at least {m} training images, got {z.shape[0]}")
        dev = next(self.mdn.parameters()).device
        res = kmeans(z[None].cpu(), m, generator=torch.Generator().manual_seed(0))
        centers = res.centers[0].to(dev)  # (M, d)
        sizes = torch.bincount(res.labels[0], minlength=m).float().clamp_min(1).to(dev)
        self.mdn.init_output(centers, sizes.log(), weight_scale=0.1)

    def code_centres(self, k: int) -> Tensor:
        """``(k, d)`` k-means centres of the kept training codes, largest cluster first."""
        if k not in self._centres:
            from colorkit.core.cluster import kmeans

            z = self._kept_codes().float().cpu()
            if k > z.shape[0]:
                raise ColorkitError(f"vae-kmeans: the model keeps {z.shape[0]} training codes; cannot give k={k}")
            res = kmeans(z[None], k, generator=torch.Generator().manual_seed(0))
            sizes = torch.bincount(res.labels[0], minlength=k)
            order = torch.sort(sizes, descending=True, stable=True).indices
            self._centres[k] = res.centers[0][order]
        return self._centres[k].to(self.codes.device)

    def _at_size(self, x: Tensor) -> Tensor:
        """``x`` at ``image_size`` (area-averaged when the data set is larger)."""
        s = self.config.image_size
        return x if tuple(x.shape[-2:]) == (s, s) else F.interpolate(x, size=(s, s), mode="area")

    def _crop(self, ab: Tensor, grey: Tensor) -> tuple[Tensor, Tensor]:
        """Random resized square crops (see ``crop_scale``), the same box for ab and grey."""
        c = self.config
        if c.crop_scale >= 1.0:
            return self._at_size(ab), self._at_size(grey)
        from torchvision.ops import roi_align

        b, _, h, w = ab.shape
        side = torch.sqrt(c.crop_scale + (1 - c.crop_scale) * torch.rand(b, device=ab.device)) * min(h, w)
        x0 = torch.rand(b, device=ab.device) * (w - side)
        y0 = torch.rand(b, device=ab.device) * (h - side)
        boxes = torch.stack([torch.arange(b, device=ab.device, dtype=ab.dtype), x0, y0, x0 + side, y0 + side], 1)
        out = roi_align(torch.cat([ab, grey], 1), boxes, output_size=c.image_size, aligned=True)
        return out[:, :2], out[:, 2:]

    def _flip(self, *xs: Tensor) -> tuple[Tensor, ...]:
        """The same random half of the batch mirrored left-right in every tensor."""
        return self._flip_sel(*xs)[0]

    def _flip_sel(self, *xs: Tensor) -> tuple[tuple[Tensor, ...], Tensor | None]:
        """:meth:`_flip` and the mirrored rows ``(B,)`` (``None`` without flips)."""
        if not self.config.flip:
            return xs, None
        sel = torch.rand(xs[0].shape[0], device=xs[0].device) < 0.5
        return tuple(torch.where(sel[:, None, None, None], x.flip(-1), x) for x in xs), sel

    def _vae_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        c = self.config
        ab, grey = self._flip(*self._crop(batch["ab"], batch["grey"]))
        g = grey if self.embedder.uses_grey else None
        post = self.embedder.encode(ab, g)
        hf = self._decoder_hints(grey, training_hints(ab, ctx.generator)) if c.hints and g is not None else None
        recon = self.embedder.decode(post.sample(), g, hf) if hf is not None else self.embedder.decode(post.sample(), g)
        dec = self.decoder_loss(recon, ab, self.stats)  # (B,)
        kl = post.kl()  # (B,)
        loss = (dec + c.kl_weight * kl).mean()
        ctx.optimize("vae", loss)
        return {"loss": loss.detach(), "dec": dec.mean().detach(), "kl": kl.mean().detach()}

    def _mdn_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        (ab, grey), sel = self._flip_sel(*self._crop(batch["ab"], batch["grey"]))
        with torch.no_grad():
            if self._features is not None and "index" in batch:
                feats = self._features.lookup(batch["index"], sel).to(grey.device)  # (B, C, h, w)
            else:
                feats = self.backbone(grey_at_size(grey, self.config.image_size))
            z = self.embedder.encode(ab, grey if self.embedder.uses_grey else None).sample()  # (B, d)
            hints = training_hints(ab, ctx.generator) if self.config.hints else None
        log_pi, mu = self.mdn(feats, hints)
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
        """Clips: the k components chosen per scene, codes smoothed over time (``sequence.py``),
        for ``topk`` and ``mixture``. ``distinct`` and ``vae-kmeans`` are deterministic per
        frame (no draws to hold fixed): the default sampler colorizes each frame with them."""
        if self.check_mode(mode) in ("distinct", "vae-kmeans"):
            return super().sequence_sampler(k, mode=mode, generator=generator)
        from .sequence import MixtureSequenceSampler

        return MixtureSequenceSampler(self, k, mode=mode, generator=generator)

    @torch.no_grad()
    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None, hints: Tensor | None = None) -> Tensor:
        """``k`` colorizations of ``grey (B,1,H,W)`` (L/100) -> ``(B, k, 2, H, W)`` (ab/128).

        Images of another size are resized to ``image_size`` and the colour fields back.
        ``topk`` (default): the means of the k most probable components (k <= components);
        ``mixture``: k draws from the GMM using ``generator``. ``hints``: a hint map
        ``(B, 3, H, W)`` (see :mod:`colorkit.core.hints`) for a model trained with ``hints``."""
        mode = self.check_mode(mode)
        s = self.config.image_size
        (h, w), g = grey.shape[-2:], grey_at_size(grey, s)
        if hints is not None:
            if not self.config.hints:
                raise ColorkitError(f"{self.registry_name or type(self).__name__} was trained without hints; "
                                    "pass hints through colorkit.core.hints.sample_with_hints")
            check_hint_map(hints, grey)
            hints_s = resize_hint_map(hints.to(g), (s, s))
        was = self.training
        self.eval()
        try:
            log_pi, mu = self.mdn(self.backbone(g), hints_s if hints is not None else None)  # (B, M), (B, M, d)
            if mode == "topk":
                z = topk_means(log_pi, mu, k)
            elif mode == "distinct":
                radius = self.config.distinct_radius * (mu.shape[-1] / 64) ** 0.5
                z = distinct_means(log_pi, mu, k, radius)
            elif mode == "vae-kmeans":
                z = self.code_centres(k).to(mu)[None].expand(g.shape[0], -1, -1)
            else:
                z = sample_mixture(log_pi, mu, k, self.config.variance, generator)
            b = g.shape[0]  # z: (B, k, d)
            gk = g.repeat_interleave(k, dim=0) if self.embedder.uses_grey else None
            hf = self._decoder_hints(g, hints_s) if hints is not None else None
            if hf is not None:
                ab = self.embedder.decode(z.reshape(b * k, -1), gk, hf.repeat_interleave(k, dim=0))
            else:
                ab = self.embedder.decode(z.reshape(b * k, -1), gk)  # (B*k, 2, s, s)
        finally:
            self.train(was)
        if (h, w) != tuple(g.shape[-2:]):
            ab = F.interpolate(ab, size=(h, w), mode="bilinear")
        ab = ab.reshape(b, k, 2, h, w)
        if hints is not None and self.config.hint_residual:
            ab = propagate_residual(ab, grey, hints.to(ab))
        return ab


def _no_step(batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:  # pragma: no cover - epochs=0
    raise ColorkitError("the mdn-init stage takes no training steps")


class MDNSkipMethod(MDNMethod):
    """"ours+skip" (section 7.3): as ``mdn`` with the ``vae-skip`` embedder (grey encoder +
    skip connections into the decoder)."""

    Config: ClassVar[type[ComponentConfig]] = MDNSkipConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = MDN_SKIP_PRESETS
