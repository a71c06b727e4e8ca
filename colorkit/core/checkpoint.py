"""Checkpoints: a directory of config JSON + safetensors weights (+ statistics).

Layout of a component checkpoint ``DIR``::

    DIR/model.json          {"format", "colorkit_version", "kind", "name", "config", "shapes", ...}
    DIR/model.safetensors   the state_dict (safetensors; pickle is never read or written)
    DIR/stats.safetensors   colour statistics, when the component uses them

Writes are atomic at directory level: everything is written to ``DIR.tmp-*``, then the old
directory is moved aside and the new one moved in; a crash at any point leaves either the
previous checkpoint or the new one complete (the loader also recovers ``DIR.old``).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError as SafetensorsError
from safetensors import safe_open
from safetensors.torch import load_file

from colorkit import __version__
from colorkit.core.fs import (
    atomic_dir,
    atomic_write_text,
    lock_dir,  # noqa: F401 - until train/engine.py, train/runs.py, apps/video.py import fs
)
from colorkit.core.interfaces import saved_weights_follow
from colorkit.core.registry import ColorkitError
from colorkit.core.tensorfile import save_tensors

FORMAT = "colorkit-checkpoint-v1"
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt"}


def resolve_dir(path: str | Path) -> Path:
    """The checkpoint directory to read: ``path``, or ``path.old`` left by a crash."""
    path = Path(path)
    if path.is_dir():
        return path
    old = path.with_name(path.name + ".old")
    if old.is_dir():
        return old
    raise ColorkitError(f"no checkpoint directory at {path}")


def regular_file(path: str | Path, what: str) -> Path:
    """``path`` if it is a regular file (a link to one is fine); a one-line error that says
    which when it is missing or is a FIFO, a device (``/dev/zero``) or a folder, none of
    which is ever opened."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ColorkitError(f"missing {what} {path}") from None
    except OSError as exc:
        raise ColorkitError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise ColorkitError(f"{what} {path} is {kind}, not a regular file; refusing to read it")
    return path


def _safetensors_path(path: str | Path) -> Path:
    """``path`` if it names an existing regular file that is not a pickle format; else a
    one-line error."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ColorkitError(
            f"refusing to load {path}: only safetensors files are read (pickle-based formats can run code)"
        )
    return regular_file(path, "weights file")


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; anything else (pickles included) is refused."""
    path = _safetensors_path(path)
    try:
        return load_file(str(path))
    except (SafetensorsError, OSError, ValueError, RuntimeError) as exc:
        raise ColorkitError(f"{path} is not a valid safetensors file ({exc})") from None


def component_meta(obj: Any, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "colorkit_version": __version__,
        "kind": getattr(obj, "kind", ""),
        "name": getattr(obj, "registry_name", "") or "",
        "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "config": obj.config.model_dump(mode="json"),
        "shapes": {k: list(v.shape) for k, v in state.items()},
    }


def write_component(directory: Path, obj: Any, *, prefix: str = "model", extra: dict[str, Any] | None = None) -> None:
    """Write ``prefix.json`` + ``prefix.safetensors`` for a component into ``directory``
    (not atomic by itself: call inside :func:`atomic_dir`)."""
    state = obj.state_dict()
    meta = component_meta(obj, state)
    if extra:
        meta.update(extra)
    save_tensors(
        directory / f"{prefix}.safetensors", state, {"format": FORMAT, "kind": meta["kind"], "name": meta["name"]}
    )
    atomic_write_text(directory / f"{prefix}.json", json.dumps(meta, indent=2, sort_keys=True))


