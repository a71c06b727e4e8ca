"""Where the limit of an ``mdn`` / ``mdn-skip`` run lies: error-of-best on a test set of
colour fields decoded by the run's own VAE from codes chosen in different ways.

* ``reconstruction``: the test field's own code (posterior mean), k = 1: the ceiling of
  any code predictor with this decoder;
* ``nearest training code``: the kept training code nearest (Euclidean) to the test
  field's own code, k = 1: an oracle pick among codes the model has seen;
* ``vae-kmeans``: the k k-means centres of the training codes, blind to the input;
* ``mdn topk`` / ``mdn distinct``: the run's MDN (k components by weight / distinct).

Values in ab/128 with 95% bootstrap intervals over test images, and each row's paired
difference to ``vae-kmeans``::

    python benchmarks/ceiling.py RUN_DIR [--test-dataset FOLDER] [--k 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import torch

from colorkit.inference import load
from colorkit.metrics.bootstrap import bootstrap_ci, paired_bootstrap
from colorkit.metrics.functional import error_of_best
from colorkit.train.runs import read_run


def run_test_split(run_dir: str, test_dataset: str | None):
    from colorkit.data import prepare

    info = read_run(run_dir)
    data = info["config"]["data"]
    if test_dataset:
        ds = prepare(test_dataset, size=data["size"], test_size=0, progress=False)
        return ds.split("train"), test_dataset
    ds = prepare(data["dataset"], size=data["size"], split_seed=data["split_seed"], test_size=data.get("test_size"),
                 crop=data.get("crop", False), cache_dir=data.get("cache_dir"), progress=False)
    return ds.split("test"), f"{data['dataset']} (test split)"


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--test-dataset", default=None)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    model = load(a.run, device="cpu")
    m = model.method.eval()
    split, where = run_test_split(a.run, a.test_dataset)
    b = split.batch(list(range(len(split))))
    grey, ab = b["grey"], b["ab"]
    g = grey if m.embedder.uses_grey else None
    own = m.embedder.encode(ab, g).mu  # (N, d)
    kept = m._kept_codes()
    nearest = kept[torch.cdist(own, kept).argmin(1)]
    rows = {
        "reconstruction (own code, k=1)": m.embedder.decode(own, g)[:, None],
        "nearest training code (oracle, k=1)": m.embedder.decode(nearest, g)[:, None],
        f"vae-kmeans (k={a.k})": m.sample(grey, a.k, mode="vae-kmeans"),
        f"mdn topk (k={a.k})": m.sample(grey, a.k, mode="topk"),
        f"mdn distinct (k={a.k})": m.sample(grey, a.k, mode="distinct"),
    }
    per_image = {name: error_of_best(s, ab, reduction="none") for name, s in rows.items()}
    ref = per_image[f"vae-kmeans (k={a.k})"]
    print(f"{a.run} on {where}: {len(split)} images, error-of-best in ab/128, 95% bootstrap intervals")
    print("| colour fields decoded by the run's VAE | error-of-best | difference to vae-kmeans |")
    print("|---|---|---|")
    out = {}
    for name, v in per_image.items():
        lo, hi = bootstrap_ci(v)
        d, dlo, dhi = paired_bootstrap(v, ref)
        out[name] = {"error_of_best": float(v.mean()), "ci": [lo, hi], "vs_vae_kmeans": [d, dlo, dhi]}
        print(f"| {name} | {float(v.mean()):.4f} [{lo:.4f}, {hi:.4f}] | {d:+.4f} [{dlo:+.4f}, {dhi:+.4f}] |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"run": a.run, "test": where, "units": "ab/128", "rows": out}, f, indent=2)


if __name__ == "__main__":
    main()
