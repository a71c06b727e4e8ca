"""How a run builds a method: the BuildContext (the data set's cache folder and image side)
reaches the method through ``Method.options_from_context``, not by guessing config fields."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import colorkit
from colorkit.core.interfaces import BuildContext, ComponentConfig, Method
from colorkit.train.runs import build_method


class _SizedConfig(ComponentConfig):
    image_size: int = 32
    cache_dir: str = ""


class _Sized(Method):
    """Takes the context through the default: config fields named image_size and cache_dir."""

    Config = _SizedConfig
    PRESETS = {"paper": {}, "small": {}, "tiny": {}}

    def stages(self):
        return []

    def sample(self, grey, k, *, mode=None, generator=None):
        return torch.zeros(grey.shape[0], k, 2, *grey.shape[-2:])


class _WidthConfig(ComponentConfig):
    width: int = 1
    image_size: int = 32


class _Chooser(_Sized):
    """Reads the context itself: the image side sets its width, image_size is left alone."""

    Config = _WidthConfig

    @classmethod
    def options_from_context(cls, context: BuildContext) -> dict:
        return {"width": context.image_size // 8}


@pytest.fixture
def registered():
    for name, cls in (("ctx-sized", _Sized), ("ctx-chooser", _Chooser)):
        colorkit.register("method", name)(cls)
    yield
    for name in ("ctx-sized", "ctx-chooser"):
        colorkit.unregister("method", name)


def test_build_context_is_frozen():
    ctx = BuildContext(cache_dir="/c", image_size=24)
    with pytest.raises(AttributeError):
        ctx.image_size = 32  # type: ignore[misc]


def test_default_takes_cache_dir_and_image_size_by_field_name(registered, tmp_path):
    ds = SimpleNamespace(root=str(tmp_path), size=24)
    m = build_method("ctx-sized", None, preset="tiny", options={}, dataset=ds)
    assert m.config.image_size == 24 and m.config.cache_dir == str(tmp_path / "backbones")
    mine = build_method("ctx-sized", None, preset="tiny", options={"image_size": 16}, dataset=ds)
    assert mine.config.image_size == 16  # the caller's options win
    assert build_method("ctx-sized", None, preset="tiny", options={}, dataset=None).config.image_size == 32


def test_a_method_can_read_the_context_itself(registered, tmp_path):
    m = build_method("ctx-chooser", None, preset="tiny", options={}, dataset=SimpleNamespace(root=str(tmp_path),
                                                                                              size=64))
    assert m.config.width == 8 and m.config.image_size == 32
