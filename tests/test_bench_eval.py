"""The benchmark's yardsticks: references against values computed here independently, the
bootstrap against known cases, verdicts, a plugin metric in every output, held-out test
sets and several seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from cli_helpers import one_line_error, run_cli
from PIL import Image
from skimage.color import rgb2lab

from colorkit.cli import main
from colorkit.core import plugin_manager as plugins
from colorkit.eval.bench import BenchConfig, _verdicts, reference_names
from colorkit.inference import load
from colorkit.metrics.bootstrap import bootstrap_ci, paired_bootstrap
from colorkit.testing import make_image_folder
from colorkit.train.runs import train

TINY = ["--preset", "tiny", "--epochs", "1", "--size", "32", "--quiet"]


# ------------------------------------------------------------------ bootstrap
def test_bootstrap_constant_values_give_a_point():
    assert bootstrap_ci([0.25] * 40) == (0.25, 0.25)


def test_bootstrap_matches_the_normal_interval_for_many_images():
    rng = np.random.default_rng(1)
    x = rng.normal(0.1, 0.02, size=4000)
    low, high = bootstrap_ci(x, seed=3, resamples=20000)  # 1000 resamples: +-0.2 se of Monte-Carlo noise
    se = x.std() / math.sqrt(x.size)
    assert low == pytest.approx(x.mean() - 1.96 * se, abs=0.1 * se)
    assert high == pytest.approx(x.mean() + 1.96 * se, abs=0.1 * se)


def test_bootstrap_is_seeded():
    x = np.random.default_rng(0).random(31)
    assert bootstrap_ci(x, seed=5) == bootstrap_ci(x, seed=5)
    assert bootstrap_ci(x, seed=5) != bootstrap_ci(x, seed=6)


def test_paired_bootstrap_removes_the_shared_image_difficulty():
    """Per-image errors vary a lot between images but a is b plus 0.01 on every image: the
    paired interval is exactly 0.01, while the unpaired intervals overlap widely."""
    b = np.random.default_rng(2).uniform(0.0, 0.3, size=31)
    a = b + 0.01
    diff, low, high = paired_bootstrap(a, b)
    assert diff == pytest.approx(0.01) and low == pytest.approx(0.01) and high == pytest.approx(0.01)
    la, ha = bootstrap_ci(a)
    lb, hb = bootstrap_ci(b)
    assert la < hb  # separately they cannot be told apart
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:-1])


def test_verdicts_beat_only_when_the_interval_excludes_zero():
    n = 50
    rng = np.random.default_rng(0)
    base = torch.tensor(rng.uniform(0.05, 0.15, n))
    rows = {
        "good": {"kind": "learned", "error_of_best": float((base - 0.02).mean())},
        "same": {"kind": "learned", "error_of_best": float(base.mean())},
        "grey": {"kind": "reference", "error_of_best": float(base.mean())},
    }
    noise = torch.tensor(rng.normal(0, 0.01, n))
    image_means = {"good": {"error_of_best": base - 0.02}, "same": {"error_of_best": base + noise},
                   "grey": {"error_of_best": base}}
    for r, v in image_means.items():
        rows[r]["error_of_best_ci"] = list(bootstrap_ci(v["error_of_best"]))
    v = _verdicts(rows, image_means, BenchConfig(methods=["good", "same"]))
    assert set(v) == {"good", "same"}
    assert v["good"]["beats"] == ["grey"] and v["good"]["against"]["grey"]["ci"][1] < 0
    assert v["same"]["beats"] == [] and "does NOT beat grey" in v["same"]["text"]
    assert v["good"]["text"].startswith("good: error-of-best ") and "beats grey" in v["good"]["text"]


# ------------------------------------------------------------------ references
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("refs") / "imgs", n=40, size=48, seed=7)


@pytest.fixture(scope="module")
def prepared(folder):
    from colorkit.core.stats import load_or_compute_stats
    from colorkit.data import prepare

    ds = prepare(folder, size=32, split_seed=0, progress=False)
    return ds, load_or_compute_stats(ds)


def _ab_independent(split) -> np.ndarray:
    """ab / 128 of the stored pixels through scikit-image, (N, 2, H, W)."""
    rgb = split.rgb_uint8(np.arange(len(split))).astype(np.float64) / 255.0
    return np.moveaxis(rgb2lab(rgb)[..., 1:], -1, 1) / 128.0


@pytest.fixture(scope="module")
def reference_runs(prepared, tmp_path_factory):
    ds, stats = prepared
    base = tmp_path_factory.mktemp("refruns")
    return {name: load(train(name, out=base / name, preset="tiny", seed=0, progress=False, prepared=ds, stats=stats))
            for name in ("grey", "mean-field", "prior-samples", "prior-kmeans")}


def _samples(colorizer, split, k=3, seed=0):
    b = split.batch(np.arange(len(split)))
    return colorizer.sample(b["grey"], k, seed=seed), b


def test_reference_names_are_registered_with_their_role():
    names = reference_names()
    assert {"grey", "mean-field", "prior-samples", "prior-kmeans", "colornet"} <= set(names)
    assert "mdn" not in names and "cvae" not in names


def test_grey_error_of_best_is_mean_abs_ab(prepared, reference_runs):
    ds, _ = prepared
    test = ds.split("test")
    samples, _ = _samples(reference_runs["grey"], test)
    assert not samples.any()
    from colorkit.metrics.functional import error_of_best

    expected = np.abs(_ab_independent(test)).mean()
    assert float(error_of_best(samples, test.batch(np.arange(len(test)))["ab"])) == pytest.approx(expected, abs=2e-3)


def test_mean_field_is_the_training_mean(prepared, reference_runs):
    ds, _ = prepared
    samples, _ = _samples(reference_runs["mean-field"], ds.split("test"))
    mean = _ab_independent(ds.split("train")).mean(0)
    assert np.abs(samples[0, 0].numpy() - mean).max() < 5e-3
    assert torch.equal(samples[:, 0], samples[:, 2]) and torch.equal(samples[0], samples[-1])


def test_prior_samples_are_distinct_training_fields(prepared, reference_runs):
    ds, _ = prepared
    samples, _ = _samples(reference_runs["prior-samples"], ds.split("test"), k=4)
    train_ab = torch.tensor(_ab_independent(ds.split("train")), dtype=torch.float32)  # (N, 2, H, W)
    flat = train_ab.flatten(1)
    for img in samples:
        d = torch.cdist(img.flatten(1), flat, p=1) / flat.shape[1]  # (k, N) mean |diff|
        best = d.min(1)
        assert bool((best.values < 5e-3).all())  # each output is a training field (fp16 + colour-path rounding)
        assert len(set(best.indices.tolist())) == 4  # k distinct ones
    assert not torch.equal(samples[0], samples[1])  # drawn anew per image


def test_prior_kmeans_centres_are_a_kmeans_fixed_point(prepared, reference_runs):
    ds, _ = prepared
    samples, _ = _samples(reference_runs["prior-kmeans"], ds.split("test"), k=3)
    centres = samples[0].flatten(1)  # (3, D)
    train_ab = torch.tensor(_ab_independent(ds.split("train")), dtype=torch.float32).flatten(1)
    labels = torch.cdist(train_ab, centres).argmin(1)
    sizes = torch.bincount(labels, minlength=3)
    assert bool((sizes > 0).all()) and sizes.tolist() == sorted(sizes.tolist(), reverse=True)
    for j in range(3):
        assert (train_ab[labels == j].mean(0) - centres[j]).abs().max() < 5e-3
    assert torch.equal(samples[0], samples[-1])  # input-agnostic


# ------------------------------------------------------------------ the bench end to end
PLUGIN_METRIC = '''
from colorkit import hookimpl
from colorkit.metrics import SampleMetric


class MeanA(SampleMetric):
    """Mean a channel of the colorizations."""

    registry_name = "ck_mean_a"
    higher_is_better = None
    units = "ab/128 (a channel)"

    def per_image(self, samples, target, grey=None):
        return samples[:, :, 0].mean(dim=(1, 2, 3))


@hookimpl
def register_metrics(register):
    register("ck_mean_a", MeanA)
'''


@pytest.fixture
def metric_plugin(tmp_path, monkeypatch):
    import sys

    from test_plugins import make_dist

    root = tmp_path / "site"
    root.mkdir()
    make_dist(root, "ck-test-metric", "ck_test_metric", PLUGIN_METRIC)
    monkeypatch.syspath_prepend(str(root))
    plugins.reload()
    yield root
    sys.modules.pop("ck_test_metric", None)
    monkeypatch.undo()
    plugins.reload()


def test_plugin_metric_and_test_dataset_in_every_output(metric_plugin, folder, prepared, reference_runs, tmp_path,
                                                        capsys):
    """A metric registered by a plugin is scored with its units; --test-dataset scores every
    usable image of another folder, counting the bad ones."""
    other = make_image_folder(tmp_path / "other", n=12, size=40, seed=11)
    (other / "broken.jpg").write_bytes(b"not a jpeg")
    runs = [str(c.run_dir) for c in reference_runs.values()]
    out = tmp_path / "b"
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--methods", "grey,mean-field,prior-samples,prior-kmeans", "--no-references", "--dataset",
              str(folder), *TINY, "--out", str(out), "--test-dataset", str(other), "--k", "3",
              *sum((["--runs", r] for r in runs), [])])
    assert exc.value.code == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["test_set"]["held_out"] and res["test_set"]["images"] == 12 and res["test_set"]["n_skipped"] == 1
    assert res["split"]["test"] == 12
    assert res["metrics"]["ck_mean_a"]["units"] == "ab/128 (a channel)"
    row = res["methods"]["grey"]
    assert row["ck_mean_a"] == 0.0 and row["ck_mean_a_ci"] == [0.0, 0.0]
    assert "ck_mean_a [ab/128 (a channel)]" in (out / "results.csv").read_text().splitlines()[0]
    md = (out / "results.md").read_text()
    assert "ck_mean_a" in md and "ab/128 (a channel)" in md
    assert "| 0 [0, 0] |" in md  # every metric's table carries its interval (grey's ck_mean_a)
    assert res["verdicts"] == {}  # only references were scored
    for when in ("load_start", "load_end"):
        assert set(res["machine"][when]) == {"load_1min", "cores", "busy"}
    assert "openmp" in res["machine"] and "busy_cores_at_start" in res["machine"]


def test_a_busy_machine_is_said_under_the_table():
    from colorkit.eval.report import table_markdown

    res = {"methods": {}, "metrics": {}, "test_set": {"name": "t"}, "seeds": [0], "split": {"test": 1}, "k": 2,
           "preset": "tiny", "bootstrap": {"resamples": 10}, "dataset": {"name": "t"}, "budget": {},
           "mixture_usage": {}, "units": {}, "verdicts": {},
           "machine": {"load_start": {"load_1min": 3.9, "cores": 2, "busy": True},
                       "load_end": {"load_1min": 0.2, "cores": 2, "busy": False}}}
    assert "The machine was busy (1-minute load average 3.9 at the start, 0.2 at the end, on 2 cores)" in \
        table_markdown(res)
    res["machine"]["load_start"]["busy"] = False
    assert "busy" not in table_markdown(res)


def test_threads_must_be_a_number_or_auto(folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--methods", "cvae", "--dataset", str(folder), *TINY, "--out", str(tmp_path / "t"),
              "--threads", "many"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "--threads must be a positive whole number or 'auto', got 'many'" in err


def test_seeds_give_per_seed_values_and_spread(folder, tmp_path, capsys, monkeypatch):
    """Two training seeds on one split (split seed 0); the environment overrides and the
    machine are recorded in results.json and every run.json."""
    monkeypatch.setenv("COLORKIT_LOSS_IMPL", "torch")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    out = tmp_path / "s"
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--methods", "cvae", "--dataset", str(folder), *TINY, "--out", str(out), "--seeds", "2",
              "--k", "2"])
    assert exc.value.code == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == [0, 1]
    row = res["methods"]["cvae"]
    assert set(row["per_seed"]) == {"0", "1"} and row["seed_std"]["error_of_best"] >= 0
    per = [row["per_seed"][s]["error_of_best"] for s in ("0", "1")]
    assert per[0] != per[1]  # another training seed, another model
    assert row["error_of_best"] == pytest.approx(sum(per) / 2, abs=1e-9)
    for s in (0, 1):
        run = json.loads((out / "runs" / "cvae" / f"seed-{s}" / "run.json").read_text())
        assert run["seed"] == s and run["config"]["train"]["seed"] == s
        assert run["config"]["data"]["split_seed"] == 0  # every seed scored on one test set
        assert {"COLORKIT_LOSS_IMPL": "torch", "OMP_WAIT_POLICY": "PASSIVE"}.items() <= run["environment"].items()
    assert {"COLORKIT_LOSS_IMPL": "torch", "OMP_WAIT_POLICY": "PASSIVE"}.items() <= res["environment"].items()
    assert res["config"]["data"]["split_seed"] == 0 and res["config"]["train"]["seed"] == 0
    assert {"processor", "system", "load_average"} <= set(res["machine"])
    verdict = res["verdicts"]["cvae"]
    assert set(verdict["against"]) >= {"grey", "mean-field", "prior-samples", "prior-kmeans", "colornet"}
    md = (out / "results.md").read_text()
    last = md.rstrip().splitlines()[-2:]
    assert "seed 0 | seed 1" in md and last[0].startswith("- cvae: error-of-best") and last[1].startswith("- cvae[")


def test_bad_test_dataset_is_a_user_error(folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--methods", "grey", "--dataset", str(folder), *TINY, "--out", str(tmp_path / "x"),
              "--test-dataset", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "missing" in err


def test_sample_sheet_has_a_row_per_method(tmp_path):
    from colorkit.eval.bench import sample_sheet

    class Split:
        def batch(self, idx):
            n = len(idx)
            return {"grey": torch.rand(n, 1, 16, 16), "ab": torch.zeros(n, 2, 16, 16)}

    sheet = {"a": torch.zeros(2, 3, 2, 16, 16), "b[x]": torch.zeros(2, 3, 2, 16, 16)}
    sample_sheet(sheet, Split(), tmp_path / "s.png", k=3, tile=32, kinds={"a": "learned", "b[x]": "reference"})
    w, h = Image.open(tmp_path / "s.png").size
    assert w == 150 + 5 * 35 and h == 2 * (16 + 2 * 35 + 8)


def test_an_option_a_reference_cannot_take_fails_before_training(folder, tmp_path, capsys):
    """``--option backbone=effnet-lite0`` also reaches the colornet reference, which needs a
    backbone with a pretext classifier: that is said before anything is trained (it used to
    end the bench after every method had trained, with no table)."""
    code, _, err = run_cli(["bench", "--dataset", str(folder), "--methods", "mdn", "--preset", "tiny",
                            "--option", "backbone=effnet-lite0", "--out", str(tmp_path / "b"), "-q"], capsys)
    one_line_error(code, err, "has no pretext classifier")
    assert "METHOD:KEY=VALUE" in err and not (tmp_path / "b" / "runs").exists()


def test_mean_of_images_is_declared_not_guessed():
    """Whether a metric gets a bootstrap interval is its class attribute ``mean_of_images``
    (a metric with the base update/compute that declares False gets none; a ratio of sums
    declares False)."""
    from colorkit.core.interfaces import Metric, RatioMetric
    from colorkit.eval.evaluate import metric_info
    from colorkit.metrics import MAEAll

    class Pooled(MAEAll):
        """Declared not a mean over images."""

        mean_of_images = False

    assert Metric.mean_of_images and not RatioMetric.mean_of_images
    info = metric_info({"mae_all": MAEAll(), "pooled": Pooled()})
    assert info["mae_all"]["interval"] == "bootstrap"
    assert info["pooled"]["interval"].startswith("none")


def test_evaluate_feeds_every_metric_through_the_collection(prepared, reference_runs):
    """Per-image values for the means over images (their mean is the value); the others
    through their own update/compute."""
    from colorkit.eval.evaluate import evaluate
    from colorkit.metrics import MAEAll

    class Pooled(MAEAll):
        mean_of_images = False

    test = prepared[0].split("test")
    res = evaluate(reference_runs["grey"], test, {"mae_all": MAEAll(), "pooled": Pooled()}, k=2, seed=0,
                   batch_size=3, mode=None)
    v = res["per_image"]["mae_all"]
    assert v.dtype == torch.float64 and v.shape == (len(test),) and res["per_image"]["pooled"] is None
    assert res["values"]["mae_all"] == float(v.mean())
    assert res["values"]["pooled"] == pytest.approx(float(v.mean()), abs=1e-12)


def test_ablation_refuses_scores_made_with_other_settings(folder, tmp_path):
    """A finished variant's scores.json is reused only with the settings it was made with
    (it used to be reused whatever the preset, seed or data set)."""
    from colorkit import ColorkitError
    from colorkit.eval.ablation import VARIANTS, run_ablation, variant_settings
    from colorkit.train.config import DataConfig

    data = DataConfig(dataset=str(folder), size=32)
    ds = data.prepare(progress=False)
    root = tmp_path / "ablation"
    fake = {"mae_all": 0.1, "mae_grid": 0.2, "wmae_all": 0.3, "wmae_grid": 0.4}
    for slug, weights in zip(("l2", "mah", "full"), VARIANTS.values()):
        (root / slug).mkdir(parents=True)
        settings = variant_settings(method="mdn", preset="tiny", epochs=1, seed=0, weights=weights, ds=ds,
                                    stats_config=None)
        (root / slug / "scores.json").write_text(json.dumps({**fake, "settings": settings}))
    text = run_ablation(preset="tiny", epochs=1, seed=0, out=str(tmp_path), progress=False, data=data)
    assert "| 0.1000 | 0.2000 |" in text  # the same settings: reused, nothing trained
    with pytest.raises(ColorkitError, match=r"other settings \(seed\)"):
        run_ablation(preset="tiny", epochs=1, seed=1, out=str(tmp_path), progress=False, data=data)
    with pytest.raises(ColorkitError, match=r"other settings \(epochs, preset\)"):
        run_ablation(preset="small", epochs=2, seed=0, out=str(tmp_path), progress=False, data=data)
    (root / "l2" / "scores.json").write_text(json.dumps(fake))  # written before the settings were recorded
    with pytest.raises(ColorkitError, match="not recorded"):
        run_ablation(preset="tiny", epochs=1, seed=0, out=str(tmp_path), progress=False, data=data)
    assert not (root / "l2" / "train_state").exists()
