"""Every training run writes a model card (``README.md``) the Hugging Face hub reads, whose code draws what t2i draws.

The stock-library code of each card is run as it is written, and must give the same pixels as ``t2i``'s
generator for the same prompt and seed: a full pipeline, a LoRA run sampling with another solver than
its base, a LoRA trained on a LoRA run, and an unCLIP folder; the first stage and the CLIP load as the
card says. A GAN run's card and header say what it is and the ``t2i sample`` line it gives runs."""

from __future__ import annotations

import json
import re
import shlex
import shutil

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

from gan_baselines.registry import load_generator
from t2i.model_card import lora_chain, model_card, trainer_of
from train.cli import main as t2i

RUN = ["--steps", "2", "--batch-size", "8", "--n", "16", "--log-every", "1", "--checkpoint-every", "0",
       "--sample-steps", "2", "--sample-prompts", "a red circle|a blue square"]


def blocks(card: str, language: str) -> list[str]:
    """The fenced code blocks of ``card`` in ``language``."""
    return re.findall(rf"```{language}\n(.*?)```", card, flags=re.S)


def stock_image(folder, monkeypatch) -> np.ndarray:
    """Run the card's Python block as a user pastes it (from the folder the run was made in)."""
    code = blocks((folder / "README.md").read_text(), "python")[0]
    namespace: dict = {}
    exec(compile(code, str(folder / "README.md"), "exec"), namespace)  # noqa: S102  (the card's own code)
    return np.asarray(namespace["image"])


def ours(folder, prompt: str) -> np.ndarray:
    return np.asarray(load_generator(folder).generate(prompts=[prompt], seed=0)[0])


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory):
    """A LoRA run on shapes-ldm sampling with DDPM (its base stores DPM-Solver++, which at 2 steps draws what DDIM
    and Euler draw), and a LoRA run on that one."""
    root = tmp_path_factory.mktemp("cards")
    first, second = root / "lora", root / "lora-on-lora"
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--lora-rank", "2", "--lr", "0.01", "--sampler", "ddpm",
                *RUN, "--out", str(first)]) == 0
    assert t2i(["train", "ldm", "--init", str(first), "--lora-rank", "2", "--lr", "0.01", *RUN,
                "--out", str(second)]) == 0
    return first, second


def test_a_lora_runs_card_is_a_hub_card_whose_stock_code_draws_t2is_image(lora_runs, monkeypatch):
    first, _ = lora_runs
    card = ModelCard.load(first / "README.md")
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag == "text-to-image"
    assert {"lora", "diffusers", "text-to-image"} <= set(card.data.tags)
    assert card.data.to_dict().get("base_model") is None  # a built-in name is not a hub repository
    widget = card.data.to_dict()["widget"][0]
    assert widget["text"] == "a red circle" and (first / widget["output"]["url"]).is_file()
    assert "DDPMScheduler.from_config" in card.text  # the run's --sampler, not its base's stored solver
    assert f"t2i train ldm --config {first / 'config.json'}" in card.text
    assert "| lora_rank | `2` |" in card.text and "| steps | `2` |" in card.text and "unet" not in card.text
    np.testing.assert_array_equal(stock_image(first, monkeypatch), ours(first, "a red circle"))


def test_a_lora_on_a_lora_runs_card_loads_both_adapters(lora_runs, monkeypatch):
    first, second = lora_runs
    assert lora_chain(second) == ("shapes-ldm", [str(first), str(second)], {})
    assert 'adapter_name="lora1"' in (second / "README.md").read_text()
    # ours merges the first adapter into the UNet's weights, stock diffusers keeps both apart: rounding only
    stock, own = stock_image(second, monkeypatch).astype(int), ours(second, "a red circle").astype(int)
    assert np.abs(stock - own).max() <= 1 and (stock != own).mean() < 0.01


