"""Every image gets exactly its views, whatever shares the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.errors import BenchError
from lavic.model.arch import preprocessor_settings, real_config
from lavic.model.tiny import tiny_config
from lavic.model.views import ImageProcessor, ViewMaker

QUADRANTS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]  # TL, TR, BL, BR


def noise(height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def quadrants(side: int) -> Image.Image:
    image = np.zeros((2 * side, 2 * side, 3), dtype=np.uint8)
    for k, colour in enumerate(QUADRANTS):
        row, col = divmod(k, 2)
        image[row * side:(row + 1) * side, col * side:(col + 1) * side] = colour
    return Image.fromarray(image)


@pytest.mark.parametrize("size", [(28, 28), (30, 90), (90, 30), (5, 200), (1, 1), (300, 301)])
def test_five_views_for_every_shape(size: tuple[int, int]) -> None:
    views = ViewMaker(tiny_config())(noise(*size, seed=0))
    assert views.shape == (5, 3, 28, 28)
    assert torch.isfinite(views).all()


def test_views_do_not_depend_on_the_batch() -> None:
    maker = ViewMaker(tiny_config())
    wide, tall, square = noise(30, 90, 1), noise(90, 30, 2), noise(50, 50, 3)
    alone = maker(wide)
    assert torch.equal(maker.batch([wide, tall])[0], alone)
    assert torch.equal(maker.batch([square, wide, tall])[1], alone)


def test_grid_views_are_the_quadrants_in_reading_order() -> None:
    side = 28
    views = ViewMaker(tiny_config())(quadrants(side))
    settings = preprocessor_settings(tiny_config())
    for k, colour in enumerate(QUADRANTS):
        expected = (np.array(colour) / 255 - settings["image_mean"]) / settings["image_std"]
        got = views[k + 1].mean(dim=(1, 2)).numpy()
        assert np.allclose(got, expected, atol=1e-3), k


def test_square_image_matches_the_model_processor() -> None:
    """Where the real any-resolution processor picks the 2x2 grid, its 5 views are ours; for
    a wide image it gives 3 views (padded by batch) and only the base view agrees."""
    config = real_config()
    reference = ImageProcessor(**preprocessor_settings(config))
    maker = ViewMaker(config)
    square, wide = noise(400, 400, 4), noise(200, 600, 5)
    assert torch.allclose(reference(square, return_tensors="pt")["pixel_values"][0],
                          maker(square), atol=1e-6)
    theirs = reference([wide, square], return_tensors="pt")["pixel_values"][0]
    ours = maker(wide)
    assert theirs.shape[0] == 5 and ours.shape[0] == 5
    assert torch.equal(theirs[3:], torch.zeros_like(theirs[3:]))  # batch padding, not views
    assert torch.allclose(theirs[0], ours[0], atol=1e-6)
    assert not torch.allclose(theirs[1], ours[1])


def test_one_and_nine_views_share_the_base_view() -> None:
    image = noise(40, 70, 6)
    base = ViewMaker(tiny_config())(image)[0]
    one, nine = ViewMaker(tiny_config(), 1)(image), ViewMaker(tiny_config(), 9)(image)
    assert one.shape == (1, 3, 28, 28) and nine.shape == (9, 3, 28, 28)
    assert torch.equal(one[0], base) and torch.equal(nine[0], base)


def test_settings_name_the_view_count() -> None:
    five, nine = ViewMaker(tiny_config()).settings(), ViewMaker(tiny_config(), 9).settings()
    assert five["views"] == 5 and five["grid"] == [2, 2]
    assert nine["image_grid_pinpoints"] == [[56, 112]]
    assert five != nine


def test_unsupported_view_count_is_one_line() -> None:
    with pytest.raises(BenchError) as err:
        ViewMaker(tiny_config(), 3)
    assert err.value.one_line() == (
        "error: lavic views: views = 3 is not supported (use one of [1, 5, 9])")
