import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from colorkit_synth.modes import COHERENCE_TOL, image_scores, region_summaries
from synth_diagnose import split_batch

from colorkit.inference import load

_, b, meta = split_batch(sys.argv[2])
m = load(sys.argv[1]).method
with torch.no_grad():
    g = b["grey"] if m.embedder.uses_grey else None
    rec = m.embedder.decode(m.embedder.encode(b["ab"], g).mu, g)
sc = np.array([image_scores(rec[i : i + 1], r) for i, r in enumerate(meta)])
bg, ob = [], []
for i, r in enumerate(meta):
    _, spread, regions = region_summaries(rec[i : i + 1], r)
    flat = spread <= COHERENCE_TOL
    bg.extend(flat[:, regions == 0].flatten().tolist())
    ob.extend(flat[:, regions > 0].flatten().tolist())
print(
    f"VAE recon: precision {sc[:, 1].mean():.3f} coherence {sc[:, 2].mean():.3f} "
    f"(backgrounds {np.mean(bg):.3f}, objects {np.mean(ob):.3f}); L1 {(rec - b['ab']).abs().mean():.4f}"
)
