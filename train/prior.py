"""Train a diffusion prior (unCLIP's first half): text -> CLIP image embedding, on a frozen CLIP (t2i train prior).

A diffusers ``PriorTransformer`` learns to denoise the standardised CLIP image embedding (unnormalised, as Kandinsky's)
given the caption's pooled text embedding and token states, predicting the clean embedding (MSE,
Ramesh et al. 2022, Sec. 2.1), with ``cond_dropout`` of captions replaced by "" for classifier-free
guidance (``t2i.prior.model``). The frozen CLIP (``--clip``, an open_clip run or built-in name) embeds
every training image and distinct caption once, before training.

At the end the prior is evaluated on held-out pairs (``--eval-splits`` of ``--data``, by default shapes'
``test`` and ``novel``, else the test split where the data has one; or ``--eval-data``): cosine of the
sampled vs the true image embedding, and retrieval of the true image among ``--gallery`` images (a
smaller split: among its own pairs) (R@1, R@5), against using the text embedding as the image embedding, with
bootstrap 95% intervals (``t2i.prior.evaluate``).

Output: ``OUT/prior/`` (``PriorTransformer``), ``OUT/scheduler/`` (``UnCLIPScheduler``), ``OUT/t2i_prior.json``
(the CLIP, sampling defaults), ``OUT/prior_metrics.json`` and ``prior_metrics.md``, next to the run's
``config.json``, ``checkpoints/``, ``metrics.jsonl``, ``curves.png``.

    t2i train prior --steps 20 --n 512 --batch-size 64 --eval-n 200 --out /tmp/prior
    t2i train prior --preset shapes-prior --out runs/shapes-prior
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch.utils.data import Dataset

from t2i.builtin import reference
from t2i.clip import get_tokenizer, load_clip
from t2i.config import parse_config, presets_in
from t2i.data import evaluation_options, has_test_split, load_dataset, require_captions, shapes_options
from t2i.prior import (SAMPLERS, build_cache, build_prior, drop_conditions, prior_loss, save_prior, set_clip_stats,
                       table, to_prior_space, training_scheduler)
from t2i.prior.evaluate import evaluate_prior
from t2i.prior.model import PriorSampler
from t2i.model_card import write_model_card
from t2i.provenance import write_record
from t2i.runtime import Run, RunConfig

PRESETS = Path(__file__).resolve().parents[1] / "t2i" / "prior" / "presets"


@dataclass
class PriorConfig(RunConfig):
    clip: str = "shapes-clip"  # the frozen CLIP: an open_clip run folder or built-in name
    layers: int = 4  # transformer blocks of the prior
    heads: int = 4  # attention heads
    head_dim: int = 32  # width per head (transformer width = heads * head_dim)
    num_train_timesteps: int = 1000  # diffusion steps of the (squared-cosine) training schedule
    cond_dropout: float = 0.1  # probability of training on the empty caption "" (for classifier-free guidance)
    n: int = 20000  # training items (shapes: scenes generated; user data: the first N; 0 = the whole train split)
    p_two: float = 0.5  # shapes only: probability that a training scene holds two objects (the spec's default 0.5)
    lr: float = 3e-4  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 100  # linear learning-rate warm-up steps
    batch_size: int = 256  # global batch per optimiser step
    steps: int = 3000  # optimiser steps to train for
    grad_clip: float = 1.0  # clip the global gradient norm to this value; 0 = off
    checkpoint_every: int = 1000  # write a resumable checkpoint every N steps; 0 = only at the end
    sampler: PriorSampler = "ddpm"  # sampler of the evaluation and the saved default: ddpm (UnCLIPScheduler) | ddim
    sample_steps: int = 25  # sampling steps of the evaluation and the saved default
    guidance: float = 1.0  # classifier-free guidance of the evaluation and the saved default (1 = none; on shapes 4 and 8 were worse, benchmarks/RESULTS.md)
    eval_splits: str = "auto"  # held-out splits of --data, comma-separated; auto: shapes test,novel, else test if any; "" = none
    eval_data: str = ""  # evaluate on this held-out data instead (a folder/.csv of captioned images)
    eval_n: int = 1000  # held-out pairs per split (whole galleries of --gallery are used)
    gallery: int = 100  # retrieval: rank the true image among this many images (a smaller split: among its own)
    n_boot: int = 1000  # bootstrap resamples of the 95% intervals

    resumable: ClassVar[tuple[str, ...]] = RunConfig.resumable + ("eval_splits", "eval_data", "gallery", "n_boot")


AUTO_SPLITS = {"shapes": "test,novel"}  # --eval-splits auto where it is more than the test split
MIN_GALLERY = 10  # the smallest held-out split retrieval is measured in (R@5 among fewer says little)


def auto_splits(data: str) -> str:
    """``--eval-splits auto``: shapes' test and novel splits, else ``test`` where the data has one, else none."""
    return AUTO_SPLITS.get(str(data)) or ("test" if has_test_split(data) else "")


