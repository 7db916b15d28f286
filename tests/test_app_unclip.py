"""The app's unCLIP tab (issue 17): variations and text-guided edits of an upload or a held-out shapes example with a
tiny random unCLIP (``make_tiny_unclip``): the requested number of images, the same images as the generator's own
``variations`` / ``edit``, deterministic in the seed; uploads converted (the answer says how); an empty prompt or an
undecodable upload a one-line error; without a model the tab explains how to train one; the Blocks build with
``--unclip``, and the unCLIP model also serves the text-to-image slots that take any text generator (``--gan``,
``--arena``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from apps.app import UNCLIP_API, AppConfig, build_app, takes_uploads
from apps.arena import Arena
from apps.models import MAX_PROMPT_CHARS, AppModels, RequestError
from apps.unclip import DEFAULT_UNCLIP, TRAIN_HINT, UnCLIPTab, unclip_spec
from t2i.unclip.testing import make_tiny_unclip

from .app_fixtures import free_port

PROMPT = "a large blue square in the center"


def pixels(images, size: int = 32) -> np.ndarray:
    """The images at the model's size (the tab upscales by nearest neighbour, exactly undone here)."""
    return np.stack([np.asarray(im.resize((size, size), Image.NEAREST), dtype=np.int16) for im in images])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_unclip(tmp_path_factory.mktemp("unclip") / "tiny-unclip")


@pytest.fixture(scope="module")
def tab(folder):
    return UnCLIPTab.load(str(folder), display_size=64, max_images=4)


def test_variations_are_the_generators_n_images_deterministic_in_the_seed(tab):
    label, example = tab.examples()[1]
    assert len(tab.example_labels()) == 6 and example.size == (32, 32) and label.startswith("1: a ")
    seen, images, note = tab.variations(None, label, 3, 5)
    assert len(images) == 3 and {im.size for im in images} == {(64, 64)} and seen.size == (64, 64)
    assert f"3 variation(s) of example {label}" in note and "seed 5" in note and "tiny-unclip" in note
    assert np.array_equal(pixels([seen]), pixels([example]))
    assert np.array_equal(pixels(images), pixels(tab.generator.variations(example, n=3, seed=5)))
    assert np.array_equal(pixels(tab.variations(None, label, 3, 5)[1]), pixels(images))
    assert not np.array_equal(pixels(tab.variations(None, label, 3, 6)[1]), pixels(images))
    assert "copies with the content moved" in note
    _, kept, note = tab.variations(None, label, 3, 5, 0.0, True)  # "Keep the layout"
    assert "the image's CLIP image embedding" in note
    assert np.array_equal(pixels(kept), pixels(tab.generator.variations(example, n=3, seed=5, layout="keep")))
    assert not np.array_equal(pixels(kept), pixels(images))


def test_edits_are_the_generators_n_images_deterministic_in_the_seed(tab):
    label, example = tab.examples()[0]
    _, images, note = tab.edit(None, label, f"  {PROMPT} ", 0.25, 2, 3)
    assert len(images) == 2 and f'toward "{PROMPT}"' in note and "(1 - 0.25)" in note and "seed 3" in note
    assert np.array_equal(pixels(images), pixels(tab.generator.edit(example, PROMPT, weight=0.25, n=2, seed=3)))
    assert np.array_equal(pixels(tab.edit(None, label, PROMPT, 0.25, 2, 3)[1]), pixels(images))
    assert not np.array_equal(pixels(tab.edit(None, label, PROMPT, 0.25, 2, 4)[1]), pixels(images))
    assert not np.array_equal(pixels(tab.edit(None, label, PROMPT, 1.0, 2, 3)[1]), pixels(images))


