"""What the app does, without the UI: load the models once, check requests, generate, time, score.

Kept apart from ``apps/app.py`` so it can be tested and benchmarked without a browser.

The models are named by what they are and scored by the CLIP that fits them (``apps.catalog``); a
prompt with words a model's training captions never held gets a warning beside its images
(``t2i.provenance``). Everything it asks of the models goes through the generator contract (``t2i.generator``):
``generate`` with typed options, the ``Denoising`` protocol for the strip of intermediate
images (the x0 estimate at each step, decoded), and the ``LatentCodes`` protocol for the
latent-space tab. The sampler choices and the prompt length limit come from the library.

    python -c "from apps.models import AppModels; from apps.app import AppConfig; m = AppModels.load(AppConfig()); print(m.generate('a small red circle in the center', '', 0, 4, 'dpm-solver++', 20, 3.0, False)['summary'])"
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from PIL import Image

from apps.catalog import Scoring, choose_scorers, describe, model_names
from gan_baselines.registry import load_generator
from t2i.generator import (MAX_PROMPT_CHARS, Denoising, DenoisingStep, GenerationError, Generator, LatentCodes,
                           option_choices, to_pil)
from t2i.provenance import TrainedOn, outside_captions_warning, trained_on


DEFAULT_IMAGES = 4  # images per model in the app's default request


class RequestError(ValueError):
    """A request the app refuses, with a message meant for the user."""


def _as_float(value: Any) -> float | None:
    """A finite number from an int/float (or numeric text), else None; never raises."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def whole_number(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high], or RequestError naming the range."""
    number = _as_float(value)
    if number is None or not number.is_integer() or not low <= number <= high:
        raise RequestError(f"The {name} must be a whole number from {low} to {high}; got {_shown(value)}.")
    return int(number)


def check_prompt(prompt: Any, empty: str = "Please type a prompt: it is empty.") -> None:
    """RequestError (``empty`` for a blank one) unless ``prompt`` is non-blank text of at most MAX_PROMPT_CHARS."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError(empty if isinstance(prompt, str) or prompt is None
                           else f"The prompt must be text, not {type(prompt).__name__}.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RequestError(f"The prompt is {len(prompt)} characters long; at most {MAX_PROMPT_CHARS} are allowed.")


def upscaled(image: Image.Image, size: int) -> Image.Image:
    """An image as the app shows it: RGB, ``size x size``, nearest-neighbour (pixels stay sharp)."""
    return image.convert("RGB").resize((size, size), Image.NEAREST)


def number_in(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in [low, high], or RequestError naming the range."""
    number = _as_float(value)
    if number is None or not low <= number <= high:
        raise RequestError(f"The {name} must be a number from {low:g} to {high:g}; got {_shown(value)}.")
    return number


