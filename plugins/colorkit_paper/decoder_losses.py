"""Decoder losses of Deshpande et al. (CVPR 2017), section 3.1, as registered components.

Each term is its own :class:`~colorkit.core.interfaces.DecoderLoss` (``l2``, ``hist`` eq. 2,
``mah`` section 3.1, ``grad`` eq. 3) so the ablation of Tables 1-2 is a config change;
``paper`` is eq. 4, L_hist + 0.1 L_mah + 1e-3 L_grad, with configurable weights. All go
through :func:`colorkit_paper.losses.decoder_loss` (torch reference or a fused kernel,
``impl``). ``forward(pred, target, stats) -> (B,)``: per-sample sums in ab / 128 units.

:class:`WeightedDecoderLoss` is how ``mdn`` and the ablation build their decoder loss: a
weighted sum of *registered* decoder losses keyed by name, so a decoder loss a plugin
registers trains ``mdn`` (``--option decoder_loss=<name>``). The paper's own terms among
them are computed together in one pass (one fused kernel on GPU), exactly as eq. 4 alone.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from colorkit.core.interfaces import ComponentConfig, DecoderLoss

from .losses import PAPER_WEIGHTS, decoder_loss

Impl = Literal["auto", "torch", "triton"]


class TermConfig(ComponentConfig):
    impl: Impl = "auto"
    """``torch`` (reference), ``triton`` or ``auto`` (Triton for CUDA tensors when available)."""


_SAME = {"paper": {}, "small": {}, "tiny": {}}


class _TermLoss(DecoderLoss):
    """One loss term with weight 1."""

    term: ClassVar[str] = ""
    Config: ClassVar[type[ComponentConfig]] = TermConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = _SAME

    @property
    def term_weights(self) -> dict[str, float]:
        """The paper terms this loss is, with their weights (what :class:`WeightedDecoderLoss` fuses)."""
        return {self.term: 1.0}

    def forward(self, pred: Tensor, target: Tensor, stats: Any) -> Tensor:
        return decoder_loss(pred, target, stats, weights=self.term_weights, impl=self.config.impl)


class L2Loss(_TermLoss):
    """||C - f||^2 per sample: the plain VAE reconstruction loss."""

    term = "l2"


class HistLoss(_TermLoss):
    """Colourfulness loss, eq. (2): sum_p w(C_p) ||C_p - f_p||^2 with rebalancing weights."""

    term = "hist"


class MahLoss(_TermLoss):
    """Specificity loss (section 3.1): Mahalanobis distance on the top-20 PCA projections
    plus the residual divided by sigma_20^2."""

    term = "mah"


class GradLoss(_TermLoss):
    """Gradient loss, eq. (3): squared error of horizontal and vertical differences."""

    term = "grad"


class PaperLossConfig(TermConfig):
    hist: float = PAPER_WEIGHTS["hist"]
    mah: float = PAPER_WEIGHTS["mah"]
    grad: float = PAPER_WEIGHTS["grad"]
    l2: float = 0.0


class PaperLoss(DecoderLoss):
    """Eq. (4): L_hist + lambda_mah L_mah + lambda_grad L_grad (weights in the config)."""

    Config: ClassVar[type[ComponentConfig]] = PaperLossConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = _SAME

    @property
    def term_weights(self) -> dict[str, float]:
        c = self.config
        return {k: v for k, v in {"hist": c.hist, "mah": c.mah, "grad": c.grad, "l2": c.l2}.items() if v}

    def forward(self, pred: Tensor, target: Tensor, stats: Any) -> Tensor:
        return decoder_loss(pred, target, stats, weights=self.term_weights, impl=self.config.impl)


def check_decoder_loss_names(weights: dict[str, float]) -> dict[str, float]:
    """``weights`` keyed by registered decoder-loss names (an unknown name is a
    :class:`~colorkit.ColorkitError` listing the known ones); weights must be finite."""
    from colorkit.core.plugin_manager import registry

    reg = registry("decoder_loss")
    if not weights:
        raise ValueError("decoder_loss names no decoder loss; expected e.g. {'hist': 1.0, 'mah': 0.1, 'grad': 0.001}")
    for name, w in weights.items():
        reg.get(name)  # raises: unknown decoder_loss '<name>'; known: ...
        if not isinstance(w, (int, float)) or isinstance(w, bool) or w != w or w in (float("inf"), float("-inf")):
            raise ValueError(f"decoder_loss weight of {name!r} must be a finite number, got {w!r}")
    return weights


class WeightedDecoderLoss:
    """``sum_name weight_name * loss_name(pred, target, stats)`` over registered decoder
    losses, ``(B,)``. ``weights``: ``{name: weight}``; ``kwargs``: ``{name: config fields}``
    for the losses that take any; ``impl``: the paper terms' implementation (a loss's own
    ``impl`` in ``kwargs`` wins). The paper's terms (``l2``, ``hist``, ``mah``, ``grad``,
    ``paper``) with one ``impl`` are merged into a single :func:`decoder_loss` call, so
    eq. 4 written as ``{"hist": 1, "mah": 0.1, "grad": 1e-3}`` is computed exactly as the
    fused eq. 4. Not a module: the method's weights stay the model's alone."""

    def __init__(self, weights: dict[str, float], kwargs: dict[str, dict[str, Any]] | None = None,
                 impl: Impl = "auto") -> None:
        from colorkit import create_decoder_loss
        from colorkit.core.plugin_manager import registry

        kwargs = kwargs or {}
        self.weights = dict(check_decoder_loss_names(weights))
        self.impl = impl
        self.terms: dict[str, float] = {}  # the paper's terms, fused
        self.others: list[tuple[str, float, torch.nn.Module]] = []
        for name, w in self.weights.items():
            if not w:
                continue
            kw = dict(kwargs.get(name, {}))
            factory = registry("decoder_loss").get(name).factory
            if "impl" in getattr(getattr(factory, "Config", None), "model_fields", {}):
                kw.setdefault("impl", impl)
            loss = create_decoder_loss(name, **kw)
            if isinstance(loss, (_TermLoss, PaperLoss)) and loss.config.impl == impl:
                for term, tw in loss.term_weights.items():
                    self.terms[term] = self.terms.get(term, 0.0) + w * tw
            else:
                self.others.append((name, float(w), loss))

    def __call__(self, pred: Tensor, target: Tensor, stats: Any) -> Tensor:
        total = decoder_loss(pred, target, stats, weights=self.terms, impl=self.impl) if self.terms else None
        for name, w, loss in self.others:
            part = w * loss.to(pred.device)(pred, target, stats)
            if part.shape != (pred.shape[0],):
                raise ValueError(
                    f"decoder loss {name!r} returned shape {tuple(part.shape)}, expected ({pred.shape[0]},)"
                )
            total = part if total is None else total + part
        if total is None:
            return pred.new_zeros(pred.shape[0])
        return total

    def __repr__(self) -> str:
        return f"WeightedDecoderLoss({self.weights}, impl={self.impl!r})"
