"""Benchmark GANs, VAEs and latent diffusion under one training budget, with cost beside quality (t2i bench).

For one dataset (``shapes`` 32 px by default, ``digits``, or any captioned data, below) every family
is trained by its own ``t2i train`` command under the same budget, counted in training FLOPs
(``FlopCounterMode`` on one real step, times the steps) or in images seen, never in seconds;
each family gets the same number of tuning trials (learning rates x1, x2, x0.5, ... on
seed 0, the best on the validation prompts kept) and ``--seeds`` seeds, with its EMA
weights where it uses them. Every model then answers the same held-out prompts with the
same seeds and sample count, scored by the same judges (``t2i.bench.scoring``) next to the
real-vs-real floor, with a scoring CLIP that no generator was conditioned on. Diffusion
also gets a guidance sweep (on the validation prompts; the best scale is used for its
evaluation) and a quality-vs-steps curve per sampler. Cost: parameters, training FLOPs
and images/s, sampling ms, images/s and GFLOP per image. Training runs in stages that
resume exactly, so the quality-vs-budget curve costs no extra training.

Budget sweep (``--ladder 1,2,4,8,16,32,64``): the rungs are multiples of the base budget; each
family and seed is ONE run checkpointed at every rung (anytime evaluation: the trainers' learning
rates are constant, or constant after a fixed warm-up, so no schedule depends on the final
budget) and scored there. The report then states where diffusion overtakes each other family
on every headline metric, in FLOPs and CPU-hours with a bootstrap interval over seeds, the
sampling-cost Pareto front (families and diffusion's sampler x steps points, GFLOP and ms per
image) and total cost for 1e3..1e7 images (``t2i.bench.sweep``); diversity is ranked there on its gap to the
real images' own ratio, since a model that ignores its prompt has the highest raw ratio. A sweep is resumable: every
scored rung is stored atomically in ``--work``/results (``t2i.bench.store``) and trained stages
are kept, so a killed sweep run again with the same command redoes nothing it finished (a long stage is trained in
segments of about ``--segment-minutes`` that each end with a checkpoint: a kill loses one at most), and the same command
with rungs added on top trains each run on from its last rung (a run on another first stage starts over).
Sampling times are stored too (per model digest, request and machine), so a report re-made from stored work
prints the ms per image and total costs of the invocation that timed them, not of the load at re-making.
Diffusion's guidance scale is chosen at every rung (``--guidance-at stage``, the default): the guidance sweep runs
on seed 0's model there and the rung is scored at its own best, as it would be at the top of a shorter ladder, so
adding a rung changes no score below it (one more sweep per rung, on the validation prompts). ``--guidance-at top``
chooses once, on the top rung, for every rung: how the reports committed before 2026-12-05 were scored.
``--ladder-top cgan=128`` ends one family's ladder at a rung: a family whose last doubling was a plateau need not
train on while the others climb; crossovers hold it at its top rung's values beyond, on the metrics where it is flat.
``--workers N`` trains every run (family x seed; with tuning trials, the other seeds after the selection) side by
side in N worker processes (``t2i.bench.workers``) before anything is evaluated or timed, each on this process's
torch threads / N: the same runs, the same scores as one process on those threads.

Any captioned data (``--data mydata``, any source ``t2i.data.load_dataset`` reads with a held-out split: a
folder with ``train/`` and ``test/`` holding ``metadata.jsonl``, a ``datasets`` DatasetDict, ...): the text
families (tgan, cvae, ldm; the label-only ones are refused) train on its train split exactly as above, and
are judged as ``t2i eval`` judges captioned data (``t2i.bench.captioned``): R-precision (the headline), CLIP
score, CLIP FID/KID beside the real held-out images' figures, and diversity, all by an evaluation CLIP
trained here on the train split only (``--score-clip`` gives one); the held-out items come from the split
``t2i eval`` reads; the conditioning CLIP is trained on the train split too unless ``--clip`` names one.
``--resize`` and ``--background`` (as in ``t2i train``: images far from square, drawings on transparency)
reach every run and the held-out reals alike.

Output (``--out``): ``report.md``, ``results.json``, ``quality_vs_budget.png``,
``quality_vs_steps.png``, ``guidance.png``, ``cost_vs_quality.png``, ``grid.png`` (a sweep adds
``pareto.png`` and ``total_cost.png``). Trained
models, CLIPs and FLOP counts go to ``--work`` (``--reuse`` picks them up again).

    t2i bench --quick --out /tmp/bench-quick                     # CI smoke run, under 3 minutes on 2 cores
    t2i bench --data shapes --out benchmarks/shapes-equal-budget # the full default run, under an hour
    t2i bench --families tgan,ldm --budget-flops 2e13 --trials 2 --reuse
    t2i bench --quick --families cvae --ladder 1,2 --seeds 2 --budget-flops 1e10 --out /tmp/sweep  # a tiny sweep
    t2i bench --data mydata --quick --out /tmp/bench-mydata      # mydata/train, mydata/test: your captioned images
"""

from __future__ import annotations

import importlib
import json
import shlex
import shutil
import signal
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from gan_baselines.registry import load_generator
from t2i.bench import plots
from t2i.bench.captioned import CaptionedScorer, captioned_sets, check_train_split, training_source
from t2i.bench.config import OPTION_FIELDS, BenchConfig, floats, parse_loads, resolve
from t2i.bench.cost import (count_parameters, cpu_seconds_per_step, cpu_seconds_to, logged_step, partial_stage,
                            record_partial_stage, record_stage_time, sampling_cost, trainer_cache_flops,
                            trainer_step_flops, training_images_per_s)
from t2i.bench.evaluate import diffusion_options, evaluate_stages, guidance_sweep, sample_and_score, sampler_curves, select
from t2i.bench.families import (FIRST_STAGE, Family, data_kind, ladder_steps, parse_families, stage_steps,
                                 steps_for_budget, with_options)
from t2i.bench.report import machine, summarize, write_report, write_results
from t2i.bench.scoring import HEADLINE, BenchSets, Scorer, bench_sets, measures, real_row
from t2i.bench.store import ResultStore, continued_plan, folder_digest, log_invocation
from t2i.bench.sweep import add_diversity_gap, parse_ladder, parse_ladder_tops, sweep_summary
from t2i.bench.workers import Job, JobFailed, run_side_by_side, worker_threads
from t2i.builtin import resolve as resolve_builtin
from t2i.config import config_to_dict, parse_config
from t2i.io import atomic_write

# the scoring CLIP (and the conditioning one when the built-in is absent or the data is captioned): t2i-tiny,
# short recipes
CLIP_BATCH = {True: 32, False: 64}  # quick, full
CLIP_RECIPE = {True: ["--steps=10", f"--batch-size={CLIP_BATCH[True]}", "--n=256", "--warmup=2"],
               False: ["--steps=300", f"--batch-size={CLIP_BATCH[False]}", "--warmup=30"]}
EVALUATOR_QUICK = ["--silhouette-objects=400", "--silhouette-steps=20", "--scene-images=400", "--scene-steps=20",
                   "--digits-steps=20", "--eval-n=50"]
PIPELINE_PARTS = ("model_index.json", "t2i_sampling.json", "vae", "text_encoder", "tokenizer", "unet", "scheduler")
GRID_PROMPTS = 8


def snapshot(folder: Path, fam: Family, dest: Path) -> None:
    """Copy a run folder's saved generator (``model/``, or latent diffusion's pipeline parts) to ``dest``."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if fam.model_subdir:
        shutil.copytree(folder / fam.model_subdir, tmp)
    else:
        tmp.mkdir(parents=True)
        for part in PIPELINE_PARTS:
            if (folder / part).is_dir():
                shutil.copytree(folder / part, tmp / part)
            elif (folder / part).is_file():
                shutil.copy2(folder / part, tmp / part)
    tmp.rename(dest)


def stage_dir(folder: Path, steps: int) -> Path:
    """Where a run folder keeps its model's copy after the stage that ended at ``steps``."""
    return folder / f"stage-{steps:06d}"


