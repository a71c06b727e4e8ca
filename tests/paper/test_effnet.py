"""``effnet-lite0``: the ImageNet backbone's weights (mapped by name, read without pickle
code, converted once), its classification sanity, its features, and runs that carry it."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from colorkit_paper import effnet
from colorkit_paper.effnet import EffNetLite0, convert_package_weights, lite0_name_map, pretrained_state

from colorkit import ColorkitError, create_backbone
from colorkit.core.color import rgb_to_lab

timm = pytest.importorskip("timm")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return pretrained_state(cache_dir=tmp_path_factory.mktemp("cache"))


def test_every_tensor_is_mapped_by_name(state):
    raw = torch.load(effnet.package_weights_file(), map_location="cpu", weights_only=True)
    table = lite0_name_map()
    assert set(table) == set(raw) and len(raw) == 296
    assert len(set(table.values())) == 296  # one to one
    full = timm.create_model(effnet.ARCH, pretrained=False)
    assert set(full.state_dict()) == set(state)
    full.load_state_dict(state, strict=True)  # every timm tensor filled, shapes equal
    for src, dst in table.items():
        assert torch.equal(raw[src], state[dst])


def _imagenet_top(state, image, n):
    full = timm.create_model(effnet.ARCH, pretrained=False)
    full.load_state_dict(state)
    full.eval()
    rgb = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    grey = rgb_to_lab(rgb)[:, :1] / 100  # the photo turned grey, in colorkit's units
    x = effnet._grey_to_srgb(grey).repeat(1, 3, 1, 1)
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        return full((x - 0.5) / 0.5).topk(n).indices[0].tolist()


def test_grey_photos_are_recognised(state):
    """ImageNet classes: 281-285 are domestic cats (285 Egyptian cat), 967 espresso, 968 cup."""
    assert _imagenet_top(state, skdata.chelsea(), 1)[0] in range(281, 286)
    assert {967, 968} & set(_imagenet_top(state, skdata.coffee(), 2))


def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    first = pretrained_state(cache_dir=tmp_path)
    files = list((tmp_path / "weights").glob("effnet-lite0-*.safetensors"))
    assert len(files) == 1
    monkeypatch.setattr(effnet, "convert_package_weights", lambda p: pytest.fail("converted twice"))
    again = pretrained_state(cache_dir=tmp_path)
    assert all(torch.equal(first[k], again[k]) for k in first)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_with_code_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("ran code",))

    bad = tmp_path / "bad.pth"
    with open(bad, "wb") as f:
        pickle.dump({"_conv_stem.weight": Boom()}, f)
    with pytest.raises(ColorkitError, match="cannot read .* as plain tensors"):
        convert_package_weights(bad)
    plain = tmp_path / "plain.pth"
    torch.save({"x": torch.zeros(1)}, plain)
    with pytest.raises(ColorkitError, match="does not match EfficientNet-Lite0"):
        convert_package_weights(plain)


@pytest.mark.parametrize("levels, channels, side", [((3,), 112, 16), ((2, 3), 152, 32), ((4,), 320, 8)])
def test_levels_and_hypercolumns(levels, channels, side):
    b = create_backbone("effnet-lite0", levels=levels)
    b.eval()
    with torch.no_grad():
        f = b(torch.rand(2, 1, 64, 64))
    assert tuple(f.shape) == (2, channels, side, side) and b.out_channels == channels
    assert b.pretrain_stage(None, epochs=1, batch_size=1, lr=1.0) is None  # never trained


def test_load_pretrained_records_the_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORKIT_CACHE", str(tmp_path))
    b = EffNetLite0()
    assert b.provenance() == {}
    prov = b.load_pretrained()
    assert prov == b.provenance() and len(prov["backbone_weights_sha256"]) == 64
    full = pretrained_state(cache_dir=tmp_path)
    assert torch.equal(b.conv_stem.weight, full["conv_stem.weight"].sum(1, keepdim=True))
    assert torch.equal(b.blocks[4][0].conv_pw.weight, full["blocks.4.0.conv_pw.weight"])
    assert len(b.blocks) == 5  # stages after level 3's are not kept


def test_a_trained_run_carries_the_backbone(colorkit_tiny_dataset, tmp_path, monkeypatch):
    """The run records the weights' digest and loads without the package file."""
    from colorkit.inference import load
    from colorkit.train.runs import train

    out = train("mdn", out=tmp_path / "run", preset="tiny", size=32, epochs=1, prepared=colorkit_tiny_dataset,
                options={"backbone": "effnet-lite0", "components": 2}, progress=False)
    info = json.loads((out / "run.json").read_text())
    digest = info["provenance"]["backbone_weights_sha256"]
    assert len(digest) == 64
    monkeypatch.setattr(effnet, "pretrained_state", lambda *a, **k: pytest.fail("read the package weights"))
    monkeypatch.setattr(effnet, "package_weights_file", lambda: pytest.fail("looked for the package"))
    model = load(out)
    assert model.method.provenance()["backbone_weights_sha256"] == digest
    assert tuple(model.sample(torch.rand(1, 1, 32, 32), k=2).shape) == (1, 2, 2, 32, 32)



def test_mdn_skip_small_preset_reads_levels_3_and_4(stats16, tmp_path):
    """``mdn-skip``'s ``small`` preset gives its MDN the hypercolumn of levels 3 and 4
    (``mdn`` keeps level 3). The preset's levels are for its own backbone: naming another
    backbone without kwargs builds that one without them; a saved run keeps its own levels."""
    from colorkit_paper.method import MDNSkipMethod

    from colorkit import create_method

    skip = create_method("mdn-skip", stats=stats16, preset="small", image_size=16)
    assert skip.backbone.config.levels == (3, 4) and skip.backbone.out_channels == 112 + 320
    assert skip.mdn.convs[0][0].in_channels == 432 + skip.mdn.hint_channels
    plain = create_method("mdn", stats=stats16, preset="small", image_size=16)
    assert plain.backbone.config.levels == (3,) and plain.mdn.convs[0][0].in_channels == 112 + plain.mdn.hint_channels
    other = create_method("mdn-skip", stats=stats16, preset="small", image_size=16, backbone="colornet")
    assert other.config.backbone_kwargs == {} and other.backbone.registry_name == "colornet"
    assert MDNSkipMethod.make_config(None, backbone_kwargs={"levels": [3]}).backbone_kwargs == {"levels": [3]}
    small = MDNSkipMethod.make_config(None)  # a config object made from the preset, then another backbone
    assert MDNSkipMethod.make_config(small, backbone="colornet").backbone_kwargs == {}
    mine = MDNSkipMethod.make_config(None, backbone_kwargs={"input_scale": 2})
    assert MDNSkipMethod.make_config(mine, backbone="colornet").backbone_kwargs == {"input_scale": 2}
    old = create_method("mdn-skip", stats=stats16, preset="small", image_size=16, backbone_kwargs={})
    old.save(tmp_path / "old")  # as a run saved before the preset read two levels
    back = MDNSkipMethod.load(tmp_path / "old")
    assert back.backbone.config.levels == (3,) and back.config.backbone_kwargs == {}
