"""Public functions over the registries (timm-style): :func:`create` / :func:`list` for any
kind, the typed shortcuts ``create_method``, ``list_methods``, ... and :func:`register` /
:func:`unregister` for a component defined in the running process."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, TypeVar

from colorkit.core.plugin_manager import add_in_process, registry, remove_in_process

T = TypeVar("T")


def create_backbone(name: str, **kwargs: Any):
    """Build a grey-feature backbone, e.g. ``create_backbone("colornet", preset="small")``."""
    return create("backbone", name, **kwargs)


def create_embedder(name: str, **kwargs: Any):
    """Build a colour-field embedder, e.g. ``create_embedder("vae", preset="paper")``."""
    return create("embedder", name, **kwargs)


def create_method(name: str, **kwargs: Any):
    """Build a method, e.g. ``create_method("mdn", stats=stats)``."""
    return create("method", name, **kwargs)


def create_decoder_loss(name: str, **kwargs: Any):
    return create("decoder_loss", name, **kwargs)


def create_metric(name: str, **kwargs: Any):
    return create("metric", name, **kwargs)


def list_backbones(pattern: str | None = None) -> builtins.list[str]:
    return registry("backbone").names(pattern)


def list_embedders(pattern: str | None = None) -> builtins.list[str]:
    return registry("embedder").names(pattern)


def list_methods(pattern: str | None = None) -> builtins.list[str]:
    return registry("method").names(pattern)


def list_decoder_losses(pattern: str | None = None) -> builtins.list[str]:
    return registry("decoder_loss").names(pattern)


def list_metrics(pattern: str | None = None) -> builtins.list[str]:
    return registry("metric").names(pattern)


def list_datasets(pattern: str | None = None) -> builtins.list[str]:
    return registry("dataset").names(pattern)


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build the component ``name`` of ``kind`` (``"method"``, ``"backbone"``, ``"embedder"``,
    ``"decoder_loss"``, ``"metric"``, ``"dataset"``): ``create("method", "mdn", stats=stats)``
    is ``create_method("mdn", stats=stats)``."""
    return registry(kind).create(name, **kwargs)


def list(kind: str, pattern: str | None = None) -> builtins.list[str]:  # noqa: A001 - colorkit.list(kind)
    """The registered names of ``kind``, sorted, those matching the glob ``pattern`` when given:
    ``list("method", "mdn*")``."""
    return registry(kind).names(pattern)


def register(kind: str, name: str, *, description: str = "") -> Callable[[T], T]:
    """A decorator registering a component class (or factory) in this process, under
    ``name``, for scripts and notebooks: then ``create_method(name)``, ``colorkit list``,
    ``colorkit train --method name`` and ``colorkit bench --methods name`` run in this process
    find it. ``description`` defaults to the first line of its docstring. Packages register
    through entry points instead (docs/plugin-tutorial.md). :func:`unregister` undoes it::

        @colorkit.register("method", "mine")
        class Mine(colorkit.Method): ...
    """

    def deco(factory: T) -> T:
        add_in_process(kind, name, factory, description)
        return factory

    return deco


def unregister(kind: str, name: str) -> None:
    """Remove a component :func:`register` added (a package's cannot be removed)."""
    remove_in_process(kind, name)
