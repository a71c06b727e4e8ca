"""``colorkit bench``: train (or reuse) methods, score them on one test split.

Every method is evaluated on the same test images and the same grey inputs, with the
registered metrics (paper units, ab / 128; see :mod:`colorkit.metrics`). Outputs in ``OUT``:
``results.json``, ``results.csv``, ``results.md`` (laid out like the paper's Table 3),
``scatter.png`` (variance against error-of-best) and ``samples.png`` (grey | k
colorizations per method | ground truth). Trained runs live in ``OUT/runs/<method>``: an
interrupted bench reuses finished ones and resumes an unfinished one.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from colorkit import __version__
from colorkit.checkpoint import atomic_write_text
from colorkit.registry import ColorkitError

METRICS = ("error_of_best", "variance", "mae_all", "mae_grid", "wmae_all", "wmae_grid",
           "colorfulness", "colorfulness_gt", "pairwise_distance")
UNITS = {
    "error_of_best": "ab/128", "variance": "(ab/128)^2", "mae_all": "ab/128", "mae_grid": "ab/128",
    "wmae_all": "ab/128 x colourfulness weight", "wmae_grid": "ab/128 x colourfulness weight",
    "colorfulness": "Hasler-Suesstrunk M (0-255 RGB)", "colorfulness_gt": "Hasler-Suesstrunk M (0-255 RGB)",
    "pairwise_distance": "ab/128", "train_seconds": "s", "infer_seconds_per_image": "s/image",
}


@dataclass
class BenchConfig:
    methods: list[str]
    dataset: str = "demo"
    preset: str = "small"
    epochs: int | None = None
    k: int = 5
    seed: int = 0
    runs: list[str] = field(default_factory=list)
    out: str = "bench-out"
    size: int = 64
    device: str = "auto"
    progress: bool = True
    batch_size: int = 16
    sample_images: int = 6
    extra_modes: bool = True  # also score every extra sampling mode (e.g. mdn's mixture)


def _run_for(method: str, cfg: BenchConfig, ds: Any, stats: Any, log) -> Path:
    """A finished run directory for ``method``: given with --runs, left by an earlier
    (interrupted) bench, or trained now."""
    from colorkit.runs import read_run, train

    for r in cfg.runs:
        info = read_run(r)
        if info["method"] == method:
            if info["dataset"].get("hash") != ds.info().get("hash"):
                raise ColorkitError(f"run {r} was trained on another data set ({info['dataset'].get('source')}); "
                                    f"bench evaluates on {ds.source}")
            log(f"{method}: reusing run {r}")
            return Path(r)
    run_dir = Path(cfg.out) / "runs" / method
    if (run_dir / "run.json").is_file():
        info = read_run(run_dir)
        if info.get("preset") == cfg.preset and info["dataset"].get("hash") == ds.info().get("hash") \
                and info.get("seed") == cfg.seed and info.get("epochs_override") == cfg.epochs:
            log(f"{method}: reusing finished run {run_dir}")
            return run_dir
        raise ColorkitError(f"{run_dir} holds a run with other settings; use another --out or delete it")
    resume = (run_dir / "train_state").is_dir() or (run_dir / "train_state.old").is_dir()
    log(f"{method}: {'resuming' if resume else 'training'} ({cfg.preset} preset) -> {run_dir}")
    return train(method, out=run_dir, preset=cfg.preset, epochs=cfg.epochs, seed=cfg.seed, device=cfg.device,
                 resume=resume, progress=cfg.progress, prepared=ds, stats=stats)


@torch.no_grad()
def evaluate(colorizer: Any, test: Any, stats: Any, *, k: int, seed: int, batch_size: int, mode: str | None,
             progress: bool = False, keep: int = 0) -> tuple[dict[str, float], torch.Tensor | None]:
    """Score one method on the whole test split; returns metrics (+ the first ``keep``
    images' samples for the sample sheet)."""
    from colorkit.metrics import MetricCollection

    metrics = MetricCollection(list(METRICS), stats=stats)
    kept = []
    n = len(test)
    t_infer = 0.0
    gen = torch.Generator(device=colorizer.device).manual_seed(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"eval {colorizer.name}{'[' + mode + ']' if mode else ''}", unit="img", leave=False, disable=None)
    for start in range(0, n, batch_size):
        b = test.batch(list(range(start, min(n, start + batch_size))))
        grey = b["grey"].to(colorizer.device)
        t0 = time.perf_counter()
        samples = colorizer.method.sample(grey, k, mode=mode, generator=gen)
        if samples.device.type == "cuda":
            torch.cuda.synchronize()
        t_infer += time.perf_counter() - t0
        if samples.shape != (grey.shape[0], k, 2, *grey.shape[-2:]):
            raise ColorkitError(f"{colorizer.name}.sample returned shape {tuple(samples.shape)}, expected "
                                f"{(grey.shape[0], k, 2, *grey.shape[-2:])}")
        samples, target, grey = samples.float().cpu(), b["ab"], b["grey"]
        metrics.update(samples, target, grey)
        if sum(len(x) for x in kept) < keep:
            kept.append(samples)
        if bar is not None:
            bar.update(grey.shape[0])
    if bar is not None:
        bar.close()
    res = metrics.compute()
    res["infer_seconds_per_image"] = t_infer / n
    return res, (torch.cat(kept)[:keep] if kept else None)


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    from colorkit.data import prepare
    from colorkit.runs import _versions_safe, load, read_run
    from colorkit.stats import load_or_compute_stats

    t_start = time.perf_counter()
    out = Path(cfg.out)
    from colorkit.checkpoint import ensure_writable_dir

    ensure_writable_dir(out)  # a read-only or full --out fails now, not after the training
    if not cfg.methods:
        raise ColorkitError("no methods given; e.g. --methods mdn,cvae,cgan")
    from colorkit.runs import check_options

    for m in cfg.methods:
        check_options(m, cfg.preset, None)  # fail before any work (unknown name lists the known)
    if len(set(cfg.methods)) != len(cfg.methods):
        raise ColorkitError(f"--methods lists a method twice: {','.join(cfg.methods)}")
    if cfg.k < 1:
        raise ColorkitError(f"--k must be at least 1, got {cfg.k}")

    def log(msg: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(f"[{time.perf_counter() - t_start:6.1f}s] {msg}")

    ds = prepare(cfg.dataset, size=cfg.size, seed=cfg.seed, progress=cfg.progress)
    stats = load_or_compute_stats(ds)
    test = ds.split("test")
    log(f"data: {ds.source}: {len(ds.train_idx)} train / {len(ds.test_idx)} test images at {ds.size}x{ds.size}")

    rows: dict[str, dict[str, Any]] = {}
    sheet: dict[str, torch.Tensor] = {}
    device = None
    for method in cfg.methods:
        run_dir = _run_for(method, cfg, ds, stats, log)
        info = read_run(run_dir)
        colorizer = load(run_dir, device=cfg.device)
        device = str(colorizer.device)
        modes = list(getattr(colorizer.method, "sample_modes", ("default",)))
        score_modes = modes if cfg.extra_modes else modes[:1]
        for i, mode in enumerate(score_modes):
            name = method if i == 0 else f"{method}[{mode}]"
            res, kept = evaluate(colorizer, test, stats, k=cfg.k, seed=cfg.seed, batch_size=cfg.batch_size,
                                 mode=mode if len(modes) > 1 else None, progress=cfg.progress,
                                 keep=cfg.sample_images if i == 0 else 0)
            res = {"train_seconds": float(info["train_seconds"]), **res, "mode": mode, "run_dir": str(run_dir)}
            rows[name] = res
            if kept is not None:
                sheet[method] = kept
            log(f"{name}: error_of_best {res['error_of_best']:.4f}, variance {res['variance']:.2e}")
    results = {
        "methods": rows,
        "dataset": {"name": ds.name or Path(ds.source).name, "source": str(ds.source), "size": ds.size,
                    "hash": ds.info().get("hash")},
        "split": {"train": int(len(ds.train_idx)), "test": int(len(ds.test_idx))},
        "preset": cfg.preset, "seed": cfg.seed, "k": cfg.k, "epochs_override": cfg.epochs,
        "versions": _versions_safe(), "device": device or cfg.device,
        "units": UNITS,
        "colorkit_version": __version__,
    }
    write_outputs(out, results, sheet, test, cfg)
    results["elapsed_seconds"] = time.perf_counter() - t_start
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, sort_keys=True))
    return results


