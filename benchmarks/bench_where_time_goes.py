"""Where the time of the README's bench goes: per training stage, images per second and the
achieved GFLOP/s against what the same CPU reaches on a plain large matrix product and
convolution at the same thread count (the physical anchor).

    python benchmarks/bench_where_time_goes.py [--methods mdn,cvae,cgan] [--preset small]
        [--threads N] [--results BENCH_OUT] [--out DIR] [-- EXTRA BENCH ARGS]

1. The machine: CPU name and instruction-set class, the reference steps per second and the
   anchor GFLOP/s (:mod:`colorkit.eval.machine`), at ``--threads`` (default: every core).
2. The bench: ``colorkit bench --methods METHODS --preset PRESET --threads N`` in its own
   process (or, with ``--results``, a finished bench's output folder is read instead), for
   each stage's seconds and images (``run.json``: ``stage_seconds``, ``stage_budget``) and
   each method's scoring time.
3. The FLOPs: every method is trained once more for one epoch per stage on the same data
   under ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions,
   forward and backward; element-wise work is not counted, so achieved GFLOP/s are a lower
   bound), split into the FLOPs of the optimisation steps (per image) and the stage's
   one-off work (its ``on_start``/``on_end`` hooks, e.g. the MDN's table of grey features,
   always computed here; a bench that found it in its cache on disk did less than is
   counted). A stage the counting run skips (a cached pretext) has no FLOP figures.

Achieved GFLOP/s of a stage = (FLOPs per image x images trained + one-off FLOPs) / stage
seconds. Prints a table and writes ``where_time_goes.json`` and ``where_time_goes.md`` to
``--out`` (default ``where-time-goes-out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from colorkit.eval.machine import describe_machine, machine_line, machine_speed


def count_stage_flops(method_name: str, preset: str, ds: Any, stats: Any, *, epochs: int = 1,
                      options: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """Per stage of ``method_name`` (``preset``) trained ``epochs`` epoch(s) per stage on
    ``ds``: ``{"step_flops", "images", "flops_per_image", "one_off_flops"}``."""
    from torch.utils.flop_counter import FlopCounterMode

    from colorkit.core.plugin_manager import registry
    from colorkit.train.engine import TrainConfig, Trainer
    from colorkit.train.runs import build_method

    options = dict(options or {})
    config = getattr(registry("method").get(method_name).factory, "Config", None)
    if config is not None and "use_cache" in getattr(config, "model_fields", {}):
        options["use_cache"] = False  # one-off work computed (and counted), not read from a cache on disk
    torch.manual_seed(0)
    method = build_method(method_name, stats, preset=preset, options=options, dataset=ds)
    counter = FlopCounterMode(display=False)
    buckets: dict[str, dict[str, float]] = {}

    def counted(fn: Any, bucket: dict[str, float], key: str, images: bool = False) -> Any:
        if fn is None:
            return None

        def wrapper(*args: Any) -> Any:
            f0 = counter.get_total_flops()
            out = fn(*args)
            bucket[key] += counter.get_total_flops() - f0
            if images:
                bucket["images"] += len(args[0]["grey"])
            return out

        return wrapper

    own_stages = method.stages

    def stages() -> list[Any]:
        out = []
        for stage in own_stages():
            b = buckets.setdefault(stage.name, {"step_flops": 0, "images": 0, "one_off_flops": 0})
            stage.step = counted(stage.step, b, "step_flops", images=True)
            stage.on_start = counted(stage.on_start, b, "one_off_flops")
            stage.on_end = counted(stage.on_end, b, "one_off_flops")
            out.append(stage)
        return out

    method.stages = stages
    with tempfile.TemporaryDirectory(prefix="colorkit-flops-") as tmp, counter:
        Trainer(TrainConfig(epochs=epochs, seed=0, progress=False, device="cpu")).fit(
            method, ds.split("train"), Path(tmp) / "run")
    for b in buckets.values():
        b["flops_per_image"] = b["step_flops"] / b["images"] if b["images"] else 0.0
    return buckets


def stage_rows(results: dict[str, Any], runs: dict[str, dict[str, Any]], flops: dict[str, dict[str, dict]],
               anchor: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per trained stage and one per method's scoring: seconds, images, images/s,
    GFLOP per image, achieved GFLOP/s and its fraction of the matmul and convolution
    anchors (``None`` where not known). ``runs``: method -> its ``run.json``."""
    rows = []
    for method, info in runs.items():
        seconds, budget = info.get("stage_seconds") or {}, info.get("stage_budget") or {}
        for stage, s in seconds.items():
            images = (budget.get(stage) or {}).get("images", 0)
            if s <= 0:
                continue
            f = flops.get(method, {}).get(stage)
            if f is not None and not f["images"]:  # the counting run skipped it (e.g. a cached pretext)
                f = None
            row: dict[str, Any] = {"method": method, "part": f"train {stage}", "seconds": s, "images": images,
                                   "images_per_s": images / s if images else None, "gflop_per_image": None,
                                   "achieved_gflops": None}
            if f is not None:
                total = f["flops_per_image"] * images + f["one_off_flops"]
                row["gflop_per_image"] = f["flops_per_image"] / 1e9
                row["one_off_gflop"] = f["one_off_flops"] / 1e9
                row["achieved_gflops"] = total / s / 1e9
            rows.append(row)
        scored = results.get("methods", {}).get(method) or {}
        n_test = (results.get("split") or {}).get("test")
        if scored.get("infer_seconds_per_image") and n_test:
            s = scored["infer_seconds_per_image"] * n_test
            rows.append({"method": method, "part": f"score (k={results.get('k')})", "seconds": s, "images": n_test,
                         "images_per_s": n_test / s, "gflop_per_image": None, "achieved_gflops": None})
    for row in rows:
        for key in ("matmul", "conv"):
            a = anchor.get(key)
            row[f"fraction_of_{key}"] = row["achieved_gflops"] / a if row["achieved_gflops"] and a else None
    return rows


