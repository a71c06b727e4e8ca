import sys

import numpy as np
from colorkit_synth.modes import image_scores

from colorkit.data import prepare
from colorkit.data.meta import load_meta

ds = prepare(sys.argv[1], progress=False)
test = ds.split("test")
b = test.batch(list(range(len(test))))
meta = load_meta(ds)(b["index"])
sc = np.array([image_scores(b["ab"][i : i + 1], r) for i, r in enumerate(meta)])
print(f"ground truth: precision {sc[:, 1].mean():.3f} coherence {sc[:, 2].mean():.3f}")
