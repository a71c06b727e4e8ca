"""Registries: one per kind of component, name -> factory (timm-style).

``create_<kind>(name, **kwargs)`` builds a component, ``list_<kind>s(pattern)`` lists names.
An unknown name fails listing the known ones; a duplicate name is an error naming both
sources. A name ending in ``:`` registers a family (a plugin's ``fam:`` gives ``fam:member`` for every member); the
part after the colon is passed to the factory as ``variant=``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS: tuple[str, ...] = (
    "backbone",
    "embedder",
    "method",
    "decoder_loss",
    "metric",
    "dataset",
)


class ColorkitError(Exception):
    """An error the user can act on; the CLI prints it on one line and exits 2."""


class UnknownComponentError(ColorkitError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateComponentError(ColorkitError):
    pass


@dataclass(frozen=True)
class Entry:
    """One registered component."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str  # the plugin (entry-point or built-in module) that registered it
    distribution: str  # the installed distribution it came from
    description: str = ""

    @property
    def source(self) -> str:
        return f"plugin '{self.plugin}' (distribution '{self.distribution}')"

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "factory": f"{getattr(self.factory, '__module__', '?')}."
                       f"{getattr(self.factory, '__qualname__', repr(self.factory))}",
            "description": self.description,
        }


@dataclass
class Registry:
    kind: str
    entries: dict[str, Entry] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        if entry.kind != self.kind:
            raise ValueError(f"entry of kind {entry.kind!r} added to the {self.kind} registry")
        if not entry.name or any(c.isspace() for c in entry.name) or "," in entry.name:
            raise ColorkitError(
                f"invalid {self.kind} name {entry.name!r} from {entry.source}: "
                "expected a non-empty name without spaces or commas"
            )
        old = self.entries.get(entry.name)
        if old is not None:
            raise DuplicateComponentError(
                f"duplicate {self.kind} name {entry.name!r}: registered by {old.source} "
                f"and again by {entry.source}"
            )
        self.entries[entry.name] = entry

    def _family(self, name: str) -> tuple[Entry, str] | None:
        if ":" in name:
            prefix, variant = name.split(":", 1)
            fam = self.entries.get(prefix + ":")
            if fam is not None and variant:
                return fam, variant
        return None

    def get(self, name: str) -> Entry:
        if name in self.entries:
            return self.entries[name]
        fam = self._family(name)
        if fam is not None:
            return fam[0]
        known = ", ".join(self.names()) or "none registered"
        raise UnknownComponentError(f"unknown {self.kind.replace('_', ' ')} {name!r}; known: {known}")

    def create(self, name: str, **kwargs: Any) -> Any:
        entry = self.get(name)
        fam = self._family(name) if name not in self.entries else None
        if fam is not None:
            kwargs = {"variant": fam[1], **kwargs}
        try:
            obj = entry.factory(**kwargs)
        except (ColorkitError, ValueError, TypeError, MemoryError):
            raise  # callers word bad options (pydantic errors are ValueErrors); memory is reported as such
        except Exception as exc:  # noqa: BLE001 - a plugin's constructor may raise anything
            msg = " ".join(str(exc).split()) or "no message"
            raise ColorkitError(f"{self.kind.replace('_', ' ')} {name!r} from {entry.source} failed to build: "
                                f"{type(exc).__name__}: {msg}") from None
        # Components remember the registry name they were built under (used by checkpoints).
        try:
            obj.registry_name = name
        except Exception:  # noqa: BLE001 - plain functions or frozen objects
            pass
        return obj

    def names(self, pattern: str | None = None) -> list[str]:
        names = sorted(self.entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatch(n, pattern)]
        return names

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except UnknownComponentError:
            return False
