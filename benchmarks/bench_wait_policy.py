"""What OpenMP's wait policy does to a training on a shared machine.

    python benchmarks/bench_wait_policy.py [--method cgan] [--epochs 25] [--repeats 2]
        [--policies default,ACTIVE,PASSIVE,spin=1000,threads=1] [--competitor-threads 2]
        [--no-competitor] [--checkout DIR]

Trains ``colorkit train --method METHOD --preset small --epochs N`` (seed 0, CPU, 2 torch
threads), each time in a fresh process and run folder, once per wait setting on the quiet
machine, then the same beside ``benchmarks/competing_load.py`` (started 5 s before, kept
running across the loaded runs), the settings alternating, ``--repeats`` times each.
Settings: ``default`` (no OpenMP variable set: colorkit's own choice, which sets
``OMP_WAIT_POLICY=PASSIVE`` only when other processes keep a core busy as training
starts, and takes threads away while other processes hold the cores), ``watch``
(``GOMP_SPINCOUNT=300000``, libgomp's own default spin whatever the load at the start, with
colorkit's thread count following the load), and, each at a fixed 2 threads: ``ACTIVE``
(threads spin while they wait, without end), ``PASSIVE`` (threads sleep), ``spin=N``
(``GOMP_SPINCOUNT=N``: threads spin N rounds, then sleep; ``spin=300000`` is libgomp's
default, what colorkit did after a quiet start before the thread count followed the load);
``threads=N`` (N torch threads, the default spin). Quiet runs alternate the settings too,
``--repeats`` times each, so a load that drifts during the benchmark weighs on every
setting alike; ``--no-competitor`` stops after the quiet runs (for a machine shared with
jobs you must not slow down, where the "quiet" runs then measure that machine's own load,
recorded per run, and the summary gives each setting's time as a ratio to the first
setting's in the same repetition). Prints the training seconds per run and the slowdown of
each setting's loaded median over its quiet time, and appends the rows to
``benchmarks/results/wait_policy.csv`` with the load averages. ``--checkout DIR`` trains
with another checkout's colorkit (run inside DIR, as in ``bench_under_load.py``).

Meaningful only on an otherwise quiet machine: refuses to start when the 1-minute load
average is above 0.5 per core unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import append_rows
from bench_under_load import which_colorkit

HERE = Path(__file__).resolve().parent


def setting_env(policy: str, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the OpenMP variables of one setting (``default``, ``watch``, ``ACTIVE``,
    ``PASSIVE``, ``spin=N``, ``threads=N``) and nothing else of OpenMP's or colorkit's."""
    env = {k: v for k, v in env.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "COLORKIT_THREADS_FIXED")}
    if policy == "default":
        return env
    if policy == "watch":
        env["GOMP_SPINCOUNT"] = "300000"  # spinning as after a quiet start; the thread count follows the load
        return env
    env["OMP_NUM_THREADS"] = "2"  # a thread count given: colorkit keeps it whatever the load
    if policy.startswith("spin="):
        env["GOMP_SPINCOUNT"] = str(int(policy[5:]))
    elif policy.startswith("threads="):
        env["OMP_NUM_THREADS"] = str(int(policy[8:]))
        env["GOMP_SPINCOUNT"] = "300000"  # libgomp's own default, whatever colorkit would choose
    elif policy in ("ACTIVE", "PASSIVE"):
        env["OMP_WAIT_POLICY"] = policy
    elif policy != "default":
        sys.exit(f"unknown setting {policy!r}: default, watch, ACTIVE, PASSIVE, spin=N or threads=N")
    return env


