"""The versions a result records."""

from __future__ import annotations


def test_versions_names_colorkit_torch_python_and_numpy():
    import platform

    import numpy
    import torch

    import colorkit
    from colorkit.core.environment import versions

    v = versions()
    assert v["colorkit"] == colorkit.__version__ and v["torch"] == torch.__version__
    assert v["python"] == platform.python_version() and v["numpy"] == numpy.__version__
    assert all(isinstance(x, str) for x in v.values())
