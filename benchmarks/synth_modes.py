"""Mode coverage on the ``synth`` data set, with 95% bootstrap intervals over test images.

Usage (after ``colorkit bench --dataset SPEC --methods mdn,cvae,cgan --out OUT``)::

    python benchmarks/synth_modes.py --out OUT [--also OUT2] [--dataset SPEC] [--k 5] [--sheet docs/x.png]

Scores every finished run in ``OUT/runs`` (and ``OUT2/runs``; every sampling mode) and three references
computed here: ``oracle`` (the image's true themes), ``grey`` (ab = 0) and ``mean-field``
(the training split's mean colour field). Per test image it computes ``mode_recall``,
``mode_precision``, ``coherence`` (fractions) and ``error_of_best`` (ab/128); each
method's mean over images gets a 95% percentile bootstrap interval (1000 resamples of
the test images, numpy seed 0). Writes ``OUT/modes.json`` and ``OUT/modes.md`` and
prints the table; ``--sheet`` writes a sample sheet (grey | k colorizations per method |
ground truth) for the first test images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from colorkit_synth.modes import image_scores
from colorkit_synth.oracle import Oracle

from colorkit.data import prepare
from colorkit.data.meta import load_meta
from colorkit.inference import load
from colorkit.metrics.functional import error_of_best_per_image
from colorkit.train.runs import read_run

RESAMPLES, CI_SEED = 1000, 0


def bootstrap(values: np.ndarray) -> tuple[float, float]:
    rng = np.random.default_rng(CI_SEED)
    idx = rng.integers(0, len(values), (RESAMPLES, len(values)))
    means = values[idx].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def score(samples: torch.Tensor, target: torch.Tensor, meta: list) -> dict[str, np.ndarray]:
    s = np.array([image_scores(x, rec) for x, rec in zip(samples, meta)])
    return {"mode_recall": s[:, 0], "mode_precision": s[:, 1], "coherence": s[:, 2],
            "error_of_best": error_of_best_per_image(samples, target).double().numpy()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dataset", default=None, help="data set spec (default: read from the runs)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sheet", default=None)
    ap.add_argument("--sheet-images", type=int, default=4)
    ap.add_argument("--sheet-methods", default="oracle,mdn-skip,mdn,cvae,cgan")
    ap.add_argument("--also", action="append", default=[], help="another bench --out folder whose runs to score")
    args = ap.parse_args()
    out = Path(args.out)
    runs = []
    for folder in [out, *map(Path, args.also)]:
        if (folder / "runs").is_dir():
            # bench keeps runs in runs/<method>/seed-<s>/ (older benches: runs/<method>/)
            runs += sorted(p.parent for p in (folder / "runs").glob("**/run.json")
                           if p.parent.name in ("seed-0", f"seed-{args.seed}") or p.parent.parent.name == "runs")
    source = args.dataset or (read_run(runs[0])["dataset"]["source"] if runs else "synth")
    ds = prepare(source, split_seed=args.seed, progress=False)
    meta_of = load_meta(ds)
    if meta_of is None:
        raise SystemExit(f"{source}: no per-image metadata; this script is for synth data sets")
    test, train = ds.split("test"), ds.split("train")
    tb = test.batch(list(range(len(test))))
    meta = meta_of(tb["index"])
    grey, target = tb["grey"], tb["ab"]
    n, k = len(test), args.k
    outputs: dict[str, torch.Tensor] = {}
    timing: dict[str, float] = {}
    outputs["oracle"] = Oracle(stats=None).sample(
        grey, k, generator=torch.Generator().manual_seed(args.seed), meta=meta
    )
    outputs["grey"] = torch.zeros(n, k, 2, *grey.shape[-2:])
    mean_field = torch.stack([train.batch(list(range(i, min(len(train), i + 256))))["ab"].sum(0)
                              for i in range(0, len(train), 256)]).sum(0) / len(train)
    outputs["mean-field"] = mean_field.expand(n, k, -1, -1, -1).clone()
    for run in runs:
        info = read_run(run)
        if info["method"] in outputs:  # computed above (oracle, grey, mean-field)
            continue
        if info["dataset"].get("hash") != ds.hash:
            print(f"skipping {run}: trained on another data set")
            continue
        col = load(run, device="cpu")
        modes = list(getattr(col.method, "sample_modes", ("default",)))
        for i, mode in enumerate(modes):
            name = info["method"] if i == 0 else f"{info['method']}[{mode}]"
            gen = torch.Generator().manual_seed(args.seed)
            extra = {}
            outs = []
            for j in range(0, n, 16):
                if getattr(col.method, "uses_meta", False):
                    extra = {"meta": meta[j:j + 16]}
                outs.append(col.method.sample(grey[j:j + 16], k, mode=mode if len(modes) > 1 else None,
                                              generator=gen, **extra))
            outputs[name] = torch.cat(outs).float()
            timing[name] = info.get("train_seconds", float("nan"))
    table = {}
    for name, samples in outputs.items():
        per = score(samples, target, meta)
        table[name] = {m: {"mean": float(v.mean()), "ci95": bootstrap(v)} for m, v in per.items()}
        table[name]["train_seconds"] = timing.get(name)
    groups = [len(r["themes"]) for r in meta]
    res = {"dataset": {"source": str(ds.source), "hash": ds.hash, "n_test": n,
                       "spec": json.loads((Path(ds.source) / "colorkit-meta.json").read_text())["spec_string"]},
           "k": k, "possible_themes_per_image": {"mean": float(np.mean(groups)), "min": int(min(groups)),
                                                 "max": int(max(groups))},
           "bootstrap": {"resamples": RESAMPLES, "seed": CI_SEED, "interval": "95% percentile"},
           "units": {"mode_recall": "fraction", "mode_precision": "fraction", "coherence": "fraction",
                     "error_of_best": "ab/128", "train_seconds": "s"},
           "methods": table}
    (out / "modes.json").write_text(json.dumps(res, indent=2))
    lines = [f"`{res['dataset']['spec']}`: {n} test images, k = {k}, {res['possible_themes_per_image']['mean']:.2f} "
             "possible themes per image on average; 95% bootstrap intervals over test images.", "",
             "| method | mode recall | mode precision | coherence | error-of-best (ab/128) |", "|---|---|---|---|---|"]
    for name, r in table.items():
        cells = [f"{r[m]['mean']:.3f} [{r[m]['ci95'][0]:.3f}, {r[m]['ci95'][1]:.3f}]"
                 for m in ("mode_recall", "mode_precision", "coherence", "error_of_best")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "modes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.sheet:
        from colorkit.eval.bench import sample_sheet

        m = args.sheet_images
        sheet = {name: outputs[name][:m] for name in args.sheet_methods.split(",") if name in outputs}
        sample_sheet(sheet, test, Path(args.sheet), k=k, tile=48)


if __name__ == "__main__":
    main()
