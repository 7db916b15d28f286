"""Our latent diffusion pipeline: a diffusers ``DiffusionPipeline`` with the denoising loop in view.

Components (the Stable Diffusion layout, so one folder serves us and stock diffusers):
``vae`` (``AutoencoderKL``), ``text_encoder`` (transformers ``CLIPTextModel``: our open_clip
towers are exported to it by ``t2i.clip.export``), ``tokenizer`` (``CLIPTokenizer``), ``unet``
(``UNet2DConditionModel`` cross-attending to the per-token text states) and ``scheduler``
(the DDPM training schedule; ``sampler=`` picks a fast solver built from its config, by a name of
``t2i.diffusion.options.SAMPLERS``).
A saved folder is ``model_index.json`` + ``vae/ text_encoder/ tokenizer/ unet/ scheduler/``;
``diffusers.StableDiffusionPipeline.from_pretrained`` loads it and gives the same images.

A guidance-distilled UNet (``time_cond_proj_dim`` set, ``t2i train distill``) reads the guidance
scale as an input and runs once per step, as stock diffusers runs it; with a negative prompt it
falls back to the two-pass formula over its g = 1 output.

Prompts are encoded exactly as Stable Diffusion does (padded to the tokenizer's
``model_max_length``, final-layer-norm token states, no attention mask); a prompt longer
than the context is truncated with a warning naming what was cut. Training uses the same
``encode_text`` so that what the UNet learned from is what it is sampled with.

``LDMGenerator`` puts the pipeline behind the toolkit's generator contract (``t2i.generator``):
typed ``DiffusionOptions`` with diffusers' names, per-condition seeds, and the ``Denoising``
protocol (``decode_latents``; ``callback`` gets a ``DenoisingStep`` with the x0 estimate).

    HF_HUB_OFFLINE=1 python -m t2i.diffusion.pipeline   # builds a tiny random pipeline, samples 2 images
"""

from __future__ import annotations

import inspect
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import diffusers
import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, DiffusionPipeline, ImagePipelineOutput, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from t2i.diffusion.distill import guidance_embedding, is_guidance_distilled
from t2i.diffusion.options import SAMPLERS, DiffusionOptions, load_sampling_options
from t2i.generator import DenoisingStep, GenerationError, Generator, rngs_per_image, validate_request
from t2i.text import cut_prompts, warn_cut

logger = logging.getLogger(__name__)

MAX_STEPS = 1000  # the training schedule has 1000 timesteps
OUTPUT_TYPES = ("pil", "np", "pt", "latent")
# the keys of a scheduler config that describe the noise schedule and the model (not a solver's options)
SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type",
                 "timestep_spacing", "steps_offset", "rescale_betas_zero_snr", "clip_sample", "clip_sample_range",
                 "thresholding", "dynamic_thresholding_ratio", "sample_max_value")


def training_scheduler(prediction_type: str = "epsilon", beta_schedule: str = "scaled_linear") -> DDPMScheduler:
    """The DDPM noise schedule of training (Ho et al. 2020): 1000 steps, Stable Diffusion's betas.

    "trailing" timestep spacing makes every sampler start at t = 999 (Lin et al. 2024, Table 2),
    which few-step sampling needs; ``steps_offset`` is unused with it (1 keeps stock
    diffusers from warning).
    """
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule, beta_start=0.00085, beta_end=0.012,
                         prediction_type=prediction_type, timestep_spacing="trailing", steps_offset=1,
                         clip_sample=False)


