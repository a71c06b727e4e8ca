"""Paired comparison of trained runs on one test set: error-of-best per image (ab/128) of
each run's default sampling, with its 95% bootstrap interval, and every run's paired
difference to the first (whole interval below 0 = better than the first).

    python benchmarks/compare_runs.py RUN_A RUN_B [RUN_C ...] [--test-dataset FOLDER] [--k 5]

The test set is the first run's test split (or ``--test-dataset``); every run must have
been trained on the same data set and split for the comparison to mean anything (checked).
"""

from __future__ import annotations

import argparse

import torch
from ceiling import run_test_split

from colorkit.inference import load
from colorkit.metrics.bootstrap import bootstrap_ci, paired_bootstrap
from colorkit.metrics.functional import error_of_best
from colorkit.train.runs import read_run


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--test-dataset", default=None)
    ap.add_argument("--k", type=int, default=5)
    a = ap.parse_args()
    hashes = {read_run(r)["dataset"].get("hash") for r in a.runs}
    if len(hashes) != 1:
        raise SystemExit(f"the runs were trained on different data sets ({len(hashes)} hashes)")
    split, where = run_test_split(a.runs[0], a.test_dataset)
    b = split.batch(list(range(len(split))))
    first = None
    print(f"{where}: {len(split)} images, error-of-best (k={a.k}) in ab/128, 95% bootstrap intervals")
    print("| run | error-of-best | difference to the first |")
    print("|---|---|---|")
    for run in a.runs:
        samples = load(run, device="cpu").sample(b["grey"], a.k)
        per = error_of_best(samples, b["ab"], reduction="none")
        lo, hi = bootstrap_ci(per)
        diff = "-"
        if first is None:
            first = per
        else:
            d, dlo, dhi = paired_bootstrap(per, first)
            diff = f"{d:+.4f} [{dlo:+.4f}, {dhi:+.4f}]"
        print(f"| {run} | {float(per.mean()):.4f} [{lo:.4f}, {hi:.4f}] | {diff} |")


if __name__ == "__main__":
    main()
