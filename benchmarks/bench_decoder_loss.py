"""Benchmark the decoder loss of Deshpande et al. (CVPR 2017), eq. (4): torch eager,
torch.compile and the fused Triton kernels (colorkit_paper.fused), forward / backward /
forward+backward, over batch sizes at 64x64 with K = 20 PCA components.

Per (provider, mode, batch): median and 20/80 % quantiles of the time
(``triton.testing.do_bench`` on CUDA, a timer loop on CPU), peak memory above the inputs
(``torch.cuda.max_memory_allocated`` on CUDA; the process's peak RSS on CPU, Linux, with
glibc's mmap threshold fixed so freed buffers leave RSS), and an achieved bandwidth under a
read-once model: ``bytes(pred) + bytes(target) + bytes(P)`` divided by the median time
(the same model for every mode, so it is a speed figure, not a traffic measurement). On CUDA
it also prints the time to read those bytes once at the card's bandwidth (``--bandwidth-gbs``
or a table of known cards), and checks the Triton loss and gradient against the torch
reference before timing. Rows are appended to ``benchmarks/results/decoder_loss.csv`` with
the device, torch and triton versions and the date.

Examples::

    python benchmarks/bench_decoder_loss.py --device cuda                  # full sweep, 32..1024
    python benchmarks/bench_decoder_loss.py --device cuda --config 32,32,8 16,32,4 32,64,8
    python benchmarks/bench_decoder_loss.py --device cpu --batch 32 64 --reps 5

On CPU only the torch providers run (Triton needs CUDA; its interpreter is a test tool). A
provider that fails (torch.compile without a compiler, out of memory, ...) is recorded as a
row with its error and the sweep goes on.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import datetime as _dt
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from colorkit_paper import fused
from colorkit_paper.losses import PAPER_WEIGHTS, decoder_loss, weighted_terms

from colorkit.core.stats import ColorStats, G

try:
    import triton
    import triton.testing
except Exception:  # pragma: no cover - depends on the environment
    triton = None

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "decoder_loss.csv"
BATCHES = [32, 64, 128, 256, 512, 1024]
MODES = ("forward", "backward", "full")
PROVIDERS = ("torch", "compile", "triton")
WEIGHT_SETS = {"paper": dict(PAPER_WEIGHTS), "all": {"hist": 1.0, "mah": 0.1, "grad": 1e-3, "l2": 1.0}}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: Peak memory bandwidth in GB/s, by a substring of torch.cuda.get_device_name().
BANDWIDTH_GBS = {
    "H200": 4800.0,
    "H100 80GB HBM3": 3350.0,  # H100 SXM
    "H100 SXM": 3350.0,
    "H100 NVL": 3900.0,
    "H100 PCIe": 2000.0,
    "A100-SXM4-80GB": 2039.0,
    "A100 80GB PCIe": 1935.0,
    "A100-SXM4-40GB": 1555.0,
}
COLUMNS = [
    "date", "device", "device_name", "torch", "triton", "provider", "config", "mode", "batch",
    "height", "width", "k", "dtype", "weights", "median_ms", "p20_ms", "p80_ms", "reps",
    "peak_mem_mb", "mem_method", "read_once_mb", "gbps", "bound_ms", "max_rel_err", "status", "notes",
]


# ------------------------------------------------------------------------------- set-up
def make_stats(size: int, k: int, device: str, seed: int = 0) -> ColorStats:
    """ColorStats with random orthonormal components (QR), descending variances and a
    random weight table; the loss cost does not depend on the values."""
    g = torch.Generator().manual_seed(seed)
    n = 2 * size * size
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=g))
    var = torch.sort(torch.rand(k, generator=g) * 0.5 + 0.01, descending=True).values
    prob = torch.full((G, G), 1.0 / (G * G))
    return ColorStats(
        image_size=size,
        pca_components=q.t().contiguous().to(device),
        pca_variances=var.to(device),
        pca_mean=torch.zeros(n, device=device),
        bin_prob=prob,
        bin_prob_smoothed=prob,
        bin_weights=(torch.rand(G, G, generator=g) * 4 + 0.25).to(device),
        in_gamut=torch.ones(G, G, dtype=torch.bool),
    )


def torch_terms(pred, target, stats, weights):
    """The torch branch of decoder_loss, term by term (what torch.compile compiles)."""
    return weighted_terms(pred, target, stats, weights)


def make_loss_fn(provider: str, stats, weights) -> Callable:
    if provider == "torch":
        return lambda p, t: decoder_loss(p, t, stats, weights=weights, impl="torch")
    if provider == "compile":
        # donated buffers forbid backward(retain_graph=True), which the "backward" mode times
        import torch._functorch.config as functorch_config

        functorch_config.donated_buffer = False
        compiled = torch.compile(torch_terms)
        return lambda p, t: compiled(p, t, stats, weights)
    if provider == "triton":
        return lambda p, t: decoder_loss(p, t, stats, weights=weights, impl="triton")
    raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")


# ------------------------------------------------------------------------------- timing
def _fix_malloc_threshold() -> None:
    """Large allocations always mmap-ed (and so unmapped when freed): RSS then tracks live memory."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except OSError:
        pass


