"""The plugin manager: built-ins, then the ``colorkit`` entry-point group.

Environment controls (read when plugins first load):

* ``COLORKIT_LOAD_PLUGINS``: comma-separated entry-point names to load; unset loads all,
  an empty string loads none (only colorkit's core components remain).
* ``COLORKIT_BLOCK_PLUGINS``: comma-separated entry-point names never to load.

A plugin that raises on import, uses a hook name colorkit does not define, or raises
inside a hook is reported (name + error, see :func:`failures`) and skipped; the rest keep
working.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from colorkit.core import hookspecs
from colorkit.core.registry import KINDS, ColorkitError, DuplicateComponentError, Entry, Registry

hookimpl = pluggy.HookimplMarker("colorkit")

ENTRY_POINT_GROUP = "colorkit"
# Core components (metrics, data sets) are registered from these modules directly, as
# llm does with its default plugins.
BUILTIN_MODULES = ("colorkit.builtin_components",)

HOOK_FOR_KIND = {
    "backbone": "register_backbones",
    "embedder": "register_embedders",
    "method": "register_methods",
    "decoder_loss": "register_decoder_losses",
    "metric": "register_metrics",
    "dataset": "register_datasets",
}


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    distribution: str
    error: str
    on_import: bool = False
    """True when importing the plugin's module failed (nothing of it is registered)."""

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' (distribution '{self.distribution}') failed: {self.error}"


@dataclass(frozen=True)
class LoadedPlugin:
    name: str
    distribution: str
    module: str


class _State:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("colorkit")
        self.pm.add_hookspecs(hookspecs)
        self.registries = {kind: Registry(kind) for kind in KINDS}
        self.failures: list[PluginFailure] = []
        self.loaded: list[LoadedPlugin] = []
        self.dist_of: dict[str, str] = {}


_state: _State | None = None
_lock = threading.RLock()
_loading = threading.local()
_in_process: dict[tuple[str, str], Entry] = {}
"""Components registered by :func:`add_in_process` (``colorkit.register``), kept across
:func:`reload`: ``{(kind, name): entry}``."""

IN_PROCESS = "in-process"
"""The distribution of a component registered in the running process, not by a package."""


def _env_list(var: str) -> list[str] | None:
    val = os.environ.get(var)
    if val is None:
        return None
    return [v.strip() for v in val.split(",") if v.strip()]


def _check_hook_names(module: ModuleType, pm: pluggy.PluginManager) -> None:
    """Reject hook implementations whose name colorkit does not define (a misspelling)."""
    known = set(HOOK_FOR_KIND.values()) | {"register_commands", "reference_embedder"}
    for attr in dir(module):
        obj = getattr(module, attr, None)
        if callable(obj) and getattr(obj, "colorkit_impl", None) is not None and attr not in known:
            raise ColorkitError(
                f"unknown hook {attr!r}; colorkit hooks are: {', '.join(sorted(known))}"
            )


def _register_module(st: _State, name: str, dist: str, load) -> None:
    try:
        module = load()
        _check_hook_names(module, st.pm)
        st.pm.register(module, name=name)
    except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, not fatal
        st.failures.append(PluginFailure(name, dist, f"{type(exc).__name__}: {exc}", on_import=True))
        return
    st.dist_of[name] = dist
    st.loaded.append(LoadedPlugin(name, dist, getattr(module, "__name__", str(module))))


