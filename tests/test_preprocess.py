"""The one pixels path: resize + crop + normalise, identical for training, export and indexing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from heron.models.preprocess import ImageSpec, model_rgb, normalize, resize_for_model

SPEC = ImageSpec()


def _photo_like(width: int, height: int) -> Image.Image:
    """Smooth gradients plus texture: what a resize has to get right, deterministic."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
    noise = rng.normal(0, 12, (height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)
    pixels = np.clip(base + noise[:height, :width], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("size", [(2560, 1600), (1600, 4000), (700, 500), (224, 224)])
def test_model_input_is_square_and_matches_a_direct_resize(size: tuple[int, int]) -> None:
    image = _photo_like(*size)
    rgb = model_rgb(image, SPEC)
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
    width, height = size
    scale = 224 / min(width, height)
    new = (max(224, round(width * scale)), max(224, round(height * scale)))
    direct = image.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - 224) // 2, (new[1] - 224) // 2
    expected = np.asarray(direct.crop((left, top, left + 224, top + 224)))
    difference = np.abs(rgb.astype(int) - expected.astype(int))
    assert difference.mean() < 0.3 and difference.max() <= 4  # the reduce step is near-exact


def test_squash_mode_and_normalise_layout() -> None:
    spec = ImageSpec(resize_mode="squash", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    resized = resize_for_model(_photo_like(900, 300), spec)
    assert resized.size == (224, 224)
    pixels = normalize(np.asarray(resized), spec)
    assert pixels.shape == (3, 224, 224) and pixels.dtype == np.float32
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    batch = normalize(np.stack([np.asarray(resized)] * 2), spec)
    np.testing.assert_array_equal(batch[0], pixels)  # a batch gives the same bits as one