def _rss_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_mb(fn: Callable[[], object], device: str) -> tuple[float | None, str]:
    """Peak memory of one call of ``fn`` above what was live before it, in MiB."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20, "cuda_max_allocated"
    base = _rss_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        return None, "unavailable"
    fn()
    hwm = _rss_kb("VmHWM")
    if base is None or hwm is None:
        return None, "unavailable"
    return max(0.0, (hwm - base) / 1024), "rss_hwm"


def time_fn(fn: Callable[[], object], device: str, reps: int, grad_to_none) -> tuple[float, float, float, int]:
    """(median, p20, p80) in ms and the number of timed calls."""
    if device == "cuda":
        med, p20, p80 = triton.testing.do_bench(fn, quantiles=[0.5, 0.2, 0.8], grad_to_none=grad_to_none,
                                                 warmup=25, rep=max(100, reps))
        return med, p20, p80, -1  # do_bench picks the count from rep (ms)
    for _ in range(max(1, reps // 5)):
        fn()
    times = []
    for _ in range(reps):
        for t in grad_to_none:
            t.grad = None
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=10, method="inclusive") if len(times) > 1 else [times[0]] * 9
    return statistics.median(times), q[1], q[7], reps


# ------------------------------------------------------------------------------- one row
def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def bandwidth_for(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, gbs in BANDWIDTH_GBS.items():
        if key in name:
            return gbs
    return None


def check_triton(pred, target, stats, weights) -> float:
    """Max relative error of the Triton loss and gradient against the fp32 torch reference."""
    gout = torch.randn(pred.shape[0], device=pred.device)
    errs = []
    outs = []
    for impl, p in (("triton", pred), ("torch", pred.float())):
        p = p.detach().clone().requires_grad_(True)
        loss = decoder_loss(p, target.float() if impl == "torch" else target, stats, weights=weights, impl=impl)
        loss.float().backward(gout)
        outs.append((loss.detach().float(), p.grad.float()))
    for k, r in zip(outs[0], outs[1]):
        errs.append(((k - r).abs().max() / r.abs().max().clamp_min(1e-30)).item())
    return max(errs)


def bench_one(provider, mode, batch, args, stats, weights, base_row) -> dict:
    device = args.device
    dtype = DTYPES[args.dtype]
    g = torch.Generator(device="cpu").manual_seed(batch)
    shape = (batch, 2, args.size, args.size)
    target = (torch.rand(shape, generator=g) * 1.8 - 0.9).to(device, dtype)
    pred = (target.float().cpu() + 0.3 * torch.randn(shape, generator=g)).to(device, dtype).requires_grad_(True)
    gout = torch.ones(batch, device=device, dtype=torch.promote_types(dtype, dtype))
    loss_fn = make_loss_fn(provider, stats, weights)
    row = dict(base_row, provider=provider, mode=mode, batch=batch)
    read_once = pred.numel() * pred.element_size() * 2 + stats.pca_components.numel() * 4
    row["read_once_mb"] = f"{read_once / 2**20:.2f}"
    if provider == "triton" and device == "cuda":
        row["max_rel_err"] = f"{check_triton(pred, target, stats, weights):.2e}"

    if mode == "forward":
        def fn():
            return loss_fn(pred, target)
    elif mode == "backward":
        loss = loss_fn(pred, target)

        def fn():
            loss.backward(gout, retain_graph=True)
    else:
        def fn():
            loss_fn(pred, target).backward(gout)

    fn()  # compile / autotune / first-call costs outside the timing
    if device == "cuda":
        torch.cuda.synchronize()
    med, p20, p80, n = time_fn(fn, device, args.reps, [pred])
    pred.grad = None
    peak, method = peak_memory_mb(fn, device)
    row.update(median_ms=f"{med:.4f}", p20_ms=f"{p20:.4f}", p80_ms=f"{p80:.4f}", reps=n,
               peak_mem_mb="" if peak is None else f"{peak:.1f}", mem_method=method,
               gbps=f"{read_once / (med * 1e-3) / 1e9:.3g}", status="ok")
    bw = bandwidth_for(row["device_name"], args.bandwidth_gbs) if device == "cuda" else None
    if bw:
        row["bound_ms"] = f"{read_once / (bw * 1e9) * 1e3:.4f}"
    return row


# ------------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=BATCHES, help="batch sizes (default 32..1024)")
    ap.add_argument("--size", type=int, default=64, help="H = W of the ab fields (default 64)")
    ap.add_argument("--k", type=int, default=20, help="PCA components (default 20)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--weights", choices=sorted(WEIGHT_SETS), default="paper",
                    help="paper: hist + 0.1 mah + 1e-3 grad (eq. 4); all: also l2")
    ap.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--reps", type=int, default=50,
                    help="timed calls on CPU; on CUDA the do_bench budget in ms (at least 100)")
    ap.add_argument("--bandwidth-gbs", type=float, default=None,
                    help="card bandwidth for the read-once bound (default: a table of known cards)")
    ap.add_argument("--config", nargs="+", default=None, metavar="BB,BP,NW",
                    help="Triton launch configs to sweep (BLOCK_B,BLOCK_P,num_warps); default: the built-in choice")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV to append to")
    return ap.parse_args(argv)


def append_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != COLUMNS:
            raise SystemExit(f"{path} has columns {header}, expected {COLUMNS}; pass --out for a new file")
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in COLUMNS})


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        _fix_malloc_threshold()
    providers = list(args.providers)
    if "triton" in providers and (args.device != "cuda" or triton is None):
        print("triton provider skipped: it needs CUDA and the triton package", file=sys.stderr)
        providers.remove("triton")
    weights = WEIGHT_SETS[args.weights]
    stats = make_stats(args.size, args.k, args.device)
    name = device_name(args.device)
    base_row = dict(
        date=_dt.datetime.now().isoformat(timespec="seconds"), device=args.device, device_name=name,
        torch=torch.__version__, triton=getattr(triton, "__version__", ""), height=args.size,
        width=args.size, k=args.k, dtype=args.dtype, weights=args.weights,
    )
    if hasattr(os, "getloadavg"):  # a busy host slows CPU timings: say so in the row
        base_row["notes"] = f"loadavg={os.getloadavg()[0]:.1f} cpus={os.cpu_count()} threads={torch.get_num_threads()}"
    bw = bandwidth_for(name, args.bandwidth_gbs) if args.device == "cuda" else None
    print(f"# {name} | torch {torch.__version__} | triton {base_row['triton'] or '-'} | {args.dtype} | "
          f"{args.size}x{args.size}, K={args.k}, weights={args.weights}")
    if args.device == "cuda":
        if bw:
            print(f"# read-once bound at {bw:.0f} GB/s: bytes(pred + target + P) / bandwidth")
        else:
            print("# unknown card bandwidth: pass --bandwidth-gbs for the read-once bound")
    runs = []
    for provider in providers:
        configs = args.config if (provider == "triton" and args.config) else [None]
        for cfg in configs:
            runs.append((provider, cfg))
    rows = []
    hdr = (f"{'provider':<22}{'mode':<9}{'batch':>6}{'median ms':>11}{'p20':>9}{'p80':>9}{'peak MiB':>10}"
           f"{'GB/s':>8}{'bound ms':>10}  status")
    print(hdr)
    for provider, cfg in runs:
        if cfg:
            os.environ[fused.CONFIG_ENV] = cfg
        else:
            os.environ.pop(fused.CONFIG_ENV, None)
        failed = None
        for batch in args.batch:
            for mode in args.modes:
                row = dict(base_row, provider=provider, config=cfg or "", mode=mode, batch=batch)
                if failed is not None:
                    row["status"] = failed
                else:
                    try:
                        row = bench_one(provider, mode, batch, args, stats, weights, dict(base_row, config=cfg or ""))
                    except Exception as exc:  # record and go on
                        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                        row["status"] = "error: " + msg
                        if os.environ.get("BENCH_TRACEBACK"):
                            traceback.print_exc()
                        if provider == "compile" and mode == "forward":  # a compiler failure will not go away
                            failed = "skipped after " + row["status"]
                    finally:
                        if args.device == "cuda":
                            torch.cuda.empty_cache()
                rows.append(row)
                label = provider + (f"[{cfg}]" if cfg else "")
                print(f"{label:<22}{mode:<9}{batch:>6}{row.get('median_ms', ''):>11}{row.get('p20_ms', ''):>9}"
                      f"{row.get('p80_ms', ''):>9}{row.get('peak_mem_mb', ''):>10}{row.get('gbps', ''):>8}"
                      f"{row.get('bound_ms', ''):>10}  {row['status'][:60]}", flush=True)
    append_rows(args.out, rows)
    print(f"# {len(rows)} rows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
