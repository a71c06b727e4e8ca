"""Metrics: golden values on tiny hand-made tensors, the central grid, streaming, registry,
errors, and the distributed reduction (2 gloo processes on CPU)."""

from __future__ import annotations

import math
import socket

import pytest
import torch

import colorkit
from colorkit.core.registry import ColorkitError
from colorkit.metrics import (
    METRIC_CLASSES,
    MetricCollection,
    SampleMetric,
    central_grid_indices,
    compute_all,
)
from colorkit.metrics import functional as F

ALL = [cls.registry_name for cls in METRIC_CLASSES]


class FakeStats:
    """Stand-in for colorkit.core.stats.ColorStats: weight = table[i, j] of the ground-truth bin,
    i = clamp(round((a * 128 + 110) / 10), 0, 22), j likewise for b."""

    def __init__(self, table: torch.Tensor | None = None) -> None:
        self.table = torch.arange(23 * 23, dtype=torch.float64).reshape(23, 23) / 100 if table is None else table

    def weight_of(self, ab: torch.Tensor) -> torch.Tensor:  # (B, 2, H, W) -> (B, H, W)
        idx = torch.round((ab * 128 + 110) / 10).long().clamp(0, 22)
        return self.table[idx[:, 0], idx[:, 1]]


class CentreWeights:
    """weight_of: 4 inside the central 8 x 8 block of a 16 x 16 image, 0 elsewhere."""

    def weight_of(self, ab: torch.Tensor) -> torch.Tensor:
        w = torch.zeros(ab.shape[0], ab.shape[2], ab.shape[3])
        w[:, 4:12, 4:12] = 4.0
        return w


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B = 2, k = 3, H = W = 8; constant fields so every value is computed by hand below (and
    "Grid" equals "All"; the 8 x 8 grid of an 8 x 8 image is every pixel).

    image 0: target (0, 0); samples (0.1, 0.1), (-0.2, -0.2), (0.3, 0)
    image 1: target (0.5, -0.5); samples target, target + 0.4, target - 0.4
    """
    B, k, H, W = 2, 3, 8, 8
    target = torch.zeros(B, 2, H, W, dtype=torch.float64)
    target[1, 0], target[1, 1] = 0.5, -0.5
    samples = torch.zeros(B, k, 2, H, W, dtype=torch.float64)
    samples[0, 0] = 0.1
    samples[0, 1] = -0.2
    samples[0, 2, 0] = 0.3
    samples[1] = target[1].unsqueeze(0) + torch.tensor([0.0, 0.4, -0.4], dtype=torch.float64)[:, None, None, None]
    grey = torch.full((B, 1, H, W), 0.5, dtype=torch.float64)
    return samples, target, grey


# Hand values per image for tiny_batch().
HAND = {
    # per-sample errors: image 0: 0.1, 0.2, 0.15; image 1: 0, 0.4, 0.4
    "error_of_best": [0.1, 0.0],
    "mae_all": [(0.1 + 0.2 + 0.15) / 3, 0.8 / 3],
    # image 0: a in {0.1, -0.2, 0.3}: 0.14/3 - (0.2/3)^2 = 0.38/9; b in {0.1, -0.2, 0}: 0.14/9
    # image 1: {0, 0.4, -0.4}: 0.32/3 in both channels
    "variance": [(0.38 / 9 + 0.14 / 9) / 2, 0.32 / 3],
    # image 0 pairs: 0.3, 0.15, 0.35; image 1 pairs: 0.4, 0.4, 0.8
    "pairwise_distance": [0.8 / 3, 1.6 / 3],
    # weights: image 0 bin (11, 11) -> 2.64; image 1: a 64 -> bin 17, b -64 -> bin 5 -> 3.96
    "wmae_all": [2.64 * 0.15, 3.96 * 0.8 / 3],
}
HAND["mae_grid"] = HAND["mae_all"]
HAND["wmae_grid"] = HAND["wmae_all"]


# --------------------------------------------------------------------------- golden values
@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_values(name):
    samples, target, grey = tiny_batch()
    fn = getattr(F, name)
    args = {"variance": (samples,), "pairwise_distance": (samples,),
            "wmae_all": (samples, target, FakeStats()),
            "wmae_grid": (samples, target, FakeStats())}.get(name, (samples, target))
    per_image = fn(*args, reduction="none")
    assert per_image.shape == (2,)
    torch.testing.assert_close(per_image, torch.tensor(HAND[name], dtype=torch.float64))
    torch.testing.assert_close(fn(*args), torch.tensor(sum(HAND[name]) / 2, dtype=torch.float64))
    m = colorkit.create_metric(name, stats=FakeStats())
    m.update(samples, target, grey)
    assert m.compute() == pytest.approx(sum(HAND[name]) / 2, rel=1e-12)


def test_error_of_best_picks_the_best_of_k():
    target = torch.zeros(1, 2, 4, 4)
    samples = torch.stack([torch.full((2, 4, 4), v) for v in (0.5, -0.05, 0.2)]).unsqueeze(0)
    assert F.error_of_best(samples, target).item() == pytest.approx(0.05)
    # the best sample may differ per image
    samples2 = torch.cat([samples, samples.flip(1)])
    assert F.error_of_best(samples2, target.expand(2, -1, -1, -1), reduction="none").tolist() == \
        pytest.approx([0.05, 0.05])


def test_variance_of_identical_samples_is_zero():
    samples = torch.randn(2, 1, 2, 4, 4).expand(-1, 5, -1, -1, -1)
    assert torch.all(F.variance(samples, reduction="none") == 0)
    assert torch.all(F.pairwise_distance(samples, reduction="none") == 0)


def test_variance_of_two_samples():
    # two samples a and b: population variance is ((a - b) / 2)^2 -> 0.3^2 / 4 and 0.1^2 / 4
    samples = torch.zeros(1, 2, 2, 2, 2, dtype=torch.float64)
    samples[0, 1, 0] = 0.3
    samples[0, 1, 1] = 0.1
    assert F.variance(samples).item() == pytest.approx((0.09 / 4 + 0.01 / 4) / 2)
    assert F.pairwise_distance(samples).item() == pytest.approx(0.2)


def test_single_sample():
    samples = torch.rand(3, 1, 2, 8, 8)
    target = torch.rand(3, 2, 8, 8)
    assert torch.all(F.pairwise_distance(samples, reduction="none") == 0)
    assert torch.all(F.variance(samples, reduction="none") == 0)
    torch.testing.assert_close(F.error_of_best(samples, target), F.mae_all(samples, target))


def test_mae_is_mean_over_k():
    samples, target, _ = tiny_batch()
    per_k = [F.mae_all(samples[:, i:i + 1], target, reduction="none") for i in range(3)]
    torch.testing.assert_close(F.mae_all(samples, target, reduction="none"), sum(per_k) / 3)


# --------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("size", [8, 16, 32, 48, 64, 65, 100, 128, 256])
def test_grid_is_8x8_uniform_and_symmetric(size):
    rows, cols = central_grid_indices(size, size)
    assert rows.shape == cols.shape == (8,)
    assert torch.equal(rows, cols)
    steps = rows.diff()
    assert torch.all(steps == steps[0]) and steps[0] >= 1
    assert rows.min() >= 0 and rows.max() <= size - 1
    # exactly symmetric about the centre (size - 1) / 2
    assert torch.equal(rows + rows.flip(0), torch.full((8,), size - 1))


def test_grid_64_is_documented_and_spans_about_half():
    rows, _ = central_grid_indices(64, 64)
    assert rows.tolist() == [14, 19, 24, 29, 34, 39, 44, 49]
    rows, _ = central_grid_indices(256, 256)
    assert 0.4 <= (rows[-1] - rows[0]).item() / 256 <= 0.6


@pytest.mark.parametrize("size", [9, 11, 13])
def test_grid_off_centre_by_at_most_half_a_pixel(size):
    rows, _ = central_grid_indices(size, size)
    assert rows.shape == (8,) and torch.all(rows.diff() == 1)
    assert abs(rows.double().mean().item() - (size - 1) / 2) <= 0.5


def test_grid_non_square_and_other_n():
    rows, cols = central_grid_indices(64, 32)
    assert rows.tolist() == [14, 19, 24, 29, 34, 39, 44, 49]
    assert cols.tolist() == [5, 8, 11, 14, 17, 20, 23, 26]
    rows, cols = central_grid_indices(63, 63, n=3)
    assert len(rows) == 3 and rows[1].item() == 31 and (rows + rows.flip(0) == 62).all()
    with pytest.raises(ColorkitError, match="cannot hold a grid"):
        central_grid_indices(7, 64)


def test_mae_grid_only_sees_the_grid():
    # error 1 outside the central 8 x 8 block of a 16 x 16 image (the grid is that block)
    target = torch.zeros(1, 2, 16, 16)
    samples = torch.ones(1, 1, 2, 16, 16)
    samples[..., 4:12, 4:12] = 0
    assert F.mae_grid(samples, target).item() == 0
    assert F.mae_all(samples, target).item() == pytest.approx(0.75)
    samples = torch.zeros(1, 1, 2, 16, 16)
    samples[..., 4:12, 4:12] = 0.5
    assert F.mae_grid(samples, target).item() == pytest.approx(0.5)


def test_weighted_error_is_not_normalised_by_weight_sum():
    # err 0.25 everywhere; weight 4 on the 64 central pixels, 0 on the other 192
    target = torch.zeros(1, 2, 16, 16)
    samples = torch.full((1, 1, 2, 16, 16), 0.25)
    stats = CentreWeights()
    assert F.wmae_all(samples, target, stats).item() == pytest.approx(0.25 * 4 * 64 / 256)
    assert F.wmae_grid(samples, target, stats).item() == pytest.approx(1.0)
    m = colorkit.create_metric("wmae_grid", stats=stats)
    m.update(samples, target, torch.zeros(1, 1, 16, 16))
    assert m.compute() == pytest.approx(1.0)


def test_weighted_error_uses_the_ground_truth_bin():
    # a table whose only nonzero weight is bin (i=17, j=5): a = 0.5, b = -0.5
    table = torch.zeros(23, 23, dtype=torch.float64)
    table[17, 5] = 2.0
    samples, target, _ = tiny_batch()
    vals = F.wmae_all(samples, target, FakeStats(table), reduction="none")
    torch.testing.assert_close(vals, torch.tensor([0.0, 2.0 * 0.8 / 3], dtype=torch.float64))


# --------------------------------------------------------------------------- colourfulness
def _lab_of_rgb(rgb01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import kornia.color

    lab = kornia.color.rgb_to_lab(rgb01)
    return lab[:, :1] / 100, lab[:, 1:] / 128


def test_hasler_suesstrunk_hand_value():
    # pixels red (255, 0, 0) and black: rg = (255, 0), yb = (127.5, 0)
    # std = mean = (127.5, 63.75) -> M = 1.3 * sqrt(127.5^2 + 63.75^2)
    rgb = torch.tensor([[255.0, 0.0], [0.0, 0.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    expected = 1.3 * math.hypot(127.5, 63.75)
    assert F.hasler_suesstrunk(rgb).item() == pytest.approx(expected)
    grey_rgb = torch.full((1, 3, 4, 4), 77.0)
    assert F.hasler_suesstrunk(grey_rgb).item() == 0


def test_colorfulness_of_lab_images():
    rgb = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    grey, ab = _lab_of_rgb(rgb)
    expected = 1.3 * math.hypot(127.5, 63.75)
    # two colorizations: the red / black one and a neutral one (ab = 0) -> mean of M, 0
    samples = torch.stack([ab, torch.zeros_like(ab)], dim=1)
    assert F.colorfulness(samples, grey).item() == pytest.approx(expected / 2, rel=1e-3)
    assert F.colorfulness_gt(ab, grey).item() == pytest.approx(expected, rel=1e-3)
    out = compute_all(["colorfulness", "colorfulness_gt"], samples, ab, grey)
    assert out["colorfulness"] == pytest.approx(expected / 2, rel=1e-3)
    assert out["colorfulness_gt"] == pytest.approx(expected, rel=1e-3)


def test_lab_to_rgb255_clamps_out_of_gamut():
    grey = torch.ones(1, 1, 2, 2)
    ab = torch.tensor([1.0, -1.0]).reshape(1, 2, 1, 1).expand(-1, -1, 2, 2)
    rgb = F.lab_to_rgb255(grey, ab)
    assert rgb.shape == (1, 3, 2, 2) and rgb.min() >= 0 and rgb.max() <= 255


# --------------------------------------------------------------------------- streaming
def random_batch(B=6, k=4, H=16, W=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = torch.rand(B, k, 2, H, W, generator=g) * 1.6 - 0.8
    target = torch.rand(B, 2, H, W, generator=g) * 1.6 - 0.8
    grey = torch.rand(B, 1, H, W, generator=g)
    return samples, target, grey


@pytest.mark.parametrize("name", ALL)
def test_two_batches_equal_one(name):
    samples, target, grey = random_batch()
    one = colorkit.create_metric(name, stats=FakeStats())
    one.update(samples, target, grey)
    two = colorkit.create_metric(name, stats=FakeStats())
    two.update(samples[:2], target[:2], grey[:2])
    two.update(samples[2:], target[2:], grey[2:])
    assert two.compute() == pytest.approx(one.compute(), rel=1e-9)
    assert math.isfinite(one.compute())


@pytest.mark.parametrize("name", ALL)
def test_empty_is_nan_and_reset_clears(name):
    m = colorkit.create_metric(name, stats=FakeStats())
    assert math.isnan(m.compute())
    m.update(*random_batch(B=2))
    assert not math.isnan(m.compute())
    m.reset()
    assert math.isnan(m.compute())


@pytest.mark.parametrize("cls", METRIC_CLASSES, ids=ALL)
def test_class_matches_functional(cls):
    samples, target, grey = random_batch(B=3, k=2)
    m = cls(stats=FakeStats())
    per_image = m.per_image(samples, target, grey)
    assert per_image.shape == (3,) and torch.isfinite(per_image).all()
    fn = getattr(F, cls.registry_name)
    args = {
        "variance": (samples,), "pairwise_distance": (samples,),
        "wmae_all": (samples, target, FakeStats()), "wmae_grid": (samples, target, FakeStats()),
        "colorfulness": (samples, grey), "colorfulness_gt": (target, grey),
        "colorfulness_diff": (samples, target, grey),
    }.get(cls.registry_name, (samples, target))
    torch.testing.assert_close(fn(*args, reduction="none"), per_image)


def test_half_precision_is_upcast():
    samples, target, _ = random_batch(B=2, k=3, H=64, W=64)
    ref = F.mae_all(samples, target, reduction="none")
    half = F.mae_all(samples.bfloat16(), target.bfloat16(), reduction="none")
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, ref, atol=1e-2, rtol=1e-2)


# --------------------------------------------------------------------------- registry, errors
def test_all_registered_with_descriptions():
    names = colorkit.list_metrics()
    for cls in METRIC_CLASSES:
        assert cls.registry_name in names
        assert issubclass(cls, SampleMetric)
        assert cls.higher_is_better in (True, False, None)
        assert cls.units and cls.__doc__
    assert colorkit.create_metric("error_of_best").higher_is_better is False
    assert colorkit.create_metric("variance").higher_is_better is True


@pytest.mark.parametrize("name", ["wmae_all", "wmae_grid"])
def test_weighted_metrics_need_stats(name):
    with pytest.raises(ColorkitError, match="needs colour statistics"):
        colorkit.create_metric(name)
    with pytest.raises(ColorkitError, match="weight_of"):
        colorkit.create_metric(name, stats=object())


def test_shape_errors_name_the_input():
    samples, target, grey = tiny_batch()
    with pytest.raises(ColorkitError, match=r"unsqueeze\(1\)"):
        F.error_of_best(samples[:, 0], target)
    with pytest.raises(ColorkitError, match="target must have shape"):
        F.mae_all(samples, target[:1])
    m = colorkit.create_metric("colorfulness")
    with pytest.raises(ColorkitError, match="grey must have shape"):
        m.update(samples, target, grey[..., :2])
    with pytest.raises(ColorkitError, match="needs the grey image"):
        m.update(samples, target, None)
    with pytest.raises(ColorkitError, match="unknown reduction"):
        F.variance(samples, reduction="max")


def test_collection_and_compute_all():
    samples, target, grey = tiny_batch()
    out = compute_all(ALL, samples, target, grey, stats=FakeStats())
    assert list(out) == ALL
    for name, vals in HAND.items():
        assert out[name] == pytest.approx(sum(vals) / 2)
    coll = MetricCollection(["mae_all", colorkit.create_metric("variance")])
    coll.update(samples[:1], target[:1], grey[:1])
    coll.update(samples[1:], target[1:], grey[1:])
    res = coll.compute()
    assert res["mae_all"] == pytest.approx(sum(HAND["mae_all"]) / 2)
    assert res["variance"] == pytest.approx(sum(HAND["variance"]) / 2)
    coll.reset()
    assert all(math.isnan(v) for v in coll.compute().values())
    with pytest.raises(ColorkitError, match="given twice"):
        MetricCollection(["mae_all", "mae_all"])
    with pytest.raises(ColorkitError, match="unknown metric"):
        MetricCollection(["no_such_metric"])


# --------------------------------------------------------------------------- distributed
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_path: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        samples, target, grey = random_batch(B=5, seed=1)
        part = slice(0, 3) if rank == 0 else slice(3, 5)  # unequal halves: counts matter
        coll = MetricCollection(ALL, stats=FakeStats())
        coll.update(samples[part], target[part], grey[part])
        res = coll.compute()
        if rank == 0:
            torch.save(res, out_path)
    finally:
        dist.destroy_process_group()


def test_distributed_reduction_matches_single_process(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    got = torch.load(out)
    samples, target, grey = random_batch(B=5, seed=1)
    ref = compute_all(ALL, samples, target, grey, stats=FakeStats())
    for name in ALL:
        assert got[name] == pytest.approx(ref[name], rel=1e-9), name
