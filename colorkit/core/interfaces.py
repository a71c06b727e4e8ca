"""Interfaces every component implements, with shapes and units.

Units everywhere (the paper's, see docs/concepts.md): a colour field ``ab`` is CIE Lab
a and b divided by 128, shape ``(B, 2, H, W)``, roughly in [-1, 1]; a grey image ``grey``
is Lab L divided by 100, shape ``(B, 1, H, W)``, in [0, 1].

Components are ``torch.nn.Module`` subclasses with a pydantic ``Config`` (``extra="forbid"``)
and named ``PRESETS`` (``paper``: the paper's exact sizes; ``small``: CPU-friendly, same
structure; ``tiny``: for tests). ``Cls(preset="small", latent_dim=32)`` builds the config
from the preset's values overridden by the given fields. A checkpoint stores the config
JSON and the ``state_dict`` as safetensors (see :mod:`colorkit.core.checkpoint`).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import Tensor, nn

from colorkit.core.checkpoint import (  # noqa: F401 - loading_saved_weights is part of the plugin API
    ExternalWeights,
    load_method_checkpoint,
    loading_saved_weights,
    save_component,
)
from colorkit.core.metric import Metric, RatioMetric  # noqa: F401 - part of the plugin API, importable from here
from colorkit.core.registry import ColorkitError
from colorkit.core.stages import (  # noqa: F401 - part of the plugin API, importable from here
    LR_SCHEDULES,
    Stage,
    StageEnd,
    StepContext,
    lr_factor,
    noise,
)

if TYPE_CHECKING:  # pragma: no cover
    from colorkit.core.stats import ColorStats


def _registered_name(cls: type, kind: str) -> str:
    from colorkit.core.plugin_manager import registered_name

    return registered_name(cls, kind)

PRESET_NAMES = ("paper", "small", "tiny")

_C = TypeVar("_C")


def declared(factory: Any, base: type[_C]) -> type[_C]:
    """The class whose declarations (class attributes: ``role``, ``sample_modes``,
    ``uses_meta``, ``Config``...) describe a registered ``factory`` of the kind ``base``:
    the factory itself when it is a subclass of ``base``, else ``base`` (a plain callable
    registered as a factory declares nothing, so it has the base class's defaults)."""
    return factory if isinstance(factory, type) and issubclass(factory, base) else base


class ComponentConfig(BaseModel):
    """Base of every component config: unknown fields are errors, and so are NaN and
    infinite numbers (no setting that trains takes one)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    preset: str = "small"


class Component(nn.Module):
    """Base class: a module built from a validated config and a named preset."""

    kind: ClassVar[str] = ""
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "small": {}, "tiny": {}}
    registry_name: str = ""
    """The name it is registered under: set by the registry that builds it, or, for a
    component built directly from its class, the class's one registered name (``""`` when
    it has none); saved in checkpoints, which are rebuilt through the registry by it."""
    optional_state: ClassVar[tuple[str, ...]] = ()
    """Names of state entries (buffers) added after the component was first released: a
    checkpoint that lacks them still loads, and they keep their initial values."""
    example_variant: ClassVar[str | None] = None
    """For a family (registered under a name ending in ``:``): the variant the contract
    checks build it with (e.g. ``"resnet18"`` for a family of image models); ``None``: not checked."""

    @classmethod
    def make_config(cls, config: ComponentConfig | dict | None = None, **fields: Any) -> ComponentConfig:
        if isinstance(config, cls.Config):
            return cls.Config.model_validate({**config.model_dump(), **fields})
        values: dict[str, Any] = dict(config or {})
        values.update(fields)
        preset = values.get("preset", cls.Config.model_fields["preset"].default)
        if preset not in cls.PRESETS:
            raise ColorkitError(
                f"unknown preset {preset!r} for {cls.__name__}; expected one of {', '.join(cls.PRESETS)}"
            )
        if loading_saved_weights() and isinstance(config, dict):
            # A saved config holds every field it had when it was saved; a field added since
            # takes its class default (what the saved weights were built without), not the
            # value today's preset gives new models.
            return cls.Config.model_validate({**values, "preset": preset})
        return cls.Config.model_validate({**cls.PRESETS[preset], **values, "preset": preset})

    def __init__(self, config: ComponentConfig | dict | None = None, **fields: Any) -> None:
        super().__init__()
        self.config = self.make_config(config, **fields)
        self.registry_name = _registered_name(type(self), self.kind) or self.registry_name

    def external_weights(self) -> ExternalWeights | None:
        """The tensors of this component that come from elsewhere than its checkpoint (e.g.
        an ImageNet backbone's weights shipped in an installed package) and how they are
        loaded and checked: a checkpoint saved with ``external=True`` leaves them out and
        records their digest, and loading it loads them from their source and refuses
        them when the digest differs. Default ``None``: every tensor is in the checkpoint.
        A component holding one with external weights passes it on with
        :meth:`ExternalWeights.under` (the name of the sub-module)."""
        return None

    def save(self, directory: str | Path, *, stats: Any = None, external: bool = False) -> Path:
        """Save to the checkpoint folder ``directory`` (atomically; see
        :mod:`colorkit.core.checkpoint`): config, weights and, for a method, its colour
        statistics (``stats`` or the method's own). ``external=True`` leaves out the
        tensors :meth:`external_weights` declares, recording their digest."""
        if stats is None and isinstance(self, Method):
            stats = self.stats
        return save_component(self, directory, stats=stats, external=external)

    @classmethod
    def load(cls: type[_C], directory: str | Path, *, map_location: str | torch.device = "cpu", **kwargs: Any) -> _C:
        """The component saved in ``directory`` by :meth:`save`, rebuilt through the
        registry under its saved name (a method with the folder's colour statistics unless
        ``stats=`` is given); an error when the folder holds something else than a ``cls``."""
        obj = load_method_checkpoint(directory, kind=cls.kind or None, map_location=map_location, **kwargs)
        if not isinstance(obj, cls):
            raise ColorkitError(f"checkpoint {directory} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


# --------------------------------------------------------------------------- backbones
class Backbone(Component):
    """Grey-level feature extractor: ``forward(grey (B,1,H,W)) -> (B, out_channels, H/r, W/r)``.

    ``out_channels`` and ``reduction`` (r) describe the output. A backbone that must be
    trained before use (colorkit's ``colornet``) returns a :class:`Stage` from
    :meth:`pretrain_stage`, trained on the schedule (``epochs``, ``batch_size``, ``lr``)
    given by the method that uses it; others return ``None``.
    """

    kind = "backbone"
    out_channels: int
    reduction: int

    @abstractmethod
    def forward(self, grey: Tensor) -> Tensor: ...

    def pretrain_stage(self, stats: ColorStats, *, epochs: int, batch_size: int, lr: float) -> Stage | None:
        return None

    def load_pretrained(self, *, write_cache: bool = True) -> dict[str, str]:
        """Initialise from pretrained weights outside the run (e.g. an installed package's
        file) and return their provenance (e.g. ``{"backbone_weights_sha256": ...}``).
        A method calls it when it builds its training stages, never when a trained run is
        loaded: the run's ``model.safetensors`` holds every tensor. ``write_cache=False``:
        write nothing (e.g. no converted copy in the cache). Default: nothing."""
        return {}

    def provenance(self) -> dict[str, str]:
        """Where this backbone's weights came from (what :meth:`load_pretrained` returned,
        kept in the weights so that a loaded run still says it); default empty."""
        return {}


# --------------------------------------------------------------------------- embedders
class Posterior(NamedTuple):
    """Diagonal Gaussian q(z | C[, G]): ``mu`` and ``logvar`` are ``(B, d)``."""

    mu: Tensor
    logvar: Tensor

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(self.mu.shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + eps * torch.exp(0.5 * self.logvar)

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) per sample, ``(B,)`` (summed over the d dimensions)."""
        return 0.5 * (self.mu.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=1)


class Embedder(Component):
    """Colour-field embedding (VAE): ``encode(ab[, grey]) -> Posterior``,
    ``decode(z (B,d)[, grey]) -> ab (B,2,H,W)``. ``uses_grey`` says whether the grey image
    is an input (the "ours+skip" variant); ``latent_dim`` is d."""

    kind = "embedder"
    latent_dim: int
    uses_grey: bool = False

    @abstractmethod
    def encode(self, ab: Tensor, grey: Tensor | None = None) -> Posterior: ...

    @abstractmethod
    def decode(self, z: Tensor, grey: Tensor | None = None) -> Tensor: ...

    def forward(self, ab: Tensor, grey: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Posterior]:
        post = self.encode(ab, grey)
        z = post.sample(generator) if self.training else post.mu
        return self.decode(z, grey), post


# --------------------------------------------------------------------------- losses
class DecoderLoss(Component):
    """A decoder loss: ``forward(pred, target, stats) -> (B,)`` per-sample loss for ab
    fields ``(B, 2, H, W)`` in ab / 128 units (summed over pixels, not averaged)."""

    kind = "decoder_loss"

    @abstractmethod
    def forward(self, pred: Tensor, target: Tensor, stats: ColorStats) -> Tensor: ...


@dataclass(frozen=True)
class BuildContext:
    """What a run knows when it builds a method, passed to
    :meth:`Method.options_from_context`: ``cache_dir``, a folder of the prepared data set
    for files derived from it (``None`` without a data set); ``image_size``, the side of
    the training images."""

    cache_dir: str | None = None
    image_size: int | None = None


class Method(Component):
    """A method: a model of P(C | G), trained by the engine stage by stage.

    ``Cls(stats=ColorStats, preset=..., **fields)``; :meth:`stages` lists the training
    phases in order; :meth:`sample` gives ``k`` colorizations per grey image,
    ``(B, k, 2, H, W)`` in ab / 128, deterministic for a given ``generator``.
    ``sample_modes``: the ways it can sample (first is the default).
    ``role``: ``"learned"`` for a model of P(C | G); ``"reference"`` for a yardstick the
    benchmark scores beside every method (e.g. the all-grey output, or colour fields drawn
    without looking at the input) and compares each learned method against.
    """

    kind = "method"
    sample_modes: ClassVar[tuple[str, ...]] = ("default",)
    sample_options: ClassVar[tuple[str, ...]] = ()
    """Config fields that only change how a trained model samples (e.g. a temperature),
    so they may be set at bench and colorize time (``--option``), see :meth:`configure_sampling`."""
    role: ClassVar[str] = "learned"
    reference_modes: ClassVar[tuple[str, ...]] = ()
    """Sampling modes (of ``sample_modes``) that are input-blind yardsticks made of the
    method's own trained parts (``mdn``'s ``vae-kmeans``): ``colorkit bench`` scores each as
    a reference row ``method[mode]`` and judges every learned row against it."""
    uses_meta: ClassVar[bool] = False
    """When true, ``sample`` also takes ``meta=``: one record per image of the data set's
    per-image metadata (see :mod:`colorkit.data.meta`); the bench passes it. Such a method
    names in ``contract_dataset`` a data set with metadata for the contract checks."""
    contract_dataset: ClassVar[str | None] = None
    """A data set spec (e.g. ``"synth:n=24,size=32"``) with per-image metadata that the
    contract checks of a ``uses_meta`` method train and sample on; ``None`` for others."""
    slow_contract: ClassVar[bool] = False
    """When true, the registry-wide contract test of this method runs only with the slow
    tests (``pytest -m slow``): for a method whose tiny preset still takes long to train."""
    takes_hints: ClassVar[bool] = False
    """When true, ``sample`` also takes ``hints=``: a hint map ``(B, 3, H, W)`` at the grey
    image's size (mask, ab / 128; see :mod:`colorkit.core.hints`), and honours it (the
    contract checks that the error at the hinted pixels falls, and that ``hints=None``
    changes nothing). Every other method gets hints through the generic fallback of
    :func:`colorkit.core.hints.sample_with_hints` (the residual at the hints propagated
    along the grey image), so callers always go through that function."""
    hints_only: ClassVar[bool] = False
    """When true, the method says something only with hints (e.g. the reference ``levin``,
    the grey image without them): ``colorkit bench`` scores it only in the tables with
    colour hints (``--hints``), never in the tables without them."""
    decoder_loss_option: ClassVar[str | None] = None
    """The config field that chooses the decoder loss its colour embedder is trained with
    (registered decoder-loss names and weights, e.g. ``mdn``'s ``decoder_loss``); ``None``
    when it has none. ``colorkit bench --ablation decoder-loss`` sets it, trains only
    :meth:`embedding_stages` and scores :meth:`colour_embedder`'s reconstructions."""

    @classmethod
    def options_from_context(cls, context: BuildContext) -> dict[str, Any]:
        """Config fields this method takes from the run that builds it (``colorkit train``,
        ``colorkit bench``); the caller's own options win over them. Default: ``cache_dir``
        (the data set's folder for derived files, e.g. a pretrained backbone) and
        ``image_size`` (the training image side), each when the config has a field of that
        name. Override to take other fields or none."""
        fields = cls.Config.model_fields
        out: dict[str, Any] = {}
        if "cache_dir" in fields and context.cache_dir is not None:
            out["cache_dir"] = context.cache_dir
        if "image_size" in fields and context.image_size is not None:
            out["image_size"] = context.image_size
        return out

    def __init__(self, config: ComponentConfig | dict | None = None, *, stats: ColorStats, **fields: Any) -> None:
        super().__init__(config, **fields)
        self.stats = stats

    @abstractmethod
    def stages(self) -> list[Stage]: ...

    @abstractmethod
    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor: ...

    def sequence_sampler(self, k: int, *, mode: str | None = None,
                         generator: torch.Generator | None = None) -> Any:
        """A :class:`colorkit.core.sequence.SequenceSampler` that colorizes a clip chunk by
        chunk so that version j keeps its colours from frame to frame. The default keeps
        the method's random draws fixed across the frames of a scene (the generator's
        state is the same for every frame); a method overrides it to choose per scene
        (e.g. the MDN picks its k mixture components for the whole scene)."""
        from colorkit.core.sequence import FixedDrawSampler

        return FixedDrawSampler(self, k, mode=mode, generator=generator)

    def sample_sequence(self, frames: Tensor, k: int, *, mode: str | None = None,
                        generator: torch.Generator | None = None, scenes: Tensor | None = None,
                        meta: list[Any] | None = None) -> Tensor:
        """``k`` versions of a clip: grey frames ``(T, 1, H, W)`` -> ``(T, k, 2, H, W)`` in
        ab / 128, version j consistent across frames (see :meth:`sequence_sampler`).
        ``scenes`` ``(T,)``: scene numbers (a new scene may start a new choice; default one
        scene); ``meta``: one record per frame for methods with ``uses_meta``."""
        sampler = self.sequence_sampler(k, mode=mode, generator=generator)
        sampler.observe(frames, scenes)
        return sampler.sample(frames, scenes, meta=meta)

    def embedding_stages(self) -> list[Stage]:
        """The stages of :meth:`stages` that train the colour embedder (and nothing after
        it), in order; the decoder-loss ablation trains only these. Default: none."""
        return []

    def colour_embedder(self) -> Embedder | None:
        """The colour-field embedder this method samples through (what
        :meth:`embedding_stages` trains), or ``None`` (default) when it has none."""
        return None

    def diagnostics(self, split: Any, *, k: int, batch_size: int = 64) -> dict[str, Any] | None:
        """Optional JSON-able facts about how the trained model behaves on ``split`` (e.g.
        which mixture components it uses); ``None`` when it has none. Recorded in
        ``run.json`` for the training split and printed by ``colorkit bench`` for the test
        split."""
        return None

    def provenance(self) -> dict[str, str]:
        """Digests of external weights the model was initialised from (e.g. an ImageNet
        backbone), recorded in ``run.json`` as ``provenance``; default empty."""
        return {}

    def configure_sampling(self, **options: Any) -> None:
        """Change sampling settings of a trained model (fields named in ``sample_options``;
        anything else is an error naming the settings there are). ``sample`` runs in eval
        mode whatever the module's mode: every built-in method switches to it and back."""
        unknown = sorted(set(options) - set(self.sample_options))
        if unknown:
            have = ", ".join(self.sample_options) or "none"
            name = self.registry_name or type(self).__name__
            raise ColorkitError(f"not a sampling setting of {name}: {', '.join(unknown)}; its sampling settings: "
                                f"{have} (and mode, one of {', '.join(self.sample_modes)})")
        if options:
            try:
                self.config = self.make_config(self.config, **options)
            except ValueError as exc:  # pydantic's ValidationError, or a validator's own ValueError
                raise ColorkitError(f"invalid sampling setting: {validation_detail(exc)}") from None

    def check_mode(self, mode: str | None) -> str:
        mode = mode or self.sample_modes[0]
        if mode not in self.sample_modes:
            raise ColorkitError(
                f"{type(self).__name__} cannot sample with mode {mode!r}; "
                f"expected one of {', '.join(self.sample_modes)}"
            )
        return mode


def validation_detail(exc: ValueError) -> str:
    """A config error on one line: each field of a pydantic ``ValidationError`` with the
    value given and what was wrong, or the text of any other ``ValueError``."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}" for e in exc.errors())
    return " ".join(str(exc).split())
