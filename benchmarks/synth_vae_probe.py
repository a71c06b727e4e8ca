"""How well can mdn's colour-field VAE embed the synth world? Trains only the VAE stage
of ``mdn`` (small preset unless overridden) on a synth training split and reports, on the
test split, the fraction of images whose reconstruction (decoded posterior mean)
reproduces the drawn theme (region means within the mode tolerance), and the mode precision
and coherence of the reconstructions: the ceilings of
mdn's mode precision, whatever the MDN does.

    python benchmarks/synth_vae_probe.py [--method mdn-skip] [--dataset synth] [--option vae_lr=1e-3] [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from colorkit.core.stats import load_or_compute_stats
from colorkit.data import prepare
from colorkit.data.meta import load_meta
from colorkit.train.engine import TrainConfig, Trainer
from colorkit.train.runs import build_method


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="synth")
    ap.add_argument("--method", default="mdn", help="mdn or mdn-skip (whose VAE decodes with the grey image)")
    ap.add_argument("--option", action="append", default=[])
    ap.add_argument("--epochs", type=int, default=None, help="VAE epochs (default: the preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/vae-probe")
    ap.add_argument("--load", default=None, help="score the VAE of an earlier probe's --out instead of training")
    a = ap.parse_args()
    opts = {}
    for kv in a.option:
        k, v = kv.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except ValueError:
            opts[k] = v
    ds = prepare(a.dataset, progress=False)
    stats = load_or_compute_stats(ds)
    torch.manual_seed(a.seed)
    m = build_method(a.method, stats, preset="small", options=opts, dataset=ds)
    vae_stage = next(s for s in m.stages() if s.name == "vae")
    vae_stage.on_start = None

    m.stages = lambda: [vae_stage]  # type: ignore[method-assign]
    m.registry_name = a.method
    t0 = time.perf_counter()
    if a.load:
        from safetensors.torch import load_file

        m.load_state_dict(load_file(f"{a.load}/train_state/model.safetensors"))
    else:
        cfg = TrainConfig(seed=a.seed, epochs=a.epochs, progress=False, device="cpu")
        Trainer(cfg).fit(m, ds.split("train"), a.out)
    secs = time.perf_counter() - t0
    from synth_diagnose import theme_match

    test = ds.split("test")
    b = test.batch(list(range(len(test))))
    meta = load_meta(ds)(b["index"])
    with torch.no_grad():
        g = b["grey"] if m.embedder.uses_grey else None
        rec = m.embedder.decode(m.embedder.encode(b["ab"], g).mu, g)
    ok = [bool(theme_match(rec[i : i + 1], r)[0, next(j for j, g in enumerate(r["themes"]) if r["theme"] in g["ids"])])
          for i, r in enumerate(meta)]
    from colorkit_synth.modes import image_scores

    sc = np.array([image_scores(rec[i : i + 1], r) for i, r in enumerate(meta)])
    print(json.dumps({"method": a.method, "dataset": a.dataset, "options": opts, "epochs": a.epochs,
                      "vae_seconds": round(secs, 1),
                      "recon_reproduces_drawn_theme": float(np.mean(ok)),
                      "recon_mode_precision": float(sc[:, 1].mean()), "recon_coherence": float(sc[:, 2].mean()),
                      "recon_l1": float((rec - b["ab"]).abs().mean())}))


if __name__ == "__main__":
    main()
