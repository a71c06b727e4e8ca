"""Encoding pictures: a PIL image or a matplotlib figure as PNG bytes (:func:`png_bytes`),
written atomically through :mod:`colorkit.core.fs` (:func:`atomic_write_png`). Loss curves,
bench plots and contact sheets are saved this way; :mod:`colorkit.core.fs` writes bytes only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from colorkit.core.fs import atomic_write_bytes

__all__ = ["png_bytes", "atomic_write_png"]


def png_bytes(image: Any, **save_kwargs: Any) -> bytes:
    """``image`` encoded as PNG: a matplotlib figure (``savefig(**save_kwargs)``, then
    closed, also when saving fails) or a PIL image (``save(**save_kwargs)``)."""
    buf = io.BytesIO()
    if hasattr(image, "savefig"):
        import matplotlib.pyplot as plt

        try:
            image.savefig(buf, format="png", **save_kwargs)
        finally:
            plt.close(image)
    else:
        image.save(buf, format="PNG", **save_kwargs)
    return buf.getvalue()


def atomic_write_png(path: str | Path, image: Any, **save_kwargs: Any) -> None:
    """Write ``image`` (see :func:`png_bytes`) as a PNG file atomically, as
    :func:`colorkit.core.fs.atomic_write_bytes`."""
    atomic_write_bytes(path, png_bytes(image, **save_kwargs))
