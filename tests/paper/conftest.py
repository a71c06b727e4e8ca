"""Fixtures for the paper plugin's tests (helpers live in ``paper_helpers``)."""

from __future__ import annotations

import pytest
from paper_helpers import synthetic_stats

from colorkit.core.stats import ColorStats


@pytest.fixture(scope="session")
def stats16() -> ColorStats:
    return synthetic_stats(16)
