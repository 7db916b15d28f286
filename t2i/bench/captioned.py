"""The bench on any captioned data: held-out eval sets, the evaluation CLIP's measures, the data checks.

For a source that ``t2i.data.load_dataset`` reads and that is neither shapes nor digits (a folder
with ``train/`` and ``test/``, a ``datasets`` DatasetDict, ...), the text families train on its
``train`` split and are judged as ``t2i eval --prompts SOURCE --clip EVAL_CLIP`` judges them
(``t2i.metrics.captioned``), by an evaluation CLIP trained on the train split only:

- ``check_source``: the held-out split is the one ``t2i eval`` reads (``t2i.data.held_out_split``);
  a single-split source (a flat folder, a CSV) is refused, since its held-out data would be the
  training data, unless the held-out items come from a source of their own (``--held-out test.csv``).
- ``captioned_sets``: the first ``reference_images`` items of that split (as ``t2i eval --real-n``),
  read once at the bench's size; the eval and validation conditions are disjoint seeded draws of
  them, each caption with its real image (the grid's real row, the halves of CLIP FID/KID). Every
  caption read is a candidate of R-precision (the true one + up to 99 others).
- ``CaptionedScorer``: the ``Scorer`` interface over ``score_captioned``: R-precision, CLIP score,
  CLIP FID/KID (real half A against the images made for half B's captions), and within-prompt
  diversity on the same CLIP's image embeddings; ``floor`` scores the real images the same way
  (their R-precision and CLIP score: the ceiling; real A against real B: the FID/KID floor).

    python -c "from t2i.bench.captioned import demo; demo()"
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from t2i.bench.scoring import BenchSets, EvalSet, RealSet
from t2i.metrics import diversity
from t2i.metrics.captioned import CaptionedOptions, HeldOut, check_held_out, load_held_out, score_captioned
from t2i.metrics.clip_features import clip_extractor

MEASURES = ("r-precision", "clip-score", "clip-fid", "clip-kid")  # names of t2i.metrics.captioned
MIN_ITEMS = 4  # per eval set: CLIP FID/KID compare two halves of at least 2 items each


def check_source(data: str, held_out: str = "") -> str:
    """The held-out split of a captioned source (of ``held_out`` when given: its test split, or the whole of a
    single-split one); ValueError (naming the fix) if it is missing or has no split apart from the training data."""
    from t2i.data import describe_source, held_out_split

    if held_out:  # the held-out items come from a source of their own; the runs train on --data's train split
        describe_source(data)  # ValueError: not found, or not a dataset
        return held_out_split(held_out)
    split = held_out_split(data)  # describe_source's ValueError: not found, or not a dataset
    if split == "train":
        raise ValueError(f"--data {data!r} is a single split ({describe_source(data)}): the bench trains on a train "
                         "split and scores on a held-out one; give a folder with train/ and test/ subfolders "
                         "(or a datasets DatasetDict with a test split), or the held-out items as --held-out, e.g. "
                         "--data train.csv --held-out test.csv")
    return split


def training_source(data: str) -> str:
    """How notes name what the runs train on: ``X's train split``, or ``X`` alone when it is a single split."""
    from t2i.data import held_out_split

    return str(data) if held_out_split(data) == "train" else f"{data}'s train split"


def check_train_split(data: str, n: int, size: int, batches: dict[str, int], **reading: str) -> int:
    """The number of training items (read with the runs' ``resize`` and ``background``); ValueError if one batch
    of a run (``{name: batch}``) needs more."""
    import itertools

    from t2i.data import load_dataset

    dataset = load_dataset(data, split="train", size=size, n=n if n > 0 else None, **reading)
    if hasattr(dataset, "raw_samples"):  # streamed shards: count the samples without decoding them
        items = sum(1 for _ in itertools.islice(dataset.raw_samples(), n if n > 0 else None))
    else:
        items = len(dataset)
    short = {name: b for name, b in batches.items() if b > items}
    if short:
        fix = " ".join(f"--{name}-options=--batch-size={items}" for name in short if name != "clip")
        raise ValueError(f"{training_source(data)} has {items} items, fewer than one batch of "
                         f"{', '.join(f'{k} ({v})' for k, v in short.items())}: add training images"
                         + (f" or give smaller batches, e.g. {fix}" if fix else "")
                         + ("; give trained CLIPs (--clip, --score-clip)" if "clip" in short else ""))
    return items


def _subset(name: str, held_out: HeldOut, index: list[int], images_per_prompt: int, seed: int) -> EvalSet:
    """Held-out items ``index`` as conditions: their captions, and their classes where the source has them (the
    class-conditional families are asked for those, the text ones for the captions)."""
    labels = [held_out.labels[i] for i in index] if held_out.labels is not None else None
    return EvalSet(name, [held_out.captions[i] for i in index], labels, [False] * len(index), images_per_prompt,
                   seed, real=held_out.images[index])


