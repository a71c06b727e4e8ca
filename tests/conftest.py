"""Shared test setup: everything small and made by the tests; nothing touches the user's
cache (every prepared data set goes to one temporary folder for the session, deleted when
the session ends, or by the next session if this one is killed)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_PREFIX = "colorkit-test-cache-"


def _remove_caches_of_ended_sessions() -> None:
    """A killed session never reaches ``pytest_sessionfinish``: remove the caches whose
    session process (the number in the folder's name) no longer exists."""
    for d in Path(tempfile.gettempdir()).glob(_PREFIX + "*-*"):
        pid = d.name[len(_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except OSError:  # exists, owned by someone else
            pass


_remove_caches_of_ended_sessions()
_CACHE = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
os.environ["COLORKIT_CACHE"] = _CACHE
# Commands run in-process keep their thread count whatever the load, so that figures compared
# across tests do not depend on what else the machine runs (tests/test_loadwatch.py unsets it).
os.environ.setdefault("COLORKIT_THREADS_FIXED", "1")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
