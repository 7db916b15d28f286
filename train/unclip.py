"""Train the unCLIP decoder (DALL-E 2's second half) on a frozen CLIP, and assemble prior + decoder (t2i train unclip).

The decoder (``t2i.unclip.decoder``) is latent diffusion conditioned on the CLIP image embedding of the
image it denoises (Ramesh et al. 2022, Sec. 2.1): the frozen ``--clip`` embeds every training image
once, the frozen first stage (``--vae``) encodes it once (posterior moments; a fresh latent is drawn
each time), and a new ``UNet2DConditionModel`` learns to denoise under the DDPM schedule with
``cond_dropout`` of the embeddings replaced by the null embedding for classifier-free guidance.
The moments and embeddings are kept in memory, or with ``--cache-dir DIR`` on disk, memory-mapped: an
interrupted encoding continues with the same command, a later run on the same data, first stage and CLIP
reuses it, and a ``DIR`` made from other data or models is refused (``t2i.diffusion.disk_cache``).

Output (OUT is the model, as diffusers' convention):
- ``OUT/decoder/``: a ``KandinskyV22Pipeline`` folder (``unet/``, ``scheduler/``, ``movq/``): stock
  diffusers decodes any image embedding of this CLIP with it (image variations need nothing else);
- with ``--prior`` (a ``t2i train prior`` run on the same CLIP): ``OUT/prior/``, a
  ``KandinskyV22PriorPipeline`` folder (the prior, its scheduler, and this CLIP exported to
  transformers: ``text_encoder/``, ``tokenizer/``, ``image_encoder/``, ``image_processor/``), and
  ``OUT/t2i_unclip.json``: then ``t2i sample/eval/bench/app --model OUT`` draw text -> image;
- ``samples/``: each grid shows, per column, a training image above its decoding from its own
  embedding (the decoder's reconstruction through CLIP); ``config.json``, ``checkpoints/``, ``curves.png``.

    t2i train unclip --steps 20 --batch-size 16 --n 256 --unet test --out /tmp/unclip-decoder
    t2i train unclip --preset shapes-unclip --prior runs/shapes-prior --out runs/shapes-unclip
    t2i train unclip --preset shapes-unclip --cache-dir cache/shapes-unclip --out runs/shapes-unclip
    t2i train unclip --preset shapes-unclip --out runs/dec && t2i train unclip --preset shapes-unclip --out runs/dec --resume latest --prior runs/shapes-prior
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torchvision.transforms.functional import pil_to_tensor

from t2i.builtin import reference
from t2i.clip import load_clip
from t2i.config import parse_config, presets_in
from t2i.data import first_items, load_dataset, require_captions, shapes_options, training_options
from t2i.data.transforms import evaluation_resize
from t2i.diffusion.first_stage import load_vae, vae_factor
from t2i.diffusion.options import SamplerName
from t2i.diffusion.pipeline import make_scheduler, training_scheduler
from t2i.diffusion.training import diffusion_loss, sample_cached
from t2i.diffusion.unet import UNetPreset
from t2i.model_card import write_model_card
from t2i.runtime import Run, RunConfig
from t2i.unclip.decoder import (build_decoder_cache, build_decoder_unet, decoder_kwargs, drop_embeddings,
                                movq_from_vae, null_image_embedding)
from t2i.unclip.pipeline import UnCLIPOptions, decode_embeddings, save_decoder, save_unclip

PRESETS = Path(__file__).resolve().parents[1] / "t2i" / "unclip" / "presets"


@dataclass
class UnCLIPConfig(RunConfig):
    clip: str = "shapes-clip"  # the frozen CLIP whose image embeddings condition the decoder: an open_clip run folder or built-in name
    vae: str = "shapes-vae-kl"  # the frozen first stage: a `t2i train vae-kl` run, an AutoencoderKL folder or a pipeline folder
    prior: str = ""  # a `t2i train prior` run on the same --clip: with it OUT is a complete text-to-image unCLIP
    unet: UNetPreset = "tiny"  # decoder UNet preset (t2i.diffusion.unet)
    cross_attention_dim: int = 64  # width of the 32 context tokens the image embedding is projected to
    cond_dropout: float = 0.1  # probability of training on the null embedding (for classifier-free guidance)
    snr_gamma: float = 5.0  # min-SNR-gamma loss weighting (Hang et al. 2023); 0 = plain MSE
    n: int = 20000  # training items (shapes: scenes generated; user data: the first N; 0 = the whole train split)
    p_two: float = 0.5  # shapes only: probability that a training scene holds two objects
    lr: float = 3e-4  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 100  # linear learning-rate warm-up steps
    batch_size: int = 32  # global batch per optimiser step
    steps: int = 5000  # optimiser steps to train for
    grad_clip: float = 1.0  # clip the global gradient norm to this value; 0 = off
    checkpoint_every: int = 1000  # write a resumable checkpoint every N steps; 0 = only at the end
    sampler: SamplerName = "ddim"  # decoder sampler of the grids and the saved default
    sample_steps: int = 20  # decoder sampling steps of the grids and the saved default
    guidance: float = 4.0  # decoder classifier-free guidance of the grids and the saved default (1 = none)
    prior_steps: int = 25  # prior sampling steps of the saved default
    prior_guidance: float = 1.0  # prior classifier-free guidance of the saved default (1 = none)
    cache_dir: str = ""  # keep the latent and CLIP-embedding cache in this folder, memory-mapped, resumed after an interruption and reused by later runs on the same data, VAE and CLIP (t2i.diffusion.disk_cache); "" = in memory

    # the prior is assembled beside the trained decoder, not learnt with it: a finished decoder run resumed with
    # --prior (and other sampling defaults) becomes a complete model without retraining; --cache-dir is where the
    # cache is, not what it holds
    resumable: ClassVar[tuple[str, ...]] = RunConfig.resumable + ("prior", "prior_steps", "prior_guidance", "cache_dir")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(UnCLIPConfig, argv, prog="t2i train unclip", description=__doc__, presets=presets_in(PRESETS))
    if not 0 <= cfg.cond_dropout < 1:
        raise SystemExit(f"--cond-dropout must be in [0, 1), got {cfg.cond_dropout}")
    if cfg.prior:  # fail before training, not after it
        from t2i.prior.io import load_prior

        prior_clip = load_prior(cfg.prior).info.get("clip")
        if prior_clip is not None and str(prior_clip) != str(reference(cfg.clip)):
            raise SystemExit(f"--prior {cfg.prior} was trained on the CLIP {prior_clip}, not on --clip {cfg.clip}: "
                             "prior and decoder must share one CLIP embedding space")
    run = Run(cfg, name="unclip")
    clip = load_clip(cfg.clip).to(run.device).eval().requires_grad_(False)
    vae = load_vae(cfg.vae).to(run.device).eval().requires_grad_(False)
    factor = vae_factor(vae)
    if cfg.size % factor:
        raise SystemExit(f"--size {cfg.size} must be a multiple of the VAE factor {factor}")
    data_options = dict(split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, **training_options(cfg),
                        **shapes_options(cfg.data, cfg.p_two))
    dataset = load_dataset(cfg.data, strict=cfg.strict, **data_options)
    require_captions(dataset, "unclip")
    cache = build_decoder_cache(run, dataset, cfg.data, data_options, vae, clip, cfg.cache_dir)
    embeds = cache.image_embeds  # (N, D); cache.moments (N, 2C, h, w) posterior moments of the same items
    null = null_image_embedding(clip).to(run.device)  # (D,)
    scale = vae.config.scaling_factor
    unet = build_decoder_unet(cfg.unet, cfg.size // factor, vae.config.latent_channels, embeds.shape[1],
                              cfg.cross_attention_dim)
    scheduler = training_scheduler()
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    unet.train()
    unet, opt, sched = run.prepare(unet, opt, sched)
    ema = run.ema(unet)
    movq = movq_from_vae(vae.cpu()).to(run.device)
    options = UnCLIPOptions(sampler=cfg.sampler, num_inference_steps=cfg.sample_steps, guidance_scale=cfg.guidance,
                            prior_steps=cfg.prior_steps, prior_guidance=cfg.prior_guidance)
    shown = torch.arange(min(8, len(cache)))  # the grids' training images: the cache's first, in data order
    real = [item["image"] for item in first_items(dataset, len(shown))]
    run.print(f"decoder UNet {sum(p.numel() for p in run.unwrap(unet).parameters()) / 1e6:.2f} M parameters, "
              f"latents {tuple(cache.moments.shape[1:])}, CLIP embedding {embeds.shape[1]}, {len(cache)} items")

    def grid() -> None:  # training images over their decodings from their own embeddings, seed 0
        model = (ema.model if ema is not None else run.unwrap(unet)).eval()
        decoded = decode_embeddings(model, movq, scheduler, cache.image_embeds[shown].to(run.device), null, options,
                                    seed=0, size=cfg.size)
        run.save_grid(torch.stack(real + [pil_to_tensor(im) / 255.0 for im in decoded]), "samples", nrow=len(shown))
        run.unwrap(unet).train()

    for step, batch in run.loop(run.dataloader(cache)):
        with torch.no_grad():
            z0 = sample_cached(batch["moments"], run.generator) * scale  # (B, C, h, w)
            e = drop_embeddings(batch["image_embed"].to(run.device), null, cfg.cond_dropout, run.generator)  # (B, D)
        with run.accumulate(unet):
            loss = diffusion_loss(unet, scheduler, z0, decoder_kwargs(e), run.generator, cfg.snr_gamma).mean()
            run.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        run.log(loss=loss)
        if run.should_sample() and run.is_main and step + 1 < cfg.steps:
            grid()
    if run.is_main:
        grid()
        final = ema.model if ema is not None else run.unwrap(unet)
        save_decoder(run.out / "decoder", final.eval(), make_scheduler(cfg.sampler, scheduler.config), movq)
        if cfg.prior:
            save_unclip(run.out, cfg.prior, cfg.clip, options, (evaluation_resize(cfg.resize), cfg.background))
            run.print(f"saved the unCLIP model to {run.out} (prior/, decoder/, t2i_unclip.json)")
        else:
            run.print(f"saved the decoder to {run.out / 'decoder'} (give --prior to make a text-to-image model)")
    run.finish()
    if run.is_main:
        write_model_card(run.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
