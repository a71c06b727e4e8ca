"""Fewer threads while other processes hold the cores, all of them again when they leave:
the decisions on a made-up load, the command line's choice to watch, and results that stay
bit-identical while the thread count does not change."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from toy_method import ToyMethod, ToySplit

from colorkit.core import loadwatch
from colorkit.core.loadwatch import LoadWatch, ThreadGovernor, should_watch
from colorkit.train.engine import TrainConfig, Trainer


def test_threads_go_when_others_stay_busy_and_come_back_when_they_leave():
    g = ThreadGovernor(2, 2, arrive=2, leave=3)
    assert [g.observe(x) for x in (0.1, 0.3, None)] == [2, 2, 2]  # quiet; None: nothing measured
    assert g.observe(1.1) == 2  # one busy sample is not yet load
    assert g.observe(0.2) == 2 and g.observe(1.2) == 2  # the count starts again
    assert g.observe(1.9) == 1  # two in a row: one thread
    assert [g.observe(x) for x in (0.1, 0.2)] == [1, 1]
    assert g.observe(1.0) == 1 and g.observe(0.1) == 1 and g.observe(0.0) == 1  # interrupted: counts again
    assert g.observe(0.1) == 2  # three quiet samples in a row: the run's own count again


def test_only_as_many_threads_as_the_free_cores_and_never_more_than_asked():
    assert ThreadGovernor(16, 16).wanted(3.2) == 13
    assert ThreadGovernor(4, 16).wanted(3.2) == 4  # enough cores are free: nothing changes
    assert ThreadGovernor(2, 2).wanted(5.0) == 1  # at least one
    assert ThreadGovernor(2, 2).wanted(0.4) == 2  # under half a core: not load
    g = ThreadGovernor(16, 16, arrive=1, leave=1)
    assert [g.observe(x) for x in (6.0, 2.0, 0.0)] == [10, 14, 16]


def test_the_watch_decides_in_the_background_and_the_main_thread_applies():
    load = {"others": 0.0}
    count = {"n": 2}
    w = LoadWatch(interval=0.01, sample=lambda: load["others"], n_cores=2, arrive=2, leave=2,
                  set_threads=lambda n: count.__setitem__("n", n), get_threads=lambda: count["n"])
    w.start()
    try:
        time.sleep(0.1)
        assert w.apply() is None and count["n"] == 2  # quiet: nothing to do
        load["others"] = 1.3
        deadline = time.monotonic() + 5
        while w.target != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert count["n"] == 2  # decided, not applied: only the main thread sets the count
        assert w.apply() == 1 and count["n"] == 1
        load["others"] = 0.0
        while w.target != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.apply() == 2 and count["n"] == 2
    finally:
        w.stop()
    assert [c["threads"] for c in w.changes] == [1, 2]
    assert w.changes[0]["others_busy_cores"] == 1.3 and w.changes_since(1) == w.changes[1:]


def test_the_command_line_watches_unless_the_thread_count_was_given():
    assert should_watch(["bench", "--methods", "mdn"], {})
    assert should_watch(["bench", "--threads", "auto"], {})
    assert not should_watch(["bench", "--threads", "2"], {})
    assert not should_watch(["bench", "--threads=3"], {})
    assert not should_watch(["train", "--method", "mdn"], {"OMP_NUM_THREADS": "2"})
    assert not should_watch(["train"], {"WORLD_SIZE": "2"})  # torchrun: the other ranks are not other jobs
    assert not should_watch(["colorize", "x.jpg"], {"COLORKIT_THREADS_FIXED": "1"})


def test_the_runs_own_child_processes_are_not_other_jobs():
    before = loadwatch._children_cpu(os.getpid())
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 30: pass"])
    try:
        time.sleep(1.0)
        assert loadwatch._children_cpu(os.getpid()) - before >= 0.2  # the spinning child's CPU is ours
    finally:
        spin.kill()
        spin.wait()


def _train(tmp_path, name, watch):
    torch.manual_seed(0)
    m = ToyMethod(width=16, epochs=2, batch_size=8)
    loadwatch.WATCH = watch
    try:
        summary = Trainer(TrainConfig(progress=False)).fit(m, ToySplit(n=32, size=32), tmp_path / name)
    finally:
        loadwatch.WATCH = None
        if watch is not None:
            watch.stop()
    return m.state_dict(), summary


def test_results_are_bit_identical_while_the_thread_count_stays(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        plain, s0 = _train(tmp_path, "plain", None)
        quiet = LoadWatch(interval=0.005, sample=lambda: 0.1, n_cores=2)  # measuring all along, never acting
        watched, s1 = _train(tmp_path, "watched", quiet)
        assert s0["thread_changes"] == s1["thread_changes"] == [] and s1["threads"] == 2
        assert all(torch.equal(plain[k], watched[k]) for k in plain)

        busy = LoadWatch(interval=0.005, sample=lambda: 1.5, n_cores=2, arrive=1)
        _, s2 = _train(tmp_path, "busy", busy)
        assert [c["threads"] for c in s2["thread_changes"]] == [1]  # said in the summary (and run.json)
        assert s2["threads"] == 2  # the run's own count, what is restored
        assert torch.get_num_threads() == 1
        busy.restore()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["train", "bench", "colorize", "bench-video"])
def test_the_long_commands_start_a_watch(command):
    script = ("import json, sys\nfrom colorkit.core import loadwatch\nfrom colorkit.cli import main\n"
              "started = []\nstart = loadwatch.start_watch\n"
              "loadwatch.start_watch = lambda **kw: started.append(start(**kw))\n"
              "try:\n    main([sys.argv[1], '--help'])\nexcept SystemExit:\n    pass\n"
              "print(json.dumps(bool(started) and loadwatch.WATCH is None))  # started, then stopped at the end")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "COLORKIT_THREADS_FIXED")}
    r = subprocess.run([sys.executable, "-c", script, command], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "true"
    r = subprocess.run([sys.executable, "-c", script, command], env={**env, "OMP_NUM_THREADS": "2"},
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "false"


def test_measurements_made_before_the_first_step_count():
    count = {"n": 2}
    w = LoadWatch(sample=lambda: None, n_cores=2, arrive=2, leave=2, set_threads=lambda n: count.__setitem__("n", n),
                  get_threads=lambda: count["n"])
    assert w.step(1.5) is None and w.step(1.6) is None  # measured while the data were being prepared
    w.start()
    try:
        assert w.target == 1 and w.apply() == 1 and count["n"] == 1  # the first step already runs on one thread
    finally:
        w.stop()


def test_other_processes_busy_cores_are_the_machines_less_this_runs_own(monkeypatch):
    ticks = loadwatch._TICK
    machine = iter([(0, 0), (150 * ticks // 100, 200 * ticks // 100)])  # 1 s on 2 CPUs, 1.5 cores busy
    own = iter([10.0, 10.5])  # half a core of it was this process (and its children)
    monkeypatch.setattr(loadwatch, "cpu_times", lambda: next(machine))
    monkeypatch.setattr(loadwatch.CpuSampler, "_read", staticmethod(lambda: (loadwatch.cpu_times(), next(own))))
    monkeypatch.setattr(loadwatch, "cores", lambda: 2)
    monkeypatch.setattr(loadwatch.os, "cpu_count", lambda: 2)
    assert loadwatch.CpuSampler()() == pytest.approx(1.0)
