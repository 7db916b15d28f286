"""What a prompt outside its model's caption form costs: two-object prompts with sizes.

shapes' two-object captions carry no sizes ("a red circle above a blue square": both objects are small), so
"a small red circle above a large blue square" joins words no training caption joins, though each word is
known. This draws each of N two-object prompts of the test split with and without sizes (a size drawn at
random before each object), judges both against the size-free caption (the shapes evaluator: relation,
binding, all correct; sizes not judged) and counts the prompts ``t2i.provenance`` warns of. ``--data``: for
captioned folders with a test split, the pairs their training captions keep apart and how many of their test
captions would be warned of (false alarms: a test caption is in its data's form).

    python -m benchmarks.caption_form --models shapes-ldm-6,shapes-ldm,shapes-tgan --prompts 24 --n 4
    python -m benchmarks.caption_form --models "" --data /tmp/kohya/split,/tmp/emoji/emoji
"""

from __future__ import annotations

import argparse
import random
import re
from typing import Sequence


def with_sizes(caption: str, rng: random.Random) -> str:
    """``caption`` (a two-object one) with a size drawn before each object's colour."""
    from t2i.data.shapes import COLOURS, SIZES

    colour = re.compile(r"\ba (" + "|".join(COLOURS) + r") ")
    return colour.sub(lambda m: f"a {rng.choice(SIZES)} {m.group(1)} ", caption)


def false_alarms(folder: str) -> str:
    """A table row: ``folder``'s training captions, the pairs they keep apart, its test captions warned of."""
    from t2i.data import load_dataset
    from t2i.provenance import apart_pairs, captions_of, joined_apart

    train, test = captions_of(load_dataset(folder, split="train")), captions_of(load_dataset(folder, split="test"))
    apart = apart_pairs(train)
    warned = sum(bool(joined_apart(caption, apart)) for caption in test)
    return f"| {folder} | {len(train)} | {len(apart)} | {warned}/{len(test)} |"


def main(argv: Sequence[str] | None = None) -> int:
    from gan_baselines.registry import load_generator
    from t2i.data.shapes import prompts as shapes_prompts
    from t2i.evaluators.shapes import ShapesEvaluator
    from t2i.generator import generate_conditions
    from t2i.provenance import outside_captions_warning, trained_on

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="shapes-ldm-6,shapes-ldm,shapes-tgan", help="comma list of models")
    parser.add_argument("--prompts", type=int, default=24, help="two-object prompts of the test split")
    parser.add_argument("--n", type=int, default=4, help="images per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="", help="comma list of captioned folders with a test split")
    args = parser.parse_args(argv)
    if args.data:
        print("| data | training captions | pairs apart | test captions warned |\n| --- | --- | --- | --- |")
        for folder in args.data.split(","):
            print(false_alarms(folder), flush=True)
    if not args.models:
        return 0

    evaluator = ShapesEvaluator.from_pretrained()
    plain = [caption for caption, _ in shapes_prompts(args.prompts, seed=1, split="test", kind="two")]
    rng = random.Random(args.seed)
    sized = [with_sizes(caption, rng) for caption in plain]
    judged_against = [caption for caption in plain for _ in range(args.n)]
    print(f"{len(plain)} two-object prompts x {args.n} images, e.g. {sized[0]!r}; judged against the size-free caption")
    print("| model | prompts | warned | relation | binding | all correct |\n| --- | --- | --- | --- | --- | --- |")
    for name in args.models.split(","):
        generator, trained = load_generator(name), trained_on(name)
        for form, texts in (("size-free", plain), ("with sizes", sized)):
            warned = sum(outside_captions_warning(text, name, trained) is not None for text in texts)
            rows = evaluator.judge(generate_conditions(generator, texts, seed=args.seed, n=args.n), judged_against)
            mean = lambda key: sum(bool(r[key]) for r in rows) / len(rows)  # noqa: E731
            print(f"| {name} | {form} | {warned}/{len(texts)} | {mean('relation'):.3f} | {mean('binding'):.3f} | "
                  f"{mean('all_correct'):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
