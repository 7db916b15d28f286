"""The latent diffusion pipeline: samplers, determinism, save/load, callbacks, input validation.

Tiny random components (16 px, factor-4 VAE, 2-level UNet, 1-layer CLIP text model), no network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

from t2i.diffusion.options import SAMPLERS, DiffusionOptions
from t2i.diffusion.pipeline import (LatentDiffusionPipeline, LDMGenerator, encode_text, load_generator,
                                    make_scheduler, predicted_x0, training_scheduler)
from t2i.diffusion.testing import make_tiny_pipeline
from t2i.generator import DenoisingStep, GenerationError, rngs_per_image

PROMPTS = ["a red circle", "a blue square"]


@pytest.fixture(scope="module")
def pipe() -> LatentDiffusionPipeline:
    p = make_tiny_pipeline(seed=0)
    p.set_progress_bar_config(disable=True)
    return p


def sample(pipe, prompts=PROMPTS, **kw) -> np.ndarray:
    kw = {"seed": 0, "num_inference_steps": 3, "output_type": "np", **kw}
    return pipe(prompts, **kw).images


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_gives_images(pipe, sampler):
    images = pipe(PROMPTS, seed=0, num_inference_steps=3, sampler=sampler).images
    assert len(images) == 2 and all(im.size == (16, 16) and im.mode == "RGB" for im in images)
    arrays = np.stack([np.asarray(im) for im in images])
    assert arrays.std() > 0  # not a blank (e.g. all-black) image


def test_sampler_table_builds_the_named_diffusers_schedulers(pipe):
    dpm = make_scheduler("dpm-solver++", pipe.scheduler.config)
    assert isinstance(dpm, DPMSolverMultistepScheduler) and dpm.config.algorithm_type == "dpmsolver++"
    assert dpm.config.num_train_timesteps == pipe.scheduler.config.num_train_timesteps
    for name in SAMPLERS:  # "trailing" spacing: every sampler starts from the last training step
        scheduler = make_scheduler(name, pipe.scheduler.config)
        scheduler.set_timesteps(4)
        assert int(scheduler.timesteps[0]) == 999, name
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_scheduler("plms", pipe.scheduler.config)
    with pytest.raises(ValueError, match="prediction_type"):
        training_scheduler("sample")


def test_same_seed_same_images_other_seed_other_images(pipe):
    a, b = sample(pipe, seed=7), sample(pipe, seed=7)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - sample(pipe, seed=8)).max() > 1e-3
    g = torch.Generator().manual_seed(7)  # a torch.Generator is the same as the plain seed
    np.testing.assert_array_equal(a, sample(pipe, seed=None, generator=g))


def test_ordering_and_count_follow_the_generator_contract(pipe):
    both = sample(pipe, num_images_per_prompt=2, sampler="ddim")  # [a0, a1, b0, b1]
    assert both.shape == (4, 16, 16, 3)
    first = sample(pipe, prompts=PROMPTS[:1], num_images_per_prompt=2, sampler="ddim")  # [a0, a1]: same noise
    np.testing.assert_allclose(both[:2], first, atol=1e-5)
    assert np.abs(both[0] - both[1]).max() > 1e-3  # two images of one prompt differ


def test_guidance_one_is_the_conditional_model_and_guidance_changes_images(pipe):
    unguided, guided = sample(pipe, guidance_scale=1.0), sample(pipe, guidance_scale=5.0)
    assert np.abs(unguided - guided).max() > 1e-4
    # guidance 1 = eps_uncond + 1 * (eps_cond - eps_uncond): the same as no second pass
    np.testing.assert_allclose(unguided, sample(pipe, guidance_scale=1.0 + 1e-9), atol=1e-4)


def test_negative_prompt_changes_guided_images(pipe):
    plain = sample(pipe, guidance_scale=3.0)
    neg = sample(pipe, guidance_scale=3.0, negative_prompt="green")
    assert np.abs(plain - neg).max() > 1e-4


@pytest.mark.parametrize("sampler", ["ddim", "euler"])
def test_callback_sees_every_step_with_the_x0_estimate(pipe, sampler):
    seen: list[DenoisingStep] = []
    out = pipe(PROMPTS, seed=0, num_inference_steps=4, sampler=sampler, output_type="latent", callback=seen.append)
    assert [s.step for s in seen] == [0, 1, 2, 3] and {s.num_steps for s in seen} == {4}
    assert seen[0].timestep == 999 and all(tuple(s.denoised.shape) == (2, 4, 4, 4) for s in seen)
    torch.testing.assert_close(seen[-1].latents, out.images)  # the last step's sample is the result
    # DDIM and Euler report the same x0 estimate (pred_original_sample), computed by diffusers itself
    scheduler = make_scheduler(sampler, pipe.scheduler.config)
    scheduler.set_timesteps(4)
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    eps = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    t = scheduler.timesteps[1]
    x_t = scheduler.scale_model_input(x, t)
    ours = predicted_x0(eps, x_t, float(scheduler.alphas_cumprod[int(t)]), "epsilon")
    theirs = scheduler.step(eps, t, x).pred_original_sample
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert tuple(pipe.decode_latents(torch.zeros(1, 4, 4, 4)).shape) == (1, 3, 16, 16)


@pytest.mark.parametrize("sampler", ["ddpm", "euler-ancestral", "dpm-solver++"])
def test_a_torch_generator_per_image_makes_each_prompt_independent_of_the_batch(pipe, sampler):
    """Per-image generators (diffusers' list convention) draw the initial and the ancestral noise per prompt."""
    both = sample(pipe, seed=None, generator=rngs_per_image(5, 2, 2), num_images_per_prompt=2, sampler=sampler)
    second = sample(pipe, prompts=PROMPTS[1:], seed=None, generator=rngs_per_image(6, 1, 2),
                    num_images_per_prompt=2, sampler=sampler)
    np.testing.assert_allclose(both[2:], second, atol=1e-5)
    with pytest.raises(GenerationError, match="torch generators"):
        sample(pipe, seed=None, generator=rngs_per_image(0, 1, 1))


def test_save_load_round_trip_gives_identical_images(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    loaded = LatentDiffusionPipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(sample(pipe, sampler="unipc"), sample(loaded, sampler="unipc"))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_inference_steps": 0}, "num_inference_steps must be an integer in"),
    ({"num_inference_steps": 2.5}, "num_inference_steps must be an integer in"),
    ({"guidance_scale": -1.0}, "guidance_scale must be a finite number >= 0"),
    ({"guidance_scale": float("nan")}, "guidance_scale must be a finite number >= 0"),
    ({"height": 18}, "height must be a positive multiple of 8"),
    ({"width": 4}, "width must be a positive multiple of 8"),
    ({"sampler": "plms"}, "sampler must be one of"),
    ({"negative_prompt": ["x", "y", "z"]}, "negative prompts"),
])
def test_bad_input_is_a_clear_error(pipe, kwargs, message):
    with pytest.raises(GenerationError, match=message):
        sample(pipe, **kwargs)
    with pytest.raises(GenerationError, match="prompt must be"):
        pipe([], num_inference_steps=2)


