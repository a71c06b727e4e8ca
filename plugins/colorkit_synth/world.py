"""The ``synth`` data set: a synthetic world whose colour distribution is known exactly.

Every image shows a textured background and a few objects (shapes). An object's *class*
is visible in grey (its shape, lightness and grey texture); its colour is one of the
class's ``modes`` colour *modes*, all of the same lightness, so the grey image says nothing
about which mode was drawn. A per-image *theme* picks the mode of the background and of
every class at once (theme 1: discs red and background blue; theme 2: discs teal and
background orange; ...), so only a joint, spatially coherent colouring is valid.

A spec string chooses the world::

    synth                                   # all defaults
    synth:seed=3,classes=5,modes=3,n=2000   # any subset of the parameters, any order

===========  =======  ====================================================================
parameter    default  meaning
===========  =======  ====================================================================
``seed``     0        seeds the world (palettes, themes) and the images
``classes``  3        object classes (1-8): disc, square, triangle, ring, diamond, cross,
                      ellipse, hexagon, in that order
``modes``    4        colour modes per class and for the background (2-5)
``themes``   4        themes (1-32), each a choice of one mode per class and background
``n``        600      images (20-100000)
``size``     64       image side in pixels (16-256)
``objects``  2        at most this many objects per image (1-4); each image has 1 to
                      ``objects``, placed without overlap (fewer when the next does not fit)
``skew``     0.5      theme probabilities are proportional to ``1 / (t + 1) ** skew``
                      (0: uniform)
===========  =======  ====================================================================

Themes: for ``t < modes`` theme ``t`` gives region ``r`` (background or class) the mode
``(t + shift_r) mod modes``, so the first ``modes`` themes differ in every region; further
themes are random distinct combinations. On one image only the background and the classes
present are visible, so themes that agree on those regions look the same there: the
image's *possible themes* are these groups, with their summed probability.

Colours: every region's modes lie on a circle of equal chroma in the Lab ab plane (hues
evenly spaced), at the largest chroma up to 40 Lab units that keeps every mode inside
the sRGB gamut at every lightness the region's texture reaches; modes of one region are at
least :data:`MIN_SEPARATION` apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from colorkit.core import fs
from colorkit.core.registry import ColorkitError
from colorkit.data.meta import META_ARRAYS, META_FORMAT, META_JSON

GENERATOR_VERSION = 3
FIXED_MTIME_NS = 1_000_000_000 * 10**9  # every PNG gets this mtime: same spec -> same data set hash
MIN_SEPARATION = 0.25
"""Smallest distance between two modes of one region, ab / 128 (32 Lab units)."""
MAX_CHROMA = 40.0  # Lab units
SHAPES = ("disc", "square", "triangle", "ring", "diamond", "cross", "ellipse", "hexagon")
TEXTURES = ("plain", "hstripes", "checker", "vstripes", "dots", "plain", "hstripes", "checker")
BACKGROUND_L = 62.0
CLASS_L = (50.0, 73.0, 53.0, 70.0, 51.0, 74.0, 54.0, 71.0)
TEXTURE_AMPLITUDE = 4.0  # Lab L units
NOISE_AMPLITUDE = 1.0
BACKGROUND_WAVE = 4.0
R_MIN, R_MAX = 12.0, 18.0  # object size (circumradius) in pixels at size 64


@dataclass(frozen=True)
class SynthSpec:
    """A normalised spec (see the module docstring for the parameters)."""

    seed: int = 0
    classes: int = 3
    modes: int = 4
    themes: int = 4
    n: int = 600
    size: int = 64
    objects: int = 2
    skew: float = 0.5

    def string(self) -> str:
        """The normalised spec: every parameter, in a fixed order."""
        return "synth:" + ",".join(f"{k}={_fmt(v)}" for k, v in asdict(self).items())


_LIMITS: dict[str, tuple[type, float, float]] = {
    "seed": (int, 0, 2**31 - 1), "classes": (int, 1, 8), "modes": (int, 2, 5), "themes": (int, 1, 32),
    "n": (int, 20, 100_000), "size": (int, 16, 256), "objects": (int, 1, 4), "skew": (float, 0.0, 4.0),
}


def _fmt(v: Any) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


def params_help() -> str:
    d = SynthSpec()
    return ", ".join(f"{k} ({t.__name__} {_fmt(t(lo))}-{_fmt(t(hi))}, default {_fmt(getattr(d, k))})"
                     for k, (t, lo, hi) in _LIMITS.items())


def parse_spec(text: str | None) -> SynthSpec:
    """``"seed=3,classes=5"`` (or ``"synth:seed=3,..."``, ``""``, ``None``) -> :class:`SynthSpec`.
    A bad spec raises a one-line :class:`ColorkitError` listing the parameters."""
    raw = (text or "").strip()
    if raw.startswith("synth:"):
        raw = raw[len("synth:"):]
    if raw == "synth":
        raw = ""
    values: dict[str, Any] = {}

    def bad(problem: str) -> ColorkitError:
        return ColorkitError(f"bad synth spec {text!r}: {problem}; expected synth[:key=value,...] with "
                             f"{params_help()}")

    for part in filter(None, (p.strip() for p in raw.split(","))):
        if "=" not in part:
            raise bad(f"{part!r} is not key=value")
        key, val = (s.strip() for s in part.split("=", 1))
        if key not in _LIMITS:
            raise bad(f"unknown parameter {key!r}")
        if key in values:
            raise bad(f"{key!r} given twice")
        typ, lo, hi = _LIMITS[key]
        try:
            num = typ(val)
            if typ is int and str(num) != val.lstrip("+"):
                raise ValueError
        except ValueError:
            raise bad(f"{key}={val!r} is not {'an integer' if typ is int else 'a number'}") from None
        if not (lo <= num <= hi) or (isinstance(num, float) and not math.isfinite(num)):
            raise bad(f"{key}={val} is outside {_fmt(typ(lo))}-{_fmt(typ(hi))}")
        values[key] = num
    spec = SynthSpec(**values)
    if spec.classes > len(SHAPES):  # pragma: no cover - guarded by the limits
        raise bad("too many classes")
    return spec


# ----------------------------------------------------------------------------- the world
@dataclass
class World:
    """Palettes and themes of a spec. Region 0 is the background, region ``1 + c`` class ``c``.

    ``lightness[r]``: base L; ``palette[r, m]``: ab of mode m in ab / 128; ``themes[t, r]``:
    the mode theme t gives region r; ``probs[t]``: the theme's probability."""

    spec: SynthSpec
    lightness: np.ndarray  # (R,)
    palette: np.ndarray  # (R, M, 2) ab / 128
    themes: np.ndarray  # (T, R) int
    probs: np.ndarray  # (T,)

    def as_json(self) -> dict[str, Any]:
        return {
            "regions": ["background"] + [SHAPES[c] for c in range(self.spec.classes)],
            "lightness": self.lightness.tolist(),
            "palette_ab": np.round(self.palette, 6).tolist(),
            "themes": self.themes.tolist(),
            "theme_probs": np.round(self.probs, 9).tolist(),
        }


