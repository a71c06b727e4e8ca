"""Entry point ``references``: the input-agnostic reference methods of ``colorkit bench``."""

from __future__ import annotations

from colorkit.core.plugin_manager import hookimpl

from .methods import GreyReference, LevinReference, MeanFieldReference, PriorKMeansReference, PriorSamplesReference


@hookimpl
def register_methods(register) -> None:
    register("grey", GreyReference, description="reference: ab = 0 everywhere (the grey input)")
    register("mean-field", MeanFieldReference, description="reference: the training split's mean colour field")
    register("prior-samples", PriorSamplesReference,
             description="reference: k random training colour fields (input-agnostic diversity)")
    register("prior-kmeans", PriorKMeansReference,
             description="reference: k-means centres of the training colour fields (input-agnostic best guesses)")
    register("levin", LevinReference,
             description="reference: the colour hints propagated along the grey image (Levin et al. 2004); "
                         "scored only with hints")
