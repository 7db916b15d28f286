"""``t2i bench`` settings: the config dataclass, the quick and full defaults, and the checks that keep it fair.

A field left at its default ("0 = ..." in its comment) takes the value of the mode, ``QUICK``
or ``FULL``; ``resolve`` fills them in and raises ``ValueError`` on an unfair or impossible
setting (the command turns it into its one-line error). Nothing here reads ``sys.argv``.

    python -c "from t2i.bench.config import BenchConfig, resolve; print(resolve(BenchConfig(quick=True)).seeds)"
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from t2i.bench.families import FAMILIES, FIRST_STAGE, data_kind
from t2i.bench.sweep import parse_ladder, parse_ladder_tops
from t2i.diffusion.options import SAMPLERS, SOLVERS

QUICK = dict(budget_flops=3e10, seeds=1, n=1000, eval_prompts=12, novel_prompts=4, reference_images=200, curve_prompts=8,
             budget_fractions="1", sampler_steps="2,4", guidance="1,3", sample_steps=4)
FULL = dict(budget_flops=6e12, seeds=3, n=0, eval_prompts=96, novel_prompts=32, reference_images=1000, curve_prompts=48,
            budget_fractions="0.25,0.5,1", sampler_steps="5,10,20,40", guidance="1,2,3,5,7.5", sample_steps=20)
GUIDANCE_AT = ("top", "stage")  # values of --guidance-at
OPTION_FIELDS = {"tgan": "tgan_options", "cvae": "cvae_options", "cvae-label": "cvae_options", "cgan": "cgan_options",
                 "ldm": "ldm_options", "vae-kl": "vae_kl_options"}


@dataclass
class BenchConfig:
    data: str = "shapes"  # shapes | digits (judged by the project's evaluators) | any captioned source with a held-out split (a folder with train/ and test/, a DatasetDict, ...; judged by an evaluation CLIP, as `t2i eval`)
    size: int = 32  # image side in pixels
    resize: str = "center-crop"  # captioned data: how every run reads its images to square, and the held-out reals (center-crop | random-crop | pad | stretch; reals never crop at random)
    background: str = "black"  # captioned data: the colour under transparent pixels, for every run and the reals (black | white)
    image_column: str = ""  # captioned data: its image column, for every run and the reals ("" = the source's default, as in `t2i train`)
    caption_column: str = ""  # captioned data: its caption column ("" = the source's default)
    held_out: str = ""  # captioned data: the held-out items from a source of their own, read as `t2i eval --prompts` reads it (a CSV or flat folder whole), in place of --data's test split; e.g. --data train.csv --held-out test.csv
    quick: bool = False  # CI smoke run: tiny budget, 1 seed allowed, few prompts (its numbers mean little)
    out: str = ""  # report folder (report.md, results.json, plots); "" = runs/bench/<data's name>
    work: str = ""  # trained models, CLIPs and FLOP counts (large: keep it out of git); "" = runs/bench-work/<data's name>
    budget_flops: float = 0.0  # training FLOPs per family run (0 = 6e12, quick 3e10, unless --budget-images)
    budget_images: int = 0  # or: training images seen per family run (0 = use --budget-flops)
    seeds: int = 0  # training seeds per family, at least 3 (0 = 3; quick: 1)
    trials: int = 1  # tuning trials per family: learning rates x1, x2, x0.5, x4, x0.25 of the family default
    families: str = ""  # comma list of tgan, cvae, cvae-label, cgan, ldm, unclip (--load only) ("" = shapes and captioned data: tgan,cvae,ldm; digits: cgan,cvae-label,ldm)
    load: str = ""  # evaluate saved models instead of training: FAMILY=PATH,... (vae-kl=PATH: a given first stage)
    reuse: bool = False  # pick up models, CLIPs, FLOP counts and scores left in --work with the same settings (--ladder: always)
    n: int = -1  # training items (0 = the whole train split; -1 = mode default: all, quick 1000)
    clip: str = ""  # conditioning text encoder of the text families; "" = shapes/digits: shapes-clip (trained into --work if the built-in is absent), captioned data: one trained on its train split (t2i-tiny, seed 0) into --work
    score_clip: str = ""  # CLIP of the CLIP score (captioned data: the evaluation CLIP of every measure, trained on the train split only); "" = train one (t2i-tiny, seed 1) on the train split into --work
    evaluator: str = ""  # shapes evaluator or digits classifier folder; "" = the built-in one (captioned data: none, see --score-clip)
    eval_prompts: int = 0  # held-out test-split conditions (0 = 96, quick 12; digits: rounded up to whole classes; captioned data: items of its held-out split)
    novel_prompts: int = -1  # held-out novel-composition prompts (shapes; -1 = 32, quick 4)
    images_per_prompt: int = 2  # images per condition (>= 2 for within-prompt diversity)
    reference_images: int = 0  # real reference images of FID/KID/precision/recall (0 = 1000, quick 200; digits: the test split; captioned data: the held-out items read, first N, as t2i eval --real-n)
    eval_seed: int = 1234  # seed of the held-out prompts and of sampling (validation and real sets use the next ones)
    budget_fractions: str = ""  # budget points of the quality-vs-budget curve ("" = 0.25,0.5,1; quick: 1)
    ladder: str = ""  # budget sweep: rungs x the base budget, e.g. 1,2,4,...,64: one run per seed scored at each ("" = off)
    ladder_top: str = ""  # FAMILY=RUNG,...: end a family's ladder at that rung, e.g. cgan=128 for one whose last doubling was a plateau (it trains no further; crossovers hold it at its top rung's values beyond, on the metrics where it is flat)
    bootstrap: int = 1000  # bootstrap resamples of the seeds for the crossover interval (--ladder)
    first_stage_share: float = 0.25  # share of latent diffusion's budget spent on its first stage (vae-kl)
    first_stage_flops: float = 0.0  # the first stage's budget in FLOPs (0 = first_stage_share x the top rung's budget); an earlier sweep's value keeps its latent diffusion runs when rungs are added on top
    samplers: str = ",".join(SOLVERS)  # samplers of the quality-vs-steps curve (names of t2i.diffusion.options.SAMPLERS)
    sampler_steps: str = ""  # sampling steps of that curve ("" = 5,10,20,40; quick: 2,4)
    guidance: str = ""  # guidance scales of the sweep ("" = 1,2,3,5,7.5; quick: 1,3)
    guidance_at: str = "stage"  # where diffusion's guidance scale is chosen (best of the sweep on the validation prompts, seed 0's model): "stage" = on every stage's own model, so a rung's score does not depend on the rungs above it; "top" = on the last stage, used at every stage (how every report committed before 2026-12-05 was scored: add it to re-make one)
    sampler: str = "dpm-solver++"  # diffusion sampler of the evaluation and of the guidance sweep
    sample_steps: int = 0  # diffusion steps (num_inference_steps) of the evaluation and of the sweep (0 = 20; quick: 4)
    curve_prompts: int = 0  # validation conditions of trials, sweep and curves (0 = 48, quick 8; captioned data: other held-out items)
    tgan_options: str = ""  # extra `t2i train tgan` flags, e.g. "--g-base=32 --d-base=32"
    cvae_options: str = ""  # extra `t2i train cvae` flags (cvae and cvae-label)
    cgan_options: str = ""  # extra `t2i train cgan` flags
    ldm_options: str = ""  # extra `t2i train ldm` flags, e.g. "--unet=tiny"
    vae_kl_options: str = ""  # extra `t2i train vae-kl` flags of the first stage, e.g. "--arch=f4-tiny"
    cpu: bool = False  # train and sample on the CPU even when a GPU is present
    workers: int = 1  # training processes: runs of every family and seed train side by side, each worker on this process's torch threads / workers (at least 1); 1 = in this process
    segment_minutes: float = 30.0  # a stage expected to take longer (CPU-minutes at its run's recorded rate) is trained in segments of about this length, each ending with a checkpoint, so a killed bench loses at most one (0 = whole stages)


def resolve(cfg: BenchConfig) -> BenchConfig:
    """Fill in the mode's values (quick or full) for fields left at their defaults; refuse what would make
    the comparison unfair (a ValueError that names the option and what is allowed)."""
    captioned = data_kind(cfg.data) == "captioned"
    if captioned:
        from t2i.bench.captioned import check_source  # reads the source's layout
        from t2i.data.transforms import Augment

        check_source(cfg.data, cfg.held_out)
        Augment(cfg.resize, background=cfg.background)  # ValueError naming the allowed values
        if cfg.evaluator:
            raise ValueError("--evaluator judges shapes or digits; captioned data is judged by the evaluation CLIP "
                             "(--score-clip): drop --evaluator")
    elif (cfg.resize, cfg.background) != ("center-crop", "black"):
        raise ValueError(f"--resize and --background read user images; {cfg.data} is drawn square on black "
                         "(drop them)")
    elif cfg.image_column or cfg.caption_column or cfg.held_out:
        raise ValueError(f"--image-column, --caption-column and --held-out name user data; {cfg.data} has its own "
                         "test split and no columns (drop them)")
    if cfg.budget_flops > 0 and cfg.budget_images > 0:
        raise ValueError("give one budget, --budget-flops or --budget-images, not both")
    defaults, changes = BenchConfig(), {}
    if cfg.ladder:
        parse_ladder(cfg.ladder)
        if cfg.budget_fractions:
            raise ValueError("give --ladder (checkpoints of one run) or --budget-fractions (of one budget), not both")
        if cfg.bootstrap < 1:
            raise ValueError(f"--bootstrap must be >= 1, got {cfg.bootstrap}")
        parse_ladder_tops(cfg.ladder_top, parse_ladder(cfg.ladder))
    elif cfg.ladder_top:
        raise ValueError("--ladder-top ends a family's budget ladder early: give --ladder too, or drop --ladder-top")
    for key, value in (QUICK if cfg.quick else FULL).items():
        if key == "budget_flops" and cfg.budget_images > 0:
            continue
        if getattr(cfg, key) == getattr(defaults, key):
            changes[key] = value
    if cfg.data != "shapes":
        changes["novel_prompts"] = 0
    if not cfg.clip and not captioned:
        changes["clip"] = "shapes-clip"
    name = Path(cfg.data).name or cfg.data  # a captioned source's folder name, e.g. runs/bench/mydata
    changes.update(out=cfg.out or f"runs/bench/{name}", work=cfg.work or f"runs/bench-work/{name}")
    cfg = replace(cfg, **changes)
    if cfg.seeds < 3 and not cfg.quick:
        raise ValueError(f"--seeds must be at least 3 (got {cfg.seeds}); fewer are allowed only with --quick")
    if cfg.segment_minutes < 0:
        raise ValueError(f"--segment-minutes takes CPU-minutes per segment, or 0 for whole stages; "
                         f"got {cfg.segment_minutes}")
    if cfg.workers < 1:
        raise ValueError(f"--workers takes the number of training processes, at least 1; got {cfg.workers}")
    if cfg.seeds < 1 or cfg.images_per_prompt < 1 or not 0 <= cfg.first_stage_share < 1:
        raise ValueError("--seeds and --images-per-prompt must be >= 1, --first-stage-share in [0, 1)")
    if cfg.first_stage_flops < 0 or (cfg.first_stage_flops > 0 and cfg.budget_images > 0):
        raise ValueError("--first-stage-flops takes a FLOP count >= 0 (0 = --first-stage-share of the top rung) and a "
                         "--budget-flops budget, not --budget-images")
    if cfg.guidance_at not in GUIDANCE_AT:
        raise ValueError(f"--guidance-at takes one of {list(GUIDANCE_AT)}, got {cfg.guidance_at!r}")
    unknown = [s for s in cfg.samplers.split(",") if s and s not in SAMPLERS] + (
        [cfg.sampler] if cfg.sampler not in SAMPLERS else [])
    if unknown:
        raise ValueError(f"samplers must be among {list(SAMPLERS)}, got {unknown}")
    return cfg


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_loads(text: str) -> dict[str, str]:
    """``"tgan=PATH,ldm=PATH"`` -> {family: path}; a family of ``t2i.bench.families.FAMILIES`` or ``vae-kl``."""
    names = sorted([*FAMILIES, FIRST_STAGE.name])
    loads = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ValueError(f"--load takes FAMILY=PATH items, got {item!r}")
        name, path = item.split("=", 1)
        if name not in names:
            raise ValueError(f"--load family must be one of {names}, got {name!r}")
        loads[name] = path
    return loads
