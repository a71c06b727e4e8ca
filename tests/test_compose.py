"""Composition of colorizations (colorkit.data.compose): kornia's colour science to 8-bit
rounding, the same bytes on any number of threads, and the photo and frame paths agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from colorkit.core.color import AB_SCALE, lab_to_rgb, rgb_to_lab
from colorkit.data.compose import Lightness, compose_frame, compose_image, frame_lightness
from colorkit.data.imageio import to_tensor
from colorkit.inference.output import Writer


def _photo(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _reference(img: Image.Image, ab: torch.Tensor) -> np.ndarray:
    """kornia's Lab of the photo, F.interpolate's field, kornia's lab_to_rgb, rounded."""
    w, h = img.size
    L = rgb_to_lab(to_tensor(img))[:, :1]
    field = F.interpolate(ab[None].float(), size=(h, w), mode="bilinear", align_corners=False) * AB_SCALE
    rgb = lab_to_rgb(torch.cat([L, field], 1))[0]
    return (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("size", [(61, 97), (5, 300), (130, 1)])
def test_composition_is_kornias_colour_science_to_rounding(size):
    img = _photo(*size)
    ab = 0.6 * torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(1))  # out of gamut in places
    got = np.asarray(compose_image(Lightness.of(img), ab)).astype(int)
    ref = _reference(img, ab).astype(int)
    assert got.shape == ref.shape
    diff = np.abs(got - ref)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.002  # only rounding ties move


def test_photo_composition_gives_the_same_bytes_on_any_number_of_threads():
    img = _photo(40, 1500, seed=2)  # rows wider than one serial band
    ab = 0.4 * torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(3))
    light = Lightness.of(img)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = np.asarray(compose_image(light, ab))
        torch.set_num_threads(max(2, old))
        many = np.asarray(compose_image(Lightness.of(img), ab))
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(one, many)


def test_frames_and_photos_are_composed_alike():
    rgb = np.asarray(_photo(48, 80, seed=4))
    ab = 0.4 * torch.randn(3, 2, 16, 16, generator=torch.Generator().manual_seed(5))
    assert torch.equal(frame_lightness(rgb), Lightness.of(Image.fromarray(rgb)).L)
    frames = compose_frame(frame_lightness(rgb), ab)
    light = Lightness.of(Image.fromarray(rgb))
    for i, frame in enumerate(frames):
        photo = np.asarray(compose_image(light, ab[i])).astype(int)
        assert np.abs(photo - frame).max() <= 1  # the width pass differs only in rounding


def test_the_writer_composes_in_its_threads_and_needs_the_size(tmp_path):
    img = _photo(20, 30)
    ab = 0.3 * torch.randn(2, 8, 8)
    light = Lightness.of(img)
    with Writer() as writer:
        with pytest.raises(ValueError, match="pixels="):
            writer.submit(lambda: compose_image(light, ab), tmp_path / "a.png")
        writer.submit(lambda: compose_image(light, ab), tmp_path / "a.png", pixels=600)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(compose_image(light, ab)))
