"""Shared fixtures: everything small and made by the tests."""

from __future__ import annotations

import os

import pytest

# Tests never write to the user's cache.
os.environ.setdefault("COLORKIT_CACHE", os.path.join(os.path.dirname(__file__), ".cache-unused"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COLORKIT_CACHE", str(tmp_path_factory.getbasetemp() / "colorkit-cache"))