@dataclass
class AppModels:
    gan: Generator
    diffusion: Generator
    scorer: Any  # CLIP scorer of both models unless ``scoring`` names one per model: ``name``, score(images, prompts) -> list[float]
    ae: Generator | None = None
    vae: Generator | None = None
    max_images: int = 8
    max_steps: int = 100
    max_guidance: float = 20.0
    display_size: int = 128
    gan_name: str = "text GAN"  # what the models are called (apps.catalog.model_names)
    diffusion_name: str = "latent diffusion"
    trained: dict[str, TrainedOn] = field(default_factory=dict)  # model name -> what its training recorded
    scoring: Scoring | None = None  # model name -> the CLIP that scores it, and notes for the user
    about: dict[str, str] = field(default_factory=dict)  # model name -> one Markdown line (apps.catalog.describe)
    _digits: Any = None  # digits test split, loaded on the first interpolation

    def __post_init__(self) -> None:
        if self.gan.conditioning != "text":
            raise ValueError(f"the app's --gan must be a text-conditional generator (tgan, tgan-attn, a text cvae); "
                             f"{self.gan.family!r} is conditioned on {self.gan.conditioning!r}")
        if not isinstance(self.diffusion, Denoising):
            raise ValueError(f"the app's diffusion model must be a denoising generator (latent diffusion); "
                             f"{self.diffusion.family!r} is not")
        for name in ("ae", "vae"):
            model = getattr(self, name)
            if model is not None and not isinstance(model, LatentCodes):
                raise ValueError(f"the latent-space tab's {name} must have a code space (encode/decode); "
                                 f"{model.family!r} has not")

    @classmethod
    def load(cls, cfg) -> "AppModels":
        gan, diffusion = load_generator(cfg.gan), load_generator(cfg.diffusion)
        gan_name, diffusion_name = model_names([cfg.gan, cfg.diffusion])
        trained = {gan_name: trained_on(cfg.gan), diffusion_name: trained_on(cfg.diffusion)}
        scoring = choose_scorers(cfg.clip, trained)
        about = {name: describe(spec, name, g.family, trained[name])
                 for spec, name, g in ((cfg.gan, gan_name, gan), (cfg.diffusion, diffusion_name, diffusion))}
        return cls(
            gan=gan, diffusion=diffusion, scorer=scoring.scorers[diffusion_name],
            ae=load_generator(cfg.ae) if cfg.ae else None, vae=load_generator(cfg.vae) if cfg.vae else None,
            max_images=cfg.max_images, max_steps=cfg.max_steps, max_guidance=cfg.max_guidance, display_size=cfg.display_size,
            gan_name=gan_name, diffusion_name=diffusion_name, trained=trained, scoring=scoring, about=about)

    def scorer_of(self, name: str) -> Any:
        return self.scoring.scorers.get(name, self.scorer) if self.scoring else self.scorer

    def warnings(self, prompt: str) -> list[str]:
        """One line per model whose training captions the prompt is outside of: words they never held, never join
        or never put side by side (``t2i.provenance.outside_captions_warning``); one line for both models when their
        records give the same advice (the built-ins on words outside shapes), so that it is not shown twice."""
        names = (self.gan_name, self.diffusion_name)
        records = [self.trained.get(name, TrainedOn()) for name in names]
        both = [outside_captions_warning(prompt, " and ".join(names), trained, plural=True) for trained in records]
        found = both[:1] if both[0] == both[1] else [outside_captions_warning(prompt, name, trained)
                                                      for name, trained in zip(names, records)]
        return [w for w in found if w]

    @property
    def samplers(self) -> tuple[str, ...]:
        """The diffusion model's samplers (its options' choices)."""
        return option_choices(self.diffusion.Options, "sampler")

    @property
    def diffusion_defaults(self) -> tuple[str, int, float]:
        """(sampler, steps, guidance) the diffusion model was saved with (its ``t2i_sampling.json``)."""
        d = self.diffusion.options
        return d.sampler, d.num_inference_steps, d.guidance_scale

    def compile_diffusion(self) -> str:
        """torch.compile the diffusion model's UNet for the default request (``DEFAULT_IMAGES`` images at its saved
        sampling options; other request sizes run eagerly: ``t2i.diffusion.compiled``). Returns a line for the
        log; a failed compilation (no C++ compiler, say) leaves the model eager."""
        from t2i.diffusion.compiled import CompiledForShapes

        unet = getattr(getattr(self.diffusion, "pipe", None), "unet", None)
        if unet is None:
            return f"app: --compile: {self.diffusion_name} has no UNet to compile; it runs as is"
        compiled = CompiledForShapes(unet)
        sampler, steps, guidance = self.diffusion_defaults
        try:
            seconds = compiled.warm_up(lambda: self.diffusion.generate(
                prompts=["a red circle"], seed=0, num_images_per_prompt=DEFAULT_IMAGES, num_inference_steps=steps,
                guidance_scale=guidance, sampler=sampler))
        except Exception as err:  # the app still serves, eagerly
            compiled.remove()
            reason = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
            return f"app: --compile failed ({reason}); the UNet runs eagerly"
        return (f"app: compiled {self.diffusion_name}'s UNet for {DEFAULT_IMAGES}-image requests in {seconds:.0f} s "
                f"(other sizes run eagerly)")

    @property
    def has_latent_tab(self) -> bool:
        return self.ae is not None and self.vae is not None

    # ---- checks -----------------------------------------------------------------
    def check(self, prompt: str, seed: Any, n: Any, steps: Any, guidance: Any, sampler: str,
              negative_prompt: Any = "") -> tuple[int, int, int, float]:
        """Refuse a bad request with a message for the user (``RequestError``); never a raw Python error."""
        check_prompt(prompt)
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise RequestError(f"The negative prompt must be text, not {type(negative_prompt).__name__}.")
        if negative_prompt and len(negative_prompt) > MAX_PROMPT_CHARS:
            raise RequestError(f"The negative prompt is {len(negative_prompt)} characters long; at most "
                               f"{MAX_PROMPT_CHARS} are allowed.")
        checks = [("seed", seed, 0, 2**31 - 1), ("number of images", n, 1, self.max_images), ("steps", steps, 1, self.max_steps)]
        values = [whole_number(name, value, low, high) for name, value, low, high in checks]
        number = _as_float(guidance)
        if number is None or not 0.0 <= number <= self.max_guidance:
            raise RequestError(f"The guidance scale must be a number between 0 and {self.max_guidance}; "
                               f"got {_shown(guidance)}.")
        if not isinstance(sampler, str) or sampler not in self.samplers:
            raise RequestError(f"The sampler must be one of {list(self.samplers)}; got {_shown(sampler)}.")
        return values[0], values[1], values[2], number

    def _decode_strip(self, strip: list[torch.Tensor]) -> list[Image.Image]:
        """x0 estimates recorded along the denoising steps -> images (decoded by the model's VAE)."""
        if not strip:
            return []
        return to_pil(self.diffusion.decode_latents(torch.cat(strip)))  # (K, 3, H, W) in [0, 1]

    def _display(self, images: list[Image.Image]) -> list[Image.Image]:
        return [upscaled(im, self.display_size) for im in images]

    # ---- text to image ------------------------------------------------------------
    def generate(self, prompt: str, negative_prompt: str, seed: Any, n: Any, sampler: str, steps: Any, guidance: Any,
                 intermediates: bool, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        seed, n, steps, guidance = self.check(prompt, seed, n, steps, guidance, sampler, negative_prompt)
        prompt = " ".join(prompt.split())
        strip: list[torch.Tensor] = []

        def on_step(state: DenoisingStep) -> None:
            if progress is not None:
                progress(state.step + 1, state.num_steps)
            if intermediates and (state.step % max(1, steps // 8) == 0 or state.step == steps - 1):
                strip.append(state.denoised[:1].detach().clone())  # the first image's x0 estimate along the way

        try:
            start = time.perf_counter()
            gan_images = self.gan.generate(prompts=[prompt], seed=seed, num_images_per_prompt=n)
            gan_seconds = time.perf_counter() - start
            start = time.perf_counter()
            diffusion_images = self.diffusion.generate(
                prompts=[prompt], seed=seed, num_images_per_prompt=n, negative_prompt=negative_prompt or "",
                num_inference_steps=steps, guidance_scale=guidance, sampler=sampler, callback=on_step)
            diffusion_seconds = time.perf_counter() - start
        except GenerationError as err:
            raise RequestError(str(err)) from None
        intermediate_images = self._decode_strip(strip)
        gan_scorer, diffusion_scorer = self.scorer_of(self.gan_name), self.scorer_of(self.diffusion_name)
        both = gan_images + diffusion_images
        if gan_scorer is diffusion_scorer and len({(im.size, im.mode) for im in both}) == 1:  # one CLIP call, not two
            scores = gan_scorer.score(both, [prompt] * len(both))
            gan_scores, diffusion_scores = scores[:len(gan_images)], scores[len(gan_images):]
        else:
            gan_scores = gan_scorer.score(gan_images, [prompt] * len(gan_images))
            diffusion_scores = diffusion_scorer.score(diffusion_images, [prompt] * len(diffusion_images))
        rows = [(f"{self.gan_name} (`{self.gan.family}`)", gan_seconds, gan_scores, gan_scorer),
                (f"{self.diffusion_name} (`{self.diffusion.family}`; {sampler}, {steps} steps, guidance {guidance:g})",
                 diffusion_seconds, diffusion_scores, diffusion_scorer)]
        notes = self.scoring.notes if self.scoring else []
        summary = (
            f"| model | time for {n} image(s) | ms / image | scored by | mean CLIP score | CLIP score per image |\n"
            "|---|---|---|---|---|---|\n"
            + "".join(f"| {label} | {seconds:.2f} s | {1000 * seconds / n:.0f} | `{scorer.name}` | "
                      f"{sum(scores) / n:.1f} | {', '.join(f'{s:.1f}' for s in scores)} |\n"
                      for label, seconds, scores, scorer in rows)
            + f"\nCLIP score = 100 x cosine(image, prompt), unclamped: near 0 or below, the CLIP finds image and "
            f"prompt unrelated; seed {seed}." + "".join(f"\n\n{note}" for note in notes))
        warnings = self.warnings(prompt)
        return {
            "gan": self._display(gan_images), "diffusion": self._display(diffusion_images), "seed": seed,
            "summary": summary, "intermediates": self._display(intermediate_images),
            "gan_seconds": gan_seconds, "diffusion_seconds": diffusion_seconds,
            "gan_scores": gan_scores, "diffusion_scores": diffusion_scores, "warnings": warnings,
            "warning": "\n\n".join(f"**Outside the training captions:** {w}." for w in warnings),
        }

    # ---- latent-space tab -----------------------------------------------------------
    def interpolate(self, digit_a: Any, digit_b: Any, num_steps: Any) -> tuple[list[Image.Image], list[Image.Image]]:
        if not self.has_latent_tab:
            raise RequestError("The latent-space models are not loaded.")
        digit_a, digit_b = whole_number("first digit", digit_a, 0, 9), whole_number("second digit", digit_b, 0, 9)
        num_steps = whole_number("number of steps", num_steps, 2, 32)
        return (self._display(self._walk(self.ae, digit_a, digit_b, num_steps)),
                self._display(self._walk(self.vae, digit_a, digit_b, num_steps)))

    @torch.no_grad()
    def _walk(self, generator: LatentCodes, digit_a: int, digit_b: int, num_steps: int) -> list[Image.Image]:
        """Encode the first test image of each digit, decode the straight line between the codes."""
        if self._digits is None:
            from t2i.data import load_dataset

            self._digits = load_dataset("digits", split="test", size=generator.image_shape[-1])
        labels = [self._digits[i]["label"] for i in range(len(self._digits))]
        pair = torch.stack([self._digits[labels.index(d)]["image"] for d in (digit_a, digit_b)])  # (2, 1, S, S)
        codes = generator.encode(pair)  # (2, D); a VAE walks between its posterior means
        weights = torch.linspace(0, 1, num_steps)[:, None]  # (K, 1)
        path = (1 - weights) * codes[0] + weights * codes[1]  # (K, D)
        return to_pil(generator.decode(path))

    def prior_samples(self, count: Any, seed: Any) -> tuple[list[Image.Image], list[Image.Image], str]:
        if not self.has_latent_tab:
            raise RequestError("The latent-space models are not loaded.")
        count, seed = whole_number("number of samples", count, 1, 64), whole_number("seed", seed, 0, 2**31 - 1)
        ae_images = self.ae.generate(seed=seed, num_images_per_prompt=count)
        vae_images = self.vae.generate(seed=seed, num_images_per_prompt=count)
        info = ("Both decoders get codes drawn from N(0, I) with the same seed. The VAE was trained to make that "
                "distribution its prior; the AE's codes occupy an arbitrary region, so most random codes decode to blur.")
        return self._display(ae_images), self._display(vae_images), info
