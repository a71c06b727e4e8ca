"""Public ``create_*`` / ``list_*`` functions over the registries (timm-style)."""

from __future__ import annotations

from typing import Any

from colorkit.core.plugin_manager import registry


def _create(kind: str, name: str, **kwargs: Any) -> Any:
    return registry(kind).create(name, **kwargs)


def create_backbone(name: str, **kwargs: Any):
    """Build a grey-feature backbone, e.g. ``create_backbone("colornet", preset="small")``."""
    return _create("backbone", name, **kwargs)


def create_embedder(name: str, **kwargs: Any):
    """Build a colour-field embedder, e.g. ``create_embedder("vae", preset="paper")``."""
    return _create("embedder", name, **kwargs)


def create_method(name: str, **kwargs: Any):
    """Build a method, e.g. ``create_method("mdn", stats=stats)``."""
    return _create("method", name, **kwargs)


def create_decoder_loss(name: str, **kwargs: Any):
    return _create("decoder_loss", name, **kwargs)


def create_metric(name: str, **kwargs: Any):
    return _create("metric", name, **kwargs)


def list_backbones(pattern: str | None = None) -> list[str]:
    return registry("backbone").names(pattern)


def list_embedders(pattern: str | None = None) -> list[str]:
    return registry("embedder").names(pattern)


def list_methods(pattern: str | None = None) -> list[str]:
    return registry("method").names(pattern)


def list_decoder_losses(pattern: str | None = None) -> list[str]:
    return registry("decoder_loss").names(pattern)


def list_metrics(pattern: str | None = None) -> list[str]:
    return registry("metric").names(pattern)


def list_datasets(pattern: str | None = None) -> list[str]:
    return registry("dataset").names(pattern)
