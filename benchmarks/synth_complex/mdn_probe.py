"""Retrain only the MDN stage (mdn-init + mdn, MDN weights re-initialised) of a finished mdn-skip run on
its own VAE, with other MDN epochs; score mode recall/precision/coherence/error-of-best on the test split."""

import json
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from synth_diagnose import theme_match
from synth_modes import bootstrap, score

from colorkit.data import prepare
from colorkit.data.meta import load_meta
from colorkit.inference import load
from colorkit.train.engine import TrainConfig, Trainer

run, spec, epochs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(2)
ds = prepare(spec, progress=False)
m = load(run, device="cpu").method
if len(sys.argv) > 5:  # the VAE (and its stored codes) of a synth_vae_probe.py --out
    from safetensors.torch import load_file

    print(m.load_state_dict(load_file(f"{sys.argv[5]}/train_state/model.safetensors")))
torch.manual_seed(0)
for mod in m.mdn.modules():
    if hasattr(mod, "reset_parameters") and mod is not m.mdn:
        mod.reset_parameters()
st = [s for s in m.stages() if s.name in ("mdn-init", "mdn")]
m.stages = lambda: st
t0 = time.perf_counter()
Trainer(TrainConfig(seed=0, epochs=epochs, progress=False, device="cpu")).fit(m, ds.split("train"), out)
secs = time.perf_counter() - t0
m.eval()
test = ds.split("test")
b = test.batch(list(range(len(test))))
meta = load_meta(ds)(b["index"])
gen = torch.Generator().manual_seed(0)
with torch.no_grad():
    s = torch.cat([m.sample(b["grey"][j : j + 16], 5, generator=gen) for j in range(0, len(test), 16)]).float()
per = score(s, b["ab"], meta)
res = {k: (float(v.mean()), bootstrap(v)) for k, v in per.items()}
with torch.no_grad():
    log_pi, mu = m.mdn(m.backbone(b["grey"]))
    n, M, d = mu.shape
    comp = m.embedder.decode(mu.reshape(n * M, d), b["grey"].repeat_interleave(M, 0)).reshape(n, M, 2, 64, 64)
valid = np.mean([float(theme_match(comp[i], r).any(1).float().mean()) for i, r in enumerate(meta)])
print(
    json.dumps(
        {
            "mdn_epochs": epochs,
            "mdn_seconds": round(secs, 1),
            "valid_component_pairs": round(valid, 3),
            **{k: [round(v[0], 3), [round(v[1][0], 3), round(v[1][1], 3)]] for k, v in res.items()},
        }
    )
)
