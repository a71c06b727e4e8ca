"""Which colour-field VAE is worth predicting? Trains only the VAE stage of ``mdn`` or
``mdn-skip`` (small preset) for each variant on the same training split and reports the
error of the reconstructions (decoded posterior means) of held-out colour fields: the
floor of any MDN's error-of-best with that VAE. Each variant is paired against the first.

    python benchmarks/vae_probe.py --variant base:method=mdn \\
        --variant skip:method=mdn-skip --variant flip:method=mdn,flip=true --json out.json

A variant is ``NAME:key=value,key=value``; ``method`` picks the method (default mdn),
every other key is a method config field (values parsed as JSON when they parse).
Values in ab/128, 95% bootstrap intervals over the test images.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from colorkit.core.stats import load_or_compute_stats
from colorkit.data import prepare
from colorkit.metrics.bootstrap import bootstrap_ci, paired_bootstrap
from colorkit.metrics.functional import error_of_best
from colorkit.train.engine import TrainConfig, Trainer
from colorkit.train.runs import build_method


def parse_variant(text: str) -> tuple[str, str, dict]:
    name, _, rest = text.partition(":")
    opts: dict = {}
    for kv in filter(None, rest.split(",")):
        k, v = kv.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except ValueError:
            opts[k] = v
    return name, opts.pop("method", "mdn"), opts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--test-dataset", default=None, help="score on this folder instead of the test split")
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--train-size", type=int, default=None,
                    help="prepare the training images at this size (e.g. 128, for crop_scale); test stays at 64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    ds = prepare(a.dataset, progress=False)
    stats = load_or_compute_stats(ds)
    test = prepare(a.test_dataset, test_size=0, progress=False).split("train") if a.test_dataset else ds.split("test")
    b = test.batch(list(range(len(test))))
    train_ds = prepare(a.dataset, size=a.train_size, progress=False) if a.train_size else ds
    results, first = {}, None
    for text in a.variant:
        name, method, opts = parse_variant(text)
        torch.manual_seed(a.seed)
        m = build_method(method, stats, preset="small", options={"image_size": ds.size, **opts}, dataset=train_ds)
        vae = next(s for s in m.stages() if s.name == "vae")
        vae.on_end = None  # only the VAE: the kept codes are not needed here
        m.stages = lambda vae=vae: [vae]  # type: ignore[method-assign]
        m.registry_name = method
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as td:
            Trainer(TrainConfig(seed=a.seed, progress=False, device="cpu")).fit(m, train_ds.split("train"), td)
        secs = time.perf_counter() - t0
        m.eval()
        with torch.no_grad():
            g = b["grey"] if m.embedder.uses_grey else None
            rec = m.embedder.decode(m.embedder.encode(b["ab"], g).mu, g)
        per = error_of_best(rec[:, None], b["ab"], reduction="none")
        row = {"method": method, "options": opts, "vae_seconds": round(secs, 1),
               "recon_error": float(per.mean()), "ci": list(bootstrap_ci(per))}
        if first is None:
            first = per
        else:
            row["vs_first"] = list(paired_bootstrap(per, first))
        results[name] = row
        print(json.dumps({name: row}), flush=True)
    print(f"| VAE variant | reconstruction error (ab/128) | difference to {a.variant[0].split(':')[0]} | VAE s |")
    print("|---|---|---|---|")
    for name, r in results.items():
        d = r.get("vs_first")
        diff = f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]" if d else "-"
        print(f"| {name} | {r['recon_error']:.4f} [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] | {diff} | {r['vae_seconds']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"dataset": a.dataset, "test": a.test_dataset or "test split", "units": "ab/128",
                       "variants": results}, f, indent=2)


if __name__ == "__main__":
    main()
