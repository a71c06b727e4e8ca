"""Colour hints: a person's colour points, as data, as a map a model reads, and simulated.

A :class:`Hint` is a point of a photo, in the photo's own pixel coordinates (``x`` from the
left, ``y`` from the top, the centre of pixel ``(0, 0)`` at ``(0.5, 0.5)``; any point inside
``[0, width] x [0, height]``), an sRGB colour (``"#3a7a2f"``) and optionally a ``radius`` in
photo pixels. Only the colour's CIE a and b (its hue and chroma) are used: they are joined
with the photo's own lightness there, like every colorization colorkit makes.

Methods read hints as a **hint map** at the resolution of the grey image they colour,
``(B, 3, H, W)``: channel 0 is the mask (1 where a hint is, else 0) and channels 1-2 the
hint's ab / 128 (0 where there is none). :func:`hint_map` makes it from a list of hints
and a photo's size; several hints in one cell are averaged. JSON form::

    [{"x": 120, "y": 80, "color": "#3a7a2f"}, {"x": 30, "y": 200, "color": "#c03020", "radius": 6}]

Bad hints (outside the photo, a bad colour string, too many, NaN) raise
:class:`~colorkit.core.registry.ColorkitError` with one line naming the hint.

Simulated hints (training and ``colorkit bench --hints``) are points drawn uniformly over
the image with the true colour there: :func:`simulate_hints` (a given number per image)
and :func:`training_hint_counts` (a random number per image, geometric, often none).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from colorkit.core.registry import ColorkitError

MAX_HINTS = 1000
"""The most hints one photo takes (more is refused: a person places tens, not thousands)."""
MAX_RADIUS = 4096.0
"""The largest radius, in photo pixels."""
MAX_HINTS_FILE_BYTES = 1 << 20
"""The largest hints JSON file read (1 MiB; 1,000 hints take about 60 KB)."""

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")

__all__ = ["Hint", "MAX_HINTS", "check_hints", "hint_map", "hints_from_json", "hints_to_json", "load_hints_file",
           "parse_color", "parse_hint", "resize_hint_map", "simulate_hints", "training_hint_counts"]


def parse_color(text: Any, *, where: str = "hint") -> tuple[int, int, int]:
    """``"#3a7a2f"``, ``"3a7a2f"`` or ``"#3a7"`` -> ``(r, g, b)`` in 0..255."""
    if not isinstance(text, str):
        raise ColorkitError(f"{where}: color must be a string like \"#3a7a2f\", got {text!r}")
    m = _HEX.match(text.strip())
    if not m:
        raise ColorkitError(f"{where}: color {text!r} is not an sRGB hex colour like \"#3a7a2f\"")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _number(v: Any, what: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ColorkitError(f"{where}: {what} must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ColorkitError(f"{where}: {what} must be a finite number, got {v}")
    return v


@dataclass(frozen=True)
class Hint:
    """One colour point: ``x``, ``y`` in the photo's pixels, ``color`` ``"#rrggbb"`` (sRGB),
    ``radius`` in photo pixels (0: the one model cell under the point)."""

    x: float
    y: float
    color: str
    radius: float = 0.0

    def __post_init__(self) -> None:
        where = f"hint at ({self.x!r}, {self.y!r})"
        object.__setattr__(self, "x", _number(self.x, "x", where))
        object.__setattr__(self, "y", _number(self.y, "y", where))
        r = _number(self.radius, "radius", where)
        if not 0 <= r <= MAX_RADIUS:
            raise ColorkitError(f"{where}: radius must be from 0 to {MAX_RADIUS:g} pixels, got {r:g}")
        object.__setattr__(self, "radius", r)
        rgb = parse_color(self.color, where=where)
        object.__setattr__(self, "color", "#{:02x}{:02x}{:02x}".format(*rgb))

    @property
    def rgb(self) -> tuple[int, int, int]:
        return parse_color(self.color)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"x": self.x, "y": self.y, "color": self.color}
        if self.radius:
            out["radius"] = self.radius
        return out

    def __str__(self) -> str:
        return f"hint {self.x:g},{self.y:g},{self.color}" + (f" (radius {self.radius:g})" if self.radius else "")


def parse_hint(text: str) -> Hint:
    """The command line's form ``X,Y,#RRGGBB[,RADIUS]`` (e.g. ``120,80,#3a7a2f``)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (3, 4):
        raise ColorkitError(f"hint {text!r}: expected X,Y,#RRGGBB or X,Y,#RRGGBB,RADIUS (e.g. 120,80,#3a7a2f)")
    try:
        nums = [float(p) for p in parts[:2] + parts[3:]]
    except ValueError:
        raise ColorkitError(f"hint {text!r}: X, Y and RADIUS must be numbers (e.g. 120,80,#3a7a2f)") from None
    return Hint(nums[0], nums[1], parts[2], nums[2] if len(nums) == 3 else 0.0)


