"""colorkit.core.stats: PCA, the ab grid, in-gamut cells, colourfulness weights, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import colorkit.core.pca as pca_mod
import colorkit.core.stats as stats_mod
from colorkit.cli import main
from colorkit.core.registry import ColorkitError
from colorkit.core.stats import (
    ColorStats,
    G,
    ab_to_bin,
    ab_to_bin_index,
    colourfulness_weights,
    compute_stats,
    in_gamut_cells,
    load_or_compute_stats,
    nearest_in_gamut,
)
from colorkit.data import prepare

SIZE = 16
N_IMAGES = 40


def _make_images(root, n=N_IMAGES, seed=0):
    """Structured colour fields: a gradient between two saturated colours whose direction
    and colours vary per image, so that a few components explain most variance."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    palette = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230], [240, 200, 20], [200, 40, 220], [20, 200, 210]])
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c1, c2 = palette[rng.choice(len(palette), 2, replace=False)]
        t = rng.uniform(0, 1)
        ramp = (t * xx + (1 - t) * yy)[..., None]
        img = (1 - ramp) * c1 + ramp * c2 + rng.normal(0, 6, (32, 32, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = _make_images(tmp_path_factory.mktemp("colours") / "imgs")
    return prepare(root, size=SIZE, cache_dir=root.parent / "cache", progress=False)


@pytest.fixture(scope="module")
def st(ds):
    return compute_stats(ds)


def _train_ab(ds) -> torch.Tensor:
    train = ds.split("train")
    return train.batch(range(len(train)))["ab"]  # (N, 2, H, W)


# ------------------------------------------------------------------ grid and gamut
def _cell(x_lab: float) -> int:
    """Reference: nearest centre with halves rounded up, clamped to the grid."""
    return min(max(math.floor((x_lab + 110.0) / 10.0 + 0.5), 0), G - 1)


def test_ab_to_bin_edges_round_half_up():
    a_vals = [105.0, 95.0, -105.0, -5.0, 5.0, 0.0, 4.99, 200.0, -200.0, 110.0, -110.0]
    ab = torch.tensor(a_vals).view(1, 1, 1, -1).repeat(1, 2, 1, 1) / 128.0
    ab[:, 1] = ab[:, 1].flip(-1)
    i, j = ab_to_bin(ab)
    assert i.flatten().tolist() == [_cell(a) for a in a_vals]
    assert j.flatten().tolist() == [_cell(a) for a in reversed(a_vals)]
    # explicit half-up choices (round-half-to-even would give 20 and 0 for the first two)
    assert _cell(95.0) == 21 and _cell(-105.0) == 1 and _cell(105.0) == 22 and _cell(-5.0) == 11
    assert ab_to_bin_index(ab).flatten().tolist() == (i * G + j).flatten().tolist()


def test_in_gamut_counts():
    reach = in_gamut_cells("reachable")
    centre = in_gamut_cells("centre")
    assert reach.shape == (G, G) and reach.dtype == torch.bool
    assert 250 <= int(reach.sum()) <= 330  # 262: roughly Zhang et al.'s 313
    assert int(centre.sum()) == 229  # the stricter centre rule
    assert bool((centre <= reach).all())
    assert bool(reach[11, 11])  # a = b = 0 (grey)
    assert not bool(reach[0, 0]) and not bool(reach[22, 22])
    with pytest.raises(ColorkitError, match="unknown gamut rule"):
        in_gamut_cells("nope")


def test_nearest_in_gamut_matches_brute_force():
    ok = in_gamut_cells()
    near = nearest_in_gamut(ok)
    cells = [(i, j) for i in range(G) for j in range(G) if ok[i, j]]
    for flat in (0, 5, 22, 11 * G + 11, G * G - 1, 3 * G + 20):
        i, j = divmod(flat, G)
        best = min(cells, key=lambda c: ((c[0] - i) ** 2 + (c[1] - j) ** 2, c[0] * G + c[1]))
        assert int(near[flat]) == best[0] * G + best[1]


# ------------------------------------------------------------------ PCA
def test_pca_orthonormal_descending_and_matches_svd(ds, st):
    k, d = st.pca_components.shape
    assert (k, d) == (20, 2 * SIZE * SIZE) and st.k == 20 and st.image_size == SIZE
    eye = st.pca_components @ st.pca_components.T
    torch.testing.assert_close(eye, torch.eye(k), atol=1e-4, rtol=0)
    v = st.pca_variances
    assert bool((v > 0).all()) and bool((v[:-1] >= v[1:]).all())
    x = _train_ab(ds).reshape(len(ds.train_idx), -1).double().numpy()
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(v.numpy(), s[:20] ** 2 / (x.shape[0] - 1), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(np.abs((st.pca_components.double().numpy() * vt[:20]).sum(1))[:5], 1.0, atol=1e-4)
    np.testing.assert_allclose(st.pca_mean.numpy(), x.mean(0), atol=1e-6)
    ratio = float(st.meta["explained_variance_ratio"])
    assert 0.5 < ratio <= 1.0
    assert st.meta["units"] == "ab/128; variances in (ab/128)^2"
    assert st.meta["n_train_images"] == str(len(ds.train_idx))


def test_covariance_path_agrees_with_svd(ds, st, monkeypatch):
    monkeypatch.setattr(stats_mod, "_SVD_MAX_ELEMENTS", 0)
    cov = compute_stats(ds, batch_size=7)
    assert cov.meta["pca_method"] == "covariance-eigh" and st.meta["pca_method"] == "svd"
    torch.testing.assert_close(cov.pca_variances, st.pca_variances, rtol=1e-4, atol=1e-8)
    dots = (cov.pca_components * st.pca_components).sum(1)[:5]  # well-separated leading ones
    torch.testing.assert_close(dots, torch.ones(5), atol=1e-4, rtol=0)  # same signs too
    torch.testing.assert_close(cov.bin_weights, st.bin_weights)


def test_large_matrix_paths_exact():
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(700, 60, generator=gen, dtype=torch.float64)).Q
    x = (torch.randn(600, 60, generator=gen, dtype=torch.float64) * 0.8 ** torch.arange(60)) @ basis.T
    x = x + 1e-4 * torch.randn(600, 700, generator=gen, dtype=torch.float64)
    xc = x - x.mean(0)
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    var, comps, method = pca_mod.pca_in_memory(xc, 10)  # 600 rows: the Gram route
    assert method == "svd-gram"
    torch.testing.assert_close(var, s[:10] ** 2 / 599, rtol=1e-8, atol=0)
    torch.testing.assert_close((comps * vh[:10]).sum(1).abs(), torch.ones(10, dtype=torch.float64), atol=1e-8, rtol=0)
    ev, evec = pca_mod.top_eigh(xc.T @ xc, 10)  # 700 x 700: subspace iteration
    torch.testing.assert_close(ev, s[:10] ** 2, rtol=1e-8, atol=0)


def test_too_few_training_images(tmp_path):
    root = _make_images(tmp_path / "few", n=12)
    small = prepare(root, size=SIZE, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(ColorkitError, match="needs at least 21 training images.* has 11"):
        compute_stats(small)
    assert compute_stats(small, components=5).k == 5


# ------------------------------------------------------------------ weights
def test_rebalanced_weights_mean_one(ds, st):
    w, p = st.bin_weights.double(), st.bin_prob.double()
    assert bool(torch.isfinite(w).all()) and bool((w > 0).all())
    assert abs(float((p * w).sum()) - 1.0) < 1e-4
    assert abs(float(p.sum()) - 1.0) < 1e-6 and abs(float(st.bin_prob_smoothed.sum()) - 1.0) < 1e-5
    assert float(p[~st.in_gamut].sum()) == 0.0
    per_pixel = st.weight_of(_train_ab(ds))
    assert per_pixel.shape == (len(ds.train_idx), SIZE, SIZE)
    assert abs(float(per_pixel.double().mean()) - 1.0) < 1e-4  # mean over training pixels
    # rare colours weigh more than common ones
    ok = st.in_gamut
    assert float(w[ok & (p > 0)].min()) < float(w[ok & (p == 0)].min())
    assert st.meta["weighting"] == "rebalanced" and st.meta["lambda"] == "0.5" and st.meta["sigma"] == "5.0"


def test_inverse_weights_differ(ds, st):
    inv = compute_stats(ds, weighting="inverse")
    p, w = inv.bin_prob.double(), inv.bin_weights.double()
    occupied = p > 0
    torch.testing.assert_close(
        w[occupied] * p[occupied], torch.ones(int(occupied.sum()), dtype=torch.float64), rtol=1e-5, atol=0
    )
    assert float(w[inv.in_gamut & ~occupied].min()) == float(w[occupied].max())  # largest finite
    assert not torch.allclose(inv.bin_weights, st.bin_weights)
    torch.testing.assert_close(inv.pca_components, st.pca_components)


def test_weight_options_validated():
    p = torch.zeros(G, G, dtype=torch.float64)
    p[11, 11] = 1.0
    ok = in_gamut_cells()
    with pytest.raises(ColorkitError, match="unknown weighting"):
        colourfulness_weights(p, ok, weighting="sqrt")
    with pytest.raises(ColorkitError, match="lam"):
        colourfulness_weights(p, ok, lam=0.0)
    p_s, w = colourfulness_weights(p, ok, sigma=0.0)
    torch.testing.assert_close(p_s, p)
    assert abs(float(w[11, 11]) - 1.0) < 1e-12


def test_weight_of_matches_per_pixel_python(st):
    lab_pairs = [(105.0, 0.0), (95.0, -5.0), (-105.0, 5.0), (0.0, 0.0), (60.0, 60.0), (-110.0, 110.0),
                 (127.0, -128.0), (20.0, -45.0), (-35.0, 95.0), (4.99, -4.99)]
    ab = torch.tensor(lab_pairs, dtype=torch.float32).T.reshape(1, 2, 1, -1) / 128.0
    got = st.weight_of(ab)
    assert got.shape == (1, 1, len(lab_pairs)) and got.dtype == torch.float32
    ok = st.in_gamut.tolist()
    cells = [(i, j) for i in range(G) for j in range(G) if ok[i][j]]
    for col, (a, b) in enumerate(lab_pairs):
        i, j = _cell(a), _cell(b)
        if not ok[i][j]:
            i, j = min(cells, key=lambda c: ((c[0] - i) ** 2 + (c[1] - j) ** 2, c[0] * G + c[1]))
        assert float(got[0, 0, col]) == float(st.bin_weights[i, j]), (a, b)


def test_class_helpers(st):
    q = st.num_classes
    assert q == int(st.in_gamut.sum())
    centres = st.class_centers()
    assert centres.shape == (q, 2)
    cls = st.ab_to_class(centres.T.reshape(1, 2, 1, q))
    assert cls.flatten().tolist() == list(range(q))
    torch.testing.assert_close(st.class_weights(), st.weight_of(centres.T.reshape(1, 2, 1, q)).flatten())


# ------------------------------------------------------------------ persistence
def test_save_load_round_trip_exact(st, tmp_path):
    path = st.save(tmp_path / "stats.safetensors")
    back = ColorStats.load(path)
    for key in stats_mod._TENSOR_KEYS:
        a, b = getattr(st, key), getattr(back, key)
        assert a.dtype == b.dtype and torch.equal(a, b), key
    assert back.meta == {**st.meta, "format": "colorkit-stats-v1"}
    assert back.image_size == st.image_size
    assert back.to("cpu").pca_components.device.type == "cpu"


def test_load_errors(tmp_path, st):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not safetensors at all")
    with pytest.raises(ColorkitError, match="bad.safetensors is not a valid safetensors file"):
        ColorStats.load(bad)
    with pytest.raises(ColorkitError, match="does not exist"):
        ColorStats.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other), metadata={"format": "pt"})
    with pytest.raises(ColorkitError, match="not colorkit colour statistics"):
        ColorStats.load(other)
    partial = tmp_path / "partial.safetensors"
    tensors = st.tensors()
    del tensors["bin_weights"]
    save_file(tensors, str(partial), metadata={"format": "colorkit-stats-v1", "image_size": str(SIZE)})
    with pytest.raises(ColorkitError, match="lacks bin_weights"):
        ColorStats.load(partial)


def test_load_or_compute_caches(ds, monkeypatch):
    first = load_or_compute_stats(ds)
    files = list(ds.root.glob("stats-*.safetensors"))
    assert len(files) == 1

    def boom(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(stats_mod, "compute_stats", boom)
    again = load_or_compute_stats(ds)
    assert torch.equal(again.pca_components, first.pca_components)
    with pytest.raises(AssertionError):
        load_or_compute_stats(ds, weighting="inverse")  # other options: another file


def test_cli_stats(ds, tmp_path, capsys):
    out = tmp_path / "copy.safetensors"
    with pytest.raises(SystemExit) as exc:
        main(["stats", "--dataset", str(ds.source), "--size", str(SIZE), "--cache-dir",
              str(ds.root.parent.parent), "--out", str(out), "-q"])
    text = capsys.readouterr().out
    assert exc.value.code == 0, text
    assert "(ab/128)^2" in text and "262 in gamut" in text and f"{len(ds.train_idx)}" in text
    assert ColorStats.load(out).k == 20


def test_one_options_object_for_every_entry(ds):
    """compute_stats, stats_cache_path and load_or_compute_stats take one StatsConfig (or
    its fields as keywords), the stats section of a run's configuration."""
    from colorkit.core.stats import StatsConfig, stats_cache_path
    from colorkit.train.config import StatsConfig as FromConfig

    assert FromConfig is StatsConfig
    inv = StatsConfig(weighting="inverse")
    assert stats_cache_path(ds, inv) == stats_cache_path(ds, weighting="inverse") != stats_cache_path(ds)
    assert stats_cache_path(ds, inv, components=5) == stats_cache_path(ds, weighting="inverse", components=5)
    with pytest.raises(TypeError, match="unknown colour-statistics option"):
        stats_cache_path(ds, weightings="inverse")
    with pytest.raises(TypeError, match=r"unknown colour-statistics option\(s\): k$"):  # now components=
        stats_cache_path(ds, k=5)
    with pytest.raises(ColorkitError, match="unknown weighting 'flat'"):
        StatsConfig(weighting="flat")
    with pytest.raises(ColorkitError, match="unknown gamut rule"):
        compute_stats(ds, gamut="everything")
