"""CPU threads on a machine that other jobs share.

torch runs its CPU operators on an OpenMP thread team (GNU libgomp in the Linux wheels).
By default an idle team thread spins for a while before it sleeps, waiting for the next
operator. On a quiet machine that saves a little latency; beside another busy process it
burns the cores the other process needs, and small operators with many barriers (the
``small`` presets' convolutions) then run several times slower than their fair share.

* :func:`adapt_wait_policy` makes idle threads sleep (``OMP_WAIT_POLICY=PASSIVE``) when
  other processes keep at least half a core busy as ``colorkit train`` or ``colorkit
  bench`` starts, unless the user chose a policy. The command line calls it before torch is
  imported (the OpenMP runtime reads the variable once, when it loads). It changes timing
  only: the thread count, and so every result, stays the same. On a quiet machine threads
  keep spinning, which is faster there (sleeping costs about 20% on the ``small`` cGAN).
* :func:`resolve_threads` turns ``--threads auto`` into the cores not already busy
  (cores minus the 1-minute load average, at least 1). Fewer threads can change the last
  bits of a float result, so ``auto`` trades reproducibility across machines states for
  speed; a number (or the default, all cores) keeps results identical run to run.
* :func:`machine_load` is what the bench records at its start and end.

The wait policy cannot change once torch has loaded; what follows a load that arrives later
is the thread count: :mod:`colorkit.core.loadwatch`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any

from colorkit.core.registry import ColorkitError

WAIT_POLICY = "PASSIVE"
"""What :func:`prefer_passive_waits` sets ``OMP_WAIT_POLICY`` to."""
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "KMP_BLOCKTIME")
"""Environment variables that change how the OpenMP runtime waits or how many threads it starts."""
BUSY_LOAD_PER_CORE = 0.5
"""A machine whose 1-minute load average is above this many per core is called busy."""


BUSY_CORES = 0.5
"""Cores kept busy by other processes from which :func:`adapt_wait_policy` lets threads sleep."""


def cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from ``/proc/stat`` (``None`` elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(window: float = 0.1) -> float | None:
    """Cores kept busy by other processes, measured over ``window`` seconds while this
    process sleeps (``None`` where ``/proc/stat`` is not available)."""
    a = cpu_times()
    if a is None:
        return None
    time.sleep(window)
    b = cpu_times()
    if b is None or b[1] <= a[1]:
        return None
    return (b[0] - a[0]) / (b[1] - a[1]) * cores()


def adapt_wait_policy(environ: MutableMapping[str, str] | None = None, busy: float | None = None,
                      torch_loaded: bool | None = None) -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when other processes keep at least :data:`BUSY_CORES`
    busy (``busy``: measured by :func:`busy_cores` when not given), unless the user set a
    wait policy or spin count, or torch is already imported (too late: the runtime has read
    its settings). Returns the value set, or ``None`` when nothing was changed."""
    environ = os.environ if environ is None else environ
    torch_loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    STARTUP["torch_loaded"] = torch_loaded
    if torch_loaded or any(v in environ for v in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
        return None
    busy = busy_cores() if busy is None else busy
    STARTUP["busy_cores"] = None if busy is None else round(busy, 2)
    if busy is None or busy < BUSY_CORES:
        return None
    environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    STARTUP["wait_policy_set"] = WAIT_POLICY
    return WAIT_POLICY


STARTUP: dict[str, Any] = {}
"""What :func:`adapt_wait_policy` saw and did in this process (recorded by the bench)."""


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def machine_load(own_threads: int = 0, load: float | None = None) -> dict[str, Any]:
    """``{"load_1min", "cores", "busy"}`` now (``load_1min`` is ``None`` where the system has
    no load average). ``busy``: other processes' load (the average less ``own_threads``, the
    threads this process keeps running) is above :data:`BUSY_LOAD_PER_CORE` per core."""
    n = cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return {"load_1min": None, "cores": n, "busy": False}
    others = load - own_threads
    return {"load_1min": round(load, 2), "cores": n, "busy": others > BUSY_LOAD_PER_CORE * n}


def auto_threads(load: float | None = None, n_cores: int | None = None) -> int:
    """The cores not already busy: ``cores - load`` rounded to the nearest whole core,
    between 1 and ``cores``."""
    n = cores() if n_cores is None else n_cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return n
    return max(1, min(n, math.floor(n - load + 0.5)))


def resolve_threads(spec: int | str | None) -> int | None:
    """``None`` (torch's default: every core), a positive number, or ``"auto"``
    (:func:`auto_threads`). Anything else is a user error."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec.strip().lower() == "auto":
            return auto_threads()
        try:
            spec = int(spec)
        except ValueError:
            raise ColorkitError(f"--threads must be a positive whole number or 'auto', got {spec!r}") from None
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        raise ColorkitError(f"--threads must be a positive whole number or 'auto', got {spec!r}")
    return spec


def openmp_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The OpenMP variables set in ``environ`` (default: this process's), for the record."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in OPENMP_VARIABLES if k in environ}
