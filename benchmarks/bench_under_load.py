"""The README's bench on a quiet machine and beside a fixed competing load.

    python benchmarks/bench_under_load.py [--methods mdn,cvae,cgan] [--label NAME]
        [--checkout DIR] [--env KEY=VALUE ...] [--skip-quiet] [-- EXTRA BENCH ARGS]

Runs ``colorkit bench --methods ...`` twice, each in its own process: once alone, then
beside ``benchmarks/competing_load.py`` (a 2-thread convolutional training that stands for
another researcher's job on the same machine; it starts 5 s before the bench and is
stopped when the bench ends). Prints and appends to
``benchmarks/results/bench_under_load.csv``, per method, the training seconds quiet and
loaded and their ratio (the slowdown), the same for the whole command, the load average
at the start and end of each run, and the competitor's own steps per second. It also
checks that both runs' figures are identical (they use the same thread count, so they
must be).

``--checkout DIR`` runs the colorkit of another checkout (``PYTHONPATH=DIR:DIR/plugins``,
and the bench runs in DIR, since ``python -m`` puts the working folder first on the path),
e.g. an older commit, to measure "before" with the same script; the script prints which
colorkit the bench imports and stops if it is not the checkout's. ``--env`` sets environment
variables for the bench process only (e.g. ``OMP_WAIT_POLICY=ACTIVE``).

Meaningful only on an otherwise quiet machine: the script refuses to start when the
1-minute load average is above 0.5 per core unless ``--force`` is given, and records it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import append_rows

HERE = Path(__file__).resolve().parent
FIGURES = ("error_of_best", "variance", "mean_error", "mae_all")


def which_colorkit(args: argparse.Namespace, env: dict[str, str]) -> str:
    """The folder of the colorkit package the bench processes import (``python -m`` puts
    the working folder first on the path: with ``--checkout`` they run in the checkout)."""
    r = subprocess.run([sys.executable, "-c", "import colorkit, os; print(os.path.dirname(colorkit.__file__))"],
                       env=env, cwd=args.checkout, capture_output=True, text=True, check=True)
    found = Path(r.stdout.strip()).resolve()
    if args.checkout is not None and not found.is_relative_to(args.checkout.resolve()):
        sys.exit(f"--checkout {args.checkout}: the bench would import colorkit from {found}, not from the checkout")
    return str(found)


def run_bench(args: argparse.Namespace, out: Path, env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "colorkit", "bench", "--methods", args.methods, "--out", str(out), "--quiet",
           *args.extra]
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=args.checkout, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"bench failed ({r.returncode}):\n{r.stderr[-3000:]}")
    res = json.loads((out / "results.json").read_text())
    rows = res["methods"]  # name (method or method[mode]) -> row
    train = {name: float(rows[name]["train_seconds"]) for name in args.methods.split(",") if name in rows}
    figures = {name: {f: row.get(f) for f in FIGURES} for name, row in rows.items()}
    return {"wall": wall, "train": train, "figures": figures, "load_start": load_start,
            "load_end": os.getloadavg()[0], "threads": res.get("threads"), "environment": res.get("environment")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="mdn,cvae,cgan")
    p.add_argument("--label", default="current")
    p.add_argument("--checkout", type=Path, default=None, help="run this checkout's colorkit (PYTHONPATH)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--competitor-threads", type=int, default=2)
    p.add_argument("--skip-quiet", type=Path, default=None, metavar="RESULTS_JSON",
                   help="reuse this earlier quiet run's wall seconds instead of running the quiet bench: "
                        "a JSON written by this script with --keep")
    p.add_argument("--keep", type=Path, default=None, help="write this run's measurements as JSON here")
    p.add_argument("--force", action="store_true", help="run even if the machine is not quiet")
    p.add_argument("extra", nargs="*", help="extra arguments for colorkit bench (after --)")
    args = p.parse_args()

    cores = len(os.sched_getaffinity(0))
    if os.getloadavg()[0] > 0.5 * cores and not args.force:
        sys.exit(f"the machine is busy (1-minute load {os.getloadavg()[0]:.2f} on {cores} cores); "
                 "wait for it to be quiet or pass --force")
    env = dict(os.environ)
    if args.checkout is not None:
        root = args.checkout.resolve()
        env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "plugins"), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
    for kv in args.env:
        key, _, value = kv.partition("=")
        env[key] = value
    package = which_colorkit(args, env)
    print(f"[{args.label}] colorkit from {package}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-under-load-") as tmp:
        tmp = Path(tmp)
        if args.skip_quiet is not None:
            quiet = json.loads(args.skip_quiet.read_text())["quiet"]
        else:
            print(f"[{args.label}] quiet run ...", flush=True)
            quiet = run_bench(args, tmp / "quiet", env)
        report = tmp / "competitor.json"
        comp = subprocess.Popen([sys.executable, str(HERE / "competing_load.py"), "--threads",
                                 str(args.competitor_threads), "--report", str(report)])
        try:
            time.sleep(5)
            print(f"[{args.label}] run beside a {args.competitor_threads}-thread competing load ...", flush=True)
            loaded = run_bench(args, tmp / "loaded", env)
        finally:
            comp.send_signal(signal.SIGTERM)
            comp.wait(timeout=60)
        competitor = json.loads(report.read_text())

    same = quiet["figures"] == loaded["figures"]
    rows = []
    print(f"\n[{args.label}] threads {loaded['threads']}; competitor {competitor['steps_per_s']} steps/s")
    print(f"{'part':<8} {'quiet s':>9} {'loaded s':>9} {'slowdown':>9}")
    for name in args.methods.split(","):
        q, lo = quiet["train"].get(name, float("nan")), loaded["train"].get(name, float("nan"))
        print(f"{name:<8} {q:9.1f} {lo:9.1f} {lo / q:8.2f}x")
        rows.append([args.label, f"train {name}", round(q, 1), round(lo, 1), round(lo / q, 2)])
    print(f"{'total':<8} {quiet['wall']:9.1f} {loaded['wall']:9.1f} {loaded['wall'] / quiet['wall']:8.2f}x")
    rows.append([args.label, "whole command", round(quiet["wall"], 1), round(loaded["wall"], 1),
                 round(loaded["wall"] / quiet["wall"], 2)])
    print(f"figures identical quiet vs loaded: {same}")
    common = [loaded["threads"], ";".join(args.env), competitor["steps_per_s"],
              round(quiet["load_start"], 2), round(quiet["load_end"], 2), round(loaded["load_start"], 2),
              round(loaded["load_end"], 2), same]
    append_rows("bench_under_load", ["label", "part", "quiet_s", "loaded_s", "slowdown", "threads", "env",
                                     "competitor_steps_per_s", "quiet_load_start", "quiet_load_end",
                                     "loaded_load_start", "loaded_load_end", "figures_identical"],
                [[*r, *common] for r in rows])
    if args.keep is not None:
        args.keep.write_text(json.dumps({"colorkit": package, "quiet": quiet, "loaded": loaded,
                                         "competitor": competitor}, indent=2))


if __name__ == "__main__":
    main()
