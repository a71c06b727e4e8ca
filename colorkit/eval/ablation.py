"""``colorkit bench --ablation decoder-loss``: the paper's Tables 1-2 (section 7.2).

The colour embedder of a method (``mdn``'s VAE) is trained three times, with the decoder
loss ``l2`` (plain), ``mah`` (specificity only) and the full eq. 4 (``hist`` + 0.1 ``mah`` +
1e-3 ``grad``), each given as registered decoder-loss names with their weights in the config
field the method declares (``Method.decoder_loss_option``); only the method's
``embedding_stages()`` are trained. Then each embedder (``colour_embedder()``) reconstructs
the test colour fields from the posterior mean (the "best possible embedding", not a
colorization) and is scored with absolute and weighted absolute error over all pixels and
over the central 8x8 grid, in ab / 128.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from colorkit.core.fs import atomic_write_text

# label -> the method's decoder loss option: registered decoder-loss names and weights
VARIANTS: dict[str, dict[str, float]] = {
    "L2-Loss": {"l2": 1.0},
    "Mah-Loss": {"mah": 1.0},
    "Mah-Loss + Colorfulness + Gradient": {"hist": 1.0, "mah": 0.1, "grad": 1e-3},
}
ABLATION_METRICS = ("mae_all", "mae_grid", "wmae_all", "wmae_grid")


@torch.no_grad()
def reconstruct_scores(embedder: Any, test: Any, stats: Any, batch_size: int = 32) -> dict[str, float]:
    from colorkit.metrics import MetricCollection

    metrics = MetricCollection(list(ABLATION_METRICS), stats=stats)
    embedder.eval()
    dev = next(embedder.parameters()).device
    for start in range(0, len(test), batch_size):
        b = test.batch(list(range(start, min(len(test), start + batch_size))))
        ab, grey = b["ab"].to(dev), b["grey"].to(dev)
        g = grey if embedder.uses_grey else None
        recon = embedder.decode(embedder.encode(ab, g).mu, g)  # (B, 2, H, W)
        metrics.update(recon[:, None].float().cpu(), b["ab"], b["grey"])
    return metrics.compute()


def variant_settings(*, method: str, preset: str, epochs: int | None, seed: int, weights: dict[str, float],
                     ds: Any, stats_config: Any) -> dict[str, Any]:
    """Everything a variant's scores depend on; written into its ``scores.json`` and
    compared before finished scores are reused."""
    from colorkit.core.stats import StatsConfig

    return {"method": method, "preset": preset, "epochs": epochs, "seed": seed, "decoder_loss": dict(weights),
            "dataset": ds.info().get("hash"), "size": ds.size, "split_seed": int(ds.seed),
            "test_images": int(len(ds.test_idx)),
            "stats": (stats_config or StatsConfig()).model_dump(mode="json")}


def _finished_scores(path: Path, settings: dict[str, Any]) -> dict[str, float] | None:
    """The scores in ``path`` when they were made with ``settings``; None when there are none.
    Scores made with other settings (or by a colorkit that did not record them) are an error."""
    from colorkit.core.registry import ColorkitError

    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    kept = data.get("settings") if isinstance(data, dict) else None
    if kept != settings:
        differ = (sorted(k for k in set(settings) | set(kept) if settings.get(k) != kept.get(k))
                  if isinstance(kept, dict) else ["(not recorded)"])
        raise ColorkitError(f"{path} holds scores made with other settings ({', '.join(differ)}); "
                            f"use another --out or delete {path.parent}")
    return {k: float(v) for k, v in data.items() if k != "settings"}


def run_ablation(*, dataset: str = "demo", preset: str = "small", epochs: int | None = None, seed: int = 0,
                 out: str = "bench-out", size: int = 64, device: str = "auto", progress: bool = True,
                 method: str = "mdn", data: Any = None, stats_config: Any = None) -> str:
    """``data`` (a :class:`~colorkit.train.config.DataConfig`) replaces ``dataset`` and
    ``size`` (the split is ``data.split_seed``'s, 0 by default); ``seed`` is the training
    seed; ``stats_config`` chooses the colour statistics. A variant whose ``scores.json``
    exists (an interrupted ablation) is reused only when it was made with the same
    settings; otherwise this fails, naming the settings that differ."""
    from colorkit.core.interfaces import Method, declared
    from colorkit.core.plugin_manager import registry
    from colorkit.core.registry import ColorkitError
    from colorkit.core.stats import load_or_compute_stats
    from colorkit.train.config import DataConfig, environment
    from colorkit.train.engine import TrainConfig, Trainer
    from colorkit.train.runs import build_method

    option = declared(registry("method").get(method).factory, Method).decoder_loss_option
    if option is None:
        raise ColorkitError(f"method {method!r} declares no decoder loss option (Method.decoder_loss_option), so the "
                            "decoder-loss ablation cannot train it; use a method with a colour embedder, e.g. mdn")
    data = data if data is not None else DataConfig(dataset=dataset, size=size)
    ds = data.prepare(progress=progress)
    stats = load_or_compute_stats(ds, stats_config, progress=progress)
    root = Path(out) / "ablation"
    results: dict[str, dict[str, float]] = {}
    for label, weights in VARIANTS.items():
        slug = {"L2-Loss": "l2", "Mah-Loss": "mah"}.get(label, "full")
        res_path = root / slug / "scores.json"
        settings = variant_settings(method=method, preset=preset, epochs=epochs, seed=seed, weights=weights, ds=ds,
                                    stats_config=stats_config)
        finished = _finished_scores(res_path, settings)
        if finished is not None:  # finished earlier (an interrupted ablation resumes here)
            results[label] = finished
            continue
        torch.manual_seed(seed)  # every variant starts from the same initial weights
        m = build_method(method, stats, preset=preset, options={option: weights}, dataset=ds)
        m.registry_name = method
        embedder, stages = m.colour_embedder(), m.embedding_stages()  # only the embedder is trained here
        if embedder is None:
            raise ColorkitError(f"method {method!r} has no colour embedder (Method.colour_embedder) to score")
        run_dir = root / slug
        resume = (run_dir / "train_state").is_dir()
        Trainer(TrainConfig(seed=seed, epochs=epochs, device=device, progress=progress)).fit(
            m, ds.split("train"), run_dir, resume=resume, stages=stages)
        scores = reconstruct_scores(embedder, ds.split("test"), stats)
        atomic_write_text(res_path, json.dumps({**scores, "settings": settings}, indent=2))
        results[label] = scores
    d = ds.name or Path(ds.source).name
    def table(title: str, all_key: str, grid_key: str, fmt: str) -> list[str]:
        return [
            title,
            "",
            "| Dataset | " + " | ".join(f"{v} All | {v} Grid" for v in VARIANTS) + " |",
            "|---|" + "---|---|" * len(VARIANTS),
            f"| {d} | "
            + " | ".join(f"{results[v][all_key]:{fmt}} | {results[v][grid_key]:{fmt}}" for v in VARIANTS)
            + " |",
            "",
        ]

    lines = [
        f"Decoder-loss ablation on `{d}` ({len(ds.test_idx)} test images, preset {preset}): VAE reconstructions "
        "from the posterior mean, errors in ab/128 (weighted: x colourfulness weight of the true pixel's bin).",
        "",
        *table("Table 1 (absolute error):", "mae_all", "mae_grid", ".4f"),
        *table("Table 2 (weighted absolute error):", "wmae_all", "wmae_grid", ".3f"),
    ]
    text = "\n".join(lines)
    atomic_write_text(root / "ablation.md", text)
    atomic_write_text(root / "ablation.json", json.dumps({
        "variants": {v: {"weights": VARIANTS[v], **results[v]} for v in VARIANTS},
        "units": "ab/128; weighted errors multiply by the colourfulness weight (mean 1 over training pixels)",
        "dataset": str(ds.source), "preset": preset, "seed": seed, "test_images": int(len(ds.test_idx)),
        "environment": environment(),
    }, indent=2))
    return text
