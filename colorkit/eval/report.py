"""The bench's tables: ``results.md`` (the paper's Table 3 layout, realism measures, seeds,
training budgets, mixture usage, verdicts, then with ``--hints`` a table and verdicts per
hint count) and ``results.csv`` (one row per method and
mode, every metric with its interval), written with the figures of :mod:`colorkit.eval.plots`."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import torch

from colorkit.core.fs import atomic_write_text
from colorkit.eval.evaluate import PRIMARY
from colorkit.eval.machine import machine_line
from colorkit.eval.plots import hints_plot, sample_sheet, scatter_plot
from colorkit.eval.verdicts import ci_text

EXTRA_UNITS = {"train_seconds": "s", "infer_seconds_per_image": "s/image"}
# results.md's realism table (when registered): name -> column title
REALISM = {"mae_all": "mean err. (all k)", "hist_kl": "hist. KL", "grad_log_ratio": "grad. log2 ratio",
           "colorfulness_diff": "colourf. - GT", "pairwise_distance": "pairwise dist.",
           "mode_recall": "mode recall", "mode_precision": "mode precision", "coherence": "coherence"}


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def _spec(name: str) -> str:
    return ".1e" if name == "variance" else ".4g"


def table_markdown(results: dict[str, Any]) -> str:
    """Table 3 layout (Eob., Var. with intervals), realism, every other metric, seeds,
    training budgets, mixture usage, then one verdict line per learned method."""
    metrics = results["metrics"]
    rows = {n: r for n, r in results["methods"].items() if not r.get("same_as")}  # a mode identical to another: once
    same = [f"{n}: same as {r['same_as']} (the same colorizations of every test image)"
            for n, r in results["methods"].items() if r.get("same_as")]
    d = results["test_set"]["name"]
    seeds = results["seeds"]
    seed_text = (
        f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))} (values: mean over seeds)"
    )
    held = (
        " (held-out set, trained on " + results["dataset"]["name"] + ")" if results["test_set"].get("held_out") else ""
    )
    lines = [
        f"Diverse colorization on `{d}`{held}: {results['split']['test']} test images, k = {results['k']}, "
        f"preset {results['preset']}, {seed_text}. Errors in ab/128 (paper units). "
        f"[low, high]: 95% bootstrap interval over test images ({results['bootstrap']['resamples']} resamples).",
        *([machine_line(results["machine"]) + "."] if (results.get("machine") or {}).get("anchor_gflops") else []),
        "",
        f"| Method | kind | {d} Eob. | {d} Var. |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['kind']} | {_fmt(r.get(PRIMARY), '.3f')}{ci_text(r.get(PRIMARY + '_ci'))} | "
                     f"{_fmt(r.get('variance'), '.1e')}{ci_text(r.get('variance_ci'), '{:.1e}')} |")
    if same:
        lines += [""] + [f"{line}." for line in same]
    realism = [m for m in REALISM if m in metrics]
    if realism:
        lines += ["", "Realism (error-of-best rewards spreading k guesses; these do not):", "",
                  "| Method | " + " | ".join(REALISM[m] for m in realism) + " |",
                  "|---|" + "---|" * len(realism)]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(
                f"{_fmt(r.get(m), '.3f')}{ci_text(r.get(m + '_ci'))}" for m in realism) + " |")
    other = [m for m in metrics if m not in realism and m not in (PRIMARY, "variance")]
    if other:
        lines += ["", "| Method | " + " | ".join(other)
                  + " | train s | infer s/img |", "|---|" + "---|" * (len(other) + 2)]
        for name, r in rows.items():
            lines.append(
                f"| {name} | "
                + " | ".join(f"{_fmt(r.get(m), _spec(m))}{ci_text(r.get(m + '_ci'), '{:' + _spec(m) + '}')}"
                             for m in other)
                + f" | {_fmt(r.get('train_seconds'), '.1f')} | {_fmt(r.get('infer_seconds_per_image'), '.4f')} |"
            )
    if len(seeds) > 1:
        lines += [
            "",
            "Across training seeds (error-of-best per seed; mean +- standard deviation):",
            "",
            "| Method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean +- sd |",
            "|---|" + "---|" * (len(seeds) + 1),
        ]
        for name, r in rows.items():
            per = [r["per_seed"][str(s)].get(PRIMARY) for s in seeds]
            lines.append(f"| {name} | " + " | ".join(_fmt(v, ".4f") for v in per)
                         + f" | {_fmt(r['seed_mean'][PRIMARY], '.4f')} +- {_fmt(r['seed_std'][PRIMARY], '.4f')} |")
    lines += ["", "Training budget (first seed; images = images seen by the stage in training, "
              "a cached stage shows 0 epochs):", "", "| Method | stages (epochs, images) | train s |", "|---|---|---|"]
    for method, b in results["budget"].items():
        if b["known"]:
            st = ", ".join(f"{s} {v['epochs']} ep / {v['images']} img" for s, v in b["stages"].items()) or "none"
        else:
            st = "not recorded (run made by an older colorkit)"
        lines.append(f"| {method} | {st} | {_fmt(b['train_seconds'], '.1f')} |")
    for method, u in results["mixture_usage"].items():
        lines += ["", f"Mixture usage of {method} (per component: fraction of images where it has the largest "
                  f"weight / is among the top {u['test'].get('k', '?')}; entropies in nats, uniform = "
                  f"{u['test'].get('max_entropy_nats', float('nan')):.2f}):", ""]
        for split in ("train", "test"):
            x = u.get(split)
            if not x or not x.get("images"):
                continue
            lines.append(f"- {split} ({x['images']} images): winner "
                         + " ".join(f"{v:.2f}" for v in x["winner_fraction"]) + "; top-k "
                         + " ".join(f"{v:.2f}" for v in x["in_top_k_fraction"])
                         + f"; mean entropy {x['mean_entropy_nats']:.2f}, entropy of mean weights "
                         f"{x['entropy_of_mean_nats']:.2f}; {x['components_ever_winning']} of {x['components']} "
                         "components ever win")
    if results.get("skipped_metrics"):
        lines += ["", "Metrics not scored: " + "; ".join(f"{k}: {v}" for k, v in results["skipped_metrics"].items())]
    machine = results.get("machine") or {}
    start, end = machine.get("load_start"), machine.get("load_end")
    if any(isinstance(x, dict) and x.get("busy") for x in (start, end)):
        lines += ["", f"The machine was busy (1-minute load average {start.get('load_1min')} at the start, "
                      f"{end.get('load_1min')} at the end, on {end.get('cores')} cores): the timings (train s, "
                      "infer s/img) are not speed figures; the scores are unaffected."]
    changes = machine.get("thread_changes")
    if changes:
        lines += ["", f"Other processes took cores during the run, so it changed its thread count {len(changes)} "
                      "time(s) (" + ", ".join(f"{c['threads']} at {c['seconds']} s" for c in changes)
                      + f", its own count being {results.get('threads')}): its figures can differ "
                      "from those of a run that kept its thread count, by as much as training seeds differ (training "
                      "amplifies the first differing bits); give --threads N for figures you compare."]
    lines += ["", "Units: " + "; ".join(f"{k}: {v}" for k, v in results["units"].items()), ""]
    if results["verdicts"]:
        lines += ["Verdicts (paired bootstrap of per-image error-of-best against each reference; "
                  "'beats' = the whole 95% interval of the difference is below 0):", ""]
        lines += [f"- {v['text']}" for n, v in results["verdicts"].items() if n in rows]
        lines.append("")
    if results.get("by_hints"):
        lines += hints_markdown(results)
    return "\n".join(lines)


def hints_markdown(results: dict[str, Any]) -> list[str]:
    """The lines of results.md's part with colour hints: one table per hint count (errors at
    the pixels without a hint, with intervals) and its verdict lines."""
    protocol = results.get("hints") or {}
    lines = ["## With colour hints", "",
             f"n hint points per test image, drawn uniformly with the true colour there, the same points for every "
             f"method (seed {protocol.get('seed')}); every method sampled through sample_with_hints (a method that "
             "does not take hints gets its colorizations propagated from the hints). Errors in ab/128 at the "
             "pixels WITHOUT a hint (every pixel at n = 0), variance in (ab/128)^2 there; [low, high]: 95% "
             "bootstrap interval over test images.", ""]
    same = {n: r["same_as"] for n, r in results["methods"].items() if r.get("same_as")}  # said once
    for count, entry in results["by_hints"].items():
        lines += [f"### {count} hint{'' if count == '1' else 's'} per image", "",
                  "| Method | kind | Eob. | mean err. (all k) | Var. |", "|---|---|---|---|---|"]
        for name, r in entry["methods"].items():
            if name in same:
                continue
            lines.append(f"| {name} | {r['kind']} | {_fmt(r.get(PRIMARY), '.3f')}{ci_text(r.get(PRIMARY + '_ci'))} | "
                         f"{_fmt(r.get('mae_all'), '.3f')}{ci_text(r.get('mae_all_ci'))} | "
                         f"{_fmt(r.get('variance'), '.1e')}{ci_text(r.get('variance_ci'), '{:.1e}')} |")
        if entry["verdicts"]:
            lines += ["", f"Verdicts with {count} hint{'' if count == '1' else 's'} (paired bootstrap of per-image "
                      "error-of-best at the pixels without a hint):", ""]
            lines += [f"- {v['text']}"
                      for name, v in entry["verdicts"].items() if name not in same]
        lines.append("")
    if same:
        lines += [f"{n}: same as {o} (the same colorizations of every test image), not repeated above."
                  for n, o in same.items()] + [""]
    return lines


def write_outputs(
    out: Path, results: dict[str, Any], sheet: dict[str, torch.Tensor], test: Any, cfg: Any = None
) -> None:
    """``results.csv``, ``results.md``, ``scatter.png`` and (with ``sheet``) ``samples.png`` in
    ``out``. ``cfg`` is accepted for older callers; ``k`` is read from ``results``."""
    metric_names = list(results["metrics"])
    units = results["units"]
    buf = io.StringIO()
    w = csv.writer(buf)
    header = ["method", "kind", "mode"]
    for m in metric_names:
        header += [f"{m} [{units[m]}]", f"{m}_ci_low", f"{m}_ci_high"]
    header += [f"{c} [{EXTRA_UNITS[c]}]" for c in EXTRA_UNITS]
    w.writerow(header)
    for name, r in results["methods"].items():
        line = [name, r["kind"], r["mode"]]
        for m in metric_names:
            ci = r.get(f"{m}_ci") or [None, None]
            line += [_fmt(r.get(m), ".6g"), _fmt(ci[0], ".6g"), _fmt(ci[1], ".6g")]
        line += [_fmt(r.get(c), ".6g") for c in EXTRA_UNITS]
        w.writerow(line)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.md", table_markdown(results))
    scatter_plot(results, out / "scatter.png")
    if results.get("by_hints"):
        hints_plot(results, out / "hints.png")
    if sheet:
        kinds = {n: r["kind"] for n, r in results["methods"].items()}
        sample_sheet(sheet, test, out / "samples.png", k=results["k"], kinds=kinds)