def _lab_to_rgb_np(lab: np.ndarray) -> np.ndarray:
    """Lab (..., 3) -> sRGB (..., 3) in [0, 1], unclipped (for gamut tests)."""
    import torch

    from colorkit.core.color import lab_to_rgb

    t = torch.from_numpy(np.ascontiguousarray(lab, dtype=np.float32)).reshape(-1, 3).T[None, :, :, None]
    return lab_to_rgb(t, clip=False)[0, :, :, 0].T.reshape(lab.shape).numpy()


def _region_lightness_range(base: float) -> tuple[float, float]:
    a = TEXTURE_AMPLITUDE + NOISE_AMPLITUDE + (BACKGROUND_WAVE if base == BACKGROUND_L else 0.0)
    return base - a, base + a


def _chroma_for(base: float, hues: np.ndarray) -> float:
    """Largest chroma (Lab units, <= MAX_CHROMA) keeping every hue in gamut over the
    region's lightness range (1% margin)."""
    lo_l, hi_l = _region_lightness_range(base)
    ls = np.linspace(lo_l, hi_l, 5)
    lo, hi = 0.0, MAX_CHROMA
    for _ in range(20):
        c = (lo + hi) / 2
        lab = np.stack(np.broadcast_arrays(ls[:, None], c * np.cos(hues)[None], c * np.sin(hues)[None]), -1)
        rgb = _lab_to_rgb_np(lab)
        if rgb.min() >= 0.01 and rgb.max() <= 0.99:
            lo = c
        else:
            hi = c
    return lo


