"""The machine a bench ran on, written into ``results.json`` (``"machine"``): processor
name, operating system and the load average when the scoring ended (a busy host slows
the timings ``train_seconds`` and ``infer_seconds_per_image``)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


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


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where the system has none."""
    try:
        return [round(float(x), 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def describe_machine() -> dict[str, Any]:
    """``{"processor", "system", "cpus", "load_average"}``."""
    return {"processor": cpu_name(), "system": platform.system(), "cpus": os.cpu_count(),
            "load_average": load_average()}