def training_set(cfg: PriorConfig) -> Dataset:
    """The training images, read once (``build_cache`` embeds each with the frozen CLIP a single time) with the
    run's columns, resize and background; a random crop or flip would be drawn once, so they are refused."""
    if cfg.random_flip or cfg.resize == "random-crop":
        raise ValueError("the prior embeds each training image once: --random-flip and --resize random-crop would be "
                         "drawn a single time; use --resize center-crop, pad or stretch without --random-flip")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **evaluation_options(cfg), **shapes_options(cfg.data, cfg.p_two))
    require_captions(dataset, "prior")
    return dataset


def eval_sets(cfg: PriorConfig) -> dict:
    """{name: held-out dataset}, loaded before training so a bad split fails fast."""
    reading = evaluation_options(cfg)  # the training images' columns, resize and background, without randomness
    if cfg.eval_data:
        return {"eval-data": load_dataset(cfg.eval_data, split="test", size=cfg.size, n=cfg.eval_n, **reading)}
    splits = auto_splits(cfg.data) if cfg.eval_splits == "auto" else cfg.eval_splits
    return {split: load_dataset(cfg.data, split=split, size=cfg.size, n=cfg.eval_n, seed=cfg.seed, **reading)
            for split in [s.strip() for s in splits.split(",") if s.strip()]}


def galleries(cfg: PriorConfig, sets: dict, log=print) -> dict[str, int]:
    """{split: retrieval gallery}: ``--gallery``, or a smaller held-out split's own size (the table says "R@1 of
    N"). A split too small to rank in is refused before training when asked for, left out (and said) when
    ``--eval-splits auto`` found it."""
    sizes = {split: len(data) if hasattr(data, "__len__") else cfg.gallery for split, data in sets.items()}
    small = {split: n for split, n in sizes.items() if n < MIN_GALLERY}
    if small and cfg.eval_splits == "auto" and not cfg.eval_data:
        for split, n in small.items():
            log(f"prior: the held-out {split} split of {cfg.data} has {n} pairs, fewer than the {MIN_GALLERY} "
                "retrieval needs: not evaluated")
            del sets[split], sizes[split]
    elif small:
        raise ValueError(f"held-out {', '.join(f'{s} ({n} pairs)' for s, n in small.items())} of {cfg.data}: retrieval "
                         f"needs at least {MIN_GALLERY} pairs; give a larger split, or --eval-splits '' to skip it")
    return {split: min(cfg.gallery, n) for split, n in sizes.items()}


