"""What OpenMP's wait policy does to a training on a shared machine.

    python benchmarks/bench_wait_policy.py [--method cgan] [--epochs 25] [--repeats 2]
        [--policies default,ACTIVE,PASSIVE] [--competitor-threads 2] [--checkout DIR]

Trains ``colorkit train --method METHOD --preset small --epochs N`` (seed 0, CPU, 2 torch
threads), each time in a fresh process and run folder, once per wait setting on the quiet
machine, then the same beside ``benchmarks/competing_load.py`` (started 5 s before, kept
running across the loaded runs), the settings alternating, ``--repeats`` times each.
Settings: ``default`` (no OpenMP variable set: colorkit's own choice, which sets
``OMP_WAIT_POLICY=PASSIVE`` only when other processes keep a core busy as training
starts), ``ACTIVE`` (threads spin while they wait, as OpenMP does by default) and
``PASSIVE`` (threads sleep). Prints the training seconds per run and the slowdown of each
setting's loaded median over its quiet time, and appends the rows to
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


def train(args: argparse.Namespace, policy: str, out: Path) -> tuple[float, float, float]:
    """(training seconds, load at start, load at end) of one run with ``policy``."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GOMP_SPINCOUNT", None)
    if args.checkout is not None:
        root = args.checkout.resolve()
        env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "plugins")])
        which_colorkit(args, env)  # stops unless the checkout's colorkit is what runs
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
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
        quiet = {}
        for policy in policies:
            quiet[policy] = train(args, policy, tmp / f"quiet-{policy}")
            print(f"quiet  {policy:<8} {quiet[policy][0]:7.1f} s (load {quiet[policy][1]:.2f} -> "
                  f"{quiet[policy][2]:.2f})", flush=True)
            rows.append([args.label, args.method, args.epochs, policy, "quiet", 0, f"{quiet[policy][0]:.1f}",
                         f"{quiet[policy][1]:.2f}", f"{quiet[policy][2]:.2f}"])
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
        print(f"{policy:<8} quiet {quiet[policy][0]:6.1f} s, loaded {' / '.join(f'{s:.1f}' for s in loaded[policy])} "
              f"s: slowdown {med / quiet[policy][0]:.2f}x (median)")
    append_rows("wait_policy", ["label", "method", "epochs", "policy", "run", "competitor_threads", "train_s",
                                "load1_start", "load1_end"], rows)


if __name__ == "__main__":
    main()