def segment_ends(start: int, stage: int, every: int) -> list[int]:
    """Where a stage trained from step ``start`` to ``stage`` stops for a checkpoint: every ``every`` steps
    (0 = nowhere), then at its end."""
    return (list(range(start + every, stage, every)) if every > 0 else []) + [stage]


def train_stages(fam: Family, folder: Path, argv: list[str], stages: list[int], lr: float, seed: int,
                 segment_s: float = 0.0) -> None:
    """Train one run folder to each of ``stages`` in turn with its family's trainer (each stage resuming the last
    exactly), keeping a copy of the model and the stage's process CPU and wall seconds after each; stages already
    copied are skipped. Runs in the bench's process or in a worker (``--workers``).

    A stage expected to take longer than ``segment_s`` CPU seconds (at the run's recorded rate; a first stage has
    none) is trained in segments of about that length, each a trainer call that ends with a checkpoint, so a
    killed bench loses at most one segment: the rerun resumes the stage from its last checkpoint and carries
    the finished segments' seconds (``record_partial_stage``). Segments change nothing in the run (resumes are
    exact), so they are not part of its plan or fingerprint."""
    main = importlib.import_module(fam.trainer).main
    for i, steps in enumerate(stages):
        snap = stage_dir(folder, steps)
        if snap.exists():
            continue
        print(f"bench: training {fam.name} (lr {lr:g}, seed {seed}) to step {steps}", flush=True)
        start = stages[i - 1] if i else 0
        carried = partial_stage(folder, steps) or {"step": start, "cpu_s": 0.0, "wall_s": 0.0}
        rate = cpu_seconds_per_step(folder, stages[:i]) if i else None
        every = max(1, int(segment_s / rate)) if segment_s > 0 and rate else 0
        cpu_s, wall_s = carried["cpu_s"], carried["wall_s"]
        if carried["step"] > start:
            print(f"bench: resuming it from its checkpoint at step {carried['step']} "
                  f"({cpu_s / 60:.1f} CPU-min of it done)", flush=True)
        for end in segment_ends(carried["step"], steps, every):
            cpu, wall = time.process_time(), time.perf_counter()
            main(argv + [f"--steps={end}", "--resume=latest"])
            cpu_s, wall_s = cpu_s + time.process_time() - cpu, wall_s + time.perf_counter() - wall
            if end < steps:
                record_partial_stage(folder, steps, end, cpu_s, wall_s)
        record_stage_time(folder, steps, cpu_s, wall_s)
        snapshot(folder, fam, snap)


def trained_to(folder: Path, stages: list[int], done: list[int]) -> int:
    """The step a run folder has trained to: its last finished stage, or the last segment of the next one."""
    carried = partial_stage(folder, stages[len(done)]) if len(done) < len(stages) else None
    return carried["step"] if carried else max(done, default=0)


def run_progress(folder: Path, start: int, end: int) -> float:
    """The share (0..1) of a run's training from step ``start`` to ``end`` done, from its logged steps (the bench's
    progress bar while workers train)."""
    step = logged_step(folder / "metrics.jsonl")
    return 0.0 if step is None or end <= start else min(max((step - start) / (end - start), 0.0), 1.0)


def expected_costs(flops_left: list[float], seconds_left: list[float | None]) -> list[float]:
    """What each run left to train is expected to cost, for the workers' costliest-first order: CPU seconds at its
    recorded rate when every run has one (a sweep extended to a new rung: FLOPs are equal across families there, but
    their seconds are not), else training FLOPs (a first invocation has no rates)."""
    if seconds_left and all(s is not None for s in seconds_left):
        return [float(s) for s in seconds_left]
    return list(flops_left)


def uses_cache(options: list[str]) -> bool:
    """Whether trainer options turn on ``--cache`` (``--cache``, ``--cache=true`` or ``--cache true``)."""
    return any(a == "--cache" and (i + 1 == len(options) or options[i + 1].lower() != "false")
               or a.lower() == "--cache=true" for i, a in enumerate(options))


# appended to the first stage's argv when its step is counted: a cheaper end of run (the same in both counted runs)
FIRST_STAGE_COUNT_TAIL = ["--scale-images=64", "--eval-images=16"]


# how every run and the held-out reals read captioned data: option -> its default (left out of the argv at it)
READING = {"resize": "center-crop", "background": "black", "image_column": "", "caption_column": ""}


def reading_argv(cfg: Any) -> list[str]:
    """``--resize`` / ``--background`` / ``--image-column`` / ``--caption-column`` of every run on captioned data,
    left out at their defaults (so the argv, and the work of a bench made before they existed, stay what they were)."""
    return [f"--{key.replace('_', '-')}={getattr(cfg, key)}" for key, default in READING.items()
            if getattr(cfg, key, default) != default]


def train_split_has_classes(cfg: Any) -> bool:
    """Whether captioned data's training items have classes (class folders, a label column, a ``ClassLabel``), so
    the class-conditional families (cgan, cvae-label) train on it beside the text ones; read from its first items."""
    from t2i.data import load_dataset

    first = load_dataset(cfg.data, split="train", size=cfg.size, n=64, **{key: getattr(cfg, key) for key in READING})
    return getattr(first, "num_classes", 0) > 0


def trainer_argv(cfg: Any, fam: Family, lr: float, seed: int, clip: str | Path | None,
                 first_stage: str | Path | None) -> list[str]:
    """The ``t2i train`` argv of one bench run: ``cfg`` (a BenchConfig, or anything with its data, size, n and cpu),
    the family's recipe, and the conditioning CLIP and first stage it is given."""
    argv = [f"--data={cfg.data}", f"--size={cfg.size}", f"--batch-size={fam.batch_size}", f"--lr={lr:g}",
            f"--seed={seed}", "--checkpoint-every=0", "--checkpoints-keep=1", "--sample-every=0", "--log-every=10",
            *reading_argv(cfg)]
    if cfg.n > 0:
        argv.append(f"--n={cfg.n}")
    if cfg.cpu:
        argv.append("--cpu=true")
    if fam.text_option:
        argv.append(f"{fam.text_option}={clip}")
    if fam.first_stage:
        argv.append(f"--vae={first_stage}")
    return argv + fam.options


