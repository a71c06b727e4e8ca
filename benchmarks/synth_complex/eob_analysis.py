import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from colorkit_synth.modes import COHERENCE_TOL, region_summaries
from colorkit_synth.oracle import Oracle
from synth_diagnose import theme_match
from synth_modes import bootstrap

from colorkit.data import prepare
from colorkit.data.meta import load_meta
from colorkit.inference import load
from colorkit.metrics.functional import error_of_best_per_image

out = sys.argv[1]
spec = sys.argv[2]
ds = prepare(spec, progress=False)
test = ds.split("test")
b = test.batch(list(range(len(test))))
meta = load_meta(ds)(b["index"])
grey, target = b["grey"], b["ab"]
n = len(test)
k = 5


def samp(run, mode=None):
    col = load(run, device="cpu")
    gen = torch.Generator().manual_seed(0)
    outs = []
    for j in range(0, n, 16):
        extra = {"meta": meta[j : j + 16]} if getattr(col.method, "uses_meta", False) else {}
        outs.append(col.method.sample(grey[j : j + 16], k, mode=mode, generator=gen, **extra))
    return torch.cat(outs).float()


S = {
    "oracle": Oracle(stats=None).sample(grey, k, generator=torch.Generator().manual_seed(0), meta=meta).float(),
    "prior-kmeans": samp(f"{out}/runs/prior-kmeans/seed-0"),
    "mdn-skip": samp(f"{out}/runs/mdn-skip/seed-0"),
}
eob = {m: error_of_best_per_image(s, target).double().numpy() for m, s in S.items()}


def drawn(rec):
    return next(j for j, g in enumerate(rec["themes"]) if rec["theme"] in g["ids"])


for m in ("oracle", "mdn-skip"):
    inc = np.array([bool(theme_match(S[m][i], r)[:, drawn(r)].any()) for i, r in enumerate(meta)])
    print(
        f"{m}: drawn theme among the 5: {inc.mean():.3f}; eob when included {eob[m][inc].mean():.3f}, "
        f"when not {eob[m][~inc].mean() if (~inc).any() else float('nan'):.3f}"
    )
for a, c in (("oracle", "prior-kmeans"), ("mdn-skip", "prior-kmeans"), ("mdn-skip", "oracle")):
    d = eob[a] - eob[c]
    lo, hi = bootstrap(d)
    print(f"paired eob {a} - {c}: {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")
# coherence by region kind for mdn-skip
for m in ("mdn-skip",):
    bg, ob = [], []
    for i, r in enumerate(meta):
        _, spread, regions = region_summaries(S[m][i], r)
        flat = spread <= COHERENCE_TOL
        bg.extend(flat[:, regions == 0].flatten().tolist())
        ob.extend(flat[:, regions > 0].flatten().tolist())
    print(f"{m}: coherent backgrounds {np.mean(bg):.3f} ({len(bg)} pairs), objects {np.mean(ob):.3f} ({len(ob)} pairs)")
# the most-probable-5 oracle (deterministic)
