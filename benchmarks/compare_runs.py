"""Paired comparison of trained runs on one test set: error-of-best per image (ab/128) of
each run's (or group's) default sampling, with its 95% bootstrap interval, and each one's
paired difference to the first (whole interval below 0 = better than the first).

    python benchmarks/compare_runs.py RUN_A RUN_B [RUN_C ...] [--test-dataset FOLDER] [--k 5]
    python benchmarks/compare_runs.py A0 A1 A2 B0 B1 B2 --per-group 3   # seeds 0-2 of A and of B

With ``--per-group N`` the runs are taken N at a time (for example the training seeds of
one configuration) and each group's per-image errors are averaged over its runs before the
intervals and the paired differences, as the bench does with ``--seeds``.

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


def groups(runs: list[str], per_group: int) -> list[list[str]]:
    """``runs`` cut into consecutive groups of ``per_group``; a count that does not divide is
    a one-line error."""
    if per_group < 1 or len(runs) % per_group:
        raise SystemExit(f"--per-group {per_group} must divide the number of runs ({len(runs)})")
    return [runs[i:i + per_group] for i in range(0, len(runs), per_group)]


@torch.no_grad()
def main(argv: list[str] | None = None) -> list[tuple[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--test-dataset", default=None)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--per-group", type=int, default=1, help="runs averaged per image in each row (default 1)")
    a = ap.parse_args(argv)
    rows = groups(a.runs, a.per_group)
    hashes = {read_run(r)["dataset"].get("hash") for r in a.runs}
    if len(hashes) != 1:
        raise SystemExit(f"the runs were trained on different data sets ({len(hashes)} hashes)")
    split, where = run_test_split(a.runs[0], a.test_dataset)
    b = split.batch(list(range(len(split))))
    first = None
    out = []
    print(f"{where}: {len(split)} images, error-of-best (k={a.k}) in ab/128, 95% bootstrap intervals")
    print("| run | error-of-best | difference to the first |")
    print("|---|---|---|")
    for group in rows:
        per = torch.stack([error_of_best(load(run, device="cpu").sample(b["grey"], a.k), b["ab"], reduction="none")
                           for run in group]).mean(0)
        lo, hi = bootstrap_ci(per)
        diff = "-"
        if first is None:
            first = per
        else:
            d, dlo, dhi = paired_bootstrap(per, first)
            diff = f"{d:+.4f} [{dlo:+.4f}, {dhi:+.4f}]"
        name = " + ".join(group)
        out.append((name, float(per.mean())))
        print(f"| {name} | {float(per.mean()):.4f} [{lo:.4f}, {hi:.4f}] | {diff} |")
    return out


if __name__ == "__main__":
    main()
