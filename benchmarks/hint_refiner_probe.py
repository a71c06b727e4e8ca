"""Probe: can a small learned network spread hints better than Levin's propagation on the demo set?

    python benchmarks/hint_refiner_probe.py RUN PRIOR_KMEANS_RUN STEPS [CACHE.pt]

Not part of any method: a measurement. It takes a trained run's k = 5 colorizations of
every demo image (no hints), and trains a small U-Net (widths 16-32-48, about 0.2 M
parameters) that reads the grey image, the hint map, the hints spread by Levin's
propagation, one colorization and that colorization made to honour the hints by the
generic fallback, and corrects the latter. Training: the demo set's training split with
flips, a random number of simulated hints per image (geometric, mean 8, at least one),
batch 8, Adam 1e-3 with a cosine decay over STEPS steps, and a loss that rewards the best
of the k corrected colorizations (the minimum over k of the error at the pixels without a
hint, plus 0.1 times the mean over k), so the k stay different. Then it prints, on the
test split, with 0, 5 and 10 hints per image (seeded points), error-of-best, the mean
error over the k and the variance at the pixels without a hint, for the corrected
colorizations, the run's own with the fallback, ``prior-kmeans`` with the fallback and
``levin``, and paired bootstrap intervals (2,000 resamples over test images) of the
corrected minus each reference.
"""

import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import colorkit
from colorkit.core.hints import sample_with_hints, simulate_hints, training_hint_counts
from colorkit.core.propagate import propagate, propagate_residual

K = 5


def block(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, cin: int, w: tuple[int, int, int] = (16, 32, 48)) -> None:
        super().__init__()
        self.e1, self.e2, self.e3 = block(cin, w[0]), block(w[0], w[1]), block(w[1], w[2])
        self.d2, self.d1 = block(w[2] + w[1], w[1]), block(w[1] + w[0], w[0])
        self.out = nn.Conv2d(w[0], 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.e1(x)
        b = self.e2(F.avg_pool2d(a, 2))
        c = self.e3(F.avg_pool2d(b, 2))
        d = self.d2(torch.cat([F.interpolate(c, scale_factor=2, mode="bilinear"), b], 1))
        e = self.d1(torch.cat([F.interpolate(d, scale_factor=2, mode="bilinear"), a], 1))
        return self.out(e)


def corrected(net: nn.Module, g: torch.Tensor, hm: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``g (B,1,H,W)``, hint map ``(B,3,H,W)``, colorizations ``(B,K,2,H,W)`` -> corrected."""
    b, hw = g.shape[0], g.shape[-2:]
    lev = propagate(g, hm[:, :1], hm[:, 1:])
    fb = propagate_residual(s, g, hm)

    def rep(x: torch.Tensor) -> torch.Tensor:
        return x[:, None].expand(-1, K, *x.shape[1:]).reshape(b * K, *x.shape[1:])

    x = torch.cat([rep(g) - 0.5, rep(hm), rep(lev), s.reshape(b * K, 2, *hw), fb.reshape(b * K, 2, *hw)], 1)
    return fb + net(x).reshape(fb.shape)


def scores(smp: torch.Tensor, target: torch.Tensor, free: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per image: error-of-best, mean error over k, variance, at the pixels where ``free``."""
    err = (smp - target[:, None]).abs().mean(2)
    f = free[:, 0][:, None]
    per = (err * f).sum((2, 3)) / f.sum((2, 3))
    var = (smp.var(1, unbiased=False).mean(1) * free[:, 0]).sum((1, 2)) / free[:, 0].sum((1, 2))
    return per.min(1).values, per.mean(1), var


def boot(d: torch.Tensor, resamples: int = 2000) -> tuple[float, float, float]:
    idx = np.random.default_rng(0).integers(0, len(d), (resamples, len(d)))
    m = d.numpy()[idx].mean(1)
    return float(d.mean()), float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))


def main() -> None:
    torch.manual_seed(0)
    run, steps = sys.argv[1], int(sys.argv[3])
    cache = sys.argv[4] if len(sys.argv) > 4 else None
    ds = colorkit.prepare("demo", progress=False)

    def data(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        t = ds.split(split)
        b = t.batch(list(range(len(t))))
        return b["grey"], b["ab"]

    gtr, abtr = data("train")
    gte, abte = data("test")
    model, prior = colorkit.load(run), colorkit.load(sys.argv[2])

    @torch.no_grad()
    def samples(g: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.cat([model.method.sample(g[i:i + 32], K, generator=gen).float() for i in range(0, len(g), 32)])

    if cache and os.path.exists(cache):
        s_tr, s_te = torch.load(cache)
    else:
        s_tr, s_te = samples(gtr), samples(gte)
        if cache:
            torch.save((s_tr, s_te), cache)
    net = UNet(1 + 3 + 2 + 2 + 2)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    gen, bs, t0 = torch.Generator().manual_seed(1), 8, time.time()
    for it in range(steps):
        idx = torch.randint(0, len(gtr), (bs,), generator=gen)
        g, ab, s = gtr[idx], abtr[idx], s_tr[idx]
        fl = (torch.rand(bs, generator=gen) < 0.5)[:, None, None, None]
        g, ab = torch.where(fl, g.flip(-1), g), torch.where(fl, ab.flip(-1), ab)
        s = torch.where(fl[:, None], s.flip(-1), s)
        hm = simulate_hints(ab, training_hint_counts(bs, generator=gen, p_none=0.0), generator=gen)
        e = ((corrected(net, g, hm, s) - ab[:, None]).abs() * (1 - hm[:, None, :1])).mean((2, 3, 4))  # (B, K)
        loss = e.min(1).values.mean() + 0.1 * e.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for group in opt.param_groups:
            group["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * it / steps))
        if it % 100 == 0:
            print(it, float(loss.detach()), round(time.time() - t0, 1), flush=True)
    net.eval()
    for c in [0, 5, 10]:
        n = len(gte)
        hm = torch.cat([simulate_hints(abte[i:i + 1], c, generator=torch.Generator().manual_seed(7919 * c + i))
                        for i in range(n)])
        free = 1 - hm[:, :1]
        with torch.no_grad():
            res = {
                "refined": scores(corrected(net, gte, hm, s_te) if c else s_te, abte, free),
                "run+fallback": scores(propagate_residual(s_te, gte, hm) if c else s_te, abte, free),
                "prior-kmeans+fallback": scores(sample_with_hints(prior.method, gte, K, hints=hm if c else None,
                                                                  generator=torch.Generator().manual_seed(0)),
                                                abte, free),
                "levin": scores(propagate(gte, hm[:, :1], hm[:, 1:])[:, None].expand(-1, K, -1, -1, -1), abte, free),
            }
        print(f"--- {c} hints")
        for name, (eob, mean, var) in res.items():
            print(f"{name:22s} error-of-best {eob.mean():.4f}  mean {mean.mean():.4f}  variance {var.mean():.2e}")
        for ref in ["levin", "prior-kmeans+fallback"]:
            m, lo, hi = boot(res["refined"][0] - res[ref][0])
            print(f"  refined - {ref}: {m:+.4f} [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
