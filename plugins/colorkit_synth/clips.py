"""Synthetic clips of the ``synth`` world, and what a colorized clip should show.

A clip is a short shot of one synth scene: the world of a spec (its palettes and themes),
1 to ``objects`` objects, and **one theme for the whole clip**. The objects move (each at
its own constant velocity of up to :data:`MAX_SPEED` pixels per frame, bouncing off the
frame's edges, drawn in order where they overlap) and the camera pans (the background's
wave and grain move by the pan, up to :data:`MAX_PAN` pixels per frame). Every frame goes
through 8-bit sRGB like a photo of the data set, so the grey input is what a model trained
on ``synth`` expects. A clip's *possible themes* are those of its regions, grouped as for
an image (:func:`colorkit_synth.world.render`).

Metrics of k versions ``(T, k, 2, H, W)`` of a clip (:func:`clip_scores`):

* **theme consistency**: per version, the fraction of frames whose nearest possible theme
  (every region's mean ab compared with the theme's colour; the theme with the smallest
  largest distance) is the one of the version's first frame; averaged over versions;
* **flicker**: the mean distance ``|ab_t - ab_{t-1}|`` (ab / 128, Euclidean in the ab
  plane) between consecutive frames, over versions and the pixels whose grey changed by at
  most :data:`STILL_TOL` (L / 100) between the two frames;
* **clip recall**: the number of the clip's possible themes that some version reproduces
  (every region within ``MODE_TOL``, as the image metrics) in at least half of the frames,
  divided by min(k, number of possible themes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .modes import MODE_TOL, region_weights
from .world import (
    BACKGROUND_L,
    BACKGROUND_WAVE,
    CLASS_L,
    NOISE_AMPLITUDE,
    SHAPES,
    TEXTURE_AMPLITUDE,
    TEXTURES,
    World,
    build_world,
    parse_spec,
    place_object,
    shape_mask,
    texture,
)

MAX_SPEED = 1.5
"""Largest object speed, pixels per frame at size 64 (scaled with the size)."""
MAX_PAN = 1.0
"""Largest camera pan, pixels per frame at size 64."""
STILL_TOL = 0.02
"""Pixels whose grey changed by at most this (L / 100, i.e. 2 Lab L units) count as still for flicker."""


@dataclass
class Clip:
    """``grey`` ``(T, 1, S, S)`` L / 100 and ``ab`` ``(T, 2, S, S)`` ab / 128 (the truth),
    ``labels`` ``(T, S, S)`` (0 background, i object i), ``themes``: the clip's possible
    themes (most probable first, each with ``p``, ``ids`` and ``ab`` per region), ``theme``
    the drawn one."""

    grey: Tensor
    ab: Tensor
    labels: Tensor
    themes: list[dict[str, Any]]
    theme: int
    regions: list[str]


def render_clip(world: World, rng: np.random.Generator, frames: int, size: int | None = None) -> Clip:
    """One clip of ``frames`` frames (see the module docstring)."""
    from colorkit.core.color import lab_to_rgb, rgb_to_lab

    spec = world.spec
    S = size or spec.size
    scale = S / 64.0
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64) + 0.5
    theta, phase = rng.uniform(0, 2 * math.pi, 2)
    pan = rng.uniform(-MAX_PAN, MAX_PAN, 2) * scale
    margin = int(math.ceil(MAX_PAN * scale * frames)) + 1
    grain = rng.uniform(-NOISE_AMPLITUDE, NOISE_AMPLITUDE, (S + 2 * margin, S + 2 * margin))
    objects: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(1, spec.objects + 1))):
        placed = place_object(rng, spec.classes, objects, S, scale)
        if placed is None:
            continue
        c, r, cx, cy = placed
        v = rng.uniform(-MAX_SPEED, MAX_SPEED, 2) * scale
        objects.append({"class": c, "r": r, "cx": cx, "cy": cy, "vx": float(v[0]), "vy": float(v[1])})
    t_id = int(rng.choice(len(world.probs), p=world.probs))
    region_class = [-1] + [o["class"] for o in objects]
    L_all = np.zeros((frames, S, S))
    ab_all = np.zeros((frames, S, S, 2))
    labels = np.zeros((frames, S, S), dtype=np.uint8)
    for t in range(frames):
        ox, oy = pan * t  # camera offset: the background moves the other way
        L = BACKGROUND_L + BACKGROUND_WAVE * np.sin(
            2 * math.pi * ((xx + ox) * math.cos(theta) + (yy + oy) * math.sin(theta)) / (0.8 * S) + phase)
        gy, gx = int(round(margin + oy)), int(round(margin + ox))
        L = L + grain[gy:gy + S, gx:gx + S]
        lab_t = labels[t]
        for i, o in enumerate(objects):
            cx, cy = _bounce(o["cx"] + o["vx"] * t, o["r"], S), _bounce(o["cy"] + o["vy"] * t, o["r"], S)
            mask = shape_mask(SHAPES[o["class"]], xx - cx, yy - cy, o["r"])
            period = max(2.0, 5.0 * scale)
            tex = texture(TEXTURES[o["class"]], xx - cx, yy - cy, period)
            L[mask] = CLASS_L[o["class"]] + TEXTURE_AMPLITUDE * tex[mask] + grain[gy:gy + S, gx:gx + S][mask]
            lab_t[mask] = i + 1
        for lab_value, c in enumerate(region_class):
            ab_all[t][lab_t == lab_value] = world.palette[c + 1, int(world.themes[t_id, c + 1])]
        L_all[t] = L
    lab = torch.from_numpy(np.concatenate([L_all[..., None], ab_all * 128.0], -1).astype(np.float32))
    rgb = lab_to_rgb(lab.permute(0, 3, 1, 2), clip=True)
    rgb8 = (rgb * 255.0).round() / 255.0  # through 8-bit, as a decoded frame
    back = rgb_to_lab(rgb8)
    groups: dict[tuple[int, ...], list[int]] = {}
    for th in range(len(world.probs)):
        groups.setdefault(tuple(int(world.themes[th, c + 1]) for c in region_class), []).append(th)
    themes = [{"p": float(world.probs[ids].sum()), "ids": ids,
               "ab": [[float(v) for v in world.palette[c + 1, key[i]]] for i, c in enumerate(region_class)]}
              for key, ids in groups.items()]
    themes.sort(key=lambda g: (-g["p"], g["ids"][0]))
    return Clip(back[:, :1] / 100.0, back[:, 1:] / 128.0, torch.from_numpy(labels), themes, t_id,
                ["background"] + [SHAPES[o["class"]] for o in objects])


def _bounce(x: float, r: float, size: int) -> float:
    """Position ``x`` folded back into ``[r, size - r]`` (a bounce off each edge)."""
    lo, hi = r + 1.0, size - r - 1.0
    span = hi - lo
    if span <= 0:
        return size / 2
    u = (x - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


def make_clips(spec: str | None, n: int, frames: int, seed: int = 0) -> list[Clip]:
    """``n`` clips of the world of ``spec`` (a synth spec string), drawn with ``seed``."""
    world = build_world(parse_spec(spec))
    rng = np.random.default_rng([world.spec.seed, 2, seed])
    return [render_clip(world, rng, frames) for _ in range(n)]


def _region_means(ab: Tensor, labels: Tensor, n_regions: int) -> tuple[Tensor, Tensor]:
    """Per frame and version, each region's mean ab: ``(T, k, R, 2)`` and ``(T, R)`` present."""
    t_n, k, _, h, w = ab.shape
    means = torch.zeros(t_n, k, n_regions, 2)
    present = torch.zeros(t_n, n_regions, dtype=torch.bool)
    for t in range(t_n):
        wts, pres = region_weights(labels[t], n_regions, h, w)  # (R, h, w)
        cnt = wts.flatten(1).sum(1).clamp_min(1e-9)
        means[t] = torch.einsum("kchw,rhw->krc", ab[t].float(), wts) / cnt[None, :, None]
        present[t] = pres
    return means, present


