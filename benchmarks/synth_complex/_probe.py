"""What the MDN-stage probes (mdn_probe.py, axis_probe.py) share: their common arguments, the
run (with another VAE's weights when asked), one training step's inputs, and training only
some of the run's stages."""

import argparse
import time

import torch
from colorkit_paper.method import training_hints

from colorkit.inference import load
from colorkit.train.engine import TrainConfig, Trainer


def arguments(description: str) -> argparse.ArgumentParser:
    """RUN SPEC EPOCHS OUTDIR [--vae VAE_OUT] [--threads N]."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("run")
    ap.add_argument("spec")
    ap.add_argument("epochs", type=int)
    ap.add_argument("out")
    ap.add_argument("--vae", default=None, help="the VAE (and its stored codes) of a synth_vae_probe.py --out")
    ap.add_argument("--threads", type=int, default=2)
    return ap


def load_method(run: str, vae: str | None):
    """The run's method on the CPU, with the weights of ``vae``'s train_state when given."""
    m = load(run, device="cpu").method
    if vae:
        from safetensors.torch import load_file

        print(m.load_state_dict(load_file(f"{vae}/train_state/model.safetensors")))
    return m


def step_inputs(m, batch, ctx):
    """``(ab, grey, feats, z, hints)`` of one MDN training step, as the method's own step makes them."""
    (ab, grey), sel = m._flip_sel(*m._crop(batch["ab"], batch["grey"]))
    with torch.no_grad():
        feats = (m._features.lookup(batch["index"], sel) if m._features is not None and "index" in batch
                 else m.backbone(grey))
        z = m.embedder.encode(ab, grey if m.embedder.uses_grey else None).sample()
        hints = training_hints(ab, ctx.generator) if m.config.hints else None
    return ab, grey, feats, z, hints


def train_stages(m, names: tuple[str, ...], train_split, epochs: int, out: str) -> float:
    """Train only the stages called ``names`` for ``epochs``; the seconds it took."""
    kept = [s for s in m.stages() if s.name in names]
    m.stages = lambda: kept
    t0 = time.perf_counter()
    Trainer(TrainConfig(seed=0, epochs=epochs, progress=False, device="cpu")).fit(m, train_split, out)
    return time.perf_counter() - t0
