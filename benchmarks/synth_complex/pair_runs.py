"""Two runs of one synth world scored on the same test images and paired: per metric the
first run's mean, the second's, and the mean of (second - first) with its 95% bootstrap
interval (2000 resamples of the test images, numpy seed 0). The bench's sampling: ``topk``,
k = 5, a sampling generator seeded 0.

    python benchmarks/synth_complex/pair_runs.py SPEC RUN_A RUN_B [--threads 2] [--json OUT.json]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synth_diagnose import split_batch  # noqa: E402
from synth_modes import score  # noqa: E402

from colorkit.inference import load  # noqa: E402
from colorkit.metrics.bootstrap import paired_bootstrap  # noqa: E402
from colorkit.train.runs import read_run  # noqa: E402

METRICS = ("mode_recall", "mode_precision", "coherence", "error_of_best")
RESAMPLES = 2000


def paired(first: np.ndarray, second: np.ndarray) -> dict[str, float | list[float]]:
    """Means of both, and mean(second - first) with its 95% paired bootstrap interval."""
    d, lo, hi = paired_bootstrap(second, first, resamples=RESAMPLES)
    return {"first": round(float(np.mean(first)), 4), "second": round(float(np.mean(second)), 4),
            "difference": round(d, 4), "ci": [round(lo, 4), round(hi, 4)]}


@torch.no_grad()
def per_image(run: str, grey: torch.Tensor, ab: torch.Tensor, meta: list, k: int = 5) -> dict[str, np.ndarray]:
    m = load(run, device="cpu").method
    s = torch.cat([m.sample(grey[j:j + 16], k, mode="topk", generator=torch.Generator().manual_seed(0))
                   for j in range(0, len(meta), 16)]).float()
    return score(s, ab, meta)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec")
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    ds, b, meta = split_batch(a.spec)
    for run in (a.first, a.second):
        if read_run(run)["dataset"].get("hash") != ds.info().get("hash"):
            raise SystemExit(f"{run} was not trained on {a.spec}")
    one, two = (per_image(r, b["grey"], b["ab"], meta) for r in (a.first, a.second))
    out = {k: paired(one[k], two[k]) for k in METRICS}
    for k, v in out.items():
        print(f"{k}: {v['first']:.3f} -> {v['second']:.3f}, second - first {v['difference']:+.3f} "
              f"[{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]")
    if a.json:
        record = {"spec": a.spec, "first": a.first, "second": a.second, "test_images": len(meta),
                  "units": {"error_of_best": "ab/128", "others": "fraction"}, **out}
        Path(a.json).write_text(json.dumps(record, indent=1))
    return out


if __name__ == "__main__":
    main()