# ------------------------------------------------------------------ outputs
def table_markdown(results: dict[str, Any]) -> str:
    """Paper Table 3 layout (Eob., Var.) followed by the other measures."""
    d = results["dataset"].get("name") or Path(results["dataset"]["source"]).name
    lines = [
        f"Diverse colorization on `{d}` ({results['split']['test']} test images, k = {results['k']}, "
        f"preset {results['preset']}, seed {results['seed']}). Errors in ab/128 (paper units).",
        "",
        f"| Method | {d} Eob. | {d} Var. |",
        "|---|---|---|",
    ]
    for name, r in results["methods"].items():
        lines.append(f"| {name} | {r['error_of_best']:.3f} | {r['variance']:.1e} |")
    lines += [
        "",
        "| Method | MAE all | MAE grid | wMAE all | wMAE grid | colourfulness (GT) | pairwise dist. | train s | infer s/img |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["methods"].items():
        lines.append(
            f"| {name} | {r['mae_all']:.4f} | {r['mae_grid']:.4f} | {r['wmae_all']:.3f} | {r['wmae_grid']:.3f} | "
            f"{r['colorfulness']:.1f} ({r['colorfulness_gt']:.1f}) | {r['pairwise_distance']:.4f} | "
            f"{r['train_seconds']:.1f} | {r['infer_seconds_per_image']:.4f} |"
        )
    lines += ["", "Units: " + "; ".join(f"{k}: {v}" for k, v in UNITS.items()), ""]
    return "\n".join(lines)


def write_outputs(out: Path, results: dict[str, Any], sheet: dict[str, torch.Tensor], test: Any, cfg: BenchConfig) -> None:
    cols = ["method", *METRICS, "train_seconds", "infer_seconds_per_image"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c if c == "method" else f"{c} [{UNITS[c]}]" for c in cols])
    for name, r in results["methods"].items():
        w.writerow([name] + [f"{r[c]:.6g}" for c in cols[1:]])
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.md", table_markdown(results))
    scatter_plot(results, out / "scatter.png")
    if sheet:
        sample_sheet(sheet, test, out / "samples.png", k=cfg.k)


