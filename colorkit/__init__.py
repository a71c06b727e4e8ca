"""colorkit: diverse image colorization (Deshpande et al., "Learning Diverse Image
Colorization", CVPR 2017), its baselines, and a benchmark of diversity against error."""

from __future__ import annotations

__version__ = "0.1.0"

from colorkit.api import (  # noqa: E402
    create_backbone,
    create_decoder_loss,
    create_embedder,
    create_method,
    create_metric,
    list_backbones,
    list_datasets,
    list_decoder_losses,
    list_embedders,
    list_methods,
    list_metrics,
)
from colorkit.plugins import hookimpl  # noqa: E402
from colorkit.registry import ColorkitError  # noqa: E402


def load(run_dir=None, device: str = "auto"):
    """Load a trained run: ``colorkit.load("runs/mdn").colorize("photo.jpg", k=5)``.

    With no argument, the bundled demo model: the ``mdn`` method (``small`` preset)
    trained only on the ~300 small (64x64) shipped demo photos, in half precision. It
    works out of the box; it is not a model trained on a large data set."""
    from colorkit.runs import load as _load

    return _load(run_dir, device=device)


__all__ = [
    "load",
    "__version__",
    "ColorkitError",
    "hookimpl",
    "create_backbone",
    "create_decoder_loss",
    "create_embedder",
    "create_method",
    "create_metric",
    "list_backbones",
    "list_datasets",
    "list_decoder_losses",
    "list_embedders",
    "list_methods",
    "list_metrics",
]
