"""The known-answer table from ``colorkit bench --dataset synth...`` results, and the check
of the target: does a method reach mode recall >= 0.8 at mode precision >= 0.8 and
coherence >= 0.9, and is its recall interval above (not overlapping) those of the named
baselines?

    python benchmarks/synth_table.py OUT/results.json [OUT2/results.json ...] \
        [--method mdn-skip] [--baselines cvae,cgan]

Prints, per results file, a markdown table (mean [95% interval] of mode recall, mode
precision, coherence and error-of-best for every row) and one line per file with the
verdict. Values are read from the bench's own results (intervals: its seeded bootstrap
over test images).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ("mode_recall", "mode_precision", "coherence", "error_of_best")
TARGET = {"mode_recall": 0.8, "mode_precision": 0.8, "coherence": 0.9}


def rows(res: dict) -> dict[str, dict]:
    """Learned rows first (in the bench's order), then the references."""
    methods = res["methods"]
    return dict(sorted(methods.items(), key=lambda kv: kv[1].get("kind") != "learned"))


def cell(r: dict, m: str) -> str:
    lo, hi = r[f"{m}_ci"]
    return f"{r[m]:.3f} [{lo:.3f}, {hi:.3f}]"


def verdict(table: dict[str, dict], method: str, baselines: list[str]) -> str:
    if method not in table:
        return f"{method}: not in these results"
    r = table[method]
    misses = [f"{m} {r[m]:.3f} < {t}" for m, t in TARGET.items() if r[m] < t]
    parts = [f"{method}: target " + ("met" if not misses else "NOT met (" + "; ".join(misses) + ")")]
    for b in baselines:
        if b not in table:
            parts.append(f"{b} not scored")
            continue
        above = r["mode_recall_ci"][0] > table[b]["mode_recall_ci"][1]
        parts.append(f"recall interval {'above' if above else 'NOT above'} {b}'s "
                     f"({cell(r, 'mode_recall')} vs {cell(table[b], 'mode_recall')})")
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--method", default="mdn-skip")
    ap.add_argument("--baselines", default="cvae,cgan")
    a = ap.parse_args()
    for path in a.results:
        res = json.loads(Path(path).read_text())
        table = rows(res)
        print(f"\n`{res['dataset']['name']}` (k = {res['k']}, {res['test_set']['images']} test images, {path})")
        print("\n| method | mode recall | mode precision | coherence | error-of-best (ab/128) |\n|---|---|---|---|---|")
        for name, r in table.items():
            if all(m in r for m in COLUMNS):
                print(f"| {name} | " + " | ".join(cell(r, m) for m in COLUMNS) + " |")
        print("\n" + verdict(table, a.method, [b for b in a.baselines.split(",") if b]))


if __name__ == "__main__":
    main()