def hints_from_json(obj: Any, *, where: str = "hints") -> list[Hint]:
    """A JSON list of ``{"x", "y", "color"[, "radius"]}`` objects -> hints (at most
    :data:`MAX_HINTS`; unknown keys are errors)."""
    if not isinstance(obj, list):
        raise ColorkitError(f"{where}: expected a JSON list of {{\"x\", \"y\", \"color\"}} objects, "
                            f"got {type(obj).__name__}")
    if len(obj) > MAX_HINTS:
        raise ColorkitError(f"{where}: {len(obj)} hints; at most {MAX_HINTS} are taken")
    out = []
    for i, h in enumerate(obj):
        at = f"{where}: hint {i + 1}"
        if not isinstance(h, dict):
            raise ColorkitError(f"{at}: expected an object {{\"x\", \"y\", \"color\"}}, got {h!r:.60}")
        unknown = sorted(set(h) - {"x", "y", "color", "radius"})
        missing = [key for key in ("x", "y", "color") if key not in h]
        if unknown or missing:
            raise ColorkitError(f"{at}: " + "; ".join(
                ([f"unknown keys {', '.join(map(repr, unknown))}"] if unknown else [])
                + ([f"missing {', '.join(missing)}"] if missing else []))
                + " (expected x, y, color and optionally radius)")
        try:
            out.append(Hint(h["x"], h["y"], h["color"], h.get("radius", 0.0)))
        except ColorkitError as exc:
            raise ColorkitError(f"{at}: {exc}") from None
    return out


def hints_to_json(hints: Iterable[Hint]) -> list[dict[str, Any]]:
    return [h.to_json() for h in hints]


def load_hints_file(path: str | os.PathLike[str]) -> list[Hint]:
    """Hints from a JSON file (a regular file of at most :data:`MAX_HINTS_FILE_BYTES`)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise ColorkitError(f"hints file {p}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ColorkitError(f"hints file {p}: not a regular file")
    if st.st_size > MAX_HINTS_FILE_BYTES:
        raise ColorkitError(f"hints file {p}: {st.st_size} bytes; at most {MAX_HINTS_FILE_BYTES} are read")
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_HINTS_FILE_BYTES + 1)
        obj = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ColorkitError(f"hints file {p}: not valid JSON ({' '.join(str(exc).split())[:120]})") from None
    return hints_from_json(obj, where=f"hints file {p}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def check_hints(hints: Sequence[Hint], width: int, height: int, *, where: str = "") -> None:
    """Every hint inside the photo (``0 <= x <= width``, ``0 <= y <= height``), at most
    :data:`MAX_HINTS`."""
    pre = f"{where}: " if where else ""
    if len(hints) > MAX_HINTS:
        raise ColorkitError(f"{pre}{len(hints)} hints; at most {MAX_HINTS} are taken")
    for h in hints:
        if not isinstance(h, Hint):
            raise ColorkitError(f"{pre}expected colorkit.Hint objects, got {type(h).__name__}")
        if not (0 <= h.x <= width and 0 <= h.y <= height):
            raise ColorkitError(f"{pre}{h} lies outside the {width}x{height} photo "
                                f"(x from 0 to {width}, y from 0 to {height})")


def _hint_ab(hints: Sequence[Hint]) -> Tensor:
    """``(n, 2)`` ab / 128 of the hints' colours."""
    from colorkit.core.color import AB_SCALE, rgb_to_lab

    rgb = torch.tensor([h.rgb for h in hints], dtype=torch.float32) / 255.0  # (n, 3)
    lab = rgb_to_lab(rgb.T[:, :, None])  # (3, n, 1)
    return (lab[1:, :, 0].T / AB_SCALE).contiguous()  # (n, 2)


def hint_map(hints: Sequence[Hint], width: int, height: int, size: int | tuple[int, int]) -> Tensor:
    """The hint map ``(1, 3, h, w)`` (mask, ab / 128) at the model's ``size`` of the hints
    given in a ``width`` x ``height`` photo's pixels. A hint covers the cell under its
    point, and every cell whose centre lies within ``radius`` photo pixels of it; a cell
    covered by several hints gets their mean colour."""
    h_out, w_out = (size, size) if isinstance(size, int) else size
    check_hints(hints, width, height)
    out = torch.zeros(1, 3, h_out, w_out)
    if not hints:
        return out
    ab = _hint_ab(hints)
    total = torch.zeros(2, h_out, w_out)
    count = torch.zeros(h_out, w_out)
    sx, sy = w_out / width, h_out / height
    cy = (torch.arange(h_out, dtype=torch.float64) + 0.5) / sy  # cell centres in photo pixels
    cx = (torch.arange(w_out, dtype=torch.float64) + 0.5) / sx
    for i, h in enumerate(hints):
        cover = torch.zeros(h_out, w_out, dtype=torch.bool)
        cover[min(int(h.y * sy), h_out - 1), min(int(h.x * sx), w_out - 1)] = True
        if h.radius > 0:
            cover |= ((cy[:, None] - h.y) ** 2 + (cx[None, :] - h.x) ** 2) <= h.radius ** 2
        total += ab[i][:, None, None] * cover
        count += cover
    hit = count > 0
    out[0, 0] = hit.float()
    out[0, 1:] = torch.where(hit, total / count.clamp_min(1), total)
    return out


