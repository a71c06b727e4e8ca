"""Scoring one trained method on a test split with every registered metric.

:func:`evaluate` samples k colorizations of every test image (the same grey inputs and a
seeded generator for every method) and feeds them to a
:class:`colorkit.metrics.MetricCollection`, which dispatches to each metric (``meta`` to
those that declare ``uses_meta``) and keeps the per-image values of those that are a mean
over images (``Metric.mean_of_images``) for the bootstrap intervals. :func:`build_metrics`
builds every registered metric, :func:`reference_names` lists the reference methods.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from colorkit.core import loadwatch
from colorkit.core.interfaces import Method, Metric, declared
from colorkit.core.registry import ColorkitError
from colorkit.metrics import MetricCollection, declares

PRIMARY = "error_of_best"
"""The metric of the Table 3 column and of the verdicts."""


def reference_names(with_meta: bool = False) -> list[str]:
    """Registered methods with ``role = "reference"``, in registry order; those
    that need per-image metadata (``uses_meta``, e.g. synth's ``oracle``) only when
    ``with_meta``."""
    from colorkit.core.plugin_manager import registry

    reg = registry("method")
    out = []
    for n in reg.names():
        f = declared(reg.get(n).factory, Method)
        if f.role == "reference" and (with_meta or not f.uses_meta):
            out.append(n)
    return out


def role_of(method: str) -> str:
    from colorkit.core.plugin_manager import registry

    return declared(registry("method").get(method).factory, Method).role


def build_metrics(stats: Any, with_meta: bool = False) -> tuple[dict[str, Metric], dict[str, str]]:
    """Every registered metric built with ``stats``; those that cannot be built, or need
    per-image metadata the data set lacks, are returned as ``{name: reason}`` instead
    (and reported, not fatal)."""
    from colorkit.api import create_metric
    from colorkit.core.plugin_manager import registry

    metrics: dict[str, Metric] = {}
    skipped: dict[str, str] = {}
    for name in registry("metric").names():
        if declared(registry("metric").get(name).factory, Metric).uses_meta and not with_meta:
            skipped[name] = "needs per-image metadata, which this test set does not have"
            continue
        try:
            metric = create_metric(name, stats=stats)
        except Exception as exc:  # noqa: BLE001 - a third-party metric must not sink the bench
            skipped[name] = " ".join(str(exc).split()) or type(exc).__name__
            continue
        if not declares(metric, "units"):  # its column would be printed in units nobody said
            skipped[name] = ("declares no units (set the class attribute units, e.g. 'ab/128'); colorkit does not "
                             "guess them")
            continue
        metrics[name] = metric
    return metrics, skipped


def metric_info(metrics: dict[str, Metric]) -> dict[str, dict[str, Any]]:
    """Per metric: units, direction, whether it gets a bootstrap interval, description
    (the first paragraph of its class docstring)."""
    out = {}
    for name, m in metrics.items():
        doc = (type(m).__doc__ or "").strip().split("\n\n")[0]
        out[name] = {"units": str(m.units), "higher_is_better": m.higher_is_better,
                     "interval": "bootstrap" if m.mean_of_images else "none (not a mean over images)",
                     "description": " ".join(doc.split())}
    return out


@torch.no_grad()
def evaluate(colorizer: Any, test: Any, metrics: dict[str, Metric], *, k: int, seed: int, batch_size: int,
             mode: str | None, progress: bool = False, keep: int = 0, meta_of: Any = None) -> dict[str, Any]:
    """Score one method on the whole test split with every metric in ``metrics``.

    ``meta_of``: the test set's per-image metadata (``colorkit.data.meta.load_meta``) or
    None; with it, methods and metrics that declare ``uses_meta`` get each batch's records
    as ``meta=``. Returns ``{"values": {name: float}, "per_image": {name: (N,) float64 tensor or None},
    "infer_seconds_per_image": float, "kept": (keep, k, 2, H, W) or None}``."""
    uses_meta = colorizer.method.uses_meta
    if uses_meta and meta_of is None:
        raise ColorkitError(f"{colorizer.name} needs per-image metadata, which this test set does not have; "
                            "use a data set with metadata such as synth")
    collection = MetricCollection(metrics, keep_per_image=True)
    collection.reset()
    kept = []
    n = len(test)
    t_infer = 0.0
    gen = torch.Generator(device=colorizer.device).manual_seed(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"eval {colorizer.name}{'[' + mode + ']' if mode else ''}", unit="img", leave=False,
                   disable=None)
    for start in range(0, n, batch_size):
        loadwatch.checkpoint()  # fewer threads while other jobs hold the cores (a no-op without a watch)
        b = test.batch(list(range(start, min(n, start + batch_size))))
        grey = b["grey"].to(colorizer.device)
        meta = meta_of(b["index"]) if meta_of is not None else None
        t0 = time.perf_counter()
        extra = {"meta": meta} if uses_meta else {}
        samples = colorizer.method.sample(grey, k, mode=mode, generator=gen, **extra)
        if samples.device.type == "cuda":
            torch.cuda.synchronize()
        t_infer += time.perf_counter() - t0
        if samples.shape != (grey.shape[0], k, 2, *grey.shape[-2:]):
            raise ColorkitError(f"{colorizer.name}.sample returned shape {tuple(samples.shape)}, expected "
                                f"{(grey.shape[0], k, 2, *grey.shape[-2:])}")
        samples = samples.float().cpu()
        collection.update(samples, b["ab"], b["grey"], meta=meta)
        if sum(len(x) for x in kept) < keep:
            kept.append(samples)
        if bar is not None:
            bar.update(grey.shape[0])
    if bar is not None:
        bar.close()
    return {"values": collection.compute(), "per_image": collection.per_image(),
            "infer_seconds_per_image": t_infer / max(n, 1), "kept": torch.cat(kept)[:keep] if kept else None}
