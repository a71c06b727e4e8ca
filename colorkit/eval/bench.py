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
seed (``seed``, ``seed + 1``, ...) on the same split; a row's value and interval are then
over the per-image values averaged across seeds, and ``per_seed`` / ``seed_mean`` /
``seed_std`` give the spread across seeds.

Outputs in ``OUT``: ``results.json``, ``results.csv``, ``results.md`` (Table 3 layout,
realism measures, training budgets, mixture usage, verdicts last), ``scatter.png``
(variance against error-of-best, references marked) and ``samples.png``. Trained runs live
in ``OUT/runs/<method>/seed-<s>``: an interrupted bench reuses finished ones and resumes an
unfinished one. All errors are in ab / 128 unless a metric's units say otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from colorkit import __version__
from colorkit.core.checkpoint import atomic_write_png, atomic_write_text
from colorkit.core.interfaces import Metric
from colorkit.core.registry import ColorkitError
from colorkit.metrics.bootstrap import LEVEL, RESAMPLES, bootstrap_ci, paired_bootstrap, to_tensor
from colorkit.train.config import DataConfig, StatsConfig

PRIMARY = "error_of_best"
EXTRA_UNITS = {"train_seconds": "s", "infer_seconds_per_image": "s/image"}
# results.md's realism table (when registered): name -> column title
REALISM = {"mae_all": "mean err. (all k)", "hist_kl": "hist. KL", "grad_log_ratio": "grad. log2 ratio",
           "colorfulness_diff": "colourf. - GT", "pairwise_distance": "pairwise dist.",
           "mode_recall": "mode recall", "mode_precision": "mode precision", "coherence": "coherence"}