def make_scheduler(sampler: str, config: Any) -> Any:
    """A fresh diffusers scheduler for ``sampler`` on the noise schedule of ``config`` (any scheduler's
    config: only ``SCHEDULE_KEYS`` are taken, so the result does not depend on which solver was stored)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    cls_name, overrides = SAMPLERS[sampler]
    cls = getattr(diffusers, cls_name)
    schedule = {k: config[k] for k in SCHEDULE_KEYS if k in config}
    # latents are not images in [-1, 1]: DDPM/DDIM must not clip x0 unless the source config asks to
    schedule.setdefault("clip_sample", False)
    return cls.from_config(schedule, **overrides)


def encode_text(tokenizer: Any, text_encoder: Any, prompts: Sequence[str], device: torch.device | str,
                warn: bool = True) -> torch.Tensor:
    """Per-token text states ``(B, T, D)`` exactly as Stable Diffusion computes them (no attention mask).

    Prompts longer than the context are truncated (the end token kept), with a warning when ``warn``.
    """
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids  # (B, T)
    if warn:
        warn_truncated(tokenizer, prompts, stacklevel=3)
    return text_encoder(ids.to(device))[0]  # last_hidden_state, (B, T, D)


def warn_truncated(tokenizer: Any, prompts: Sequence[str], stacklevel: int = 2) -> None:
    """One warning naming how many ``prompts`` the tokenizer's context cuts, with an example and what it lost."""
    cut = cut_prompts(tokenizer, prompts, tokenizer.model_max_length)
    warn_cut(cut, "prompt(s)", tokenizer.model_max_length, stacklevel=stacklevel)


def alpha_bar_at(scheduler: Any, timestep: Any) -> float:
    """``alpha_bar_t`` of the training schedule at a (possibly fractional) timestep, linearly interpolated."""
    ac = scheduler.alphas_cumprod.double()
    t = min(max(float(timestep), 0.0), len(ac) - 1.0)
    i = min(int(t), len(ac) - 2)
    return float(ac[i] + (t - i) * (ac[i + 1] - ac[i]))


def predicted_x0(pred: torch.Tensor, x_t: torch.Tensor, alpha_bar: float, prediction_type: str) -> torch.Tensor:
    """The model's estimate of x_0 from its output at ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (``a = alpha_bar_t``).

    epsilon: ``x_0 = (x_t - sqrt(1 - a) eps) / sqrt(a)`` (Ho et al. 2020, Eq. 15);
    v_prediction: ``x_0 = sqrt(a) x_t - sqrt(1 - a) v`` (Salimans & Ho 2022, Sec. 4); sample: the output itself.
    """
    a = torch.tensor(alpha_bar, dtype=pred.dtype, device=pred.device)
    if prediction_type == "epsilon":
        return (x_t - (1 - a).sqrt() * pred) / a.sqrt()
    if prediction_type == "v_prediction":
        return a.sqrt() * x_t - (1 - a).sqrt() * pred
    if prediction_type == "sample":
        return pred
    raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {prediction_type!r}")


class LatentDiffusionPipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    """Text-to-image latent diffusion: CLIP token states -> cross-attention UNet -> VAE decoder."""

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae: AutoencoderKL, text_encoder: Any, tokenizer: Any, unet: UNet2DConditionModel,
                 scheduler: Any):
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: VAE factor times the UNet's own downsampling."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def default_size(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    def check_inputs(self, prompts: list[str], negative: list[str], height: int, width: int, steps: int,
                     guidance_scale: float, sampler: str | None, num_images: int, output_type: str,
                     generator: Any = None) -> None:
        """Refuse what would give garbage: a clear error that says what is allowed."""
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise GenerationError(f"prompt must be a string or a non-empty list of strings, got {prompts!r}")
        if not isinstance(num_images, int) or num_images < 1:
            raise GenerationError(f"num_images_per_prompt must be an integer >= 1, got {num_images!r}")
        if output_type not in OUTPUT_TYPES:
            raise GenerationError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if len(negative) != len(prompts):
            raise GenerationError(f"got {len(prompts)} prompts but {len(negative)} negative prompts; give one or the same number")
        if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise GenerationError(f"num_inference_steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
        if not np.isfinite(guidance_scale) or guidance_scale < 0:
            raise GenerationError(f"guidance_scale must be a finite number >= 0 (1 = no guidance), got {guidance_scale!r}")
        m = self.size_multiple
        for name, side in (("height", height), ("width", width)):
            if not isinstance(side, int) or side < m or side % m:
                raise GenerationError(f"{name} must be a positive multiple of {m} (VAE factor {self.vae_scale_factor} "
                                      f"x UNet downsampling); this model was trained at {self.default_size}, got {side!r}")
        if sampler is not None and sampler not in SAMPLERS:
            raise GenerationError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        if isinstance(generator, list) and len(generator) != len(prompts) * num_images:
            raise GenerationError(f"got {len(generator)} torch generators for {len(prompts) * num_images} images; "
                                  "give one per image (or one for all)")

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, C, h, w)`` -> images ``(B, 3, H, W)`` in [0, 1] (undo the scaling factor, decode)."""
        image = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        return (image / 2 + 0.5).clamp(0, 1)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], negative_prompt: str | list[str] | None = None,
                 num_inference_steps: int = 20, guidance_scale: float = 3.0, num_images_per_prompt: int = 1,
                 generator: torch.Generator | list[torch.Generator] | None = None, seed: int | None = None,
                 sampler: str | None = None, height: int | None = None, width: int | None = None, eta: float = 0.0,
                 callback: Callable[[DenoisingStep], None] | None = None, output_type: str = "pil",
                 return_dict: bool = True) -> ImagePipelineOutput | tuple:
        """Sample images for ``prompt``; ``[a0, a1, b0, b1]`` order for two prompts and two images each.

        ``sampler=None`` keeps ``self.scheduler`` (set it yourself, as in diffusers); a name from
        ``SAMPLERS`` builds that solver from the training schedule. ``generator``: one
        ``torch.Generator``, or one per image (diffusers' convention: each image then draws its
        noise from its own); ``seed`` makes a CPU ``torch.Generator`` when ``generator`` is not given.
        ``guidance_scale`` 1 means no guidance; values in [0, 1) interpolate towards the unconditional
        model (stock Stable Diffusion ignores them). ``callback(DenoisingStep)`` sees the latents and
        the x0 estimate after each step (``decode_latents`` turns them into images), like
        k-diffusion's callback. ``output_type``: "pil", "np", "pt" or "latent".
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        negative = [""] * len(prompts) if negative_prompt is None else (
            [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt))
        height = height or self.default_size
        width = width or self.default_size
        self.check_inputs(prompts, negative, height, width, num_inference_steps, guidance_scale, sampler,
                          num_images_per_prompt, output_type, generator)
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(int(seed))
        scheduler = self.scheduler if sampler is None else make_scheduler(sampler, self.scheduler.config)
        if sampler == "lcm" and type(self.scheduler).__name__ != "LCMScheduler":  # a consistency model saves its LCMScheduler
            warnings.warn("the lcm sampler is for consistency-distilled models (t2i train distill --method consistency); "
                          "this pipeline was not saved with one: expect blurred images, use ddim or dpm-solver++",
                          UserWarning, stacklevel=2)
        device, n = self._execution_device, num_images_per_prompt
        # a guidance-distilled UNet (t2i.diffusion.distill) reads g itself: one pass per step, as in stock
        # diffusers; a negative prompt (or g < 1) still takes the two-pass formula, over its g = 1 output
        distilled = is_guidance_distilled(self.unet)
        embedded = distilled and guidance_scale >= 1 and not any(negative)
        guided = guidance_scale != 1.0 and not embedded

        # 1. text states, repeated per image: (B*n, T, D); guidance concatenates [negative, positive]
        cond = encode_text(self.tokenizer, self.text_encoder, prompts, device).repeat_interleave(n, dim=0)
        if guided:
            distinct = sorted(set(negative))  # usually just "": encoded once
            states = encode_text(self.tokenizer, self.text_encoder, distinct, device)  # (K, T, D)
            uncond = states[[distinct.index(p) for p in negative]].repeat_interleave(n, dim=0)  # (B*n, T, D)
            cond = torch.cat([uncond, cond])  # (2*B*n, T, D)
        cond = cond.to(self.unet.dtype)

        # 2. initial noise x_T ~ N(0, sigma_max^2 I) in latent space: (B*n, C, H/f, W/f)
        shape = (len(prompts) * n, self.unet.config.in_channels, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        scheduler.set_timesteps(num_inference_steps, device=device)
        latents = latents * scheduler.init_noise_sigma
        step_kwargs = {k: v for k, v in (("eta", eta), ("generator", generator))
                       if k in inspect.signature(scheduler.step).parameters}  # as diffusers' prepare_extra_step_kwargs
        timestep_cond = None
        if distilled:  # the embedding of g - 1 (g = 1 inside the two-pass formula), one row per UNet input
            scale = torch.full((len(cond),), float(guidance_scale) if embedded else 1.0)
            timestep_cond = guidance_embedding(scale, self.unet.config.time_cond_proj_dim).to(device, latents.dtype)

        # 3. the denoising loop: predict, guide, step
        for i, t in enumerate(self.progress_bar(scheduler.timesteps)):
            x_t = scheduler.scale_model_input(latents, t)  # the variance-preserving x_t the UNet reads
            model_input = torch.cat([x_t] * 2) if guided else x_t
            pred = self.unet(model_input, t, encoder_hidden_states=cond, timestep_cond=timestep_cond,
                             return_dict=False)[0]
            if guided:  # classifier-free guidance, Ho & Salimans 2022, Eq. 6
                pred_uncond, pred_cond = pred.chunk(2)
                pred = pred_uncond + guidance_scale * (pred_cond - pred_uncond)
            latents = scheduler.step(pred, t, latents, **step_kwargs, return_dict=False)[0]  # x_t -> x_{t-1}
            if callback is not None:
                denoised = predicted_x0(pred, x_t, alpha_bar_at(scheduler, t), scheduler.config.prediction_type)
                callback(DenoisingStep(i, len(scheduler.timesteps), int(t), latents, denoised))

        # 4. decode to pixels in [0, 1]; rounding as diffusers' image processor does
        if output_type == "latent":
            images: Any = latents
        else:
            images = self.decode_latents(latents).float()
            if not torch.isfinite(images).all():
                raise FloatingPointError("sampling produced non-finite values (not returned as black images); "
                                         "try a lower guidance scale or another sampler")
            if output_type != "pt":
                images = images.cpu().permute(0, 2, 3, 1).numpy()  # (N, H, W, 3)
                if output_type == "pil":
                    images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)


