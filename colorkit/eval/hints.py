"""Benchmarks with colour hints: ``colorkit bench --hints 0,1,2,5,10,20``.

For each hint count n and each test image, n hint points are drawn uniformly over the
image (distinct pixels) by :func:`colorkit.core.hints.simulate_hints`, each with the true
colour there, from a generator seeded by (the bench's seed, n, the image's position in
the test split) only: every method, mode and training seed gets the same points, whatever
the batch size. Every row is sampled through :func:`colorkit.core.hints.sample_with_hints`
(a method that takes hints reads them, any other gets the generic propagation), with the
same sampling seed as without hints, and scored at the pixels *without* a hint:
error-of-best, mean error over the k (``mae_all``) and variance, each with its 95 %
bootstrap interval over the test images, and the paired-bootstrap verdicts of each
learned row against each reference (:mod:`colorkit.eval.verdicts`). With n = 0 the method
is sampled with ``hints=None`` and scored at every pixel, so those numbers are exactly
those of a bench without hints. Methods that say something only with hints
(``Method.hints_only``, e.g. ``levin``) are scored only here.

``results.json`` gets ``hints`` (the protocol) and ``by_hints``: ``{"n": {"hints": n,
"methods": rows, "verdicts": ...}}``, rows and verdicts laid out as at the top level.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from colorkit.core.hints import sample_with_hints, simulate_hints
from colorkit.core.interfaces import Method, declared
from colorkit.core.registry import ColorkitError
from colorkit.eval.verdicts import aggregate_seeds, verdicts
from colorkit.metrics import functional as F
from colorkit.metrics.bootstrap import to_tensor

HINT_METRICS = ("error_of_best", "mae_all", "variance")
"""What each hint count reports, at the pixels without a hint (the top level's names)."""
HINT_UNITS = {"error_of_best": "ab/128", "mae_all": "ab/128", "variance": "(ab/128)^2"}

__all__ = ["HINT_METRICS", "HintScores", "bench_hint_maps", "check_hint_counts", "evaluate_hints", "hints_only",
           "hints_protocol", "image_seed"]


def hints_only(method: str) -> bool:
    """Whether the registered ``method`` is scored only with hints (``Method.hints_only``)."""
    from colorkit.core.plugin_manager import registry

    return declared(registry("method").get(method).factory, Method).hints_only


def check_hint_counts(counts: list[int], size: int) -> None:
    """Every count leaves pixels without a hint on a ``size`` x ``size`` test image."""
    if counts and max(counts) >= size * size:
        raise ColorkitError(f"--hints {max(counts)} leaves no pixel without a hint on the {size}x{size} test images; "
                            f"give counts below {size * size}")


def image_seed(seed: int, count: int, position: int) -> int:
    """The seed of the hint points of the test image at ``position`` with ``count`` hints
    in a bench seeded ``seed`` (numpy's SeedSequence mixes the three)."""
    state = np.random.SeedSequence([seed % 2**64, count, position]).generate_state(1, np.uint64)
    return int(state[0])


def bench_hint_maps(ab: Tensor, positions: list[int], count: int, seed: int) -> Tensor:
    """Hint maps ``(B, 3, H, W)`` of the test images at ``positions`` (their true colour
    fields ``ab (B, 2, H, W)``): ``count`` points each, drawn per image."""
    ab = ab.detach().float().cpu()
    return torch.cat([simulate_hints(ab[j:j + 1], count,
                                     generator=torch.Generator().manual_seed(image_seed(seed, count, p)))
                      for j, p in enumerate(positions)])


def hints_protocol(counts: list[int], seed: int) -> dict[str, Any]:
    """The ``hints`` entry of ``results.json``: what ``by_hints`` measured."""
    return {"counts": list(counts), "seed": seed, "metrics": list(HINT_METRICS), "units": dict(HINT_UNITS),
            "points": "n distinct pixels per test image, uniform, with the true colour there; the same for every "
                      "method (seeded by the bench seed, n and the image's position in the test split)",
            "scored_at": "pixels without a hint (every pixel at n = 0)"}


@torch.no_grad()
def evaluate_hints(colorizer: Any, test: Any, counts: list[int], *, k: int, seed: int, hint_seed: int,
                   batch_size: int, mode: str | None, progress: bool = False,
                   meta_of: Any = None, without: dict[str, Any] | None = None) -> dict[int, dict[str, Any]]:
    """Score one method (one mode) with each hint count of ``counts``: ``{n: {"values":
    {metric: float}, "per_image": {metric: (N,) float64}, "infer_seconds_per_image"}}``.
    ``seed`` seeds the sampling (one generator per count, as :func:`evaluate` does without
    hints), ``hint_seed`` the hint points. ``without``: what :func:`evaluate` gave for the
    same method, mode and seed; n = 0 is then taken from it instead of sampled again (the
    same numbers: no hint means every pixel, the same generator seed)."""
    reuse = 0 in counts and without is not None and all(
        without["per_image"].get(m) is not None for m in HINT_METRICS)
    out: dict[int, dict[str, Any]] = {}
    if reuse:
        per_image = {m: without["per_image"][m] for m in HINT_METRICS}
        out[0] = {"values": {m: float(v.mean()) for m, v in per_image.items()}, "per_image": per_image,
                  "infer_seconds_per_image": without["infer_seconds_per_image"]}
        counts = [c for c in counts if c]
        if not counts:
            return out
    uses_meta = colorizer.method.uses_meta
    if uses_meta and meta_of is None:
        raise ColorkitError(f"{colorizer.name} needs per-image metadata, which this test set does not have")
    gens = {c: torch.Generator(device=colorizer.device).manual_seed(seed) for c in counts}
    kept: dict[int, dict[str, list[Tensor]]] = {c: {m: [] for m in HINT_METRICS} for c in counts}
    seconds = dict.fromkeys(counts, 0.0)
    n = len(test)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * len(counts), desc=f"hints {colorizer.name}{'[' + mode + ']' if mode else ''}",
                   unit="img", leave=False, disable=None)
    for start in range(0, n, batch_size):
        positions = list(range(start, min(n, start + batch_size)))
        b = test.batch(positions)
        grey = b["grey"].to(colorizer.device)
        extra = {"meta": meta_of(b["index"])} if uses_meta else {}
        for c in counts:
            hints = bench_hint_maps(b["ab"], positions, c, hint_seed) if c else None
            t0 = time.perf_counter()
            samples = sample_with_hints(colorizer.method, grey, k, hints=hints, mode=mode, generator=gens[c], **extra)
            if samples.device.type == "cuda":
                torch.cuda.synchronize()
            seconds[c] += time.perf_counter() - t0
            if samples.shape != (grey.shape[0], k, 2, *grey.shape[-2:]):
                raise ColorkitError(f"{colorizer.name}.sample returned shape {tuple(samples.shape)}, expected "
                                    f"{(grey.shape[0], k, 2, *grey.shape[-2:])}")
            samples = samples.float().cpu()
            mask = None if hints is None else (hints[:, :1] == 0)  # the pixels without a hint
            kept[c]["error_of_best"].append(F.error_of_best(samples, b["ab"], "none", mask=mask))
            kept[c]["mae_all"].append(F.mae_all(samples, b["ab"], "none", mask=mask))
            kept[c]["variance"].append(F.variance(samples, "none", mask=mask))
            if bar is not None:
                bar.update(grey.shape[0])
    if bar is not None:
        bar.close()
    for c in counts:
        per_image = {m: to_tensor(v) for m, v in kept[c].items()}
        out[c] = {"values": {m: float(v.mean()) for m, v in per_image.items()}, "per_image": per_image,
                  "infer_seconds_per_image": seconds[c] / max(n, 1)}
    return out