def test_other_sizes_that_fit_are_made(pipe):
    assert sample(pipe, height=24, width=32).shape == (2, 24, 32, 3)


def test_long_prompt_is_truncated_with_a_warning(pipe):
    long = "a red circle " * 5  # 16-token context of the tiny character tokenizer
    with pytest.warns(UserWarning, match="truncated"):
        states = encode_text(pipe.tokenizer, pipe.text_encoder, [long], "cpu")
    assert tuple(states.shape) == (1, 16, 32)
    with pytest.warns(UserWarning, match="truncated") as seen:
        images = sample(pipe, prompts=[long])
    assert np.isfinite(images).all() and images.std() > 0
    # regression: the t2i command printed this with a source line of ours; now one line naming the prompt
    from train.cli import _format_warning

    warning = next(w for w in seen if "truncated" in str(w.message))
    shown = _format_warning(warning.message, warning.category, warning.filename, warning.lineno)
    assert shown.startswith(f"warning: 1 prompt(s) longer than the text encoder's 16 tokens were truncated, "
                            f"e.g. {long!r} lost ") and shown.count("\n") == 1
    from t2i.diffusion.training import build_text_cache

    with pytest.warns(UserWarning) as seen:  # a trainer's captions, encoded in batches: one warning for them all
        build_text_cache([long, long + "x", "a red circle", long + "y"], pipe.tokenizer, pipe.text_encoder, "cpu",
                         batch_size=1)
    assert [str(w.message)[:12] for w in seen if "truncated" in str(w.message)] == ["3 prompt(s) "]