class LDMGenerator(Generator):
    """The toolkit's generator contract over a ``LatentDiffusionPipeline`` (also the ``Denoising`` protocol)."""

    family = "ldm"
    conditioning = "text"
    Options = DiffusionOptions

    def __init__(self, pipe: LatentDiffusionPipeline, options: DiffusionOptions | None = None):
        self.pipe = pipe
        self.options = options or DiffusionOptions()
        self.pipe.set_progress_bar_config(disable=True)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {name: part for name, part in self.pipe.components.items() if isinstance(part, torch.nn.Module)}

    def generate(self, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None, seed: int = 0,
                 num_images_per_prompt: int = 1, callback: Callable[[DenoisingStep], None] | None = None,
                 **options: Any) -> list[Image.Image]:
        """Images for ``prompts`` (text only: labels are refused); options default to the model folder's.

        Prompt i draws its noise (initial and ancestral) from seed ``seed + i`` alone (``rngs_per_image``).
        """
        if labels is not None:
            raise GenerationError("latent diffusion is text-conditional: give prompts, not labels")
        count = validate_request(prompts, labels, num_images_per_prompt, needs="text")
        opts = self.resolve_options(**options)
        return self.pipe(list(prompts), negative_prompt=opts.negative_prompt or None,
                         generator=rngs_per_image(seed, count, num_images_per_prompt),
                         num_images_per_prompt=num_images_per_prompt, sampler=opts.sampler,
                         num_inference_steps=opts.num_inference_steps, guidance_scale=opts.guidance_scale,
                         callback=callback).images

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, h, w) -> images (B, 3, H, W) in [0, 1] on the CPU."""
        vae = self.pipe.vae
        return self.pipe.decode_latents(latents.to(vae.device, vae.dtype)).float().cpu()

    def to(self, device: Any) -> "LDMGenerator":
        self.device = torch.device(device)
        self.pipe.to(self.device)
        return self


def _load_part(name: str, path: Path) -> Any:
    """A pipeline part saved in a LoRA run folder (diffusers/transformers layout)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    kinds = {"vae": AutoencoderKL, "text_encoder": CLIPTextModel, "tokenizer": CLIPTokenizer}
    if name not in kinds:
        raise ValueError(f"a LoRA run can replace {sorted(kinds)}, its t2i_lora.json lists {name!r}")
    if name == "tokenizer":
        return CLIPTokenizer.from_pretrained(str(path))
    return kinds[name].from_pretrained(str(path), torch_dtype=torch.float32, use_safetensors=True)


