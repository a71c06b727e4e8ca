"""Retrain only the MDN stage (mdn-init + mdn, MDN weights re-initialised) of a finished mdn-skip run on
its own VAE (or a synth_vae_probe.py --out's), with other MDN epochs and config fields; score mode
recall/precision/coherence/error-of-best on the test split for each sampling mode, and the paired
error-of-best difference to prior-kmeans (a run of the same data set).

    python mdn_probe.py RUN SPEC EPOCHS OUTDIR [--vae VAE_OUT] [--option components=16] [--modes topk,distinct]
        [--prior-kmeans RUN] [--threads 1]
"""

import json
import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from _probe import arguments, load_method, step_inputs, train_stages
from synth_diagnose import component_fields, split_batch, theme_match
from synth_modes import bootstrap, score

from colorkit.data import prepare
from colorkit.inference import load
from colorkit.metrics.functional import error_of_best_per_image

ap = arguments(__doc__.splitlines()[0])
ap.add_argument("vae_pos", nargs="?", default=None, help="(old form of --vae)")
ap.add_argument("--option", action="append", default=[], help="MDN config field=JSON value (components, mdn_fc, ...)")
ap.add_argument("--modes", default="topk", help="sampling modes to score, comma-separated")
ap.add_argument("--prior-kmeans", default=None, help="a prior-kmeans run: paired error-of-best difference")
ap.add_argument("--assign", default="code", choices=("code", "decoded", "decoded-loss", "whitened"),
                help="the component each training code trains: the nearest mean (eq. 6), or the one whose "
                     "decoded colour field is nearest the image's (plain squared error, or the VAE's own "
                     "decoder loss), or the nearest in code units divided by the kept codes' spread")
ap.add_argument("--robust", type=float, default=0.0,
                help="Cauchy scale s in code units: the winner's squared distance d2 enters as s^2 log(1 + d2 / s^2) "
                     "(0: plain d2, eq. 6)")
a = ap.parse_args()
torch.set_num_threads(a.threads)
ds = prepare(a.spec, progress=False)
m = load_method(a.run, a.vae or a.vae_pos)
opts = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.option)}
torch.manual_seed(0)
if opts:
    from colorkit_paper.hint_inputs import MDN_HINT_CHANNELS
    from colorkit_paper.mdn import MixtureDensityNetwork

    m.config = m.config.model_copy(update=opts)
    c = m.config
    feat = m._feature_shape()
    m.mdn = MixtureDensityNetwork(feat[0], feat[1:], m.embedder.latent_dim, c.components, c.mdn_widths, c.mdn_fc,
                                  c.mdn_dropout, hint_channels=MDN_HINT_CHANNELS if c.hints else 0)
else:
    for mod in m.mdn.modules():
        if hasattr(mod, "reset_parameters") and mod is not m.mdn:
            mod.reset_parameters()
if a.assign != "code" or a.robust > 0:
    from colorkit_paper.mdn import squared_distances

    code_scale = m._kept_codes().float().std(0).clamp_min(1e-3) if a.assign == "whitened" else None

    def probe_step(batch, ctx):
        ab, grey, feats, z, hints = step_inputs(m, batch, ctx)
        log_pi, mu = m.mdn(feats, hints)
        with torch.no_grad():
            nb, nm, nd = mu.shape
            if a.assign == "code":
                win = squared_distances(mu, z).argmin(1, keepdim=True)
            elif a.assign == "whitened":
                win = ((mu - z[:, None]) / code_scale).pow(2).sum(-1).argmin(1, keepdim=True)
            else:
                dec = m.embedder.decode(mu.reshape(nb * nm, nd), grey.repeat_interleave(nm, 0))
                if a.assign == "decoded":
                    err = (dec.reshape(nb, nm, *ab.shape[1:]) - ab[:, None]).pow(2).mean((2, 3, 4))
                else:
                    err = m.decoder_loss(dec, ab.repeat_interleave(nm, 0), m.stats).reshape(nb, nm)
                win = err.argmin(1, keepdim=True)
        d2 = squared_distances(mu, z).gather(1, win)[:, 0]
        if a.robust > 0:
            d2 = a.robust**2 * torch.log1p(d2 / a.robust**2)
        loss = -log_pi.gather(1, win)[:, 0] + d2 / (2 * m.config.variance)
        ctx.optimize("mdn", loss.mean())
        return {"loss": loss.mean().detach()}

    m._mdn_step = probe_step
secs = train_stages(m, ("mdn-init", "mdn"), ds.split("train"), a.epochs, a.out)
m.eval()
_, b, meta = split_batch(a.spec)
pk = None
if a.prior_kmeans:
    pm = load(a.prior_kmeans, device="cpu").method
    pk = error_of_best_per_image(pm.sample(b["grey"], 5, generator=torch.Generator().manual_seed(0)).float(),
                                 b["ab"]).double().numpy()
out = {"assign": a.assign, "robust": a.robust, "options": opts, "mdn_epochs": a.epochs, "mdn_seconds": round(secs, 1)}
for mode in a.modes.split(","):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        s = torch.cat([m.sample(b["grey"][j : j + 16], 5, mode=mode, generator=gen)
                       for j in range(0, len(meta), 16)]).float()
    per = score(s, b["ab"], meta)
    res = {k: [round(float(v.mean()), 3), [round(x, 3) for x in bootstrap(v)]] for k, v in per.items()}
    if pk is not None:
        d = per["error_of_best"] - pk
        res["eob_minus_prior_kmeans"] = [round(float(d.mean()), 4), [round(x, 4) for x in bootstrap(d)]]
    res["per_image"] = {k: [round(float(x), 5) for x in v] for k, v in per.items()}
    out[mode] = res


def valid_pairs(batch, records):
    """The fraction of (image, component) pairs whose decoded mean reproduces a possible theme."""
    _, _, comp = component_fields(m, batch["grey"])
    per = [float(theme_match(comp[i], r).any(1).float().mean()) for i, r in enumerate(records)]
    return round(float(np.mean(per)), 3)


out["valid_component_pairs"] = valid_pairs(b, meta)
out["valid_component_pairs_train60"] = valid_pairs(*split_batch(a.spec, "train", max_images=60)[1:])
print(json.dumps(out))
