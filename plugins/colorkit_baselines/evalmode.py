"""Evaluation mode for sampling: what both the image sampler (:mod:`.sampling`) and the clip
sampler (:mod:`.sequence`) run the model under."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Evaluation mode (BatchNorm running statistics) and no gradients; restores the mode."""
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was)
