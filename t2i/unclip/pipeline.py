"""unCLIP (DALL-E 2 style, Ramesh et al. 2022): text -> CLIP image embedding (prior) -> image (decoder).

A saved model is two stock diffusers pipelines, loadable separately as Kandinsky 2.2's are:
- ``prior/``: ``KandinskyV22PriorPipeline`` (``PriorTransformer`` + ``UnCLIPScheduler`` of ``t2i train prior``,
  and the project's CLIP exported to transformers: ``text_encoder/`` ``CLIPTextModelWithProjection``,
  ``tokenizer/``, ``image_encoder/`` ``CLIPVisionModelWithProjection``, ``image_processor/``);
- ``decoder/``: ``KandinskyV22Pipeline`` (``unet/``, ``scheduler/``, ``movq/``; ``t2i.unclip.decoder``);
- ``t2i_unclip.json``: the family, the CLIP it was trained on, the sampling defaults and how the decoder's
  training images were read (``reading``: ``--resize``, ``--background``; an input image is read alike).
Stock use: ``out = KandinskyV22PriorPipeline.from_pretrained(F / "prior")(prompt, guidance_scale=1.0)``,
then ``KandinskyV22Pipeline.from_pretrained(F / "decoder")(image_embeds=out.image_embeds,
negative_image_embeds=out.negative_image_embeds, height=32, width=32)``. ``UnCLIPGenerator`` runs exactly
those two calls behind the toolkit's generator contract (per-condition seeds: every image draws from
its condition's generator, ``t2i.generator.rngs_per_image``), and adds what the app shows:
- **variations** (Sec. 3.1): the image's CLIP embedding, decoded with new noise. A CLIP that reads positions
  (shapes-clip) pins the layout in the embedding, so by default (``layout="move"``) each variation embeds
  its own copy of the image with the content moved to a random place on its background
  (``t2i.unclip.relayout``); ``layout="keep"`` embeds the image as it is. With ``strength`` > 0 the
  embeddings are then re-sampled through the prior (SDEdit, Meng et al. 2022, in the embedding space:
  noised to ``strength`` of the prior's schedule, denoised on the empty caption), which changes more;
- **text-guided edits** (Sec. 3.3 uses slerp on "text diffs"; here Kandinsky's ``interpolate``): the
  weighted sum ``(1 - w) e_image + w e_prior(text)``, decoded.

    HF_HUB_OFFLINE=1 python -m t2i.unclip.pipeline   # a tiny random unCLIP, saved, loaded, sampled
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline, UnCLIPScheduler
from PIL import Image

from t2i.data.bad_data import to_rgb
from t2i.data.transforms import BACKGROUNDS, fit
from t2i.diffusion.options import SamplerName
from t2i.diffusion.pipeline import make_scheduler, warn_truncated
from t2i.generator import GenerationError, Generator, rngs_per_image, validate_request
from t2i.unclip.relayout import LAYOUTS, centre_square, relayout

INFO_NAME = "t2i_unclip.json"
PRIOR_LOG = "diffusers.pipelines.kandinsky2_2.pipeline_kandinsky2_2_prior"  # the prior pipeline's logger
TRUNCATION_NOTE = "The following part of your input was truncated"  # its per-prompt truncation message
LAYOUT_STREAM = 1  # second word of the numpy seed of the places ([seed, 1]): independent of the torch noise of ``seed``


@dataclass
class UnCLIPOptions:
    sampler: SamplerName = "ddim"  # decoder sampler (a diffusers scheduler on the decoder's training noise schedule)
    num_inference_steps: int = 20  # decoder denoising steps
    guidance_scale: float = 4.0  # decoder classifier-free guidance against the null image embedding (1 = none)
    prior_steps: int = 25  # prior denoising steps (UnCLIPScheduler, DDPM posterior steps)
    prior_guidance: float = 1.0  # prior classifier-free guidance against the empty caption (1 = none)


def _quiet(pipe: Any) -> Any:
    pipe.set_progress_bar_config(disable=True)
    return pipe


@contextlib.contextmanager
def _one_truncation_warning(tokenizer: Any, prompts: Sequence[str]) -> Iterator[None]:
    """The prior pipeline logs, per call, the tokens cut from every prompt of a batch as long as its longest (the
    padding of the shorter ones read as "truncated" text); one warning of ours names the prompts really cut."""
    warn_truncated(tokenizer, prompts, stacklevel=4)
    log = logging.getLogger(PRIOR_LOG)
    quiet = logging.Filter()
    quiet.filter = lambda record: not record.getMessage().startswith(TRUNCATION_NOTE)
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def _images(size: int, pipe: KandinskyV22Pipeline, embeds: torch.Tensor, negative: torch.Tensor,
            generators: list[torch.Generator], options: UnCLIPOptions) -> list[Image.Image]:
    """The decoder pipeline's PIL images for embeddings ``(B, D)``, its scheduler set to ``options.sampler``."""
    pipe.scheduler = make_scheduler(options.sampler, pipe.scheduler.config)
    return pipe(image_embeds=embeds, negative_image_embeds=negative, height=size, width=size,
                num_inference_steps=options.num_inference_steps, guidance_scale=options.guidance_scale,
                generator=generators).images


