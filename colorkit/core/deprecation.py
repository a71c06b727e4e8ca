"""Former names that still work: every one goes through this module, which warns with a
:class:`DeprecationWarning` naming the name to use instead.

- :func:`warn_renamed` for a former keyword, config field, hook or string: call it where
  the old name is accepted, then carry on with the new one.
- :class:`deprecated_alias` for a former attribute name: ``old = deprecated_alias("new")``
  in a class body; reading ``obj.old`` warns and returns ``obj.new``.
"""

from __future__ import annotations

import warnings
from typing import Any


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is a former name of ``new`` (``stacklevel`` 3: the caller of the
    function that accepted the old name)."""
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=stacklevel)


class deprecated_alias:
    """A class attribute that forwards to the attribute ``new`` and warns on every use:
    ``centres = deprecated_alias("centers")``. In a ``NamedTuple`` body, which does not
    tell an attribute its name, give it: ``deprecated_alias("centers", "centres")``."""

    def __init__(self, new: str, old: str | None = None) -> None:
        self.new = new
        self.old = old

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = self.old or name

    def _names(self, owner: type) -> tuple[str, str]:
        return f"{owner.__name__}.{self.old or '?'}", f"{owner.__name__}.{self.new}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        warn_renamed(*self._names(type(obj)))
        return getattr(obj, self.new)
