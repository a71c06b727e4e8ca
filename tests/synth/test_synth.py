"""The synth data set, its metadata, the oracle reference and the mode metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from colorkit_synth import world as W
from colorkit_synth.modes import COHERENCE_TOL, MODE_TOL, image_scores
from colorkit_synth.oracle import Oracle
from PIL import Image

from colorkit.cli import main
from colorkit.core.color import uint8_hwc_to_model
from colorkit.core.registry import ColorkitError
from colorkit.data import prepare
from colorkit.data.meta import META_JSON, load_meta, read_meta_folder
from colorkit.metrics import MetricCollection

SMALL = "synth:n=200,size=32"


def _scores(samples, meta):
    s = np.array([image_scores(x, rec) for x, rec in zip(samples, meta)])
    return s.mean(0)  # recall, precision, coherence


@pytest.fixture(scope="module")
def small():
    ds = prepare(SMALL, size=32, progress=False)
    meta_of = load_meta(ds)
    test = ds.split("test")
    b = test.batch(list(range(len(test))))
    return ds, b, meta_of(b["index"])


# ------------------------------------------------------------------ spec
def test_spec_defaults_and_normalisation():
    a = W.parse_spec("synth")
    assert a == W.SynthSpec() == W.parse_spec("") == W.parse_spec(None)
    b = W.parse_spec("synth:modes=3, seed=3")
    assert (b.seed, b.modes, b.classes) == (3, 3, 3)
    assert W.parse_spec(b.string()) == b
    assert b.string().startswith("synth:seed=3,classes=3,modes=3,")


@pytest.mark.parametrize("bad", ["foo=1", "seed", "seed=x", "seed=1.5", "modes=9", "n=5", "seed=1,seed=2",
                                 "skew=nan", "size=-3"])
def test_bad_spec_is_one_line_error_listing_parameters(bad):
    with pytest.raises(ColorkitError) as ei:
        W.parse_spec(bad)
    msg = str(ei.value)
    assert "\n" not in msg and bad.split(",")[0].split("=")[0] in msg
    for p in ("seed", "classes", "modes", "themes", "n (", "size", "objects", "skew"):
        assert p in msg


def test_bad_spec_through_the_cli_exits_2(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["data", "info", "--dataset", "synth:colours=3"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'colours'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_too_many_themes_for_the_palette():
    with pytest.raises(ColorkitError, match="distinct themes"):
        W.build_world(W.parse_spec("classes=1,modes=2,themes=5"))


# ------------------------------------------------------------------ generation
def test_same_spec_same_files_and_hash_different_spec_differs(tmp_path):
    spec = "synth:n=24,size=32,seed=5"
    f1, f2 = W.generate(spec, cache_dir=tmp_path / "a"), W.generate(spec, cache_dir=tmp_path / "b")
    names = sorted(p.name for p in f1.glob("*.png"))
    assert len(names) == 24 and names == sorted(p.name for p in f2.glob("*.png"))
    for n in names:
        assert (f1 / n).read_bytes() == (f2 / n).read_bytes()
    assert (f1 / META_JSON).read_text() == (f2 / META_JSON).read_text()
    # two folders never share a cache key (it holds the path), but equal files give equal data
    h1 = prepare(f1, progress=False, cache_dir=tmp_path / "c").content_hash
    h2 = prepare(f2, progress=False, cache_dir=tmp_path / "d").content_hash
    assert h1 == h2
    f3 = W.generate("synth:n=24,size=32,seed=6", cache_dir=tmp_path / "a")
    assert prepare(f3, progress=False, cache_dir=tmp_path / "c").content_hash != h1
    assert W.generate(spec, cache_dir=tmp_path / "a") == f1  # reused


def test_registered_name_and_spec_resolve_to_the_same_data_set():
    a = prepare("synth:n=30,size=32", progress=False)
    b = prepare("synth:size=32,n=30,seed=0", progress=False)
    assert a.hash == b.hash and a.n == 30


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def boom(world, folder):
        (folder / "0.png").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(W, "_write", boom)
    with pytest.raises(KeyboardInterrupt):
        W.generate("synth:n=20,size=16", cache_dir=tmp_path)
    assert not any(p for p in (tmp_path / "synth").iterdir())


def test_metadata_matches_the_pixels():
    folder = W.generate("synth:n=60,size=64,seed=2,objects=3")
    info = json.loads((folder / META_JSON).read_text())
    meta = read_meta_folder(folder)
    lightness = {}  # (region kind, mode) -> mean L over images
    for name, rec in info["images"].items():
        arr = np.array(Image.open(folder / name).convert("RGB"))
        grey, ab = uint8_hwc_to_model(arr)
        labels = meta.record(name)["labels"].long()
        drawn = next(g for g in rec["themes"] if rec["theme"] in g["ids"])
        assert abs(sum(g["p"] for g in rec["themes"]) - 1) < 1e-6
        assert len({tuple(map(tuple, g["ab"])) for g in rec["themes"]}) == len(rec["themes"])  # distinct
        for r, colour in enumerate(drawn["ab"]):
            m = labels == r
            assert m.any()
            mean_ab = ab[0][:, m].mean(1)
            assert torch.allclose(mean_ab, torch.tensor(colour, dtype=torch.float32), atol=0.02)
            kind = "background" if r == 0 else rec["objects"][r - 1]["class"]
            mode = rec["background_mode"] if r == 0 else rec["objects"][r - 1]["mode"]
            lightness.setdefault((kind, mode), []).append(float(grey[0, 0][m].mean()))
    # The grey image says nothing about the mode: every mode of a region has the same lightness.
    for kind in {k for k, _ in lightness}:
        means = [np.mean(v) for (k, _), v in lightness.items() if k == kind and len(v) >= 3]
        assert len(means) >= 2 and max(means) - min(means) < 0.01, (kind, means)  # < 1 L unit


def test_modes_of_a_region_are_separated_and_in_gamut():
    for spec in ("synth", "synth:modes=5,classes=8,seed=4", "synth:modes=2,classes=1"):
        w = W.build_world(W.parse_spec(spec))
        for r in range(w.palette.shape[0]):
            d = np.linalg.norm(w.palette[r][:, None] - w.palette[r][None], axis=-1)
            assert d[~np.eye(len(d), dtype=bool)].min() >= W.MIN_SEPARATION - 1e-9
        assert W.MIN_SEPARATION >= 2 * MODE_TOL


def test_regions_do_not_share_colours():
    """Each region's modes are kept away from every other region's: a region whose colours
    coincide with the background's gets the background's weight under a colourfulness-
    rebalanced loss, and a VAE learns to paint it background. The default world once had
    the triangle's modes within 0.03 ab/128 of the background's."""
    for spec, floor in (("synth", 0.1), ("synth:seed=1,modes=3,themes=3", 0.1), ("synth:seed=2", 0.1),
                        ("synth:modes=2", 0.2)):
        p = W.build_world(W.parse_spec(spec)).palette
        gaps = [np.linalg.norm(p[i][:, None] - p[j][None], axis=-1).min()
                for i in range(len(p)) for j in range(i)]
        assert min(gaps) >= floor, (spec, min(gaps))


# ------------------------------------------------------------------ metrics, oracle, references
def test_oracle_reaches_the_ceiling_and_references_do_not(small):
    ds, b, meta = small
    k = 5
    oracle = Oracle(stats=None).sample(b["grey"], k, generator=torch.Generator().manual_seed(0), meta=meta)
    assert oracle.shape == (len(meta), k, 2, 32, 32)
    assert (_scores(oracle, meta) >= 0.95).all()
    greys = torch.zeros_like(oracle)
    train = ds.split("train")
    mean_field = train.batch(list(range(len(train))))["ab"].mean(0)
    for ref in (greys, mean_field.expand_as(oracle)):
        recall, precision, _ = _scores(ref, meta)
        assert recall <= 0.2 and precision <= 0.2


def test_oracle_with_more_themes_than_k():
    ds = prepare("synth:n=200,size=32,themes=9,modes=3,seed=1", size=32, progress=False)
    test = ds.split("test")
    b = test.batch(list(range(len(test))))
    meta = load_meta(ds)(b["index"])
    assert max(len(r["themes"]) for r in meta) > 3
    out = Oracle(stats=None).sample(b["grey"], 3, generator=torch.Generator().manual_seed(0), meta=meta)
    assert (_scores(out, meta) >= 0.95).all()
    # distinct themes, most probable first
    rec = next(r for r in meta if len(r["themes"]) > 3)
    i = meta.index(rec)
    assert all(not torch.equal(out[i, a], out[i, c]) for a in range(3) for c in range(a))


def test_oracle_needs_metadata():
    with pytest.raises(ColorkitError, match="metadata"):
        Oracle(stats=None).sample(torch.zeros(1, 1, 32, 32), 2)


def test_mode_tolerance_and_coherence_on_known_cases(small):
    _, b, meta = small
    rec = meta[0]
    oracle = Oracle(stats=None).sample(b["grey"][:1], 1, meta=[rec])[0]  # (1, 2, H, W): most probable theme
    shift = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    within = image_scores(oracle + (MODE_TOL - 0.01) * shift, rec)
    beyond = image_scores(oracle + (MODE_TOL + 0.01) * shift, rec)
    assert within[1] == 1.0 and beyond[1] == 0.0
    speckle = oracle + torch.randn(oracle.shape, generator=torch.Generator().manual_seed(0)) * 2 * COHERENCE_TOL
    assert image_scores(speckle, rec)[2] == 0.0 and image_scores(oracle, rec)[2] == 1.0
    # recall counts distinct themes: k copies of one theme cover 1 of min(k, G)
    g = len(rec["themes"])
    assert image_scores(oracle.expand(3, -1, -1, -1), rec)[0] == pytest.approx(1 / min(3, g))


def test_meta_metrics_are_skipped_without_metadata(small):
    _, b, meta = small
    mc = MetricCollection(["error_of_best", "mode_recall"])
    s = b["ab"][:, None]
    mc.update(s, b["ab"], b["grey"])
    res = mc.compute()
    assert res["error_of_best"] == 0.0 and res["mode_recall"] != res["mode_recall"]  # nan: skipped
    mc.update(s, b["ab"], b["grey"], meta=meta)
    assert mc.compute()["mode_recall"] > 0.95


def test_bad_metadata_file_is_a_clear_error(tmp_path):
    (tmp_path / META_JSON).write_text("{not json")
    with pytest.raises(ColorkitError, match="not valid JSON"):
        read_meta_folder(tmp_path)
    (tmp_path / META_JSON).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ColorkitError, match="colorkit-meta-v1"):
        read_meta_folder(tmp_path)
    assert read_meta_folder(tmp_path / "nothing-here") is None


# ------------------------------------------------------------------ through the bench
def test_bench_scores_oracle_and_mode_metrics_on_synth(tmp_path):
    from colorkit.eval.bench import BenchConfig, run_bench

    res = run_bench(BenchConfig(methods=["oracle"], dataset="synth:n=120,size=32", size=32, out=str(tmp_path / "o"),
                                progress=False, sample_images=2))
    row = res["methods"]["oracle"]
    assert min(row["mode_recall"], row["mode_precision"], row["coherence"]) >= 0.95
    assert row["error_of_best"] < 0.02


def test_bench_without_metadata_skips_mode_metrics_and_refuses_oracle(tmp_path, colorkit_tiny_dataset):
    from colorkit.eval.bench import BenchConfig, run_bench

    folder = Path(colorkit_tiny_dataset.source)
    with pytest.raises(ColorkitError, match="metadata"):
        run_bench(BenchConfig(methods=["oracle"], dataset=str(folder), size=32, out=str(tmp_path / "o"),
                              progress=False))


def test_synth_is_generated_in_the_cache_dir_given(tmp_path, monkeypatch, capsys):
    """``--cache-dir`` (and ``cache_dir=``) hold the generated images too, never the default cache."""
    default = tmp_path / "default-cache"
    monkeypatch.setenv("COLORKIT_CACHE", str(default))
    mine = tmp_path / "mine"
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", "synth:n=20,size=16,seed=11", "--size", "16", "--cache-dir", str(mine), "-q"])
    assert exc.value.code in (0, None), capsys.readouterr().err
    assert not default.exists()
    assert list((mine / "synth").glob("v*-*"))
