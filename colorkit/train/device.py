"""Where and how training runs: the device (``TrainConfig.device``), bf16 autocast,
channels-last memory format and ``torch.compile`` of a method's sub-modules."""

from __future__ import annotations

from typing import Protocol

import torch

from colorkit.core.registry import ColorkitError


class TrainConfig(Protocol):
    """What this module reads of a :class:`colorkit.train.engine.TrainConfig` (typed here
    by its fields, so that the engine imports this module and not the other way round)."""

    precision: str
    channels_last: bool | None


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype training runs under (``None``: plain fp32)."""
    if config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    return config.channels_last if config.channels_last is not None else device.type == "cuda"


def compile_modules(method: torch.nn.Module, backend: str) -> list[str]:
    """``torch.compile`` the forward of each direct sub-module of ``method`` in place
    (weights and state-dict keys unchanged). Returns the compiled modules' names. Code a
    stage calls through other methods (``encode``/``decode``) runs uncompiled."""
    names = []
    for name, mod in method.named_children():
        if any(True for _ in mod.parameters()):
            mod.compile(backend=backend)
            names.append(name)
    return names


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ColorkitError(f"invalid device {device!r}; expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ColorkitError(f"device {device!r} asked for, but no CUDA GPU is available here; use --device cpu "
                                "or auto")
        if dev.index is not None and dev.index >= count:
            raise ColorkitError(f"device {device!r} asked for, but this machine has {count} CUDA GPU(s) "
                                f"(cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ColorkitError(f"device {device!r} asked for, but MPS is not available here; use --device cpu or auto")
    elif dev.type != "cpu":
        raise ColorkitError(f"device {device!r} is not supported; expected auto, cpu, cuda, cuda:N or mps")
    return dev
