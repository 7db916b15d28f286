"""Stable Diffusion interop and LoRA: our folder in stock diffusers, SD-layout folders in ours.

Everything is built locally from tiny random components (a character-level CLIPTokenizer,
or an open_clip tower exported to transformers by ``t2i.clip.export``); nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline

from t2i.diffusion.first_stage import build_vae
from t2i.diffusion.interop import check_components, export_stable_diffusion, load_pipeline, load_text_components
from t2i.diffusion.lora import LORA_WEIGHTS, add_lora, apply_lora, save_lora
from t2i.diffusion.pipeline import LatentDiffusionPipeline, encode_text, make_scheduler, training_scheduler
from t2i.diffusion.testing import make_sd_folder, make_tiny_pipeline
from t2i.diffusion.unet import build_unet

PROMPT = "a red circle"


def ours(pipe, sampler, seed=0, steps=3, guidance=3.0) -> np.ndarray:
    return pipe(PROMPT, seed=seed, sampler=sampler, num_inference_steps=steps, guidance_scale=guidance,
                output_type="np").images


def stock(sd, sampler, seed=0, steps=3, guidance=3.0) -> np.ndarray:
    sd.scheduler = make_scheduler(sampler, sd.scheduler.config)
    return sd(PROMPT, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps,
              guidance_scale=guidance, output_type="np").images


@pytest.fixture(scope="module")
def clip_pipeline(tmp_path_factory) -> LatentDiffusionPipeline:
    """Our pipeline on a tiny open_clip text tower exported to transformers CLIPTextModel + CLIPTokenizer."""
    from t2i.clip.testing import make_tiny_clip

    clip = make_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")
    text_encoder, tokenizer = load_text_components(clip)
    torch.manual_seed(0)
    vae = build_vae("f4-test", sample_size=16)
    unet = build_unet("test", 4, vae.config.latent_channels, text_encoder.config.hidden_size)
    pipe = LatentDiffusionPipeline(vae, text_encoder, tokenizer, unet, training_scheduler())
    pipe.set_progress_bar_config(disable=True)
    pipe.clip_folder = clip
    return pipe


def test_exported_text_encoder_gives_the_states_of_the_open_clip_tower(clip_pipeline):
    from t2i.text import TextEncoder

    prompts = ["a red circle", "a small cyan cross in the center", ""]
    ours_states = encode_text(clip_pipeline.tokenizer, clip_pipeline.text_encoder, prompts, "cpu")
    reference = TextEncoder.from_pretrained(clip_pipeline.clip_folder)(prompts).tokens  # open_clip backend
    torch.testing.assert_close(ours_states, reference, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def stock_sd(clip_pipeline, tmp_path_factory) -> StableDiffusionPipeline:
    folder = tmp_path_factory.mktemp("ours") / "ours"
    clip_pipeline.save_pretrained(folder)
    sd = StableDiffusionPipeline.from_pretrained(folder)  # the stock class, on our folder as is
    sd.set_progress_bar_config(disable=True)
    return sd


@pytest.mark.parametrize("sampler, guidance", [("dpm-solver++", 3.0), ("ddim", 3.0), ("euler-ancestral", 3.0),
                                               ("unipc", 1.0)])
def test_our_folder_loads_in_stock_stable_diffusion_with_the_same_images(clip_pipeline, stock_sd, sampler, guidance):
    assert stock_sd.safety_checker is None and type(stock_sd.text_encoder).__name__ == "CLIPTextModel"
    expected = ours(clip_pipeline, sampler, seed=4, guidance=guidance)
    np.testing.assert_array_equal(stock(stock_sd, sampler, seed=4, guidance=guidance), expected)
    assert expected.std() > 0


def test_export_writes_a_stable_diffusion_model_index(clip_pipeline, tmp_path):
    export_stable_diffusion(clip_pipeline, tmp_path / "sd")
    generic = DiffusionPipeline.from_pretrained(tmp_path / "sd")  # resolved by its model_index class name
    assert isinstance(generic, StableDiffusionPipeline)
    generic.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(stock(generic, "ddim"), ours(clip_pipeline, "ddim"))


def test_stable_diffusion_folder_loads_into_ours(tmp_path):
    folder = make_sd_folder(tmp_path / "sd", seed=1)
    sd = StableDiffusionPipeline.from_pretrained(folder)
    sd.set_progress_bar_config(disable=True)
    pipe = load_pipeline(folder)  # safety checker / feature extractor entries are ignored
    pipe.set_progress_bar_config(disable=True)
    assert isinstance(pipe, LatentDiffusionPipeline)
    np.testing.assert_array_equal(ours(pipe, "dpm-solver++"), stock(sd, "dpm-solver++"))


def test_mismatched_components_are_refused(clip_pipeline):
    other = make_tiny_pipeline()  # 32-dim text states, the clip pipeline's UNet expects 16
    bad = LatentDiffusionPipeline(clip_pipeline.vae, other.text_encoder, other.tokenizer, clip_pipeline.unet,
                                  clip_pipeline.scheduler)
    with pytest.raises(ValueError, match="cross-attends to 16-dim states but the text encoder gives 32"):
        check_components(bad)
    with pytest.raises(FileNotFoundError, match="not a pipeline folder"):
        load_pipeline(clip_pipeline.clip_folder)


def test_lora_saved_apart_changes_output_and_loads_in_ours_and_stock(tmp_path):
    base = make_tiny_pipeline(seed=2)
    base.set_progress_bar_config(disable=True)
    base.save_pretrained(tmp_path / "base")
    before = ours(base, "ddim")
    params = add_lora(base.unet, rank=4)
    assert all("lora" in n for n, p in base.unet.named_parameters() if p.requires_grad)
    np.testing.assert_array_equal(ours(base, "ddim"), before)  # B = 0 at init: the base model exactly
    with torch.no_grad():  # stand-in for training: give the adapters a non-zero update
        for p in params:
            p.normal_(0, 0.3)
    adapted = ours(base, "ddim")
    assert np.abs(adapted - before).max() > 1e-3
    path = save_lora(tmp_path / "lora", base.unet)
    assert path.name == LORA_WEIGHTS and path.stat().st_size < 200_000  # the adapters only

    fresh = load_pipeline(tmp_path / "base")
    fresh.set_progress_bar_config(disable=True)
    apply_lora(fresh, tmp_path / "lora")
    np.testing.assert_allclose(ours(fresh, "ddim"), adapted, atol=1e-6)

    sd = StableDiffusionPipeline.from_pretrained(tmp_path / "base")
    sd.set_progress_bar_config(disable=True)
    sd.load_lora_weights(tmp_path / "lora")  # stock diffusers reads our file
    np.testing.assert_allclose(stock(sd, "ddim"), adapted, atol=1e-6)

    with pytest.raises(FileNotFoundError, match=LORA_WEIGHTS):
        apply_lora(fresh, tmp_path / "base")


def test_half_precision_folder_is_smaller_and_samples_in_float32(tmp_path):
    from t2i.diffusion.interop import save_half

    pipe = make_tiny_pipeline(seed=3)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path / "full")
    save_half(pipe, tmp_path / "half")
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*.safetensors"))  # noqa: E731
    assert size(tmp_path / "half") < 0.6 * size(tmp_path / "full")
    assert pipe.unet.dtype == torch.float32  # the source pipeline is left as it was
    loaded = load_pipeline(tmp_path / "half")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.unet.dtype == loaded.text_encoder.dtype == torch.float32
    np.testing.assert_allclose(ours(loaded, "ddim"), ours(pipe, "ddim"), atol=0.02)


def test_stock_pipeline_loads_a_half_precision_folder_in_one_dtype(tmp_path):
    """Regression: stock StableDiffusionPipeline.from_pretrained(shapes-ldm) crashed (Half text encoder, Float UNet)."""
    from diffusers import StableDiffusionPipeline

    from t2i.diffusion.interop import save_half

    save_half(make_tiny_pipeline(seed=3), tmp_path / "half")
    sd = StableDiffusionPipeline.from_pretrained(tmp_path / "half", safety_checker=None, requires_safety_checker=False)
    sd.set_progress_bar_config(disable=True)
    assert sd.unet.dtype == sd.text_encoder.dtype == sd.vae.dtype == torch.float32
    image = sd("a red circle", num_inference_steps=2, height=32, width=32, output_type="np").images[0]
    assert np.isfinite(image).all()
