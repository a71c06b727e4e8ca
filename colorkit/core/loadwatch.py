"""Fewer torch threads while other processes keep the cores busy, all of them again when
they leave.

The OpenMP runtime reads its wait policy once, when it loads, so a run that starts on a quiet
machine keeps spinning idle threads when another job arrives later; two processes that
both spin on the same cores then run several times slower than their fair share. What a
running process can still change is how many threads its next operator uses. A
:class:`LoadWatch` measures, every ``interval`` seconds on a background thread, how many
cores *other* processes keep busy (all CPU time in ``/proc/stat`` less this process's own
and its children's). When the free cores stay below the run's thread count for
``arrive`` samples in a row it asks for that many threads (at least 1); when they are back
for ``leave`` samples it asks for the run's own count again. The background thread only
decides: the main thread applies the decision at a step boundary (:func:`checkpoint`, called
by the training engine before every step and by the scoring and colorizing loops before
every batch), since
``torch.set_num_threads`` acts on the thread that calls it.

Results: a run whose thread count never changed is bit-identical to a run without the
watch (the watch draws no random numbers and touches no tensor). A change of thread count
changes the order of some float sums, and training amplifies those first differences: a run
that was thinned out can give figures that differ from a quiet run's by as much as training
seeds differ (the README bench's seed-0 ``mdn``: 0.0763 after a change 6 s in, 0.0811 quiet); every change is recorded
(:meth:`LoadWatch.changes_since`, written to ``run.json`` and ``results.json``). Giving the
thread count (``OMP_NUM_THREADS``, ``--threads N``) or setting ``COLORKIT_THREADS_FIXED``
keeps it fixed whatever the load: the command line starts no watch then
(:func:`should_watch`). Only the command line starts one; library calls keep their count.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from colorkit.core.threads import BUSY_CORES, cores, cpu_times

INTERVAL = 1.0
"""Seconds between two measurements of the other processes' load."""
ARRIVE = 2
"""Measurements in a row that must show too few free cores before threads are taken away."""
LEAVE = 5
"""Measurements in a row that must show the cores free again before threads are given back."""

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children_cpu(pid: int, proc: Path = Path("/proc")) -> float:
    """CPU seconds used so far by the living descendants of ``pid`` (0 where ``/proc`` is
    missing). Loader worker processes are the run's own work, not another job."""
    parents: dict[int, list[tuple[int, float]]] = {}
    try:
        entries = list(proc.iterdir())
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after "(comm)": state ppid ... utime (field 14) stime (15) -> indices 1, 11, 12 here
        parents.setdefault(int(fields[1]), []).append((int(entry.name), (int(fields[11]) + int(fields[12])) / _TICK))
    total, todo = 0.0, [pid]
    while todo:
        for child, cpu in parents.get(todo.pop(), []):
            total += cpu
            todo.append(child)
    return total


class CpuSampler:
    """Cores kept busy by other processes since the previous call (``None`` where
    ``/proc/stat`` is not available or no time has passed)."""

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[tuple[int, int] | None, float]:
        """The machine's (busy, total) jiffies and this process's CPU seconds with its
        children's: those still running and those already waited for (a child that ends
        moves from the one to the other, so the sum does not jump)."""
        t = os.times()
        return cpu_times(), time.process_time() + t.children_user + t.children_system + _children_cpu(os.getpid())

    def __call__(self) -> float | None:
        (machine, own), (machine0, own0) = self._read(), self._last
        self._last = (machine, own)
        if machine is None or machine0 is None or machine[1] <= machine0[1]:
            return None
        n = cores()
        wall = (machine[1] - machine0[1]) / _TICK / max(os.cpu_count() or n, 1)  # jiffies of every CPU
        busy = (machine[0] - machine0[0]) / (machine[1] - machine0[1]) * n
        return max(0.0, busy - (own - own0) / max(wall, 1e-9))


def free_cores(others: float, n_cores: int) -> int:
    """Whole cores left by ``others`` busy cores (at least 1)."""
    return max(1, math.floor(n_cores - others + 0.5))


class ThreadGovernor:
    """The thread count to use, from a stream of measurements of the other processes' busy
    cores (:meth:`observe`). ``requested``: the run's own count, never exceeded."""

    def __init__(self, requested: int, n_cores: int, *, arrive: int = ARRIVE, leave: int = LEAVE) -> None:
        self.requested, self.n_cores, self.arrive, self.leave = requested, n_cores, arrive, leave
        self.current = requested
        self._pending: int | None = None
        self._count = 0

    def wanted(self, others: float) -> int:
        """The count these ``others`` leave room for: the run's own while they keep less
        than :data:`~colorkit.core.threads.BUSY_CORES` busy or leave enough cores free."""
        if others < BUSY_CORES:
            return self.requested
        return min(self.requested, free_cores(others, self.n_cores))

    def observe(self, others: float | None) -> int:
        """Take one measurement (``None``: none could be made, nothing changes); returns the
        count to use now."""
        if others is None:
            return self.current
        want = self.wanted(others)
        if want == self.current:
            self._pending, self._count = None, 0
            return self.current
        if want == self._pending:
            self._count += 1
        else:
            self._pending, self._count = want, 1
        if self._count >= (self.arrive if want < self.current else self.leave):
            self.current, self._pending, self._count = want, None, 0
        return self.current