def build_world(spec: SynthSpec) -> World:
    rng = np.random.default_rng([spec.seed, 0])
    R, M, T = spec.classes + 1, spec.modes, spec.themes
    lightness = np.array([BACKGROUND_L] + [CLASS_L[c] for c in range(spec.classes)])
    palette = np.zeros((R, M, 2))
    need = MIN_SEPARATION * 128 / (2 * math.sin(math.pi / M))  # chroma giving MIN_SEPARATION
    for r in range(R):
        # Candidate hue offsets: the modes' hues are offset + 2 pi m / M. Keep those whose
        # chroma reaches MIN_SEPARATION, and among them the one whose modes lie farthest from
        # every mode of the regions already placed (so no two regions share a colour, which
        # a colourfulness-rebalanced loss would weight like the commoner region's).
        cands = []
        for off in np.linspace(0, 2 * math.pi / M, 24, endpoint=False) + rng.uniform(0, 2 * math.pi / M / 24):
            hues = off + 2 * math.pi * np.arange(M) / M
            c = _chroma_for(lightness[r], hues)
            if c >= need:
                ab = c * np.stack([np.cos(hues), np.sin(hues)], -1) / 128
                gap = (np.linalg.norm(ab[:, None] - palette[:r].reshape(1, -1, 2), axis=-1).min()
                       if r else 0.0)
                cands.append((round(gap, 4), c, off))
        if not cands:
            raise ColorkitError(f"synth spec with modes={M}: the modes cannot be {MIN_SEPARATION} ab/128 apart "
                                f"inside the sRGB gamut; use modes of at most 5")
        _, c, off = max(cands)
        hues = off + 2 * math.pi * rng.permutation(M) / M
        palette[r, :, 0] = c * np.cos(hues) / 128
        palette[r, :, 1] = c * np.sin(hues) / 128
    shifts = rng.integers(0, M, R)
    rows = [tuple(int((t + shifts[r]) % M) for r in range(R)) for t in range(min(T, M))]
    seen = set(rows)
    if T > M ** R:
        raise ColorkitError(f"synth spec asks for themes={T} but classes={spec.classes} and modes={M} allow only "
                            f"{M ** R} distinct themes")
    while len(rows) < T:
        row = tuple(int(x) for x in rng.integers(0, M, R))
        if row not in seen:
            seen.add(row)
            rows.append(row)
    probs = 1.0 / (np.arange(T) + 1.0) ** spec.skew
    return World(spec, lightness, palette, np.array(rows, dtype=np.int64).reshape(T, R), probs / probs.sum())


# ----------------------------------------------------------------------------- rendering
def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    ax, ay = np.abs(dx), np.abs(dy)
    d = np.hypot(dx, dy)
    if shape == "disc":
        return d <= r
    if shape == "square":
        return np.maximum(ax, ay) <= 0.85 * r
    if shape == "triangle":  # pointing up: apex (0, -r), base at y = r/2
        return (dy <= 0.5 * r) & (1.732 * ax <= (dy + r))
    if shape == "ring":
        return (d <= r) & (d >= 0.5 * r)
    if shape == "diamond":
        return ax + ay <= 1.1 * r
    if shape == "cross":
        return ((ax <= 0.33 * r) & (ay <= r)) | ((ay <= 0.33 * r) & (ax <= r))
    if shape == "ellipse":
        return (dx / r) ** 2 + (dy / (0.55 * r)) ** 2 <= 1
    if shape == "hexagon":
        return np.maximum(ax * 0.866 + ay * 0.5, ay) <= 0.9 * r
    raise AssertionError(shape)


