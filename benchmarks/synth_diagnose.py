"""Why does an ``mdn`` run cover the synth themes or not? Diagnostics on the test split.

    python benchmarks/synth_diagnose.py RUN_DIR [--dataset SPEC] [--split test|train] [--max-images N]

Prints, over the test images: (1) the VAE alone: does decoding the posterior mean of the
true colour field reproduce the drawn theme (the embedding's ceiling), and does the
component nearest that code, or any component, reproduce it? (2) the mixture:
mean number of components with weight > 0.05, weight entropy, and per component the
fraction of images where it is the most probable; (3) what each component's mean decodes
to: the fraction of (image, component) pairs that reproduce some possible theme, and how
many distinct themes the top-k and all components cover (top-k near-duplicates show as
covered < valid).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from colorkit_synth.modes import MODE_TOL, region_summaries

from colorkit.data import prepare
from colorkit.data.meta import load_meta
from colorkit.inference import load
from colorkit.train.runs import read_run


def theme_match(samples: torch.Tensor, rec: dict) -> torch.Tensor:
    """(k, G) bool: sample j reproduces possible theme g."""
    means, _, regions = region_summaries(samples, rec)
    colours = torch.tensor([g["ab"] for g in rec["themes"]], dtype=torch.float32)[:, regions]  # (G, R', 2)
    return ((means[:, None] - colours[None]).norm(dim=-1) <= MODE_TOL).all(-1)


def split_batch(spec: str, split: str = "test", size: int | None = None, max_images: int | None = None):
    """``(prepared data set, batch of the split's first images, their metadata records)``."""
    ds = prepare(spec, progress=False) if size is None else prepare(spec, size=size, progress=False)
    part = ds.split(split)
    b = part.batch(list(range(min(max_images or len(part), len(part)))))
    return ds, b, load_meta(ds)(b["index"])


def component_fields(m, grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each mixture component's mean decoded on each grey image:
    ``(log_pi (n, M), mu (n, M, d), fields (n, M, 2, H, W))``."""
    with torch.no_grad():
        log_pi, mu = m.mdn(m.backbone(grey))
        n, M, d = mu.shape
        gk = grey.repeat_interleave(M, 0) if m.embedder.uses_grey else None
        return log_pi, mu, m.embedder.decode(mu.reshape(n * M, d), gk).reshape(n, M, 2, *grey.shape[-2:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--split", default="test", choices=["test", "train"], help="the split to diagnose")
    ap.add_argument("--max-images", type=int, default=None, help="at most this many images of the split")
    a = ap.parse_args()
    info = read_run(a.run)
    _, b, meta = split_batch(a.dataset or info["dataset"]["source"], a.split, info["dataset"]["size"], a.max_images)
    m = load(a.run).method
    with torch.no_grad():
        post = m.embedder.encode(b["ab"], b["grey"] if m.embedder.uses_grey else None)
        rec_ab = m.embedder.decode(post.mu, b["grey"] if m.embedder.uses_grey else None)
    log_pi, mu, comp = component_fields(m, b["grey"])
    n, M = log_pi.shape
    nearest = (mu - post.mu[:, None]).pow(2).sum(-1).argmin(1)  # (n,)
    matches = [theme_match(comp[i], rec) for i, rec in enumerate(meta)]  # (M, G) each
    vae_ok, near_ok, any_ok = [], [], []
    for i, rec in enumerate(meta):
        drawn = next(j for j, g in enumerate(rec["themes"]) if rec["theme"] in g["ids"])
        vae_ok.append(bool(theme_match(rec_ab[i : i + 1], rec)[0, drawn]))
        drawn_by = matches[i][:, drawn]  # (M,)
        near_ok.append(bool(drawn_by[nearest[i]]))
        any_ok.append(bool(drawn_by.any()))
    pi = log_pi.exp()
    print(f"VAE reconstruction (posterior mean) reproduces the drawn theme: {np.mean(vae_ok):.3f}")
    print(f"the component nearest the image's code reproduces the drawn theme: {np.mean(near_ok):.3f}; "
          f"some component does: {np.mean(any_ok):.3f}")
    print(f"components with pi > 0.05: {(pi > 0.05).sum(1).float().mean():.2f} of {M}; "
          f"weight entropy {(-(pi * log_pi).sum(1)).mean():.3f} nats (uniform: {np.log(M):.3f})")
    win = torch.bincount(pi.argmax(1), minlength=M).float() / n
    print("winner fraction per component:", " ".join(f"{x:.2f}" for x in win.tolist()))
    print("mean pi per component:       ", " ".join(f"{x:.2f}" for x in pi.mean(0).tolist()))
    valid_c, cov_top, cov_all, dup_top, groups = [], [], [], [], []
    order = torch.sort(log_pi, dim=1, descending=True, stable=True).indices
    per_comp_valid = torch.zeros(M)
    for i, rec in enumerate(meta):
        mt = matches[i]  # (M, G)
        per_comp_valid += mt.any(1).float()
        valid_c.append(float(mt.any(1).float().mean()))
        top = mt[order[i, : a.k]]
        cov_top.append(int(top.any(0).sum()))
        cov_all.append(int(mt.any(0).sum()))
        dup_top.append(int(top.any(1).sum()) - int(top.any(0).sum()))
        groups.append(len(rec["themes"]))
    print("per component: fraction of images its mean reproduces a theme:",
          " ".join(f"{x:.2f}" for x in (per_comp_valid / n).tolist()))
    print(f"(image, component) pairs reproducing a theme: {np.mean(valid_c):.3f}")
    print(
        f"themes covered by top-{a.k}: {np.mean(cov_top):.2f}; by all {M} components: {np.mean(cov_all):.2f}; "
        f"possible themes per image {np.mean(groups):.2f}; valid-but-duplicate top-{a.k} outputs {np.mean(dup_top):.2f}"
    )


if __name__ == "__main__":
    main()
