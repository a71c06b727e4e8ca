"""Shared test setup: everything small and made by the tests; nothing touches the user's
cache (every prepared data set goes to one temporary folder for the session)."""

from __future__ import annotations

import os
import tempfile

os.environ["COLORKIT_CACHE"] = tempfile.mkdtemp(prefix="colorkit-test-cache-")
