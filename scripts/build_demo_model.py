"""Build the bundled demo model, ``colorkit/models/demo-mdn/``: rerun it to remake it.

    python scripts/build_demo_model.py [--seed 0] [--work DIR]

1. prepares the shipped demo set at 64x64 (seed 0 split: 281 training, 31 test photos) in
   a fresh cache under the work folder;
2. trains ``mdn`` with the ``small`` preset and the preset's epochs (colornet pretext,
   VAE, MDN), as ``colorkit train --method mdn --seed SEED`` does;
3. stores the weights in half precision (float16; the model computes in float32 after
   loading), without the frozen ImageNet backbone's (``backbone.*``): rounding them to
   float16 moved its features enough to change which mixture components the top-k
   picks (up to 0.35 ab/128 on a demo test photo), and in float32 they would take the
   model over 12 MB; they are loaded from the installed package and checked against the
   sha256 recorded in ``model.json`` (``external_weights_sha256``). Also the data set's
   content hash, the seed, the preset and the training
   budget in the safetensors metadata and in ``run.json``;
4. compares the half-precision model's colorizations with the float32 model's on every
   test photo (``topk`` and ``mixture`` modes, k = 5) and refuses to write a model whose
   colour fields differ by more than ``--tolerance`` (ab/128); the differences are
   recorded in ``run.json``;
5. stores the float32 model's colorizations of three test photos in ``check.safetensors``
   so that ``tests/test_demo_model.py`` re-checks the installed weights against them.

The folder is replaced atomically. Training is seeded; the same machine and versions give
the same model up to floating-point reduction order (byte identity is not promised).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_CHECK = 3
"""Test photos whose float32 colorizations are stored for the tests."""
K = 5
LIMIT_BYTES = 12 * 1000 * 1000
"""Tensors left out and loaded from the installed package (see step 3)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="Work folder (data cache, fp32 run) [default: a temporary one].")
    ap.add_argument("--tolerance", type=float, default=0.02,
                    help="Largest accepted |fp16 - fp32| of any colour value, ab/128.")
    args = ap.parse_args()

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="colorkit-demo-model-"))
    os.environ["COLORKIT_CACHE"] = str(work / "cache")

    from colorkit.core.checkpoint import EXTERNAL_KEY, FORMAT, component_meta
    from colorkit.core.fs import atomic_dir, atomic_write_text
    from colorkit.core.tensorfile import save_tensors
    from colorkit.data import prepare
    from colorkit.inference.colorizer import DEMO_MODEL_DIR, Colorizer
    from colorkit.train.runs import RUN_FORMAT, read_run, train

    t0 = time.time()
    ds = prepare("demo", size=64, split_seed=args.seed, progress=True, cache_dir=work / "cache")
    info = ds.info()
    run_dir = work / "run"
    if not (run_dir / "run.json").is_file():
        train("mdn", dataset="demo", out=run_dir, preset="small", seed=args.seed, size=64, device="cpu",
              progress=True, prepared=ds)
    run = read_run(run_dir)
    fp32 = Colorizer(run_dir, device="cpu")

    state = fp32.method.state_dict()
    external = fp32.method.external_weights()  # the frozen backbone's, from its package
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items() if k not in external.keys}
    meta = component_meta(fp32.method, state)
    meta["config"]["cache_dir"] = None  # the build machine's path means nothing elsewhere
    meta["dtype"] = ("float16 weights, the frozen backbone's from its installed package (trained in float32; "
                     "computed in float32 after loading)")
    meta[EXTERNAL_KEY] = external.digest()
    budget = {"preset": "small", "stage_budget": run.get("stage_budget"), "stage_seconds": run.get("stage_seconds"),
              "train_seconds": run["train_seconds"], "threads": run.get("threads")}
    dataset = {"name": "demo", "source": "demo", "size": ds.size, "n_train": info["n_train"], "n_test": info["n_test"],
               "n_images": info["n_images"], "content_hash": info["content_hash"], "split_seed": args.seed,
               "note": "the 312 permissively licensed photos shipped in colorkit/demo_data, resized to 64x64"}
    test = ds.split("test")
    grey_all = test.batch(list(range(len(test))))["grey"]  # (N, 1, 64, 64), L/100

    def sample(c, grey, mode):
        return c.sample(grey, K, mode=mode, seed=0).float()

    ref = {m: sample(fp32, grey_all, m) for m in ("topk", "mixture")}
    with atomic_dir(DEMO_MODEL_DIR) as tmp:
        st_meta = {"format": FORMAT, "kind": meta["kind"], "name": meta["name"],
                   "dtype": "float16 (backbone from its package)",
                   "dataset": "demo", "dataset_content_hash": info["content_hash"], "seed": str(args.seed),
                   "preset": "small", "budget": json.dumps(budget, sort_keys=True),
                   "trained_on": "only the ~300 shipped demo photos at 64x64; not a model of a large data set",
                   "built_by": "scripts/build_demo_model.py"}
        save_tensors(tmp / "model.safetensors", half, st_meta)
        atomic_write_text(tmp / "model.json", json.dumps(meta, indent=2, sort_keys=True))
        shutil.copyfile(run_dir / "stats.safetensors", tmp / "stats.safetensors")
        save_tensors(tmp / "check.safetensors", {"grey": grey_all[:N_CHECK].contiguous(),
                                                  "topk": ref["topk"][:N_CHECK].contiguous()},
                     {"k": str(K), "seed": "0", "units": "grey: L/100; topk: ab/128 of the float32 model",
                      "mode": "topk"})
        record = {
            "format": RUN_FORMAT, "complete": True, "method": "mdn", "preset": "small", "options": {},
            "seed": args.seed, "epochs_override": None, "dataset": dataset, **budget,
            "units": "ab/128 (Lab a,b divided by 128); seconds", "versions": run.get("versions"),
            "role": "learned", "diagnostics": run.get("diagnostics"), "provenance": run.get("provenance"),
            "bundled": {"what": "colorkit's demo model: mdn, small preset, trained only on the ~300 shipped demo "
                                "photos at 64x64; a demonstration, not a model of a large data set",
                        "built_by": "scripts/build_demo_model.py",
                        "weights": "float16; the backbone's from its installed package",
                        "backbone_weights_sha256": meta[EXTERNAL_KEY]},
        }
        atomic_write_text(tmp / "run.json", json.dumps(record, indent=2, sort_keys=True))
        fp16 = Colorizer(tmp, device="cpu")
        check = {}
        for m in ("topk", "mixture"):
            d = (sample(fp16, grey_all, m) - ref[m]).abs()
            check[m] = {"max_abs": round(float(d.max()), 6), "mean_abs": round(float(d.mean()), 8),
                        "images": int(grey_all.shape[0]), "k": K}
        worst = max(v["max_abs"] for v in check.values())
        if worst > args.tolerance:
            raise SystemExit(f"float16 colorizations differ from float32 by up to {worst} ab/128 "
                             f"(tolerance {args.tolerance}); not writing the model")
        record["fp16_check"] = {"units": "ab/128", "against": "the float32 model, every test photo", **check}
        atomic_write_text(tmp / "run.json", json.dumps(record, indent=2, sort_keys=True))
        total = sum(p.stat().st_size for p in tmp.iterdir())
        if total > LIMIT_BYTES:
            raise SystemExit(f"the demo model takes {total} bytes, over the {LIMIT_BYTES} limit")
    sizes = {p.name: p.stat().st_size for p in sorted(DEMO_MODEL_DIR.iterdir())}
    print(json.dumps({"dir": str(DEMO_MODEL_DIR), "bytes": sizes, "total_bytes": sum(sizes.values()),
                      "fp16_check": check, "train_seconds": run["train_seconds"],
                      "content_hash": info["content_hash"], "wall_seconds": round(time.time() - t0, 1)}, indent=2))


if __name__ == "__main__":
    main()
