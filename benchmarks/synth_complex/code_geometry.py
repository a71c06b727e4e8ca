"""Geometry of the VAE codes of every possible theme of each image, and the MDN's component means against them."""

import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from colorkit_synth.oracle import Oracle
from synth_diagnose import theme_match

from colorkit.data import prepare
from colorkit.data.meta import load_meta
from colorkit.inference import load

run, spec, split, nmax = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ds = prepare(spec, progress=False)
s = ds.split(split)
idx = list(range(min(nmax, len(s))))
b = s.batch(idx)
meta = load_meta(ds)(b["index"])
n = len(idx)
K = 16
m = load(run).method
g = b["grey"]
if len(sys.argv) > 5:
    from safetensors.torch import load_file

    m.load_state_dict(load_file(f"{sys.argv[5]}/train_state/model.safetensors"))
all_t = Oracle(stats=None).sample(g, K, generator=torch.Generator().manual_seed(0), meta=meta).float()  # (n,16,2,H,W)
with torch.no_grad():
    gk = g.repeat_interleave(K, 0) if m.embedder.uses_grey else None
    z = m.embedder.encode(all_t.flatten(0, 1), gk).mu.reshape(n, K, -1)
    log_pi, mu = m.mdn(m.backbone(g))
# codes per (image, group)
codes, tids, comp_d, group_d, comp_valid, hit_groups = [], [], [], [], [], []
for i, r in enumerate(meta):
    G = len(r["themes"])
    zi = z[i, :G]
    for j, grp in enumerate(r["themes"]):
        codes.append(zi[j])
        tids.append(grp["ids"])
    dg = torch.cdist(zi, zi)
    group_d.append(dg[~torch.eye(G, dtype=bool)].median().item())
    dc = torch.cdist(mu[i], zi)  # (M, G)
    comp_d.append(dc.min(1).values.median().item())
    hit_groups.append(len(set(dc.argmin(1).tolist())))
C = torch.stack(codes)
# theme centroids over (image, group) pairs whose group holds that theme
T = max(max(t) for t in tids) + 1
cent = torch.stack([torch.stack([c for c, t in zip(codes, tids) if th in t]).mean(0) for th in range(T)])
within = np.mean([min((codes[q] - cent[th]).norm().item() for th in tids[q]) for q in range(len(codes))])
between = torch.pdist(cent).median().item()
print(
    f"{split} ({n} images): code norm median {C.norm(dim=1).median():.2f}; median distance between an "
    f"image's group codes {np.median(group_d):.2f}; a group code to its theme's centroid (over images) "
    f"{within:.2f}; between theme centroids {between:.2f}"
)
print(
    f"  MDN component mean to nearest group code: median {np.median(comp_d):.2f}; "
    f"distinct groups nearest to the M components: {np.mean(hit_groups):.2f}"
)
# decode the theme centroids on every image: does a per-theme, image-agnostic code reproduce that theme?
ok = []
with torch.no_grad():
    for i, r in enumerate(meta):
        G = len(r["themes"])
        ths = [grp["ids"][0] for grp in r["themes"]]
        dec = m.embedder.decode(cent[ths], g[i : i + 1].expand(G, -1, -1, -1) if m.embedder.uses_grey else None)
        mt = theme_match(dec, r)
        ok.append(float(mt.diagonal().float().mean()))
print(f"  decoding the theme centroid code on an image reproduces that theme: {np.mean(ok):.3f}")
ok2 = []
with torch.no_grad():
    for i, r in enumerate(meta):
        G = len(r["themes"])
        dec = m.embedder.decode(z[i, :G], g[i : i + 1].expand(G, -1, -1, -1) if m.embedder.uses_grey else None)
        ok2.append(float(theme_match(dec, r).diagonal().float().mean()))
print(f"  decoding each group's own code reproduces it (VAE ceiling over all possible themes): {np.mean(ok2):.3f}")