@torch.no_grad()
def decode_embeddings(unet: Any, movq: Any, scheduler: Any, embeds: torch.Tensor, null: torch.Tensor,
                      options: UnCLIPOptions, seed: int = 0, size: int = 32) -> list[Image.Image]:
    """Decode CLIP image embeddings ``(B, D)`` with a decoder in training (embedding i from seed ``seed + i``)."""
    pipe = _quiet(KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq))
    negative = null.to(embeds).expand(len(embeds), -1)
    return _images(size, pipe, embeds, negative, rngs_per_image(seed, len(embeds), 1), options)


def save_decoder(folder: str | Path, unet: Any, scheduler: Any, movq: Any) -> Path:
    """``folder`` as a ``KandinskyV22Pipeline`` (the scheduler is the default sampler on the training schedule)."""
    KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq).save_pretrained(str(folder))
    return Path(folder)


def save_prior_pipeline(folder: str | Path, prior_run: str | Path, clip: str) -> Path:
    """``folder`` as a ``KandinskyV22PriorPipeline``: the prior run's model and scheduler with ``clip`` exported."""
    from transformers import CLIPImageProcessor, CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionModelWithProjection

    from t2i.builtin import resolve
    from t2i.clip.export import export_image_encoder, export_text_encoder
    from t2i.clip.model import clip_model_folder
    from t2i.prior.io import load_prior

    bundle = load_prior(prior_run)
    source = clip_model_folder(resolve(clip, what="CLIP"))
    with tempfile.TemporaryDirectory() as tmp:
        text_dir, image_dir = Path(tmp) / "text", Path(tmp) / "image"
        export_text_encoder(source, text_dir, with_projection=True)
        export_image_encoder(source, image_dir)  # and its CLIPImageProcessor
        pipe = KandinskyV22PriorPipeline(
            prior=bundle.prior, scheduler=bundle.scheduler,
            text_encoder=CLIPTextModelWithProjection.from_pretrained(text_dir),
            tokenizer=CLIPTokenizer.from_pretrained(text_dir),
            image_encoder=CLIPVisionModelWithProjection.from_pretrained(image_dir),
            image_processor=CLIPImageProcessor.from_pretrained(image_dir))
        pipe.save_pretrained(str(folder))
    return Path(folder)


def save_unclip(out: str | Path, prior_run: str | Path, clip: str, options: UnCLIPOptions,
                reading: tuple[str, str] = ("center-crop", "black")) -> Path:
    """Complete ``out`` (whose ``decoder/`` is written) with ``prior/``, ``t2i_unclip.json`` and the prior run's
    training record (``t2i.provenance``: the words its captions held, so the app can warn of others);
    ``reading``: the (--resize, --background) of the decoder's training images."""
    import shutil

    from t2i.builtin import reference
    from t2i.provenance import RECORD

    out = Path(out)
    if not (out / "decoder" / "model_index.json").is_file():
        raise FileNotFoundError(f"{out}/decoder is not a decoder pipeline: save the decoder first")
    save_prior_pipeline(out / "prior", prior_run, clip)
    if (Path(prior_run) / RECORD).is_file():
        shutil.copy(Path(prior_run) / RECORD, out / RECORD)
    (out / INFO_NAME).write_text(json.dumps({"family": "unclip", "clip": reference(clip),
                                             "options": dataclasses.asdict(options),
                                             "reading": {"resize": reading[0], "background": reading[1]}},
                                            indent=2) + "\n")
    return out


