import collections
import sys

import numpy as np

from colorkit.data import prepare
from colorkit.data.meta import load_meta

spec = sys.argv[1]
ds = prepare(spec, progress=False)
for split in ("train", "test"):
    s = ds.split(split)
    b = s.batch(list(range(len(s))))
    meta = load_meta(ds)(b["index"])
    g = np.array([len(r["themes"]) for r in meta])
    nobj = np.array([len(r["regions"]) - 1 for r in meta])
    ptop5 = np.array([sum(t["p"] for t in r["themes"][:5]) for r in meta])
    print(
        split,
        len(g),
        f"possible themes/image mean {g.mean():.2f} median {np.median(g):.0f} min {g.min()} max {g.max()}",
    )
    print("  hist", sorted(collections.Counter(g.tolist()).items()))
    print(f"  frac >5: {(g > 5).mean():.3f}  frac >8: {(g > 8).mean():.3f}")
    print("  objects/image", sorted(collections.Counter(nobj.tolist()).items()))
    print(f"  prob mass of top-5 themes mean {ptop5.mean():.3f}")
    print(f"  min(k=5,G) mean {np.minimum(5, g).mean():.2f}")
