"""Mixture components with one learned axis: does a component that answers for two colours of
an object give both when sampled at either end of its axis?

    python axis_probe.py RUN SPEC EPOCHS OUTDIR [--vae VAE_OUT] [--min-axis 1.0] [--threads 1]

Retrains the MDN stage of a finished mdn-skip run (on its own VAE or a synth_vae_probe.py
--out's) with every component a Gaussian of covariance ``variance * I + u u^T``: the network
gives each component a mean ``mu`` and an axis ``u`` (twice the outputs of eq. 6's network),
and each training code trains the component of least negative log-likelihood. Two clusters
of codes of equal weight at ``mu +- a`` give ``|u|`` close to ``a``, so ``mu + u`` and
``mu - u`` land on both where ``mu`` lands between them. Colorizations: components in
descending order of weight, each giving ``mu + u`` and ``mu - u`` when ``|u|`` is at least
``--min-axis`` (code units) and ``mu`` otherwise, the first k of them (``axis``), or one end
of each component first and the other ends after (``axis-one-end-first``). Scored like the bench
(mode recall, precision, coherence, error-of-best, per image for paired comparisons), beside
the means of the same mixture in order of weight (``topk``).
"""

import json
import math
import sys

import torch
from colorkit_paper.hint_inputs import MDN_HINT_CHANNELS
from colorkit_paper.mdn import MixtureDensityNetwork

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from _probe import arguments, load_method, step_inputs, train_stages
from synth_diagnose import split_batch
from synth_modes import bootstrap, score

from colorkit.core.cluster import kmeans

ap = arguments(__doc__.splitlines()[0])
ap.add_argument("--min-axis", type=float, default=1.0)
ap.add_argument("--k", type=int, default=5)
a = ap.parse_args()
torch.set_num_threads(a.threads)
m = load_method(a.run, a.vae)
c = m.config
d = m.embedder.latent_dim
M = c.components
torch.manual_seed(0)
feat = m._feature_shape()
m.mdn = MixtureDensityNetwork(feat[0], feat[1:], 2 * d, M, c.mdn_widths, c.mdn_fc, c.mdn_dropout,
                              hint_channels=MDN_HINT_CHANNELS if c.hints else 0)
codes = m._kept_codes().float()
res = kmeans(codes[None], M, generator=torch.Generator().manual_seed(0))
sizes = torch.bincount(res.labels[0], minlength=M).float().clamp_min(1)
m.mdn.init_output(torch.cat([res.centers[0], torch.zeros(M, d)], 1), sizes.log(), weight_scale=0.1)
var = c.variance


def split(out):
    return out[..., :d], out[..., d:]


def nll(log_pi, mu, u, z):
    """-log pi_m - log N(z; mu_m, var I + u_m u_m^T) up to a constant, ``(B, M)``."""
    r = z[:, None] - mu
    uu = u.pow(2).sum(-1)
    maha = (r.pow(2).sum(-1) - (r * u).sum(-1).pow(2) / (var + uu)) / var
    return -log_pi + 0.5 * (maha + torch.log1p(uu / var))


def step(batch, ctx):
    _, _, feats, z, hints = step_inputs(m, batch, ctx)
    log_pi, out = m.mdn(feats, hints)
    mu, u = split(out)
    per = nll(log_pi, mu, u, z)
    loss = per.gather(1, per.detach().argmin(1, keepdim=True))[:, 0].mean()
    ctx.optimize("mdn", loss)
    return {"loss": loss.detach()}


m._mdn_step = step
ds, b, meta = split_batch(a.spec)
secs = train_stages(m, ("mdn",), ds.split("train"), a.epochs, a.out)
m.eval()
with torch.no_grad():
    log_pi, out = m.mdn(m.backbone(b["grey"]))
    mu, u = split(out)
    order = torch.sort(log_pi, dim=1, descending=True, stable=True).indices
    axis_codes, spread_codes, mean_codes, long_axes = [], [], [], 0
    for i in range(mu.shape[0]):
        cand, first, second = [], [], []
        for j in order[i].tolist():
            if u[i, j].norm() >= a.min_axis:
                cand += [mu[i, j] + u[i, j], mu[i, j] - u[i, j]]
                first.append(mu[i, j] + u[i, j])
                second.append(mu[i, j] - u[i, j])
                long_axes += 1
            else:
                cand.append(mu[i, j])
                first.append(mu[i, j])
        axis_codes.append(torch.stack(cand[: a.k]))
        spread_codes.append(torch.stack((first + second)[: a.k]))
        mean_codes.append(mu[i, order[i, : a.k]])
    g = b["grey"].repeat_interleave(a.k, 0)
    result = {"epochs": a.epochs, "mdn_seconds": round(secs, 1), "min_axis": a.min_axis,
              "axis_norm_median": round(float(u.norm(dim=-1).median()), 3),
              "components_with_long_axis": round(long_axes / (mu.shape[0] * M), 3)}
    for name, zs in (("axis", axis_codes), ("axis-one-end-first", spread_codes), ("topk", mean_codes)):
        fields = m.embedder.decode(torch.cat(zs), g).reshape(len(zs), a.k, *b["ab"].shape[1:])
        per = score(fields.float(), b["ab"], meta)
        result[name] = {k: [round(float(v.mean()), 3), [round(x, 3) for x in bootstrap(v)]] for k, v in per.items()}
        result[name]["per_image"] = {k: [round(float(x), 5) for x in v] for k, v in per.items()}
print(json.dumps(result))
print(f"axis lengths: median {result['axis_norm_median']}; sqrt(variance) {math.sqrt(var):.3f}", file=sys.stderr)
