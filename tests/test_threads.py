"""Threads on a shared machine: OpenMP's idle threads sleep when others keep the cores busy,
``--threads auto`` takes the cores not already busy, and user settings always win."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from colorkit import ColorkitError
from colorkit.core import threads


def test_passive_waits_only_on_a_busy_machine_and_never_over_the_user():
    env: dict[str, str] = {}
    assert threads.adapt_wait_policy(env, busy=0.2, torch_loaded=False) is None and env == {}
    assert threads.adapt_wait_policy(env, busy=1.9, torch_loaded=False) == "PASSIVE"
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    for user in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "1000"}):
        env = dict(user)
        assert threads.adapt_wait_policy(env, busy=1.9, torch_loaded=False) is None and env == user
    env = {}
    assert threads.adapt_wait_policy(env, busy=1.9, torch_loaded=True) is None and env == {}  # too late


def test_auto_threads_are_the_free_cores():
    assert threads.auto_threads(load=0.1, n_cores=2) == 2
    assert threads.auto_threads(load=0.9, n_cores=2) == 1
    assert threads.auto_threads(load=2.0, n_cores=2) == 1  # at least one
    assert threads.auto_threads(load=5.5, n_cores=16) == 11
    assert threads.resolve_threads(None) is None and threads.resolve_threads(3) == 3
    assert threads.resolve_threads("2") == 2 and 1 <= threads.resolve_threads("auto") <= threads.cores()
    for bad in (0, -1, "many", True):
        with pytest.raises(ColorkitError, match="--threads must be a positive whole number or 'auto'"):
            threads.resolve_threads(bad)


def test_busy_means_other_processes_not_this_ones_own_threads():
    n = threads.cores()
    assert not threads.machine_load(own_threads=n, load=n + 0.2)["busy"]  # a bench's own threads at the end
    assert threads.machine_load(own_threads=n, load=2 * n + 0.2)["busy"]  # as many again from others
    assert threads.machine_load(load=0.6 * n + 0.1)["busy"] and not threads.machine_load(load=0.1)["busy"]


def test_busy_cores_sees_a_spinning_process():
    if threads.busy_cores(0.01) is None:
        pytest.skip("no /proc/stat on this system")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert threads.busy_cores(0.5) >= 0.6
    finally:
        spin.kill()
        spin.wait()


SCRIPT = """
import json, os, sys
from colorkit.core import threads
threads.busy_cores = lambda window=0.1: float(sys.argv[1])
from colorkit.cli import main
try:
    main([sys.argv[2], "--help"])
except SystemExit:
    pass
print(json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY"), "torch_loaded": threads.STARTUP.get("torch_loaded")}))
"""


@pytest.mark.parametrize(("busy", "command", "user", "expected"), [
    (1.5, "train", None, "PASSIVE"), (1.5, "bench", None, "PASSIVE"), (0.1, "bench", None, None),
    (1.5, "colorize", None, "PASSIVE"), (1.5, "bench-video", None, "PASSIVE"), (1.5, "plugins", None, None),
    (1.5, "bench", "ACTIVE", "ACTIVE")])
def test_the_command_line_sets_the_policy_before_torch_loads(busy, command, user, expected):
    env = {k: v for k, v in os.environ.items() if k not in threads.OPENMP_VARIABLES}
    if user:
        env["OMP_WAIT_POLICY"] = user
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(busy), command], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["policy"] == expected
    assert out["torch_loaded"] is (None if command == "plugins" else False)  # torch not loaded yet