def _f(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any], wall: float | None,
             elapsed: float | None) -> str:
    lines = [machine_line(machine) + ".", "",
             "| method | part | seconds | images | images/s | GFLOP/image | achieved GFLOP/s | of matmul | of conv |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['part']} | {r['seconds']:.1f} | {r['images']} | "
                     f"{_f(r['images_per_s'], '.1f')} | {_f(r['gflop_per_image'], '.3f')} | "
                     f"{_f(r['achieved_gflops'], '.1f')} | "
                     f"{_pct(r['fraction_of_matmul'])} | {_pct(r['fraction_of_conv'])} |")
    counted = sum(r["seconds"] for r in rows)
    if elapsed is not None:
        lines += ["", f"The bench took {elapsed:.1f} s inside colorkit"
                  + (f" ({wall:.1f} s wall, start-up included)" if wall else "")
                  + f"; the parts above {counted:.1f} s; the rest ({elapsed - counted:.1f} s) is data, statistics, "
                  "the references and writing the outputs."]
    return "\n".join(lines) + "\n"


def run_bench(methods: str, preset: str, threads: int, out: Path, extra: list[str] | None = None) -> float:
    cmd = [sys.executable, "-m", "colorkit", "bench", "--methods", methods, "--preset", preset, "--threads",
           str(threads), "--out", str(out), "--quiet", *(extra or [])]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="mdn,cvae,cgan")
    p.add_argument("--preset", default="small")
    p.add_argument("--threads", type=int, default=None, help="torch threads [default: every core]")
    p.add_argument("--results", type=Path, default=None, help="a finished bench's --out folder to read")
    p.add_argument("--out", type=Path, default=Path("where-time-goes-out"))
    p.add_argument("extra", nargs="*", help="extra arguments for colorkit bench (after --)")
    args = p.parse_args(argv)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    machine = {**describe_machine(), **machine_speed(threads)}
    print(machine_line(machine), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    wall = None
    bench_out = args.results
    if bench_out is None:
        bench_out = args.out / "bench"
        print(f"colorkit bench --methods {args.methods} --preset {args.preset} --threads {threads} ...", flush=True)
        wall = run_bench(args.methods, args.preset, threads, bench_out, args.extra)
    results = json.loads((bench_out / "results.json").read_text())
    methods = args.methods.split(",")
    runs = {m: json.loads((Path(results["methods"][m]["run_dir"]) / "run.json").read_text()) for m in methods}

    from colorkit.core.stats import load_or_compute_stats
    from colorkit.train.config import DataConfig, StatsConfig

    cfg = results["config"]
    ds = DataConfig(**cfg["data"]).prepare(progress=False)
    stats = load_or_compute_stats(ds, StatsConfig(**cfg["stats"]), progress=False)
    flops = {}
    for m in methods:
        print(f"counting the FLOPs of {m} (one epoch per stage) ...", flush=True)
        flops[m] = count_stage_flops(m, results["preset"], ds, stats, options=runs[m].get("options"))
    rows = stage_rows(results, runs, flops, machine["anchor_gflops"])
    text = markdown(rows, machine, wall, results.get("elapsed_seconds"))
    print(text)
    (args.out / "where_time_goes.json").write_text(json.dumps(
        {"machine": machine, "threads": threads, "bench": str(bench_out), "bench_wall_seconds": wall, "rows": rows,
         "flops": flops}, indent=2))
    (args.out / "where_time_goes.md").write_text(text)


if __name__ == "__main__":
    main()
