"""colorkit.core.cluster: batched k-means and the sample clustering of the baselines."""

from __future__ import annotations

import pytest
import torch

from colorkit.core.cluster import diverse_from_samples, kmeans, kmeans_plus_plus


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blobs(b: int, per: int, centres: torch.Tensor, spread: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (b, k*per, D) around ``centres`` (k, D) and their true blob index (k*per,)."""
    g = _gen(seed)
    k, d = centres.shape
    noise = torch.randn(b, k, per, d, generator=g) * spread
    pts = (centres[None, :, None, :] + noise).reshape(b, k * per, d)
    return pts, torch.arange(k).repeat_interleave(per)


def test_smoke_shapes_and_dtypes():
    x = torch.randn(3, 40, 5, generator=_gen())
    res = kmeans(x, 4, generator=_gen(1))
    assert res.centers.shape == (3, 4, 5)
    assert res.labels.shape == (3, 40) and res.labels.dtype == torch.int64
    assert res.inertia.shape == (3,)
    assert int(res.labels.min()) >= 0 and int(res.labels.max()) < 4


def test_centres_are_means_of_their_members():
    x = torch.randn(4, 60, 7, generator=_gen())
    res = kmeans(x, 6, generator=_gen(2))
    for b in range(4):
        for j in range(6):
            members = x[b][res.labels[b] == j]
            assert len(members) > 0, "every cluster has a member"
            torch.testing.assert_close(res.centers[b, j], members.mean(0), rtol=1e-5, atol=1e-6)
        expected = (x[b] - res.centers[b][res.labels[b]]).pow(2).sum()
        torch.testing.assert_close(res.inertia[b], expected, rtol=1e-4, atol=1e-5)


def test_labels_are_nearest_centres_after_convergence():
    x, _ = _blobs(2, 30, torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]), 0.5)
    res = kmeans(x, 3, generator=_gen(3), iters=100)
    nearest = torch.cdist(x, res.centers).argmin(-1)
    assert torch.equal(nearest, res.labels)


def test_well_separated_blobs_are_recovered():
    true = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    x, truth = _blobs(5, 25, true, 0.3)
    res = kmeans(x, 4, generator=_gen(4))
    for b in range(5):
        # The partition equals the true one up to a relabelling.
        mapping = {int(t): int(lab) for t, lab in zip(truth, res.labels[b])}
        assert len(set(mapping.values())) == 4
        assert all(mapping[int(t)] == int(lab) for t, lab in zip(truth, res.labels[b]))
        dist = torch.cdist(res.centers[b], true).min(1).values
        assert float(dist.max()) < 0.3


def test_deterministic_under_a_seed():
    x = torch.randn(3, 80, 6, generator=_gen())
    a = kmeans(x, 5, generator=_gen(7))
    b = kmeans(x, 5, generator=_gen(7))
    assert torch.equal(a.centers, b.centers) and torch.equal(a.labels, b.labels)
    torch.manual_seed(0)
    c = kmeans(x, 5)
    torch.manual_seed(0)
    d = kmeans(x, 5)
    assert torch.equal(c.centers, d.centers)


def test_batch_equals_per_item_given_the_same_seeding():
    x = torch.randn(4, 50, 6, generator=_gen())
    init = kmeans_plus_plus(x, 5, generator=_gen(8))
    batched = kmeans(x, 5, init=init)
    for b in range(4):
        single = kmeans(x[b : b + 1], 5, init=init[b : b + 1])
        assert torch.equal(single.labels[0], batched.labels[b])
        torch.testing.assert_close(single.centers[0], batched.centers[b], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(single.inertia[0], batched.inertia[b], rtol=1e-6, atol=1e-6)


def test_batch_equals_per_item_on_separated_blobs():
    true = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    x, _ = _blobs(3, 20, true, 0.4)
    batched = kmeans(x, 3, generator=_gen(9))
    for b in range(3):
        single = kmeans(x[b : b + 1], 3, generator=_gen(100 + b))
        torch.testing.assert_close(single.inertia[0], batched.inertia[b], rtol=1e-5, atol=1e-5)


def test_inertia_close_to_sklearn():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    g = _gen(11)
    x = torch.cat([torch.randn(60, 4, generator=g) * s + m for s, m in ((1.0, 0.0), (0.5, 3.0), (2.0, -2.0))])
    ours = kmeans(x[None].double(), 6, generator=_gen(12)).inertia.item()
    ref = sklearn_cluster.KMeans(6, n_init=1, random_state=0).fit(x.double().numpy()).inertia_
    assert ours <= 1.05 * ref


def test_identical_points_give_k_nonempty_clusters():
    x = torch.ones(2, 10, 3)
    res = kmeans(x, 4, generator=_gen())
    counts = torch.nn.functional.one_hot(res.labels, 4).sum(1)
    assert bool((counts > 0).all())
    torch.testing.assert_close(res.centers, torch.ones(2, 4, 3))


def test_exceptions():
    with pytest.raises(ValueError, match="1 <= k <= N"):
        kmeans(torch.randn(1, 3, 2), 4)
    with pytest.raises(ValueError, match=r"\(B, N, D\)"):
        kmeans(torch.randn(3, 2), 2)


def test_diverse_from_samples_orders_by_cluster_size():
    h = w = 4
    # 3 modes with 10, 5 and 1 members: constant fields of value 0.5, -0.5, 0.0.
    vals = torch.tensor([0.5] * 10 + [-0.5] * 5 + [0.0])
    samples = vals[None, :, None, None, None].expand(2, 16, 2, h, w).clone()
    out = diverse_from_samples(samples, 3, generator=_gen())
    assert out.shape == (2, 3, 2, h, w)
    torch.testing.assert_close(out[:, :, 0, 0, 0], torch.tensor([[0.5, -0.5, 0.0]] * 2))


