"""The shared building blocks (colorkit.core.layers): one conv block for the paper's networks
(TF SAME padding) and the baselines (symmetric padding), with the same layer layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from colorkit.core.layers import ConvBlock


@pytest.mark.parametrize("k,s,size,same,symmetric", [(5, 2, 32, 16, 16), (4, 2, 32, 16, 16), (5, 1, 17, 17, 17),
                                                      (4, 1, 16, 16, 15), (5, 2, 17, 9, 9)])
def test_padding_modes(k, s, size, same, symmetric):
    x = torch.randn(2, 3, size, size)
    assert ConvBlock(3, 4, k, s)(x).shape[-1] == same
    assert ConvBlock(3, 4, k, s, padding="symmetric")(x).shape[-1] == symmetric


def test_symmetric_block_is_the_plain_conv_relu_bn():
    torch.manual_seed(0)
    block = ConvBlock(2, 3, 5, 2, padding="symmetric")
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(2, 3, 5, 2, padding=2), nn.ReLU(inplace=True), nn.BatchNorm2d(3))
    assert block.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, 2, 16, 16)
    torch.testing.assert_close(block(x), plain(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="padding must be"):
        ConvBlock(2, 3, 5, padding="valid")
