"""The README's bench on a quiet machine and beside a fixed competing load.

    python benchmarks/bench_under_load.py [--methods mdn,cvae,cgan] [--label NAME]
        [--checkout DIR] [--env KEY=VALUE ...] [--skip-quiet] [--competitor-after [SECONDS]]
        [--competitor-alone SECONDS] [--baseline DIR] [-- EXTRA BENCH ARGS]

Runs ``colorkit bench --methods ...`` twice, each in its own process: once alone, then
beside ``benchmarks/competing_load.py`` (a 2-thread convolutional training that stands for
another researcher's job on the same machine, one process). By default the competitor
starts 5 s before the bench; with ``--competitor-after SECONDS`` (60 when no number is
given) it starts that long after the bench, as a job that arrives mid-run. It is stopped
when the bench ends. First the competitor runs alone for ``--competitor-alone`` seconds
(default 20; 0 skips it), so its speed beside the bench reads as a fraction of its own.
Prints and appends to ``benchmarks/results/bench_under_load.csv``, per method, the training
seconds quiet and loaded and their ratio (the slowdown), the same for the whole command,
the 1-minute load average at the start and end of each run and its mean and maximum over
the run (sampled every 5 s), and the competitor's own steps per second alone and beside
the bench. It also says whether both runs' figures are identical: they must be when both
kept the same thread count; a run that took threads away while the competitor held the
cores (recorded in results.json, ``machine.thread_changes``) may differ in the last digits.
``--baseline DIR`` also runs the quiet bench with another checkout's colorkit (e.g. the
code before a change) right before the current quiet run, in the same invocation, and
prints the quiet times' ratio and whether the two quiet runs' figures are identical.

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
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
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


class LoadSampler:
    """The 1-minute load average every ``every`` seconds on a background thread."""

    def __init__(self, every: float = 5.0) -> None:
        self.every, self.values = every, [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.values.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.values.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        v = self.values
        return {"start": round(v[0], 2), "end": round(v[-1], 2), "mean": round(sum(v) / len(v), 2),
                "max": round(max(v), 2)}


def start_competitor(args: argparse.Namespace, report: Path, seconds: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "competing_load.py"), "--threads",
                             str(args.competitor_threads), "--report", str(report), "--seconds", str(seconds)])


def stop_competitor(comp: subprocess.Popen, report: Path) -> dict:
    """Stop it (it writes its report on the way out); its report (``steps_per_s`` ``None``
    when it wrote none)."""
    comp.send_signal(signal.SIGTERM)
    comp.wait(timeout=60)
    return json.loads(report.read_text()) if report.is_file() else {"steps_per_s": None}


def bench_command(args: argparse.Namespace, out: Path) -> list[str]:
    base = shlex.split(args.bench_command) if args.bench_command else [sys.executable, "-m", "colorkit", "bench"]
    return [*base, "--methods", args.methods, "--out", str(out), "--quiet", *args.extra]


def run_bench(args: argparse.Namespace, out: Path, env: dict[str, str], competitor_at: float | None = None,
              checkout: Path | None = None) -> dict:
    """One bench run. ``competitor_at``: seconds after the bench's start at which the
    competitor starts (negative: before it; ``None``: no competitor). ``checkout``: run in
    this folder instead of ``--checkout``'s."""
    comp = None
    report = out.parent / f"competitor-{out.name}.json"
    started_at = load_at_start = None
    with LoadSampler(args.load_every) as loads:
        if competitor_at is not None and competitor_at < 0:
            comp = start_competitor(args, report)
            time.sleep(-competitor_at)
            started_at, load_at_start = competitor_at, os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.Popen(bench_command(args, out), env=env, cwd=checkout or args.checkout,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            if competitor_at is not None and competitor_at >= 0:
                try:
                    proc.wait(timeout=competitor_at)
                except subprocess.TimeoutExpired:
                    comp = start_competitor(args, report)
                    started_at, load_at_start = time.perf_counter() - t0, os.getloadavg()[0]
                    print(f"[{args.label}] competitor started {started_at:.1f} s into the bench", flush=True)
            _, stderr = proc.communicate()
            wall = time.perf_counter() - t0
        finally:
            competitor = stop_competitor(comp, report) if comp is not None else None
    if proc.returncode != 0:
        sys.exit(f"bench failed ({proc.returncode}):\n{stderr[-3000:]}")
    res = json.loads((out / "results.json").read_text())
    rows = res["methods"]  # name (method or method[mode]) -> row
    train = {name: float(rows[name]["train_seconds"]) for name in args.methods.split(",") if name in rows}
    figures = {name: {f: row.get(f) for f in FIGURES} for name, row in rows.items()}
    load = loads.summary()
    machine = res.get("machine") or {}
    return {"wall": wall, "train": train, "figures": figures, "load_start": load["start"], "load_end": load["end"],
            "load": load, "threads": res.get("threads"), "environment": res.get("environment"),
            "thread_changes": machine.get("thread_changes") or [],
            "reference_steps_per_s": machine.get("reference_steps_per_s"),
            "competitor": None if competitor is None else {**competitor, "started_at_s": round(started_at, 1),
                                                           "load_at_start": round(load_at_start, 2)}}


def competitor_alone(args: argparse.Namespace, tmp: Path) -> dict | None:
    """The competitor's own speed with the machine to itself (``None`` when skipped)."""
    if args.competitor_alone <= 0:
        return None
    report = tmp / "competitor-alone.json"
    start_competitor(args, report, seconds=args.competitor_alone).wait(timeout=args.competitor_alone + 120)
    return json.loads(report.read_text()) if report.is_file() else None


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="mdn,cvae,cgan")
    p.add_argument("--label", default="current")
    p.add_argument("--checkout", type=Path, default=None, help="run this checkout's colorkit (PYTHONPATH)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--competitor-threads", type=int, default=2)
    p.add_argument("--competitor-after", type=float, nargs="?", const=60.0, default=None, metavar="SECONDS",
                   help="start the competitor this long after the loaded bench starts (60 if no number is given) "
                        "instead of 5 s before it")
    p.add_argument("--competitor-alone", type=float, default=20.0, metavar="SECONDS",
                   help="first run the competitor alone this long, for its own speed (0: skip)")
    p.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                   help="also run the quiet bench with this checkout's colorkit (e.g. the code before a change), "
                        "right before the current quiet run, and compare the quiet times")
    p.add_argument("--load-every", type=float, default=5.0, help=argparse.SUPPRESS)
    p.add_argument("--bench-command", default=None, help=argparse.SUPPRESS)  # the tests' stand-in for the bench
    p.add_argument("--no-csv", action="store_true", help="append no rows to benchmarks/results/under_load.csv")
    p.add_argument("--skip-quiet", type=Path, default=None, metavar="RESULTS_JSON",
                   help="reuse this earlier quiet run's wall seconds instead of running the quiet bench: "
                        "a JSON written by this script with --keep")
    p.add_argument("--keep", type=Path, default=None, help="write this run's measurements as JSON here")
    p.add_argument("--force", action="store_true", help="run even if the machine is not quiet")
    p.add_argument("extra", nargs="*", help="extra arguments for colorkit bench (after --)")
    args = p.parse_args(argv)

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
    package = which_colorkit(args, env) if args.bench_command is None else "(stand-in bench)"
    print(f"[{args.label}] colorkit from {package}", flush=True)
    when = -5.0 if args.competitor_after is None else args.competitor_after

    with tempfile.TemporaryDirectory(prefix="bench-under-load-") as tmp:
        tmp = Path(tmp)
        alone = competitor_alone(args, tmp)
        if alone is not None:
            print(f"[{args.label}] competitor alone: {alone['steps_per_s']} steps/s", flush=True)
        baseline = None
        if args.baseline is not None:
            root = args.baseline.resolve()
            env_b = {**env, "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins")])}
            print(f"[{args.label}] baseline quiet run, colorkit from "
                  f"{which_colorkit(argparse.Namespace(checkout=root), env_b)} ...", flush=True)
            baseline = run_bench(args, tmp / "baseline", env_b, checkout=root)
        if args.skip_quiet is not None:
            quiet = json.loads(args.skip_quiet.read_text())["quiet"]
        else:
            print(f"[{args.label}] quiet run ...", flush=True)
            quiet = run_bench(args, tmp / "quiet", env)
        print(f"[{args.label}] run beside a {args.competitor_threads}-thread competing load starting "
              f"{abs(when):g} s {'before' if when < 0 else 'after'} the bench ...", flush=True)
        loaded = run_bench(args, tmp / "loaded", env, competitor_at=when)

    competitor = loaded["competitor"]
    beside = None if competitor is None else competitor["steps_per_s"]
    share = beside / alone["steps_per_s"] if beside is not None and alone and alone.get("steps_per_s") else None
    same = quiet["figures"] == loaded["figures"]
    rows = []
    print(f"\n[{args.label}] threads {loaded['threads']}; competitor "
          + ("never started (the bench ended first)" if competitor is None else
             f"started {competitor['started_at_s']} s into the bench, {beside} steps/s beside it")
          + (f", {alone['steps_per_s']} alone" if alone else "") + (f" ({100 * share:.0f}%)" if share is not None
                                                                     else ""))
    print(f"{'part':<8} {'quiet s':>9} {'loaded s':>9} {'slowdown':>9}"
          + (f" {'baseline quiet s':>17} {'quiet/baseline':>15}" if baseline else ""))
    parts = [(f"train {name}", quiet["train"].get(name, float("nan")), loaded["train"].get(name, float("nan")),
              baseline["train"].get(name, float("nan")) if baseline else None) for name in args.methods.split(",")]
    parts.append(("whole command", quiet["wall"], loaded["wall"], baseline["wall"] if baseline else None))
    for part, q, lo, b in parts:
        print(f"{part:<8} {q:9.1f} {lo:9.1f} {lo / q:8.2f}x" + (f" {b:17.1f} {q / b:14.2f}x" if b else ""))
        rows.append([args.label, part, round(q, 1), round(lo, 1), round(lo / q, 2), None if b is None else round(b, 1),
                     None if b is None else round(q / b, 3)])
    runs = {"quiet": quiet, "loaded": loaded, **({"baseline": baseline} if baseline else {})}
    for run, r in runs.items():
        print(f"{run} load average: {r['load']}; thread changes: {r['thread_changes'] or 'none'}")
    print(f"figures identical quiet vs loaded: {same}")
    same_as_baseline = None if baseline is None else baseline["figures"] == quiet["figures"]
    if baseline is not None:
        print(f"figures identical baseline vs quiet (same thread count): {same_as_baseline}")
    common = [loaded["threads"], ";".join(args.env), "before" if when < 0 else f"after {when:g} s",
              None if competitor is None else competitor["started_at_s"], None if alone is None else
              alone["steps_per_s"], beside, None if share is None else round(share, 3),
              *[quiet["load"][k] for k in ("start", "end", "mean", "max")],
              *[loaded["load"][k] for k in ("start", "end", "mean", "max")],
              None if competitor is None else competitor["load_at_start"], len(loaded["thread_changes"]),
              quiet["reference_steps_per_s"], same]
    if not args.no_csv:
        append_rows("under_load", ["label", "part", "quiet_s", "loaded_s", "slowdown", "baseline_quiet_s",
                                   "quiet_over_baseline", "threads", "env",
                                   "competitor_start", "competitor_started_at_s", "competitor_alone_steps_per_s",
                                   "competitor_beside_steps_per_s", "competitor_share", "quiet_load_start",
                                   "quiet_load_end", "quiet_load_mean", "quiet_load_max", "loaded_load_start",
                                   "loaded_load_end", "loaded_load_mean", "loaded_load_max",
                                   "load_at_competitor_start", "thread_changes", "reference_steps_per_s",
                                   "figures_identical"],
                    [[*r, *common] for r in rows])
    measured = {"colorkit": package, "baseline": baseline, "quiet": quiet, "loaded": loaded,
                "competitor_alone": alone, "figures_identical_to_baseline": same_as_baseline,
                "competitor": competitor, "competitor_share": share, "figures_identical": same}
    if args.keep is not None:
        args.keep.write_text(json.dumps(measured, indent=2))
    return measured


if __name__ == "__main__":
    main()