def _summary(doc: str) -> str:
    """First sentence of a docstring's first paragraph, on one line."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    cut = para.find(". ")
    return para[: cut + 1] if cut >= 0 else para


def _guarded(st: _State, hook_name: str, impl: Any, **kwargs: Any) -> PluginFailure | None:
    """Call one plugin's implementation of ``hook_name``; if it raises, record the failure
    (plugin, distribution, error) and return it instead of raising. Every hook colorkit
    calls goes through here, so one broken plugin never stops the others."""
    try:
        impl.function(**{k: kwargs[k] for k in impl.argnames})  # an implementation may take fewer arguments
    except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, not fatal
        fail = PluginFailure(impl.plugin_name, st.dist_of.get(impl.plugin_name, "?"),
                             f"{hook_name}: {type(exc).__name__}: {exc}")
        st.failures.append(fail)
        return fail
    return None


def call_hook(hook_name: str, **kwargs: Any) -> list[PluginFailure]:
    """Call every plugin's implementation of ``hook_name`` (colorkit's own first), each
    guarded (see :func:`_guarded`); returns the failures of this call."""
    st = state()
    out = []
    for impl in getattr(st.pm.hook, hook_name).get_hookimpls():  # registration order
        fail = _guarded(st, hook_name, impl, **kwargs)
        if fail is not None:
            out.append(fail)
    return out


def _collect(st: _State) -> None:
    for kind, hook_name in HOOK_FOR_KIND.items():
        for impl in getattr(st.pm.hook, hook_name).get_hookimpls():  # registration order: colorkit's own first
            plugin = impl.plugin_name
            dist = st.dist_of.get(plugin, "?")

            def register(name: str, factory: Any, *, description: str = "", _k=kind, _p=plugin, _d=dist) -> None:
                doc = description or _summary(getattr(factory, "__doc__", None) or "")
                try:
                    st.registries[_k].add(Entry(_k, name, factory, _p, _d, doc))
                except DuplicateComponentError as exc:
                    # The first registration keeps the name (colorkit's own come first, so a
                    # plugin never replaces a built-in); the clash is reported naming both,
                    # and the plugin's other components still register.
                    st.failures.append(PluginFailure(_p, _d, f"{exc}; the second is ignored"))

            _guarded(st, hook_name, impl, register=register)


def _load() -> _State:
    st = _State()
    for modname in BUILTIN_MODULES:
        _register_module(st, modname, "colorkit", lambda m=modname: importlib.import_module(m))
    only = _env_list("COLORKIT_LOAD_PLUGINS")
    blocked = set(_env_list("COLORKIT_BLOCK_PLUGINS") or [])
    seen: set[str] = set()
    def order(ep: md.EntryPoint) -> tuple[bool, str]:  # colorkit's own plugins first, then by name
        return (ep.dist is None or ep.dist.name != "colorkit", ep.name)

    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=order):
        if ep.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(ep.name)
        if ep.name in blocked or (only is not None and ep.name not in only):
            continue
        dist = ep.dist.name if ep.dist is not None else "?"
        _register_module(st, ep.name, dist, ep.load)
    try:
        st.pm.check_pending()
    except pluggy.PluginValidationError as exc:  # pragma: no cover - guarded above
        st.failures.append(PluginFailure(str(exc.plugin), "?", str(exc)))
    _collect(st)
    for entry in _in_process.values():  # after the packages: a package's name wins, as a built-in's does
        try:
            st.registries[entry.kind].add(entry)
        except DuplicateComponentError as exc:
            st.failures.append(PluginFailure(entry.plugin, IN_PROCESS, f"{exc}; the second is ignored"))
    for f in st.failures:
        print(f"colorkit: warning: {f}", file=sys.stderr)
    return st


def state() -> _State:
    global _state
    with _lock:
        if _state is None:
            _loading.active = True
            try:
                _state = _load()
            finally:
                _loading.active = False
        return _state


def reload() -> None:
    """Forget loaded plugins; the next use loads them again (tests, after installs)."""
    global _state
    with _lock:
        _state = None
        importlib.invalidate_caches()  # new distributions on sys.path become visible


def add_in_process(kind: str, name: str, factory: Any, description: str = "") -> Entry:
    """Register ``factory`` as the ``kind`` ``name`` in this process only (no package, no
    entry point): plugin = the factory's module, distribution :data:`IN_PROCESS`. A name
    already taken, by a package or in process, is a :class:`DuplicateComponentError`."""
    reg = registry(kind)
    doc = description or _summary(getattr(factory, "__doc__", None) or "")
    entry = Entry(kind, name, factory, getattr(factory, "__module__", None) or "?", IN_PROCESS, doc)
    with _lock:
        reg.add(entry)
        _in_process[(kind, name)] = entry
    return entry


def remove_in_process(kind: str, name: str) -> None:
    """Undo :func:`add_in_process`; a name a package registered cannot be removed."""
    reg = registry(kind)
    with _lock:
        if (kind, name) not in _in_process:
            where = f"registered by {reg.entries[name].source}" if name in reg.entries else "not registered"
            raise ColorkitError(f"{kind} {name!r} was not registered in this process ({where}); "
                                "only colorkit.register(...) registrations can be removed")
        del _in_process[(kind, name)]
        if reg.entries.get(name) is not None and reg.entries[name].distribution == IN_PROCESS:
            del reg.entries[name]


def plugin_manager() -> pluggy.PluginManager:
    return state().pm


def registry(kind: str) -> Registry:
    """The registry of ``kind``."""
    if kind not in KINDS:
        raise ColorkitError(f"unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")
    return state().registries[kind]


def is_family_name(name: str) -> bool:
    """Whether ``name`` names a member of a registered family of any kind (``prefix:variant``
    where ``prefix:`` is registered, e.g. a backbone family's ``name:variant``)."""
    prefix, colon, variant = name.partition(":")
    return bool(colon and variant) and any(f"{prefix}:" in state().registries[kind].entries for kind in KINDS)


def registered_name(cls: type, kind: str) -> str:
    """The one name ``cls`` is registered under as a ``kind`` (``""`` when it is not
    registered, is registered under several names, or plugins are still loading): how a
    component built directly, ``MDNMethod(preset="tiny", stats=...)``, knows its name."""
    st = None if getattr(_loading, "active", False) else state()  # built while plugins load: no name yet
    reg = st.registries.get(kind) if st is not None else None
    if reg is None:
        return ""
    names = [name for name, e in reg.entries.items() if e.factory is cls and not name.endswith(":")]
    return names[0] if len(names) == 1 else ""


def failures() -> list[PluginFailure]:
    return list(state().failures)


def import_failures(plugin: Any = None, distribution: Any = None) -> list[PluginFailure]:
    """The installed plugins that failed to import: those of ``plugin`` or ``distribution``
    when either is given, else all."""
    fails = [f for f in state().failures if f.on_import]
    if plugin is None and distribution is None:
        return fails
    return [f for f in fails if f.plugin == plugin or (distribution and f.distribution == distribution)]


def raise_if_failed_import(needs: str, origin: Any) -> None:
    """When the plugin recorded in ``origin`` (``{"plugin", "distribution"}``, as ``run.json``
    records a component's origin) is installed but failed to import: a one-line error,
    ``NEEDS, provided by plugin ... which is installed but failed to import (why)``."""
    origin = origin if isinstance(origin, dict) else {}
    failed = import_failures(origin.get("plugin"), origin.get("distribution"))
    if failed:
        raise ColorkitError(f"{needs}, provided by {failed_import_text(failed[0])}; fix that error (colorkit plugins "
                            "shows it)")


def failed_import_text(fail: PluginFailure) -> str:
    """``plugin 'p' (distribution 'd'), which is installed but failed to import (Error: why)``
    on one line."""
    why = " ".join(fail.error.split())
    why = why if len(why) <= 300 else why[:297] + "..."
    return (f"plugin '{fail.plugin}' (distribution '{fail.distribution}'), which is installed but failed to import "
            f"({why})")


def loaded_plugins() -> list[LoadedPlugin]:
    return list(state().loaded)


def all_entries() -> list[Entry]:
    st = state()
    return [e for kind in KINDS for e in (st.registries[kind].entries[n] for n in st.registries[kind].names())]
