"""The contract checks of how a method samples clips and takes colour hints (used by
:func:`colorkit.testing.contract.check_method`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from colorkit.testing.errors import fail
from colorkit.testing.tensors import check_ab, random_ab


def check_sequence(what: str, m: Any, grey: Tensor, k: int, mode: str, seed: int, extra: dict[str, Any]) -> None:
    """``sample_sequence`` and ``sequence_sampler``: shapes and units, the same result for
    any chunking of the clip, and on a clip of one repeated frame every frame equal to what
    ``sample`` gives that frame with the same generator (random draws fixed across frames)."""
    s = grey.shape[-1]
    meta = extra.get("meta")
    clip = grey[[0, 0, 0, 1, 1]]  # a scene of one frame repeated, then a second scene
    scenes = torch.tensor([0, 0, 0, 1, 1])
    seq_meta = {"meta": [meta[i] for i in (0, 0, 0, 1, 1)]} if meta is not None else {}
    label = f"sample_sequence(mode={mode!r})"
    try:
        out = m.sample_sequence(clip, k, mode=mode, generator=torch.Generator().manual_seed(seed), scenes=scenes,
                                **seq_meta)
    except Exception as exc:  # noqa: BLE001
        fail(what, f"{label} failed: {type(exc).__name__}: {exc}")
    check_ab(what, label, out, (5, k, 2, s, s))
    one = m.sample(grey[:1], k, mode=mode, generator=torch.Generator().manual_seed(seed),
                   **({"meta": meta[:1]} if meta is not None else {}))[0]
    for t in range(3):
        if not torch.allclose(out[t], one, atol=1e-5):
            fail(what, f"{label}: frame {t} of a clip that repeats one frame is not what sample() gives that frame "
                        "with the same generator (the method's random draws must stay fixed across the frames of a "
                        "scene)")
    sampler = m.sequence_sampler(k, mode=mode, generator=torch.Generator().manual_seed(seed))
    parts = [(0, 2), (2, 4), (4, 5)]
    for a, b in parts:
        sampler.observe(clip[a:b], scenes[a:b])
    chunked = torch.cat([sampler.sample(clip[a:b], scenes[a:b],
                                        meta=seq_meta["meta"][a:b] if seq_meta else None) for a, b in parts])
    if not torch.allclose(out, chunked, atol=1e-5):
        fail(what, f"{label} differs when the clip is fed to its sequence_sampler in chunks")


def check_hints(what: str, m: Any, grey: Tensor, k: int, mode: str, seed: int, extra: dict[str, Any]) -> None:
    """Colour hints through :func:`colorkit.core.hints.sample_with_hints`: ``hints=None``
    gives the samples of a call without hints bit for bit; with hints (six points per
    image, drawn from a random colour field) the error at the hinted pixels falls, by the
    method's own use of them when it declares ``takes_hints`` and by the generic fallback
    otherwise."""
    from colorkit.core.hints import sample_with_hints, simulate_hints

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    b, s = grey.shape[0], grey.shape[-1]
    plain = m.sample(grey, k, mode=mode, generator=gen(), **extra)
    label = "sample_with_hints(hints=None)"
    if not torch.equal(sample_with_hints(m, grey, k, hints=None, mode=mode, generator=gen(), **extra), plain):
        fail(what, f"{label} differs from sample() without hints")
    takes = bool(getattr(m, "takes_hints", False))
    if takes and not torch.equal(m.sample(grey, k, mode=mode, generator=gen(), hints=None, **extra), plain):
        fail(what, "sample(..., hints=None) differs from sample() without hints: hints=None must change nothing")
    target = random_ab(b, s, seed + 7)
    hints = simulate_hints(target, 6, generator=gen())
    try:
        out = sample_with_hints(m, grey, k, hints=hints, mode=mode, generator=gen(), **extra)
    except Exception as exc:  # noqa: BLE001
        fail(what, f"sampling with hints failed{' (it declares takes_hints)' if takes else ''}: "
                    f"{type(exc).__name__}: {exc}")
    check_ab(what, "sample with hints", out, (b, k, 2, s, s))
    mask = hints[:, None, :1]  # (B, 1, 1, s, s)

    def err(x: Tensor) -> float:
        return float(((x.float() - target[:, None]).abs() * mask).sum() / (mask.sum() * k * 2))

    if not err(out) < err(plain):
        how = "its own use of them (takes_hints)" if takes else "the generic fallback"
        fail(what, f"hints do not lower the error at the hinted pixels ({err(out):.4f} with, {err(plain):.4f} "
                    f"without) through {how}")
