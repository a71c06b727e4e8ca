"""Mixture density network P(z | G) of Deshpande et al. (CVPR 2017), sections 4 and 6.2.

Network (paper preset; input 28x28x512 in the paper, 16x16x512 from colorkit's colornet)::

    feats (B,C,h,w) -> C(5,1,384) B -> C(5,1,320) B -> C(5,1,288) B -> C(5,2,256) B
                    -> C(5,1,128) B -> FC(4096) -> FC(M*d + M)   # dropout before each FC

Outputs ``log_pi (B, M)`` (log-softmax of the M mixture logits) and ``mu (B, M, d)``.
The GMM has a fixed spherical variance: colorkit reads the paper's "fixed spherical
variance of .1" as sigma^2 = 0.1 (docs/method.md), so eq. (6) is

    L_mdn = -log pi_m + ||z - mu_m||^2 / (2 * 0.1),   m = argmin_i ||z - mu_i||    (6)

(the min-approximation of eq. 5). Sampling: the paper's ``topk`` (means ordered by pi,
section 6.2) or true GMM sampling ``z = mu_c + sqrt(0.1) * eps`` with ``c ~ pi``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorkit.core.layers import ConvBlock
from colorkit.core.registry import ColorkitError

PAPER_WIDTHS = (384, 320, 288, 256, 128)
VARIANCE = 0.1


class MixtureDensityNetwork(nn.Module):
    """Grey features ``(B, C, h, w)`` -> ``(log_pi (B,M), mu (B,M,d))``."""

    def __init__(self, in_channels: int, in_size: tuple[int, int], latent_dim: int, components: int = 8,
                 widths: tuple[int, ...] = PAPER_WIDTHS, fc_dim: int = 4096, dropout: float = 0.5,
                 hint_channels: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.components, self.hint_channels = latent_dim, components, hint_channels
        w0, w1, w2, w3, w4 = widths
        self.convs = nn.Sequential(
            ConvBlock(in_channels + hint_channels, w0, 5, 1), ConvBlock(w0, w1, 5, 1), ConvBlock(w1, w2, 5, 1),
            ConvBlock(w2, w3, 5, 2), ConvBlock(w3, w4, 5, 1),
        )
        h, w = (math.ceil(s / 2) for s in in_size)  # after the one stride-2 conv (SAME padding)
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(w4 * h * w, fc_dim), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(fc_dim, components * latent_dim + components),
        )

    @torch.no_grad()
    def init_output(self, means: Tensor, logits: Tensor, weight_scale: float = 0.1) -> None:
        """Start the mixture at ``means (M, d)`` with logits ``(M,)``: the output layer's
        bias is set to them and its weights scaled by ``weight_scale``, so that every
        input first maps close to this mixture."""
        m, d = self.components, self.latent_dim
        if tuple(means.shape) != (m, d) or tuple(logits.shape) != (m,):
            raise ColorkitError(f"init_output needs means ({m}, {d}) and logits ({m},); got "
                                f"{tuple(means.shape)} and {tuple(logits.shape)}")
        last = self.fc[-1]
        last.weight.mul_(weight_scale)
        last.bias[: m * d] = means.reshape(-1).to(last.bias)
        last.bias[m * d :] = logits.to(last.bias)

    def forward(self, feats: Tensor, hint_feats: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``hint_feats (B, hint_channels, H, W)``: the hints at any size (area-pooled to the
        features' size and read beside them); ``None``: no hints (zeros)."""
        if self.hint_channels:
            b, _, h, w = feats.shape
            if hint_feats is None:
                extra = feats.new_zeros(b, self.hint_channels, h, w)
            else:
                extra = F.adaptive_avg_pool2d(hint_feats.to(feats), (h, w))
            feats = torch.cat([feats, extra], dim=1)
        out = self.fc(self.convs(feats))  # (B, M*d + M)
        m, d = self.components, self.latent_dim
        mu = out[:, : m * d].reshape(-1, m, d)  # (B, M, d)
        log_pi = F.log_softmax(out[:, m * d :], dim=1)  # (B, M)
        return log_pi, mu


