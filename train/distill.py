"""Distil a latent diffusion pipeline into one pass per step, or into a few steps (t2i train distill).

The student starts as the teacher's UNet plus a zero-initialised guidance input and learns the
teacher's guided prediction ``eps_u + g (eps_c - eps_u)`` for every ``g`` in
``[--guidance-min, --guidance-max]`` (Meng et al. 2023, stage one; ``t2i.diffusion.distill``),
on latents of the training data at uniform timesteps (encoded once, with the captions' text states:
in memory, or on disk with ``--cache-dir DIR``, resumable and reused). Sampling then costs half the
UNet passes at any step count, and the guidance scale stays a sampling option.

``--method consistency`` distils instead a latent consistency model (Luo et al. 2023;
``t2i.diffusion.consistency``) that samples in 2-8 steps with ``--sampler lcm`` (diffusers'
``LCMScheduler``): the target network is the run's EMA (``--ema-decay``, LCM: 0.95), and a
guidance-distilled teacher (such as shapes-ldm-fast) is its own initial student and answers in one pass.

``--method progressive`` halves the DDIM steps instead (Salimans & Ho 2022, Algorithm 2; Meng et al.
2023, stage two; ``t2i.diffusion.progressive``): the student's one DDIM step learns its teacher's two,
at the timesteps DDIM samples at ``--sample-steps`` (default: half the teacher's saved steps), so the
saved folder samples with stock ``DDIMScheduler`` at exactly that many steps (a step count whose
DDIM step is not twice the teacher's is refused: 12 -> 6 and 10 -> 5 work, 16 -> 8 does not).

Output: a pipeline folder (the teacher's ``vae/``, ``text_encoder/``, ``tokenizer/``, the
student ``unet/`` with ``time_cond_proj_dim``, ``scheduler/`` = the default sampler) +
``t2i_sampling.json`` (``--sampler``, ``--sample-steps``, the teacher's guidance unless
``--guidance``) + ``t2i_distill.json`` (teacher, guidance range), next to the run's
``config.json``, ``checkpoints/``, ``samples/`` (student grids) and ``teacher.png`` (the teacher's
grid of the same prompts and seeds at its own defaults). ``t2i sample --model OUT``, the app and
``StableDiffusionPipeline.from_pretrained(OUT)`` load it; stock diffusers gives the same images.

    t2i train distill --teacher shapes-ldm --steps 20 --batch-size 16 --out /tmp/distill
    t2i train distill --preset shapes-guidance --out runs/shapes-ldm-fast    # the built-in recipe
    t2i train distill --preset shapes-consistency --out runs/shapes-ldm-lcm  # 4 LCM steps, from shapes-ldm-fast
    t2i train distill --preset shapes-progressive --out runs/shapes-ldm-6    # 6 DDIM steps, from shapes-ldm-fast at 12
    t2i train distill --teacher runs/my-ldm --data my_captions/ --size 64 --cache-dir cache/my-distill --out runs/my-ldm-fast
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch

from t2i.builtin import reference, resolve
from t2i.config import parse_config, presets_in
from t2i.data import load_dataset, require_captions, shapes_options, training_options
from t2i.diffusion.consistency import consistency_loss, consistency_student
from t2i.diffusion.distill import GUIDANCE_EMBED_DIM, distill_loss, make_student
from t2i.diffusion.interop import load_pipeline
from t2i.diffusion.options import DiffusionOptions, SamplerName, load_sampling_options, save_sampling_options
from t2i.diffusion.pipeline import LatentDiffusionPipeline, LDMGenerator, make_scheduler
from t2i.diffusion.progressive import progressive_loss, student_grid
from t2i.diffusion.training import build_caches, caption_edits, draw_captions, sample_cached
from t2i.model_card import write_model_card
from t2i.runtime import Run, RunConfig
from t2i.runtime.grids import grid_prompts, save_grid

PRESETS = Path(__file__).resolve().parents[1] / "t2i" / "diffusion" / "presets" / "distill"
METHODS = {"guidance": "guidance distillation (Meng et al. 2023, stage one)",
           "consistency": "latent consistency distillation (Luo et al. 2023, Algorithm 1)",
           "progressive": "progressive distillation (Salimans & Ho 2022, Algorithm 2; Meng et al. 2023, stage two)"}


@dataclass
class DistillConfig(RunConfig):
    teacher: str = "shapes-ldm"  # the pipeline to distil: a folder, a LoRA run (merged), a built-in name or a hub id
    method: Literal["guidance", "consistency", "progressive"] = "guidance"  # guidance: one UNet pass per step (Meng et al. 2023); consistency: a few steps with --sampler lcm (Luo et al. 2023); progressive: half the teacher's DDIM steps (Salimans & Ho 2022)
    huber_c: float = 0.001  # consistency: the pseudo-Huber constant of the loss (diffusers' LCM script's)
    guidance_min: float = 1.0  # smallest guidance scale the student learns (1 = the conditional model)
    guidance_max: float = 8.0  # largest guidance scale the student learns
    embed_dim: int = GUIDANCE_EMBED_DIM  # width of the guidance embedding (the UNet's time_cond_proj_dim)
    n: int = 0  # use only the first N training items (0 = the whole train split)
    p_two: float = 0.5  # shapes only: probability that a training scene holds two objects (use the teacher's)
    partial_captions: float = 0.0  # shapes only: probability that a one-object scene is captioned with its size, colour or position left out (use the teacher's; t2i.diffusion.training.add_partial_captions)
    reworded_captions: float = 0.0  # shapes only: probability that a scene is captioned by its caption reworded, still true (use the teacher's; t2i.diffusion.training.add_reworded_captions)
    lr: float = 1e-4  # AdamW learning rate
    warmup_steps: int = 50  # linear learning-rate warm-up steps
    batch_size: int = 64  # global batch per optimiser step
    steps: int = 2000  # optimiser steps to train for
    grad_clip: float = 1.0  # clip the global gradient norm to this value; 0 = off
    checkpoint_every: int = 500  # write a resumable checkpoint every N steps; 0 = only at the end
    sample_prompts: str = ""  # fixed prompts of the sample grids, separated by "|"; "" = on shapes a fixed eight (t2i.runtime.grids), else the first 8 distinct training captions
    sampler: SamplerName | None = None  # sampler of the grids and the saved default; None = ddim for guidance (at 8 steps DDIM beat DPM-Solver++: benchmarks/RESULTS.md) and progressive, lcm for consistency
    sample_steps: int = 0  # sampling steps of the grids and the saved default (progressive: the steps it is trained for); 0 = 8 for guidance, 4 for consistency, half the teacher's saved steps for progressive
    guidance: float | None = None  # guidance of the grids and the saved default; None = the teacher's saved one
    cache_dir: str = ""  # keep the latent and text cache in this folder, memory-mapped, resumed after an interruption and reused by later runs on the same data and teacher (t2i.diffusion.disk_cache); "" = in memory

    resumable: ClassVar[tuple[str, ...]] = RunConfig.resumable + ("cache_dir",)  # where the cache is, not what it holds


def check(cfg: DistillConfig) -> None:
    if not 0 <= cfg.guidance_min <= cfg.guidance_max:
        raise SystemExit(f"--guidance-min/--guidance-max must satisfy 0 <= min <= max, got {cfg.guidance_min}, "
                         f"{cfg.guidance_max}")
    if cfg.embed_dim < 4 or cfg.embed_dim % 2:
        raise SystemExit(f"--embed-dim must be an even number >= 4, got {cfg.embed_dim}")
    for flag, p in (("--partial-captions", cfg.partial_captions), ("--reworded-captions", cfg.reworded_captions)):
        if not 0 <= p <= 1:
            raise SystemExit(f"{flag} must be a probability in [0, 1], got {p}")
        if p and str(cfg.data) != "shapes":
            raise SystemExit(f"{flag} writes captions from shapes' scene labels: it is a shapes option "
                             f"(drop it for {cfg.data!r})")
    consistency = cfg.method == "consistency"
    if consistency and cfg.ema_decay == 0:
        raise SystemExit("--method consistency needs a target network, the EMA of the student: give --ema-decay "
                         "(LCM: 0.95)")
    if cfg.sampler is not None and consistency != (cfg.sampler == "lcm"):
        raise SystemExit(f"--method {cfg.method} samples with "
                         f"{'--sampler lcm' if consistency else 'a solver (not --sampler lcm)'}, got --sampler {cfg.sampler}")
    if cfg.method == "progressive" and cfg.sampler not in (None, "ddim"):
        raise SystemExit(f"--method progressive trains a DDIM student: drop --sampler {cfg.sampler} (or give ddim)")
    if cfg.huber_c <= 0:
        raise SystemExit(f"--huber-c must be > 0, got {cfg.huber_c}")


@torch.no_grad()
def grid_images(pipe: LatentDiffusionPipeline, options: DiffusionOptions, prompts: list[str]) -> list:
    """One image per prompt through the generator contract, prompt i from seed i (``t2i sample --seed 0``)."""
    from t2i.generator import generate_conditions

    was_training = pipe.unet.training
    pipe.unet.eval()
    images = generate_conditions(LDMGenerator(pipe, options), prompts, seed=0, n=1)
    pipe.unet.train(was_training)
    return images


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DistillConfig, argv, prog="t2i train distill", description=__doc__, presets=presets_in(PRESETS))
    check(cfg)
    teacher_pipe = load_pipeline(cfg.teacher)
    source = resolve(cfg.teacher, hub=True, what="pipeline")
    teacher_options = load_sampling_options(source) if isinstance(source, Path) else DiffusionOptions()
    consistency, progressive = cfg.method == "consistency", cfg.method == "progressive"
    default_steps = max(1, teacher_options.num_inference_steps // 2) if progressive else 4 if consistency else 8
    options = DiffusionOptions(sampler=cfg.sampler or ("lcm" if consistency else "ddim"),
                               num_inference_steps=cfg.sample_steps or default_steps,
                               guidance_scale=teacher_options.guidance_scale if cfg.guidance is None else cfg.guidance)
    if not cfg.guidance_min <= options.guidance_scale <= cfg.guidance_max:
        raise SystemExit(f"the saved guidance {options.guidance_scale} is outside the distilled range "
                         f"[{cfg.guidance_min}, {cfg.guidance_max}]: widen it or give --guidance")
    # progressive: the student's sampler, whose step is halved, and its grid (checked before the run folder exists)
    ddim = make_scheduler("ddim", teacher_pipe.scheduler.config) if progressive else None
    if progressive:
        try:
            grid = student_grid(ddim, options.num_inference_steps)
        except ValueError as err:
            raise SystemExit(f"--sample-steps: {err}") from None
    run = Run(cfg, name="distill")
    vae, text_encoder, tokenizer, teacher = (teacher_pipe.vae, teacher_pipe.text_encoder, teacher_pipe.tokenizer,
                                             teacher_pipe.unet)
    scheduler = make_scheduler("ddpm", teacher_pipe.scheduler.config)  # the training noise schedule
    for frozen in (vae, text_encoder, teacher):
        frozen.requires_grad_(False).eval().to(run.device)
    student = (consistency_student(teacher, cfg.embed_dim) if consistency or progressive
               else make_student(teacher, cfg.embed_dim))
    # consistency: the LCM scheduler's solver grid and boundary scalings are what the loss matches
    lcm = make_scheduler("lcm", scheduler.config) if consistency else None
    student.requires_grad_(True).train()
    data_options = dict(split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, **training_options(cfg),
                        **shapes_options(cfg.data, cfg.p_two))
    dataset = load_dataset(cfg.data, strict=cfg.strict, **data_options)
    require_captions(dataset, "distill")
    prompts = grid_prompts(cfg.sample_prompts, cfg.data, dataset)
    if run.is_main:  # what the student is measured against: the teacher at its own defaults, same seeds
        save_grid(grid_images(teacher_pipe, teacher_options, prompts), run.out / "teacher.png", nrow=min(8, len(prompts)))
        (run.out / "samples").mkdir(parents=True, exist_ok=True)
        (run.out / "samples" / "prompts.txt").write_text("\n".join(prompts) + "\n")
    edit = caption_edits(dataset, cfg.partial_captions, cfg.reworded_captions, run.print)
    cached, text_table = build_caches(run, dataset, cfg.data, data_options, vae, text_encoder, tokenizer, cfg.cache_dir,
                                      edit=edit)
    # the teacher's VAE is frozen; text states (U+1, T, D)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    student, opt, sched = run.prepare(student, opt, sched)
    ema = run.ema(student)
    scale = vae.config.scaling_factor
    run.print(f"student UNet {sum(p.numel() for p in run.unwrap(student).parameters()) / 1e6:.2f} M parameters, "
              f"{cfg.method} distillation, guidance range [{cfg.guidance_min}, {cfg.guidance_max}], {len(cached)} items, "
              f"{len(text_table) - 1} distinct captions; teacher {cfg.teacher} at {teacher_options}")

    def current() -> LatentDiffusionPipeline:
        unet = ema.model if ema is not None else run.unwrap(student)
        return LatentDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=make_scheduler(options.sampler, scheduler.config))

    for step, batch in run.loop(run.dataloader(cached)):
        with torch.no_grad():
            # the teacher's caption mix (benchmarks/RESULTS.md: partial captions fix held-out colours, not all correct)
            ids = draw_captions(batch, cfg.partial_captions, cfg.reworded_captions, run.generator)  # (B,)
            cond = text_table[ids.to(text_table.device)].to(run.device)  # (B, T, D)
            uncond = text_table[-1:].to(run.device).expand_as(cond)  # the empty prompt, (B, T, D)
            z0 = sample_cached(batch["moments"], run.generator) * scale  # (B, C, h, w)
        with run.accumulate(student):
            guidance_range = (cfg.guidance_min, cfg.guidance_max)
            if consistency:  # the target network is the run's EMA of the student
                loss = consistency_loss(student, ema.model, teacher, scheduler, z0, cond, uncond, guidance_range,
                                        lcm.config.original_inference_steps, lcm.config.timestep_scaling, cfg.huber_c,
                                        run.generator).mean()
            elif progressive:
                loss = progressive_loss(student, teacher, ddim, z0, cond, uncond, guidance_range, grid,
                                        run.generator).mean()
            else:
                loss = distill_loss(student, teacher, scheduler, z0, cond, uncond, guidance_range, run.generator).mean()
            run.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        run.log(loss=loss)
        if run.should_sample() and run.is_main and step + 1 < cfg.steps:
            run.save_grid(grid_images(current(), options, prompts), "samples", nrow=min(8, len(prompts)))
    if run.is_main:
        pipe = current()
        run.save_grid(grid_images(pipe, options, prompts), "samples", nrow=min(8, len(prompts)))
        pipe.save_pretrained(str(run.out))
        save_sampling_options(options, run.out)
        (run.out / "t2i_distill.json").write_text(json.dumps(
            {"method": METHODS[cfg.method], "teacher": reference(cfg.teacher),
             "guidance_range": [cfg.guidance_min, cfg.guidance_max],
             **({"teacher_ddim_steps": 2 * options.num_inference_steps, "ddim_steps": options.num_inference_steps}
                if progressive else {})},
            indent=2) + "\n")
        run.print(f"saved the {cfg.method}-distilled pipeline to {run.out} (defaults: {options})")
    run.finish()
    if run.is_main:
        write_model_card(run.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
