"""What the MDN's component means decode to when they reproduce no possible theme.

    python invalid_kinds.py RUN SPEC

Each (test image, component) pair is one of: valid (reproduces a possible theme), mixed
(every region within the mode tolerance of one of its colours in some possible theme, but
no single theme matches all regions), or off-mode (some region is farther than the
tolerance from every one of its colours). For the off-mode regions it prints the median
chroma of the region's mean relative to the nearest mode's, the median hue difference in
degrees and the share of them that are backgrounds, and per region (background or object
shape) the fraction of the pairs showing it that leave it off every mode: a mean between two modes of one region
has lower chroma and a hue between theirs.
"""

import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from colorkit_synth.modes import MODE_TOL, region_summaries
from synth_diagnose import component_fields, split_batch, theme_match

from colorkit.inference import load

_, b, meta = split_batch(sys.argv[2])
m = load(sys.argv[1]).method
_, _, comp = component_fields(m, b["grey"])
M = comp.shape[1]
kinds = {"valid": 0, "mixed": 0, "off-mode": 0}
chroma, hue, background = [], [], []
seen, off_by_region = {}, {}  # region index -> (image, component) pairs showing it / off every mode
for i, rec in enumerate(meta):
    valid = theme_match(comp[i], rec).any(1)
    means, _, regions = region_summaries(comp[i], rec)
    colours = torch.tensor([g["ab"] for g in rec["themes"]], dtype=torch.float32)[:, regions]  # (G, R', 2)
    dist = (means[:, None] - colours[None]).norm(dim=-1)  # (M, G, R')
    nearest = dist.argmin(1)  # (M, R')
    for j in range(M):
        for r in range(len(regions)):
            slot = int(regions[r])
            key = "background" if slot == 0 else rec["regions"][slot]
            seen[key] = seen.get(key, 0) + 1
            off_by_region[key] = off_by_region.get(key, 0) + int(dist[j, nearest[j, r], r] > MODE_TOL)
        if valid[j]:
            kinds["valid"] += 1
            continue
        off = [r for r in range(len(regions)) if dist[j, nearest[j, r], r] > MODE_TOL]
        kinds["off-mode" if off else "mixed"] += 1
        for r in off:
            mode, x = colours[nearest[j, r], r], means[j, r]
            chroma.append(float(x.norm() / mode.norm()))
            turn = float(torch.rad2deg(torch.atan2(x[1], x[0]) - torch.atan2(mode[1], mode[0])))
            hue.append(abs((turn + 180) % 360 - 180))
            background.append(int(regions[r]) == 0)
total = sum(kinds.values())
print("(image, component) pairs:", {k: round(v / total, 3) for k, v in kinds.items()})
if chroma:
    print(f"off-mode regions: {len(chroma)}; chroma / nearest mode's: median {np.median(chroma):.2f} "
          f"(quartiles {np.percentile(chroma, 25):.2f}, {np.percentile(chroma, 75):.2f}); hue difference: median "
          f"{np.median(hue):.0f} degrees; backgrounds {np.mean(background):.0%}")
shares = (f"{r} {off_by_region[r] / seen[r]:.2f} of {seen[r]}" for r in sorted(seen))
print("off every mode, per region:", ", ".join(shares))
