"""Hook specifications: the whole plugin API of colorkit.

Each hook receives a ``register`` callback and calls it once per component:

.. code-block:: python

    from colorkit import hookimpl

    @hookimpl
    def register_methods(register):
        register("knn", KNNColorizer, description="k-nearest-neighbour colour transfer")

``register(name, factory, *, description="")``: ``factory`` is normally a class deriving
from the interface of its kind (see :mod:`colorkit.core.interfaces`); it is called with keyword
arguments by ``colorkit.create_<kind>(name, ...)``. A name may be registered once per kind:
a second registration, from any source, is an error that names both sources.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("colorkit")

Register = Callable[..., None]


@hookspec
def register_backbones(register: Register) -> None:
    """Register grey-feature backbones (:class:`colorkit.core.interfaces.Backbone`).

    A backbone maps a grey image ``(B, 1, H, W)`` (L / 100, in [0, 1]) to a feature map
    ``(B, C, h, w)``; it states ``out_channels`` and ``reduction`` (H / h)."""


@hookspec
def register_embedders(register: Register) -> None:
    """Register colour-field embedders (:class:`colorkit.core.interfaces.Embedder`): a VAE-like
    model with ``encode(ab[, grey]) -> Posterior`` and ``decode(z[, grey]) -> ab``."""


@hookspec
def register_methods(register: Register) -> None:
    """Register methods, models of P(colour | grey) (:class:`colorkit.core.interfaces.Method`):
    trained by the engine, then ``sample(grey, k) -> (B, k, 2, H, W)`` in ab / 128 units."""


@hookspec
def register_decoder_losses(register: Register) -> None:
    """Register decoder losses (:class:`colorkit.core.interfaces.DecoderLoss`): per-sample
    losses between a predicted and a true ab field ``(B, 2, H, W)`` in ab / 128 units.
    ``mdn`` trains its VAE with any of them: ``--option decoder_loss=<name>``."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics (:class:`colorkit.core.interfaces.Metric`, or
    :class:`colorkit.core.interfaces.RatioMetric` for a ratio of sums): ``per_image`` or
    ``update(samples, target, grey)`` accumulates, ``compute()`` reduces (across processes
    when distributed); ``units`` and ``higher_is_better`` describe the value. ``colorkit
    bench`` scores every registered metric (see docs/plugin-tutorial.md)."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register named data sets. ``factory()`` returns a path (a folder of images, a
    ``.tar``/``.tar.gz``/``.zip`` archive or an LMDB directory, e.g. the shipped ``demo``
    set), a :class:`colorkit.data.sources.Source` (e.g. images generated from a spec; a
    name ending in ``:`` gets the text after the colon as ``variant=``) or a
    :class:`colorkit.data.recipes.Recipe` (an archive fetched by ``colorkit data fetch``).
    See :mod:`colorkit.data.sources` for the protocol."""


@hookspec
def register_commands(cli) -> None:
    """Add commands to the ``colorkit`` click group: ``cli.add_command(my_command)``. A
    plugin whose hook raises is named in one warning line; every other command works."""


@hookspec(firstresult=True)
def reference_embedder(image_size: int):
    """The colour embedder whose forward and backward pass ``colorkit bench`` times as the
    machine's reference speed (:mod:`colorkit.eval.machine`): an
    :class:`colorkit.core.interfaces.Embedder` built for ``image_size`` with the same
    weights whenever torch's seed is the same, or ``None``. The first plugin that returns
    one provides it (colorkit_paper: the ``small`` preset of its VAE); without any, the
    bench records no reference figure."""
