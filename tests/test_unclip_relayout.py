"""Variations that move the layout (issue 17): ``t2i.unclip.relayout`` moves an image's content, whole and unchanged,
to a place drawn from the generator on its own background (several objects keep their relation); an image with no
background to move on, or with no content, comes back unchanged; ``UnCLIPGenerator.variations(layout=...)`` decodes
the moved copies ("move", the default) or the image as it is ("keep")."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gan_baselines.registry import load_generator
from t2i.generator import GenerationError
from t2i.unclip.relayout import background_colour, centre_square, content_box, relayout
from t2i.unclip.testing import make_tiny_unclip


def scene(background=(0, 0, 0)) -> Image.Image:
    """A 32 px scene: a red 6x4 box at (3, 5) and a green 3x3 box 10 px right and 2 px down of it."""
    image = Image.new("RGB", (32, 32), background)
    image.paste((230, 25, 25), (3, 5, 9, 9))
    image.paste((25, 200, 50), (13, 7, 16, 10))
    return image


def boxes(image: Image.Image, background) -> dict[str, tuple[int, int, int, int]]:
    a = np.asarray(image)
    found = {}
    for name, colour in (("red", (230, 25, 25)), ("green", (25, 200, 50))):
        ys, xs = np.nonzero((a == colour).all(axis=-1))
        found[name] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return found


@pytest.mark.parametrize("background", [(0, 0, 0), (255, 255, 255)])
def test_content_moves_whole_with_its_relation_on_its_own_background(background):
    source = scene(background)
    assert background_colour(source) == background and content_box(source, background) == (3, 5, 16, 10)
    before = boxes(source, background)
    places = set()
    for seed in range(8):
        moved = relayout(source, np.random.default_rng(seed))
        assert moved.size == source.size and background_colour(moved) == background
        box = content_box(moved, background)
        x, y = box[:2]
        # the same pixels, shifted as one block; everything else is background
        np.testing.assert_array_equal(np.asarray(moved.crop(box)), np.asarray(source.crop((3, 5, 16, 10))))
        assert (np.asarray(moved) != background).any(axis=-1).sum() == (np.asarray(source) != background).any(axis=-1).sum()
        after = boxes(moved, background)
        assert after["green"][0] - after["red"][0] == before["green"][0] - before["red"][0] == 10
        assert after["green"][1] - after["red"][1] == before["green"][1] - before["red"][1] == 2
        assert 0 <= x <= 32 - 13 and 0 <= y <= 32 - 5
        places.add((x, y))
        again = relayout(source, np.random.default_rng(seed))
        np.testing.assert_array_equal(np.asarray(again), np.asarray(moved))  # deterministic in the generator
    assert len(places) >= 6  # the place is drawn, not fixed


def test_the_centre_square_is_what_the_image_processor_keeps(unclip):
    ramp = np.linspace(0, 255, 64)  # smooth, so resampling before or after the crop differs little
    wide = Image.fromarray(np.stack([np.tile(ramp, (48, 1)), np.tile(ramp[::-1], (48, 1)),
                                     np.full((48, 64), 90.0)], axis=-1).astype(np.uint8))
    square = centre_square(wide)
    assert square.size == (48, 48)
    np.testing.assert_array_equal(np.asarray(square), np.asarray(wide)[:, 8:56])
    processor = unclip.prior.image_processor
    cropped, whole = (processor(im, return_tensors="pt").pixel_values for im in (square, wide))
    assert (cropped - whole).abs().max() < 0.05  # the same view (the sides' values differ by more than 0.5)
    assert (processor(wide.crop((0, 0, 48, 48)), return_tensors="pt").pixel_values - whole).abs().max() > 0.5


def test_images_with_nothing_to_move_come_back_unchanged_and_use_the_same_draws():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    blank = Image.new("RGB", (32, 32), (7, 7, 7))
    for image in (noise, blank):
        rng = np.random.default_rng(3)
        np.testing.assert_array_equal(np.asarray(relayout(image, rng)), np.asarray(image))
        reference = np.random.default_rng(3)
        reference.random(2)
        assert rng.random() == reference.random()  # two draws either way
    assert content_box(noise, background_colour(noise)) is None and content_box(blank, (7, 7, 7)) is None


@pytest.fixture(scope="module")
def unclip(tmp_path_factory):
    return load_generator(make_tiny_unclip(tmp_path_factory.mktemp("unclip") / "model"))


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


def test_variations_decode_moved_copies_by_default_and_the_image_itself_with_keep(unclip):
    source = scene()
    moved = unclip.variations(source, n=3, seed=2)
    np.testing.assert_array_equal(pixels(moved), pixels(unclip.variations(source, n=3, seed=2, layout="move")))
    np.testing.assert_array_equal(pixels(moved), pixels(unclip.variations(source, n=3, seed=2)))  # deterministic
    kept = unclip.variations(source, n=3, seed=2, layout="keep")
    assert np.abs(pixels(moved) - pixels(kept)).max() > 0
    # "keep" decodes the image's own embedding three times: the decoder pipeline on that embedding, by hand
    from t2i.generator import rngs_per_image
    from t2i.unclip.pipeline import _images

    e = unclip.embed_image(source).expand(3, -1)
    by_hand = _images(unclip.size, unclip.decoder, e, unclip.prior.get_zero_embed(3, unclip.device),
                      rngs_per_image(2, 1, 3), unclip.options)
    np.testing.assert_array_equal(pixels(kept), pixels(by_hand))
    # nothing to move (content to every edge): both give the same images (the places have their own stream)
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    np.testing.assert_array_equal(pixels(unclip.variations(noise, n=2, seed=0)),
                                  pixels(unclip.variations(noise, n=2, seed=0, layout="keep")))
    with pytest.raises(GenerationError, match="layout must be one of move, keep"):
        unclip.variations(source, layout="shuffle")


def test_variations_benchmark_reports_one_and_two_object_scenes(tmp_path):
    import json

    from benchmarks import unclip as bench

    folder = make_tiny_unclip(tmp_path / "model")
    assert bench.main(["--model", str(folder), "--n", "2", "--k", "2", "--two", "2", "--edits", "1",
                       "--out", str(tmp_path / "out")]) == 0
    table = json.loads((tmp_path / "out" / "variations.json").read_text())
    assert table["options"] == {"layout": "move"} and table["scenes"] == 2
    assert 0.0 <= table["kept"]["mean"] <= 1.0 and table["two_object"]["n"] == 4.0  # 2 scenes x 2 variations
    assert {"relation", "all_correct"} <= set(table["two_object"])
    assert (tmp_path / "out" / "variations.png").is_file() and (tmp_path / "out" / "edits.png").is_file()
