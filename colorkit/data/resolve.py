"""Turn what ``--dataset`` names into a :class:`~colorkit.data.sources.Source`: a path, a
registered data set name (a folder, a fetched :class:`~colorkit.data.recipes.Recipe`, a
generated set) or a ``Source`` itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from colorkit.core.registry import ColorkitError
from colorkit.data.archives import source_for_path
from colorkit.data.cache import cache_root
from colorkit.data.recipes import Recipe
from colorkit.data.records import Source


def _registered(text: str):
    from colorkit.core.plugin_manager import registry

    reg = registry("dataset")
    return reg if text in reg else None, reg


def _cache_kwarg(factory: Any, base: Path) -> dict[str, Any]:
    """``{"cache_dir": base}`` for a data set factory that takes ``cache_dir`` (a generated
    set writes its images there), else nothing."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    takes = "cache_dir" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {"cache_dir": base} if takes else {}


def resolve_source(source: Any, *, cache_dir: Path | None = None) -> tuple[Any, str]:
    """``(source, name)`` for a path, a registered data set name or a :class:`Source`.

    The first element is a :class:`~colorkit.data.sources.Source` for what ``prepare``
    reads. A bare name (a ``str`` without a path separator) that is registered as a data
    set wins over a folder of the same name in the working directory (write ``./name``).
    """
    if isinstance(source, Source):
        return source, source.name
    base = cache_root(cache_dir)
    text = os.fspath(source)
    is_bare = isinstance(source, str) and "/" not in text and os.sep not in text
    hit, reg = _registered(text) if is_bare else (None, None)
    if hit is not None:
        made = reg.create(text, **_cache_kwarg(reg.get(text).factory, base))
        if isinstance(made, Recipe):
            return made.source(base), text
        if isinstance(made, Source):
            return made, text
        if not isinstance(made, (str, os.PathLike)):
            raise ColorkitError(
                f"data set {text!r} ({reg.get(text).source}) gave {type(made).__name__}; "
                "expected a path, a colorkit.data.sources.Source or a Recipe"
            )
        path = Path(made).expanduser()
        if not path.exists():
            raise ColorkitError(f"data set {text!r} points to {path}, which does not exist")
        return source_for_path(path, name=text, cache_dir=base), text
    path = Path(text).expanduser()
    if path.exists():
        src = source_for_path(path, cache_dir=base)
        return src, src.name
    if reg is None:
        from colorkit.core.plugin_manager import registry

        reg = registry("dataset")
    known = ", ".join(reg.names()) or "none registered"
    raise ColorkitError(
        f"data set {text!r} is neither a folder, an archive (.tar, .tar.gz, .zip), an LMDB "
        f"directory nor a registered data set name; known names: {known}"
    )


__all__ = ["resolve_source"]
