"""What a result was made with: :func:`versions` of colorkit, Python and the libraries it
depends on, recorded in every ``run.json`` and ``results.json``."""

from __future__ import annotations

import platform

__all__ = ["__version__", "versions"]

__version__ = "0.1.0"
"""colorkit's version (``colorkit.__version__``; the same as pyproject.toml's)."""

OPTIONAL = ("kornia", "timm", "PIL", "triton")
"""Libraries whose version is recorded when they import (triton is absent off Linux)."""


def versions() -> dict[str, str]:
    """``{name: version}`` of colorkit, torch, Python, numpy and each importable
    :data:`OPTIONAL` library; one that fails to import is left out, never an error."""
    import numpy
    import torch

    out = {"colorkit": __version__, "torch": torch.__version__, "python": platform.python_version(),
           "numpy": numpy.__version__}
    for mod in OPTIONAL:
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - an optional library may fail in any way when imported
            pass
    return out
