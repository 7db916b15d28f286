"""The same test for every model: held-out prompts, fixed seeds, one set of metrics, a real floor.

- ``EvalSet``: the conditions every model is asked for (shapes: held-out ``test`` prompts
  plus ``novel`` compositions; digits: every class the same number of times; any other
  captioned data: items of its held-out split, ``t2i.bench.captioned``), with the
  number of images per condition and the seed. ``generate_images`` asks a generator for
  them with ``t2i.generator.generate_conditions`` (condition i from seed + i), so every family
  sees exactly the same requests and ``t2i sample --prompt P_i --seed SEED+i --n K`` re-makes
  any condition's images.
- ``Scorer``: prompt accuracy (shapes evaluator) or requested-digit accuracy (digits
  classifier); domain FID/KID, precision/recall, density/coverage on the evaluator's
  features against a real reference set; CLIP score with a *scoring* CLIP that the
  generators were not conditioned on; within-prompt diversity (mode collapse).
- ``Scorer.floor``: the same metrics for a second, disjoint set of real images of the
  same size: what a perfect generator would score at this sample count.
- ``MEASURES``: what each kind of data is ranked on (the headline metric of trials, guidance
  sweeps, plots and crossovers) and which distances stand beside it. Captioned data is scored by
  ``t2i.bench.captioned.CaptionedScorer`` (R-precision, CLIP score, CLIP FID/KID), as ``t2i eval``.

    python -c "from t2i.bench.scoring import demo; demo()"
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from t2i.bench.families import data_kind
from t2i.generator import conditions_for, generate_conditions
from t2i.metrics import density_coverage, diversity, domain_fid, domain_kid, precision_recall, to_batch

HEADLINE = {  # metric key -> (label, higher is better); the order of the report's quality table
    "acc_all": ("prompt acc. (all correct)", True),
    "acc_one": ("1-object all correct", True),
    "acc_two": ("2-object all correct", True),
    "acc_novel": ("novel all correct", True),
    "colour_one": ("1-object colour", True),
    "shape_one": ("1-object shape", True),
    "binding_two": ("2-object binding", True),  # each named object with its own colour and shape
    "relation_two": ("2-object relation", True),  # the spatial relation between them
    "digit_acc": ("requested digit", True),
    "class_coverage": ("classes covered", True),
    "r_precision": ("R-precision", True),  # own caption ranked first among the held-out captions (captioned data)
    "domain_fid": ("domain FID", False),
    "domain_kid": ("domain KID", False),
    "clip_fid": ("CLIP FID", False),  # FID on the evaluation CLIP's image embeddings (captioned data)
    "clip_kid": ("CLIP KID", False),
    "precision": ("precision", True),
    "recall": ("recall", True),
    "density": ("density", True),
    "coverage": ("coverage", True),
    "clip_score": ("CLIP score", True),
    "diversity_ratio": ("diversity ratio", True),
    # |diversity ratio - the real images' own|: a generator that ignores its prompt scores a ratio near 1, above
    # real data's, so the ratio alone rewards it; a sweep ranks on this gap when the real ratio is known
    "diversity_gap": ("diversity gap to real", False),
}
CLOSER_TO_REAL = ("diversity_ratio",)  # best at the real images' own value, not at an end (tables mark it ~)
MIN_REAL_GROUPS = 5  # conditions with >= 2 real images needed for the real images' own diversity ratio



@dataclass(frozen=True)
class Measures:
    """What one kind of data (``t2i.bench.families.data_kind``) is ranked on."""

    metric: str  # the headline: selects trials and the guidance scale, leads the plots and the Pareto front
    fid: str  # the Frechet distance plotted beside it (lower is better)
    kid: str  # the kernel distance of the quality-vs-steps plot
    crossover: tuple[str, ...]  # the metrics whose crossover a --ladder report states, the headline first


MEASURES = {
    "shapes": Measures("acc_all", "domain_fid", "domain_kid",
                       ("acc_all", "relation_two", "domain_fid", "precision", "recall", "diversity_ratio")),
    "digits": Measures("digit_acc", "domain_fid", "domain_kid",
                       ("digit_acc", "domain_fid", "precision", "recall", "diversity_ratio")),
    "captioned": Measures("r_precision", "clip_fid", "clip_kid",
                          ("r_precision", "clip_score", "clip_fid", "diversity_ratio")),
}


def measures(data: str) -> Measures:
    """The measures of ``--data`` (shapes, digits, or any captioned source)."""
    return MEASURES[data_kind(data)]


@dataclass
class EvalSet:
    """Conditions asked of every model: one prompt (and label) per condition, ``images_per_prompt`` each."""

    name: str  # "eval", "validation", "curves"
    prompts: list[str]  # one per condition
    labels: list[int] | None = None  # class of each condition (digits), else None
    novel: list[bool] = field(default_factory=list)  # condition names a held-out composition
    images_per_prompt: int = 2  # images per condition (>= 2 for the diversity metric)
    seed: int = 0  # condition i is drawn from seed + i (the generator contract's rule)
    records: list[dict[str, Any]] | None = None  # shapes: the scene record behind each prompt (its real render)
    real: torch.Tensor | None = None  # captioned data: the held-out image of each prompt (C, S, S) in [0, 1]

    def __len__(self) -> int:
        return len(self.prompts) * self.images_per_prompt

    def per_image(self, values: Sequence[Any]) -> list[Any]:
        """Repeat a per-condition list to the images' order ``[a0, a1, b0, b1]``."""
        return [v for v in values for _ in range(self.images_per_prompt)]


