"""The app's translation tab (issue 18, item 2): pix2pix / CycleGAN runs trained two steps here, examples from
their task, uploads of any mode or size converted (the answer says how), bad uploads a one-line error; the tab
explains how to add a translator when none is given; uploads stay refused without one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from apps.models import RequestError
from apps.translation import Translators
from gan_baselines.translation import load_translator
from gan_baselines.translation_eval import translate, translator_input
from t2i.data.translation import render_pair, task_scenes

TINY = ["--n", "16", "--batch-size", "4", "--g-base", "4", "--d-base", "4", "--eval-n", "0", "--log-every", "1",
        "--checkpoint-every", "0", "--steps", "2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from train import cyclegan, pix2pix

    root = tmp_path_factory.mktemp("translators")
    assert pix2pix.main(TINY + ["--data", "greyscale", "--out", str(root / "p2p-grey")]) == 0
    assert cyclegan.main(TINY + ["--data", "outline", "--pool-size", "3", "--out", str(root / "cg-outline")]) == 0
    return root


@pytest.fixture(scope="module")
def translators(runs):
    return Translators.load([str(runs / "p2p-grey"), str(runs / "cg-outline" / "model")], display_size=64)


def test_each_run_is_an_entry_a_cyclegan_two(translators):
    assert list(translators.models) == ["p2p-grey (pix2pix)", "cg-outline (cyclegan, A -> B)",
                                        "cg-outline (cyclegan, B -> A)"]
    assert "trained on `greyscale`" in translators.models["p2p-grey (pix2pix)"].about()


def test_examples_are_held_out_scenes_of_the_task(runs, translators):
    name = "p2p-grey (pix2pix)"
    labels = translators.example_labels(name)
    scene = task_scenes("greyscale", 1, split="test")[0]
    assert len(labels) == 6 and labels[0] == f"0: {scene['caption']}"
    grey, _ = render_pair(scene, "greyscale")
    assert np.array_equal(np.asarray(translators.example(name, labels[0])), np.asarray(grey))  # the A side
    shown, out, info = translators.translate_example(name, labels[0])
    assert shown.size == out.size == (64, 64) and "pix2pix A -> B" in info and "input was" not in info
    G, _ = load_translator(runs / "p2p-grey")
    expected = translate(G, translator_input(grey, 32)[0][None])[0]  # what `t2i translate` gives
    got = torch.from_numpy(np.array(out.resize((32, 32), Image.NEAREST))).permute(2, 0, 1)
    assert torch.equal(got, (expected * 255).round().to(torch.uint8))
    _, _, info_ba = translators.translate_example("cg-outline (cyclegan, B -> A)",
                                                  translators.example_labels("cg-outline (cyclegan, B -> A)")[0])
    assert "B -> A" in info_ba
    with pytest.raises(RequestError, match="Pick one of the examples"):
        translators.example(name, "nope")
    with pytest.raises(RequestError, match="translator must be one of"):
        translators.translate("nope", grey)


def test_uploads_of_any_mode_and_size_are_converted_and_said_so(translators, tmp_path):
    name = "p2p-grey (pix2pix)"
    rgba = Image.new("RGBA", (50, 40), (255, 0, 0, 0))  # transparent: onto black
    rgba.paste((0, 255, 0, 255), (20, 10, 30, 30))
    rgba.save(tmp_path / "odd.png")
    shown, out, info = translators.translate(name, str(tmp_path / "odd.png"))
    assert "converted from RGBA to RGB" in info and "resized from 50x40 to 32x32" in info
    assert shown.getpixel((2, 2)) == (0, 0, 0) and out.size == (64, 64)
    pair = Image.new("RGB", (64, 32), (9, 9, 9))
    _, _, info = translators.translate(name, pair)
    assert "A|B pair" in info
    grey = Image.new("L", (32, 32), 128)
    _, _, info = translators.translate(name, grey)
    assert "converted from L to RGB" in info and "resized" not in info
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    for bad, match in ((str(tmp_path / "notes.png"), "not an image"), (None, "Upload an image"), (3, "uploaded file")):
        with pytest.raises(RequestError, match=match):
            translators.translate(name, bad)


def test_translator_input_without_a_resize_rule_refuses_wrong_sizes():
    with pytest.raises(ValueError, match="is 50x40 px; the model translates 32x32"):
        translator_input(Image.new("RGB", (50, 40)), 32)


def test_tab_is_built_with_translators_and_explains_without(runs, translators, tmp_path):
    from apps.app import AppConfig, build_app
    from apps.models import AppModels

    from .app_fixtures import build_tiny_models

    cfg = build_tiny_models(tmp_path / "models")
    models = AppModels.load(cfg)
    without = {c["props"].get("elem_id"): c for c in build_app(cfg, models=models).config["components"]}
    assert "translation-help" in without and "translator" not in without
    assert "t2i app --translator" in without["translation-help"]["props"]["value"]
    with_cfg = dataclasses.replace(cfg, translator=f"{runs / 'p2p-grey'}")
    demo = build_app(with_cfg, models=models)
    ids = {c["props"].get("elem_id"): c for c in demo.config["components"]}
    assert {"translator", "translate-input", "translate-example", "translate", "translate-output"} <= set(ids)
    assert ids["translator"]["props"]["value"] == "p2p-grey (pix2pix)"
    assert isinstance(AppConfig().translator, str)


@pytest.mark.slow
def test_upload_and_translate_through_gradio_client(runs, tmp_path):
    import httpx
    from gradio_client import Client, handle_file

    from apps.app import build_app, launch
    from apps.models import AppModels

    from .app_fixtures import build_tiny_models

    cfg = dataclasses.replace(build_tiny_models(tmp_path / "models"), translator=str(runs / "p2p-grey"))
    demo = build_app(cfg, models=AppModels.load(cfg))
    launch(demo, cfg, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{cfg.port}/", verbose=False)
        Image.new("RGB", (80, 80), (200, 200, 200)).save(tmp_path / "up.png")
        seen, out, info = client.predict("p2p-grey (pix2pix)", handle_file(str(tmp_path / "up.png")),
                                         api_name="/translate")
        assert Image.open(out).size == (128, 128) and "resized from 80x80" in info
        labels = client.predict("p2p-grey (pix2pix)", api_name="/translation_examples")
        label = labels["value"] if isinstance(labels, dict) else labels
        _, out, info = client.predict("p2p-grey (pix2pix)", label, api_name="/translate_example")
        assert "pix2pix" in info
        (tmp_path / "bad.png").write_bytes(b"nope")
        with pytest.raises(Exception, match="not an image Pillow can read"):
            client.predict("p2p-grey (pix2pix)", handle_file(str(tmp_path / "bad.png")), api_name="/translate")
        with httpx.Client(base_url=f"http://127.0.0.1:{cfg.port}", timeout=60) as http:
            big = http.post("/gradio_api/upload", files={"files": ("x.png", b"0" * 5_000_001, "image/png")})
            assert big.status_code in (400, 413)  # over --max-upload-mb
    finally:
        demo.close()


def test_uploads_and_examples_are_read_as_the_run_read_its_folder(tmp_path):
    """A run trained on a folder of drawings with --resize pad --background white: an upload is letterboxed on
    white, not centre-cropped on black, and the examples come from the folder's test split."""
    from train import pix2pix

    root = tmp_path / "drawings"
    for split, n in (("train", 4), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (96, 48), (0, 0, 200 + i)).save(root / split / f"{split}{i}.png")
    assert pix2pix.main(TINY + ["--data", str(root), "--n", "0", "--resize", "pad", "--background", "white",
                                "--out", str(tmp_path / "run")]) == 0
    translators = Translators.load([str(tmp_path / "run")], display_size=32)
    name = "run (pix2pix)"
    assert translators.example_labels(name) == ["0: test0.png", "1: test1.png"]  # the test split's two, by name
    tall = Image.new("RGBA", (10, 40), (0, 0, 0, 0))
    shown, _, info = translators.translate(name, tall)
    assert "--resize pad" in info and "on white" in info
    assert shown.getpixel((0, 16)) == (255, 255, 255)  # letterbox and transparency on white


def test_a_cyclegan_runs_b_to_a_examples_are_its_b_images_by_their_names(tmp_path):
    """Regression: the B -> A examples of a run on two folders of different images were labelled with the A
    side's file names."""
    from train import cyclegan

    for folder, names in (("testA", ["a0.png", "a1.png"]), ("testB", ["b0.jpg", "b1.jpg"]),
                          ("trainA", ["ta0.png", "ta1.png"]), ("trainB", ["tb0.jpg", "tb1.jpg"])):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (40, 40), (200, 0, 0) if folder.endswith("A") else (0, 0, 200)).save(
                tmp_path / "data" / folder / name)
    tiny = ["--n", "0", "--batch-size", "2", "--g-base", "4", "--d-base", "4", "--eval-n", "0", "--steps", "1",
            "--checkpoint-every", "0"]
    assert cyclegan.main(tiny + ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 0
    translators = Translators.load([str(tmp_path / "run")], display_size=32)
    assert translators.example_labels("run (cyclegan, A -> B)") == ["0: a0.png", "1: a1.png"]
    assert translators.example_labels("run (cyclegan, B -> A)") == ["0: b0.jpg", "1: b1.jpg"]