def texture(kind: str, xx: np.ndarray, yy: np.ndarray, period: float) -> np.ndarray:
    """A grey pattern in [-1, 1]."""
    if kind == "plain":
        return np.zeros_like(xx)
    if kind == "hstripes":
        return np.sign(np.sin(2 * math.pi * yy / period))
    if kind == "vstripes":
        return np.sign(np.sin(2 * math.pi * xx / period))
    if kind == "checker":
        return np.sign(np.sin(2 * math.pi * xx / period) * np.sin(2 * math.pi * yy / period))
    if kind == "dots":
        return np.where(
            (np.sin(2 * math.pi * xx / period) > 0.5) & (np.sin(2 * math.pi * yy / period) > 0.5), 1.0, -0.4
        )
    raise AssertionError(kind)



def place_object(rng: np.random.Generator, classes: int, objects: list[dict[str, Any]], side: int,
                 scale: float) -> tuple[int, float, float, float] | None:
    """A class and a disc ``(class, r, cx, cy)`` that keeps clear of ``objects`` (60 tries;
    ``None`` when there is no room). Draws from ``rng`` in a fixed order: the worlds and
    clips depend on it."""
    c = int(rng.integers(0, classes))
    for _try in range(60):
        r = float(rng.uniform(R_MIN, R_MAX)) * scale
        cx, cy = (float(v) for v in rng.uniform(r + 2 * scale, side - r - 2 * scale, 2))
        if all(math.hypot(cx - o["cx"], cy - o["cy"]) > r + o["r"] + 3 * scale for o in objects):
            return c, r, cx, cy
    return None

