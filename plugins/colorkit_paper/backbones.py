"""Grey-level feature backbones for the MDN (Deshpande et al., CVPR 2017, sections 4, 6.2).

The paper feeds the MDN the conv7 features (28x28x512 at a 224x224 input) of Zhang et
al.'s colorization CNN ("Colorful image colorization", ECCV 2016), pretrained and fixed.
No pretrained copy can be downloaded here, so:

* ``colornet`` is a CNN in the spirit of Zhang et al. (7 blocks of 3x3 convs + ReLU, BN at
  each block's end, dilation 2 in blocks 5-6) trained on its pretext task by
  :meth:`ColorNet.pretrain_stage`: per-pixel classification of the ab bin (grid of step 10,
  the Q in-gamut cells of ``stats``) with Zhang's class rebalancing (``stats.bin_weights``). It reads
  the 64x64 grey image the rest of colorkit uses, not a 224x224 one; the ``paper`` preset
  keeps Zhang's widths (64 ... 512) and stops down-sampling at 1/4, giving 16x16x512
  features (the paper's 28x28x512 at its 224 input; reduction 8 is a config change).
* ``timm:<model>`` wraps any timm model as ``features_only`` with one input channel,
  never downloading weights: pass a local safetensors file in ``weights`` or get (with one
  warning) random features.

``forward(grey (B,1,H,W) in L/100) -> (B, out_channels, H/reduction, W/reduction)``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import PositiveInt, field_validator
from torch import Tensor, nn

from colorkit.core.interfaces import Backbone, ComponentConfig, Stage, StepContext, loading_saved_weights
from colorkit.core.layers import ConvBlock, is_power_of_two
from colorkit.core.registry import ColorkitError

if TYPE_CHECKING:  # pragma: no cover
    from colorkit.core.stats import ColorStats

GRID = 23  # ab cells per axis (colorkit.core.stats.G)


# ---------------------------------------------------------------------------- colornet
class ColorNetConfig(ComponentConfig):
    widths: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt] = (
        64, 128, 256, 512, 512, 512, 512)
    """Channels of blocks conv1 ... conv7 (Zhang et al.: 64, 128, 256, 512 x 4)."""
    depths: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt] = (
        2, 2, 3, 3, 3, 3, 3)
    """3x3 convs per block (Zhang et al.: 2, 2, 3, 3, 3, 3, 3)."""
    reduction: int = 4
    """Input side / feature side: the first log2(reduction) blocks end with stride 2."""
    dilation: int = 2
    """Dilation of blocks conv5 and conv6 (Zhang et al.: 2)."""

    @field_validator("reduction")
    @classmethod
    def _pow2(cls, v: int) -> int:
        if not is_power_of_two(v) or v > 64:  # at most 6 of the 7 blocks down-sample
            raise ValueError(f"reduction must be a power of two <= 64, got {v}")
        return v


class ColorNet(Backbone):
    """Zhang et al.-style colorization CNN trained on ab-bin classification; its conv7
    map is the MDN input. ``pretrain_stage(stats, epochs=, batch_size=, lr=)`` trains it
    (rebalanced cross-entropy) on the schedule the method using it gives."""

    Config: ClassVar[type[ComponentConfig]] = ColorNetConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"widths": (32, 64, 128, 128, 128, 128, 128), "depths": (1, 1, 2, 2, 1, 1, 1), "reduction": 8},
        "tiny": {"widths": (8, 8, 16, 16, 16, 16, 16), "depths": (1, 1, 1, 1, 1, 1, 1)},
    }

    def __init__(self, config: ColorNetConfig | dict | None = None, **fields: Any) -> None:
        super().__init__(config, **fields)
        c = self.config
        n_down = int(math.log2(c.reduction))
        blocks, cin = [], 1
        for i, (width, depth) in enumerate(zip(c.widths, c.depths)):
            stride = 2 if i < n_down else 1
            dil = c.dilation if i in (4, 5) else 1
            layers: list[nn.Module] = []
            for j in range(depth):
                last = j == depth - 1
                # conv, ReLU; BN closes the block (Zhang et al.'s layout)
                layers.append(ConvBlock(cin, width, 3, stride if last else 1, dil, bn=last))
                cin = width
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)
        # Pretext head (Zhang's conv8 + 1x1 classifier, at the feature resolution): logits
        # over all 23x23 cells; out-of-gamut cells are masked when the loss is computed.
        self.head = nn.Sequential(ConvBlock(cin, cin, 3), nn.Conv2d(cin, GRID * GRID, 1))
        self.out_channels = c.widths[-1]
        self.reduction = c.reduction

    def forward(self, grey: Tensor) -> Tensor:
        return self.blocks(grey - 0.5)  # (B, C7, H/r, W/r); L - 50 centring as Zhang et al.

    def logits(self, grey: Tensor) -> Tensor:
        """Pretext logits ``(B, 23*23, H/r, W/r)``."""
        return self.head(self(grey))

    def pretext_loss(self, grey: Tensor, ab: Tensor, stats: ColorStats) -> Tensor:
        """Rebalanced cross-entropy over the Q in-gamut ab bins, mean over pixels (scalar).

        Target: ab average-pooled to the feature resolution, then quantised to its class
        (:meth:`ColorStats.ab_to_class`; out-of-gamut cells go to the nearest in-gamut
        one); weight: the class's colourfulness weight (Zhang et al.'s rebalancing)."""
        logits = self.logits(grey)  # (B, 23*23, h, w)
        in_gamut = stats.in_gamut.reshape(-1).to(logits.device).bool()  # (529,)
        logits = logits[:, in_gamut]  # (B, Q, h, w), classes in flat-cell order
        target = stats.ab_to_class(F.adaptive_avg_pool2d(ab, logits.shape[-2:]))  # (B, h, w) in [0, Q)
        weights = stats.class_weights().to(logits.device, logits.dtype)[target]  # (B, h, w)
        ce = F.cross_entropy(logits, target, reduction="none")  # (B, h, w)
        return (weights * ce).mean()

    def pretrain_stage(self, stats: ColorStats, *, epochs: int, batch_size: int, lr: float,
                       name: str = "colornet") -> Stage:
        def make_optimizers() -> dict[str, torch.optim.Optimizer]:
            return {"colornet": torch.optim.Adam(self.parameters(), lr=lr)}

        def step(batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
            loss = self.pretext_loss(batch["grey"], batch["ab"], stats)
            ctx.optimize("colornet", loss)
            return {"loss": loss.detach()}

        return Stage(name=name, modules={"colornet": self}, make_optimizers=make_optimizers, step=step,
                     epochs=epochs, batch_size=batch_size)


# ---------------------------------------------------------------------------- timm
class TimmConfig(ComponentConfig):
    variant: str = "resnet18"
    """timm model name (``timm:<variant>``)."""
    level: int = 2
    """Feature level (``out_indices``); negative counts from the last (-1 = deepest)."""
    weights: str | None = None
    """Local safetensors file with the model's initial weights (never downloaded; pickles
    refused). A 3-channel first conv is summed to the one grey channel. Read for training
    only: a finished run holds every tensor and loads without this file."""


def check_timm_name(variant: str) -> None:
    """Only plain names of timm's own architectures: prefixes such as ``hf-hub:`` or
    ``local-dir:`` make timm fetch or read a model definition, and a run directory may come
    from a stranger (opening one never touches the network)."""
    import timm

    if not isinstance(variant, str) or not variant or any(ch in variant for ch in ":/\\") \
            or not timm.is_model(variant):
        raise ColorkitError(f"timm backbone {variant!r} is not a plain timm architecture name (e.g. resnet18); "
                            "hub and local-directory names are refused: colorkit never downloads or reads model "
                            "definitions")


class TimmBackbone(Backbone):
    """Any timm model as a grey-feature extractor (``features_only``, one input channel,
    no downloads; untrained unless ``weights`` names a local safetensors file)."""

    Config: ClassVar[type[ComponentConfig]] = TimmConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "small": {}, "tiny": {}}

    def __init__(self, config: TimmConfig | dict | None = None, **fields: Any) -> None:
        super().__init__(config, **fields)
        import timm  # lazy: importing timm takes a second

        c = self.config
        check_timm_name(c.variant)
        try:
            self.model = timm.create_model(c.variant, features_only=True, in_chans=1, pretrained=False,
                                           out_indices=(c.level,))
        except RuntimeError as exc:
            raise ColorkitError(f"timm backbone {c.variant!r}: {exc}") from None
        except IndexError:
            n = len(timm.create_model(c.variant, features_only=True, in_chans=1, pretrained=False).feature_info)
            raise ColorkitError(f"timm:{c.variant} has {n} feature levels; level {c.level} is out of range") from None
        self.out_channels = int(self.model.feature_info.channels()[-1])
        self.reduction = int(self.model.feature_info.reduction()[-1])
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", (0.5,)), cfg.get("std", (0.25,))
        self.norm_mean = float(sum(mean) / len(mean))  # grey stands in for every RGB channel
        self.norm_std = float(sum(std) / len(std))
        if loading_saved_weights():
            pass  # a saved run's file holds every tensor: ``weights`` was its initialisation only
        elif c.weights is None:
            warnings.warn(
                f"timm:{c.variant} has no weights (nothing is downloaded): its features are random-init and "
                "untrained; pass weights=<local .safetensors file> for meaningful features",
                UserWarning, stacklevel=2,
            )
        else:
            self._load_weights(Path(c.weights))

    def _load_weights(self, path: Path) -> None:
        from timm.models import adapt_input_conv

        from colorkit.core.checkpoint import load_tensors

        if path.suffix.lower() != ".safetensors":
            raise ColorkitError(f"timm backbone weights must be a .safetensors file; refusing {path}")
        saved = load_tensors(path)
        own = self.model.state_dict()
        state = {}
        for key, value in saved.items():
            key = key.removeprefix("model.")
            if key not in own:
                continue
            if (
                value.dim() == 4
                and own[key].dim() == 4
                and value.shape[1] != own[key].shape[1]
                and own[key].shape[1] == 1
            ):
                value = adapt_input_conv(1, value)  # RGB first conv -> grey
            if value.shape == own[key].shape:
                state[key] = value
        if not state:
            raise ColorkitError(f"{path} holds no tensor of timm:{self.config.variant} (checked {len(saved)} names)")
        missing = sorted(set(own) - set(state))
        if missing:
            warnings.warn(f"{path}: {len(missing)} tensors of timm:{self.config.variant} not found "
                          f"(e.g. {', '.join(missing[:3])}); they stay random-init", UserWarning, stacklevel=3)
        self.model.load_state_dict(state, strict=False)

    def forward(self, grey: Tensor) -> Tensor:
        x = (grey - self.norm_mean) / self.norm_std
        return self.model(x)[-1]  # (B, out_channels, H/r, W/r)
