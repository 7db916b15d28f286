"""Runs uploaded to the hub as their folders (the model card's `hf upload NAME RUN --exclude 'checkpoints/*'`) load
back by hub id wherever a model is accepted (``t2i.hub``): sampling, as a base to fine-tune, as a text encoder.

Regression: only a full diffusers pipeline loaded by hub id; a LoRA run, a GAN, a CLIP run or a pipeline's sampling
defaults (``t2i_sampling.json``) uploaded as the card says did not. The hub here is a local cache laid out as
``huggingface_hub`` keeps one, read offline: the stock download functions run, nothing is fetched."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from train.cli import main as t2i

RUN = ["--steps", "2", "--batch-size", "8", "--n", "16", "--log-every", "1", "--checkpoint-every", "1"]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """``upload(repo_id, folder)``: the folder as a snapshot in an offline hub cache (checkpoints left out)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def upload(repo_id: str, folder) -> None:
        root, commit = cache / ("models--" + repo_id.replace("/", "--")), "1" * 40
        (root / "refs").mkdir(parents=True)
        (root / "refs" / "main").write_text(commit)
        shutil.copytree(folder, root / "snapshots" / commit, ignore=shutil.ignore_patterns("checkpoints"))

    return upload


def pixels(folder) -> np.ndarray:
    return np.asarray(Image.open(folder / "images" / "00000.png"))


def test_a_lora_run_and_a_gan_run_load_by_hub_id(hub, tmp_path):
    lora = tmp_path / "lora"
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--lora-rank", "2", *RUN, "--sample-prompts", "a red circle",
                "--out", str(lora)]) == 0
    hub("alice/shapes-lora", lora)
    draw = ["--prompt", "a red circle", "--seed", "3", "--n", "1", "--sampler", "ddpm", "--num-inference-steps", "3"]
    assert t2i(["sample", "--model", "alice/shapes-lora", *draw, "--out", str(tmp_path / "by_id")]) == 0
    assert t2i(["sample", "--model", str(lora), *draw, "--out", str(tmp_path / "by_folder")]) == 0
    np.testing.assert_array_equal(pixels(tmp_path / "by_id"), pixels(tmp_path / "by_folder"))
    # a LoRA on the uploaded LoRA: its base is named by the hub id, so the new run is shareable too
    again = tmp_path / "again"
    assert t2i(["train", "ldm", "--init", "alice/shapes-lora", "--lora-rank", "2", *RUN, "--out", str(again)]) == 0
    assert json.loads((again / "t2i_lora.json").read_text())["base"] == "alice/shapes-lora"

    gan = tmp_path / "gan"
    assert t2i(["train", "dcgan", "--data", "shapes", "--g-base", "8", "--d-base", "8", *RUN, "--out", str(gan)]) == 0
    hub("alice/shapes-dcgan", gan)
    assert t2i(["sample", "--model", "alice/shapes-dcgan", "--n", "2", "--out", str(tmp_path / "gan_id")]) == 0
    assert t2i(["sample", "--model", str(gan), "--n", "2", "--out", str(tmp_path / "gan_folder")]) == 0
    np.testing.assert_array_equal(pixels(tmp_path / "gan_id"), pixels(tmp_path / "gan_folder"))


def test_a_clip_run_is_a_text_encoder_by_hub_id_and_unknown_repos_stay_errors(hub, tmp_path, capsys):
    from t2i.clip.testing import make_tiny_clip

    clip = tmp_path / "clip"
    make_tiny_clip(clip / "model")  # a `t2i train clip` run keeps its model in RUN/model
    (clip / "config.json").write_text(json.dumps({"out": "clip", "steps": 1, "resume": ""}))
    hub("alice/tiny-clip", clip)
    assert t2i(["train", "tgan", "--clip", "alice/tiny-clip", "--data", "shapes", "--g-base", "8", "--d-base", "8",
                *RUN, "--out", str(tmp_path / "tgan")]) == 0
    config = json.loads((tmp_path / "tgan" / "model" / "config.json").read_text())
    assert "alice/tiny-clip" in json.dumps(config)  # named by its hub id, not the snapshot's path
    assert t2i(["sample", "--model", "alice/never-uploaded", "--prompt", "x", "--out", str(tmp_path / "x")]) == 2
    assert "as a hub id it could not be loaded" in capsys.readouterr().err
