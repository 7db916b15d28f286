"""What a prompt outside its model's caption form costs: two-object prompts with sizes, and other forms.

shapes' two-object captions carry no sizes ("a red circle above a blue square": both objects are small), so
"a small red circle above a large blue square" joins words no training caption joins, though each word is
known. This draws each of N prompts of the test split (or ``--split novel``) in its caption form and in the
``--forms`` given (a size drawn at random before each object, or "small", which both are; the articles left out;
capitalised with a full stop; "right of" for "to the right of", only the prompts with one), judges each against the
caption (the shapes evaluator; sizes not judged in a two-object prompt) and counts the prompts ``t2i.provenance``
warns of. ``--data``: for captioned folders with a test split, the pairs their training captions never join and
never put side by side, and how many of their test captions would be warned of (false alarms: a test caption is
worded as its data's are).

    python -m benchmarks.caption_form --models shapes-ldm-6,shapes-ldm,shapes-tgan --prompts 24 --n 4
    python -m benchmarks.caption_form --models shapes-ldm --kind one,two --forms "no articles,capitalised"
    python -m benchmarks.caption_form --models "" --data /tmp/kohya/split,/tmp/emoji/emoji
    python -m benchmarks.caption_form --models runs/plain,runs/reworded --prompts 48 --forms "small sizes,no articles"
"""

from __future__ import annotations

import argparse
import random
import re
from typing import Callable, Sequence


def with_sizes(caption: str, rng: random.Random, sizes: Sequence[str] = ("small", "large")) -> str:
    """``caption`` (a two-object one) with a size drawn from ``sizes`` before each object's colour."""
    from t2i.data.shapes import COLOURS

    colour = re.compile(r"\ba (" + "|".join(COLOURS) + r") ")
    return colour.sub(lambda m: f"a {rng.choice(sizes)} {m.group(1)} ", caption)


FORMS: dict[str, Callable[[str, random.Random], str | None]] = {  # another form of a shapes caption; None: none
    "with sizes": with_sizes,  # two-object captions only
    "small sizes": lambda caption, rng: with_sizes(caption, rng, ("small",)),  # two objects: true (both are small)
    "no articles": lambda caption, rng: re.sub(r"\b(a|the) ", "", caption),
    "capitalised": lambda caption, rng: caption[0].upper() + caption[1:] + ".",
    "right of": lambda caption, rng: caption.replace(" to the ", " ") if " to the " in caption else None,  # left, right
}


def false_alarms(folder: str) -> str:
    """A table row: ``folder``'s training captions, the pairs they never join and never put side by side, its test
    captions warned of."""
    from t2i.data import load_dataset
    from t2i.provenance import apart_pairs, captions_of, joined_apart, never_next_pairs, unseen_next

    train, test = captions_of(load_dataset(folder, split="train")), captions_of(load_dataset(folder, split="test"))
    apart, never_next = apart_pairs(train), never_next_pairs(train)
    warned = sum(bool(joined_apart(caption, apart) or unseen_next(caption, never_next)) for caption in test)
    return f"| {folder} | {len(train)} | {len(apart)} | {len(never_next)} | {warned}/{len(test)} |"


def main(argv: Sequence[str] | None = None) -> int:
    from gan_baselines.registry import load_generator
    from t2i.data.shapes import prompts as shapes_prompts
    from t2i.evaluators.shapes import ShapesEvaluator
    from t2i.generator import generate_conditions
    from t2i.provenance import outside_captions_warning, trained_on

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="shapes-ldm-6,shapes-ldm,shapes-tgan", help="comma list of models")
    parser.add_argument("--prompts", type=int, default=24, help="prompts of each kind, from --split")
    parser.add_argument("--split", default="test", choices=("test", "novel"), help="novel: held-out colour-shape pairs")
    parser.add_argument("--kind", default="two", help="comma list: one, two (objects in the prompts)")
    parser.add_argument("--forms", default="with sizes", help=f"comma list of forms besides the caption: {list(FORMS)}")
    parser.add_argument("--n", type=int, default=4, help="images per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="", help="comma list of captioned folders with a test split")
    args = parser.parse_args(argv)
    if args.data:
        print("| data | training captions | pairs apart | pairs never next | test captions warned |\n"
              + "| --- " * 5 + "|")
        for folder in args.data.split(","):
            print(false_alarms(folder), flush=True)
    if not args.models:
        return 0
    unknown = [form for form in args.forms.split(",") if form not in FORMS]
    if unknown:
        parser.error(f"--forms: unknown {unknown}; known: {list(FORMS)}")

    evaluator = ShapesEvaluator.from_pretrained()
    rng = random.Random(args.seed)
    tasks = []  # (kind, form, the prompts in that form, the captions they are judged against): one set for every model
    for kind in args.kind.split(","):
        captions = [caption for caption, _ in shapes_prompts(args.prompts, seed=1, split=args.split, kind=kind)]
        for form in ["caption", *(f for f in args.forms.split(",") if kind == "two" or "sizes" not in f)]:
            pairs = [(FORMS[form](caption, rng) if form != "caption" else caption, caption) for caption in captions]
            pairs = [(text, caption) for text, caption in pairs if text is not None]  # the prompts the form applies to
            if pairs:
                tasks.append((kind, form, [text for text, _ in pairs], [c for _, c in pairs for _ in range(args.n)]))
    print(f"{args.prompts} prompts of each kind ({args.split} split) x {args.n} images, judged against their caption")
    print("| model | kind | form | e.g. | warned | relation | binding | all correct |\n" + "| --- " * 8 + "|")
    for name in args.models.split(","):
        generator, trained = load_generator(name), trained_on(name)
        for kind, form, texts, judged_against in tasks:
            warned = sum(outside_captions_warning(text, name, trained) is not None for text in texts)
            rows = evaluator.judge(generate_conditions(generator, texts, seed=args.seed, n=args.n), judged_against)
            keys = ("relation", "binding", "all_correct") if kind == "two" else ("all_correct",)
            means = [f"{sum(bool(r[key]) for r in rows) / len(rows):.3f}" for key in keys]
            print(f"| {name} | {kind} | {form} | {texts[0]} | {warned}/{len(texts)} | "
                  + " | ".join(["", ""][:3 - len(means)] + means) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