def evaluate(cfg: PriorConfig, sets: dict, gallery: dict[str, int], prior, scheduler, clip, tokenizer,
             device) -> dict:
    """{split: compare(...)} on the held-out sets, each ranked in its ``gallery``."""
    return {split: evaluate_prior(prior, scheduler, clip, tokenizer, data, gallery[split], cfg.sample_steps,
                                  cfg.guidance, cfg.sampler, seed=cfg.seed, n_boot=cfg.n_boot, device=device)
            for split, data in sets.items()}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(PriorConfig, argv, prog="t2i train prior", description=__doc__, presets=presets_in(PRESETS))
    if not 0 <= cfg.cond_dropout < 1:
        raise ValueError(f"--cond-dropout must be in [0, 1), got {cfg.cond_dropout}")
    if cfg.sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {list(SAMPLERS)}, got {cfg.sampler!r}")
    if cfg.guidance < 1:
        raise ValueError(f"--guidance must be >= 1 (1 = none), got {cfg.guidance}")
    run = Run(cfg, name="prior")
    clip = load_clip(cfg.clip).to(run.device).eval().requires_grad_(False)
    tokenizer = get_tokenizer(clip)
    dataset = training_set(cfg)
    held_out = eval_sets(cfg)
    gallery = galleries(cfg, held_out, run.print)
    if not held_out:
        run.print(f"prior: no held-out split to evaluate in {cfg.data} (a test split, or --eval-data HELD_OUT)")
    for split, n in gallery.items():
        if n < cfg.gallery:
            run.print(f"prior: the held-out {split} split has {n} pairs: retrieval ranks among {n} "
                      f"(--gallery {cfg.gallery})")
    cache = build_cache(clip, tokenizer, dataset, run.device)  # every image and distinct caption, once
    table_cond = cache.conditions.to(run.device)  # (U+1, ...); the last row is ""
    embed_dim, num_tokens, width = cache.image_embeds.shape[1], *table_cond.tokens.shape[1:]
    if width != embed_dim:
        raise ValueError(f"diffusers' PriorTransformer reads text token states of the embedding's width: this CLIP's "
                         f"tokens are {width} wide, its embedding {embed_dim}")
    prior = build_prior(embed_dim, num_tokens, cfg.layers, cfg.heads, cfg.head_dim)
    set_clip_stats(prior, cache.image_embeds)  # (resume restores the same values from the checkpoint)
    scheduler = training_scheduler(cfg.num_train_timesteps)
    params = [p for p in prior.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    prior.train()
    prior, opt, sched = run.prepare(prior, opt, sched)
    ema = run.ema(prior)
    run.print(f"prior {sum(p.numel() for p in params) / 1e6:.2f} M parameters, embedding {embed_dim}, "
              f"{num_tokens} tokens, {len(cache)} items, {len(cache.texts)} distinct captions")

    for step, batch in run.loop(run.dataloader(cache)):
        with torch.no_grad():
            ids = drop_conditions(batch["text_id"], cfg.cond_dropout, len(table_cond) - 1, run.generator)  # (B,)
            cond = table_cond[ids.to(run.device)]  # pooled (B, D), tokens (B, T, D), mask (B, T)
            x0 = to_prior_space(run.unwrap(prior), batch["image_embed"])  # (B, D)
        with run.accumulate(prior):
            loss = prior_loss(prior, scheduler, x0, cond, run.generator).mean()
            run.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        run.log(loss=loss)

    final = (ema.model if ema is not None else run.unwrap(prior)).eval()
    if run.is_main:
        save_prior(run.out, final, scheduler, {"clip": reference(cfg.clip), "sampler": cfg.sampler,
                                               "num_inference_steps": cfg.sample_steps,
                                               "guidance_scale": cfg.guidance})
        write_record(run.out, cfg.data, dataset, clip=cfg.clip)  # the prompts' words: unCLIP models copy it
        results = evaluate(cfg, held_out, gallery, final, scheduler, clip, tokenizer, run.device)
        if results:
            (run.out / "prior_metrics.json").write_text(json.dumps(
                {"clip": reference(cfg.clip), "sampler": cfg.sampler, "num_inference_steps": cfg.sample_steps,
                 "guidance_scale": cfg.guidance, "target": "each caption's own scene image", "splits": results},
                indent=2) + "\n")
            (run.out / "prior_metrics.md").write_text(table(results) + "\n")
            run.print(table(results))
        run.print(f"saved the prior to {run.out} (prior/, scheduler/, t2i_prior.json)")
    run.finish()
    if run.is_main:
        write_model_card(run.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
