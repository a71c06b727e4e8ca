"""How two jobs share a 2-core machine: a 2-thread competitor beside a 1-thread job run at
several ``nice`` levels.

    python benchmarks/share_frontier.py [--seconds 20] [--nice 0,3,5,7,10] [--repeats 1]

Both sides are ``benchmarks/competing_load.py`` (a small convolutional training): the
competitor with 2 torch threads, as another researcher's job, and the job standing for
``colorkit bench`` once it has gone down to one thread beside it. Each runs alone first,
then the two start together for ``--seconds`` at each ``nice`` level of the 1-thread job.
Prints and appends to ``benchmarks/results/share_frontier.csv`` each side's steps per
second and its fraction of its own speed alone, with the 1-minute load average. It shows
what a job that keeps one core can leave to a competitor whose idle OpenMP threads spin:
how much of its own speed it must give up for the competitor to keep a given fraction.

Meaningful only on an otherwise quiet machine: it refuses to start when the 1-minute load
average is above 0.5 per core unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _results import append_rows

HERE = Path(__file__).resolve().parent
LOAD = HERE / "competing_load.py"


def run(jobs: list[tuple[int, int]], seconds: float) -> list[float]:
    """Start one competing_load per (threads, nice) at once, for ``seconds``; their steps/s."""
    with tempfile.TemporaryDirectory() as tmp:
        reports = [Path(tmp) / f"{i}.json" for i in range(len(jobs))]
        procs = [subprocess.Popen([*(["nice", "-n", str(n)] if n else []), sys.executable, str(LOAD),
                                   "--threads", str(t), "--seconds", str(seconds), "--report", str(r)])
                 for (t, n), r in zip(jobs, reports, strict=True)]
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"competing_load.py exited with status {p.returncode}")
        return [json.loads(r.read_text())["steps_per_s"] for r in reports]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--nice", default="0,3,5,7,10", help="nice levels of the 1-thread job, comma-separated")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--force", action="store_true", help="run even on a busy machine")
    a = p.parse_args()
    levels = [int(x) for x in a.nice.split(",")]
    load0 = os.getloadavg()[0]
    if load0 > 0.5 * (os.cpu_count() or 1) and not a.force:
        raise SystemExit(f"the machine is busy (1-minute load {load0:.2f}); wait, or give --force")
    rows = []
    for rep in range(a.repeats):
        comp_alone = run([(2, 0)], a.seconds)[0]
        job_alone = run([(1, 0)], a.seconds)[0]
        for n in levels:
            comp, job = run([(2, 0), (1, n)], a.seconds)
            load = os.getloadavg()[0]
            row = [rep, n, comp_alone, comp, round(comp / comp_alone, 3), job_alone, job,
                   round(job / job_alone, 3), round(load, 2)]
            rows.append(row)
            print(f"nice {n:>2}: competitor {comp:6.2f} steps/s ({comp / comp_alone:4.0%} of {comp_alone:.2f} alone), "
                  f"1-thread job {job:6.2f} ({job / job_alone:4.0%} of {job_alone:.2f} alone), load {load:.2f}",
                  flush=True)
    out = append_rows("share_frontier", ["repeat", "nice", "competitor_alone", "competitor_beside",
                                         "competitor_fraction", "job_alone", "job_beside", "job_fraction",
                                         "load_1min"], rows)
    print(f"appended to {out}")


if __name__ == "__main__":
    main()