def captioned_sets(data: str, eval_prompts: int, images_per_prompt: int, validation_prompts: int,
                   reference_images: int, seed: int, size: int = 32, resize: str = "center-crop",
                   background: str = "black", held_out_source: str = "", **columns: str) -> BenchSets:
    """The eval (``seed``) and validation (``seed + 1``) conditions, disjoint draws (``seed``) of the first
    ``reference_images`` held-out items, read as the runs read theirs (``resize``: a random crop as the centre;
    ``background``); the reference and floor are the eval items' real images, the candidates every caption read."""
    if min(eval_prompts, validation_prompts) < MIN_ITEMS:
        raise ValueError(f"--eval-prompts and --curve-prompts must be at least {MIN_ITEMS} on captioned data (CLIP "
                         f"FID/KID compare two halves), got {eval_prompts} and {validation_prompts}")
    from t2i.data.transforms import evaluation_resize

    split = check_source(data, held_out_source)
    held_out, _ = load_held_out(held_out_source or data, split, size, reference_images or None, seed,
                                background=background, resize=evaluation_resize(resize),
                                **{k: v for k, v in columns.items() if v})
    check_held_out(held_out)
    need = eval_prompts + validation_prompts
    if len(held_out.captions) < need:
        raise ValueError(f"{held_out.source} gives {len(held_out.captions)} held-out items, fewer than --eval-prompts "
                         f"+ --curve-prompts = {need} (--reference-images {reference_images} caps how many are read); "
                         "lower them or add held-out images")
    order = torch.randperm(len(held_out.captions), generator=torch.Generator().manual_seed(seed)).tolist()
    eval_set = _subset("eval", held_out, order[:eval_prompts], images_per_prompt, seed)
    validation = _subset("validation", held_out, order[eval_prompts:need], 1, seed + 1)
    real = RealSet(eval_set.real, eval_set.prompts, [False] * eval_prompts, [-1] * eval_prompts)
    note = (f"held-out split {held_out.source} ({len(held_out.captions)} items read, "
            f"{len(set(held_out.captions))} distinct captions, the split `t2i eval` reads): {eval_prompts} eval and "
            f"{validation_prompts} validation items drawn without overlap (seed {seed}); the models train on the "
            "train split. Judged as `t2i eval` judges captioned data (t2i.metrics.captioned) by the evaluation CLIP: "
            "R-precision (own caption ranked first among the true one and up to 99 other captions read), CLIP score, "
            "CLIP FID/KID of real half A against the images made for half B's captions; the floor row is the real "
            "images scored the same way (R-precision and CLIP score: the ceiling; CLIP FID/KID: real A vs real B)")
    return BenchSets(eval_set, validation, real, real, [note], sorted(set(held_out.captions)))


class CaptionedScorer:
    """Scores image sets of captioned data with the evaluation CLIP; the interface of ``t2i.bench.scoring.Scorer``."""

    def __init__(self, clip: tuple[Any, Any, str], candidates: Sequence[str], seed: int):
        self.model, _, self.name = clip
        self.candidates = list(candidates)  # every held-out caption read: R-precision's distractors
        self.options = CaptionedOptions(seed=seed)
        self.extractor = clip_extractor(self.model, self.name)

    def score(self, images: torch.Tensor, eval_set: EvalSet, distribution: bool = True) -> dict[str, Any]:
        """Metrics of ``images`` (generated for ``eval_set``, in its order); a flat dict plus ``details``."""
        if eval_set.real is None:
            raise ValueError(f"eval set {eval_set.name!r} has no held-out images (EvalSet.real): make it with "
                             "captioned_sets")
        held_out = HeldOut(eval_set.real, eval_set.prompts, eval_set.name)
        results, floor = score_captioned(MEASURES if distribution else MEASURES[:2], images, held_out, self.model,
                                         self.name, eval_set.images_per_prompt, self.options, self.candidates)
        out: dict[str, Any] = {"n": len(images), "details": {"measures": results, "floor": floor},
                               "r_precision": results["r-precision"]["r_precision"],
                               "clip_score": results["clip-score"]["clip_score"]}
        if not distribution:
            return out
        out["clip_fid"] = results["clip-fid"]["clip_fid"]
        out["clip_kid"], out["clip_kid_std"] = results["clip-kid"]["clip_kid"], results["clip-kid"]["clip_kid_std"]
        if eval_set.images_per_prompt >= 2:
            div = diversity(self.extractor(images), num_images_per_prompt=eval_set.images_per_prompt)
            out["diversity"], out["diversity_ratio"] = div["diversity"], div["diversity_ratio"]
        return out

    def floor(self, real: RealSet, images: torch.Tensor | None = None) -> dict[str, Any]:
        """The real held-out images scored like a sample set (one image per caption, so no diversity); ``images``,
        one per real image and in its order (e.g. a first stage's reconstructions of them), in their place."""
        images = real.images if images is None else images
        if len(images) != len(real.images):
            raise ValueError(f"{len(images)} images in place of {len(real.images)} real ones: give one per real image")
        return self.score(images, EvalSet("floor", real.captions, None, real.novel, 1, 0, real=real.images))


def demo() -> None:
    from t2i.clip.testing import tiny_clip

    model = tiny_clip()
    reals = torch.rand(8, 3, 32, 32)
    eval_set = EvalSet("eval", [f"a picture number {i}" for i in range(8)], images_per_prompt=1, real=reals)
    scorer = CaptionedScorer((model, None, "tiny"), eval_set.prompts + ["another caption"], seed=0)
    print({k: v for k, v in scorer.score(reals.flip(0), eval_set).items() if k != "details"})
