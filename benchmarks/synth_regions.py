"""Where are a synth run's colorizations not flat? Per region kind (background, objects),
the ab spread of the VAE's reconstructions and of the top-k colorizations, and how far
the background's colour strays from its mean as a function of the distance to the
nearest object.

    python benchmarks/synth_regions.py RUN_DIR [--k 5]

RUN_DIR is an ``mdn`` or ``mdn-skip`` run trained on a synth data set (e.g.
``OUT/runs/mdn/seed-0`` of a bench). Prints, for ``rec`` (decoded posterior mean of the
true colour field) and ``topk`` (the method's k colorizations): the median and 90th
percentile of the spread (RMS distance of a region's ab to its mean, on the region's
interior as the ``coherence`` metric takes it) and the fraction within the coherence
tolerance; then the RMS distance of background pixels to the background's mean colour in
the top-k colorizations, by distance (pixels) to the nearest object. ab/128 units.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch
import torch.nn.functional as F
from colorkit_synth.modes import COHERENCE_TOL, labels_at, region_weights

from colorkit.data import prepare
from colorkit.data.meta import load_meta
from colorkit.inference import load
from colorkit.train.runs import read_run

MAX_DIST = 12


def distance_to_objects(background: torch.Tensor) -> torch.Tensor:
    """Chessboard distance (pixels) of every pixel to the nearest object pixel, capped at MAX_DIST."""
    dist = torch.full(background.shape, float(MAX_DIST))
    cur = 1.0 - background
    for d in range(MAX_DIST):
        dist[(cur > 0) & (dist == MAX_DIST)] = d
        cur = F.max_pool2d(cur[None, None], 3, 1, 1)[0, 0]
    return dist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--k", type=int, default=5)
    a = ap.parse_args()
    info = read_run(a.run)
    ds = prepare(info["dataset"]["source"], size=info["dataset"]["size"], progress=False)
    test = ds.split("test")
    b = test.batch(list(range(len(test))))
    meta = load_meta(ds)(b["index"])
    m = load(a.run).method
    with torch.no_grad():
        g = b["grey"] if m.embedder.uses_grey else None
        rec = m.embedder.decode(m.embedder.encode(b["ab"], g).mu, g)
        topk = m.sample(b["grey"], a.k)
    spreads = collections.defaultdict(list)
    sq, cnt = np.zeros(MAX_DIST + 1), np.zeros(MAX_DIST + 1)
    size = b["ab"].shape[-1]
    for i, r in enumerate(meta):
        n_regions = len(r["themes"][0]["ab"])
        w, present = region_weights(r["labels"], n_regions, size, size)
        area = w.flatten(1).sum(1)
        for src, xs in (("rec", rec[i : i + 1]), ("topk", topk[i])):
            for x in xs:
                mean = torch.einsum("chw,rhw->rc", x, w) / area[:, None]
                msq = torch.einsum("hw,rhw->r", x.pow(2).sum(0), w) / area
                spread = (msq - mean.pow(2).sum(-1)).clamp_min(0).sqrt()
                for j in range(n_regions):
                    if present[j]:
                        spreads[(src, "background" if j == 0 else "objects")].append(float(spread[j]))
        bg = (labels_at(torch.as_tensor(r["labels"]), size, size) == 0).float()
        dist = distance_to_objects(bg)
        for x in topk[i]:
            dev2 = (x - ((x * bg).flatten(1).sum(1) / bg.sum())[:, None, None]).pow(2).sum(0)
            for d in range(1, MAX_DIST + 1):
                sel = (dist == d) & (bg > 0)
                sq[d] += float(dev2[sel].sum())
                cnt[d] += int(sel.sum())
    print(f"{a.run}: {len(test)} test images, spread tolerance {COHERENCE_TOL} ab/128")
    for key in sorted(spreads):
        v = np.array(spreads[key])
        print(f"  {key[0]:5s} {key[1]:10s} n={len(v):4d}  median {np.median(v):.3f}  p90 {np.percentile(v, 90):.3f}"
              f"  within tolerance {np.mean(v <= COHERENCE_TOL):.2f}")
    rms = [f"{d}{'+' if d == MAX_DIST else ''}: {np.sqrt(sq[d] / cnt[d]):.3f}"
           for d in range(1, MAX_DIST + 1) if cnt[d]]
    print("  background RMS distance to its mean colour (top-k), by pixels to the nearest object: " + ", ".join(rms))


if __name__ == "__main__":
    main()