def shapes_eval_set(name: str, n_test: int, n_novel: int, images_per_prompt: int, seed: int, size: int = 32) -> EvalSet:
    """Held-out shapes prompts: ``n_test`` from the test split (seen compositions) + ``n_novel`` novel ones."""
    from t2i.data.shapes import prompts

    test = prompts(n_test, seed=seed, split="test", kind="any", size=size) if n_test else []
    novel = prompts(n_novel, seed=seed, split="novel", kind="any", size=size) if n_novel else []
    return EvalSet(name, [c for c, _ in test + novel], None, [False] * len(test) + [True] * len(novel),
                   images_per_prompt, seed, [r for _, r in test + novel])


def digits_eval_set(name: str, per_class: int, images_per_prompt: int, seed: int) -> EvalSet:
    """Every digit ``per_class`` times, as a label and as its caption ("a handwritten digit 7")."""
    from t2i.data.digits import caption

    labels = [d for _ in range(per_class) for d in range(10)]
    return EvalSet(name, [caption(d) for d in labels], labels, [False] * len(labels), images_per_prompt, seed)


@dataclass
class RealSet:
    """Real images ``(N, C, S, S)`` in [0, 1] with their captions, novel flags and labels."""

    images: torch.Tensor
    captions: list[str]
    novel: list[bool]
    labels: list[int]


def real_set(data: str, n_test: int, n_novel: int, seed: int, size: int = 32, split: str = "test") -> RealSet:
    """Real images with the eval set's mix: shapes renders of ``n_test`` scenes of ``split`` (drawn with
    ``seed``) + ``n_novel`` novel ones; digits ``n_test`` images of ``split`` in a seeded random order."""
    from t2i.data import load_dataset

    images, captions, novel, labels = [], [], [], []
    for part, n in ((split, n_test), ("novel", n_novel if data == "shapes" else 0)):
        if n <= 0:
            continue
        ds = load_dataset(data, split=part, size=size, n=n if data == "shapes" else None, seed=seed)
        if len(ds) < n:
            raise ValueError(f"{data}/{part} has {len(ds)} images, fewer than the {n} asked for")
        if data == "shapes":
            order = list(range(n))
        else:
            order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        items = [ds[i] for i in order]
        images.append(torch.stack([it["image"] for it in items]).float())
        captions += [it["text"] for it in items]
        labels += [int(it["label"]) for it in items]
        novel += [part == "novel"] * len(items)
    return RealSet(torch.cat(images), captions, novel, labels)


@dataclass
class BenchSets:
    """Everything a benchmark compares against: eval and validation conditions, reference and floor images."""

    eval: EvalSet  # held-out conditions every model is scored on
    validation: EvalSet  # other held-out conditions for tuning trials and diffusion sweeps
    reference: RealSet  # real images the distribution metrics compare with
    floor: RealSet  # a second, disjoint real set the size of the eval sample (the real-vs-real floor)
    notes: list[str] = field(default_factory=list)  # how the sets were made, for the report
    candidates: list[str] = field(default_factory=list)  # captioned data: every held-out caption read (R-precision's)