class Bench:
    """One benchmark run: the judges and eval sets, then per family: count, train, evaluate."""

    def __init__(self, cfg: BenchConfig, argv: list[str], loads: dict[str, str]):
        self.cfg, self.argv = cfg, argv
        self.out, self.work = Path(cfg.out), Path(cfg.work)
        self.device = "cuda" if torch.cuda.is_available() and not cfg.cpu else "cpu"
        self.loads = loads
        self.kind, self.judged = data_kind(cfg.data), measures(cfg.data)
        classes = self.kind == "captioned" and train_split_has_classes(cfg)
        self.families = [self.with_extra(f) for f in parse_families(cfg.families, cfg.data, tuple(loads), classes)]
        self.metric = self.judged.metric
        self.budget_kind = "images" if cfg.budget_images > 0 else "flops"
        self.budget = float(cfg.budget_images if self.budget_kind == "images" else cfg.budget_flops)
        self.notes: list[str] = []
        self.counted_keys: set[str] = set()  # FLOP counts made by this invocation: reused even without --reuse
        self.first_stage: str = ""
        self.first_stage_info: dict[str, Any] = {}
        self.plans: dict[str, dict[str, Any]] = {}  # family name -> ``plan``
        self.prepared: set[Path] = set()  # run folders this invocation has prepared (``prepare_run``)
        self.timed_before: dict[str, dict[str, Any]] = {}  # family -> its sampling cost read back from the store
        self.training_seconds = 0.0  # wall seconds this invocation spent training runs (a first stage too; not CLIPs or FLOP counts)
        self.ladder = parse_ladder(cfg.ladder) if cfg.ladder else []
        self.tops = parse_ladder_tops(cfg.ladder_top, self.ladder) if self.ladder else {}
        trained = [f.name for f in self.families if f.name not in loads]
        if set(self.tops) - set(trained):
            raise ValueError(f"--ladder-top names {', '.join(sorted(set(self.tops) - set(trained)))}, which this bench "
                             f"does not train (it trains: {', '.join(trained) or 'none'})")
        self.resume = cfg.reuse or bool(self.ladder)  # a sweep always picks up its own finished work
        self.store = ResultStore(self.work / "results") if self.resume else None
        self.sets = self.make_sets()  # before anything trains: data that cannot fill them is refused now

    def make_sets(self) -> BenchSets:
        """The eval, validation, reference and floor sets; on captioned data, after checking that its train
        split fills one batch of every run."""
        cfg = self.cfg
        if self.kind != "captioned":
            return bench_sets(cfg.data, cfg.eval_prompts, cfg.novel_prompts, cfg.images_per_prompt,
                              cfg.curve_prompts, cfg.reference_images, cfg.eval_seed, cfg.size)
        trained = [f for f in self.families if f.name not in self.loads]
        batches = {f.name: f.batch_size for f in trained}
        if any(f.first_stage for f in trained) and "vae-kl" not in self.loads:
            batches["vae-kl"] = self.with_extra(FIRST_STAGE).batch_size
        if not (cfg.clip and cfg.score_clip):
            batches["clip"] = CLIP_BATCH[cfg.quick]
        by_label = [f.name for f in self.families if f.conditioning == "label"]
        if by_label and cfg.held_out:  # two sources number their classes each on its own
            raise ValueError(f"{', '.join(by_label)} draw the held-out items' classes, numbered as the training "
                             "items' only within one source: give class folders with train/ and test/ in place of "
                             "--held-out, or leave the label families out (--families)")
        reading = {key: getattr(cfg, key) for key in READING}
        check_train_split(cfg.data, cfg.n, cfg.size, batches, **reading)
        sets = captioned_sets(cfg.data, cfg.eval_prompts, cfg.images_per_prompt, cfg.curve_prompts,
                              cfg.reference_images, cfg.eval_seed, cfg.size, held_out_source=cfg.held_out, **reading)
        if by_label and sets.eval.labels is None:
            raise ValueError(f"{', '.join(by_label)} draw the held-out items' classes, and "
                             f"{cfg.held_out or cfg.data}'s held-out items have none: give held-out items in class "
                             "folders (or with a label column), or leave the label families out (--families)")
        return sets

    def with_extra(self, fam: Family) -> Family:
        field = OPTION_FIELDS.get(fam.name)  # families the bench does not train take no trainer options
        return with_options(fam, getattr(self.cfg, field)) if field else fam

    def load(self, path: str | Path) -> Any:
        return load_generator(path, device=self.device)

    # ------------------------------------------------------------------ judges and eval sets
    def train_clip(self, name: str, seed: int) -> str:
        folder = self.work / name
        argv = ["--preset=t2i-tiny", f"--data={self.cfg.data}", f"--size={self.cfg.size}", f"--seed={seed}",
                "--eval-n=0", "--checkpoint-every=0", f"--out={folder}", *reading_argv(self.cfg),
                *CLIP_RECIPE[self.cfg.quick]]
        if self.cfg.cpu:
            argv.append("--cpu=true")
        marker = folder / "bench_argv.json"
        if not (self.resume and marker.is_file() and json.loads(marker.read_text()) == argv
                and (folder / "model").is_dir()):
            shutil.rmtree(folder, ignore_errors=True)
            print(f"bench: training the {name} CLIP (t2i-tiny, seed {seed})", flush=True)
            importlib.import_module("train.clip").main(argv)
            marker.write_text(json.dumps(argv) + "\n")
        return str(folder / "model")

    def conditioning_clip(self) -> str:
        """The text families' CLIP: --clip; captioned data: one trained on its train split (as is shapes-clip's
        stand-in when the built-in is absent)."""
        cfg, recipe = self.cfg, " ".join(CLIP_RECIPE[self.cfg.quick])
        if not cfg.clip:
            self.notes.append(f"the conditioning CLIP was trained here on {training_source(cfg.data)} (t2i-tiny, "
                              f"seed 0, `{recipe}`)")
            return self.train_clip("conditioning-clip", seed=0)
        try:
            resolve_builtin(cfg.clip)
            return cfg.clip
        except FileNotFoundError:
            if cfg.clip != "shapes-clip":
                raise SystemExit(f"t2i bench: --clip {cfg.clip!r} not found (give a CLIP folder or a built-in name)")
        self.notes.append(f"the built-in shapes-clip is absent: the conditioning CLIP was trained here "
                          f"(t2i-tiny, seed 0, `{recipe}`)")
        return self.train_clip("conditioning-clip", seed=0)

    def setup_judges(self) -> None:
        cfg = self.cfg
        self.clip = self.conditioning_clip()
        score = cfg.score_clip or self.train_clip("scoring-clip", seed=1)
        if Path(str(score)).resolve() == Path(str(self.clip)).resolve() or score == self.clip:
            raise SystemExit("t2i bench: --score-clip must not be the conditioning CLIP (the generators would be "
                             "judged by their own text encoder)")
        from t2i.clip.model import get_tokenizer, load_clip

        model = load_clip(score, device=self.device)
        clip = (model, get_tokenizer(model), str(score))
        role = ("evaluation CLIP (R-precision, CLIP score, CLIP FID/KID, diversity)" if self.kind == "captioned"
                else "scoring CLIP (CLIP score only)")
        self.notes.append(f"conditioning CLIP: {self.clip}; {role}: {score}"
                          + ("" if cfg.score_clip else f" (t2i-tiny, seed 1, trained on {training_source(cfg.data)}, "
                                                       f"`{' '.join(CLIP_RECIPE[cfg.quick])}`)"))
        sets = self.sets
        self.eval_set, self.val_set, self.reference, self.floor_set = sets.eval, sets.validation, sets.reference, sets.floor
        self.notes += sets.notes
        if self.kind == "captioned":
            self.scorer = CaptionedScorer(clip, sets.candidates, cfg.eval_seed)
        else:
            self.evaluator = self.load_evaluator()
            self.scorer = Scorer(cfg.data, self.reference.images, self.evaluator, clip)

    def load_evaluator(self) -> Any:
        from t2i.evaluators.digits import DigitsClassifier
        from t2i.evaluators.shapes import ShapesEvaluator

        cls, name = (ShapesEvaluator, "shapes-evaluator") if self.cfg.data == "shapes" else (DigitsClassifier,
                                                                                           "digits-classifier")
        path = self.cfg.evaluator or name
        try:
            return cls.from_pretrained(path)
        except (FileNotFoundError, RuntimeError) as err:  # absent, or stale weights of an older version
            if self.cfg.evaluator:
                raise
            problem = str(err).splitlines()[0]
        folder = self.work / "evaluators"
        if not (self.resume and (folder / name).is_dir()):
            argv = [f"--out={folder}", f"--which={self.cfg.data}"] + (EVALUATOR_QUICK if self.cfg.quick else [])
            importlib.import_module("train.evaluators").main(argv)
        self.notes.append(f"the built-in {name} could not be loaded ({problem}): it was trained here ({folder / name})"
                          + (" with the quick recipe" if self.cfg.quick else ""))
        return cls.from_pretrained(folder / name)

    # ------------------------------------------------------------------ training
    def trainer_argv(self, fam: Family, lr: float, seed: int) -> list[str]:
        return trainer_argv(self.cfg, fam, lr, seed, self.clip, self.first_stage)

    def step_flops(self, fam: Family) -> int:
        """FLOPs of one optimiser step by difference of 1- and 2-step runs (cached in --work per option set)."""
        return self.counted_flops(fam)["step"]

    def cache_flops(self, fam: Family) -> int:
        """FLOPs of encoding the train split once, for a latent diffusion recipe with ``--cache`` (else 0): paid
        once per run, before its first step, and charged in full at every rung as its first stage is."""
        return self.counted_flops(fam).get("once", 0)

    def counted_flops(self, fam: Family) -> dict[str, int]:
        """``{"step": F}``, and ``"once"`` for ``--cache``: counted by ``t2i.bench.cost`` on runs of 1 and 2 steps,
        stored in --work per option set."""
        path = self.work / "step_flops.json"
        store = json.loads(path.read_text()) if path.is_file() else {}
        argv = self.trainer_argv(fam, fam.lr, 0)
        key = fam.name + " " + " ".join(a for a in argv if not a.startswith(("--vae=", "--clip=", "--text-encoder=")))
        if fam.first_stage:  # its per-step cost includes encoding with the first stage
            key += " first stage: " + " ".join(self.first_stage_info.get("options", [self.first_stage]))
        cached = fam.first_stage and uses_cache(fam.options)
        keys = {"step": key, **({"once": key + " (encoding the train split once)"} if cached else {})}
        trusted = set(store) if self.resume else self.counted_keys  # a new bench counts afresh, once
        if not all(k in trusted for k in keys.values()):
            root = self.work / "flop-count" / fam.name
            if cached:
                print(f"bench: counting the FLOPs of one {fam.name} step and of its --cache build (runs of 1 and 2 "
                      "steps, with and without --cache)", flush=True)
                counts = trainer_cache_flops(fam.trainer, argv, root)
            else:
                tail = FIRST_STAGE_COUNT_TAIL if fam.name == "vae-kl" else []
                print(f"bench: counting the FLOPs of one {fam.name} step (runs of 1 and 2 steps)", flush=True)
                counts = {"step": trainer_step_flops(fam.trainer, argv + tail, root)}
            store.update({keys[k]: counts[k] for k in keys})
            self.counted_keys.update(keys.values())
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(store, indent=2) + "\n")
        return {k: int(store[key]) for k, key in keys.items()}

    def steps_for(self, budget: float, fam: Family, step: int) -> int:
        if self.budget_kind == "images":
            return steps_for_budget(budget_images=int(budget), batch_size=fam.batch_size)
        return steps_for_budget(budget_flops=budget, step_flops=step)

    def prepare_run(self, fam: Family, lr: float, seed: int, stages: list[int]) -> tuple[Path, list[str], dict[str, Any]]:
        """One run's folder, trainer argv and inputs; a folder trained for another plan starts over, one whose plan
        this extends (rungs added on top) is kept and goes on."""
        folder = self.work / fam.name / f"lr{lr:g}-seed{seed}"
        argv = self.trainer_argv(fam, lr, seed) + [f"--out={folder}"]
        if uses_cache(argv) and not any(a.startswith("--cache-dir") for a in argv):
            argv.append(f"--cache-dir={folder / 'latent-cache'}")  # built by the first stage, reused by the next
        inputs = self.run_inputs(fam)
        marker, plan = folder / "bench_run.json", {"argv": argv, "stages": stages, **inputs}
        mine = self.resume or folder in self.prepared  # a folder this invocation prepared (for a worker) is its own
        old = json.loads(marker.read_text()) if mine and marker.is_file() else None
        kept = continued_plan(old, plan)
        if kept is None:
            shutil.rmtree(folder, ignore_errors=True)  # a stage past the new plan's first cannot be undone
            folder.mkdir(parents=True)
            marker.write_text(json.dumps(plan) + "\n")
        elif kept != old:  # rungs added on top: the run goes on
            atomic_write(marker, lambda tmp: tmp.write_text(json.dumps(kept) + "\n"))
        self.prepared.add(folder)
        return folder, argv, inputs

    def train(self, fam: Family, lr: float, seed: int, stages: list[int]) -> dict[str, Any]:
        """Train one run in stages (each resuming the last exactly), copying the model after each stage; stages
        trained before (by a worker, or an earlier invocation) are kept."""
        folder, argv, inputs = self.prepare_run(fam, lr, seed, stages)
        start = time.perf_counter()
        train_stages(fam, folder, argv, stages, lr, seed, self.cfg.segment_minutes * 60)
        self.training_seconds += time.perf_counter() - start
        return {"folder": folder, "stages": [(s, stage_dir(folder, s)) for s in stages], "argv": argv,
                "inputs": inputs, "images_per_s": training_images_per_s(folder / "metrics.jsonl", up_to=stages[-1])}

    def train_side_by_side(self, runs: list[tuple[Family, float, int]]) -> None:
        """With --workers > 1: train these runs (family, lr, seed) to the end of their plans, at most --workers
        at once in worker processes (``t2i.bench.workers``); ``train`` then finds their stages done. Nothing else
        runs meanwhile, so no evaluation or timing shares the cores with training."""
        if self.cfg.workers < 2:
            return
        jobs, flops_left, seconds_left = [], [], []
        for fam, lr, seed in runs:
            plan = self.plan(fam)
            stages = plan["stages"]
            folder, argv, _ = self.prepare_run(fam, lr, seed, stages)
            done = [s for s in stages if stage_dir(folder, s).exists()]
            if len(done) < len(stages):
                start = trained_to(folder, stages, done)
                steps_left = stages[-1] - start
                flops_left.append(steps_left * plan["step"] + (0 if done else plan["once"]))
                rate = cpu_seconds_per_step(folder, done)
                seconds_left.append(None if rate is None else rate * steps_left)
                jobs.append(Job(f"{fam.name} (lr {lr:g}, seed {seed}) to step {stages[-1]}", train_stages,
                                (fam, folder, argv, stages, lr, seed, self.cfg.segment_minutes * 60),
                                folder / "bench_train.log", progress=partial(run_progress, folder, start, stages[-1])))
        for job, cost in zip(jobs, expected_costs(flops_left, seconds_left)):
            job.cost = cost
        if jobs:
            print(f"bench: training {len(jobs)} run(s) side by side in {min(self.cfg.workers, len(jobs))} worker "
                  "process(es)", flush=True)
            try:
                seconds = run_side_by_side(jobs, self.cfg.workers)
            except JobFailed as err:
                raise SystemExit(f"t2i bench: {err}") from None
            self.training_seconds += seconds
            print(f"bench: {len(jobs)} run(s) trained side by side in {seconds / 60:.1f} min", flush=True)

    def run_inputs(self, fam: Family) -> dict[str, Any]:
        """What a run depends on beyond its argv: latent diffusion's first stage, which its ``--vae`` path names but
        does not identify (a sweep with another top rung retrains it in place, under the same path)."""
        if not fam.first_stage:
            return {}
        if self.first_stage_info:
            return {"first_stage": {"steps": self.first_stage_info["steps"], "options": self.first_stage_info["options"]}}
        return {"first_stage": {"digest": folder_digest(self.first_stage)}}  # given with --load vae-kl=PATH

    def ladder_of(self, fam: Family) -> list[float]:
        """The rungs a family trains to: the ladder, ended at the family's --ladder-top if it has one."""
        return [m for m in self.ladder if m <= self.tops.get(fam.name, self.ladder[-1])]

    def first_stage_budget(self) -> float:
        """Latent diffusion's first-stage budget: --first-stage-flops, else its share of its top rung's budget."""
        ladder = next((self.ladder_of(f) for f in self.families if f.first_stage), self.ladder)
        top = self.budget * (ladder[-1] if ladder else 1)
        return self.cfg.first_stage_flops or top * self.cfg.first_stage_share

    def train_first_stage(self, budget: float) -> float:
        """Latent diffusion's first stage, trained once under ``budget``; returns its training FLOPs."""
        if "vae-kl" in self.loads:
            self.first_stage = self.loads["vae-kl"]
            self.notes.append(f"first stage given ({self.first_stage}): its training cost is not counted")
            return 0.0
        fam = FIRST_STAGE
        if self.cfg.data == "digits":  # vae-kl's PSNR set defaults to 512 images; digits/test has 355
            fam = with_options(fam, "--eval-images=256")
        fam = self.with_extra(fam)
        step = self.step_flops(fam)
        steps = self.steps_for(budget, fam, step)
        run = self.train(fam, fam.lr, 0, [steps])
        self.first_stage = str(run["folder"])
        metrics_file = run["folder"] / "vae_metrics.json"
        psnr = json.loads(metrics_file.read_text()).get("test_psnr_db") if metrics_file.is_file() else None
        self.first_stage_info = {"steps": steps, "step_flops": step, "flops": steps * step, "batch_size": fam.batch_size,
                                 "test_psnr_db": psnr, "options": fam.options, "train_images_per_s": run["images_per_s"]}
        return float(steps * step)

    def first_stage_ceiling(self) -> dict[str, Any]:
        """The floor set's real images passed through the first stage, scored like the floor: what a perfect latent
        model on this first stage would score (its distances to the reference cannot fall much below these; its
        precision can rise above, by drawing only typical images)."""
        from t2i.diffusion.first_stage import load_vae
        from t2i.diffusion.training import reconstruct

        recon = reconstruct(load_vae(self.first_stage).eval(), self.floor_set.images)
        return {k: v for k, v in self.scorer.floor(self.floor_set, recon).items() if k != "details"}

    # ------------------------------------------------------------------ one family
    def eval_options(self, fam: Family, guidance: float | None = None):
        """The sampling options of a family's evaluation (diffusion: sampler, steps, guidance)."""
        if not fam.diffusion:
            return None
        return lambda gen: diffusion_options(gen, self.cfg.sampler, self.cfg.sample_steps,
                                             guidance if guidance is not None else gen.options.guidance_scale)

    def plan(self, fam: Family) -> dict[str, Any]:
        """What every run of a family trains (worked out once): its first stage's FLOPs (latent diffusion: the
        first stage is trained here, once), one step's FLOPs and a --cache build's, and the steps of its stages."""
        if fam.name in self.plans:
            return self.plans[fam.name]
        cfg = self.cfg
        # a sweep's first stage is trained once under the top rung's share (or --first-stage-flops) and charged in
        # full at every rung; the family's own steps at every budget get the rest of the share
        first_flops, share = 0.0, 0.0
        if fam.first_stage:
            first_flops = self.train_first_stage(self.first_stage_budget())
            share = cfg.first_stage_share if "vae-kl" not in self.loads else 0.0  # a given one costs the budget nothing
        step, once = self.step_flops(fam), self.cache_flops(fam)
        if once:
            self.notes.append(f"{fam.name} trains on cached latents (--cache): encoding the train split once costs "
                              f"{once:.3g} FLOPs (t2i.bench.cost.trainer_cache_flops), charged to every run in full "
                              "(a ladder: on top of every rung, as its first stage; one budget: out of it); its "
                              "steps then run no encoder")
        if self.ladder:
            ladder = self.ladder_of(fam)
            budgets = [self.budget * m - self.budget * m * share for m in ladder]
            stages = ladder_steps([self.steps_for(b, fam, step) for b in budgets], ladder)
        else:  # one budget: the --cache build comes out of it (a ladder's rungs are charged it on top, as a first stage)
            left = self.budget - self.budget * share - (once if self.budget_kind == "flops" else 0)
            if left <= 0:
                raise SystemExit(f"bench: {fam.name}'s --cache build costs {once:.3g} FLOPs, all of its budget "
                                 f"({self.budget - self.budget * share:.3g}): raise --budget-flops or drop --cache")
            stages = stage_steps(self.steps_for(left, fam, step), floats(cfg.budget_fractions))
        self.plans[fam.name] = {"first_flops": first_flops, "once": once, "step": step, "steps": stages[-1],
                                "stages": stages}
        return self.plans[fam.name]

    def run_family(self, fam: Family) -> dict[str, Any]:
        cfg = self.cfg
        entry: dict[str, Any] = {"title": fam.title, "batch_size": fam.batch_size, "conditioning": fam.conditioning,
                                 "options": fam.options}
        if fam.name in self.loads:
            return self.given_family(fam, entry)
        plan = self.plan(fam)
        first_flops, once, step, steps, stages = (plan[k] for k in ("first_flops", "once", "step", "steps", "stages"))
        if fam.first_stage:
            entry["first_stage"] = {**(self.first_stage_info or {"given": self.first_stage}),
                                    "ceiling": self.first_stage_ceiling()}
        if self.ladder:
            entry["ladder_top"] = self.tops.get(fam.name)
        flops_at = {s: first_flops + once + s * step for s in stages}
        entry.update(step_flops=step, steps=steps, stages=stages, first_stage_flops=first_flops or None,
                     cache_flops=once or None)

        # tuning trials on seed 0, selected on the validation prompts
        lrs = fam.lrs(cfg.trials)
        runs = {lr: self.train(fam, lr, 0, stages) for lr in lrs}
        trials = []
        if len(lrs) > 1:
            for lr, run in runs.items():
                gen = self.load(run["stages"][-1][1])
                opts = self.eval_options(fam)(gen) if fam.diffusion else None
                metrics, _ = sample_and_score(gen, self.val_set, self.scorer, opts, desc=f"{fam.name} lr {lr:g}")
                trials.append({"lr": lr, "validation": {k: v for k, v in metrics.items() if k != "details"}})
        best = select([t["validation"] for t in trials], self.metric) if trials else 0
        for i, t in enumerate(trials):
            t["selected"] = i == best
        lr = lrs[best]
        entry.update(lr=lr, trials=trials)
        self.train_side_by_side([(fam, lr, seed) for seed in range(1, cfg.seeds)])  # --workers: the other seeds at once

        # diffusion: guidance sweep (chosen on validation prompts), then the steps curve per sampler; with
        # --guidance-at stage a sweep on every lower stage of seed 0 too
        chosen = runs[lr]
        top = (self.diffusion_study(fam, chosen["stages"][-1][1], entry, chosen["argv"], chosen["inputs"])
               if fam.diffusion else None)
        guidance = self.stage_guidance(fam, chosen, top) if fam.diffusion else {s: None for s in stages}

        # every seed with the selected lr, each stage scored on the held-out prompts as soon as the seed is trained
        # (a killed sweep then keeps every finished seed's scores)
        entry["seeds"], folders = {}, []
        for seed in range(cfg.seeds):
            run = runs[lr] if seed == 0 else self.train(fam, lr, seed, stages)
            folders.append(run["folder"])
            records, images, gen = self.evaluate_run(fam, run, flops_at, guidance, seed)
            for r in records[:-1]:
                r.pop("details")
            entry["seeds"][str(seed)] = {"stages": records, "metrics": records[-1]["metrics"],
                                         "details": records[-1].pop("details"), "model": str(run["stages"][-1][1]),
                                         "train_images_per_s": run["images_per_s"]}
            if seed == 0:
                self.grid_rows.append((fam.name, images))
                entry["cost"] = self.cost(gen, fam, top, run["stages"][-1][1])
                entry["sample_command"] = self.sample_command(fam, run["stages"][-1][1], top)
        entry["summary"] = summarize([s["metrics"] for s in entry["seeds"].values()])
        speeds = [s["train_images_per_s"] for s in entry["seeds"].values() if s["train_images_per_s"]]
        entry["cost"].update(train_flops=first_flops + once + steps * step,
                             train_images_per_s=sum(speeds) / len(speeds) if speeds else None)
        if self.ladder:
            entry["rungs"] = self.rungs(fam, stages, flops_at, entry["cost"]["train_images_per_s"], folders)
            if fam.diffusion:
                for rung in entry["rungs"]:
                    rung["guidance"] = guidance[rung["steps"]]
        return entry

    def evaluate_run(self, fam: Family, run: dict[str, Any], flops_at: dict[int, float],
                     guidance: dict[int, float | None], seed: int) -> tuple[list[dict[str, Any]], torch.Tensor, Any]:
        """Score every stage of one run on the eval set, each at its guidance scale (``guidance``: steps -> scale,
        None for a family without one); with --reuse/--ladder a stage scored before is read back
        (``t2i.bench.store``), so a killed bench redoes no finished rung. Returns the records, the last stage's
        grid images and its generator."""
        records = []
        for steps, path in run["stages"]:
            name, fingerprint = f"{fam.name}-seed{seed}-step{steps:06d}", self.fingerprint(run, steps, guidance[steps])
            record = self.store.get(name, fingerprint) if self.store else None
            if record is None:
                (record,), images, gen = evaluate_stages(self.load, [(steps, flops_at[steps], path)], self.eval_set,
                                                         self.scorer, self.eval_options(fam, guidance[steps]),
                                                         desc=f"{fam.name} seed {seed}")
                if self.store:
                    if steps == run["stages"][-1][0]:
                        self.store.put_tensor(name, fingerprint, self.grid_images(images))
                    self.store.put(name, fingerprint, record)  # the JSON last: it marks the rung finished
            records.append(record)
        if self.store is None:  # every stage was scored here: the last one's images and generator are at hand
            return records, self.grid_images(images), gen
        return records, self.store.get_tensor(name, fingerprint), self.load(run["stages"][-1][1])  # the last stage's

    def fingerprint(self, run: dict[str, Any], steps: int, guidance: float | None) -> dict[str, Any]:
        """Everything one stage's score depends on: the run's trainer argv, the step and the evaluation settings."""
        keys = ("data", "size", "clip", "score_clip", "evaluator", "eval_prompts", "novel_prompts", "images_per_prompt",
                "reference_images", "eval_seed", "sampler", "sample_steps", "n")
        later = {k: getattr(self.cfg, k) for k in ("image_column", "caption_column", "held_out")
                 if getattr(self.cfg, k)}  # fields added after stored work: in the fingerprint only when set
        return {"argv": run["argv"], **run["inputs"], "steps": steps, "guidance": guidance,
                "eval": {**{k: getattr(self.cfg, k) for k in keys}, **later}, **self.judge_rules()}

    def judge_rules(self) -> dict[str, int]:
        """The shapes evaluator's rules version (``t2i.evaluators.shapes.JUDGE_RULES``) once past the first, so
        that scores stored under earlier rules are made again (from the kept stage models: nothing retrains)
        while stored digits and captioned work keeps its fingerprints."""
        from t2i.evaluators.shapes import JUDGE_RULES

        return {"judge_rules": JUDGE_RULES} if self.cfg.data == "shapes" and JUDGE_RULES > 1 else {}

    def rungs(self, fam: Family, stages: list[int], flops_at: dict[int, float], images_per_s: float | None,
              folders: list[Path]) -> list[dict[str, Any]]:
        """The ladder's rungs of one family: budget asked, steps, FLOPs spent and CPU-hours: the process CPU time
        training took up to the rung (mean over seeds; trainer start-up per stage and the first stage included).
        Runs trained before that was recorded fall back to wall seconds at the measured images/s x torch threads."""
        first = self.first_stage_info if fam.first_stage else {}
        per_seed = [cpu_seconds_to(f, stages) for f in folders]
        first_cpu = cpu_seconds_to(self.first_stage, [first["steps"]]) if first else [0.0]
        if None not in per_seed and first_cpu is not None:
            source, seconds = "process CPU time", [first_cpu[-1] + sum(c) / len(c) for c in zip(*per_seed)]
        else:
            threads = torch.get_num_threads()
            first_s = (first["steps"] * first["batch_size"] / first["train_images_per_s"]
                       if first.get("train_images_per_s") else 0.0)
            source = f"wall seconds at the measured images/s x {threads} thread(s)"
            seconds = [(first_s + s * fam.batch_size / images_per_s) * threads if images_per_s else None
                       for s in stages]
        return [{"multiple": m, "budget": self.budget * m, "steps": steps, "flops": flops_at[steps],
                 "cpu_hours": sec / 3600 if sec is not None else None, "cpu_hours_from": source}
                for m, steps, sec in zip(self.ladder_of(fam), stages, seconds)]

    def study_fingerprint(self, path: str | Path, argv: list[str] | None,
                          inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything a diffusion study depends on: the model, its trainer argv and inputs (``run_inputs``) and the
        study's settings; a given model (no argv) by its files' digest too: a name or path retrained since is
        another model."""
        keys = ("guidance", "sampler", "sample_steps", "samplers", "sampler_steps", "curve_prompts", "eval_seed",
                "data", "size", "score_clip", "evaluator")
        if self.kind == "captioned":  # its validation items are drawn after the eval ones among the first read
            keys += ("eval_prompts", "reference_images")
        given = {} if argv is not None else {"model_digest": folder_digest(path)}
        return {"model": str(path), "argv": argv, **(inputs or {}), **given,
                "study": {k: getattr(self.cfg, k) for k in keys}, **self.judge_rules()}

    def diffusion_study(self, fam: Family, path: str | Path, entry: dict[str, Any],
                        argv: list[str] | None = None, inputs: dict[str, Any] | None = None) -> float:
        """Guidance sweep (best scale on the validation prompts, returned), then the steps curve per sampler; read
        back from the store when this model (trained by ``argv``) was studied before."""
        cfg = self.cfg
        fingerprint = self.study_fingerprint(path, argv, inputs)
        stored = self.store.get(f"{fam.name}-diffusion-study", fingerprint) if self.store else None
        if stored is not None:
            self.diffusion, entry["sampling"] = stored["diffusion"], stored["sampling"]
            return self.diffusion["chosen_guidance"]
        gen = self.load(path)
        sweep, guidance = self.sweep_guidance(gen)
        curves = sampler_curves(gen, self.val_set, self.scorer, [s for s in cfg.samplers.split(",") if s],
                                [int(s) for s in floats(cfg.sampler_steps)], guidance)
        self.diffusion = {"family": fam.name, "model": str(path), "guidance_sweep": sweep, "chosen_guidance": guidance,
                          "sweep_sampler": cfg.sampler, "sweep_steps": cfg.sample_steps, "select_metric": self.metric,
                          "sampler_curves": curves}
        entry["sampling"] = {"sampler": cfg.sampler, "steps": cfg.sample_steps, "guidance": guidance}
        if self.store:
            self.store.put(f"{fam.name}-diffusion-study", fingerprint,
                           {"diffusion": self.diffusion, "sampling": entry["sampling"]})
        return guidance

    def sweep_guidance(self, gen) -> tuple[list[dict[str, Any]], float]:
        """The guidance sweep of one diffusion model on the validation prompts: its points and the best scale."""
        cfg = self.cfg
        return guidance_sweep(gen, self.val_set, self.scorer, floats(cfg.guidance), cfg.sampler, cfg.sample_steps,
                              self.metric)

    def stage_guidance(self, fam: Family, run: dict[str, Any], top: float) -> dict[int, float]:
        """The guidance scale of each stage of a diffusion family's runs: steps -> scale. --guidance-at top: the
        diffusion study's (chosen on seed 0's last stage) at every stage. --guidance-at stage: each lower stage's own
        best, by the same sweep on seed 0's model at that stage (``run``, validation prompts), so that a rung scores
        as it would at the top of a shorter ladder; the sweeps are kept in ``self.diffusion["stage_guidance"]`` and
        stored, so a resumed or extended sweep reads them back."""
        cfg, steps_list = self.cfg, [steps for steps, _ in run["stages"]]
        if cfg.guidance_at == "top":
            return {steps: top for steps in steps_list}
        chosen, kept = {}, []
        for steps, path in run["stages"][:-1]:
            name = f"{fam.name}-seed0-step{steps:06d}-guidance"
            fingerprint = {**self.fingerprint(run, steps, None), "scales": cfg.guidance, "curve_prompts": cfg.curve_prompts}
            record = self.store.get(name, fingerprint) if self.store else None
            if record is None:
                sweep, best = self.sweep_guidance(self.load(path))
                record = {"steps": steps, "guidance_sweep": sweep, "chosen_guidance": best}
                if self.store:
                    self.store.put(name, fingerprint, record)
            chosen[steps] = record["chosen_guidance"]
            kept.append(record)
        chosen[steps_list[-1]] = top
        if kept:  # a run of one stage (--quick, a --load) has nothing below its top
            self.diffusion["stage_guidance"] = kept + [{"steps": steps_list[-1], "guidance_sweep":
                                                        self.diffusion["guidance_sweep"], "chosen_guidance": top}]
        return chosen

    def given_family(self, fam: Family, entry: dict[str, Any]) -> dict[str, Any]:
        """A model passed with --load: evaluated once (no training figures, no seeds)."""
        path = self.loads[fam.name]
        self.notes.append(f"{fam.name} was given ({path}): evaluated as is; its training cost is not known here")
        guidance = self.diffusion_study(fam, path, entry) if fam.diffusion else None
        records, images, gen = evaluate_stages(self.load, [(0, None, Path(path))], self.eval_set, self.scorer,
                                               self.eval_options(fam, guidance), desc=fam.name)
        entry.update(given=path, lr=None, trials=[], seeds={"given": {"stages": [], "metrics": records[0]["metrics"],
                                                                    "details": records[0]["details"], "model": path}})
        entry["summary"] = summarize([records[0]["metrics"]])
        entry["cost"] = self.cost(gen, fam, guidance, path)
        entry["sample_command"] = self.sample_command(fam, path, guidance)
        self.grid_rows.append((fam.name, self.grid_images(images)))
        return entry

    def sample_command(self, fam: Family, model: str | Path, guidance: float | None) -> str:
        """The one ``t2i sample`` command that re-makes this model's eval images (condition i from seed + i)."""
        cfg = self.cfg
        if fam.conditioning == "label":
            conditions = "--labels " + ",".join(str(label) for label in self.eval_set.labels)
        else:
            conditions = f"--prompts {self.out / 'eval_prompts.txt'}"
        options = (f" --sampler {cfg.sampler} --num-inference-steps {cfg.sample_steps} --guidance-scale {guidance:g}"
                   if fam.diffusion else "")
        return (f"t2i sample --model {model} {conditions} --seed {cfg.eval_seed} --n {cfg.images_per_prompt}"
                f"{options} --out OUT")

    def cost(self, gen: Any, fam: Family, guidance: float | None, path: str | Path) -> dict[str, Any]:
        """Parameters and sampling cost on the first conditions of the eval set, one image each.

        With a store (--reuse, --ladder) the timing is kept: the same model (its folder's digest), request and
        machine (CPU, cores, torch threads, device, torch) read it back, so a report re-made from stored work
        reproduces its ms per image and total costs instead of re-timing them at whatever load the machine has
        then; the record says when and at what load average it was timed (a note of the report)."""
        k = min(16, len(self.eval_set.prompts))
        request: dict[str, Any] = ({"labels": self.eval_set.labels[:k]} if gen.conditioning == "label"
                                   else {"prompts": self.eval_set.prompts[:k]})
        request.update(seed=self.cfg.eval_seed, num_images_per_prompt=1)
        if fam.diffusion:
            request.update(diffusion_options(gen, self.cfg.sampler, self.cfg.sample_steps,
                                             gen.options.guidance_scale if guidance is None else guidance))
        if self.store is None:  # nothing to keep it in: no model digest to take
            return {"parameters": count_parameters(gen), **sampling_cost(gen, request, repeats=2)}
        here, digest = machine(), folder_digest(path)
        fingerprint = {"model_digest": digest, **({} if digest else {"model": str(path)}),  # a hub id has no digest
                       "request": request, "repeats": 2,
                       **{k: here[k] for k in ("cpu", "cores", "threads", "device", "torch")}}
        name = f"{fam.name}-sampling-cost"
        record = self.store.get(name, fingerprint)
        if record is not None:
            self.timed_before[fam.name] = record
        else:
            record = {"cost": sampling_cost(gen, request, repeats=2), "date": here["date"],
                      "load_average": here.get("load_average")}
            self.store.put(name, fingerprint, record)
        return {"parameters": count_parameters(gen), **record["cost"]}

    def grid_images(self, images: torch.Tensor) -> torch.Tensor:
        k = self.cfg.images_per_prompt
        return images[[i * k for i in range(min(GRID_PROMPTS, len(self.eval_set.prompts)))]]

    # ------------------------------------------------------------------ the whole run
    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.grid_rows: list[tuple[str, torch.Tensor]] = []
        self.diffusion: dict[str, Any] | None = None
        if cfg.quick:
            self.notes.append("QUICK MODE (CI smoke run): tiny budget, 1 seed allowed, few prompts; the numbers only "
                              "show that the pipeline works, not how the families compare")
        self.setup_judges()
        (self.out / "eval_prompts.txt").write_text("".join(p + "\n" for p in self.eval_set.prompts))
        self.notes.append("every image of the eval set is re-made by one `t2i sample` command per model (the "
                          "`sample_command` of each family in results.json; prompts in eval_prompts.txt)")
        floor = {k: v for k, v in self.scorer.floor(self.floor_set).items() if k != "details"}
        blind = self.scorer.prompt_blind(self.floor_set) if self.kind != "captioned" else None
        if cfg.workers > 1:  # every run known before any evaluation trains now, side by side (the other seeds of
            # a family with tuning trials wait for its selection)
            trained = [f for f in self.families if f.name not in self.loads]
            self.train_side_by_side([(f, lr, seed) for f in trained for lr in f.lrs(cfg.trials)
                                     for seed in (range(cfg.seeds) if cfg.trials == 1 else [0])])
            self.notes.append(f"--workers {cfg.workers}: runs trained side by side in up to {cfg.workers} processes of "
                              f"{worker_threads(cfg.workers)} torch thread(s) each, nothing else running meanwhile; a "
                              "run's train images/s is one worker's beside the others, its CPU-hours its own process's")
        families = {}
        for fam in self.families:
            families[fam.name] = self.run_family(fam)
        trained = [f.name for f in self.families if f.name not in self.loads]
        if trained:  # what the budget means; given models were trained elsewhere, at an unknown cost
            self.notes += [
                f"budget ({', '.join(trained)}): every family run gets the same training budget; one step's FLOPs are "
                "counted by FlopCounterMode as F(2 steps) - F(1 step) of the family's own trainer (matmuls, "
                "convolutions and attention, forward and backward, including frozen encoders run per step); tgan "
                "caches caption embeddings, so its later steps are slightly cheaper than counted",
                "family sizes are the bench's small ones (see the options column in results.json); EMA weights where "
                "the family's trainer uses them (tgan, cgan, ldm: 0.999)"]
        if "ldm" in trained and "vae-kl" not in self.loads:  # a given first stage has its own note
            first = ("--first-stage-flops" if cfg.first_stage_flops
                     else f"{cfg.first_stage_share:g} of its budget" + (" at the top rung" if self.ladder else ""))
            self.notes.append(f"latent diffusion pays for its first stage: a budget of {self.first_stage_budget():.6g} "
                              f"{'FLOPs' if self.budget_kind == 'flops' else 'images'} ({first}) trains the vae-kl once (seed 0), which all its trials and seeds share "
                              f"and are each charged for in full; its own steps get {1 - cfg.first_stage_share:g} of "
                              "each budget" + ("; a sweep extended with rungs on top keeps its latent diffusion runs "
                                               "with --first-stage-flops at that budget" if self.ladder else ""))
        if self.kind != "captioned":  # captioned data: the sets' own note says how its held-out items were drawn
            self.notes.append("held-out prompts: the evaluation prompts (test split"
                              + (" + novel compositions" if cfg.data == "shapes" else "") + ") are disjoint from the "
                              "validation prompts used for tuning trials and the guidance sweep (another seed of the "
                              "test split)")
        if self.timed_before:
            self.notes.append("sampling cost (ms/image, images/s and the total costs built on them) read back from "
                              "the invocation that timed the same model on this machine (CPU, cores, torch threads, "
                              "device): " + "; ".join(f"{n} at {r['date']}, load average {r.get('load_average')}"
                                                      for n, r in self.timed_before.items()))
        results = {"command": command_line(self.argv), "machine": machine(),
                   "config": config_to_dict(cfg), "notes": self.notes,
                   "budget": {"kind": self.budget_kind, "value": self.budget},
                   "eval": {"conditions": len(self.eval_set.prompts), "images_per_prompt": cfg.images_per_prompt,
                            "images": len(self.eval_set), "seed": cfg.eval_seed,
                            "reference_images": len(self.reference.images), "validation_conditions":
                                len(self.val_set.prompts), "floor_images": len(self.floor_set.images)},
                   "floor": floor, **({"prompt_blind": blind} if blind else {}), "families": families,
                   "diffusion": self.diffusion}
        if self.ladder:
            results["sweep"] = self.sweep(families, floor, blind or {})
        results["wall_minutes"] = (time.perf_counter() - start) / 60
        results["training_minutes"] = self.training_seconds / 60
        earlier = log_invocation(self.work / "invocations.json", results["command"], results["wall_minutes"],
                                 results["machine"]["date"])
        results["earlier_invocations"] = earlier if self.resume else []  # only a resuming run reuses their work
        self.write(results)
        return results

    def sweep(self, families: dict[str, Any], floor: dict[str, Any], blind: dict[str, Any]) -> dict[str, Any]:
        """The ladder's answers (``t2i.bench.sweep``): crossovers with bootstrap intervals (and the prompt-blind
        levels ``blind`` they are read against), sampling-cost fronts, total cost; and the notes on reading them."""
        trained = [f for f in self.families if f.name not in self.loads]
        diffusion = next((f.name for f in trained if f.diffusion), None)
        higher = {k: v[1] for k, v in HEADLINE.items()}
        metrics = list(self.judged.crossover)
        if floor.get("diversity_ratio") is not None and "diversity_ratio" in metrics:
            add_diversity_gap(families, floor["diversity_ratio"])
            metrics[metrics.index("diversity_ratio")] = "diversity_gap"
            self.notes.append(f"diversity: crossovers and plateaus rank on the gap |diversity ratio - "
                              f"{floor['diversity_ratio']:.3f}|, the real floor images' own ratio (within-condition over "
                              "overall diversity), since a model that ignores its prompt scores a ratio near 1")
        self.notes += [
            f"budget ladder: rungs {', '.join(f'{m:g}' for m in self.ladder)} x {self.budget:.3g} "
            f"{self.budget_kind} (a {self.ladder[-1] / self.ladder[0]:g}x span); each seed is ONE run, scored at the "
            "checkpoint of every rung (anytime evaluation): the trainers' learning rates are constant (tgan, cvae, "
            "cgan, vae-kl) or constant after a fixed linear warm-up (ldm: 100 steps), so no schedule depends on the "
            "final budget and the rung-m checkpoint is the run a budget of m x base would have made",
            "CPU-hours (each rung's cpu_hours_from in results.json): the process CPU time that training up to the "
            "rung took, mean over seeds, trainer start-up per stage and latent diffusion's first stage included; "
            "runs trained before that was recorded: wall seconds at the measured images/s x torch threads",
            *(["on the GPU these 'CPU-hours' are the training processes' host CPU time (launching the GPU's "
                "work), not GPU time; each stage's wall seconds are in its run's bench_stage_time.json"]
              if self.device == "cuda" else []),
            f"crossover: diffusion's seed-mean curve against each family's, interpolated in log FLOPs; the interval "
            f"is the 5-95% percentile bootstrap over seeds ({self.cfg.bootstrap} resamples), 'reached' the share of "
            "resamples that cross within the ladder"]
        if self.tops:
            self.notes.append("ladder tops (--ladder-top): " + ", ".join(f"{n} ends at x{m:g}" for n, m in self.tops.items())
                              + "; such a family trains no further, and crossovers hold it at its top rung's values beyond, on the "
                              "metrics where its last doubling is a plateau (on the others they compare within the "
                              "common range)")
        return sweep_summary(families, diffusion, self.diffusion, metrics, higher, self.cfg.bootstrap,
                             torch.get_num_threads(), chance={k: v for k, v in blind.items() if isinstance(v, float)})

    def write(self, results: dict[str, Any]) -> None:
        fams, floor, out = results["families"], results["floor"], self.out
        metrics = [self.metric, self.judged.fid]
        files = {"quality vs training budget": plots.plot_quality_vs_budget(fams, floor, metrics,
                                                                            out / "quality_vs_budget.png"),
                 "cost vs quality": plots.plot_cost_vs_quality(fams, floor, self.metric, out / "cost_vs_quality.png")}
        if self.diffusion:
            if self.diffusion.get("sampler_curves"):
                files["quality vs sampling steps"] = plots.plot_sampler_curves(
                    self.diffusion["sampler_curves"], [self.metric, self.judged.kid, "ms_per_image"],
                    out / "quality_vs_steps.png")
            files["guidance sweep"] = plots.plot_guidance(self.diffusion["guidance_sweep"], [self.metric, self.judged.fid],
                                                          out / "guidance.png", self.diffusion["chosen_guidance"])
        if results.get("sweep"):
            files["quality vs training budget"] = plots.plot_quality_vs_budget(fams, floor, self.judged.crossover,
                                                                               out / "quality_vs_budget.png")
            files["quality vs sampling cost (Pareto)"] = plots.plot_pareto(results["sweep"], out / "pareto.png")
            files["total cost for N images"] = plots.plot_total_cost(results["sweep"]["total_cost"],
                                                                     out / "total_cost.png")
        rows = [("real", real_row(self.eval_set, self.reference, GRID_PROMPTS, self.cfg.size))] + self.grid_rows
        files["same prompts, every model"] = plots.save_side_by_side(rows, self.eval_set.prompts[:GRID_PROMPTS],
                                                                     out / "grid.png")
        results["plots"] = {k: Path(v).name for k, v in files.items()}
        write_results(results, out / "results.json")
        write_report(results, results["plots"], out / "report.md")


def command_line(argv: list[str]) -> str:
    """The ``t2i bench`` command of ``argv``, as the report and the invocation log give it."""
    return "t2i bench " + " ".join(shlex.quote(a) for a in argv)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM is handled as Ctrl-C: logged, workers stopped


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = resolve(parse_config(BenchConfig, argv, prog="t2i bench", description=__doc__))
        bench = Bench(cfg, argv, parse_loads(cfg.load))  # families and eval sets: checked before anything trains
    except ValueError as err:
        raise SystemExit(f"t2i bench: {err}") from None
    start, before = time.perf_counter(), signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = bench.run()
    except KeyboardInterrupt:
        minutes = (time.perf_counter() - start) / 60
        log_invocation(Path(cfg.work) / "invocations.json", command_line(argv), minutes, machine()["date"],
                       interrupted=True)
        print(f"t2i bench: interrupted after {minutes:.1f} min; finished stages and segments are kept: run the same "
              "command again to go on", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, before)
    print(f"bench: wrote {Path(cfg.out) / 'report.md'}, results.json and plots in {results['wall_minutes']:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