def train(args: argparse.Namespace, policy: str, out: Path) -> tuple[float, float, float]:
    """(training seconds, load at start, load at end) of one run with ``policy``."""
    env = setting_env(policy, dict(os.environ))
    if args.checkout is not None:
        root = args.checkout.resolve()
        env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "plugins")])
        which_colorkit(args, env)  # stops unless the checkout's colorkit is what runs
    cmd = [sys.executable, "-m", "colorkit", "train", "--method", args.method, "--preset", "small", "--epochs",
           str(args.epochs), "--seed", "0", "--device", "cpu", "--out", str(out), "--quiet"]
    load0 = os.getloadavg()[0]
    r = subprocess.run(cmd, env=env, cwd=args.checkout, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"training failed ({r.returncode}):\n{r.stderr[-3000:]}")
    seconds = float(json.loads((out / "run.json").read_text())["train_seconds"])
    return seconds, load0, os.getloadavg()[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="cgan")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--policies", default="default,ACTIVE,PASSIVE")
    p.add_argument("--competitor-threads", type=int, default=2)
    p.add_argument("--checkout", type=Path, default=None)
    p.add_argument("--no-competitor", action="store_true", help="only the quiet runs")
    p.add_argument("--label", default="current")
    p.add_argument("--force", action="store_true")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    if os.getloadavg()[0] > 0.5 * cores and not args.force:
        sys.exit(f"the machine is busy (1-minute load {os.getloadavg()[0]:.2f} on {cores} cores); "
                 "wait for it to be quiet or pass --force")
    policies = args.policies.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-wait-policy-") as tmp:
        tmp = Path(tmp)
        quiet_runs: dict[str, list[float]] = {policy: [] for policy in policies}
        for rep in range(args.repeats):
            for policy in policies:
                s, l0, l1 = train(args, policy, tmp / f"quiet-{policy}-{rep}")
                quiet_runs[policy].append(s)
                run = "no-competitor" if args.no_competitor else "quiet"
                print(f"{run:<6} {policy:<10} {s:7.1f} s (load {l0:.2f} -> {l1:.2f})", flush=True)
                rows.append([args.label, args.method, args.epochs, policy, run, 0, f"{s:.1f}", f"{l0:.2f}",
                             f"{l1:.2f}"])
        quiet = {policy: statistics.median(v) for policy, v in quiet_runs.items()}
        if args.no_competitor:
            base = policies[0]
            print(f"\n{args.method}, {args.epochs} epochs, small preset, median of {args.repeats}, "
                  f"against {base} (same repetition, paired):")
            for policy in policies:
                ratios = [a / b for a, b in zip(quiet_runs[policy], quiet_runs[base], strict=True)]
                print(f"{policy:<10} {quiet[policy]:6.1f} s  x{statistics.median(ratios):.3f} "
                      f"(paired ratios {' / '.join(f'{r:.3f}' for r in ratios)})")
            append_rows("wait_policy", ["label", "method", "epochs", "policy", "run", "competitor_threads",
                                        "train_s", "load1_start", "load1_end"], rows)
            return
        comp = subprocess.Popen([sys.executable, str(HERE / "competing_load.py"), "--threads",
                                 str(args.competitor_threads)])
        loaded: dict[str, list[float]] = {policy: [] for policy in policies}
        try:
            time.sleep(5)
            for rep in range(args.repeats):
                for policy in policies:
                    s, l0, l1 = train(args, policy, tmp / f"loaded-{policy}-{rep}")
                    loaded[policy].append(s)
                    print(f"loaded {policy:<8} {s:7.1f} s (load {l0:.2f} -> {l1:.2f})", flush=True)
                    rows.append([args.label, args.method, args.epochs, policy, "loaded", args.competitor_threads,
                                 f"{s:.1f}", f"{l0:.2f}", f"{l1:.2f}"])
        finally:
            comp.send_signal(signal.SIGTERM)
            comp.wait(timeout=60)
    print(f"\n{args.method}, {args.epochs} epochs, small preset, 2 torch threads, beside a "
          f"{args.competitor_threads}-thread competitor:")
    for policy in policies:
        med = statistics.median(loaded[policy])
        print(f"{policy:<8} quiet {quiet[policy]:6.1f} s, loaded {' / '.join(f'{s:.1f}' for s in loaded[policy])} "
              f"s: slowdown {med / quiet[policy]:.2f}x (median)")
    append_rows("wait_policy", ["label", "method", "epochs", "policy", "run", "competitor_threads", "train_s",
                                "load1_start", "load1_end"], rows)


if __name__ == "__main__":
    main()
