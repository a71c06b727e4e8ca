"""End to end through the CLI on a tiny made-up data set: train, colorize, bench (+ rerun),
and user errors (exit 2, one line, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_cli
from PIL import Image

import colorkit
from colorkit.cli import main
from colorkit.testing import make_image_folder

TINY = ["--preset", "tiny", "--epochs", "1", "--size", "32"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("pipe") / "imgs", n=40, size=48, seed=3)


@pytest.fixture(scope="module")
def bench_out(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    with pytest.raises(SystemExit) as exc:
        main(
            ["bench", "--methods", "mdn,cvae,cgan", "--dataset", str(folder), *TINY, "--out", str(out), "--quiet"]
        )
    assert exc.value.code == 0
    return out


def test_bench_outputs_and_schema(bench_out):
    from colorkit import list_metrics
    from colorkit.data.prepare import default_test_size

    res = json.loads((bench_out / "results.json").read_text())
    metrics = set(list_metrics())
    assert {"error_of_best", "variance", "mae_all", "hist_kl", "grad_log_ratio", "colorfulness_diff"} <= metrics
    # every registered metric is scored, except those that need per-image metadata (synth's)
    assert set(res["metrics"]) | set(res["skipped_metrics"]) == metrics
    assert set(res["skipped_metrics"]) == {"mode_recall", "mode_precision", "coherence"}
    keys = set(res["metrics"]) | {"train_seconds", "infer_seconds_per_image"}
    learned = {"mdn", "cvae", "cgan", "mdn[mixture]"}
    refs = {"grey", "mean-field", "prior-samples", "prior-kmeans", "colornet", "colornet[per-pixel]",
            "mdn[vae-kmeans]"}  # mdn's own decoder fed fixed k-means codes
    assert learned | refs <= set(res["methods"])
    for name, row in res["methods"].items():
        assert keys <= set(row), name
        assert all(np.isfinite(row[k]) for k in keys)
        assert row["kind"] == ("reference" if name in refs else "learned")
        # min over k <= mean over k, up to float32 rounding of the two reductions (about 1e-8)
        assert 0 <= row["error_of_best"] <= row["mae_all"] * (1 + 1e-6)
        low, high = row["error_of_best_ci"]
        assert low <= row["error_of_best"] <= high
    t = default_test_size(40)
    assert res["split"] == {"train": 40 - t, "test": t}
    assert {"dataset", "preset", "seed", "versions", "device", "units", "k", "threads", "verdicts", "budget"} <= set(
        res
    )
    assert res["units"]["error_of_best"] == "ab/128"
    assert set(res["verdicts"]) == {n for n in res["methods"] if n not in refs}
    assert set(res["verdicts"]["mdn"]["against"]) == {n for n in res["methods"] if n in refs}
    assert res["budget"]["mdn"]["stages"]["vae"] == {"epochs": 1, "images": 40 - t}
    usage = res["mixture_usage"]["mdn"]
    assert usage["test"]["images"] == t and sum(usage["test"]["winner_fraction"]) == pytest.approx(1.0)
    assert usage["train"]["images"] == 40 - t
    csv = (bench_out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("method,kind,mode,") and "error_of_best [ab/128]" in csv[0]
    assert len(csv) == 1 + len(res["methods"])
    m = res["machine"]
    assert m["reference_steps_per_s"] > 0 and m["reference"]["threads"] == res["threads"]
    assert m["processor"] and m["cpu_flags"] in ("avx512", "avx2", "other", "unknown")
    assert m["anchor_gflops"]["matmul"] > 0 and m["anchor_gflops"]["conv"] > 0
    md = (bench_out / "results.md").read_text()
    assert md.splitlines()[1].startswith(f"machine: {m['reference_steps_per_s']} reference steps/s")
    assert "Eob." in md and "Var." in md and "ab/128" in md and "Training budget" in md and "Mixture usage" in md
    assert md.rstrip().splitlines()[-1].startswith("- ")  # verdict lines close the page
    for png in ("scatter.png", "samples.png"):
        assert Image.open(bench_out / png).size[0] > 200


def test_bench_rerun_reuses_runs_and_repeats_numbers(bench_out, folder, capsys):
    before = json.loads((bench_out / "results.json").read_text())
    code, out, err = run_cli(["bench", "--methods", "mdn,cvae,cgan", "--dataset", str(folder), *TINY,
                              "--out", str(bench_out), "--quiet"], capsys)
    assert code == 0 and "reusing finished run" in out + err
    after = json.loads((bench_out / "results.json").read_text())

    def without_timings(res):
        res = json.loads(json.dumps(res))
        res.pop("elapsed_seconds")
        for key in ("load_average", "load_start", "load_end", "busy_cores_at_start", "openmp",
                    "reference_steps_per_s", "reference", "anchor_gflops", "thread_changes"):
            res["machine"].pop(key)  # how busy and how fast the machine was, like the timings
        for row in res["methods"].values():
            row.pop("infer_seconds_per_image")
        return res

    assert without_timings(before) == without_timings(after)


def test_train_colorize_and_library(bench_out, tmp_path, capsys):
    run = bench_out / "runs" / "cvae" / "seed-0"
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(photo)
    Image.fromarray(rng.integers(0, 255, (30, 20), dtype=np.uint8)).save(tmp_path / "grey.png")
    code, out, err = run_cli(["colorize", str(photo), str(tmp_path / "grey.png"), "--run", str(run), "--k", "3",
                              "--out", str(tmp_path / "col")], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "col" / "photo_1.png").size == (70, 45)
    assert Image.open(tmp_path / "col" / "grey_3.png").size == (20, 30)
    assert (tmp_path / "col" / "grid.png").is_file()
    imgs = colorkit.load(run).colorize(photo, k=2)
    assert len(imgs) == 2 and imgs[0].size == (70, 45)
    t = colorkit.load(run).colorize(np.asarray(Image.open(photo)), k=2, output="tensors")
    assert t.shape == (2, 3, 45, 70) and float(t.min()) >= 0 and float(t.max()) <= 1
    # The L channel is the input's own: greying a colorization gives back the input's L.
    from colorkit.core.color import rgb_to_lab
    from colorkit.data.imageio import open_image, to_tensor

    L_in = rgb_to_lab(to_tensor(open_image(photo)))[:, 0]
    L_out = rgb_to_lab(t[:1])[:, 0]
    assert float((L_in - L_out).abs().mean()) < 1.5  # Lab L units, gamut clipping aside


def test_train_command_and_resume_refusal(folder, tmp_path, capsys):
    out = tmp_path / "run"
    code, o, e = run_cli(["train", "--method", "cgan", "--dataset", str(folder), *TINY, "--out", str(out),
                          "--quiet"], capsys)
    assert code == 0, e
    info = json.loads((out / "run.json").read_text())
    assert info["method"] == "cgan" and info["complete"] and "ab/128" in info["units"]
    assert not (out / "train_state").exists() and (out / "loss.png").is_file()
    code, o, e = run_cli(["train", "--method", "cgan", "--dataset", str(folder), *TINY, "--out", str(out)], capsys)
    assert code == 2 and "already holds a finished run" in e


@pytest.mark.parametrize("args,needle", [
    (["train", "--method", "nope"], "unknown method 'nope'; known:"),
    (["bench", "--methods", "mdn,nope"], "unknown method 'nope'"),
    (["train", "--method", "cvae", "--dataset", "/no/such/folder"], "/no/such/folder"),
    (["colorize", "missing.jpg", "--run", "/no/run"], "not a colorkit run directory"),
    (["train", "--method", "cvae", "--preset", "huge"], "unknown preset 'huge'"),
    (["train", "--method", "cvae", "--option", "nonsense=1"], "invalid options for method 'cvae'"),
])
def test_user_errors_exit_2_one_line(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(args, capsys)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert needle in last and last.startswith("colorkit: error:") and "Traceback" not in err, err
    assert not (tmp_path / "colorized").exists()


def test_colorize_bad_image_writes_nothing(bench_out, tmp_path, capsys):
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8) + 90).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    code, out, err = run_cli(["colorize", str(good), str(bad), "--run", str(bench_out / "runs" / "cvae" / "seed-0"),
                              "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "cannot read image" in err and str(bad) in err
    assert not (tmp_path / "o").exists()


def test_bench_refuses_a_finished_run_of_an_earlier_preset(bench_out, folder, tmp_path, capsys):
    """A finished run left in --out is reused only while the preset still gives its settings:
    one trained before the preset changed (here: its MDN learning rate edited) is refused, not
    scored as today's preset."""
    import shutil

    out = tmp_path / "again"
    shutil.copytree(bench_out / "runs" / "mdn" / "seed-0", out / "runs" / "mdn" / "seed-0")
    args = ["bench", "--methods", "mdn", "--dataset", str(folder), *TINY, "--no-references",
            "--out", str(out), "--quiet"]
    code, out_text, err = run_cli(args, capsys)
    assert code == 0 and "reusing finished run" in out_text + err
    meta = out / "runs" / "mdn" / "seed-0" / "model.json"
    saved = json.loads(meta.read_text())
    saved["config"]["mdn_lr"] *= 2
    meta.write_text(json.dumps(saved))
    code, out_text, err = run_cli(args, capsys)
    assert code == 2 and "of an earlier tiny preset (today's differs in mdn_lr)" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
