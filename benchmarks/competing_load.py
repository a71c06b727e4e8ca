"""A fixed competing load: a small convolutional network trained on random data with a
fixed number of torch threads, until it is stopped (SIGTERM/SIGINT) or --seconds pass.

    python benchmarks/competing_load.py [--threads 2] [--seconds 0] [--report FILE]

It stands for "another researcher's 2-thread training on the same machine". On exit it
writes its own steps per second to --report (JSON), so a slowdown measured beside it can
be read together with how much work the competitor itself got done.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: until signalled)")
    p.add_argument("--report", type=Path, default=None)
    a = p.parse_args()
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)  # before torch loads: a stop while it loads still writes the report
    signal.signal(signal.SIGINT, on_signal)
    import torch
    from torch import nn

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(32, 2, 3, padding=1))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.randn(16, 3, 64, 64), torch.randn(16, 2, 64, 64)
    start, steps = time.perf_counter(), 0
    while not stop and (a.seconds <= 0 or time.perf_counter() - start < a.seconds):
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        steps += 1
    elapsed = time.perf_counter() - start
    if a.report is not None:
        a.report.write_text(json.dumps({"threads": a.threads, "steps": steps, "seconds": round(elapsed, 3),
                                        "steps_per_s": round(steps / max(elapsed, 1e-9), 3)}) + "\n")


if __name__ == "__main__":
    main()