def test_a_full_pipeline_runs_card_draws_t2is_image_and_its_t2i_line_runs(tmp_path, monkeypatch):
    run = tmp_path / "full"
    assert t2i(["train", "ldm", "--vae", "shapes-vae-kl", "--unet", "test", *RUN, "--out", str(run)]) == 0
    card = (run / "README.md").read_text()
    assert "from_pretrained(" + json.dumps(str(run)) in card and "| unet | `test` |" in card
    np.testing.assert_array_equal(stock_image(run, monkeypatch), ours(run, "a red circle"))
    line = blocks(card, "bash")[0].strip()
    monkeypatch.chdir(tmp_path)
    assert t2i(shlex.split(line)[1:]) == 0  # `t2i sample ... --n 1 --seed 0 --out samples-full`
    written = sorted((tmp_path / "samples-full" / "images").glob("*.png"))
    assert len(written) == 1
    np.testing.assert_array_equal(np.asarray(Image.open(written[0]).convert("RGB")),
                                  ours(run, "a red circle"))


def test_an_unclip_folders_card_draws_t2is_image(tmp_path, monkeypatch):
    from t2i.model_card import write_model_card
    from t2i.unclip.testing import make_tiny_unclip

    folder = make_tiny_unclip(tmp_path / "unclip")
    write_model_card(folder)
    assert "height=32, width=32" in (folder / "README.md").read_text()  # the decoder's side, not Kandinsky's 512
    np.testing.assert_array_equal(stock_image(folder, monkeypatch), ours(folder, "a photo"))


def test_the_first_stage_and_clip_cards_code_loads_them(tmp_path):
    vae = tmp_path / "vae"
    assert t2i(["train", "vae-kl", "--data", "shapes", "--arch", "f4-test", "--size", "16", "--n", "16",
                "--steps", "1", "--batch-size", "4", "--scale-images", "8", "--eval-images", "8",
                "--checkpoint-every", "0", "--out", str(vae)]) == 0
    card = ModelCard.load(vae / "README.md")
    assert card.data.library_name == "diffusers"
    namespace: dict = {"images": torch.rand(2, 3, 16, 16)}  # what the card's code names `images`
    exec(blocks(card.text, "python")[0], namespace)  # noqa: S102
    assert namespace["latents"].shape[0] == 2 and namespace["latents"].shape[-1] == 4  # factor 4
    saved = json.loads((vae / "vae" / "config.json").read_text())
    assert namespace["vae"].config.scaling_factor == saved["scaling_factor"]

    from t2i.clip.testing import make_tiny_clip

    clip = tmp_path / "clip"
    assert t2i(["train", "clip", "--model", str(make_tiny_clip(tmp_path / "tiny", seed=3)), "--data", "shapes",
                "--n", "32", "--batch-size", "16", "--steps", "1", "--eval-n", "16", "--checkpoint-every", "0",
                "--out", str(clip)]) == 0
    card = ModelCard.load(clip / "README.md")
    assert card.data.library_name == "open_clip"
    namespace = {}
    exec(blocks(card.text, "python")[0], namespace)  # noqa: S102
    assert namespace["tokenizer"](["a red circle"]).shape[0] == 1
    eval_r1 = json.loads((clip / "eval.json").read_text())["splits"]["test"]["retrieval"]["image_to_text_R@1"]
    assert f"| splits.test.retrieval.image_to_text_R@1 | {eval_r1:.4g} |" in card.text  # what it measured


def test_a_gan_runs_card_says_what_it_is_and_its_sample_line_runs(tmp_path, monkeypatch):
    run = tmp_path / "dcgan"
    assert t2i(["train", "dcgan", "--data", "digits", "--size", "16", "--n", "32", "--batch-size", "8",
                "--steps", "2", "--checkpoint-every", "0", "--out", str(run)]) == 0
    card = ModelCard.load(run / "README.md")
    assert card.data.pipeline_tag == "unconditional-image-generation" and card.data.library_name is None
    assert "dcgan" in card.data.tags and "last logged (`metrics.jsonl`)" in card.text
    assert trainer_of(run) == "dcgan"
    monkeypatch.chdir(tmp_path)
    assert t2i(shlex.split(blocks(card.text, "bash")[0].splitlines()[0])[1:]) == 0
    assert len(list((tmp_path / "samples-dcgan" / "images").glob("*.png"))) == 16


def test_a_hub_base_is_the_cards_base_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "t2i_lora.json").write_text(json.dumps({"family": "ldm", "base": "someone/tiny-sd", "rank": 4,
                                                   "replaced": ["vae"]}))
    (run / "config.json").write_text(json.dumps({"data": "my/captions", "init": "someone/tiny-sd", "size": 64}))
    card = ModelCard(model_card(run, "ldm"))
    assert card.data.base_model == "someone/tiny-sd" and card.data.datasets == ["my/captions"]
    assert 'base = "someone/tiny-sd"' in card.text
    assert f'AutoencoderKL.from_pretrained("{run}", subfolder="vae")' in card.text