def load_lora_run(folder: Path, fuse: bool = False) -> LatentDiffusionPipeline:
    """A LoRA run folder (``t2i_lora.json`` naming the base pipeline + ``pytorch_lora_weights.safetensors``) as a
    pipeline: its base (a pipeline, or itself a LoRA run, fused), the parts the run replaced, and its adapter,
    merged into the UNet's weights with ``fuse`` (a plain UNet, for trainers that start from it)."""
    from t2i.builtin import resolve
    from t2i.diffusion.lora import apply_lora

    record = json.loads((folder / "t2i_lora.json").read_text())
    base = Path(str(resolve(record["base"], hub=True, what=f"base pipeline of the LoRA run {folder}")))
    # parts the run replaced (a first stage or text encoder fitted to its data) load from the run itself
    replaced = {name: folder / name for name in record.get("replaced", [])}
    if "text_encoder" in replaced:
        replaced["tokenizer"] = folder / "tokenizer"
    parts = {name: _load_part(name, path) for name, path in replaced.items()}
    if (base / "t2i_lora.json").is_file():  # a LoRA trained on a LoRA run
        pipe = load_lora_run(base, fuse=True)
        pipe.register_modules(**parts)
    else:
        pipe = LatentDiffusionPipeline.from_pretrained(str(base), dtype=torch.float32, **parts)
    if record.get("sample_size"):  # trained at another resolution than its base
        pipe.unet.register_to_config(sample_size=record["sample_size"])
    apply_lora(pipe, folder, fuse=fuse)
    return pipe


def load_generator(path: Any) -> LDMGenerator:
    """Registry entry of family "ldm": a pipeline folder (ours or Stable-Diffusion layout), a hub id,
    or a LoRA run (``load_lora_run``).

    Sampling defaults come from ``t2i_sampling.json`` in the folder when training wrote one (the
    guidance chosen by its sweep), else ``DiffusionOptions()``.
    """
    folder = Path(str(path))
    if (folder / "t2i_lora.json").is_file():
        pipe = load_lora_run(folder)
    else:  # float32 even for half-precision files (compact built-ins): CPU sampling wants it
        pipe = LatentDiffusionPipeline.from_pretrained(str(path), dtype=torch.float32)
    return LDMGenerator(pipe, load_sampling_options(folder) if folder.is_dir() else None)


def demo() -> None:
    from t2i.diffusion.testing import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    images = pipe(["a red circle", "a blue square"], seed=0, num_inference_steps=2, sampler="dpm-solver++").images
    print([im.size for im in images])


if __name__ == "__main__":
    demo()