def check_hint_map(hints: Tensor, grey: Tensor, *, who: str = "sample") -> None:
    """``hints`` is a finite ``(B, 3, H, W)`` map matching ``grey (B, 1, H, W)``."""
    if not isinstance(hints, Tensor) or hints.dim() != 4 or hints.shape[1] != 3 \
            or hints.shape[0] != grey.shape[0] or hints.shape[-2:] != grey.shape[-2:]:
        got = tuple(hints.shape) if isinstance(hints, Tensor) else type(hints).__name__
        raise ColorkitError(f"{who}: hints must be a hint map of shape {(grey.shape[0], 3, *grey.shape[-2:])} "
                            f"(mask, a, b) at the grey image's size; got {got}")
    if not bool(torch.isfinite(hints).all()):
        raise ColorkitError(f"{who}: the hint map holds NaN or infinite values")


def simulate_hints(ab: Tensor, counts: Tensor | Sequence[int] | int, *,
                   generator: torch.Generator | None = None) -> Tensor:
    """Hint maps ``(B, 3, H, W)`` with ``counts[i]`` points of image i (distinct cells,
    uniform over the image), each with the true colour ``ab (B, 2, H, W)`` there. The
    points come from ``generator`` (CPU), so the same seed gives the same points."""
    b, _, h, w = ab.shape
    if isinstance(counts, int):
        counts = [counts] * b
    counts = torch.as_tensor(counts, dtype=torch.long).cpu().clamp(0, h * w)
    dev = generator.device if generator is not None else torch.device("cpu")
    keys = torch.rand((b, h * w), generator=generator, device=dev).cpu()  # a random order of the cells
    order = keys.argsort(dim=1)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w).expand(b, -1))
    mask = (rank < counts[:, None]).to(ab.dtype).reshape(b, 1, h, w).to(ab.device)
    return torch.cat([mask, ab * mask], dim=1)


def resize_hint_map(hints: Tensor, size: tuple[int, int]) -> Tensor:
    """A hint map ``(B, 3, H, W)`` at another size ``(h, w)``: a cell is hinted when any
    hinted pixel falls in it, with their mean colour (area pooling); enlarging repeats
    cells (nearest)."""
    if tuple(hints.shape[-2:]) == tuple(size):
        return hints
    mask, ab = hints[:, :1], hints[:, 1:]
    if size[0] <= hints.shape[-2] and size[1] <= hints.shape[-1]:
        m = torch.nn.functional.adaptive_avg_pool2d(mask, size)
        s = torch.nn.functional.adaptive_avg_pool2d(ab * mask, size)
        hit = m > 0
        return torch.cat([hit.to(hints.dtype), torch.where(hit, s / m.clamp_min(1e-12), torch.zeros_like(s))], 1)
    return torch.nn.functional.interpolate(hints, size=size, mode="nearest")


def training_hint_counts(batch: int, *, generator: torch.Generator | None = None, p_none: float = 0.25,
                         p: float = 0.125, most: int = 32) -> Tensor:
    """Hint counts for training ``(batch,)``: none with probability ``p_none``, else a
    geometric number (success ``p``: mean 1/p) capped at ``most`` (Zhang et al.'s scheme)."""
    dev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(batch, generator=generator, device=dev).cpu()
    g = torch.rand(batch, generator=generator, device=dev).cpu().clamp_min(1e-12)
    n = 1 + torch.floor(torch.log(g) / math.log1p(-p)).long()
    return torch.where(u < p_none, torch.zeros_like(n), n.clamp(max=most))


def sample_with_hints(method: Any, grey: Tensor, k: int, *, hints: Tensor | None = None, **kwargs: Any) -> Tensor:
    """``method.sample(grey, k, **kwargs)`` honouring the hint map ``hints (B, 3, H, W)``.

    ``hints=None`` calls ``sample`` exactly as without hints (the same numbers, bit for
    bit). A method that declares ``takes_hints`` gets the map as ``hints=``; any other
    method's colorizations are made to honour it by the generic fallback,
    :func:`colorkit.core.propagate.propagate_residual` (the residual at the hint points
    spread along the grey image), so every method, a third party's too, takes hints."""
    if hints is None:
        return method.sample(grey, k, **kwargs)
    check_hint_map(hints, grey, who=f"{method.registry_name or type(method).__name__}.sample")
    hints = hints.to(grey.device, torch.float32)
    if method.takes_hints:  # declared by Method (a model trained with hints sets it on itself)
        return method.sample(grey, k, hints=hints, **kwargs)
    from colorkit.core.propagate import propagate_residual

    return propagate_residual(method.sample(grey, k, **kwargs), grey, hints)