def bench_sets(data: str, eval_prompts: int, novel_prompts: int, images_per_prompt: int, validation_prompts: int,
               reference_images: int, seed: int, size: int = 32) -> BenchSets:
    """The eval (``seed``), validation (``seed + 1``), reference (``seed + 2``) and floor (``seed + 3``) sets.

    Shapes: test-split scenes plus novel compositions in the same proportion everywhere.
    Digits: every class equally often; the reference is the test split and the floor a sample
    of the train split (digits has no third split).
    """
    if data == "shapes":
        eval_set = shapes_eval_set("eval", eval_prompts, novel_prompts, images_per_prompt, seed, size)
        share = novel_prompts / max(1, eval_prompts + novel_prompts)
        val_novel = round(validation_prompts * share)
        validation = shapes_eval_set("validation", validation_prompts - val_novel, val_novel, 1, seed + 1, size)
        ref_novel, floor_novel = round(reference_images * share), round(len(eval_set) * share)
        reference = real_set("shapes", reference_images - ref_novel, ref_novel, seed + 2, size)
        floor = real_set("shapes", len(eval_set) - floor_novel, floor_novel, seed + 3, size)
        return BenchSets(eval_set, validation, reference, floor)
    if data != "digits":
        raise ValueError(f"data must be 'shapes' or 'digits', got {data!r}")
    from t2i.data import load_dataset

    eval_set = digits_eval_set("eval", -(-eval_prompts // 10), images_per_prompt, seed)
    validation = digits_eval_set("validation", max(1, validation_prompts // 10), 1, seed + 1)
    n_test = len(load_dataset("digits", split="test", size=size))
    reference = real_set("digits", min(reference_images, n_test), 0, seed + 2, size, split="test")
    floor = real_set("digits", len(eval_set), 0, seed + 3, size, split="train")
    note = (f"digits: reference = {len(reference.images)} test-split images; the real floor is a random sample of "
            "train-split images (digits has no third split)")
    return BenchSets(eval_set, validation, reference, floor, [note])


def real_row(eval_set: EvalSet, reference: RealSet, count: int, size: int = 32) -> torch.Tensor:
    """Real images for the first ``count`` conditions: shapes renders of their records, digits a test image
    of each requested class, captioned data the held-out image of each caption -> ``(count, C, S, S)``."""
    count = min(count, len(eval_set.prompts))
    if eval_set.real is not None:
        return eval_set.real[:count]
    if eval_set.records is not None:
        from t2i.data.shapes import render

        return to_batch([render(r, size) for r in eval_set.records[:count]])
    if eval_set.labels is None:
        raise ValueError("an eval set without records or labels has no real counterpart")
    return torch.stack([reference.images[reference.labels.index(d)] for d in eval_set.labels[:count]])


def generate_images(generator: Any, eval_set: EvalSet, options: dict[str, Any] | None = None,
                    desc: str = "sampling") -> torch.Tensor:
    """All images of ``eval_set`` from ``generator`` -> ``(N, C, S, S)`` in [0, 1], in condition order.

    Text-conditional generators get the prompts, class-conditional ones the labels.
    """
    conditions = conditions_for(generator, eval_set.prompts, eval_set.labels)
    images = generate_conditions(generator, conditions, seed=eval_set.seed, n=eval_set.images_per_prompt,
                                 progress=desc, **(options or {}))
    return to_batch(images)


class Scorer:
    """Scores image sets of one dataset against the same real reference with the same judges."""

    def __init__(self, data: str, reference: torch.Tensor, evaluator: Any, clip: tuple[Any, Any, str] | None = None,
                 kid_subset: int = 1000):
        if data not in ("shapes", "digits"):
            raise ValueError(f"the bench scores 'shapes' or 'digits' (its evaluators know them), got {data!r}")
        self.data, self.evaluator, self.clip, self.kid_subset = data, evaluator, clip, kid_subset
        self.extractor = evaluator.feature_extractor()
        self.reference = self.extractor(reference)  # (N_ref, D)

    def score(self, images: torch.Tensor, eval_set: EvalSet, distribution: bool = True) -> dict[str, Any]:
        """Metrics of ``images`` (generated for ``eval_set``, in its order); a flat dict plus ``details``."""
        prompts = eval_set.per_image(eval_set.prompts)
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} requested by the eval set {eval_set.name!r}")
        out: dict[str, Any] = {"n": len(images), "details": {}}
        if self.data == "shapes":
            from t2i.evaluators.shapes import prompt_accuracy

            acc = prompt_accuracy(images, prompts, novel_flags=eval_set.per_image(eval_set.novel),
                                  evaluator=self.evaluator)
            out["details"]["prompt_accuracy"] = acc
            out["acc_all"] = acc["all_correct"]
            for key, group, attr in (("acc_one", "one", "all_correct"), ("acc_two", "two", "all_correct"),
                                     ("acc_novel", "novel", "all_correct"), ("acc_seen", "seen", "all_correct"),
                                     ("colour_one", "one", "colour"), ("shape_one", "one", "shape"),
                                     ("size_one", "one", "size"), ("position_one", "one", "position"),
                                     ("colour_two", "two", "colour"), ("shape_two", "two", "shape"),
                                     ("binding_two", "two", "binding"), ("relation_two", "two", "relation")):
                if group in acc and attr in acc[group]:
                    out[key] = acc[group][attr]
        else:
            from t2i.evaluators.digits import score_samples

            labels = eval_set.per_image(eval_set.labels or [])
            digits = score_samples(images, requested_labels=labels or None, classifier=self.evaluator)
            out["details"]["digits"] = digits
            out["digit_acc"] = digits.get("accuracy")
            out["class_coverage"] = digits["class_coverage"]
        if not distribution:
            return out
        fake = self.extractor(images)  # (N, D)
        out["domain_fid"] = domain_fid(self.reference, fake)["domain_fid"]
        kid = domain_kid(self.reference, fake, subset_size=min(self.kid_subset, len(fake), len(self.reference)))
        out["domain_kid"], out["domain_kid_std"] = kid["domain_kid"], kid["domain_kid_std"]
        out.update({k: v for k, v in precision_recall(self.reference, fake).items() if k in ("precision", "recall")})
        out.update({k: v for k, v in density_coverage(self.reference, fake).items() if k in ("density", "coverage")})
        if eval_set.images_per_prompt >= 2:
            div = diversity(fake, num_images_per_prompt=eval_set.images_per_prompt)
            out["diversity"], out["diversity_ratio"] = div["diversity"], div["diversity_ratio"]
        if self.clip is not None:
            from t2i.metrics import clip_score

            model, tokenizer, name = self.clip
            out["clip_score"] = clip_score(images, prompts, model, tokenizer, model_name=name)["clip_score"]
        return out

    def floor(self, real: RealSet, images: torch.Tensor | None = None) -> dict[str, Any]:
        """The real-vs-real floor: a second real set scored like a sample set, with the real images' own diversity
        ratio (within-condition over overall diversity, conditions = digit classes or captions) when at least
        ``MIN_REAL_GROUPS`` conditions have two or more of its images. ``images``, one per real image and in its
        order (e.g. a first stage's reconstructions of them), are scored in their place."""
        images = real.images if images is None else images
        if len(images) != len(real.images):
            raise ValueError(f"{len(images)} images in place of {len(real.images)} real ones: give one per real image")
        labels = real.labels if self.data == "digits" else None
        out = self.score(images, self.real_eval_set(real, "floor"))
        groups = labels or real.captions
        if sum(n >= 2 for n in Counter(groups).values()) >= MIN_REAL_GROUPS:
            out["diversity_ratio"] = diversity(self.extractor(images), groups=groups)["diversity_ratio"]
        return out

    def real_eval_set(self, real: RealSet, name: str, order: Sequence[int] | None = None) -> EvalSet:
        """One condition per real image: image i asks for the caption (digits: label) of image ``order[i]``."""
        order = range(len(real.captions)) if order is None else order
        labels = [real.labels[j] for j in order] if self.data == "digits" else None
        return EvalSet(name, [real.captions[j] for j in order], labels, [real.novel[j] for j in order], 1, 0)

    def prompt_blind(self, real: RealSet) -> dict[str, Any]:
        """The floor's real images judged against other images' prompts (shapes: prompts naming as many objects):
        what a model that draws perfect scenes but ignores its prompt scores on the prompt-following measures,
        i.e. their chance level (the 2-object relation's is well above 0: one of four directions). The
        distribution measures are left out (they are the floor's), as is class coverage (the real images' own)."""
        n = len(real.captions)
        if self.data == "shapes":
            from t2i.data.shapes import parse_caption

            kinds = [len(parse_caption(c)["objects"]) for c in real.captions]
        else:
            kinds = [0] * n
        other = list(range(n))  # image i is judged against the prompt of image other[i]
        for kind in set(kinds):
            group = [i for i in range(n) if kinds[i] == kind]
            half = len(group) // 2  # half-way round the group: far from any repeat of its own condition
            for i, j in zip(group, group[half:] + group[:half]):
                other[i] = j
        scores = self.score(real.images, self.real_eval_set(real, "prompt-blind", other), distribution=False)
        return {k: v for k, v in scores.items() if k not in ("details", "class_coverage")}


def demo() -> None:
    s = shapes_eval_set("eval", 4, 2, 2, seed=0)
    print(len(s), s.prompts[:2], s.novel)
    print(digits_eval_set("eval", 1, 2, seed=0).prompts[:3])
