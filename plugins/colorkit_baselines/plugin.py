"""Entry point ``baselines``: registers the paper's baselines (section 5) as methods."""

from __future__ import annotations

from colorkit.core.plugin_manager import hookimpl

from .cgan import CGAN
from .cvae import CVAE


@hookimpl
def register_methods(register) -> None:
    register("cvae", CVAE, description="conditional VAE baseline (paper 6.3): 256 z ~ N(0, I) samples, k-means centres")
    register("cgan", CGAN, description="pix2pix cGAN baseline (paper 5): 256 dropout samples, k-means centres")
