"""colorkit.core.color: golden values, forth-and-back, agreement with scikit-image, model units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorkit.core.color import (
    AB_SCALE,
    L_SCALE,
    lab_to_rgb,
    model_to_rgb,
    rgb_to_grey,
    rgb_to_lab,
    rgb_to_model,
    uint8_hwc_to_model,
)
from colorkit.core.registry import ColorkitError


def _px(*rgb: float, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(rgb, dtype=dtype).view(1, 3, 1, 1)


def test_golden_white_black_red():
    lab = rgb_to_lab(_px(1.0, 1.0, 1.0))  # white: a, b ~ -0.005 from the sRGB matrix's rounding
    torch.testing.assert_close(lab.flatten(), torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=1e-2, rtol=0)
    lab = rgb_to_lab(_px(0.0, 0.0, 0.0))
    torch.testing.assert_close(lab.flatten(), torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    lab = rgb_to_lab(_px(1.0, 0.0, 0.0))
    torch.testing.assert_close(
        lab.flatten(), torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64), atol=1e-2, rtol=0
    )


def test_matches_skimage_random_images():
    rng = np.random.default_rng(0)
    img = rng.random((2, 17, 13, 3))  # (N, H, W, 3) in [0, 1]
    ours = rgb_to_lab(torch.from_numpy(img).permute(0, 3, 1, 2))  # float64
    ref = np.stack([skcolor.rgb2lab(im) for im in img]).transpose(0, 3, 1, 2)
    assert np.abs(ours.numpy() - ref).max() < 1e-6
    ours32 = rgb_to_lab(torch.from_numpy(img).permute(0, 3, 1, 2).float())
    assert np.abs(ours32.numpy() - ref).max() < 1e-3  # float32: within 1e-3 Lab units
    # and back: skimage's lab2rgb on in-gamut Lab
    back = lab_to_rgb(torch.from_numpy(ref)).numpy()
    ref_back = np.stack([skcolor.lab2rgb(x.transpose(1, 2, 0)) for x in ref]).transpose(0, 3, 1, 2)
    assert np.abs(back - ref_back).max() < 1e-6


def test_forth_and_back():
    rgb = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4, rtol=0)
    grey, ab = rgb_to_model(rgb)
    torch.testing.assert_close(model_to_rgb(grey, ab), rgb, atol=1e-4, rtol=0)


def test_out_of_gamut_is_clamped():
    lab = torch.tensor([50.0, 127.0, -127.0]).view(1, 3, 1, 1)
    rgb = lab_to_rgb(lab)
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_model_units_and_shapes():
    rgb = torch.rand(3, 3, 5, 6)
    grey, ab = rgb_to_model(rgb)
    assert grey.shape == (3, 1, 5, 6) and ab.shape == (3, 2, 5, 6)
    lab = rgb_to_lab(rgb)
    torch.testing.assert_close(grey * L_SCALE, lab[:, :1])
    torch.testing.assert_close(ab * AB_SCALE, lab[:, 1:])
    assert AB_SCALE == 128.0 and L_SCALE == 100.0
    assert 0.0 <= float(grey.min()) and float(grey.max()) <= 1.0
    torch.testing.assert_close(rgb_to_grey(rgb), grey)
    # unbatched (3, H, W) works too
    g1, a1 = rgb_to_model(rgb[0])
    torch.testing.assert_close(g1, grey[0])
    torch.testing.assert_close(a1, ab[0])
    red_ab = rgb_to_model(_px(1.0, 0.0, 0.0))[1].flatten()
    torch.testing.assert_close(red_ab, torch.tensor([80.09, 67.20], dtype=torch.float64) / 128, atol=1e-4, rtol=0)


def test_uint8_hwc_to_model():
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    grey, ab = uint8_hwc_to_model(arr)
    assert grey.dtype == torch.float32 and grey.shape == (2, 1, 4, 5) and ab.shape == (2, 2, 4, 5)
    ref = rgb_to_model(torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(grey, ref[0])
    torch.testing.assert_close(ab, ref[1])
    g1, _ = uint8_hwc_to_model(arr[0])
    assert g1.shape == (1, 1, 4, 5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: rgb_to_lab(torch.rand(2, 4, 4)),
        lambda: lab_to_rgb(torch.rand(1, 2, 4, 4)),
        lambda: model_to_rgb(torch.rand(1, 1, 4, 4), torch.rand(1, 2, 8, 8)),
        lambda: uint8_hwc_to_model(np.zeros((2, 4, 4, 3), dtype=np.float32)),
        lambda: rgb_to_lab(np.zeros((3, 4, 4))),
    ],
)
def test_exceptions(call):
    with pytest.raises(ColorkitError):
        call()


@pytest.mark.parametrize("mode", ["I;16", "I;16N", "La", "LA", "L"])
def test_every_greyscale_mode_opens_as_its_grey(mode):
    """colorize's reader and the data set loader share one set of greyscale modes: 16-bit
    native-endian grey is scaled (not clipped to white) and premultiplied La opens."""
    from PIL import Image

    from colorkit.data.imageio import open_image
    from colorkit.data.images import GREY_MODES

    assert mode in GREY_MODES
    if mode.startswith("I;16"):
        values = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
        im = Image.frombytes(mode, (64, 64), values.astype("<u2" if mode == "I;16" else "=u2").tobytes())
        expect = np.round(values / 65535.0 * 255.0)
    else:
        im = Image.new(mode, (64, 64), (120, 255) if mode in {"La", "LA"} else 120)
        expect = np.full((64, 64), 120.0)
    out = np.asarray(open_image(im))
    assert out.shape == (64, 64, 3) and (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert np.abs(out[..., 0].astype(float) - expect).max() <= 1
