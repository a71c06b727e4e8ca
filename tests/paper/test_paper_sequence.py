"""Clips with the MDN: k components chosen per scene, codes smoothed over time; scene cuts."""

from __future__ import annotations

import pytest
import torch

from colorkit.api import create_method
from colorkit.core.sequence import SceneDetector


class BrightnessMixture(torch.nn.Module):
    """A mixture whose weights follow the frame's mean grey (the ranking of components 0
    and 1 swaps at 0.5) and whose means move a little with it."""

    def __init__(self, d):
        super().__init__()
        self.base = torch.nn.Parameter(torch.randn(4, d, generator=torch.Generator().manual_seed(1)))

    def forward(self, feats, hint_feats=None):
        m = feats.mean((1, 2, 3))[:, None]  # (B, 1)
        logits = torch.cat([8 * (m - 0.5), -8 * (m - 0.5), 0.1 + 0 * m, -0.1 + 0 * m], 1)
        return torch.log_softmax(logits, 1), self.base[None] + m[:, :, None]


@pytest.fixture(scope="module")
def mdn(stats16):
    torch.manual_seed(0)
    m = create_method("mdn-skip", stats=stats16, preset="tiny", image_size=16, components=4)
    m.backbone, m.mdn = torch.nn.Identity(), BrightnessMixture(m.embedder.latent_dim)
    return m.eval()


def _clip(t=6, seed=0):
    """Frames getting lighter: mean grey from 0.3 to 0.6."""
    g = torch.Generator().manual_seed(seed)
    return torch.linspace(0.3, 0.6, t)[:, None, None, None] + 0.05 * torch.rand(t, 1, 16, 16, generator=g)


def test_topk_components_are_the_top_of_the_scene_mean_and_fixed(mdn):
    clip = _clip()
    mdn.configure_sampling(sequence_smoothing=0.0)
    k = 2
    out = mdn.sample_sequence(clip, k)
    log_pi, mu = mdn.mdn(mdn.backbone(clip))
    comps = torch.sort(log_pi.exp().double().mean(0).float().log(), descending=True, stable=True).indices[:k]
    expect = mdn.embedder.decode(mu[:, comps].reshape(-1, mu.shape[-1]), clip.repeat_interleave(k, 0))
    assert torch.allclose(out, expect.reshape(out.shape), atol=1e-5)
    per_frame_top = torch.sort(log_pi, dim=1, descending=True, stable=True).indices[:, :k]
    assert not (per_frame_top == per_frame_top[:1]).all()  # per frame the ranking changes; the clip's does not


def test_smoothing_follows_the_recursion_and_restarts_at_a_scene(mdn):
    clip = _clip(4)
    a = 0.5
    mdn.configure_sampling(sequence_smoothing=a)
    try:
        scenes = torch.tensor([0, 0, 1, 1])
        sampler = mdn.sequence_sampler(1)
        sampler.observe(clip, scenes)
        out = sampler.sample(clip, scenes)
        log_pi, mu = mdn.mdn(mdn.backbone(clip))
        c0 = int(log_pi[:2].exp().mean(0).argmax())
        c1 = int(log_pi[2:].exp().mean(0).argmax())
        z = [mu[0, c0], a * mu[0, c0] + (1 - a) * mu[1, c0], mu[2, c1], a * mu[2, c1] + (1 - a) * mu[3, c1]]
        expect = mdn.embedder.decode(torch.stack(z), clip)
        assert torch.allclose(out[:, 0], expect, atol=1e-5)
    finally:
        mdn.configure_sampling(sequence_smoothing=0.5)


def test_first_frame_choice_needs_no_first_pass(mdn):
    mdn.configure_sampling(sequence_choice="first-frame")
    try:
        sampler = mdn.sequence_sampler(2)
        assert not sampler.needs_observe
        clip = _clip()
        out = sampler.sample(clip)
        first = mdn.sample(clip[:1], 2)
        assert torch.allclose(out[0], first[0], atol=1e-5)
    finally:
        mdn.configure_sampling(sequence_choice="scene-mean")
    assert mdn.sequence_sampler(2).needs_observe


def test_mixture_mode_keeps_components_and_noise_per_scene(mdn):
    clip = _clip(1).repeat(3, 1, 1, 1)
    out = mdn.sample_sequence(clip, 3, mode="mixture", generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out[0], out[2], atol=1e-5)
    assert torch.allclose(out[0], mdn.sample(clip[:1], 3, mode="mixture",
                                             generator=torch.Generator().manual_seed(3))[0], atol=1e-5)


def test_scene_detector_cuts_on_a_new_histogram_in_any_chunking():
    dark = torch.full((3, 1, 8, 8), 0.2) + 0.01 * torch.rand(3, 1, 8, 8)
    light = torch.full((3, 1, 8, 8), 0.8) + 0.01 * torch.rand(3, 1, 8, 8)
    clip = torch.cat([dark, light, dark])
    whole = SceneDetector().update(clip)
    assert whole.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    det = SceneDetector()
    parts = torch.cat([det.update(clip[:4]), det.update(clip[4:5]), det.update(clip[5:])])
    assert torch.equal(parts, whole) and det.cuts == [3, 6]
    assert SceneDetector(threshold=1.0).update(clip).unique().tolist() == [0]