def test_a_class_gan_runs_card_samples_its_classes_by_name(tmp_path, monkeypatch):
    data = tmp_path / "toys"
    for i, name in enumerate(("red_ball", "blue_car", "green_kite")):
        (data / name).mkdir(parents=True)
        for j in range(4):
            Image.new("RGB", (20, 20), ((90 * i + 30 * j) % 255, 80, 40 * i)).save(data / name / f"{j}.png")
    run = tmp_path / "cgan"
    assert t2i(["train", "cgan", "--data", str(data), "--size", "16", "--batch-size", "4", "--steps", "1",
                "--checkpoint-every", "0", "--out", str(run)]) == 0
    card = ModelCard.load(run / "README.md")
    line = blocks(card.text, "bash")[0].splitlines()[0]
    assert "--labels blue_car,green_kite,red_ball" in line  # classes sorted by name, as torchvision numbers them
    monkeypatch.chdir(tmp_path)
    assert t2i(shlex.split(line)[1:]) == 0
    assert len(list((tmp_path / "samples-cgan" / "images").glob("*.png"))) == 12


def test_t2i_card_rewrites_a_runs_card_and_keeps_a_readme_it_did_not_write(lora_runs, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(lora_runs[0], run)
    assert trainer_of(run) == "ldm"
    (run / "README.md").unlink()  # a run of an older t2i
    assert t2i(["card", str(run)]) == 0
    assert (run / "README.md").read_text() == model_card(run, "ldm")
    (run / "README.md").write_text("# my own notes\n")  # a README the user wrote
    with pytest.warns(UserWarning, match="not written by t2i and is kept"):
        assert t2i(["card", str(run)]) == 0
    assert (run / "README.md").read_text() == "# my own notes\n" and (run / "README.t2i.md").is_file()
    assert t2i(["card", str(run), "--force"]) == 0 and (run / "README.md").read_text() == model_card(run, "ldm")
    (run / "README.md").write_text("# pix2pix translator\n\nTrained with `t2i train pix2pix --config x`.\n")
    assert t2i(["card", str(run)]) == 0 and (run / "README.md").read_text() == model_card(run, "ldm")  # the old card
    assert t2i(["card", str(tmp_path)]) == 2  # no saved model in it: one line, exit status 2


def test_a_card_says_how_the_run_read_its_images_and_its_code_reads_them_so(tmp_path):
    """Regression (a CLIP trained on stamps padded onto white retrieved far worse from the same test images read as
    stock open_clip reads them): a run that read images otherwise tells stock users how."""
    from t2i.data.bad_data import load_image
    from t2i.data.transforms import Augment
    from t2i.model_card import reading_lines

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"resize": "pad", "background": "white", "size": 16}))
    icon = Image.new("RGBA", (30, 12), (0, 0, 0, 0))
    icon.paste((200, 30, 30, 255), (4, 2, 20, 10))
    icon.save(tmp_path / "photo.png")
    code = blocks("\n".join(reading_lines(run)), "python")[0]
    code = code.replace('"photo.png"', json.dumps(str(tmp_path / "photo.png")))
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102
    trained, _ = load_image(tmp_path / "photo.png", 16, augment=Augment(resize="pad", background="white"))
    trained = (trained.permute(1, 2, 0) * 255).round().byte().numpy()  # (H, W, 3) as the run saw it
    np.testing.assert_array_equal(np.asarray(namespace["image"]), trained)
    (run / "config.json").write_text(json.dumps({"resize": "random-crop", "size": 16}))  # read as stock code reads
    assert reading_lines(run) == []


def test_an_open_clip_hub_model_fine_tuned_is_the_cards_base_model(tmp_path):
    run = tmp_path / "clip"
    (run / "model").mkdir(parents=True)
    (run / "model" / "open_clip_config.json").write_text("{}")
    (run / "config.json").write_text(json.dumps({"data": "mine", "pretrained": "hf-hub:someone/clip-b32"}))
    card = ModelCard(model_card(run, "clip"))
    assert card.data.base_model == "someone/clip-b32" and card.data.library_name == "open_clip"