def clip_scores(versions: Tensor, clip: Clip) -> dict[str, float]:
    """``theme_consistency``, ``flicker`` and ``clip_recall`` of the k versions
    ``(T, k, 2, H, W)`` of ``clip`` (see the module docstring)."""
    t_n, k = versions.shape[:2]
    colours = torch.tensor([g["ab"] for g in clip.themes], dtype=torch.float32)  # (G, R, 2)
    n_regions = colours.shape[1]
    means, present = _region_means(versions.float().cpu(), clip.labels, n_regions)
    dist = (means[:, :, None] - colours[None, None]).norm(dim=-1)  # (T, k, G, R)
    dist = torch.where(present[:, None, None, :], dist, torch.zeros(()))
    worst = dist.max(-1).values  # (T, k, G): the largest region distance
    nearest = worst.argmin(-1)  # (T, k)
    consistency = float((nearest == nearest[:1]).float().mean())
    match = worst <= MODE_TOL  # (T, k, G)
    covered = (match.float().mean(0) >= 0.5).any(0)  # (G,)
    recall = float(covered.sum()) / min(k, colours.shape[0])
    if t_n > 1:
        still = (clip.grey[1:] - clip.grey[:-1]).abs()[:, 0] <= STILL_TOL  # (T-1, H, W)
        step = (versions[1:] - versions[:-1]).float().norm(dim=2)  # (T-1, k, H, W)
        flicker = float((step * still[:, None]).sum() / (still.sum() * k).clamp_min(1))
    else:
        flicker = 0.0
    return {"theme_consistency": consistency, "flicker": flicker, "clip_recall": recall}
