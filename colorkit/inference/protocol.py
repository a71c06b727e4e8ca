"""What the photo and clip pipelines need of a loaded model: :class:`LoadedModel`, a
:class:`typing.Protocol` that :class:`colorkit.inference.Colorizer` satisfies. The pipelines
are typed against it, so they never import the class that calls them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from colorkit.core.interfaces import Method
    from colorkit.train.config import SampleConfig

__all__ = ["LoadedModel"]


class LoadedModel(Protocol):
    """A trained method ready to sample at its own square input size."""

    device: torch.device
    method: Method
    size: int
    """The side of the model's square input."""
    sampling: SampleConfig
    """The sampling settings it was loaded with (``mode``, ``options``)."""

    def sample(self, grey: torch.Tensor, k: int = 5, *, mode: str | None = None, seed: int = 0,
               hints: torch.Tensor | None = None) -> torch.Tensor:
        """``grey`` (B,1,s,s) at :attr:`size` -> ab (B,k,2,s,s), ab/128."""
        ...