def save_component(obj: Any, directory: str | Path, *, stats: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Atomically save a component (and its colour statistics) to ``directory``."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        write_component(tmp, obj, extra=extra)
        if stats is not None:
            stats.save(tmp / "stats.safetensors")
    return directory


MAX_JSON_BYTES = 64 * 1024**2
"""Largest JSON file of a checkpoint or run read (a config is a few KB)."""


def read_json(path: Path) -> Any:
    """A JSON file of a run or checkpoint: regular, at most :data:`MAX_JSON_BYTES`, UTF-8,
    valid and not absurdly nested; else a one-line error."""
    path = regular_file(path, "file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ColorkitError(f"{path} is {path.stat().st_size:,} bytes, more than a colorkit JSON file can be")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ColorkitError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise ColorkitError(f"{path} is not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise ColorkitError(f"{path} is not valid JSON ({exc})") from None


def read_meta(directory: Path, prefix: str = "model") -> dict[str, Any]:
    meta_path = directory / f"{prefix}.json"
    if not meta_path.is_file():
        found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        raise ColorkitError(
            f"{directory} is not a colorkit checkpoint: no {prefix}.json (found: {', '.join(found) or 'nothing'})"
        )
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise ColorkitError(f"{meta_path} holds a JSON {type(meta).__name__}, expected an object")
    if meta.get("format") != FORMAT:
        raise ColorkitError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    ver = str(meta.get("colorkit_version", "?"))
    if ver.split(".")[:1] != __version__.split(".")[:1]:
        raise ColorkitError(
            f"{meta_path} was written by colorkit {ver}; this is colorkit {__version__} (major versions differ)"
        )
    bad = [k for k, t in (("kind", str), ("name", str), ("config", dict)) if not isinstance(meta.get(k), t)]
    if bad:
        raise ColorkitError(
            f"{meta_path} lacks valid {', '.join(bad)} (expected kind and name strings and a config object)"
        )
    return meta


def check_state(
    meta: dict[str, Any], state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: Path
) -> None:
    """Compare saved tensors with the freshly built model's; say exactly what differs."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: saved {list(state[k].shape)}, model {list(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors (e.g. {', '.join(unexpected[:3])})")
    if mismatched:
        problems.append(f"shape mismatch in {len(mismatched)} (e.g. {'; '.join(mismatched[:3])})")
    if problems:
        raise ColorkitError(
            f"checkpoint {where} does not match {meta.get('kind')} {meta.get('name')!r}: " + "; ".join(problems)
        )


def load_component(directory: str | Path, *, kind: str | None = None, name: str | None = None,
                   prefix: str = "model", map_location: str | torch.device = "cpu", **factory_kwargs: Any) -> Any:
    """Rebuild a component from its checkpoint through the registry and load its weights.

    ``kind``/``name``, when given, must match what was saved. ``factory_kwargs`` are passed
    to the factory (e.g. ``stats=`` for methods: :func:`colorkit.core.stats.load_method_checkpoint`
    reads a method checkpoint's ``stats.safetensors`` and passes it)."""
    from colorkit.core.plugin_manager import registry

    directory = resolve_dir(directory)
    meta = read_meta(directory, prefix)
    if kind is not None and meta.get("kind") != kind:
        raise ColorkitError(f"checkpoint {directory} holds a {meta.get('kind')!r}, expected a {kind!r}")
    if name is not None and meta.get("name") != name:
        raise ColorkitError(f"checkpoint {directory} holds {meta.get('name')!r}, expected {name!r}")
    reg = registry(meta["kind"])
    if meta["name"] not in reg:
        from colorkit.core.plugin_manager import failed_import_text, import_failures

        module = str(meta.get("class", "")).split(".")[0]
        failed = import_failures(module) or import_failures()
        raise ColorkitError(f"{directory / (prefix + '.json')} needs the {meta['kind'].replace('_', ' ')} "
                            f"{meta['name']!r}, which is not registered; "
                            + (f"it may come from {failed_import_text(failed[0])}" if failed else
                               "install the plugin package that provides it (colorkit plugins lists what is "
                               "installed)"))
    weights = directory / f"{prefix}.safetensors"
    saved_shapes = header_shapes(weights)
    # Build on the meta device first (no memory): the config's shapes are checked against
    # the file's header before anything of the config's size is allocated.
    try:
        with torch.device("meta"), saved_weights_follow():
            probe = reg.create(meta["name"], config=meta["config"], **factory_kwargs)
    except Exception:  # noqa: BLE001 - built for real below (a bad config fails there, worded as usual)
        probe = None
    optional = set(getattr(reg.get(meta["name"]).factory, "optional_state", ()))
    external = meta.get("external_backbone_sha256")  # the backbone's weights come from its package

    def expected_of(model: Any, saved: dict[str, Any]) -> dict[str, Any]:
        """The model's state less the optional entries an older checkpoint lacks (and the
        backbone's, when they come from the installed package)."""
        return {k: v for k, v in model.state_dict().items()
                if k in saved or (k not in optional and not (external and k.startswith("backbone.")))}

    if probe is not None:
        check_state(meta, saved_shapes, expected_of(probe, saved_shapes), directory)
        del probe
    state = load_tensors(weights)
    check_finite(state, weights)
    try:
        with saved_weights_follow():  # the file holds every tensor: no initialisation is read
            obj = reg.create(meta["name"], config=meta["config"], **factory_kwargs)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        msg = " ".join(str(exc).split())[:400]
        raise ColorkitError(f"{directory / (prefix + '.json')}: the config does not fit {meta['kind']} "
                            f"{meta['name']!r} ({type(exc).__name__}: {msg})") from None
    if external:
        _load_external_backbone(obj, external, directory)
        state = {**state, **{k: v for k, v in obj.state_dict().items() if k.startswith("backbone.")}}
    expected = expected_of(obj, state)
    check_state(meta, state, expected, directory)
    check_dtypes(state, expected, weights)
    obj.load_state_dict(state, strict=len(expected) == len(obj.state_dict()))
    return obj.to(map_location)


def _load_external_backbone(obj: Any, sha256: str, directory: Path) -> None:
    """A checkpoint without its frozen backbone's tensors (the bundled demo model): load
    them from the installed package and check they are the ones it was built with."""
    backbone = getattr(obj, "backbone", None)
    if not isinstance(sha256, str):
        raise ColorkitError(f"checkpoint {directory}: external_backbone_sha256 must be a hex string")
    if backbone is None or not hasattr(backbone, "load_pretrained"):
        raise ColorkitError(f"checkpoint {directory} expects a pretrained backbone, which its model does not have")
    got = backbone.load_pretrained(write_cache=False).get("backbone_weights_sha256")  # loading writes nothing
    if got != sha256:
        raise ColorkitError(f"checkpoint {directory} was built with backbone weights {sha256[:12]}..., the installed "
                            f"package gives {str(got)[:12]}...; reinstall the version colorkit pins")


def check_dtypes(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: Path) -> None:
    """Refuse integer tensors where the model holds floating-point ones (quantized or
    damaged weights would load into grey output)."""
    for k in sorted(state):
        if expected[k].is_floating_point() and not state[k].is_floating_point():
            raise ColorkitError(f"{where}: tensor {k!r} is {str(state[k].dtype).removeprefix('torch.')}, the model "
                                f"holds floating point; refusing to load quantized or damaged weights")


class _Shape:
    """A tensor stand-in with only a shape (what :func:`check_state` compares)."""

    def __init__(self, shape: list[int]) -> None:
        self.shape = tuple(shape)


def header_shapes(path: str | Path) -> dict[str, Any]:
    """Tensor shapes from a safetensors file's header, without reading the tensors."""
    path = _safetensors_path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: _Shape(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorsError, OSError, ValueError, RuntimeError) as exc:
        raise ColorkitError(f"{path} is not a valid safetensors file ({exc})") from None


def check_finite(state: dict[str, torch.Tensor], where: Path) -> None:
    """Refuse weights holding NaN or infinity (they load silently and give black images)."""
    for k in sorted(state):
        v = state[k]
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise ColorkitError(f"{where}: tensor {k!r} holds {bad} NaN or infinite value(s); refusing to load "
                                "damaged weights")


