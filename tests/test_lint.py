"""Lint: ``ruff check`` over the whole repository (rules and line length from
pyproject.toml) is part of the test command, so CI runs it. Skipped only where ruff is
not installed (it comes with the ``dev`` extra)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[dev]')")
def test_ruff_check_passes():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ruff found problems:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"


def test_temporary_cache_is_removed_after_the_session(tmp_path):
    """tests/conftest.py points COLORKIT_CACHE at a temporary folder and deletes it when
    the session ends."""
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_one.py").write_text(
        "import os, pathlib\n"
        "def test_cache():\n"
        "    p = pathlib.Path(os.environ['COLORKIT_CACHE'])\n"
        "    (p / 'x').write_text('made by a test')\n"
        "    pathlib.Path(__file__).with_name('where.txt').write_text(str(p))\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:colorkit",
                           "test_one.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = Path((tmp_path / "where.txt").read_text())
    assert where.name.startswith("colorkit-test-cache-") and not where.exists()


def test_caches_of_killed_sessions_are_removed_by_the_next(tmp_path):
    """A session that is killed never reaches its clean-up: the next session removes the
    caches whose session process is gone (and keeps those of sessions still running)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_one.py").write_text("def test_nothing():\n    pass\n")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp / f"colorkit-test-cache-{dead}-abc"
    (stale / "demo").mkdir(parents=True)
    alive = tmp / f"colorkit-test-cache-{os.getpid()}-def"
    alive.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:colorkit",
                           "test_one.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not stale.exists() and alive.exists()