class HintScores:
    """Collects :func:`evaluate_hints` results row by row and seed by seed; :meth:`results`
    gives ``by_hints``."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = list(counts)
        self.rows: dict[int, dict[str, dict[str, Any]]] = {c: {} for c in self.counts}
        self.per_image: dict[int, dict[str, dict[str, list[Tensor]]]] = {c: {} for c in self.counts}

    def add(self, name: str, info: dict[str, Any], seed: int, scores: dict[int, dict[str, Any]],
            n_seeds: int) -> None:
        """``info``: the row's ``kind``, ``method``, ``mode`` and ``run_dir``."""
        for c in self.counts:
            res = scores[c]
            row = self.rows[c].setdefault(name, {**info, "per_seed": {}, "infer_seconds_per_image": 0.0})
            row["per_seed"][str(seed)] = res["values"]
            row["infer_seconds_per_image"] += res["infer_seconds_per_image"] / n_seeds
            for m, v in res["per_image"].items():
                self.per_image[c].setdefault(name, {}).setdefault(m, []).append(v)

    def results(self, seeds: list[int], *, resamples: int, seed: int) -> dict[str, dict[str, Any]]:
        """``{"n": {"hints": n, "methods": rows, "verdicts": ...}}`` with each row's value and
        interval as at the top level (:func:`colorkit.eval.verdicts.aggregate_seeds`)."""
        out = {}
        for c in self.counts:
            rows = self.rows[c]
            means = aggregate_seeds(rows, self.per_image[c], list(HINT_METRICS), seeds, resamples=resamples, seed=seed)
            out[str(c)] = {"hints": c, "methods": rows, "verdicts": verdicts(rows, means, resamples=resamples,
                                                                            seed=seed)}
        return out