class LoadWatch:
    """Measures the other processes' load on a daemon thread and says how many threads to
    use; :meth:`apply` (main thread) sets torch's count to it. ``sample``: a function
    returning the other processes' busy cores (default :class:`CpuSampler`), replaceable for
    tests; ``set_threads``/``get_threads`` default to torch's."""

    def __init__(self, *, interval: float = INTERVAL, sample: Callable[[], float | None] | None = None,
                 n_cores: int | None = None, arrive: int = ARRIVE, leave: int = LEAVE,
                 set_threads: Callable[[int], None] | None = None,
                 get_threads: Callable[[], int] | None = None) -> None:
        self.interval = interval
        self._sample = sample
        self.n_cores = cores() if n_cores is None else n_cores
        self.arrive, self.leave = arrive, leave
        self._set_fn, self._get_fn = set_threads, get_threads  # torch's unless given (imported when used)
        self.governor: ThreadGovernor | None = None
        self.target: int | None = None
        self.changes: list[dict[str, Any]] = []
        self._early: list[float | None] = []
        self.last_others: float | None = None
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _get(self) -> int:
        if self._get_fn is None:
            import torch

            self._get_fn = torch.get_num_threads
        return self._get_fn()

    def _set(self, n: int) -> None:
        if self._set_fn is None:
            import torch

            self._set_fn = torch.set_num_threads
        self._set_fn(n)

    @property
    def requested(self) -> int | None:
        """The run's own thread count (``None`` before :meth:`start`)."""
        return None if self.governor is None else self.governor.requested

    def begin(self) -> LoadWatch:
        """Start measuring (decisions wait for :meth:`start`)."""
        if self._thread is None:
            if self._sample is None:
                self._sample = CpuSampler()
            self._thread = threading.Thread(target=self._loop, name="colorkit-loadwatch", daemon=True)
            self._thread.start()
        return self

    def start(self) -> LoadWatch:
        """Fix the run's own thread count (torch's now, on the calling thread: call it on the
        main thread) and decide from then on, from the measurements already made too."""
        with self._lock:
            if self.governor is None:
                self.governor = ThreadGovernor(self._get(), self.n_cores, arrive=self.arrive, leave=self.leave)
                for others in self._early:
                    self.target = self.governor.observe(others)
                self._early.clear()
        return self.begin()

    def step(self, others: float | None) -> int | None:
        """One measurement: update the decision (what the background thread does); before
        :meth:`start` it is only kept."""
        with self._lock:
            self.last_others = others
            if self.governor is None:
                self._early.append(others)
                del self._early[:-max(self.arrive, self.leave)]
                return None
            self.target = self.governor.observe(others)
            return self.target

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step(self._sample())  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - a failed measurement changes nothing
                continue

    def apply(self) -> int | None:
        """Set torch's thread count to the decision, if it differs (call on the main thread,
        between two steps); returns the count set, or ``None`` when nothing changed."""
        target = self.target
        if target is None or target == self._get():
            return None
        self._set(target)
        others = self.last_others
        self.changes.append({"seconds": round(time.perf_counter() - self._t0, 1), "threads": target,
                             "others_busy_cores": None if others is None else round(others, 2)})
        return target

    def changes_since(self, mark: int) -> list[dict[str, Any]]:
        """The thread changes made after the first ``mark`` (a former ``len(changes)``)."""
        return list(self.changes[mark:])

    def restore(self) -> None:
        """Give the run its own thread count back (at the end of a command)."""
        if self.governor is not None and self._get() != self.governor.requested:
            self._set(self.governor.requested)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
            self._thread = None


WATCH: LoadWatch | None = None
"""This process's watch, when the command line started one."""


def should_watch(argv: list[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether a command may change its thread count with the load: not when the user gave
    the count (``OMP_NUM_THREADS``, a number after ``--threads``), not in a distributed run
    (the other ranks would count as other jobs), not when ``COLORKIT_THREADS_FIXED`` is set."""
    environ = os.environ if environ is None else environ
    if environ.get("OMP_NUM_THREADS") or environ.get("COLORKIT_THREADS_FIXED"):
        return False
    if int(environ.get("WORLD_SIZE", "1") or 1) > 1:
        return False
    for i, a in enumerate(argv):
        if a.startswith("--threads="):
            value = a.split("=", 1)[1]
        elif a == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        else:
            continue
        if value.strip().lower() != "auto":
            return False
    return True


def start_watch(**kwargs: Any) -> LoadWatch:
    """Start this process's watch: it measures from now on; the run's thread count is
    torch's at the first :func:`checkpoint`, where decisions start."""
    global WATCH
    if WATCH is None:
        WATCH = LoadWatch(**kwargs).begin()
    return WATCH


def stop_watch() -> None:
    global WATCH
    if WATCH is not None:
        WATCH.stop()
        WATCH.restore()
        WATCH = None


def checkpoint() -> int | None:
    """Between two steps: apply the latest decision (no-op without a watch); the first call
    fixes the run's own thread count (:meth:`LoadWatch.start`)."""
    w = WATCH
    if w is None:
        return None
    if w.governor is None:
        w.start()
    return w.apply()


def own_threads() -> int:
    """The run's own thread count: what the watch restores, else torch's count now."""
    if WATCH is not None and WATCH.requested is not None:
        return WATCH.requested
    import torch

    return torch.get_num_threads()


def mark() -> int:
    """A mark for :func:`changes_since`: the number of changes made so far."""
    return 0 if WATCH is None else len(WATCH.changes)


def changes_since(mark_: int) -> list[dict[str, Any]]:
    """The thread changes made since ``mark_`` (empty without a watch)."""
    return [] if WATCH is None else WATCH.changes_since(mark_)
