"""Grey-feature backbones (paper section 6.2): colornet and its pretext, timm wrapper."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from colorkit_paper.backbones import ColorNet, TimmBackbone
from paper_helpers import run_stage, structured_batch
from safetensors.torch import save_file

from colorkit import ColorkitError, create_backbone


def test_colornet_shapes_per_preset():
    tiny = ColorNet(preset="tiny")
    assert tiny(torch.rand(2, 1, 32, 32)).shape == (2, tiny.out_channels, 8, 8)
    paper = ColorNet(preset="paper").eval()
    assert (paper.out_channels, paper.reduction) == (512, 4)
    with torch.no_grad():
        assert paper(torch.rand(1, 1, 64, 64)).shape == (1, 512, 16, 16)
    small = ColorNet(preset="small")
    assert (small.out_channels, small.reduction) == (128, 8)


def test_pretext_loss_is_rebalanced_cross_entropy(stats16):
    net = ColorNet(preset="tiny")
    data = structured_batch(4, 16)
    loss = net.pretext_loss(data["grey"], data["ab"], stats16)
    # the same by hand: logits of in-gamut cells, class of the pooled ab, its weight
    logits = net.logits(data["grey"])[:, stats16.in_gamut.reshape(-1)]
    target = stats16.ab_to_class(F.adaptive_avg_pool2d(data["ab"], logits.shape[-2:]))
    w = stats16.class_weights()[target]
    ce = -torch.log_softmax(logits, 1).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(loss, (w * ce).mean())
    assert logits.shape[1] == stats16.num_classes


def test_pretext_stage_learns(stats16):
    torch.manual_seed(0)
    net = ColorNet(preset="tiny")
    stage = net.pretrain_stage(stats16, epochs=1, batch_size=16, lr=3e-3)
    assert stage.modules == {"colornet": net}
    losses = run_stage(stage, structured_batch(64, 16), 40)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_timm_backbone_warns_once_without_weights():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bb = create_backbone("timm:resnet18", preset="tiny")
    assert sum("random-init" in str(w.message) for w in caught) == 1
    assert (bb.out_channels, bb.reduction) == (128, 8)  # level 2
    assert bb(torch.rand(2, 1, 32, 32)).shape == (2, 128, 4, 4)
    with pytest.warns(UserWarning, match="random-init"):
        deepest = TimmBackbone(variant="resnet18", level=-1)
    assert (deepest.out_channels, deepest.reduction) == (512, 32)


def test_timm_loads_local_safetensors_rgb_weights(tmp_path):
    import timm

    full = timm.create_model("resnet18", pretrained=False, in_chans=3)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither "random-init" nor "not found"
        bb = TimmBackbone(variant="resnet18", weights=str(path))
    torch.testing.assert_close(bb.model.conv1.weight, full.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(bb.model.layer2[0].conv1.weight, full.layer2[0].conv1.weight)


def test_timm_refuses_pickles_and_bad_names(tmp_path):
    pickle = tmp_path / "w.pth"
    pickle.write_bytes(b"not really")
    with pytest.raises(ColorkitError, match="safetensors"):
        TimmBackbone(variant="resnet18", weights=str(pickle))
    with pytest.raises(ColorkitError, match="missing"):
        TimmBackbone(variant="resnet18", weights=str(tmp_path / "none.safetensors"))
    with pytest.raises(ColorkitError, match="nosuchmodel"):
        create_backbone("timm:nosuchmodel")
    with pytest.raises(ColorkitError, match="level 9"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TimmBackbone(variant="resnet18", level=9)
