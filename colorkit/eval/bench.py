"""``colorkit bench``: train (or reuse) methods, score them and the references on one test set.

Every method is evaluated on the same test images and the same grey inputs with *every*
registered metric (each with its own units and direction, read from the metric class), so
a metric added by a plugin shows up in every output. Beside the learned methods the bench
scores the reference methods (registered with ``role = "reference"``: ``grey``,
``mean-field``, ``prior-samples``, ``prior-kmeans``, ``colornet``), which never look at the
grey input or look at it one pixel at a time; a learned method has shown something only
where it beats them.

Uncertainty: each metric that is a mean over images gets a 95 % bootstrap interval over
the test images (``<metric>_ci``, 1000 resamples, seeded). For each learned method a
paired bootstrap of its per-image error-of-best against each reference gives the
``verdicts``. With ``seeds > 1`` every method is trained and evaluated once per training
seed (``seed``, ``seed + 1``, ...) on the same split (``split_seed``); a row's value and
interval are then over the per-image values averaged across seeds, and ``per_seed`` /
``seed_mean`` / ``seed_std`` give the spread across seeds.

Outputs in ``OUT``: ``results.json``, ``results.csv``, ``results.md`` (Table 3 layout,
realism measures, training budgets, mixture usage, verdicts last), ``scatter.png``
(variance against error-of-best, references marked) and ``samples.png``. Trained runs live
in ``OUT/runs/<method>/seed-<s>``: an interrupted bench reuses finished ones and resumes an
unfinished one. All errors are in ab / 128 unless a metric's units say otherwise.

With ``hints`` (``--hints 0,1,2,5,10,20``) every row is also scored with that many seeded
colour hints per test image, at the pixels without a hint (:mod:`colorkit.eval.hints`):
``results.json`` gains ``hints`` and ``by_hints``, ``results.md`` a table and verdicts per
hint count, and ``hints.png`` plots error-of-best against the hint count. References that
say something only with hints (``levin``) are scored only then, and only there.

The parts: :mod:`colorkit.eval.config` (:class:`BenchConfig`), :mod:`colorkit.eval.evaluate`
(scoring one method), :mod:`colorkit.eval.verdicts` (intervals, seeds, verdicts),
:mod:`colorkit.eval.hints` (the hint protocol), :mod:`colorkit.eval.report` and
:mod:`colorkit.eval.plots` (the files),
:mod:`colorkit.eval.machine` (the machine description); this module drives them.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from colorkit.core import loadwatch
from colorkit.core.environment import __version__
from colorkit.core.fs import atomic_write_text
from colorkit.core.registry import ColorkitError
from colorkit.core.threads import STARTUP, machine_load, openmp_environment, resolve_threads
from colorkit.eval.config import BenchConfig, check_sampling, parse_bench_options
from colorkit.eval.evaluate import PRIMARY, build_metrics, evaluate, metric_info, reference_names, role_of
from colorkit.eval.hints import HintScores, check_hint_counts, evaluate_hints, hints_only, hints_protocol
from colorkit.eval.machine import describe_machine, machine_speed
from colorkit.eval.plots import sample_sheet, scatter_plot
from colorkit.eval.report import EXTRA_UNITS, REALISM, table_markdown, write_outputs
from colorkit.eval.verdicts import aggregate_seeds, identical_rows, verdict_line, verdicts
from colorkit.metrics.bootstrap import LEVEL
from colorkit.train.config import MethodSpec, RunConfig, environment

__all__ = ["EXTRA_UNITS", "PRIMARY", "REALISM", "BenchConfig", "build_metrics", "evaluate", "metric_info",
           "parse_bench_options", "reference_names", "role_of", "run_bench", "sample_sheet", "scatter_plot",
           "split_seed_of", "table_markdown", "verdict_line", "write_outputs"]


def split_seed_of(info: dict[str, Any]) -> int:
    """The seed of the train/test split a run (its ``run.json``) was trained on: the data
    section's ``split_seed`` (formerly ``seed``); runs older than the data section split
    with their training seed."""
    data = (info.get("config") or {}).get("data") or {}
    return int(data.get("split_seed", data.get("seed", info.get("seed", 0))))


def _same_stats(info: dict[str, Any], cfg: BenchConfig) -> bool:
    import warnings

    recorded = (info.get("config") or {}).get("stats")
    if recorded is None:
        return True
    with warnings.catch_warnings():  # a run recorded with the former field names
        warnings.simplefilter("ignore", DeprecationWarning)
        return type(cfg.stats).model_validate(recorded) == cfg.stats


def _preset_changed(method: str, run_dir: Path, preset: str, options: dict[str, Any]) -> list[str]:
    """The fields a method's preset sets whose value in the finished run ``run_dir`` differs
    from what the preset and ``options`` give today (a run left from before a preset changed);
    empty for a method without presets or a run that does not record them."""
    from colorkit.core.checkpoint import read_meta
    from colorkit.core.interfaces import Component
    from colorkit.core.plugin_manager import registry

    factory = registry("method").get(method).factory
    if not (isinstance(factory, type) and issubclass(factory, Component)) or preset not in factory.PRESETS:
        return []  # a plain registered callable has no presets
    saved = read_meta(run_dir).get("config")
    if not isinstance(saved, dict):
        return []
    now = factory.make_config(None, preset=preset, **options).model_dump(mode="json")
    return sorted(k for k in factory.PRESETS[preset] if k in saved and k in now and saved[k] != now[k])


def _run_for(method: str, seed: int, cfg: BenchConfig, ds: Any, stats: Any, log) -> Path:
    """A finished run directory for ``method`` and training ``seed``: given with --runs,
    left by an earlier (interrupted) bench, or trained now."""
    from colorkit.train.runs import read_run, train_config

    train_opts = cfg.method_options(method)[0]
    for r in cfg.runs:
        info = read_run(r)
        if info["method"] == method and int(info.get("seed", 0)) == seed:
            if info["dataset"].get("hash") != ds.info().get("hash"):
                raise ColorkitError(f"run {r} was trained on another data set ({info['dataset'].get('source')}); "
                                    f"bench trains on {ds.source}")
            if split_seed_of(info) != cfg.data.split_seed:
                raise ColorkitError(f"run {r} was trained on the split of split seed {split_seed_of(info)}; this "
                                    f"bench scores the split of split seed {cfg.data.split_seed} (--split-seed)")
            log(f"{method} (seed {seed}): reusing run {r}")
            return Path(r)
    run_dir = Path(cfg.out) / "runs" / method / f"seed-{seed}"
    if (run_dir / "run.json").is_file():
        info = read_run(run_dir)
        if info.get("preset") == cfg.preset and info["dataset"].get("hash") == ds.info().get("hash") \
                and info.get("seed") == seed and info.get("epochs_override") == cfg.epochs \
                and split_seed_of(info) == cfg.data.split_seed \
                and (info.get("options") or {}) == train_opts and _same_stats(info, cfg):
            changed = _preset_changed(method, run_dir, cfg.preset, train_opts)
            if changed:
                raise ColorkitError(f"{run_dir} holds a {method} run of an earlier {cfg.preset} preset "
                                    f"(today's differs in {', '.join(changed)}); use another --out or delete it")
            log(f"{method} (seed {seed}): reusing finished run {run_dir}")
            return run_dir
        raise ColorkitError(f"{run_dir} holds a run with other settings; use another --out or delete it")
    resume = (run_dir / "train_state").is_dir() or (run_dir / "train_state.old").is_dir()
    log(f"{method} (seed {seed}): {'resuming' if resume else 'training'} ({cfg.preset} preset) -> {run_dir}")
    run_cfg = RunConfig(data=cfg.data, stats=cfg.stats,
                        method=MethodSpec(name=method, preset=cfg.preset, options=train_opts),
                        train=cfg.train.model_copy(update={"seed": seed}))
    return train_config(run_cfg, out=run_dir, resume=resume, prepared=ds, stats=stats)
def _test_split(cfg: BenchConfig, ds: Any, log) -> tuple[Any, Any, dict[str, Any]]:
    """The split scored, its per-image metadata (or None) and a description: ``ds``'s test
    split, or every usable image of ``--test-dataset``."""
    from colorkit.data import prepare
    from colorkit.data.meta import load_meta

    if cfg.test_dataset is None:
        return ds.split("test"), load_meta(ds), {
            "name": ds.name or Path(ds.source).name, "source": str(ds.source), "hash": ds.info().get("hash"),
            "images": int(len(ds.test_idx)), "held_out": False}

    tds = prepare(cfg.test_dataset, size=cfg.size, crop=cfg.data.crop, split_seed=cfg.data.split_seed,
                  cache_dir=cfg.data.cache_dir, progress=cfg.progress)
    info = tds.info()
    log(f"test set: {tds.source}: {tds.n} usable images (all scored), {info['n_skipped']} skipped "
        + (f"({', '.join(f'{k}: {v}' for k, v in info['skipped'].items())})" if info["n_skipped"] else ""))
    return tds.split("all"), load_meta(tds), {"name": tds.name or Path(tds.source).name, "source": str(tds.source),
                              "hash": info.get("hash"), "images": int(tds.n), "held_out": True,
                              "skipped": info["skipped"], "n_skipped": info["n_skipped"]}


def _check(cfg: BenchConfig) -> None:
    """Refuse what cannot run, before any work."""
    from colorkit.train.runs import check_options

    if not cfg.methods:
        raise ColorkitError("no methods given; e.g. --methods mdn,cvae,cgan")
    if len(set(cfg.methods)) != len(cfg.methods):
        raise ColorkitError(f"--methods lists a method twice: {','.join(cfg.methods)}")
    resolve_threads(cfg.threads)  # a bad --threads fails here (a number >= 1 or "auto")
    if cfg.hints is None:
        for m in cfg.methods:
            if hints_only(m):
                raise ColorkitError(f"{m} is scored only with colour hints (without them it says nothing): "
                                    "add --hints, e.g. --hints 0,5,10")
    else:
        check_hint_counts(cfg.hints, cfg.size)
    scored = list(cfg.methods) + ([r for r in _references(cfg) if r not in cfg.methods] if cfg.references else [])
    for m in scored:  # every method trained, references included: fail before any work
        check_options(m, cfg.preset, cfg.method_options(m)[0])  # (an unknown name lists the known)
        check_sampling(cfg, m)  # a bad mode or sampling setting, too, before the training
    unknown_scopes = sorted(set(cfg.options) - {"*", *cfg.methods})
    if unknown_scopes:
        raise ColorkitError(f"--option names method(s) {', '.join(unknown_scopes)} that --methods does not list")
    for key in cfg.options.get("*", {}):
        if not any(key in {**cfg.method_options(m)[0], **cfg.method_options(m)[1]} for m in cfg.methods):
            raise ColorkitError(f"--option {key}: no method of --methods ({', '.join(cfg.methods)}) has a config "
                                f"field or sampling setting {key!r}; scope it as METHOD:{key}=VALUE")


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    from colorkit.core.environment import versions
    from colorkit.core.stats import load_or_compute_stats
    from colorkit.inference import load
    from colorkit.train.runs import read_run

    t_start = time.perf_counter()
    load_start = machine_load()
    _check(cfg)
    threads = resolve_threads(cfg.threads)
    if threads is not None:
        torch.set_num_threads(threads)
    out = Path(cfg.out)
    from colorkit.core.fs import ensure_writable_dir

    ensure_writable_dir(out)  # a read-only or full --out fails now, not after the training

    def log(msg: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(f"[{time.perf_counter() - t_start:6.1f}s] {msg}")

    speed = machine_speed()  # before the work, at the run's thread count; touches no global random state
    log(f"machine: {speed['reference_steps_per_s']} reference steps/s at {torch.get_num_threads()} threads; "
        f"anchor: matmul {speed['anchor_gflops']['matmul']} GFLOP/s, convolution {speed['anchor_gflops']['conv']} "
        "GFLOP/s")
    watch_mark = loadwatch.mark()
    ds = cfg.data.prepare(progress=cfg.progress)
    stats = load_or_compute_stats(ds, cfg.stats, progress=cfg.progress)
    log(f"data: {ds.source}: {len(ds.train_idx)} train / {len(ds.test_idx)} test images at {ds.size}x{ds.size}")
    test, meta_of, test_info = _test_split(cfg, ds, log)
    methods = list(cfg.methods)
    if cfg.references:
        methods += [r for r in _references(cfg, with_meta=meta_of is not None) if r not in methods]
    metrics, skipped_metrics = build_metrics(stats, with_meta=meta_of is not None)
    for name, why in skipped_metrics.items():
        if "metadata" not in why:  # metadata-only metrics (synth's) are expected to skip elsewhere
            log(f"metric {name} skipped: {why}")
    seeds = [cfg.seed + i for i in range(cfg.seeds)]

    rows: dict[str, dict[str, Any]] = {}
    per_image: dict[str, dict[str, list[torch.Tensor]]] = {}  # row -> metric -> per-seed (N,)
    sheet: dict[str, torch.Tensor] = {}
    budgets: dict[str, dict[str, Any]] = {}
    usage: dict[str, dict[str, Any]] = {}
    hint_scores = HintScores(cfg.hints) if cfg.hints is not None else None
    device = None
    for method in methods:
        role = role_of(method)
        only_with_hints = hints_only(method)
        for si, seed in enumerate(seeds):
            run_dir = _run_for(method, seed, cfg, ds, stats, log)
            info = read_run(run_dir)
            sample_opts = cfg.method_options(method)[1]
            colorizer = load(run_dir, device=cfg.device, options=sample_opts)
            device = str(colorizer.device)
            if si == 0:
                budgets[method] = _budget(info)
                diag = colorizer.method.diagnostics(test, k=cfg.k, batch_size=max(cfg.batch_size, 64))
                if diag:
                    usage[method] = {"train": (info.get("diagnostics") or {}).get("train"), "test": diag}
            modes = list(colorizer.method.sample_modes)
            if colorizer.sampling.mode is not None:  # --option mode=...: that mode only
                modes = [colorizer.sampling.mode]
            score_modes = modes if cfg.extra_modes else modes[:1]
            own_refs = set(colorizer.method.reference_modes)
            for mi, mode in enumerate(score_modes):
                name = method if mi == 0 else f"{method}[{mode}]"
                if mode in own_refs and not cfg.references:
                    continue
                mode_arg = mode if len(modes) > 1 or colorizer.sampling.mode else None
                kind = "reference" if mode in own_refs else role
                if not only_with_hints:  # (levin and the like: only with hints, below)
                    res = evaluate(colorizer, test, metrics, k=cfg.k, seed=seed, batch_size=cfg.batch_size,
                                   mode=mode_arg, progress=cfg.progress,
                                   keep=cfg.sample_images if si == 0 else 0, meta_of=meta_of)
                    row = rows.setdefault(name, {"kind": kind, "method": method, "mode": mode,
                                                 "run_dir": str(run_dir), "per_seed": {}, "train_seconds": 0.0,
                                                 "infer_seconds_per_image": 0.0})
                    row["per_seed"][str(seed)] = res["values"]
                    row["train_seconds"] += float(info["train_seconds"]) / len(seeds)
                    row["infer_seconds_per_image"] += res["infer_seconds_per_image"] / len(seeds)
                    for mname, v in res["per_image"].items():
                        if v is not None:
                            per_image.setdefault(name, {}).setdefault(mname, []).append(v)
                    if res["kept"] is not None:
                        sheet[name] = res["kept"]
                    log(f"{name} (seed {seed}): error_of_best {res['values'][PRIMARY]:.4f}, "
                        f"variance {res['values']['variance']:.2e}" if "variance" in res["values"] else
                        f"{name} (seed {seed}): error_of_best {res['values'].get(PRIMARY, math.nan):.4f}")
                if hint_scores is not None:
                    scores = evaluate_hints(colorizer, test, cfg.hints, k=cfg.k, seed=seed, hint_seed=cfg.seed,
                                            batch_size=cfg.batch_size, mode=mode_arg, progress=cfg.progress,
                                            meta_of=meta_of, without=None if only_with_hints else res)
                    hint_scores.add(name, {"kind": kind, "method": method, "mode": mode, "run_dir": str(run_dir)},
                                    seed, scores, len(seeds))
                    log(f"{name} (seed {seed}) with hints: error_of_best at pixels without a hint "
                        + ", ".join(f"{c}: {scores[c]['values'][PRIMARY]:.4f}" for c in cfg.hints))
    for name, other in identical_rows(rows, per_image).items():
        rows[name]["same_as"] = other  # the same colorizations: the tables and the figure say it once
        sheet.pop(name, None)
    # aggregate: per-image values averaged over seeds -> value and interval
    image_means = aggregate_seeds(rows, per_image, list(metrics), seeds, resamples=cfg.resamples, seed=cfg.seed)
    results = {
        "methods": rows,
        "verdicts": _verdicts(rows, image_means, cfg),
        "metrics": metric_info(metrics),
        "skipped_metrics": skipped_metrics,
        "budget": budgets,
        "mixture_usage": usage,
        "dataset": {"name": ds.name or Path(ds.source).name, "source": str(ds.source), "size": ds.size,
                    "hash": ds.info().get("hash")},
        "test_set": test_info,
        "split": {"train": int(len(ds.train_idx)), "test": int(len(test))},
        "preset": cfg.preset, "seed": cfg.seed, "seeds": seeds, "k": cfg.k, "epochs_override": cfg.epochs,
        "bootstrap": {"resamples": cfg.resamples, "level": LEVEL, "seed": cfg.seed, "over": "test images"},
        "versions": versions(), "device": device or cfg.device,
        "threads": loadwatch.own_threads(), "machine": {
            **describe_machine(), **speed, "load_start": load_start,
            "load_end": machine_load(own_threads=torch.get_num_threads()),  # not counting the bench's own threads
            "busy_cores_at_start": STARTUP.get("busy_cores"), "openmp": openmp_environment(),
            "thread_changes": loadwatch.changes_since(watch_mark)},
        "units": {**{n: i["units"] for n, i in metric_info(metrics).items()}, **EXTRA_UNITS},
        "config": cfg.model_dump(mode="json"),
        "environment": environment(),
        "colorkit_version": __version__,
    }
    if hint_scores is not None:
        results["hints"] = hints_protocol(cfg.hints, cfg.seed)
        results["by_hints"] = hint_scores.results(seeds, resamples=cfg.resamples, seed=cfg.seed)
    write_outputs(out, results, sheet, test, cfg)
    results["elapsed_seconds"] = time.perf_counter() - t_start
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, sort_keys=True))
    return results


def _references(cfg: BenchConfig, with_meta: bool = False) -> list[str]:
    """The references scored: those that say something only with hints only with --hints."""
    return [r for r in reference_names(with_meta=with_meta) if cfg.hints is not None or not hints_only(r)]


def _budget(info: dict[str, Any]) -> dict[str, Any]:
    stages = info.get("stage_budget")
    return {"stages": stages, "train_seconds": float(info.get("train_seconds", math.nan)),
            "n_train": int(info.get("dataset", {}).get("n_train", 0)), "known": stages is not None}


def _verdicts(rows: dict[str, dict[str, Any]], image_means: dict[str, dict[str, torch.Tensor]],
              cfg: BenchConfig) -> dict[str, Any]:
    """:func:`colorkit.eval.verdicts.verdicts` with the bootstrap settings of ``cfg``."""
    return verdicts(rows, image_means, resamples=cfg.resamples, seed=cfg.seed)
