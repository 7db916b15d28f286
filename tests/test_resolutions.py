"""Resolutions (issue 16): the px64/px128/px256 presets build networks of the right output shape
(on the meta device, no memory), and a 2-step run of every trainer works at 64 and at 128 px.

The runs use tiny widths (and the 64/128 px tgan-attn presets as they are) so each takes seconds;
the networks' FLOPs per image at each preset are in README ("Resolutions", ``python -m benchmarks.presets``).
"""

from __future__ import annotations

import functools
import importlib
import json

import pytest

from benchmarks import presets as cost
from benchmarks.presets import PRESET_DIRS, RESOLUTIONS, read_preset

SIZES = (64, 128)  # the CPU runs 64 px and 128 px for 2 steps; 256 px is built (meta device) but trained on a GPU
RUN = ["--steps", "2", "--batch-size", "2", "--n", "8", "--log-every", "1", "--checkpoint-every", "0"]


# --------------------------------------------------------------------------- presets
@functools.cache
def vae_costs(name):
    return cost.vae_costs(name)


@functools.cache
def unet_costs(name):
    return cost.unet_costs(name)


@functools.cache
def gan_costs(name):
    return cost.gan_costs(name)


@pytest.mark.parametrize("name", RESOLUTIONS)
def test_preset_networks_have_the_output_shape_of_their_resolution(name):
    size = int(name.removeprefix("px"))
    encoder, decoder = vae_costs(name)
    factor = 4 if size == 64 else 8  # SD-like: 16x16 latents at 64 and 128 px, 32x32 at 256
    latent = (1, 4, size // factor, size // factor)
    assert encoder.output == latent and decoder.output == (1, 3, size, size)
    (unet,) = unet_costs(name)
    assert unet.output == latent  # the noise prediction has the latent's shape
    g, d = gan_costs(name)
    assert g.output == (1, 3, size, size) and d.output[0] == 1
    rows = [encoder, decoder, unet, g, d]
    assert all(r.size == size and r.params > 0 and r.gflops > 0 for r in rows)
    if name != RESOLUTIONS[0]:  # larger images cost more per image, network by network
        before = RESOLUTIONS[RESOLUTIONS.index(name) - 1]
        previous = [*vae_costs(before), *gan_costs(before)]
        assert all(now.gflops > then.gflops for now, then in zip([encoder, decoder, g, d], previous))


def test_readme_table_is_what_the_benchmark_prints():
    rows = [row for name in RESOLUTIONS for row in (*vae_costs(name), *unet_costs(name), *gan_costs(name))]
    readme = (cost.ROOT / "README.md").read_text()
    assert cost.markdown(rows) in readme, "README's Resolutions table is stale: paste `python -m benchmarks.presets`"


@pytest.mark.parametrize("trainer", sorted(PRESET_DIRS))
def test_resolution_presets_parse_and_leave_the_data_to_the_user(trainer):
    from t2i.config import parse_config, presets_in

    module, config_class = {"vae-kl": ("train.vae_kl", "VAEKLConfig"), "ldm": ("train.ldm", "LDMConfig"),
                            "tgan-attn": ("train.tgan_attn", "AttnGANConfig")}[trainer]
    config_class = getattr(importlib.import_module(module), config_class)
    presets = presets_in(PRESET_DIRS[trainer])
    assert set(RESOLUTIONS) <= set(presets)
    for name in RESOLUTIONS:
        assert "data" not in read_preset(trainer, name)  # the data is the user's
        cfg = parse_config(config_class, ["--preset", name, "--data", "my_images/"], presets=presets)
        assert cfg.size == int(name.removeprefix("px")) and cfg.data == "my_images/"


def test_dcgan_networks_reach_256_px():
    import torch

    from gan_baselines import dcgan

    g, d = dcgan.build({"latent_dim": 8, "channels": 3, "size": 256, "g_base": 2, "d_base": 2})
    x = g(torch.zeros(2, 8))  # 4x4 doubled 6 times
    assert x.shape == (2, 3, 256, 256) and d(x).shape == (2,)
    with pytest.raises(ValueError, match=r"must be one of \[16, 32, 64, 128, 256\]"):
        dcgan.num_doublings(512)


def test_tgan_attn_at_another_size_names_the_presets(tmp_path):
    from train import tgan_attn

    with pytest.raises(ValueError, match="--preset px128 / px256 / px64"):
        tgan_attn.main(["--size", "64", "--out", str(tmp_path)])


# --------------------------------------------------------------------------- 2-step runs
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from t2i.clip.testing import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def tiny_vae(folder, size):
    """A random f4-test AutoencoderKL folder (what `t2i train ldm --vae` takes)."""
    from t2i.diffusion.first_stage import build_vae

    build_vae("f4-test", sample_size=size).save_pretrained(str(folder))
    return folder


def tiny_teacher(folder, size):
    """A random tiny pipeline folder at ``size`` (what `t2i train distill --teacher` takes)."""
    from t2i.diffusion.testing import make_tiny_pipeline

    make_tiny_pipeline(size=size).save_pretrained(str(folder))
    return folder


PROMPT = ["a large red circle in the center"]
TEXT_GAN = ["--data", "shapes", "--g-base", "4", "--d-base", "4", "--eval-n", "2"]
# trainer -> (its options besides RUN, --size and --out; the request its saved generator is asked for, or
# None where the run saves no image generator). "CLIP", "VAE" and "TEACHER" are filled in by the test.
TRAINERS = {
    "ae": (["--variant", "conv", "--widths", "4,8", "--eval-images", "2"], {}),
    "vae": (["--arch", "conv", "--widths", "4,8", "--latent-dim", "2", "--eval-images", "2"], {}),
    "cvae": (["--conditioning", "label", "--data", "digits", "--arch", "conv", "--widths", "4,8", "--eval-images", "2"],
             {"labels": [3]}),
    "gan": (["--data", "digits", "--hidden", "16"], {}),
    "dcgan": (["--data", "shapes", "--g-base", "4", "--d-base", "4"], {}),
    "cgan": (["--data", "digits", "--g-base", "4", "--d-base", "4", "--eval-n", "1"], {"labels": [3]}),
    "tgan": ([*TEXT_GAN, "--clip", "CLIP"], {"prompts": PROMPT}),
    "tgan-attn": (["--preset", "PRESET", "--clip", "CLIP", "--eval-n", "2"], {"prompts": PROMPT}),
    "clip": (["--model", "CLIP", "--data", "shapes", "--eval-n", "0"], None),
    "vae-kl": (["--arch", "f4-test", "--scale-images", "4", "--eval-images", "2"], None),
    "ldm": (["--vae", "VAE", "--clip", "CLIP", "--unet", "test", "--sample-steps", "2", "--sample-prompts", "a red circle",
             "--first-stage-check", "2"], {"prompts": PROMPT}),
    "distill": (["--teacher", "TEACHER", "--sample-steps", "2", "--sample-prompts", "a red circle"], {"prompts": PROMPT}),
    "prior": (["--layers", "1", "--heads", "2", "--head-dim", "8", "--eval-n", "4", "--gallery", "2", "--n-boot", "2",
               "--sample-steps", "2"], None),
    "pix2pix": (["--data", "outline", "--g-base", "4", "--d-base", "4", "--eval-n", "2"], None),
    "cyclegan": (["--data", "background", "--g-base", "4", "--d-base", "4", "--eval-n", "2"], None),
}
# the heavier runs at 128 px (pipelines, transformers, the image-to-image U-Nets, the tgan-attn preset as it is)
SLOW_AT_128 = {"ldm", "distill", "clip", "prior", "tgan-attn", "pix2pix", "cyclegan"}


def _cases():
    for size in SIZES:
        for trainer in TRAINERS:
            marks = [pytest.mark.slow] if size == 128 and trainer in SLOW_AT_128 else []
            yield pytest.param(trainer, size, marks=marks, id=f"{trainer}-{size}px")


@pytest.mark.parametrize("trainer,size", list(_cases()))
def test_every_trainer_runs_two_steps_at_64_and_128_px(trainer, size, tiny_clip, tmp_path):
    from gan_baselines.registry import load_generator
    from train.cli import main as cli

    options, request = TRAINERS[trainer]
    fill = {"CLIP": lambda: str(tiny_clip), "PRESET": lambda: f"px{size}",
            "VAE": lambda: str(tiny_vae(tmp_path / "vae", size)),
            "TEACHER": lambda: str(tiny_teacher(tmp_path / "teacher", size))}
    options = [fill[o]() if o in fill else o for o in options]
    out = tmp_path / "run"
    assert cli(["train", trainer, *RUN, *options, "--size", str(size), "--out", str(out)]) == 0
    if trainer != "prior":  # the prior's steps are logged like the others', but it is not an image model
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows][-1] == 2
    if request is not None:  # the saved generator draws images at the trained size
        images = load_generator(out).generate(seed=0, **request)
        assert images and images[0].size == (size, size)
    elif trainer == "vae-kl":
        assert json.loads((out / "vae_metrics.json").read_text())["latent_shape"] == [4, size // 4, size // 4]
    elif trainer in ("pix2pix", "cyclegan"):
        assert json.loads((out / "model" / "config.json").read_text())["arch"]["size"] == size
