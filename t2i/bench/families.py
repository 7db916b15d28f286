"""The families the benchmark compares, and how a training budget becomes a number of steps.

A ``Family`` is a recipe: which ``t2i train`` command trains it (a module name; the bench
command imports it, the library never does), the options it always gets, its default
learning rate (the centre of the tuning grid), its batch and how it is conditioned. The
sizes are the bench's: small enough that three seeds of every family train within the
default budget on 2 CPU cores (``--tgan-options`` and friends on the command line change
them). Every family's own EMA setting is kept (the GANs and latent diffusion use one, the
VAE does not).

Budget sweep (``--ladder``): rung ``m`` buys the steps of ``m x`` the base budget (``ladder_steps``),
all taken as checkpoints of one run per seed; the first stage is trained once under
``first_stage_share`` of the top rung's budget (or ``--first-stage-flops``) and charged in full at every rung.

Budget rules (``steps_for_budget``): a FLOP budget ``B`` buys ``floor(B / F_step)``
optimiser steps, with ``F_step`` counted by ``t2i.bench.cost.step_flops_by_difference``;
an image budget ``N`` buys ``floor(N / batch)``. Latent diffusion pays for its first stage
out of the same budget: the first stage (``vae-kl``) gets ``first_stage_share * B`` and is
trained once, then shared by every trial and seed, each of which is charged for it in full.
With ``--ldm-options=--cache`` latent diffusion encodes its train split once before its first
step and its steps run no encoder: that build (``t2i.bench.cost.trainer_cache_flops``) is
charged to every run in full too, out of a single budget, on top of every rung of a ladder.

    python -c "from t2i.bench.families import demo; demo()"
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field

# lr multipliers of the tuning grid, in the order trials use them (trials=2 -> x1, x2)
LR_GRID = (1.0, 2.0, 0.5, 4.0, 0.25)
SHAPES_SAMPLE_PROMPT = "a large red circle in the center"
TEXT_DATA = ("shapes", "digits", "captioned")  # a text family trains on any captions


def data_kind(data: str) -> str:
    """What the bench knows of ``--data``: ``shapes`` or ``digits`` (its evaluators judge them) or ``captioned``
    (any other source ``t2i.data.load_dataset`` reads, judged by an evaluation CLIP)."""
    return data if data in ("shapes", "digits") else "captioned"


@dataclass
class Family:
    """One model family of the comparison (a recipe, not a model)."""

    name: str  # bench name (table rows, folders): tgan, cvae, cvae-label, cgan, ldm
    trainer: str  # module of its `t2i train` command, e.g. "train.tgan"
    title: str  # what it is, for the report
    lr: float  # default learning rate: the first point of the tuning grid
    batch_size: int  # global batch per optimiser step (fixed: part of the recipe)
    conditioning: str  # "text" (prompts) or "label" (class ids)
    options: list[str] = field(default_factory=list)  # trainer options always passed (--key=value)
    text_option: str = ""  # trainer option naming the conditioning text encoder ("" = none)
    model_subdir: str = "model"  # where the run folder keeps the saved generator ("" = the run folder itself)
    first_stage: bool = False  # needs a first-stage autoencoder (latent diffusion)
    diffusion: bool = False  # sampled with sampler / steps / guidance
    datasets: tuple[str, ...] = ("shapes", "digits")  # kinds of data it can train on (``data_kind``)
    bench_trains: bool = True  # False: the bench only evaluates a given model of it (``--load NAME=PATH``)

    def lrs(self, trials: int) -> list[float]:
        """The learning rates of ``trials`` tuning trials (the same count for every family)."""
        if not 1 <= trials <= len(LR_GRID):
            raise ValueError(f"trials must be in [1, {len(LR_GRID)}], got {trials!r}")
        return [self.lr * m for m in LR_GRID[:trials]]


FAMILIES: dict[str, Family] = {
    "tgan": Family("tgan", "train.tgan", "text-conditional GAN (GAN-CLS, DCGAN nets, pooled CLIP text)", lr=2e-4,
                   batch_size=64, conditioning="text", options=["--g-base=16", "--d-base=16"], text_option="--clip",
                   datasets=TEXT_DATA),
    "cvae": Family("cvae", "train.cvae", "conditional VAE on the pooled CLIP text embedding (conv)", lr=1e-3,
                   batch_size=128, conditioning="text", options=["--conditioning=text", "--arch=conv",
                                                                 "--widths=16,32,64"],
                   text_option="--text-encoder", datasets=TEXT_DATA),
    "cvae-label": Family("cvae-label", "train.cvae", "conditional VAE on the class label (conv)", lr=1e-3,
                         batch_size=128, conditioning="label",
                         options=["--conditioning=label", "--arch=conv", "--widths=16,32,64"]),
    "cgan": Family("cgan", "train.cgan", "class-conditional GAN (Mirza & Osindero 2014, DCGAN nets)", lr=2e-4,
                   batch_size=64, conditioning="label", options=["--g-base=16", "--d-base=16"]),
    "ldm": Family("ldm", "train.ldm", "latent diffusion: AutoencoderKL + cross-attention UNet on CLIP tokens", lr=2e-4,
                  batch_size=64, conditioning="text", text_option="--clip", model_subdir="", first_stage=True,
                  diffusion=True, datasets=TEXT_DATA,
                  options=["--unet=test", "--ema-decay=0.999", "--sample-steps=2",
                           f"--sample-prompts={SHAPES_SAMPLE_PROMPT}"]),
    # two stages (prior, then decoder) with no budget split of their own yet: evaluated, not trained, by the bench
    "unclip": Family("unclip", "train.unclip", "unCLIP (DALL-E 2 style): a prior to the CLIP image embedding, then an "
                     "image-embedding decoder (given with --load only)", lr=1e-4, batch_size=32, conditioning="text",
                     model_subdir="", datasets=TEXT_DATA, bench_trains=False),
}
# the first stage of "ldm": trained once per bench under first_stage_share of the budget
FIRST_STAGE = Family("vae-kl", "train.vae_kl", "diffusers AutoencoderKL first stage (factor 4)", lr=4e-4,
                     batch_size=64, conditioning="none", options=["--arch=f4-test", "--ema-decay=0.999"],
                     model_subdir="vae")
DEFAULT_FAMILIES = {"shapes": ("tgan", "cvae", "ldm"), "digits": ("cgan", "cvae-label", "ldm"),
                    "captioned": ("tgan", "cvae", "ldm")}


def parse_families(text: str, data: str, given: tuple[str, ...] = (), classes: bool = False) -> list[Family]:
    """``"tgan,cvae,ldm"`` -> families; "" = the data's default set. Unknown names, families that cannot
    train on the data (label-only ones on captioned data without classes; ``classes``: its items have them, from
    class folders, a label column or a ``ClassLabel``), and families the bench does not train that are not among
    ``given`` (the ``--load`` names) are errors."""
    kind = data_kind(data)
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(DEFAULT_FAMILIES[kind])
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {sorted(FAMILIES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"each family once, got {names}")

    def fits(family: Family) -> bool:
        return kind in family.datasets or (classes and family.conditioning == "label")

    refused = [n for n in names if not fits(FAMILIES[n])]
    if refused:
        fit = [n for n, f in FAMILIES.items() if fits(f)]
        raise ValueError(f"--families {','.join(refused)} cannot train on {kind} data {data!r} (they need class "
                         f"labels: class folders, a label column or a ClassLabel); the families that apply: "
                         f"{','.join(fit)}")
    untrained = [n for n in names if not FAMILIES[n].bench_trains and n not in given]
    if untrained:
        raise ValueError(f"the bench evaluates {','.join(untrained)} but does not train it: give the model with "
                         + " ".join(f"--load {n}=PATH" for n in untrained) + " (a trained folder or a built-in name, "
                         "e.g. shapes-unclip)")
    return [FAMILIES[n] for n in names]


def with_options(family: Family, extra: str) -> Family:
    """A copy of ``family`` with extra trainer options (``"--g-base=32 --d-base=32"``) appended (later wins)."""
    words = shlex.split(extra)
    bad = [w for w in words if not w.startswith("--")]
    if bad:
        raise ValueError(f"family options must be --key=value trainer flags, got {bad} in {extra!r}")
    copy = Family(**{**family.__dict__, "options": list(family.options) + words})
    for w in words:  # the batch is part of the budget arithmetic: keep it in one place
        if w.startswith(("--batch-size=", "--batch_size=")):
            copy.batch_size = int(float(w.split("=", 1)[1]))
    return copy


def steps_for_budget(budget_flops: float = 0.0, budget_images: int = 0, step_flops: int = 0,
                     batch_size: int = 1) -> int:
    """Optimiser steps bought by a FLOP budget (given the FLOPs of one step) or an image budget."""
    if (budget_flops > 0) == (budget_images > 0):
        raise ValueError("give exactly one budget: budget_flops > 0 or budget_images > 0")
    if budget_flops > 0:
        if step_flops <= 0:
            raise ValueError(f"a FLOP budget needs the FLOPs of one step (> 0), got {step_flops!r}")
        return max(1, math.floor(budget_flops / step_flops))
    return max(1, budget_images // batch_size)


def stage_steps(total: int, fractions: list[float]) -> list[int]:
    """Steps at which the quality-vs-budget curve is measured, e.g. 0.25, 0.5, 1 of ``total`` (increasing)."""
    if not fractions or any(not 0 < f <= 1 for f in fractions) or sorted(fractions) != list(fractions):
        raise ValueError(f"budget fractions must increase within (0, 1], got {fractions}")
    points = sorted({max(1, round(total * f)) for f in fractions} | {total})
    return points


def ladder_steps(steps: list[int], multiples: list[float]) -> list[int]:
    """The steps of a budget ladder's rungs (one run checkpointed at each); refuses rungs too close to differ."""
    same = [(a, b) for (a, b), (s, t) in zip(zip(multiples, multiples[1:]), zip(steps, steps[1:])) if t <= s]
    if same:
        raise ValueError(f"ladder rungs {same[0][0]:g} and {same[0][1]:g} buy the same number of steps ({steps}); "
                         "raise the base budget or space the rungs further apart")
    return list(steps)


def demo() -> None:
    for fam in parse_families("", "shapes"):
        steps = steps_for_budget(budget_flops=2e12, step_flops=3e9, batch_size=fam.batch_size)
        print(f"{fam.name:<6} lrs {fam.lrs(2)} steps {steps} stages {stage_steps(steps, [0.25, 0.5, 1.0])}")