def scatter_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4))
    for name, r in results["methods"].items():
        ax.scatter(max(r["variance"], 1e-12), r["error_of_best"], s=40)
        ax.annotate(name, (max(r["variance"], 1e-12), r["error_of_best"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("variance across k colorizations [(ab/128)^2]  (diversity, higher is better)")
    ax.set_ylabel("error-of-best [ab/128]  (lower is better)")
    ax.set_title(f"{results['split']['test']} test images, k = {results['k']}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def sample_sheet(sheet: dict[str, torch.Tensor], test: Any, path: Path, *, k: int, tile: int = 96) -> None:
    """Rows: test images; columns: grey | k colorizations of each method | ground truth."""
    from colorkit.color import model_to_rgb
    from colorkit.imageio import grid_row, stack_rows, to_pil

    n = min(len(v) for v in sheet.values())
    b = test.batch(list(range(n)))
    rows = []
    for i in range(n):
        grey = b["grey"][i : i + 1]
        outs, labels = [], ["grey"]
        for name, samples in sheet.items():
            rgb = model_to_rgb(grey.expand(samples.shape[1], -1, -1, -1), samples[i])
            outs += [to_pil(x) for x in rgb]
            labels += [f"{name} {j + 1}" for j in range(samples.shape[1])]
        truth = to_pil(model_to_rgb(grey, b["ab"][i : i + 1])[0])
        grey_img = to_pil(model_to_rgb(grey, torch.zeros_like(b["ab"][i : i + 1]))[0])
        rows.append(grid_row(grey_img, outs, height=tile, labels=labels + ["ground truth"] if i == 0 else None, truth=truth))
    img = stack_rows(rows)
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    tmp.replace(path)
