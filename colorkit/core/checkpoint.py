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

import contextlib
import contextvars
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError as SafetensorsError
from safetensors import safe_open
from safetensors.torch import load_file

from colorkit.core.environment import __version__
from colorkit.core.fs import (
    atomic_dir,
    atomic_write_text,
)
from colorkit.core.registry import ColorkitError
from colorkit.core.tensorfile import save_tensors

FORMAT = "colorkit-checkpoint-v1"
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt"}
EXTERNAL_KEY = "external_weights_sha256"
"""The field of ``model.json`` that says the checkpoint leaves out its component's
external weights (:class:`ExternalWeights`) and holds the digest they must have."""
STATS_FILE = "stats.safetensors"
"""A method checkpoint's colour statistics (beside ``model.safetensors``)."""

_LOADING_SAVED_WEIGHTS: contextvars.ContextVar[bool] = contextvars.ContextVar("colorkit_loading_saved_weights",
                                                                              default=False)


def loading_saved_weights() -> bool:
    """True while a component is being rebuilt from a saved run or checkpoint, whose file
    then holds every tensor. A component reads no initialisation (a ``weights=`` file given
    for training) and builds nothing needed only for training (a decoder loss) in that
    case, so that a finished run loads without the files and plugins it was trained with."""
    return _LOADING_SAVED_WEIGHTS.get()


@contextlib.contextmanager
def saved_weights_follow() -> Iterator[None]:
    """Inside: :func:`loading_saved_weights` is true (used by the checkpoint loader)."""
    token = _LOADING_SAVED_WEIGHTS.set(True)
    try:
        yield
    finally:
        _LOADING_SAVED_WEIGHTS.reset(token)


@dataclass(frozen=True)
class ExternalWeights:
    """A component's declaration of tensors that come from elsewhere than its checkpoint
    (e.g. an ImageNet backbone's weights shipped in an installed package), returned by
    ``Component.external_weights``.

    ``keys``: their names in the component's ``state_dict``; ``digest``: gives the sha256
    of the ones it holds now (``""`` when they were not loaded from their source); ``load``:
    loads them into the component from their source, writing nothing, and returns their
    digest; ``what`` names them and ``remedy`` says what to do when the source gives other
    ones, in the error a mismatch raises."""

    keys: frozenset[str]
    digest: Callable[[], str]
    load: Callable[[], str]
    what: str = "external weights"
    remedy: str = "install the version of the package that provides them"

    def under(self, name: str) -> ExternalWeights:
        """The same declaration seen from a component that holds this one as its
        sub-module ``name`` (the keys get ``name.`` in front)."""
        return replace(self, keys=frozenset(f"{name}.{k}" for k in self.keys))


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
    """``model.json`` of the component ``obj`` (a :class:`~colorkit.core.interfaces.Component`)
    whose ``state_dict`` is ``state``."""
    return {
        "format": FORMAT,
        "colorkit_version": __version__,
        "kind": obj.kind,
        "name": obj.registry_name or "",
        "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "config": obj.config.model_dump(mode="json"),
        "shapes": {k: list(v.shape) for k, v in state.items()},
    }


def write_component(directory: Path, obj: Any, *, prefix: str = "model", extra: dict[str, Any] | None = None,
                    external: bool = False) -> None:
    """Write ``prefix.json`` + ``prefix.safetensors`` for a component into ``directory``
    (not atomic by itself: call inside :func:`atomic_dir`). ``external=True``: leave out
    the tensors the component declares external (``external_weights``), recording their
    digest under :data:`EXTERNAL_KEY`."""
    state = obj.state_dict()
    meta = component_meta(obj, state)
    if external:
        ext = obj.external_weights()
        digest = ext.digest() if ext is not None else ""
        if not digest:
            raise ColorkitError(f"{type(obj).__name__} has no external weights loaded from their source to leave out")
        state = {k: v for k, v in state.items() if k not in ext.keys}
        meta[EXTERNAL_KEY] = digest
    if extra:
        meta.update(extra)
    save_tensors(
        directory / f"{prefix}.safetensors", state, {"format": FORMAT, "kind": meta["kind"], "name": meta["name"]}
    )
    atomic_write_text(directory / f"{prefix}.json", json.dumps(meta, indent=2, sort_keys=True))


def save_component(obj: Any, directory: str | Path, *, stats: Any = None, extra: dict[str, Any] | None = None,
                   external: bool = False) -> Path:
    """Atomically save a component (and its colour statistics) to ``directory``
    (``external``: see :func:`write_component`)."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        write_component(tmp, obj, extra=extra, external=external)
        if stats is not None:
            stats.save(tmp / STATS_FILE)
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
    to the factory (e.g. ``stats=`` for methods: :func:`load_method_checkpoint` reads a
    method checkpoint's ``stats.safetensors`` and passes it). A checkpoint that records
    :data:`EXTERNAL_KEY` gets the tensors its component declares external from their
    source, checked against that digest (:func:`load_external`)."""
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
    external = meta.get(EXTERNAL_KEY)  # the tensors declared external come from their source
    if external is not None and not isinstance(external, str):
        raise ColorkitError(f"checkpoint {directory}: {EXTERNAL_KEY} must be a hex string")

    def expected_of(model: Any, saved: dict[str, Any]) -> dict[str, Any]:
        """The model's state less the optional entries an older checkpoint lacks (and the
        external ones, when they come from their source)."""
        ext = model.external_weights() if external else None
        left_out = set(model.optional_state) | (ext.keys if ext is not None else set())
        return {k: v for k, v in model.state_dict().items() if k in saved or k not in left_out}

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
        keys = load_external(obj, external, directory)
        state = {**state, **{k: v for k, v in obj.state_dict().items() if k in keys}}
    expected = expected_of(obj, state)
    check_state(meta, state, expected, directory)
    check_dtypes(state, expected, weights)
    obj.load_state_dict(state, strict=len(expected) == len(obj.state_dict()))
    return obj.to(map_location)


def load_external(obj: Any, sha256: str, directory: Path) -> frozenset[str]:
    """Load the tensors ``obj`` declares external (``external_weights``) from their source
    and check that they are the ones the checkpoint in ``directory`` was built with
    (digest ``sha256``); returns their names. Loading writes nothing."""
    ext = obj.external_weights()
    if ext is None:
        raise ColorkitError(f"checkpoint {directory} expects external weights, which its model does not declare")
    got = ext.load()
    if got != sha256:
        raise ColorkitError(f"checkpoint {directory} was built with {ext.what} {sha256[:12]}..., the installed "
                            f"package gives {str(got)[:12]}...; {ext.remedy}")
    return ext.keys


def load_method_checkpoint(directory: str | os.PathLike[str], **kwargs: Any) -> Any:
    """A component saved by :func:`save_component` with its colour statistics (a method):
    ``stats.safetensors`` of the checkpoint folder (unless ``stats=`` is given) is passed
    to the factory; ``kwargs`` go to :func:`load_component`."""
    from colorkit.core.stats import ColorStats

    folder = resolve_dir(directory)
    stats_path = folder / STATS_FILE
    if "stats" not in kwargs and os.path.lexists(stats_path):
        kwargs["stats"] = ColorStats.load(regular_file(stats_path, "colour statistics file"))
    return load_component(folder, **kwargs)


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