def render(world: World, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One image: ``(lab (S,S,3) float, labels (S,S) uint8, record)``; labels 0 = background,
    i = object i (1-based)."""
    spec, S = world.spec, size
    scale = S / 64.0
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64) + 0.5
    theta, phase = rng.uniform(0, 2 * math.pi, 2)
    L = BACKGROUND_L + BACKGROUND_WAVE * np.sin(
        2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / (0.8 * S) + phase
    )
    labels = np.zeros((S, S), dtype=np.uint8)
    objects: list[dict[str, Any]] = []
    n_obj = int(rng.integers(1, spec.objects + 1))
    for _ in range(n_obj):
        placed = place_object(rng, spec.classes, objects, S, scale)
        if placed is None:
            continue  # no room left: fewer objects
        c, r, cx, cy = placed
        mask = shape_mask(SHAPES[c], xx - cx, yy - cy, r)
        period = max(2.0, 5.0 * scale)
        L[mask] = CLASS_L[c] + TEXTURE_AMPLITUDE * texture(TEXTURES[c], xx - cx, yy - cy, period)[mask]
        labels[mask] = len(objects) + 1
        objects.append({"class": c, "shape": SHAPES[c], "cx": round(cx, 4), "cy": round(cy, 4), "r": round(r, 4)})
    L = L + rng.uniform(-NOISE_AMPLITUDE, NOISE_AMPLITUDE, L.shape)
    t = int(rng.choice(len(world.probs), p=world.probs))
    region_class = [-1] + [o["class"] for o in objects]  # per label value
    ab = np.zeros((S, S, 2))
    for lab_value, c in enumerate(region_class):
        mode = int(world.themes[t, c + 1])
        ab[labels == lab_value] = world.palette[c + 1, mode]
        if lab_value > 0:
            objects[lab_value - 1]["mode"] = mode
    lab = np.concatenate([L[..., None], ab * 128.0], axis=-1)
    # The image's possible themes: themes grouped by the modes of the regions it shows.
    groups: dict[tuple[int, ...], list[int]] = {}
    for th in range(len(world.probs)):
        key = tuple(int(world.themes[th, c + 1]) for c in region_class)
        groups.setdefault(key, []).append(th)
    possible = []
    for key, ids in groups.items():
        possible.append({
            "p": round(float(world.probs[ids].sum()), 9), "ids": ids,
            "ab": [[round(float(v), 6) for v in world.palette[c + 1, key[i]]] for i, c in enumerate(region_class)],
        })
    possible.sort(key=lambda g: (-g["p"], g["ids"][0]))
    record = {"theme": t, "background_mode": int(world.themes[t, 0]), "objects": objects,
              "regions": ["background"] + [o["shape"] for o in objects], "themes": possible}
    return lab, labels, record


# ----------------------------------------------------------------------------- the folder
def folder_for(spec: SynthSpec, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    from colorkit.data import default_cache_dir

    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(f"v{GENERATOR_VERSION}:{spec.string()}".encode()).hexdigest()[:20]
    return base / "synth" / f"v{GENERATOR_VERSION}-{key}"


def _complete(folder: Path, spec: SynthSpec) -> bool:
    try:
        meta = json.loads((folder / META_JSON).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(meta, dict) and meta.get("spec_string") == spec.string()
            and meta.get("generator_version") == GENERATOR_VERSION and (folder / META_ARRAYS).is_file()
            and len(meta.get("images", {})) == spec.n)


def generate(spec: SynthSpec | str | None = None, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of ``spec``'s images (PNG) and metadata, generated once into the cache
    (``<cache>/synth/v<version>-<hash of the normalised spec>``) and reused after.

    Written into a temporary folder and renamed into place, so an interrupted run never
    leaves a partial data set."""
    if not isinstance(spec, SynthSpec):
        spec = parse_spec(spec)
    final = folder_for(spec, cache_dir)
    if _complete(final, spec):
        return final
    world = build_world(spec)
    with fs.atomic_dir(final, sync=False, keep=lambda folder: _complete(folder, spec)) as tmp:
        _write(world, tmp)  # an incomplete leftover is replaced; a complete copy another process made is kept
    return final


def _write(world: World, folder: Path) -> None:
    import torch
    from PIL import Image

    from colorkit.core.color import lab_to_rgb
    from colorkit.core.tensorfile import save_tensors

    spec = world.spec
    rng = np.random.default_rng([spec.seed, 1])
    width = len(str(spec.n - 1))
    labels_all = np.zeros((spec.n, spec.size, spec.size), dtype=np.uint8)
    images: dict[str, Any] = {}
    chunk = 256
    for start in range(0, spec.n, chunk):
        labs, names = [], []
        for i in range(start, min(spec.n, start + chunk)):
            lab, labels, record = render(world, rng, spec.size)
            name = f"{i:0{width}d}.png"
            labels_all[i] = labels
            images[name] = {"row": i, **record}
            labs.append(lab)
            names.append(name)
        t = torch.from_numpy(np.stack(labs).astype(np.float32)).permute(0, 3, 1, 2)
        rgb = lab_to_rgb(t, clip=True).permute(0, 2, 3, 1).numpy()
        arr = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
        for name, a in zip(names, arr):
            p = folder / name
            Image.fromarray(a).save(p, format="PNG", compress_level=6)
            os.utime(p, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    save_tensors(folder / META_ARRAYS, {"labels": torch.from_numpy(labels_all)},
                 {"format": "colorkit-meta-v1", "labels": "uint8 (N, size, size): 0 background, i object i"})
    meta = {
        "format": META_FORMAT,
        "generator": "synth",
        "generator_version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "spec_string": spec.string(),
        "units": "ab in Lab a,b / 128; lightness in Lab L (0-100); positions and radii in pixels",
        "arrays": {"labels": "uint8 (N, size, size) label maps in " + META_ARRAYS + ", row = images[file].row"},
        "world": world.as_json(),
        "images": images,
    }
    with fs.open_write(folder / META_JSON, "w", encoding="utf-8") as fh:  # the folder is written aside
        fh.write(json.dumps(meta, separators=(",", ":")))
