"""The machine-speed figures a bench records before its work: the processor's class, the
reference steps per second and the matmul/convolution anchor, taken without touching the
run's random state or thread count; the results table's header line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from colorkit.eval import machine

ROOT = Path(__file__).resolve().parents[1]


def test_the_processor_class_comes_from_its_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu sse2 avx avx2 fma\n\n")
    assert machine.cpu_flags_class(info) == "avx2" and machine.cpu_name(info) == "Some CPU 9000"
    info.write_text("model name\t: X\nflags\t\t: fpu avx2 avx512f avx512bw\n")
    assert machine.cpu_flags_class(info) == "avx512"
    info.write_text("model name\t: Y\nflags\t\t: fpu sse2\n")
    assert machine.cpu_flags_class(info) == "other"
    assert machine.cpu_flags_class(tmp_path / "missing") == "unknown"


def test_the_reference_and_the_anchor_leave_the_run_as_it_was():
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    ref = machine.reference_speed(seconds=0.05, warmup=1, min_steps=2)
    anchor = machine.anchor_gflops(threads + 1, seconds=0.05)
    assert torch.equal(torch.rand(4), expected)  # the global random state is untouched
    assert torch.get_num_threads() == threads and torch.is_grad_enabled()
    assert ref["steps_per_s"] > 0 and ref["steps"] >= 1 and ref["threads"] == threads
    assert ref["workload"] == machine.REFERENCE_WORKLOAD
    assert anchor["threads"] == threads + 1 and anchor["matmul"] > 0 and anchor["conv"] > 0


def test_a_fixed_workload_gives_the_same_flops_every_time():
    a, b = torch.ones(64, 32), torch.ones(32, 16)
    assert machine.count_flops(lambda: a @ b) == 2 * 64 * 32 * 16


def test_a_slow_step_stops_the_timing_early():
    import time

    times = machine._time_steps(lambda: time.sleep(0.05), seconds=0.02, warmup=5, min_steps=50)
    assert 1 <= len(times) <= 3  # three times `seconds` at most, not 50 steps


def test_the_results_header_says_when_torch_runs_narrower_kernels_than_the_cpu_has():
    m = {"processor": "Some CPU 9000", "cpu_flags": "avx512", "torch_cpu_capability": "AVX2",
         "reference_steps_per_s": 6.5, "reference": {"threads": 1}}
    assert machine.machine_line(m) == ("machine: 6.5 reference steps/s at 1 threads, load unknown, CPU Some CPU 9000 "
                                       "(avx512; torch kernels AVX2)")
    m["torch_cpu_capability"] = "AVX512"
    assert machine.machine_line(m).endswith("CPU Some CPU 9000 (avx512)")


def test_the_results_header_names_the_machine():
    from colorkit.eval.report import table_markdown

    m = {"processor": "Some CPU 9000", "cpu_flags": "avx2", "reference_steps_per_s": 12.5,
         "reference": {"threads": 2}, "anchor_gflops": {"matmul": 80.1, "conv": 60.2, "threads": 2},
         "load_start": {"load_1min": 0.4, "cores": 2, "busy": False},
         "load_end": {"load_1min": 1.9, "cores": 2, "busy": False}}
    assert machine.machine_line(m) == ("machine: 12.5 reference steps/s at 2 threads, load 0.4, CPU Some CPU 9000 "
                                       "(avx2); anchor: matmul 80.1 GFLOP/s, convolution 60.2 GFLOP/s")
    res = {"methods": {}, "metrics": {}, "test_set": {"name": "t"}, "seeds": [0], "split": {"test": 1}, "k": 2,
           "preset": "tiny", "bootstrap": {"resamples": 10}, "dataset": {"name": "t"}, "budget": {},
           "mixture_usage": {}, "units": {}, "verdicts": {}, "threads": 2, "machine": m}
    md = table_markdown(res)
    assert md.splitlines()[1] == machine.machine_line(m) + "."
    assert "changed its thread count" not in md
    m["thread_changes"] = [{"seconds": 61.0, "threads": 1, "others_busy_cores": 1.8},
                           {"seconds": 300.2, "threads": 2, "others_busy_cores": 0.1}]
    assert "changed its thread count 2 time(s) (1 at 61.0 s, 2 at 300.2 s, its own count being 2)" in \
        table_markdown(res)


@pytest.fixture
def where(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_where_time_goes

    return bench_where_time_goes


def test_where_time_goes_counts_each_stage_on_the_tiny_preset(where, tmp_path):
    from colorkit.core.stats import load_or_compute_stats
    from colorkit.data import prepare
    from colorkit.testing import make_image_folder

    ds = prepare(make_image_folder(tmp_path / "imgs", n=30, size=40, seed=1), size=32, split_seed=0, progress=False)
    stats = load_or_compute_stats(ds)
    n_train = len(ds.train_idx)
    flops = where.count_stage_flops("cgan", "tiny", ds, stats)
    assert list(flops) == ["cgan"]
    f = flops["cgan"]
    assert f["images"] == n_train and f["step_flops"] > 0 and f["one_off_flops"] == 0
    assert f["flops_per_image"] == pytest.approx(f["step_flops"] / n_train)
    flops_mdn = where.count_stage_flops("mdn", "tiny", ds, stats)
    assert {"vae", "mdn"} <= set(flops_mdn)
    assert flops_mdn["mdn"]["one_off_flops"] > 0  # the table of grey features, once per stage


def test_where_time_goes_rows_and_table(where):
    results = {"methods": {"cgan": {"infer_seconds_per_image": 0.02}}, "split": {"test": 50}, "k": 5}
    runs = {"cgan": {"stage_seconds": {"cgan": 10.0, "unused": 0.0},
                     "stage_budget": {"cgan": {"epochs": 2, "images": 400}}}}
    flops = {"cgan": {"cgan": {"flops_per_image": 5e8, "one_off_flops": 1e9, "images": 20, "step_flops": 1e10}}}
    rows = where.stage_rows(results, runs, flops, {"matmul": 100.0, "conv": 50.0})
    train, score = rows
    assert train["part"] == "train cgan" and train["images_per_s"] == 40.0
    assert train["achieved_gflops"] == pytest.approx((5e8 * 400 + 1e9) / 10.0 / 1e9)  # 20.1
    assert train["fraction_of_matmul"] == pytest.approx(0.201) and train["fraction_of_conv"] == pytest.approx(0.402)
    assert score["seconds"] == pytest.approx(1.0) and score["images_per_s"] == pytest.approx(50.0)
    assert score["achieved_gflops"] is None and score["fraction_of_matmul"] is None
    machine_ = {"processor": "P", "cpu_flags": "avx2", "reference_steps_per_s": 3.0, "load_average": [0.5, 0, 0],
                "anchor_gflops": {"matmul": 100.0, "conv": 50.0}}
    md = where.markdown(rows, machine_, wall=15.0, elapsed=14.0)
    assert md.startswith("machine: 3.0 reference steps/s, load 0.5, CPU P (avx2)")
    assert "| cgan | train cgan | 10.0 | 400 | 40.0 | 0.500 | 20.1 | 20.1% | 40.2% |" in md
    assert "| cgan | score (k=5) | 1.0 | 50 | 50.0 | - | - | - | - |" in md
    assert "the parts above 11.0 s; the rest (3.0 s)" in md
    assert sys.modules["bench_where_time_goes"] is where
    flops["cgan"]["cgan"]["images"] = 0  # the counting run skipped the stage: no FLOP figures, not zero
    skipped = where.stage_rows(results, runs, flops, {"matmul": 100.0, "conv": 50.0})[0]
    assert skipped["gflop_per_image"] is None and skipped["achieved_gflops"] is None
    assert skipped["images_per_s"] == 40.0


def test_the_bench_figures_are_the_same_with_and_without_the_speed_figures(tmp_path, monkeypatch):
    import json

    from colorkit.cli import main
    from colorkit.eval import bench
    from colorkit.testing import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", n=40, size=48, seed=3)
    args = ["bench", "--methods", "cvae", "--no-references", "--dataset", str(folder), "--preset", "tiny",
            "--epochs", "1", "--size", "32", "--k", "2", "--quiet"]

    def figures(out):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--out", str(out)])
        assert exc.value.code == 0
        res = json.loads((out / "results.json").read_text())
        return res, {n: {k: v for k, v in r.items() if k not in ("infer_seconds_per_image", "train_seconds", "run_dir")}
                     for n, r in res["methods"].items()}

    with_speed, a = figures(tmp_path / "a")
    assert with_speed["machine"]["reference_steps_per_s"] > 0
    monkeypatch.setattr(bench, "machine_speed", lambda: {"reference_steps_per_s": None, "reference": None,
                                                          "anchor_gflops": {"matmul": None, "conv": None}})
    _, b = figures(tmp_path / "b")
    assert a == b and a["cvae"]["error_of_best"] > 0


def test_the_throughput_benchmarks_record_the_machine(where, tmp_path, monkeypatch, capsys):
    import _results

    from colorkit.eval import machine as m

    monkeypatch.setattr(_results, "RESULTS", tmp_path)
    monkeypatch.setattr(m, "machine_speed", lambda threads=None: {
        "reference_steps_per_s": 7.5, "reference": {"threads": 2}, "anchor_gflops": {"matmul": 90.0, "conv": 70.0,
                                                                                     "threads": 2}})
    got = _results.record_machine("bench_x")
    assert got["reference_steps_per_s"] == 7.5 and got["cpu_flags"] == machine.cpu_flags_class()
    assert capsys.readouterr().out.startswith("machine: 7.5 reference steps/s at 2 threads")
    header, row = (tmp_path / "machine.csv").read_text().splitlines()
    assert header.startswith("date,host,benchmark,threads,reference_steps_per_s,matmul_gflops,conv_gflops")
    assert ",bench_x,2,7.5,90.0,70.0," in row
