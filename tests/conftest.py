"""Shared test setup: everything small and made by the tests; nothing touches the user's
cache (every prepared data set goes to one temporary folder for the session, deleted when
the session ends)."""

from __future__ import annotations

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="colorkit-test-cache-")
os.environ["COLORKIT_CACHE"] = _CACHE


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
