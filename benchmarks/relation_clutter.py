"""What the shapes evaluator's 2-object scores give images that are not scenes: random coloured blobs.

The evaluator judges a 2-object prompt on the pair of found objects that best matches the named ones by
colour and shape (``t2i.evaluators.shapes.judge_prediction``); the relation is looked at only to choose
between pairs that both are the named objects. This prints relation, binding and all correct for K random
blobs (spec colours, discs of radius 2-6 px at random places) on the 2-object prompts of a bench eval set:
the level a cluttered, prompt-blind model reaches. Until 2026-12-02 the relation was weighed with colour
and shape in choosing the pair, and 16 blobs scored 0.84 on it; now they score chance.

    python -m benchmarks.relation_clutter --blobs 0,2,4,8,16
"""

from __future__ import annotations

import argparse
import random
from typing import Sequence

from PIL import Image, ImageDraw


def clutter(rng: random.Random, blobs: int, size: int = 32) -> Image.Image:
    from t2i.data.shapes import COLOURS

    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for _ in range(blobs):
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randint(2, 6)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=rng.choice(list(COLOURS.values())))
    return image


def main(argv: Sequence[str] | None = None) -> int:
    from t2i.bench.scoring import shapes_eval_set
    from t2i.evaluators.shapes import ShapesEvaluator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", default="0,2,4,8,16", help="comma list: blobs per image")
    parser.add_argument("--conditions", type=int, default=200, help="test-split conditions drawn (2-object ones kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    evaluator = ShapesEvaluator.from_pretrained()
    eval_set = shapes_eval_set("eval", args.conditions, 0, 1, seed=3)
    prompts = [p for p, r in zip(eval_set.prompts, eval_set.records) if len(r["objects"]) == 2]
    rng = random.Random(args.seed)
    print(f"{len(prompts)} two-object prompts; per image K random blobs")
    print("| blobs | relation | binding | all correct |\n| --- | --- | --- | --- |")
    for k in (int(b) for b in args.blobs.split(",")):
        rows = evaluator.judge([clutter(rng, k) for _ in prompts], prompts)
        mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
        print(f"| {k} | {mean('relation'):.3f} | {mean('binding'):.3f} | {mean('all_correct'):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
