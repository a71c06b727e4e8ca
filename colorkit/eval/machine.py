"""The machine a bench ran on, written into ``results.json`` (``"machine"``): processor
name and instruction-set class, operating system, the load average, and two speed figures
measured before the work, at the run's thread count:

* :func:`reference_speed`: a small fixed workload, the ``small`` preset's colour VAE
  forward and backward on one fixed batch of 8 colour fields at 64 x 64 (what the README
  bench's VAE stage does every step), in steps per second. Two results taken on different
  machines compare as ratios of their times to this figure.
* :func:`anchor_gflops`: what the same CPU reaches on a plain large matrix product and a
  plain large convolution (GFLOP/s), the physical ceiling a training step's achieved
  GFLOP/s can be read against.

Both draw their numbers from generators of their own and restore torch's global random
state and thread count, so a bench's figures are the same with or without them.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

REFERENCE_WORKLOAD = "small-preset colour VAE forward+backward, batch 8 x 2 x 64 x 64, fp32"
"""What one reference step is."""
MATMUL_SIZE = 1024
"""The anchor's matrix product: two fp32 matrices of this size."""
CONV_SHAPE = (16, 64, 64, 64)
"""The anchor's convolution: this fp32 input (batch, channels, height, width), 3 x 3 kernel,
as many channels out as in, padding 1."""


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The processor's model name from ``cpuinfo`` (Linux), else ``platform.processor()``,
    else ``"unknown"``."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags_class(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """``"avx512"`` (the processor has AVX-512F), ``"avx2"``, ``"other"``, or ``"unknown"``
    where ``cpuinfo`` cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return "unknown"
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where the system has none."""
    try:
        return [round(float(x), 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def describe_machine() -> dict[str, Any]:
    """``{"processor", "cpu_flags", "torch_cpu_capability", "system", "cpus", "load_average"}``
    (``torch_cpu_capability``: the kernels torch dispatches to, e.g. ``AVX512``, ``AVX2``)."""
    return {"processor": cpu_name(), "cpu_flags": cpu_flags_class(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "system": platform.system(),
            "cpus": os.cpu_count(), "load_average": load_average()}


@contextmanager
def _isolated(threads: int | None):
    """Run at ``threads`` (default: torch's count now) and leave torch's global random state,
    thread count and grad mode as they were."""
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        if threads is not None and threads != before:
            torch.set_num_threads(threads)
        try:
            yield torch.get_num_threads()
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)


def _time_steps(step: Callable[[], Any], seconds: float, warmup: int, min_steps: int) -> list[float]:
    """Step times after ``warmup`` untimed steps: for ``seconds`` and at least ``min_steps``,
    but never past ``3 * seconds`` from the start (at least one timed step): on a machine
    slowed down many times the figure is taken from fewer steps rather than late."""
    t_start = time.perf_counter()
    for _ in range(warmup):
        step()
        if time.perf_counter() - t_start > seconds:
            break
    times: list[float] = []
    t_end, t_limit = time.perf_counter() + seconds, t_start + 3 * seconds
    while not times or (len(times) < min_steps and time.perf_counter() < t_limit) or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def _reference_vae() -> torch.nn.Module | None:
    """The colour VAE a plugin provides for the reference workload (the ``reference_embedder``
    hook), or ``None`` where none does (the paper plugin is not installed)."""
    from colorkit.core.plugin_manager import plugin_manager

    try:
        return plugin_manager().hook.reference_embedder(image_size=64)
    except Exception:  # noqa: BLE001 - a broken plugin costs only the reference figure
        return None


def reference_speed(threads: int | None = None, *, seconds: float = 1.0, warmup: int = 2,
                    min_steps: int = 5) -> dict[str, Any] | None:
    """Steps per second of :data:`REFERENCE_WORKLOAD` at ``threads`` (default: torch's count
    now): ``{"steps_per_s", "steps", "seconds", "threads", "workload"}``, ``steps_per_s``
    from the median step time (a short stall of the machine moves it little). ``None``
    where the colour VAE is not installed."""
    with _isolated(threads) as n:
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)  # the VAE's initial weights (inside fork_rng: the caller's state is kept)
        vae = _reference_vae()
        if vae is None:
            return None
        vae.train()
        ab = torch.rand(8, 2, 64, 64, generator=gen) - 0.5
        eps = torch.randn(8, vae.latent_dim, generator=gen)

        def step() -> None:
            vae.zero_grad(set_to_none=True)
            post = vae.encode(ab)
            z = post.mu + torch.exp(0.5 * post.logvar) * eps
            rec = vae.decode(z)
            kl = 0.5 * (post.mu.pow(2) + post.logvar.exp() - 1 - post.logvar).sum(1).mean()
            (torch.nn.functional.mse_loss(rec, ab) + 1e-3 * kl).backward()

        times = _time_steps(step, seconds, warmup, min_steps)
    return {"steps_per_s": round(1.0 / statistics.median(times), 2), "steps": len(times),
            "seconds": round(sum(times), 2), "threads": n, "workload": REFERENCE_WORKLOAD}


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of one call of ``fn`` (forward and backward alike), as
    ``torch.utils.flop_counter.FlopCounterMode`` counts them (matrix products and
    convolutions; element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def anchor_gflops(threads: int | None = None, *, seconds: float = 0.4) -> dict[str, Any]:
    """GFLOP/s of a plain fp32 matrix product (:data:`MATMUL_SIZE`) and convolution
    (:data:`CONV_SHAPE`, 3 x 3) at ``threads`` (default: torch's count now), from the
    median of repeated calls over about ``seconds`` each: ``{"matmul", "conv", "threads"}``."""
    with _isolated(threads) as n, torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen)
        b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen)
        x = torch.randn(*CONV_SHAPE, generator=gen)
        c = CONV_SHAPE[1]
        w = torch.randn(c, c, 3, 3, generator=gen) * 0.05
        out: dict[str, Any] = {"threads": n}
        for name, fn in (("matmul", lambda: torch.mm(a, b)),
                         ("conv", lambda: torch.nn.functional.conv2d(x, w, padding=1))):
            flops = count_flops(fn)
            times = _time_steps(fn, seconds, warmup=1, min_steps=3)
            out[name] = round(flops / statistics.median(times) / 1e9, 1)
    return out


def machine_speed(threads: int | None = None) -> dict[str, Any]:
    """The figures a bench records before its work: ``{"reference_steps_per_s",
    "reference", "anchor_gflops"}`` (``reference_steps_per_s`` is ``None`` where the colour
    VAE is not installed)."""
    ref = reference_speed(threads)
    return {"reference_steps_per_s": None if ref is None else ref["steps_per_s"], "reference": ref,
            "anchor_gflops": anchor_gflops(threads)}


def _narrower_kernels(machine: dict[str, Any]) -> str:
    """``"; torch kernels AVX2"`` where torch dispatched to other kernels than the CPU's
    flags class says (``ATEN_CPU_CAPABILITY`` set, or a torch built without them), else ``""``."""
    cap, flags = machine.get("torch_cpu_capability"), machine.get("cpu_flags")
    if not cap or not flags or flags == "unknown" or str(cap).lower() == str(flags).lower():
        return ""
    return f"; torch kernels {cap}"


def machine_line(machine: dict[str, Any]) -> str:
    """One line for a results table's header: ``machine: N reference steps/s, load L, CPU ...``."""
    ref = machine.get("reference_steps_per_s")
    load = (machine.get("load_start") or {}).get("load_1min")
    if load is None and machine.get("load_average"):
        load = machine["load_average"][0]
    threads = (machine.get("reference") or {}).get("threads")
    text = (f"machine: {ref if ref is not None else 'no'} reference steps/s"
            + (f" at {threads} threads" if threads else "")
            + f", load {load if load is not None else 'unknown'}, CPU {machine.get('processor', 'unknown')}"
            + f" ({machine.get('cpu_flags', 'unknown')}{_narrower_kernels(machine)})")
    anchor = machine.get("anchor_gflops")
    if anchor:
        text += f"; anchor: matmul {anchor.get('matmul')} GFLOP/s, convolution {anchor.get('conv')} GFLOP/s"
    return text
