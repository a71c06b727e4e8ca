"""MDN (paper sections 4, 6.2): eq. (6) min-approximation, top-k ordering, GMM sampling."""

from __future__ import annotations

import math

import pytest
import torch
from colorkit_paper.mdn import MixtureDensityNetwork, mdn_loss, sample_mixture, topk_means
from paper_helpers import Split, structured_batch

from colorkit import ColorkitError, create_method


def _known_mixture():
    # two samples, three components in 2-d; sample 0 is closest to component 2,
    # sample 1 to component 0 (although component 1 has the larger weight).
    mu = torch.tensor([[[0.0, 0.0], [5.0, 5.0], [1.0, 1.0]],
                       [[0.0, 0.0], [3.0, 0.0], [-4.0, 2.0]]], requires_grad=True)
    pi = torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.8, 0.1]])
    z = torch.tensor([[1.1, 0.8], [0.5, -0.2]])
    return pi.log(), mu, z


def test_loss_picks_closest_component():
    log_pi, mu, z = _known_mixture()
    loss = mdn_loss(log_pi, mu, z, variance=0.1)
    want0 = -math.log(0.5) + (0.1**2 + 0.2**2) / (2 * 0.1)
    want1 = -math.log(0.1) + (0.5**2 + 0.2**2) / (2 * 0.1)
    torch.testing.assert_close(loss, torch.tensor([want0, want1]))
    loss.sum().backward()
    grad_norm = mu.grad.norm(dim=-1)  # only the chosen means move
    assert (grad_norm[0, :2] == 0).all() and grad_norm[0, 2] > 0
    assert (grad_norm[1, 1:] == 0).all() and grad_norm[1, 0] > 0


def test_loss_variance_is_sigma_squared():
    log_pi, mu, z = _known_mixture()
    a = mdn_loss(log_pi, mu, z, variance=0.1) + log_pi.gather(1, torch.tensor([[2], [0]]))[:, 0]
    b = mdn_loss(log_pi, mu, z, variance=0.4) + log_pi.gather(1, torch.tensor([[2], [0]]))[:, 0]
    torch.testing.assert_close(a, 4 * b)  # ||z - mu||^2 / (2 sigma^2)


def test_topk_orders_by_pi():
    log_pi, mu, _ = _known_mixture()
    top = topk_means(log_pi, mu.detach(), 3)
    torch.testing.assert_close(top[0], mu[0, [2, 1, 0]].detach())
    torch.testing.assert_close(top[1, :2], mu[1, [1, 0]].detach())  # tie 0.1/0.1: lower index first
    assert topk_means(log_pi, mu.detach(), 1).shape == (2, 1, 2)
    with pytest.raises(ColorkitError, match="at most 3"):
        topk_means(log_pi, mu.detach(), 4)


def test_mixture_sampling_reproducible_and_correct():
    log_pi, mu, _ = _known_mixture()
    mu = mu.detach()
    a = sample_mixture(log_pi, mu, 5, 0.1, torch.Generator().manual_seed(0))
    b = sample_mixture(log_pi, mu, 5, 0.1, torch.Generator().manual_seed(0))
    c = sample_mixture(log_pi, mu, 5, 0.1, torch.Generator().manual_seed(1))
    assert a.shape == (2, 5, 2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    # one dominant component: draws are N(mu, 0.1 I)
    log_pi1 = torch.tensor([[1.0, 1e-9, 1e-9]]).log()
    draws = sample_mixture(log_pi1, mu[:1], 20000, 0.1, torch.Generator().manual_seed(2))[0]
    torch.testing.assert_close(draws.mean(0), mu[0, 0], atol=0.02, rtol=0)
    torch.testing.assert_close(draws.var(0), torch.full((2,), 0.1), atol=0.01, rtol=0)
    # the component frequencies follow pi
    far = torch.tensor([[[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]]])
    pi = torch.tensor([[0.2, 0.3, 0.5]])
    d = sample_mixture(pi.log(), far, 20000, 0.1, torch.Generator().manual_seed(3))[0]
    freq = torch.stack(
        [(d.norm(dim=1) < 10).float().mean(), (d[:, 0] > 50).float().mean(), (d[:, 1] > 50).float().mean()]
    )
    torch.testing.assert_close(freq, pi[0], atol=0.02, rtol=0)


def test_network_shapes_and_normalised_weights():
    net = MixtureDensityNetwork(16, (8, 8), latent_dim=4, components=8, widths=(8, 8, 8, 8, 8), fc_dim=16)
    log_pi, mu = net(torch.randn(3, 16, 8, 8))
    assert log_pi.shape == (3, 8) and mu.shape == (3, 8, 4)
    torch.testing.assert_close(log_pi.exp().sum(1), torch.ones(3))
    odd = MixtureDensityNetwork(16, (5, 5), latent_dim=4, widths=(8, 8, 8, 8, 8), fc_dim=16)
    assert odd(torch.randn(2, 16, 5, 5))[1].shape == (2, 8, 4)


def test_paper_mdn_architecture():
    net = MixtureDensityNetwork(512, (28, 28), latent_dim=64)
    convs = [m for m in net.convs.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs] == [
        (5, 1, 384), (5, 1, 320), (5, 1, 288), (5, 2, 256), (5, 1, 128)]
    fcs = [m for m in net.fc if isinstance(m, torch.nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(128 * 14 * 14, 4096), (4096, 8 * 64 + 8)]
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.fc) == 2


def test_init_output_starts_every_input_near_the_given_mixture():
    torch.manual_seed(0)
    net = MixtureDensityNetwork(4, (8, 8), 3, components=2, widths=(4, 4, 4, 4, 4), fc_dim=16, dropout=0.0).eval()
    means = torch.tensor([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0]])
    logits = torch.tensor([math.log(3.0), 0.0])
    net.init_output(means, logits, weight_scale=0.0)
    log_pi, mu = net(torch.randn(5, 4, 8, 8))
    assert torch.allclose(mu, means.expand(5, -1, -1)) and torch.allclose(log_pi.exp()[:, 0], torch.full((5,), 0.75))
    with pytest.raises(ColorkitError):
        net.init_output(means[:1], logits)


