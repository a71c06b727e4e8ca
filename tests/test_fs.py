"""colorkit.core.fs: the one place that writes files and folders atomically and takes locks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from colorkit.core import checkpoint, fs
from colorkit.core.registry import ColorkitError


def test_atomic_file_commits_whole_or_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    with pytest.raises(KeyboardInterrupt), fs.AtomicFile(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list((tmp_path / "sub").iterdir()) == []
    f = fs.AtomicFile(target, suffix=".mp4")
    assert f.tmp.name.endswith(".tmp.mp4") and f.tmp.parent == target.parent
    f.tmp.write_bytes(b"whole")
    assert f.commit(public=True) == target and target.read_bytes() == b"whole"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    part = fs.AtomicFile(tmp_path / "s.npy", part=True)
    assert part.tmp.name == "s.npy.part"
    part.tmp.write_bytes(b"x")
    part.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "sub"]


def test_atomic_dir_keeps_a_complete_copy_another_process_made(tmp_path):
    target = tmp_path / "set"
    with fs.atomic_dir(target) as tmp:
        (tmp / "v").write_text("incomplete")
    with fs.atomic_dir(target, keep=lambda p: (p / "v").read_text() == "complete") as tmp:
        (tmp / "v").write_text("complete")  # replaces the incomplete copy
    with fs.atomic_dir(target, keep=lambda p: (p / "v").read_text() == "complete") as tmp:
        (tmp / "v").write_text("second")  # the complete copy stays
    assert (target / "v").read_text() == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_discard_dir_frees_the_name_at_once(tmp_path):
    d = tmp_path / "cache"
    (d / "x").mkdir(parents=True)
    assert fs.discard_dir(d) and not d.exists() and list(tmp_path.iterdir()) == []
    assert fs.discard_dir(d)  # nothing there: nothing to do


def test_file_lock_is_exclusive_and_names_its_holder(tmp_path):
    a, b = fs.FileLock(tmp_path / "lock"), fs.FileLock(tmp_path / "lock")
    assert a.acquire(blocking=False)
    assert (tmp_path / "lock").read_text() == f"{os.getpid()}\n" and b.holder() == str(os.getpid())
    assert not b.acquire(blocking=False)  # a second lock in the same process too
    child = subprocess.run([sys.executable, "-c", "import sys; from colorkit.core import fs; "
                            f"sys.exit(3 if fs.FileLock({str(tmp_path / 'lock')!r}).acquire(blocking=False) else 0)"],
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.returncode == 0
    a.release()
    assert b.acquire(blocking=False)
    b.release()
    assert not fs.FileLock(tmp_path / "gone" / "lock").acquire(blocking=False)  # no folder: no lock
    assert not (tmp_path / "gone").exists()


def test_a_waiting_lock_follows_its_name_when_the_folder_is_moved(tmp_path):
    """A process waits for a build folder's lock while the holder finishes: it removes the
    lock file and renames the folder. The waiter must not end up holding the moved file:
    it either takes a fresh lock under the old name or reports the folder gone."""
    build, final = tmp_path / "build", tmp_path / "final"
    build.mkdir()
    holder = fs.FileLock(build / "lock")
    assert holder.acquire(blocking=False)
    waiter = fs.FileLock(build / "lock")
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(waiter.acquire(blocking=True)))
    t.start()
    time.sleep(0.3)
    (build / "lock").unlink()
    fs.replace(build, final)
    holder.release()
    t.join(60)
    assert got in ([True], [False])
    if got == [True]:
        assert (build / "lock").read_text() == f"{os.getpid()}\n"  # a fresh lock file under the old name
        waiter.release()
    assert not (final / "lock").exists()


def test_lock_dir_is_reentrant_and_refuses_a_second_process(tmp_path):
    out = tmp_path / "out"
    with fs.lock_dir(out), fs.lock_dir(out):
        code = ("import sys; from colorkit.core import fs\ntry:\n    fs.lock_dir(sys.argv[1]).__enter__()\n"
                "except Exception as e:\n    print(e)")
        child = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert f"is in use by another colorkit process (pid {os.getpid()})" in child.stdout, child.stderr
    with fs.lock_dir(out):  # released
        pass
    with pytest.raises(ColorkitError, match="cannot create --out .*file: File exists"):
        (tmp_path / "file").write_text("x")
        with fs.lock_dir(tmp_path / "file"):
            pass


class Crash(Exception):
    pass


def test_atomic_dir_never_loses_both_copies(tmp_path, monkeypatch):
    target = tmp_path / "state"
    with fs.atomic_dir(target) as tmp:
        (tmp / "v").write_text("1")
    real = os.replace

    def crash_moving_in(src, dst):
        if Path(dst) == target:
            raise Crash  # killed between the two renames
        return real(src, dst)

    for version in ("2", "3"):  # a crash in that window, then another in the next write
        monkeypatch.setattr(os, "replace", crash_moving_in)
        with pytest.raises(Crash), fs.atomic_dir(target) as tmp:
            (tmp / "v").write_text(version)
        monkeypatch.setattr(os, "replace", real)
        assert (checkpoint.resolve_dir(target) / "v").read_text() == "1"
    with fs.atomic_dir(target) as tmp:
        (tmp / "v").write_text("4")
    assert (target / "v").read_text() == "4" and not target.with_name("state.old").exists()
