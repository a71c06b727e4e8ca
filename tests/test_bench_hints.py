"""Benchmarks with colour hints: the masked metrics, the seeded hint points (the same for
every method and batch size), the reference ``levin``, ``colorkit bench --hints`` end to
end (by_hints, n = 0 equal to a bench without hints, results.md, hints.png) and its user
errors."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import one_line_error, run_cli
from PIL import Image
from toy_method import ToySplit

from colorkit.core.hints import sample_with_hints, simulate_hints
from colorkit.core.registry import ColorkitError
from colorkit.eval.hints import HINT_METRICS, bench_hint_maps, evaluate_hints
from colorkit.metrics import functional as F
from colorkit.testing import make_image_folder

TINY = ["--preset", "tiny", "--epochs", "1", "--size", "32", "--quiet", "--k", "3"]


# ------------------------------------------------------------------ masked metrics
def _fields(seed=0, b=3, k=4, s=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, 2, s, s, generator=g) * 0.3, torch.randn(b, 2, s, s, generator=g) * 0.3


def _masked(samples, target):
    return {"error_of_best": lambda m: F.error_of_best(samples, target, "none", mask=m),
            "mae_all": lambda m: F.mae_all(samples, target, "none", mask=m),
            "variance": lambda m: F.variance(samples, "none", mask=m)}


def test_masked_metrics_equal_the_unmasked_ones_with_an_all_ones_mask():
    samples, target = _fields()
    ones = torch.ones(3, 1, 8, 8)
    for name, fn in _masked(samples, target).items():
        torch.testing.assert_close(fn(ones), fn(None), rtol=1e-6, atol=0, msg=name)
        torch.testing.assert_close(fn(ones.bool()), fn(None), rtol=1e-6, atol=0, msg=name)
    assert float(F.error_of_best(samples, target, mask=ones)) == pytest.approx(float(F.error_of_best(samples, target)))


def test_masked_metrics_ignore_the_hinted_pixels():
    """Changing the colorizations and the truth at the masked-out pixels changes nothing;
    the values are the plain definitions over the kept pixels, computed here by indexing."""
    samples, target = _fields(1)
    mask = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.3
    before = {n: fn(mask) for n, fn in _masked(samples, target).items()}
    noisy_s = torch.where(mask.unsqueeze(1), samples, torch.full_like(samples, 9.0))
    noisy_t = torch.where(mask, target, -torch.ones_like(target) * 5)
    for name, fn in _masked(noisy_s, noisy_t).items():
        torch.testing.assert_close(fn(mask), before[name], msg=name)
    assert not torch.allclose(F.error_of_best(noisy_s, noisy_t, "none"), F.error_of_best(samples, target, "none"))
    for i in range(3):
        keep = mask[i, 0]
        err = (samples[i] - target[i][None]).abs()[:, :, keep]  # (k, 2, P)
        assert float(before["error_of_best"][i]) == pytest.approx(float(err.mean(dim=(1, 2)).min()), rel=1e-6)
        assert float(before["mae_all"][i]) == pytest.approx(float(err.mean()), rel=1e-6)
        var = samples[i].var(dim=0, unbiased=False)[:, keep]
        assert float(before["variance"][i]) == pytest.approx(float(var.mean()), rel=1e-6)


def test_a_mask_of_another_shape_is_a_user_error():
    samples, target = _fields()
    with pytest.raises(ColorkitError, match=r"mask must have shape \(B, 1, H, W\)"):
        F.error_of_best(samples, target, mask=torch.ones(3, 8, 8))


# ------------------------------------------------------------------ hint points
class _Recorder:
    """A method that takes hints and keeps every hint map it is given (declaring what
    ``Method`` declares and the bench reads)."""

    takes_hints = True
    uses_meta = False
    registry_name = "recorder"

    def __init__(self):
        self.seen = []

    def sample(self, grey, k, *, mode=None, generator=None, hints=None):
        self.seen.append(hints)
        return torch.zeros(grey.shape[0], k, 2, *grey.shape[-2:])


def test_hint_points_are_the_same_for_every_method_and_batch_size():
    split = ToySplit(n=7, size=8, seed=3)
    got = []
    for batch_size in (3, 7):
        rec = _Recorder()
        colorizer = SimpleNamespace(method=rec, device=torch.device("cpu"), name="rec")
        evaluate_hints(colorizer, split, [0, 5], k=2, seed=0, hint_seed=4, batch_size=batch_size, mode=None)
        per_count = {0: [h for h in rec.seen if h is None], 5: torch.cat([h for h in rec.seen if h is not None])}
        got.append(per_count)
    assert got[0][0] == [None, None, None] and got[1][0] == [None]  # n = 0: sampled exactly as without hints
    torch.testing.assert_close(got[0][5], got[1][5], rtol=0, atol=0)
    maps = got[0][5]
    assert maps[:, 0].flatten(1).sum(1).tolist() == [5.0] * 7  # five distinct points on every image
    truth = split.batch(range(7))["ab"]
    torch.testing.assert_close(maps[:, 1:], truth * maps[:, :1])  # with the true colour there
    # another seed, another count or another image position: other points
    assert not torch.equal(bench_hint_maps(truth, list(range(7)), 5, 5)[:, :1], maps[:, :1])
    assert not torch.equal(bench_hint_maps(truth, list(range(1, 8)), 5, 4)[:, :1], maps[:, :1])
    assert bench_hint_maps(truth, list(range(7)), 6, 4)[:, 0].sum() == 42


class _Noisy:
    """A method without hints whose colorizations are random draws of the generator
    (declaring what ``Method`` declares and the bench reads)."""

    takes_hints = False
    uses_meta = False
    registry_name = "noisy"

    def sample(self, grey, k, *, mode=None, generator=None):
        return 0.2 * torch.randn(grey.shape[0], k, 2, *grey.shape[-2:], generator=generator)


def test_no_hints_is_scored_as_without_hints_over_several_batches():
    """n = 0 gives exactly the per-image values of the scoring without hints (the same
    sampling seed for every hint count, batch after batch)."""
    from colorkit import create_metric
    from colorkit.eval.evaluate import evaluate

    split = ToySplit(n=7, size=8, seed=5)
    colorizer = SimpleNamespace(method=_Noisy(), device=torch.device("cpu"), name="noisy")
    plain = evaluate(colorizer, split, {m: create_metric(m) for m in HINT_METRICS}, k=3, seed=2, batch_size=3,
                     mode=None)
    hinted = evaluate_hints(colorizer, split, [0, 4], k=3, seed=2, hint_seed=0, batch_size=3, mode=None)
    for m in HINT_METRICS:
        assert torch.equal(hinted[0]["per_image"][m], plain["per_image"][m]), m
        assert hinted[0]["values"][m] == plain["values"][m]
    assert not torch.equal(hinted[4]["per_image"]["mae_all"], hinted[0]["per_image"]["mae_all"])  # hints reached it


def test_no_hints_is_taken_from_the_evaluation_without_hints_not_sampled_again():
    """Given the row's evaluation without hints, n = 0 reuses its per-image values: the
    method is sampled only for the other counts."""
    from colorkit import create_metric
    from colorkit.eval.evaluate import evaluate

    split = ToySplit(n=7, size=8, seed=5)
    method = _Noisy()
    colorizer = SimpleNamespace(method=method, device=torch.device("cpu"), name="noisy")
    plain = evaluate(colorizer, split, {m: create_metric(m) for m in HINT_METRICS}, k=3, seed=2, batch_size=3,
                     mode=None)
    calls = []
    real = method.sample
    method.sample = lambda *a, **kw: calls.append(1) or real(*a, **kw)
    again = evaluate_hints(colorizer, split, [0, 4], k=3, seed=2, hint_seed=0, batch_size=3, mode=None,
                           without=plain)
    assert len(calls) == 3  # three batches, n = 4 only
    fresh = evaluate_hints(colorizer, split, [0, 4], k=3, seed=2, hint_seed=0, batch_size=3, mode=None)
    for c in (0, 4):
        for m in HINT_METRICS:
            assert torch.equal(again[c]["per_image"][m], fresh[c]["per_image"][m]), (c, m)


def test_a_row_identical_to_another_is_said_once_with_hints(tmp_path):
    """A mode the bench found identical to another row (``same_as``) is not repeated in the
    hint tables, verdicts or legend, and is named once as the same."""
    from colorkit.eval.plots import hints_plot
    from colorkit.eval.report import hints_markdown

    row = {"kind": "learned", "error_of_best": 0.05, "error_of_best_ci": [0.04, 0.06], "mae_all": 0.06,
           "variance": 1e-3}
    entry = {"methods": {"m": row, "m[b]": row}, "verdicts": {"m": {"text": "m: verdict"},
                                                               "m[b]": {"text": "m[b]: verdict"}}}
    results = {"methods": {"m": {}, "m[b]": {"same_as": "m"}}, "hints": {"seed": 0},
               "by_hints": {"0": entry, "5": entry}, "test_set": {"name": "t"}, "split": {"test": 3}, "k": 2}
    text = "\n".join(hints_markdown(results))
    assert "| m[b] |" not in text and "m[b]: verdict" not in text and "m[b]: same as m" in text
    assert "| m |" in text and "m: verdict" in text
    hints_plot(results, tmp_path / "hints.png")
    assert (tmp_path / "hints.png").stat().st_size > 0


# ------------------------------------------------------------------ levin
def test_levin_propagates_the_hints_and_is_grey_without_them(colorkit_tiny_stats):
    from colorkit import create_method
    from colorkit.core.interfaces import Method

    levin = create_method("levin", preset="tiny", stats=colorkit_tiny_stats)
    assert levin.takes_hints and levin.hints_only and levin.role == "reference" and not Method.hints_only
    split = ToySplit(n=3, size=16, seed=1)
    b = split.batch(range(3))
    hints = simulate_hints(b["ab"], [4, 0, 9], generator=torch.Generator().manual_seed(0))
    out = sample_with_hints(levin, b["grey"], 2, hints=hints)
    assert out.shape == (3, 2, 2, 16, 16) and torch.equal(out[:, 0], out[:, 1])
    mask = hints[:, :1].bool()
    at_hints = (out - b["ab"][:, None]).abs() * mask[:, None]
    assert float(at_hints.max()) < 1e-5  # the error at the hinted pixels is 0
    assert not out[1].any()  # an image without hints: the grey image
    assert out[0].abs().sum() > 0 and out[2].abs().sum() > 0  # spread beyond the hinted pixels
    assert (out[0, 0].abs().sum(0) > 0).sum() > 4
    assert not sample_with_hints(levin, b["grey"], 2).any()  # hints=None: exactly zeros


# ------------------------------------------------------------------ bench end to end
@pytest.fixture(scope="module")
def benches(tmp_path_factory):
    """A bench with --hints 0,3 (cvae, levin, prior-kmeans, grey) and one without hints
    that reuses its runs."""
    base = tmp_path_factory.mktemp("hintbench")
    folder = make_image_folder(base / "imgs", n=40, size=48, seed=7)
    common = ["--dataset", str(folder), *TINY, "--no-references"]
    for out, extra in ((base / "with", ["--methods", "cvae,levin,prior-kmeans,grey", "--hints", "3,0"]),
                       (base / "without", ["--methods", "cvae,prior-kmeans,grey",
                                           *sum((["--runs", str(base / "with" / "runs" / m / "seed-0")]
                                                 for m in ("cvae", "prior-kmeans", "grey")), [])])):
        from colorkit.cli import main

        with pytest.raises(SystemExit) as exc:
            main(["bench", *common, *extra, "--out", str(out)])
        assert exc.value.code == 0
    return (json.loads((base / "with" / "results.json").read_text()),
            json.loads((base / "without" / "results.json").read_text()), base)


def test_by_hints_has_rows_and_verdicts_per_count(benches):
    res, _, base = benches
    assert list(res["by_hints"]) == ["0", "3"] and res["hints"]["counts"] == [0, 3]
    assert res["hints"]["metrics"] == list(HINT_METRICS) and res["hints"]["units"]["variance"] == "(ab/128)^2"
    assert res["config"]["hints"] == [0, 3]
    assert "levin" not in res["methods"] and "levin" not in res["verdicts"]["cvae"]["against"]  # only with hints
    for count, entry in res["by_hints"].items():
        assert entry["hints"] == int(count)
        assert set(entry["methods"]) == set(res["methods"]) | {"levin"}
        for name, row in entry["methods"].items():
            assert row["kind"] == ("learned" if name.startswith("cvae") else "reference")
            for m in HINT_METRICS:
                low, high = row[f"{m}_ci"]
                assert low <= row[m] <= high and row["per_seed"]["0"][m] == pytest.approx(row[m])
            assert row["error_of_best"] <= row["mae_all"] + 1e-9
        assert set(entry["verdicts"]) == {n for n in entry["methods"] if n.startswith("cvae")}
        assert set(entry["verdicts"]["cvae"]["against"]) == {"levin", "prior-kmeans", "grey"}
    three = res["by_hints"]["3"]["methods"]
    # grey + the generic propagation is levin: the same points reached both (and every other row)
    for m in HINT_METRICS:
        assert three["grey"][m] == pytest.approx(three["levin"][m], abs=1e-7)
    assert three["levin"]["error_of_best"] < res["by_hints"]["0"]["methods"]["levin"]["error_of_best"]
    md = (base / "with" / "results.md").read_text()
    assert "## With colour hints" in md and "### 0 hints per image" in md and "### 3 hints per image" in md
    assert "Verdicts with 3 hints" in md and "- cvae: error-of-best" in md.split("### 3 hints per image")[1]
    png = Image.open(base / "with" / "hints.png")
    assert png.size[0] > 400 and png.size[1] > 300
    assert not (base / "without" / "hints.png").exists()


def test_no_hints_equals_a_bench_without_hints(benches):
    res, plain, _ = benches
    assert "by_hints" not in plain and "hints" not in plain and plain["config"]["hints"] is None
    zero = res["by_hints"]["0"]
    for name, row in plain["methods"].items():
        for m in HINT_METRICS:
            assert zero["methods"][name][m] == row[m], (name, m)
            assert zero["methods"][name][f"{m}_ci"] == row[f"{m}_ci"], (name, m)
            assert zero["methods"][name]["per_seed"]["0"][m] == row["per_seed"]["0"][m], (name, m)
        # with --hints the top level is what it is without
        same = {k: v for k, v in res["methods"][name].items() if k not in ("infer_seconds_per_image", "run_dir")}
        assert same == {k: v for k, v in row.items() if k not in ("infer_seconds_per_image", "run_dir")}
    for name, v in plain["verdicts"].items():
        for ref, c in v["against"].items():
            assert zero["verdicts"][name]["against"][ref] == c
    assert res["verdicts"] == plain["verdicts"]


def test_levin_is_scored_only_with_hints(tmp_path, capsys):
    from colorkit.eval.bench import BenchConfig, _references

    assert "levin" not in _references(BenchConfig(methods=["cvae"]))
    assert "levin" in _references(BenchConfig(methods=["cvae"], hints="0,5"))
    code, _, err = run_cli(["bench", "--methods", "levin", "--dataset", str(tmp_path), *TINY,
                            "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "levin is scored only with colour hints")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value,needle", [("1,1", "given twice"), ("-2", "-2 is out of range"),
                                          ("5,x", "'x' is not a whole number"), ("300", "300 is out of range"),
                                          ("", "is not a whole number"), ("2.5", "not a whole number")])
def test_bad_hint_counts_are_one_line_errors(value, needle, tmp_path, capsys):
    code, _, err = run_cli(["bench", "--methods", "grey", "--dataset", str(tmp_path), *TINY, "--hints", value,
                            "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, needle)


def test_hint_counts_must_leave_pixels_without_a_hint(tmp_path, capsys):
    code, _, err = run_cli(["bench", "--methods", "grey", "--dataset", str(tmp_path), "--preset", "tiny",
                            "--size", "16", "--hints", "0,256", "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "--hints 256 leaves no pixel without a hint on the 16x16 test images")