def test_kmeans_init_is_its_own_stage_and_spreads_the_components(stats16):
    """mdn_init='kmeans': a stage ``mdn-init`` (no epochs, so a resumed MDN stage never
    re-runs it) puts the components on k-means centres of the training codes."""
    torch.manual_seed(0)
    m = create_method("mdn", stats=stats16, preset="tiny", image_size=16, mdn_init="kmeans", components=4,
                      use_cache=False)
    stages = m.stages()
    assert [s.name for s in stages] == ["colornet", "vae", "mdn-init", "mdn"] and stages[2].epochs == 0
    assert [s.name for s in create_method("mdn", stats=stats16, preset="tiny", image_size=16).stages()] == [
        "colornet", "vae", "mdn"]
    split = Split(structured_batch(32, 16))
    stages[2].on_start(split)
    m.eval()
    with torch.no_grad():
        codes = m.embedder.encode(split.data["ab"]).mu  # (32, d)
    bias = m.mdn.fc[-1].bias.clone()
    d = m.config.latent_dim
    centres, logits = bias[: 4 * d].reshape(4, d), bias[4 * d :]
    # a k-means fixed point of the codes: each centre is the mean of the codes nearest to it,
    # and the logits are the log sizes of those clusters
    labels = torch.cdist(codes, centres).argmin(1)
    sizes = torch.bincount(labels, minlength=4)
    assert bool((sizes > 0).all())
    for j in range(4):
        assert torch.allclose(codes[labels == j].mean(0), centres[j], atol=1e-5)
    assert torch.allclose(logits, sizes.float().log(), atol=1e-5)


def test_lr_schedules_reach_the_vae_and_mdn_stages(stats16):
    """``vae_lr_schedule`` / ``mdn_lr_schedule`` set the engine's per-stage schedule; the
    small preset decays both (cosine), the paper preset keeps a constant rate."""

    def schedules(**kw):
        m = create_method("mdn", stats=stats16, image_size=16, use_cache=False, **kw)
        return {s.name: s.lr_schedule for s in m.stages()}

    assert schedules(preset="tiny") == {"colornet": "constant", "vae": "constant", "mdn": "constant"}
    assert schedules(preset="tiny", vae_lr_schedule="cosine") == {
        "colornet": "constant", "vae": "cosine", "mdn": "constant"}
    small = create_method("mdn", stats=stats16, preset="small", image_size=16, use_cache=False)
    assert {s.name: s.lr_schedule for s in small.stages()} == {  # effnet-lite0 needs no pretext
        "vae": "cosine", "mdn-init": "constant", "mdn": "cosine"}
    assert small.config.vae_batch_size == 8 and small.config.mdn_init == "kmeans"
    with pytest.raises(Exception, match="vae_lr_schedule"):
        create_method("mdn", stats=stats16, preset="tiny", image_size=16, vae_lr_schedule="step")


def test_distinct_means_skips_near_duplicates():
    from colorkit_paper.mdn import distinct_means, topk_means

    log_pi = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    mu = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [3.0, 0.0], [0.0, 3.0]]])  # 1 duplicates 0
    torch.testing.assert_close(distinct_means(log_pi, mu, 3, 0.0), topk_means(log_pi, mu, 3))
    assert distinct_means(log_pi, mu, 3, 0.5)[0].tolist() == [[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]
    # fewer distinct means than k: the most probable skipped ones fill the rest
    torch.testing.assert_close(distinct_means(log_pi, mu, 4, 10.0), mu)
    with pytest.raises(ColorkitError, match="at most 4"):
        distinct_means(log_pi, mu, 5, 0.5)


def test_vae_kmeans_decodes_the_training_code_centres_for_any_input(stats16):
    """The input-blind reference made of the method's own VAE: the same k fields for every
    grey image (``mdn``), largest cluster first, from the codes kept after the VAE stage."""
    from colorkit.core.cluster import kmeans

    torch.manual_seed(0)
    m = create_method("mdn", stats=stats16, preset="tiny", image_size=16, use_cache=False)
    with pytest.raises(ColorkitError, match="train it first"):
        m.sample(torch.rand(1, 1, 16, 16), 2, mode="vae-kmeans")
    split = Split(structured_batch(24, 16))
    vae = next(s for s in m.stages() if s.name == "vae")
    vae.on_end(split, None)  # the engine calls it when the VAE stage ends
    assert int(m.codes_count) == 24
    m.eval()
    with torch.no_grad():
        codes = m.embedder.encode(split.data["ab"]).mu
    torch.testing.assert_close(m.codes[:24], codes)
    out = m.sample(torch.rand(3, 1, 16, 16), 3, mode="vae-kmeans")
    torch.testing.assert_close(out[0], out[2])  # blind to the input
    res = kmeans(codes[None], 3, generator=torch.Generator().manual_seed(0))
    sizes = torch.bincount(res.labels[0], minlength=3)
    first = res.centers[0][sizes.argmax()]
    with torch.no_grad():
        torch.testing.assert_close(out[0, 0], m.embedder.decode(first[None])[0])
    assert type(m).reference_modes == ("vae-kmeans",)
