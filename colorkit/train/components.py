"""Which components a run needs and from which packages: recorded in ``run.json`` at
training time, checked when a run is loaded (a missing plugin is named with the package to
install, a plugin that failed to import with its error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from colorkit.core.registry import ColorkitError

_NEEDED_KINDS = {"backbone": "backbone", "embedder": "embedder"}
"""Config fields naming a component that sampling needs (decoder losses are for training only)."""


def components_used(method: str, config: Any) -> dict[str, dict[str, str]]:
    """``{"kind:name": {"plugin", "distribution", "version"}}`` of the method and of the
    components its config names that loading needs: recorded in ``run.json`` so that a
    run whose plugin is missing says which package to install."""
    from importlib import metadata

    from colorkit.core.plugin_manager import registry

    wanted = [("method", method)]
    fields = config.model_dump() if isinstance(config, BaseModel) else dict(config or {})
    for field, kind in _NEEDED_KINDS.items():
        if isinstance(fields.get(field), str):
            wanted.append((kind, fields[field]))
    out: dict[str, dict[str, str]] = {}
    for kind, name in wanted:
        try:
            entry = registry(kind).get(name)
        except ColorkitError:
            continue
        try:
            version = metadata.version(entry.distribution)
        except (metadata.PackageNotFoundError, ValueError):
            version = ""
        out[f"{kind}:{name}"] = {"plugin": entry.plugin, "distribution": entry.distribution, "version": version}
    return out


def check_components_installed(info: dict[str, Any], run_dir: Path) -> None:
    """A one-line error naming the package to install when a component the run needs is
    not registered (``run.json``'s ``components``, recorded at training time)."""
    from colorkit.core.plugin_manager import raise_if_failed_import, registry

    recorded = info.get("components")
    if not isinstance(recorded, dict):
        return
    for key, origin in sorted(recorded.items()):
        if not isinstance(key, str) or ":" not in key:
            continue
        kind, name = key.split(":", 1)
        try:
            installed = name in registry(kind)
        except ColorkitError:
            installed = False
        if installed:
            continue
        dist = origin.get("distribution") if isinstance(origin, dict) else None
        ver = origin.get("version") if isinstance(origin, dict) else None
        raise_if_failed_import(f"{run_dir} needs the {kind.replace('_', ' ')} {name!r}", origin)
        if isinstance(dist, str) and dist:
            pkg = f"{dist}=={ver}" if isinstance(ver, str) and ver else dist
            raise ColorkitError(f"{run_dir} needs the {kind.replace('_', ' ')} {name!r}, provided by the package "
                                f"{dist!r} (plugin {origin.get('plugin')!r}), which is not installed; install it "
                                f"(pip install '{pkg}') to load this run")
        raise ColorkitError(f"{run_dir} needs the {kind.replace('_', ' ')} {name!r}, which is not installed")
