"""Where colorkit keeps what it makes from data sets (prepared shards, fetched archives,
generated sets, file digests): ``cache_dir`` when one is given, else ``$COLORKIT_CACHE``,
else ``~/.cache/colorkit``."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$COLORKIT_CACHE`` if set, else ``~/.cache/colorkit``."""
    env = os.environ.get("COLORKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "colorkit"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` (``~`` expanded) when given, else :func:`default_cache_dir`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


__all__ = ["cache_root", "default_cache_dir"]