def test_uploads_of_any_mode_and_size_are_converted_and_said_so(tab, tmp_path):
    rgba = Image.new("RGBA", (50, 40), (255, 0, 0, 0))  # transparent: onto black
    rgba.paste((0, 255, 0, 255), (20, 10, 30, 30))
    rgba.save(tmp_path / "odd.png")
    seen, images, note = tab.variations(str(tmp_path / "odd.png"), tab.example_labels()[0], 2, 0)
    assert "of your image (converted from RGBA to RGB on black; resized from 50x40 to 32x32 (its centre square))" in note
    assert seen.getpixel((2, 2)) == (0, 0, 0) and len(images) == 2  # the upload wins over the example
    assert "copies with the content moved" in note  # a green box on black: moved
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    _, _, note = tab.variations(noise, None, 1, 0)
    assert "its content reaches every edge: no plain background to move it on" in note
    _, _, note = tab.edit(Image.new("RGB", (32, 32), (9, 9, 9)), None, PROMPT, 0.5, 1, 0)
    assert "of your image toward" in note and "converted" not in note


def test_bad_requests_are_one_line_errors(tab, tmp_path):
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    label = tab.example_labels()[0]
    cases = [
        (lambda: tab.edit(None, label, "", 0.5, 2, 0), "Type a prompt for the edit: it is empty"),
        (lambda: tab.edit(None, label, "   ", 0.5, 2, 0), "Type a prompt"),
        (lambda: tab.edit(None, label, ["x"], 0.5, 2, 0), "must be text"),
        (lambda: tab.edit(None, label, "x" * (MAX_PROMPT_CHARS + 1), 0.5, 2, 0), "characters long"),
        (lambda: tab.edit(None, label, PROMPT, 1.5, 2, 0), "weight .* from 0 to 1"),
        (lambda: tab.variations(str(tmp_path / "notes.png"), label, 2, 0), "not an image Pillow can read"),
        (lambda: tab.edit(str(tmp_path / "notes.png"), label, PROMPT, 0.5, 2, 0), "not an image Pillow can read"),
        (lambda: tab.variations(3, label, 2, 0), "uploaded file"),
        (lambda: tab.variations(None, "nope", 2, 0), "Upload an image or pick one of the examples"),
        (lambda: tab.variations(None, label, 5, 0), "number of images must be a whole number from 1 to 4"),
        (lambda: tab.variations(None, label, 2, -1), "seed"),
        (lambda: tab.variations(None, label, 2, 0, 1.5), "strength"),
        (lambda: tab.variations(None, label, 2, 0, 0.0, "yes"), "Keep the layout must be true or false"),
    ]
    for call, match in cases:
        with pytest.raises(RequestError, match=match) as err:
            call()
        assert "\n" not in str(err.value)


def test_without_a_model_the_tab_explains_how_to_train_one(monkeypatch):
    monkeypatch.setattr("apps.unclip.is_installed", lambda name: False)
    assert unclip_spec(DEFAULT_UNCLIP) == unclip_spec("") == "" and AppConfig().unclip == DEFAULT_UNCLIP
    assert not takes_uploads(AppConfig())
    assert unclip_spec("runs/u") == "runs/u" and takes_uploads(AppConfig(unclip="runs/u"))
    monkeypatch.setattr("apps.unclip.is_installed", lambda name: True)
    assert unclip_spec(DEFAULT_UNCLIP) == DEFAULT_UNCLIP  # the built-in, once this checkout has it
    assert "t2i train unclip --preset shapes-unclip --prior" in TRAIN_HINT and "--unclip" in TRAIN_HINT


