"""The auto-judge: the arena's battles played by the shapes evaluator instead of people.

Battle i: held-out shapes prompt i (``t2i.data.shapes.prompts``, the test split), seed ``seed + i``,
two models. Pairs go round-robin over every pair of models (each pair as often as the others, left
and right drawn by a seeded coin), so no model meets a weak or a strong one more often by chance.
Each model's image for prompt i is the one ``t2i sample --prompt P_i --seed SEED+i`` makes (the
generator contract's seeding rule); every model draws every prompt in batches with
``generate_conditions`` (n images a model: more than the battles show, but batched, and the same
image whichever battle uses it). The shapes evaluator (``t2i.evaluators.shapes``) judges every image
against its prompt (all attributes correct or not, the bench's per-image prompt accuracy): the
model whose image is correct wins; both correct is a tie; neither correct is "both bad" (a tie for
the ratings by default, ``t2i.arena.ratings``).

    python -c "from t2i.arena.judge import demo; demo()"
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any, Callable, Mapping

import numpy as np

from t2i.arena.store import Vote
from t2i.generator import Generator, generate_conditions

KINDS = ("one", "two", "any")  # prompts with one object, two objects, or a mix (the shapes grammar)


def battle_plan(models: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (model A, model B) pairs: every pair in turn, sides drawn by a coin seeded with ``seed``.
    The plan depends on the set of models, not on their order."""
    if len(set(models)) != len(models) or len(models) < 2:
        raise ValueError(f"the auto-judge needs at least two different models, got {models}")
    if n < 1:
        raise ValueError(f"the number of battles must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    pairs = list(itertools.combinations(sorted(models), 2))
    plan = []
    for i in range(n):
        a, b = pairs[i % len(pairs)]
        plan.append((a, b) if rng.random() < 0.5 else (b, a))
    return plan


def outcome_of(correct_a: bool, correct_b: bool) -> str:
    """The verdict of one battle from the evaluator's per-image correctness."""
    if correct_a and correct_b:
        return "tie"
    if not (correct_a or correct_b):
        return "both_bad"
    return "a" if correct_a else "b"


def auto_judge(generators: Mapping[str, Generator], n: int = 30, seed: int = 0, kind: str = "one",
               evaluator: Any = None, progress: Callable[[str], None] | None = None) -> list[Vote]:
    """Play ``n`` battles between ``generators`` (name -> text-conditional generator); votes with judge="auto".

    ``kind``: the prompts' number of objects (``KINDS``); ``evaluator``: a ``ShapesEvaluator`` (None:
    the built-in one). The votes are returned, not stored: the caller adds them to its ``VoteStore``.
    """
    from t2i.data.shapes import prompts as shapes_prompts
    from t2i.evaluators.shapes import ShapesEvaluator

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    for name, g in generators.items():
        if g.conditioning != "text":
            raise ValueError(f"the auto-judge gives models prompts; {name!r} is conditioned on "
                             f"{g.conditioning!r}: leave it out")
    plan = battle_plan(list(generators), n, seed)
    evaluator = evaluator or ShapesEvaluator.from_pretrained()
    captions = [c for c, _ in shapes_prompts(n, seed=seed, split="test", kind=kind)]
    correct = {}  # model -> (n,) per-prompt all-correct
    for name in sorted({m for pair in plan for m in pair}):
        if progress is not None:
            progress(f"auto-judge: {name} draws {n} images")
        images = generate_conditions(generators[name], captions, seed=seed, n=1)
        correct[name] = [j["all_correct"] for j in evaluator.judge(images, captions)]
    now = time.time()
    return [Vote(uuid.uuid4().hex, now, captions[i], seed + i, a, b, outcome_of(correct[a][i], correct[b][i]), "auto")
            for i, (a, b) in enumerate(plan)]


def demo() -> None:
    for a, b in battle_plan(["shapes-ldm", "shapes-tgan", "shapes-cvae"], 6, seed=0):
        print(a, "vs", b)
    print({(x, y): outcome_of(x, y) for x in (True, False) for y in (True, False)})
