"""Preparing a data set killed with SIGKILL: the rerun gives the same cache, and a dead
process's temporary folders are removed on the next run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from colorkit.core.fs import FileLock
from colorkit.data import prepare
from colorkit.data.build import clean_dead_tmp
from colorkit.testing.archives import (
    imagenet_tar,
)

TINY = ["--preset", "tiny", "--epochs", "1", "--size", "32"]


# ------------------------------------------------------------------ kill -9, temp folders
KILL_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from colorkit.data import prepare
    src, cache, shard = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prepare(src, size=16, cache_dir=cache, progress=False, workers=1, shard_size=shard)
""")


def _start_and_kill(src: Path, cache: Path, shard: int, wait_for: str, tmp_path: Path) -> None:
    """Run prepare in a child, kill -9 it once ``wait_for`` exists under the cache."""
    script = tmp_path / "kill_prepare.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(src), str(cache), str(shard)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if list((cache / "datasets").glob(wait_for)):
                break
            if proc.poll() is not None:
                pytest.fail(f"prepare finished before it could be killed: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.01)
        else:
            pytest.fail("prepare never reached the point to kill it")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_kill9_during_prepare_then_rerun_gives_the_same_cache(tmp_path):
    src = imagenet_tar(tmp_path / "val.tar", n=240, size=(64, 48), seed=5)
    cache = tmp_path / "c"
    _start_and_kill(src, cache, 40, ".tmp-build-*/shard-00001.json", tmp_path)
    build = next((cache / "datasets").glob(".tmp-build-*"))
    # finished shards: those with their manifest (a kill between a shard's .npy and its .json
    # leaves a shard that the resumed run redoes)
    kept = {p.name: p.stat().st_mtime_ns for p in build.glob("shard-*.npy") if p.with_suffix(".json").is_file()}
    assert not list((cache / "datasets").glob("[!.]*"))  # no cache under a final name
    resumed = prepare(src, size=16, cache_dir=cache, progress=False, workers=1, shard_size=40)
    for name, mtime in kept.items():  # the shards finished before the kill were kept as they were
        assert (resumed.root / name).stat().st_mtime_ns == mtime
    clean = prepare(src, size=16, cache_dir=tmp_path / "fresh", progress=False, workers=2, shard_size=40)
    assert resumed.hash == clean.hash and resumed.content_hash == clean.content_hash and resumed.n == 240
    for (fa, _), (fb, _) in zip(resumed.shards, clean.shards):
        assert (resumed.root / fa).read_bytes() == (clean.root / fb).read_bytes()
    assert [p.name for p in (cache / "datasets").iterdir()] == [resumed.root.name]


def test_dead_processes_temp_folders_are_removed_on_the_next_run(tmp_path):
    a = imagenet_tar(tmp_path / "a.tar", n=200, size=(64, 48), seed=6)
    b = imagenet_tar(tmp_path / "b.tar", n=5, size=(64, 48), seed=7)
    cache = tmp_path / "c"
    _start_and_kill(a, cache, 20, ".tmp-build-*/shard-00000.json", tmp_path)
    datasets = cache / "datasets"
    assert list(datasets.glob(".tmp-*"))  # the killed build left its folder
    # a live process's temp folder and a legacy folder of a dead pid
    live = datasets / ".tmp-build-live"
    live.mkdir()
    lock = FileLock(live / "lock")
    assert lock.acquire(blocking=False)
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    legacy = datasets / ".tmp-0123456789abcdef-xyz"
    legacy.mkdir()
    (legacy / "owner.json").write_text(json.dumps({"pid": dead_pid.pid}))
    try:
        prepare(b, size=16, cache_dir=cache, progress=False)
        left = sorted(p.name for p in datasets.glob(".tmp-*"))
        assert left == [".tmp-build-live"]  # the dead build and the dead legacy folder are gone
    finally:
        lock.release()
    assert clean_dead_tmp(datasets) == [live]
