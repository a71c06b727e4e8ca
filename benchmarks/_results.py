"""Appending measured rows to ``benchmarks/results/<name>.csv`` (header on first write)."""

from __future__ import annotations

import csv
import datetime as dt
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def append_rows(name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Append ``rows`` to ``results/<name>.csv``, each prefixed with date and host."""
    out = RESULTS / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["date", "host", *header])
        stamp = [dt.datetime.now().isoformat(timespec="seconds"), platform.node()]
        for row in rows:
            w.writerow([*stamp, *row])
    return out


def record_machine(benchmark: str, threads: int | None = None, csv: bool = True) -> dict[str, Any]:
    """Time the machine-speed figures before a benchmark's work, at ``threads`` (default:
    torch's count now) (:mod:`colorkit.eval.machine`), print them as the results' header
    line and append them to ``results/machine.csv`` (dated like the benchmark's own rows)."""
    from colorkit.eval.machine import describe_machine, machine_line, machine_speed

    m = {**describe_machine(), **machine_speed(threads)}
    print(machine_line(m), flush=True)
    if csv:
        ref = m["reference"] or {}
        append_rows("machine", ["benchmark", "threads", "reference_steps_per_s", "matmul_gflops", "conv_gflops",
                                "processor", "cpu_flags", "torch_cpu_capability", "load_1min"],
                    [[benchmark, ref.get("threads", m["anchor_gflops"]["threads"]), m["reference_steps_per_s"],
                      m["anchor_gflops"]["matmul"], m["anchor_gflops"]["conv"], m["processor"], m["cpu_flags"],
                      m["torch_cpu_capability"], (m["load_average"] or [None])[0]]])
    return m
