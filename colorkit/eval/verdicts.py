"""What the bench concludes from the per-image values: each row's value and 95 % bootstrap
interval over the test images (per-image values averaged over the training seeds first),
the spread across seeds, and one verdict per learned method: which references it beats
by a paired bootstrap of per-image error-of-best."""

from __future__ import annotations

import math
from typing import Any

import torch

from colorkit.eval.evaluate import PRIMARY
from colorkit.metrics.bootstrap import bootstrap_ci, paired_bootstrap


def aggregate_seeds(rows: dict[str, dict[str, Any]], per_image: dict[str, dict[str, list[torch.Tensor]]],
                    metric_names: list[str], seeds: list[int], *, resamples: int,
                    seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Fill each row's ``<metric>`` and ``<metric>_ci`` (and with several seeds ``seed_mean`` /
    ``seed_std``) from ``row["per_seed"]`` and ``per_image`` (row -> metric -> one ``(N,)``
    tensor per seed); returns the per-image means over seeds, row -> metric -> ``(N,)``."""
    image_means: dict[str, dict[str, torch.Tensor]] = {}
    for name, row in rows.items():
        for mname in metric_names:
            seed_vals = [row["per_seed"][str(s)][mname] for s in seeds]
            series = per_image.get(name, {}).get(mname)
            if series:
                v = torch.stack(series).mean(0)
                image_means.setdefault(name, {})[mname] = v
                row[mname] = float(v.mean())
                row[f"{mname}_ci"] = list(bootstrap_ci(v, resamples=resamples, seed=seed))
            else:
                row[mname] = float(sum(seed_vals) / len(seed_vals))
                row[f"{mname}_ci"] = None
            if len(seeds) > 1:
                t = torch.tensor(seed_vals, dtype=torch.float64)
                row.setdefault("seed_mean", {})[mname] = float(t.mean())
                row.setdefault("seed_std", {})[mname] = float(t.std(unbiased=True))
    return image_means


def identical_rows(rows: dict[str, dict[str, Any]],
                   per_image: dict[str, dict[str, list[torch.Tensor]]]) -> dict[str, str]:
    """``{row: earlier row}`` for each row (a sampling mode of a method) whose every value,
    per seed and per image, equals an earlier row's of the same method: the two modes gave
    the same colorizations (``mdn[distinct]`` is ``mdn`` when no two chosen means are closer
    than the radius), so the row is said once, as "same as"."""
    out: dict[str, str] = {}
    names = list(rows)
    for i, name in enumerate(names):
        for other in names[:i]:
            if other in out or rows[other]["method"] != rows[name]["method"]:
                continue
            mine, theirs = per_image.get(name, {}), per_image.get(other, {})
            if rows[name]["per_seed"] == rows[other]["per_seed"] and mine.keys() == theirs.keys() and all(
                    len(mine[m]) == len(theirs[m]) and all(torch.equal(a, b) for a, b in zip(mine[m], theirs[m]))
                    for m in mine):
                out[name] = other
                break
    return out


def verdicts(rows: dict[str, dict[str, Any]], image_means: dict[str, dict[str, torch.Tensor]], *,
             resamples: int, seed: int) -> dict[str, Any]:
    """For each learned row: paired bootstrap of its per-image error-of-best minus each
    reference row's; it *beats* a reference when the whole interval is below 0."""
    refs = [n for n, r in rows.items() if r["kind"] == "reference" and PRIMARY in image_means.get(n, {})]
    out: dict[str, Any] = {}
    for name, row in rows.items():
        if row["kind"] == "reference" or PRIMARY not in image_means.get(name, {}):
            continue
        mine = image_means[name][PRIMARY]
        comparisons = {}
        for ref in refs:
            diff, low, high = paired_bootstrap(mine, image_means[ref][PRIMARY], resamples=resamples, seed=seed)
            outcome = "beats" if high < 0 else ("worse" if low > 0 else "not distinguishable")
            comparisons[ref] = {"difference": diff, "ci": [low, high], "outcome": outcome}
        out[name] = {"error_of_best": row[PRIMARY], "ci": row[f"{PRIMARY}_ci"], "against": comparisons,
                     "beats": [r for r, c in comparisons.items() if c["outcome"] == "beats"],
                     "does_not_beat": [r for r, c in comparisons.items() if c["outcome"] != "beats"],
                     "text": verdict_line(name, row, comparisons)}
    return out


def ci_text(ci: list[float] | None, fmt: str = "{:.3f}") -> str:
    if not ci or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ci):
        return ""
    return f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def verdict_line(name: str, row: dict[str, Any], comparisons: dict[str, dict[str, Any]]) -> str:
    beats = [r for r, c in comparisons.items() if c["outcome"] == "beats"]
    rest = [(r, c) for r, c in comparisons.items() if c["outcome"] != "beats"]
    parts = [f"{name}: error-of-best {row[PRIMARY]:.3f}{ci_text(row.get(PRIMARY + '_ci'))}"]
    parts.append(f"beats {', '.join(beats)}" if beats else "beats no reference")
    for r, c in rest:
        word = "is WORSE than" if c["outcome"] == "worse" else "does NOT beat"
        parts.append(f"{word} {r} (difference {c['difference']:+.3f}{ci_text(c['ci'])})")
    return "; ".join(parts)