def test_generator_over_a_saved_folder_reads_its_sampling_defaults(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    # the keys of files written before the options took diffusers' names (the shipped shapes-ldm) still load
    (tmp_path / "p" / "t2i_sampling.json").write_text('{"sampler": "euler", "steps": 3, "guidance": 2.0}')
    gen = load_generator(tmp_path / "p")
    assert isinstance(gen, LDMGenerator) and gen.options == DiffusionOptions("euler", 3, 2.0)
    images = gen.generate(PROMPTS, seed=3, num_images_per_prompt=2)
    assert len(images) == 4 and images[0].size == (16, 16)
    with pytest.raises(GenerationError, match="text-conditional"):
        gen.generate(labels=[1])
    with pytest.raises(GenerationError, match="num_inference_steps"):
        gen.generate(["a red circle"], num_inference_steps=0)
    with pytest.raises(GenerationError, match="unknown option.*'steps'"):  # diffusers' names only
        gen.generate(["a red circle"], steps=2)
    assert gen.describe()["options"]["sampler"] == "euler"
    (tmp_path / "p" / "t2i_sampling.json").write_text('{"sampler": "euler", "stepz": 3}')
    with pytest.raises(ValueError, match="stepz"):  # a bad file names the key and the valid ones
        load_generator(tmp_path / "p")


def test_training_schedule_is_ddpm_with_trailing_spacing():
    s = training_scheduler("v_prediction")
    assert isinstance(s, DDPMScheduler) and s.config.prediction_type == "v_prediction"
    assert s.config.timestep_spacing == "trailing" and s.config.num_train_timesteps == 1000


@pytest.mark.parametrize("source", ["ddpm", "dpm-solver++", "pndm"])
def test_every_sampler_recovers_the_data_under_an_oracle_denoiser(source):
    """With the exact eps of a one-point data distribution, each sampler must end at that point.

    Regression: DDIM/DDPM built from a config without ``clip_sample`` (a saved DPM-Solver++ or a
    Stable Diffusion PNDM config) clipped x0 to [-1, 1], wrecking latents beyond 1 (z0 has std 3).
    """
    from diffusers import PNDMScheduler

    schedule = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing="trailing")
    config = {"ddpm": lambda: training_scheduler().config, "dpm-solver++": lambda: DPMSolverMultistepScheduler(
        **schedule).config, "pndm": lambda: PNDMScheduler(**schedule).config}[source]()
    z0 = 3 * torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    for name in SAMPLERS:
        scheduler = make_scheduler(name, config)
        scheduler.set_timesteps(20)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(z0.shape, generator=g) * scheduler.init_noise_sigma
        kwargs = {"generator": g} if "generator" in scheduler.step.__code__.co_varnames else {}
        for t in scheduler.timesteps:
            x_t = scheduler.scale_model_input(x, t)  # the variance-preserving x_t the UNet sees
            abar = scheduler.alphas_cumprod[int(t)]
            eps = (x_t - abar.sqrt() * z0) / (1 - abar).sqrt()  # the exact noise for data = z0
            x = scheduler.step(eps, t, x, **kwargs).prev_sample
        torch.testing.assert_close(x, z0, atol=2e-3, rtol=0, msg=f"{name} from a {source} config")