def save_half(source: str | Path, dest: str | Path) -> Path:
    """A copy of an unCLIP folder with float16 weights (half the bytes; the built-ins ship so). Loading computes
    in float32: ``load_generator`` casts, and the transformers configs name float32 so that stock pipelines get
    one dtype (diffusers loads its models in float32 unless told otherwise)."""
    import shutil

    from t2i.diffusion.interop import declare_float32

    source, dest = Path(source), Path(dest)
    for part, cls in (("prior", KandinskyV22PriorPipeline), ("decoder", KandinskyV22Pipeline)):
        cls.from_pretrained(str(source / part), dtype=torch.float16).save_pretrained(str(dest / part))
        for name in ("text_encoder", "image_encoder"):
            if (dest / part / name / "config.json").is_file():
                declare_float32(dest / part / name / "config.json")
    shutil.copy(source / INFO_NAME, dest / INFO_NAME)
    return dest


class UnCLIPGenerator(Generator):
    """Prior + decoder behind the generator contract; ``variations`` and ``edit`` for image inputs."""

    family = "unclip"
    conditioning = "text"
    Options = UnCLIPOptions

    def __init__(self, prior: KandinskyV22PriorPipeline, decoder: KandinskyV22Pipeline, options: UnCLIPOptions,
                 size: int, reading: tuple[str, str] = ("center-crop", "black")):
        self.prior, self.decoder, self.options, self.size = _quiet(prior), _quiet(decoder), options, size
        self.reading = reading  # (--resize, --background) the training images were read with

    def as_read(self, image: Image.Image) -> Image.Image:
        """``image`` (any mode and shape) as a square RGB image the way the training images were read: transparency
        onto the background, then centre-cropped, letterboxed or stretched; CLIP's processor then only resizes it."""
        resize, background = self.reading
        rgb = to_rgb(image, BACKGROUNDS[background])
        side = min(rgb.size) if resize == "center-crop" else max(rgb.size)
        return fit(rgb, side, resize, background=BACKGROUNDS[background])

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"prior": self.prior.prior, "text_encoder": self.prior.text_encoder,
                "image_encoder": self.prior.image_encoder, "unet": self.decoder.unet, "movq": self.decoder.movq}

    @torch.no_grad()
    def generate(self, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None, seed: int = 0,
                 num_images_per_prompt: int = 1, **options: Any) -> list[Image.Image]:
        count = validate_request(prompts, labels, num_images_per_prompt, needs="text")
        o = self.resolve_options(**options)
        generators = rngs_per_image(seed, count, num_images_per_prompt)
        texts = [p for p in prompts for _ in range(num_images_per_prompt)]
        with _one_truncation_warning(self.prior.tokenizer, list(prompts)):
            out = self.prior(texts, num_inference_steps=o.prior_steps, guidance_scale=o.prior_guidance,
                             generator=generators, output_type="pt")
        return _images(self.size, self.decoder, out.image_embeds, out.negative_image_embeds, generators, o)

    def embed_image(self, image: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
        """The CLIP image embeddings ``(N, D)`` of a PIL image (N = 1) or a list of them, in one pass of the prior
        pipeline's image encoder and processor."""
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        for im in images or [None]:
            if not isinstance(im, Image.Image):
                raise GenerationError(f"an image is needed (PIL.Image), got {type(im).__name__}")
        pixels = self.prior.image_processor([self.as_read(im) for im in images], return_tensors="pt").pixel_values
        return self.prior.image_encoder(pixels.to(self.device)).image_embeds

    @torch.no_grad()
    def variations(self, image: Image.Image, n: int = 4, seed: int = 0, strength: float = 0.0,
                   layout: str = "move", **options: Any) -> list[Image.Image]:
        """``n`` decodings of ``image``'s CLIP embedding (image i of the n from ``seed``'s generator in order);
        ``layout`` "move": variation i embeds a copy of the image's centre square with the content moved to a
        random place (the i-th draw of a numpy stream of ``seed``, so the decoder's noise is the same as with
        "keep"), "keep": the image as it is; ``strength`` in [0, 1]: how far the embeddings are re-sampled
        through the prior before decoding (0 = not at all)."""
        validate_request(["image"], None, n, needs="text")
        if not 0.0 <= strength <= 1.0:
            raise GenerationError(f"strength must be in [0, 1] (0 = the image's own embedding), got {strength}")
        if layout not in LAYOUTS:
            raise GenerationError(f"layout must be one of {', '.join(LAYOUTS)} (move = vary where the content is), got {layout!r}")
        o = self.resolve_options(**options)
        generators = rngs_per_image(seed, 1, n)
        if layout == "move" and isinstance(image, Image.Image):  # anything else fails in embed_image
            places = np.random.default_rng([int(seed), LAYOUT_STREAM])  # a stream apart from the decoder's noise
            square = centre_square(self.as_read(image))  # what the image processor keeps: moved content stays in view
            e = self.embed_image([relayout(square, places) for _ in range(n)])  # (n, D), one encoder pass
        else:
            e = self.embed_image(image).expand(n, -1)
        if strength > 0:
            e = self.resample(e, strength, generators, o)
        return _images(self.size, self.decoder, e, self.prior.get_zero_embed(n, self.device), generators, o)

    def resample(self, embeds: torch.Tensor, strength: float, generators: list[torch.Generator],
                 o: UnCLIPOptions) -> torch.Tensor:
        """SDEdit in the prior's space: embeddings ``(B, D)`` standardised, noised to the timestep ``strength`` of the
        way along the prior's sampling schedule, then denoised by the prior on the empty caption (no guidance)."""
        prior = self.prior.prior
        scheduler = UnCLIPScheduler.from_config(self.prior.scheduler.config)  # a copy: set_timesteps mutates it
        scheduler.set_timesteps(o.prior_steps, device=self.device)
        start = min(len(scheduler.timesteps) - 1, round(len(scheduler.timesteps) * (1.0 - strength)))
        timesteps = scheduler.timesteps[start:]
        x0 = (embeds - prior.clip_mean) / prior.clip_std  # (B, D)
        noise = torch.cat([torch.randn((1, x0.shape[1]), generator=g) for g in generators]).to(x0)
        x = scheduler.add_noise(x0, noise, timesteps[:1].expand(len(x0)))  # q(x_t | x_0), Ho et al. 2020 Eq. 4
        text, states, mask = self.prior._encode_prompt([""] * len(x0), self.device, 1, False)
        for i, t in enumerate(timesteps):
            x0_hat = prior(x, timestep=t, proj_embedding=text, encoder_hidden_states=states,
                           attention_mask=mask).predicted_image_embedding
            prev = None if i + 1 == len(timesteps) else timesteps[i + 1]
            x = scheduler.step(x0_hat, timestep=t, sample=x, prev_timestep=prev, generator=generators).prev_sample
        return prior.post_process_latents(x)

    @torch.no_grad()
    def edit(self, image: Image.Image, prompt: str, weight: float = 0.5, n: int = 4, seed: int = 0,
             **options: Any) -> list[Image.Image]:
        """``n`` decodings of ``(1 - weight) e(image) + weight e_prior(prompt)`` (Kandinsky's ``interpolate``)."""
        validate_request([prompt], None, n, needs="text")
        if not 0.0 <= weight <= 1.0:
            raise GenerationError(f"weight must be in [0, 1] (0 = the image, 1 = the prompt), got {weight}")
        if not isinstance(image, Image.Image):
            raise GenerationError(f"an image is needed (PIL.Image), got {type(image).__name__}")
        o = self.resolve_options(**options)
        generators = rngs_per_image(seed, 1, n)
        with _one_truncation_warning(self.prior.tokenizer, [prompt]):
            out = self.prior.interpolate([self.as_read(image), prompt], [1.0 - weight, weight],
                                         num_images_per_prompt=n, num_inference_steps=o.prior_steps,
                                         guidance_scale=o.prior_guidance, generator=generators)
        return _images(self.size, self.decoder, out.image_embeds, out.negative_image_embeds, generators, o)


def load_generator(folder: str | Path) -> UnCLIPGenerator:
    folder = Path(folder)
    missing = [p for p in ("prior/model_index.json", "decoder/model_index.json", INFO_NAME) if not (folder / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not an unCLIP model (no {', '.join(missing)}): give a "
                                "`t2i train unclip --prior PRIOR_RUN` output")
    info = json.loads((folder / INFO_NAME).read_text())
    from t2i.config import config_from_dict

    options = config_from_dict(UnCLIPOptions, info.get("options", {}), source=f"{folder / INFO_NAME} options")
    # half-precision files (the compact built-ins) are computed in float32
    prior = KandinskyV22PriorPipeline.from_pretrained(str(folder / "prior"), dtype=torch.float32)
    decoder = KandinskyV22Pipeline.from_pretrained(str(folder / "decoder"), dtype=torch.float32)
    size = decoder.unet.config.sample_size * 2 ** (len(decoder.movq.config.block_out_channels) - 1)
    reading = info.get("reading", {})  # older models: the defaults they were trained with
    return UnCLIPGenerator(prior, decoder, options, size,
                           (reading.get("resize", "center-crop"), reading.get("background", "black")))
