"""Train latent diffusion conditioned on CLIP text token states, from scratch or fine-tuning (t2i train ldm).

From scratch: ``--vae`` (a ``t2i train vae-kl`` run, an AutoencoderKL folder or hub id) and
``--clip`` (an open_clip run or built-in name, exported to a transformers ``CLIPTextModel``;
or a transformers CLIP text model) are frozen; a new ``UNet2DConditionModel`` (``--unet``
preset) learns to denoise ``z * scaling_factor`` under the DDPM schedule, epsilon or v
prediction, optional min-SNR-gamma weighting, with ``caption_dropout`` of captions replaced by
"" for classifier-free guidance; on ``shapes`` with ``--cache``, ``--partial-captions P`` captions a
one-object scene, with probability P, by a true caption without its size, colour or position (the
built-in recipe: 0.5; held-out colour-shape pairs need it), and ``--reworded-captions P`` any scene not captioned
partially by its caption reworded, still true (the articles left out; two objects with their size, small; "right of"
for "to the right of"), so that prompts worded so are read as the caption is. Fine-tuning: ``--init`` a pipeline
folder (ours or Stable Diffusion layout) or hub id; full UNet, or ``--lora-rank R`` (peft LoRA on the attention).
On new data, ``--vae`` and ``--clip`` replace the base's first stage and text encoder (a decoder
fitted by ``t2i train vae-kl --init BASE --train-part decoder``, a CLIP fine-tuned on the captions)
and ``--size`` may differ from the base's: the UNet is convolutional, its saved default size follows.

Output (the diffusers convention: the run folder is the model):
- full training: ``OUT`` is a pipeline folder (``model_index.json``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``, ``unet/``, ``scheduler/``) + ``t2i_sampling.json`` (sampling defaults), next to
  the run's ``config.json``, ``checkpoints/``, ``samples/`` (grids of fixed prompts, listed in
  ``samples/prompts.txt``: on your own data its first eight distinct captions unless ``--sample-prompts``) and
  ``curves.png``; ``t2i sample --model OUT`` and ``StableDiffusionPipeline.from_pretrained(OUT)`` load it;
- LoRA: ``OUT/pytorch_lora_weights.safetensors`` (``pipe.load_lora_weights(OUT)``) and
  ``OUT/t2i_lora.json`` naming the base pipeline (a built-in name as it is, a path made absolute) and
  the parts the run replaced, saved beside it (``vae/``, ``text_encoder/`` + ``tokenizer/``);
  ``t2i sample/eval/bench/app`` load the run folder like a pipeline.
Speed (opt-in; ``benchmarks/train_throughput.py`` times them against diffusers' ``train_text_to_image.py``):
``--cache`` (VAE posteriors and text states once; ``--cache-dir DIR`` keeps them on disk, memory-mapped, resumable
and reused by a later run on the same data and models), ``--fused-adamw``, ``--compile`` (torch.compile of the UNet step),
``--bf16-weights`` (the step in a bfloat16 copy of the UNet, float32 master weights: ``t2i.diffusion.bf16``;
with ``--compile`` the copy is what is compiled). Memory: ``--gradient-checkpointing`` (the UNet's activations
recomputed in backward, as diffusers' scripts offer it; the same weights).
Sampling defaults (``t2i_sampling.json``): ``--sampler/--sample-steps/--guidance`` when given, else,
with ``--init``, the base pipeline's own saved defaults, else ``DiffusionOptions()``.

    t2i train ldm --data shapes --vae /tmp/vae-kl --clip shapes-clip --unet test --steps 20 --batch-size 16 --out /tmp/ldm
    t2i train ldm --preset shapes-tiny --vae runs/shapes-vae-kl --out runs/shapes-ldm    # the built-in recipe
    t2i train ldm --preset px128 --data my_captions/ --vae runs/vae128 --clip my-clip --out runs/ldm128   # px64|px128|px256
    t2i train ldm --init runs/shapes-ldm --lora-rank 4 --data my_captions/ --steps 500 --out runs/my-lora
    t2i train ldm --init shapes-ldm --vae runs/my-vae --clip runs/my-clip --data my_captions/ --size 64 --cache --out runs/my-ldm
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from t2i.builtin import reference, resolve
from t2i.config import parse_config, presets_in
from t2i.data import item_count, load_dataset, require_captions, shapes_options, training_options
from t2i.diffusion.bf16 import BF16Compute, emulation_warning as bf16_emulation_warning, refusal as bf16_refusal
from t2i.diffusion.first_stage import load_vae, vae_factor
from t2i.diffusion.interop import check_components, load_pipeline, load_text_components
from t2i.diffusion.lora import add_lora, save_lora
from t2i.diffusion.options import DiffusionOptions, SamplerName, load_sampling_options, save_sampling_options
from t2i.diffusion.pipeline import (LatentDiffusionPipeline, LDMGenerator, encode_text, make_scheduler,
                                    training_scheduler)
from t2i.diffusion.training import (build_caches, caption_edits, diffusion_loss, draw_captions, drop_captions,
                                    first_stage_warning, reconstruction_psnr, sample_cached, to_vae_input)
from t2i.diffusion.unet import UNetPreset, build_unet
from t2i.model_card import write_model_card
from t2i.provenance import new_words_warning, write_record
from t2i.runtime import Run, RunConfig
from t2i.runtime.grids import grid_prompts

PRESETS = Path(__file__).resolve().parents[1] / "t2i" / "diffusion" / "presets" / "ldm"


@dataclass
class LDMConfig(RunConfig):
    vae: str = ""  # first stage: a `t2i train vae-kl` run, an AutoencoderKL folder, a pipeline folder or a hub id; with --init: replaces the base's
    clip: str = ""  # text encoder: open_clip run / built-in name (exported), CLIPTextModel folder or hub id; "" = shapes-clip from scratch, the base's own with --init
    init: str = ""  # fine-tune this pipeline (our folder, Stable-Diffusion layout, a LoRA run (merged) or hub id); --vae/--clip replace its parts, --unet is unused
    unet: UNetPreset = "tiny"  # UNet preset when training from scratch (t2i.diffusion.unet)
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"  # what the UNet predicts (from scratch; --init keeps its own)
    snr_gamma: float = 0.0  # min-SNR-gamma loss weighting (Hang et al. 2023), typically 5; 0 = plain MSE
    caption_dropout: float = 0.1  # probability of training on the empty caption "" (for classifier-free guidance)
    lora_rank: int = 0  # > 0: train only a LoRA of this rank on the UNet attention (with --init), saved apart
    lora_alpha: float = 0.0  # LoRA scale numerator (update = alpha / rank * B A); 0 = rank
    first_stage_check: int = 64  # training images (evenly spaced over the data) the first stage reconstructs before training (PSNR printed); 0 = skip
    min_psnr: float = 20.0  # warn (with the remedy) when that PSNR is below this many dB
    cache: bool = False  # encode every image (VAE posterior) and caption once before training: faster steps; in memory, or on disk with --cache-dir
    cache_dir: str = ""  # with --cache: keep the cache in this folder, memory-mapped (data larger than memory), resumed after an interruption and reused by later runs on the same data and models (t2i.diffusion.disk_cache); "" = in memory
    partial_captions: float = 0.0  # shapes, with --cache: probability that a one-object scene is captioned with its size, colour or position left out (true but partial: the shape word moves; t2i.diffusion.training.add_partial_captions)
    reworded_captions: float = 0.0  # shapes, with --cache: probability that a scene is captioned by its caption reworded, still true (articles left out; two objects with their size, small; 'right of' for 'to the right of'; a partial caption wins), so that prompts worded so are read alike (t2i.diffusion.training.add_reworded_captions)
    # speed options (opt-in; benchmarks/train_throughput.py measures them). They change how a step is
    # computed, not what is learnt, so a run may be resumed with them switched (they are not in its identity;
    # nor is --cache-dir: the cache on disk holds the values the one in memory holds).
    compile: bool = False  # torch.compile the UNet for the training step (the first steps compile: minutes on a CPU); checkpoints, EMA, grids and the saved pipeline use the plain module
    gradient_checkpointing: bool = False  # recompute the UNet blocks' activations during backward instead of keeping them (diffusers' --gradient_checkpointing): less memory for a bigger batch or image, about one more UNet forward per step
    fused_adamw: bool = False  # AdamW's fused kernel (one pass over all parameters, CPU and CUDA) instead of its per-parameter loop
    bf16_weights: bool = False  # one process: forward and backward in a bfloat16 copy of the UNet, float32 master weights in the optimiser, EMA and checkpoints (t2i.diffusion.bf16; faster where the CPU has bfloat16 units, unlike --mixed-precision bf16); with --compile the copy is compiled
    n: int = 0  # use only the first N training items (0 = the whole train split)
    p_two: float = 0.5  # shapes only: probability that a training scene holds two objects (the spec's default 0.5)
    lr: float = 2e-4  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 100  # linear learning-rate warm-up steps
    batch_size: int = 64  # global batch per optimiser step
    steps: int = 5000  # optimiser steps to train for
    grad_clip: float = 1.0  # clip the global gradient norm to this value; 0 = off
    checkpoint_every: int = 1000  # write a resumable checkpoint every N steps; 0 = only at the end
    sample_prompts: str = ""  # fixed prompts of the sample grids, separated by "|"; "" = on shapes a fixed eight (t2i.runtime.grids), else the first 8 distinct training captions
    sampler: SamplerName | None = None  # sampler of the grids and the saved default; None = the --init pipeline's saved one, else dpm-solver++
    sample_steps: int | None = None  # sampling steps of the grids and the saved default; None = the --init pipeline's, else 20
    guidance: float | None = None  # classifier-free guidance of the grids and the saved default (1 = none); None = the --init pipeline's, else 3

    resumable: ClassVar[tuple[str, ...]] = RunConfig.resumable + ("compile", "fused_adamw", "cache_dir", "bf16_weights",
                                                                  "gradient_checkpointing")


def build_components(cfg: LDMConfig) -> dict:
    """vae, text_encoder, tokenizer, unet, scheduler: from --init, or new UNet on --vae + --clip."""
    if cfg.init:
        pipe = load_pipeline(cfg.init)
        parts = {"vae": pipe.vae, "text_encoder": pipe.text_encoder, "tokenizer": pipe.tokenizer, "unet": pipe.unet,
                 "scheduler": make_scheduler("ddpm", pipe.scheduler.config)}  # the same noise schedule, as DDPM
        if cfg.vae:  # a first stage fitted to the new data (`t2i train vae-kl --init BASE --train-part decoder`)
            parts["vae"] = load_vae(cfg.vae)
        if cfg.clip:  # a text encoder that knows the new captions' words (a CLIP fine-tuned on them)
            parts["text_encoder"], parts["tokenizer"] = load_text_components(cfg.clip)
        check_replacements(pipe, parts)
        factor = vae_factor(parts["vae"])
        if cfg.size % factor:
            raise SystemExit(f"--size {cfg.size} must be a multiple of the VAE factor {factor}")
        if cfg.size // factor != parts["unet"].config.sample_size:  # fine-tuning at another resolution
            parts["unet"].register_to_config(sample_size=cfg.size // factor)  # the saved pipeline's default size
        return parts
    if not cfg.vae:
        raise SystemExit("give --vae (a `t2i train vae-kl` run or AutoencoderKL folder) or --init (a pipeline folder)")
    vae = load_vae(cfg.vae)
    text_encoder, tokenizer = load_text_components(cfg.clip or "shapes-clip")
    factor = vae_factor(vae)
    if cfg.size % factor:
        raise SystemExit(f"--size {cfg.size} must be a multiple of the VAE factor {factor}")
    unet = build_unet(cfg.unet, cfg.size // factor, vae.config.latent_channels, text_encoder.config.hidden_size)
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet,
            "scheduler": training_scheduler(cfg.prediction_type)}


def check_replacements(base: Any, parts: dict) -> None:
    """A replaced VAE or text encoder must fit the base UNet: the same latent channels, the same width
    of the text states its cross-attention reads."""
    channels, width = parts["vae"].config.latent_channels, parts["text_encoder"].config.hidden_size
    if channels != base.unet.config.in_channels:
        raise SystemExit(f"--vae has {channels} latent channels but the --init UNet takes {base.unet.config.in_channels}: "
                         "fine-tune the base's own VAE (`t2i train vae-kl --init BASE --train-part decoder`)")
    if width != base.unet.config.cross_attention_dim:
        raise SystemExit(f"--clip gives {width}-wide text states but the --init UNet attends to "
                         f"{base.unet.config.cross_attention_dim}: fine-tune the base's own CLIP (`t2i train clip --pretrained ...`)")


def sampling_defaults(cfg: LDMConfig) -> DiffusionOptions:
    """The options of the grids, saved as the model's defaults (``t2i_sampling.json``): the ones given
    (``--sampler``, ``--sample-steps``, ``--guidance``) over, when fine-tuning, the base pipeline's own
    ``t2i_sampling.json`` (a fine-tune keeps its base's guidance unless told otherwise), else
    ``DiffusionOptions()``."""
    base = DiffusionOptions()
    if cfg.init:
        source = resolve(cfg.init, hub=True, what="pipeline")
        base = load_sampling_options(source) if isinstance(source, Path) else base  # a hub id has no such file
    given = {"sampler": cfg.sampler, "num_inference_steps": cfg.sample_steps, "guidance_scale": cfg.guidance}
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


@torch.no_grad()
def sample_grid(run: Run, parts: dict, unet, options: DiffusionOptions, prompts: list[str]) -> None:
    """One image per fixed prompt through the generator contract, prompt i from seed i: the last grid is
    ``t2i sample --model OUT --prompts <the prompts> --seed 0``."""
    from t2i.generator import generate_conditions

    pipe = LatentDiffusionPipeline(parts["vae"], parts["text_encoder"], parts["tokenizer"], unet, parts["scheduler"])
    was_training = unet.training
    unet.eval()
    images = generate_conditions(LDMGenerator(pipe, options), prompts, seed=0, n=1)
    unet.train(was_training)
    run.save_grid(images, "samples", nrow=min(8, len(images)))


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(LDMConfig, argv, prog="t2i train ldm", description=__doc__, presets=presets_in(PRESETS))
    if not 0 <= cfg.caption_dropout < 1:
        raise SystemExit(f"--caption-dropout must be in [0, 1), got {cfg.caption_dropout}")
    if cfg.lora_rank and not cfg.init:
        raise SystemExit("--lora-rank adapts an existing pipeline: give --init PIPELINE_FOLDER")
    for flag, p in (("--partial-captions", cfg.partial_captions), ("--reworded-captions", cfg.reworded_captions)):
        if not 0 <= p <= 1:
            raise SystemExit(f"{flag} must be a probability in [0, 1], got {p}")
        if p and (str(cfg.data) != "shapes" or not cfg.cache):
            raise SystemExit(f"{flag} writes captions from shapes' scene labels into the latent cache: "
                             "use it with --data shapes --cache")
    if cfg.cache_dir and not cfg.cache:
        raise SystemExit("--cache-dir is where --cache keeps its latents and text states: add --cache")
    run = Run(cfg, name="ldm")
    refused = cfg.bf16_weights and bf16_refusal(run.num_processes, cfg.mixed_precision)
    if refused:  # before anything is loaded
        raise SystemExit(refused)
    emulated = cfg.bf16_weights and bf16_emulation_warning(run.device)
    if emulated:
        run.print(emulated)
    parts = build_components(cfg)
    vae, text_encoder, tokenizer, unet, scheduler = (parts[k] for k in ("vae", "text_encoder", "tokenizer", "unet",
                                                                       "scheduler"))
    check_components(LatentDiffusionPipeline(**parts))
    vae.requires_grad_(False).eval().to(run.device)
    text_encoder.requires_grad_(False).eval().to(run.device)
    if cfg.lora_rank:
        params = add_lora(unet, cfg.lora_rank, cfg.lora_alpha or None)
    else:
        unet.requires_grad_(True)
        params = list(unet.parameters())
    unet.train()
    if cfg.gradient_checkpointing:  # diffusers' blocks recompute in backward when grad is on (never in sampling)
        unet.enable_gradient_checkpointing()
    scale = vae.config.scaling_factor
    data_options = dict(split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, **training_options(cfg),
                        **shapes_options(cfg.data, cfg.p_two))
    dataset = load_dataset(cfg.data, strict=cfg.strict, **data_options)
    require_captions(dataset, "ldm")
    prompts = grid_prompts(cfg.sample_prompts, cfg.data, dataset)
    if run.is_main:  # the grids' prompts, in the order of their images
        (run.out / "samples").mkdir(parents=True, exist_ok=True)
        (run.out / "samples" / "prompts.txt").write_text("\n".join(prompts) + "\n")

    data_as_given = " ".join([str(cfg.data)] + [f"--{k.replace('_', '-')} {v}" for k, v in (
        ("resize", cfg.resize), ("background", cfg.background)) if v != getattr(LDMConfig, k)])  # for the warnings' commands
    if cfg.first_stage_check and run.is_main:  # the ceiling of what the model can draw, before any training
        psnr = reconstruction_psnr(vae, dataset, run.device, cfg.first_stage_check, spread=True)
        if hasattr(dataset, "__len__"):
            where = f"{min(cfg.first_stage_check, len(dataset))} training images spread over the data"
        else:
            where = f"the first {cfg.first_stage_check} training images"
        run.print(f"first stage: {psnr:.1f} dB PSNR on {where}")
        (run.out / "first_stage_metrics.json").write_text(json.dumps({"psnr_db": round(psnr, 3), "on": where}) + "\n")
        warning = first_stage_warning(psnr, cfg.min_psnr, data_as_given)
        if warning:
            run.print(warning)
    if cfg.init and not cfg.clip and run.is_main:  # the base's text encoder reads these captions
        warning = new_words_warning(cfg.init, cfg.data, dataset, data_as_given)
        if warning:
            run.print(warning)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused_adamw or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    unet, opt, sched = run.prepare(unet, opt, sched)
    ema = run.ema(unet)
    # the step runs the compiled module; it shares its parameters with `unet`, which is what the
    # checkpoints, the EMA, the grids and the saved pipeline read (no `_orig_mod.` prefixes anywhere)
    step_unet = torch.compile(unet, dynamic=False) if cfg.compile and not cfg.bf16_weights else unet
    if cfg.bf16_weights:  # the step computes in a bfloat16 copy (compiled with --compile); `unet` stays the master
        step_unet = BF16Compute(run.unwrap(unet), compile=cfg.compile)
    train_set, text_table = dataset, None  # train_set: the captions' record (t2i.provenance)
    if cfg.cache:  # posterior moments of every image + text states of every distinct caption (and "")
        cached, text_table = build_caches(run, dataset, cfg.data, data_options, vae, text_encoder, tokenizer, cfg.cache_dir,
                                          edit=caption_edits(dataset, cfg.partial_captions, cfg.reworded_captions,
                                                             run.print))  # (U+1, T, D)
        dataset = cached
    total = sum(p.numel() for p in run.unwrap(unet).parameters())
    run.print(f"UNet {total / 1e6:.2f} M parameters ({sum(p.numel() for p in params) / 1e6:.3f} M trained), "
              f"latents {tuple(run.unwrap(unet).config[k] for k in ('in_channels', 'sample_size'))} (channels, side), "
              f"scaling factor {scale:.4f}, {item_count(dataset)} items, cache={cfg.cache}")
    options = sampling_defaults(cfg)

    for step, batch in run.loop(run.dataloader(dataset)):
        with torch.no_grad():
            if text_table is not None:
                ids = draw_captions(batch, cfg.partial_captions, cfg.reworded_captions, run.generator)  # (B,)
                drop = torch.rand(len(ids), generator=run.generator) < cfg.caption_dropout
                ids = torch.where(drop.to(ids.device), len(text_table) - 1, ids)  # the last row is ""
                cond = text_table[ids.to(text_table.device)].to(run.device)  # (B, T, D)
                z0 = sample_cached(batch["moments"], run.generator) * scale  # (B, C, h, w)
            else:
                texts = drop_captions(batch["text"], cfg.caption_dropout, run.generator)
                cond = encode_text(tokenizer, text_encoder, texts, run.device, warn=step == 0)  # (B, T, D)
                posterior = vae.encode(to_vae_input(batch["image"])).latent_dist
                z0 = posterior.sample(run.generator) * scale  # (B, C, h, w)
        with run.accumulate(unet):
            loss = diffusion_loss(step_unet, scheduler, z0, cond, run.generator, cfg.snr_gamma).mean()
            run.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        run.log(loss=loss)
        if run.should_sample() and run.is_main and step + 1 < cfg.steps:
            sample_grid(run, parts, ema.model if ema is not None else run.unwrap(unet), options, prompts)
    if run.is_main:  # the last grid from the weights that are saved (the EMA's last update included)
        sample_grid(run, parts, ema.model if ema is not None else run.unwrap(unet), options, prompts)

    final = ema.model if ema is not None else run.unwrap(unet)
    if run.is_main:
        if cfg.lora_rank:
            save_lora(run.out, final)
            record = {"family": "ldm", "base": reference(cfg.init), "rank": cfg.lora_rank,
                      "alpha": cfg.lora_alpha or cfg.lora_rank, "sample_size": final.config.sample_size}
            if cfg.vae:  # the replaced parts travel with the run (the base stays a reference)
                vae.save_pretrained(str(run.out / "vae"))
            if cfg.clip:
                text_encoder.save_pretrained(str(run.out / "text_encoder"))
                tokenizer.save_pretrained(str(run.out / "tokenizer"))
            record["replaced"] = [name for name, given in (("vae", cfg.vae), ("text_encoder", cfg.clip)) if given]
            (run.out / "t2i_lora.json").write_text(json.dumps(record, indent=2) + "\n")
        else:
            # the folder's scheduler is the default sampler, built on the training noise schedule
            pipe = LatentDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=final,
                                           scheduler=make_scheduler(options.sampler, scheduler.config))
            pipe.save_pretrained(str(run.out))
        save_sampling_options(options, run.out)
        # the CLIP the text encoder came from: a replacing --clip, else the base's (found through base) or shapes-clip
        write_record(run.out, cfg.data, train_set, clip=cfg.clip or (None if cfg.init else "shapes-clip"),
                     base=cfg.init or None, reworded=bool(cfg.reworded_captions))
        run.print(f"saved {'LoRA weights' if cfg.lora_rank else 'pipeline'} to {run.out}")
    run.finish()
    if run.is_main:
        write_model_card(run.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