class BenchConfig(BaseModel):
    """What ``colorkit bench`` does; written whole into ``results.json`` (``"config"``).
    ``data`` and ``stats`` are the sections of :mod:`colorkit.train.config`; ``dataset``,
    ``size``, ``crop``, ``test_size`` and ``cache_dir`` given flat go into ``data`` (whose
    split seed is ``seed``)."""

    model_config = ConfigDict(extra="forbid")
    methods: list[str]
    data: DataConfig = Field(default_factory=DataConfig)
    stats: StatsConfig = Field(default_factory=StatsConfig)
    preset: str = "small"
    epochs: int | None = None
    k: int = 5
    seed: int = 0
    seeds: int = 1
    """Training seeds: ``seed`` ... ``seed + seeds - 1`` (the train/test split keeps ``seed``)."""
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per method (``"*"``: every method that has the field): config fields for training,
    or sampling settings (``mode`` and the method's ``sample_options``) for scoring."""
    runs: list[str] = Field(default_factory=list)
    out: str = "bench-out"
    device: str = "auto"
    progress: bool = True
    batch_size: int = 16
    sample_images: int = 3
    extra_modes: bool = True  # also score every extra sampling mode (e.g. mdn's mixture)
    references: bool = True
    test_dataset: str | None = None
    threads: int | None = None
    resamples: int = RESAMPLES

    @model_validator(mode="before")
    @classmethod
    def _flat_data(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        flat = {k: values.pop(k) for k in ("dataset", "size", "crop", "test_size", "cache_dir") if k in values}
        data = values.get("data")
        data = data.model_dump() if isinstance(data, DataConfig) else dict(data or {})
        values["data"] = {**data, **flat, "seed": values.get("seed", data.get("seed", 0))}
        return values

    @property
    def dataset(self) -> str:
        return self.data.dataset

    @property
    def size(self) -> int:
        return self.data.size

    def method_options(self, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(training options, sampling options)`` of ``method`` from :attr:`options`."""
        from colorkit.core.plugin_manager import registry

        factory = registry("conditional_model").get(method).factory
        fields = set(getattr(getattr(factory, "Config", None), "model_fields", {}))
        sampling_keys = set(getattr(factory, "sample_options", ())) | {"mode"}
        train_opts: dict[str, Any] = {}
        sample_opts: dict[str, Any] = {}
        for scope in ("*", method):
            for key, value in self.options.get(scope, {}).items():
                if key in sampling_keys:
                    sample_opts[key] = value
                elif key in fields or scope == method:
                    train_opts[key] = value
        return train_opts, sample_opts


def parse_bench_options(pairs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"[METHOD:]KEY": value}`` (``--option``) -> ``{METHOD or "*": {KEY: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in pairs.items():
        method, _, field = key.rpartition(":") if ":" in key and not key.startswith("timm:") else ("", "", key)
        out.setdefault(method or "*", {})[field] = value
    return out


# ------------------------------------------------------------------ what to score
def reference_names(with_meta: bool = False) -> list[str]:
    """Registered conditional models with ``role = "reference"``, in registry order; those
    that need per-image metadata (``uses_meta``, e.g. synth's ``oracle``) only when
    ``with_meta``."""
    from colorkit.core.plugin_manager import registry

    reg = registry("conditional_model")
    out = []
    for n in reg.names():
        f = reg.get(n).factory
        if getattr(f, "role", "learned") == "reference" and (with_meta or not getattr(f, "uses_meta", False)):
            out.append(n)
    return out


def role_of(method: str) -> str:
    from colorkit.core.plugin_manager import registry

    return str(getattr(registry("conditional_model").get(method).factory, "role", "learned"))


def build_metrics(stats: Any, with_meta: bool = False) -> tuple[dict[str, Metric], dict[str, str]]:
    """Every registered metric built with ``stats``; those that cannot be built, or need
    per-image metadata the data set lacks, are returned as ``{name: reason}`` instead
    (and reported, not fatal)."""
    from colorkit.api import create_metric
    from colorkit.core.plugin_manager import registry

    metrics: dict[str, Metric] = {}
    skipped: dict[str, str] = {}
    for name in registry("metric").names():
        if getattr(registry("metric").get(name).factory, "uses_meta", False) and not with_meta:
            skipped[name] = "needs per-image metadata, which this test set does not have"
            continue
        try:
            metrics[name] = create_metric(name, stats=stats)
        except Exception as exc:  # noqa: BLE001 - a third-party metric must not sink the bench
            skipped[name] = " ".join(str(exc).split()) or type(exc).__name__
    return metrics, skipped


def _is_mean_of_images(m: Metric) -> bool:
    """The metric's value is the mean of its ``per_image`` values (the base class's
    update/compute; a ``uses_meta`` metric may override ``update`` only to pass ``meta``),
    so a bootstrap over images applies."""
    cls = type(m)
    return (cls.update is Metric.update or getattr(m, "uses_meta", False)) and cls.compute is Metric.compute


def metric_info(metrics: dict[str, Metric]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, m in metrics.items():
        doc = (type(m).__doc__ or "").strip().split("\n\n")[0]
        out[name] = {"units": str(getattr(m, "units", "")), "higher_is_better": getattr(m, "higher_is_better", None),
                     "interval": "bootstrap" if _is_mean_of_images(m) else "none (not a mean over images)",
                     "description": " ".join(doc.split())}
    return out


# ------------------------------------------------------------------ runs
def _run_for(method: str, seed: int, cfg: BenchConfig, ds: Any, stats: Any, log) -> Path:
    """A finished run directory for ``method`` and training ``seed``: given with --runs,
    left by an earlier (interrupted) bench, or trained now."""
    from colorkit.train.runs import read_run, train

    train_opts = cfg.method_options(method)[0]
    for r in cfg.runs:
        info = read_run(r)
        if info["method"] == method and int(info.get("seed", 0)) == seed:
            if info["dataset"].get("hash") != ds.info().get("hash"):
                raise ColorkitError(f"run {r} was trained on another data set ({info['dataset'].get('source')}); "
                                    f"bench trains on {ds.source}")
            log(f"{method} (seed {seed}): reusing run {r}")
            return Path(r)
    run_dir = Path(cfg.out) / "runs" / method / f"seed-{seed}"
    if (run_dir / "run.json").is_file():
        info = read_run(run_dir)
        if info.get("preset") == cfg.preset and info["dataset"].get("hash") == ds.info().get("hash") \
                and info.get("seed") == seed and info.get("epochs_override") == cfg.epochs \
                and (info.get("options") or {}) == train_opts \
                and (info.get("config") or {}).get("stats", cfg.stats.model_dump(mode="json")) \
                == cfg.stats.model_dump(mode="json"):
            log(f"{method} (seed {seed}): reusing finished run {run_dir}")
            return run_dir
        raise ColorkitError(f"{run_dir} holds a run with other settings; use another --out or delete it")
    resume = (run_dir / "train_state").is_dir() or (run_dir / "train_state.old").is_dir()
    log(f"{method} (seed {seed}): {'resuming' if resume else 'training'} ({cfg.preset} preset) -> {run_dir}")
    return train(method, out=run_dir, preset=cfg.preset, epochs=cfg.epochs, seed=seed, device=cfg.device,
                 resume=resume, progress=cfg.progress, prepared=ds, stats=stats, options=train_opts,
                 data=cfg.data, stats_config=cfg.stats)


# ------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate(colorizer: Any, test: Any, metrics: dict[str, Metric], *, k: int, seed: int, batch_size: int,
             mode: str | None, progress: bool = False, keep: int = 0, meta_of: Any = None) -> dict[str, Any]:
    """Score one method on the whole test split with every metric in ``metrics``.

    ``meta_of``: the test set's per-image metadata (``colorkit.data.meta.load_meta``) or
    None; with it, methods and metrics that declare ``uses_meta`` get each batch's records
    as ``meta=``. Returns ``{"values": {name: float}, "per_image": {name: (N,) float64 tensor or None},
    "infer_seconds_per_image": float, "kept": (keep, k, 2, H, W) or None}``."""
    uses_meta = bool(getattr(colorizer.method, "uses_meta", False))
    if uses_meta and meta_of is None:
        raise ColorkitError(f"{colorizer.name} needs per-image metadata, which this test set does not have; "
                            "use a data set with metadata such as synth")
    per_image: dict[str, list[torch.Tensor]] = {name: [] for name in metrics}
    for m in metrics.values():
        m.reset()
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
        samples, target, grey = samples.float().cpu(), b["ab"], b["grey"]
        for name, m in metrics.items():
            kw = {"meta": meta} if getattr(m, "uses_meta", False) else {}
            if _is_mean_of_images(m):
                per_image[name].append(m.per_image(samples, target, grey, **kw).detach())
            else:
                m.update(samples, target, grey, **kw)
        if sum(len(x) for x in kept) < keep:
            kept.append(samples)
        if bar is not None:
            bar.update(grey.shape[0])
    if bar is not None:
        bar.close()
    values: dict[str, float] = {}
    images: dict[str, torch.Tensor | None] = {}
    for name, m in metrics.items():
        if _is_mean_of_images(m):
            v = to_tensor(per_image[name])
            images[name] = v
            values[name] = float(v.mean()) if v.numel() else math.nan
        else:
            images[name] = None
            values[name] = float(m.compute())
    return {"values": values, "per_image": images, "infer_seconds_per_image": t_infer / max(n, 1),
            "kept": torch.cat(kept)[:keep] if kept else None}


def _test_split(cfg: BenchConfig, ds: Any, log) -> tuple[Any, Any, dict[str, Any]]:
    """The split scored, its per-image metadata (or None) and a description: ``ds``'s test
    split, or every usable image of ``--test-dataset``."""
    from colorkit.data import prepare
    from colorkit.data.meta import load_meta

    if cfg.test_dataset is None:
        return ds.split("test"), load_meta(ds), {
            "name": ds.name or Path(ds.source).name, "source": str(ds.source), "hash": ds.info().get("hash"),
            "images": int(len(ds.test_idx)), "held_out": False}

    tds = prepare(cfg.test_dataset, size=cfg.size, crop=cfg.data.crop, seed=cfg.seed, cache_dir=cfg.data.cache_dir,
                  progress=cfg.progress)
    info = tds.info()
    log(f"test set: {tds.source}: {tds.n} usable images (all scored), {info['n_skipped']} skipped "
        + (f"({', '.join(f'{k}: {v}' for k, v in info['skipped'].items())})" if info["n_skipped"] else ""))
    return tds.split("all"), load_meta(tds), {"name": tds.name or Path(tds.source).name, "source": str(tds.source),
                              "hash": info.get("hash"), "images": int(tds.n), "held_out": True,
                              "skipped": info["skipped"], "n_skipped": info["n_skipped"]}


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    from colorkit.core.stats import load_or_compute_stats
    from colorkit.train.runs import _versions_safe, check_options, load, read_run

    t_start = time.perf_counter()
    if not cfg.methods:
        raise ColorkitError("no methods given; e.g. --methods mdn,cvae,cgan")
    if len(set(cfg.methods)) != len(cfg.methods):
        raise ColorkitError(f"--methods lists a method twice: {','.join(cfg.methods)}")
    if cfg.k < 1:
        raise ColorkitError(f"--k must be at least 1, got {cfg.k}")
    if cfg.seeds < 1:
        raise ColorkitError(f"--seeds must be at least 1, got {cfg.seeds}")
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise ColorkitError(f"--threads must be at least 1, got {cfg.threads}")
        torch.set_num_threads(cfg.threads)
    scored = list(cfg.methods) + ([r for r in reference_names() if r not in cfg.methods] if cfg.references else [])
    for m in scored:  # every method trained, references included: fail before any work
        check_options(m, cfg.preset, cfg.method_options(m)[0])  # (an unknown name lists the known)
    unknown_scopes = sorted(set(cfg.options) - {"*", *cfg.methods})
    if unknown_scopes:
        raise ColorkitError(f"--option names method(s) {', '.join(unknown_scopes)} that --methods does not list")
    for key in cfg.options.get("*", {}):
        if not any(key in {**cfg.method_options(m)[0], **cfg.method_options(m)[1]} for m in cfg.methods):
            raise ColorkitError(f"--option {key}: no method of --methods ({', '.join(cfg.methods)}) has a config "
                                f"field or sampling setting {key!r}; scope it as METHOD:{key}=VALUE")
    out = Path(cfg.out)
    from colorkit.core.checkpoint import ensure_writable_dir

    ensure_writable_dir(out)  # a read-only or full --out fails now, not after the training

    def log(msg: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(f"[{time.perf_counter() - t_start:6.1f}s] {msg}")

    ds = cfg.data.prepare(progress=cfg.progress)
    stats = load_or_compute_stats(ds, cfg.stats, progress=cfg.progress)
    log(f"data: {ds.source}: {len(ds.train_idx)} train / {len(ds.test_idx)} test images at {ds.size}x{ds.size}")
    test, meta_of, test_info = _test_split(cfg, ds, log)
    methods = list(cfg.methods)
    if cfg.references:
        methods += [r for r in reference_names(with_meta=meta_of is not None) if r not in methods]
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
    device = None
    for method in methods:
        role = role_of(method)
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
            modes = list(getattr(colorizer.method, "sample_modes", ("default",)))
            if colorizer.sampling.mode is not None:  # --option mode=...: that mode only
                modes = [colorizer.sampling.mode]
            score_modes = modes if cfg.extra_modes else modes[:1]
            own_refs = set(getattr(colorizer.method, "reference_modes", ()))
            for mi, mode in enumerate(score_modes):
                name = method if mi == 0 else f"{method}[{mode}]"
                if mode in own_refs and not cfg.references:
                    continue
                res = evaluate(colorizer, test, metrics, k=cfg.k, seed=seed, batch_size=cfg.batch_size,
                               mode=mode if len(modes) > 1 or colorizer.sampling.mode else None,
                               progress=cfg.progress,
                               keep=cfg.sample_images if si == 0 else 0, meta_of=meta_of)
                kind = "reference" if mode in own_refs else role
                row = rows.setdefault(name, {"kind": kind, "method": method, "mode": mode, "run_dir": str(run_dir),
                                             "per_seed": {}, "train_seconds": 0.0, "infer_seconds_per_image": 0.0})
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
    # aggregate: per-image values averaged over seeds -> value and interval
    image_means: dict[str, dict[str, torch.Tensor]] = {}
    for name, row in rows.items():
        for mname in metrics:
            seed_vals = [row["per_seed"][str(s)][mname] for s in seeds]
            series = per_image.get(name, {}).get(mname)
            if series:
                v = torch.stack(series).mean(0)
                image_means.setdefault(name, {})[mname] = v
                row[mname] = float(v.mean())
                row[f"{mname}_ci"] = list(bootstrap_ci(v, resamples=cfg.resamples, seed=cfg.seed))
            else:
                row[mname] = float(sum(seed_vals) / len(seed_vals))
                row[f"{mname}_ci"] = None
            if len(seeds) > 1:
                t = torch.tensor(seed_vals, dtype=torch.float64)
                row.setdefault("seed_mean", {})[mname] = float(t.mean())
                row.setdefault("seed_std", {})[mname] = float(t.std(unbiased=True))
    verdicts = _verdicts(rows, image_means, cfg)
    results = {
        "methods": rows,
        "verdicts": verdicts,
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
        "versions": _versions_safe(), "device": device or cfg.device,
        "threads": torch.get_num_threads(), "machine": {"processor": _cpu_name(), "system": platform.system()},
        "units": {**{n: i["units"] for n, i in metric_info(metrics).items()}, **EXTRA_UNITS},
        "config": cfg.model_dump(mode="json"),
        "colorkit_version": __version__,
    }
    write_outputs(out, results, sheet, test, cfg)
    results["elapsed_seconds"] = time.perf_counter() - t_start
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, sort_keys=True))
    return results


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _budget(info: dict[str, Any]) -> dict[str, Any]:
    stages = info.get("stage_budget")
    return {"stages": stages, "train_seconds": float(info.get("train_seconds", math.nan)),
            "n_train": int(info.get("dataset", {}).get("n_train", 0)), "known": stages is not None}


def _verdicts(rows: dict[str, dict[str, Any]], image_means: dict[str, dict[str, torch.Tensor]],
              cfg: BenchConfig) -> dict[str, Any]:
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
            diff, low, high = paired_bootstrap(mine, image_means[ref][PRIMARY], resamples=cfg.resamples, seed=cfg.seed)
            outcome = "beats" if high < 0 else ("worse" if low > 0 else "not distinguishable")
            comparisons[ref] = {"difference": diff, "ci": [low, high], "outcome": outcome}
        out[name] = {"error_of_best": row[PRIMARY], "ci": row[f"{PRIMARY}_ci"], "against": comparisons,
                     "beats": [r for r, c in comparisons.items() if c["outcome"] == "beats"],
                     "does_not_beat": [r for r, c in comparisons.items() if c["outcome"] != "beats"],
                     "text": verdict_line(name, row, comparisons)}
    return out


def _ci_text(ci: list[float] | None, fmt: str = "{:.3f}") -> str:
    if not ci or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ci):
        return ""
    return f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def verdict_line(name: str, row: dict[str, Any], comparisons: dict[str, dict[str, Any]]) -> str:
    beats = [r for r, c in comparisons.items() if c["outcome"] == "beats"]
    rest = [(r, c) for r, c in comparisons.items() if c["outcome"] != "beats"]
    parts = [f"{name}: error-of-best {row[PRIMARY]:.3f}{_ci_text(row.get(PRIMARY + '_ci'))}"]
    parts.append(f"beats {', '.join(beats)}" if beats else "beats no reference")
    for r, c in rest:
        word = "is WORSE than" if c["outcome"] == "worse" else "does NOT beat"
        parts.append(f"{word} {r} (difference {c['difference']:+.3f}{_ci_text(c['ci'])})")
    return "; ".join(parts)


# ------------------------------------------------------------------ outputs
def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def _spec(name: str) -> str:
    return ".1e" if name == "variance" else ".4g"


def table_markdown(results: dict[str, Any]) -> str:
    """Table 3 layout (Eob., Var. with intervals), realism, every other metric, seeds,
    training budgets, mixture usage, then one verdict line per learned method."""
    rows, metrics = results["methods"], results["metrics"]
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
        "",
        f"| Method | kind | {d} Eob. | {d} Var. |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['kind']} | {_fmt(r.get(PRIMARY), '.3f')}{_ci_text(r.get(PRIMARY + '_ci'))} | "
                     f"{_fmt(r.get('variance'), '.1e')}{_ci_text(r.get('variance_ci'), '{:.1e}')} |")
    realism = [m for m in REALISM if m in metrics]
    if realism:
        lines += ["", "Realism (error-of-best rewards spreading k guesses; these do not):", "",
                  "| Method | " + " | ".join(REALISM[m] for m in realism) + " |",
                  "|---|" + "---|" * len(realism)]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(
                f"{_fmt(r.get(m), '.3f')}{_ci_text(r.get(m + '_ci'))}" for m in realism) + " |")
    other = [m for m in metrics if m not in realism and m not in (PRIMARY, "variance")]
    if other:
        lines += ["", "| Method | " + " | ".join(other)
                  + " | train s | infer s/img |", "|---|" + "---|" * (len(other) + 2)]
        for name, r in rows.items():
            lines.append(
                f"| {name} | "
                + " | ".join(_fmt(r.get(m), _spec(m)) for m in other)
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
    lines += ["", "Units: " + "; ".join(f"{k}: {v}" for k, v in results["units"].items()), ""]
    if results["verdicts"]:
        lines += ["Verdicts (paired bootstrap of per-image error-of-best against each reference; "
                  "'beats' = the whole 95% interval of the difference is below 0):", ""]
        lines += [f"- {v['text']}" for v in results["verdicts"].values()]
        lines.append("")
    return "\n".join(lines)


def write_outputs(
    out: Path, results: dict[str, Any], sheet: dict[str, torch.Tensor], test: Any, cfg: BenchConfig
) -> None:
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
    if sheet:
        sample_sheet(
            sheet, test, out / "samples.png", k=cfg.k, kinds={n: r["kind"] for n, r in results["methods"].items()}
        )


def scatter_plot(results: dict[str, Any], path: Path) -> None:
    """Variance (x, symmetric-log so that 0 is drawn at 0) against error-of-best (y, with
    its interval); references as grey crosses, learned methods as coloured dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    rows = results["methods"]
    pos = [r["variance"] for r in rows.values() if r.get("variance", 0) > 0]
    linthresh = min(pos) / 2 if pos else 1e-6
    for name, r in rows.items():
        x, y = r.get("variance", math.nan), r.get(PRIMARY, math.nan)
        ci = r.get(f"{PRIMARY}_ci")
        ref = r["kind"] == "reference"
        yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
        ax.errorbar(x, y, yerr=yerr, fmt="x" if ref else "o", color="0.45" if ref else None, ms=7 if ref else 6,
                    capsize=2, lw=1)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7,
                    color="0.35" if ref else "black")
    ax.set_xscale("symlog", linthresh=linthresh)
    if pos:  # 0, then decades from a few linthresh up (a decade next to 0 would overprint it)
        lo, hi = math.ceil(math.log10(linthresh * 1.5)), math.floor(math.log10(max(pos)))
        ax.set_xticks([0.0] + [10.0 ** e for e in range(lo, hi + 1)])
    ax.set_xlabel("variance across the k colorizations [(ab/128)^2], symlog\n(diversity: higher is more diverse)")
    ax.set_ylabel("error-of-best [ab/128] (lower is better)")
    ax.set_title(f"{results['test_set']['name']}: {results['split']['test']} test images, k = {results['k']}; "
                 "x = reference, bars = 95% CI", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write_png(path, fig, dpi=110, bbox_inches="tight")


def sample_sheet(sheet: dict[str, torch.Tensor], test: Any, path: Path, *, k: int, tile: int = 64,
                 kinds: dict[str, str] | None = None) -> None:
    """For each of the first few test images a block: one row per method and mode
    (label | grey | k colorizations | ground truth)."""
    from PIL import Image, ImageDraw

    from colorkit.core.color import model_to_rgb
    from colorkit.data.imageio import to_pil

    n = min(len(v) for v in sheet.values())
    b = test.batch(list(range(n)))
    label_w, pad = 150, 3
    cols = k + 2
    rows_per_block = len(sheet)
    block_h = 16 + rows_per_block * (tile + pad)
    img = Image.new("RGB", (label_w + cols * (tile + pad), n * (block_h + 8)), "white")
    draw = ImageDraw.Draw(img)
    for i in range(n):
        y0 = i * (block_h + 8)
        grey = b["grey"][i : i + 1]
        grey_img = to_pil(model_to_rgb(grey, torch.zeros_like(b["ab"][i : i + 1]))[0]).resize((tile, tile))
        truth = to_pil(model_to_rgb(grey, b["ab"][i : i + 1])[0]).resize((tile, tile))
        draw.text((2, y0 + 2), f"test image {i + 1}: grey | {k} colorizations | ground truth", fill=(0, 0, 0))
        for j, (name, samples) in enumerate(sheet.items()):
            y = y0 + 16 + j * (tile + pad)
            kind = (kinds or {}).get(name, "")
            draw.text((2, y + tile // 2 - 6), f"{name}{' (ref.)' if kind == 'reference' else ''}",
                      fill=(90, 90, 90) if kind == "reference" else (0, 0, 0))
            rgb = model_to_rgb(grey.expand(samples.shape[1], -1, -1, -1), samples[i])
            tiles = [grey_img] + [to_pil(x).resize((tile, tile)) for x in rgb] + [truth]
            for c, t in enumerate(tiles):
                img.paste(t, (label_w + c * (tile + pad), y))
    atomic_write_png(path, img)