def squared_distances(mu: Tensor, z: Tensor) -> Tensor:
    """||z - mu_i||^2 for each component: ``mu (B,M,d)``, ``z (B,d)`` -> ``(B, M)``."""
    return (mu - z[:, None, :]).pow(2).sum(-1)


def mdn_loss(log_pi: Tensor, mu: Tensor, z: Tensor, variance: float = VARIANCE) -> Tensor:
    """Eq. (6) per sample ``(B,)``: -log pi_m + ||z - mu_m||^2 / (2 variance), m the closest mean."""
    dist = squared_distances(mu, z)  # (B, M)
    m = dist.detach().argmin(dim=1, keepdim=True)  # (B, 1)
    return -log_pi.gather(1, m)[:, 0] + dist.gather(1, m)[:, 0] / (2.0 * variance)


def topk_means(log_pi: Tensor, mu: Tensor, k: int) -> Tensor:
    """The paper's test-time procedure: the k means with the largest pi, in descending
    order of pi (ties by index), ``(B, k, d)``."""
    m = mu.shape[1]
    if not 1 <= k <= m:
        raise ColorkitError(
            f"topk sampling gives at most {m} colorizations (one per mixture component); asked for k={k}"
        )
    order = torch.sort(log_pi, dim=1, descending=True, stable=True).indices[:, :k]  # (B, k)
    return mu.gather(1, order[:, :, None].expand(-1, -1, mu.shape[2]))


def distinct_means(log_pi: Tensor, mu: Tensor, k: int, radius: float) -> Tensor:
    """k likely and distinct means, ``(B, k, d)``: components in descending order of pi,
    each taken unless its mean lies within ``radius`` (Euclidean) of one already taken;
    when fewer than k pass, the most probable skipped ones fill the rest (in order of pi).
    ``radius = 0`` is ``topk``."""
    m = mu.shape[1]
    if not 1 <= k <= m:
        raise ColorkitError(
            f"distinct sampling gives at most {m} colorizations (one per mixture component); asked for k={k}"
        )
    order = torch.sort(log_pi, dim=1, descending=True, stable=True).indices  # (B, M)
    ranked = mu.gather(1, order[:, :, None].expand(-1, -1, mu.shape[2]))  # (B, M, d)
    dist = torch.cdist(ranked.float(), ranked.float())  # (B, M, M)
    out = []
    for b in range(mu.shape[0]):
        chosen: list[int] = []
        for i in range(m):
            if len(chosen) < k and all(float(dist[b, i, j]) > radius for j in chosen):
                chosen.append(i)
        chosen += [i for i in range(m) if i not in chosen][: k - len(chosen)]
        out.append(ranked[b, chosen])
    return torch.stack(out)


def sample_mixture(log_pi: Tensor, mu: Tensor, k: int, variance: float = VARIANCE,
                   generator: torch.Generator | None = None) -> Tensor:
    """k independent draws from the GMM: c ~ Categorical(pi), z = mu_c + sqrt(variance) eps,
    ``(B, k, d)``. Random numbers come from ``generator`` (on its own device), so a seeded
    generator gives the same draws on any device."""
    if k < 1:
        raise ColorkitError(f"k must be >= 1, got {k}")
    dev = generator.device if generator is not None else mu.device
    b, _, d = mu.shape
    pi = log_pi.detach().float().exp().to(dev)  # (B, M)
    comp = torch.multinomial(pi, k, replacement=True, generator=generator)  # (B, k)
    eps = torch.randn((b, k, d), generator=generator, device=dev, dtype=torch.float32)
    comp, eps = comp.to(mu.device), eps.to(mu.device, mu.dtype)
    chosen = mu.gather(1, comp[:, :, None].expand(-1, -1, d))  # (B, k, d)
    return chosen + math.sqrt(variance) * eps
