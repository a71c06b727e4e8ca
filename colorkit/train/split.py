"""The training split as the engine sees it: :class:`TrainSplit`.

``Trainer.fit`` takes any object with ``len()`` and ``batch(indices) -> {"grey", "ab",
"index"}`` (a prepared data set's :class:`~colorkit.data.dataset.SplitData`, or a split of
your own) and wraps it once in a :class:`TrainSplit`. The stage hooks (``skip``,
``on_start``, ``on_end``) get that wrapper; it answers everything the wrapped split does
(``len``, ``batch`` and any attribute of its own, e.g. ``indices`` or ``images_path``), so
hooks written for the bare split keep working, and ``split.data`` is the object given to
``fit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from colorkit.core.registry import ColorkitError


@dataclass(frozen=True)
class TrainSplit:
    """A training split: ``data`` (what ``fit`` was given), its ``size`` (images) and
    whether it is ``sharded`` (a prepared split whose rows a DataLoader reads lazily from
    the shards, through ``rgb_uint8``; any other split is read through ``batch``)."""

    data: Any
    size: int
    sharded: bool

    @classmethod
    def of(cls, split: Any) -> TrainSplit:
        """``split`` wrapped (a :class:`TrainSplit` is returned as it is); an object without
        ``len()`` and ``batch`` is refused with a one-line error."""
        if isinstance(split, TrainSplit):
            return split
        if not (hasattr(split, "__len__") and callable(getattr(split, "batch", None))):
            raise ColorkitError(f"the training split must have len() and batch(indices), got {type(split).__name__}")
        return cls(data=split, size=len(split), sharded=hasattr(split, "rgb_uint8"))

    def __len__(self) -> int:
        return self.size

    def batch(self, indices: Any) -> dict[str, Tensor]:
        """The images at ``indices`` (positions in the split), as the wrapped split gives them."""
        return self.data.batch(indices)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the dataclass lacks: the wrapped split's own attributes.
        if name.startswith("__") or name == "data":  # copy/pickle probe the instance before ``data`` is set
            raise AttributeError(name)
        return getattr(self.data, name)
