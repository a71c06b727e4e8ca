"""The demo set's data path, this checkout against another colorkit source tree, side by side.

Each measurement runs in a fresh child process, alternating between the two trees
(``--repeats`` times each, interleaved so that machine load hits both alike):

* ``cold``: ``prepare("demo")`` into an empty cache (decode, resize, write, fingerprint);
* ``warm``: ``prepare("demo")`` again (the cache is reused);
* ``epochs``: 5 epochs of the training batches the engine feeds the small preset (batch 32,
  seeded shuffle) including the uint8 -> Lab conversion: through the DataLoader path where
  the tree's engine has it (``Trainer._batches``), else through ``split.batch``.

Wall time and CPU time (``process_time``: all threads of the child) are both recorded; on
a loaded machine the CPU time is the steadier comparison. Prints medians and the ratio
other/this. Appends rows to ``benchmarks/results/demo_data_path.csv``.

    git worktree add /tmp/colorkit-main main     # or: git archive main colorkit | tar -x -C /tmp/old
    python benchmarks/bench_demo_data_path.py --other /tmp/colorkit-main --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _results import append_rows

CHILD = r"""
import json, sys, time
import numpy as np, torch
from colorkit.data import prepare
cache = sys.argv[1]
c0 = time.process_time(); t0 = time.perf_counter(); ds = prepare("demo", cache_dir=cache, progress=False)
cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
c0 = time.process_time(); t0 = time.perf_counter(); ds = prepare("demo", cache_dir=cache, progress=False)
warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
from colorkit.train.engine import TrainConfig, Trainer
split = ds.split("train")
tr = Trainer(TrainConfig(progress=False, device="cpu"))
order = [np.random.default_rng(e).permutation(len(split)).tolist() for e in range(5)]
steps = [o[i:i + 32] for o in order for i in range(0, len(o), 32)]
c0 = time.process_time(); t0 = time.perf_counter(); n = 0
if hasattr(tr, "_batches"):
    for b in tr._batches(split, steps):
        n += b["ab"].shape[0]
else:
    for idx in steps:
        b = {k: v.to(tr.device) for k, v in split.batch(idx).items()}
        n += b["ab"].shape[0]
epochs, epochs_cpu = time.perf_counter() - t0, time.process_time() - c0
import colorkit
print(json.dumps({"cold": cold, "warm": warm, "epochs": epochs, "cold_cpu": cold_cpu, "warm_cpu": warm_cpu,
                  "epochs_cpu": epochs_cpu, "images": n, "file": colorkit.__file__}))
"""


def run(tree: Path | None, cache: Path) -> dict:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    out = subprocess.run([sys.executable, "-c", CHILD, str(cache)], env=env, check=True, capture_output=True,
                         text=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", type=Path, required=True, help="a colorkit source tree (holding colorkit/)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--note", default="")
    ap.add_argument("--no-csv", action="store_true")
    args = ap.parse_args(argv)
    here = Path(__file__).resolve().parents[1]
    res: dict[str, list[dict]] = {"this": [], "other": []}
    work = Path(tempfile.mkdtemp(prefix="colorkit-bench-demo-"))
    try:
        for r in range(args.repeats):
            for who, tree in (
                (("this", here), ("other", args.other)) if r % 2 == 0 else (("other", args.other), ("this", here))
            ):
                cache = work / f"{who}-{r}"
                res[who].append(run(tree, cache))
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for key in ("cold", "warm", "epochs", "cold_cpu", "warm_cpu", "epochs_cpu"):
        a = statistics.median(x[key] for x in res["this"])
        b = statistics.median(x[key] for x in res["other"])
        print(f"{key:10s}: this {a:.3f} s, other {b:.3f} s (median of {args.repeats}); other/this = {b / a:.2f}")
        rows.append([key, f"{a:.4f}", f"{b:.4f}", f"{b / a:.3f}", args.repeats, str(args.other), args.note])
    print(f"this = {res['this'][0]['file']}\nother = {res['other'][0]['file']}")
    if not args.no_csv:
        out = append_rows("demo_data_path", ["what", "this_s", "other_s", "other_over_this", "repeats", "other_tree",
                                             "note"], rows)
        print(f"appended to {out}")


if __name__ == "__main__":
    main()