def test_blocks_build_with_unclip_and_without(folder, tab, tmp_path):
    """The unCLIP model also fills the slots that take any text-conditional generator (``--gan``, ``--arena``);
    ``--diffusion`` needs a denoising generator (progress and x0 strip), which unCLIP is not."""
    from gan_baselines.registry import load_generator
    from t2i.diffusion.testing import make_tiny_pipeline

    make_tiny_pipeline().save_pretrained(str(tmp_path / "ldm"))
    cfg = AppConfig(gan=str(folder), diffusion=str(tmp_path / "ldm"), ae="", vae="", arena="", unclip=str(folder),
                    port=free_port(), outputs=str(tmp_path / "outputs"))
    models = AppModels(gan=tab.generator, diffusion=load_generator(cfg.diffusion), scorer=None,
                       gan_name="tiny-unclip", diffusion_name="ldm")
    arena = Arena.from_app(cfg, models)
    assert sorted(arena.contenders) == ["ldm", "tiny-unclip"]
    _, image_a, _ = arena.battle(PROMPT, 0)
    assert image_a.size == (128, 128)
    ids = {c["props"].get("elem_id"): c for c in build_app(cfg, models=models, arena=arena, unclip=tab)
           .config["components"]}
    assert {"unclip-input", "unclip-example", "unclip-count", "unclip-seed", "unclip-variations", "unclip-prompt",
            "unclip-weight", "unclip-edit", "unclip-gallery", "unclip-info"} <= set(ids) and "unclip-help" not in ids
    assert ids["unclip-example"]["props"]["value"] == tab.example_labels()[0]
    assert ids["unclip-weight"]["props"]["minimum"] == 0 and ids["unclip-weight"]["props"]["maximum"] == 1
    assert takes_uploads(cfg) and set(UNCLIP_API) == {"unclip_variations", "unclip_edit"}
    without = dataclasses.replace(cfg, unclip="")
    ids = {c["props"].get("elem_id"): c for c in build_app(without, models=models, arena=arena).config["components"]}
    assert "unclip-input" not in ids and TRAIN_HINT in ids["unclip-help"]["props"]["value"]


@pytest.mark.slow
def test_upload_variations_and_edit_through_gradio_client(folder, tab, tmp_path):
    from gradio_client import Client, handle_file

    from apps.app import launch
    from gan_baselines.registry import load_generator
    from t2i.diffusion.testing import make_tiny_pipeline

    make_tiny_pipeline().save_pretrained(str(tmp_path / "ldm"))
    cfg = AppConfig(gan=str(folder), diffusion=str(tmp_path / "ldm"), ae="", vae="", arena="", unclip=str(folder),
                    port=free_port(), outputs=str(tmp_path / "outputs"))
    models = AppModels(gan=tab.generator, diffusion=load_generator(cfg.diffusion), scorer=None)
    demo = build_app(cfg, models=models, unclip=tab)
    launch(demo, cfg, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{cfg.port}/", verbose=False)
        Image.new("RGB", (80, 80), (200, 200, 200)).save(tmp_path / "up.png")
        seen, gallery, info = client.predict(handle_file(str(tmp_path / "up.png")), tab.example_labels()[0], 3, 0, 0.0,
                                             api_name="/unclip_variations")
        assert Image.open(seen).size == (64, 64) and len(gallery) == 3 and "resized from 80x80" in info
        _, gallery, info = client.predict(None, tab.example_labels()[0], PROMPT, 0.5, 2, 0, api_name="/unclip_edit")
        assert len(gallery) == 2 and "of example 0:" in info
        with pytest.raises(Exception, match="Type a prompt for the edit"):
            client.predict(None, tab.example_labels()[0], "", 0.5, 2, 0, api_name="/unclip_edit")
        (tmp_path / "bad.png").write_bytes(b"nope")
        with pytest.raises(Exception, match="not an image Pillow can read"):
            client.predict(handle_file(str(tmp_path / "bad.png")), None, 2, 0, 0.0, api_name="/unclip_variations")
        _, gallery, info = client.predict(None, tab.example_labels()[0], 2, 0, 0.5, api_name="/unclip_variations")
        assert len(gallery) == 2 and "re-sampled through the prior (strength 0.5)" in info and "content moved" in info
        _, gallery, info = client.predict(None, tab.example_labels()[0], 2, 0, 0.0, True, api_name="/unclip_variations")
        assert len(gallery) == 2 and "the image's CLIP image embedding" in info
    finally:
        demo.close()
