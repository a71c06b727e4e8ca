"""Decoder losses of Deshpande et al. (CVPR 2017), section 3.1, as registered components.

Each term is its own :class:`~colorkit.interfaces.DecoderLoss` (``l2``, ``hist`` eq. 2,
``mah`` section 3.1, ``grad`` eq. 3) so the ablation of Tables 1-2 is a config change;
``paper`` is eq. 4, L_hist + 0.1 L_mah + 1e-3 L_grad, with configurable weights. All go
through :func:`colorkit_paper.losses.decoder_loss` (torch reference or a fused kernel,
``impl``). ``forward(pred, target, stats) -> (B,)``: per-sample sums in ab / 128 units.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from torch import Tensor

from colorkit.interfaces import ComponentConfig, DecoderLoss

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

    def forward(self, pred: Tensor, target: Tensor, stats: Any) -> Tensor:
        return decoder_loss(pred, target, stats, weights={self.term: 1.0}, impl=self.config.impl)


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
    def weights(self) -> dict[str, float]:
        c = self.config
        return {k: v for k, v in {"hist": c.hist, "mah": c.mah, "grad": c.grad, "l2": c.l2}.items() if v}

    def forward(self, pred: Tensor, target: Tensor, stats: Any) -> Tensor:
        return decoder_loss(pred, target, stats, weights=self.weights, impl=self.config.impl)
