"""Generate images with any saved generator: diffusion, GAN, VAE (t2i sample).

Every model is loaded through ``gan_baselines.registry.load_generator`` and called through
the one generator contract (``t2i.generator.generate_conditions``), so a new family needs
nothing here. Output: the imagefolder layout of the datasets, ``OUT/images/00000.png ...`` plus
``OUT/metadata.jsonl`` with one row per image: ``file_name``, ``text`` (the prompt, or the class
name for class-conditional models, "" for unconditional ones), ``seed``, ``image_index`` and
``label`` when labels were given. Condition ``i`` (a prompt line, or a label) is drawn from
seed ``--seed + i``, ``--n`` images each, whatever else is asked for in the same run: so
``t2i sample --prompt LINE --seed S --n N`` re-makes a row of a ``--prompts`` run, and every
image the toolkit publishes (the bench, ``t2i eval``, model cards, the trainers' grids) is
re-made by one command. Conditions are batched (``--batch-size`` images per call). Also
``OUT/grid.png`` (all images, one row per condition).

Family options are flags derived from each family's typed options (diffusers' names for
latent diffusion: ``--sampler``, ``--num-inference-steps``, ``--guidance-scale``,
``--negative-prompt``; ``--temperature`` and ``--latents`` for VAEs). A given option the
loaded family does not take is ignored with a note on stderr, never an error, so one command
line serves every model of a comparison. Prompts with words the model's training captions never held, joining
words they never join (a size with a relation, for the shapes models) or worded as they never are (the articles
left out) get a warning on stderr (``t2i.provenance``: the record its trainer wrote); a model without a record
gets none.

    t2i sample --model shapes-ldm --prompt "a large red circle in the center" --n 8 --seed 0 --out /tmp/samples
    t2i sample --model shapes-ldm --prompts prompts.txt --sampler dpm-solver++ --num-inference-steps 20 --out /tmp/s
    t2i sample --model digits-vae --n 16 --temperature 0.8 --out /tmp/digits          # unconditional

Image inputs (unCLIP models, ``t2i train unclip``): ``--image PATH`` alone draws ``--n`` variations of the
image (its CLIP embedding decoded with new noise); with ``--prompt`` it edits the image towards the prompt
by ``--weight`` (0 = the image, 1 = the prompt). The images are drawn from ``--seed``.

    t2i sample --model shapes-unclip --image scene.png --n 4 --out /tmp/variations
    t2i sample --model shapes-unclip --image scene.png --prompt "a large blue square in the center" --weight 0.5 --out /tmp/edit
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from t2i.unclip.relayout import LAYOUTS


def family_options() -> dict[str, tuple[list[str], str]]:
    """Every option of every registered family: name -> (families that take it, help text)."""
    from gan_baselines.registry import FAMILIES, options_type
    from t2i.config import field_comments
    from t2i.generator import option_choices

    found: dict[str, tuple[list[str], str]] = {}
    for family in FAMILIES:
        cls = options_type(family)
        comments = field_comments(cls)
        for f in dataclasses.fields(cls):
            choices = option_choices(cls, f.name)
            text = comments.get(f.name, "") + (f"; one of {', '.join(map(str, choices))}" if choices else "")
            families, _ = found.setdefault(f.name, ([], text))
            families.append(family)
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="t2i sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a saved model folder, a run folder, a built-in name or a hub id")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--prompt", action="append",
                      help="a prompt; repeat for several (prompt i uses seed + i, as the lines of --prompts)")
    cond.add_argument("--prompts", metavar="FILE",
                      help="a text file with one prompt per line (blank lines skipped); - reads them from stdin")
    cond.add_argument("--labels", help="class labels of class-conditional models, numbers or names: 0,1,2 or food,town")
    p.add_argument("--image", metavar="PATH", help="unCLIP models: variations of this image (with --prompt: an edit towards it)")
    p.add_argument("--strength", type=float, default=0.0, help="with --image alone: re-sample the image's embedding through the prior this far first, 0..1 (default: 0)")
    p.add_argument("--layout", choices=LAYOUTS, default="move",
                   help="with --image alone: move: each variation starts from a copy with the content moved to a random place "
                        "on its background (what a layout-reading CLIP pins then changes); keep: the image as it is (default: move)")
    p.add_argument("--weight", type=float, default=0.5, help="with --image and --prompt: 0 = the image, 1 = the prompt (default: 0.5)")
    p.add_argument("--n", type=int, default=1, help="images per prompt / label (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first prompt; prompt i uses seed + i (default: 0)")
    p.add_argument("--out", required=True, help="output folder (images/ + metadata.jsonl + grid.png)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--batch-size", type=int, default=64, help="images per generator call (default: 64)")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch's CPU threads (default 0: torch's own, one per core); 1 is much faster on a busy machine")
    options = p.add_argument_group("family options (given ones a family does not take are ignored with a note)")
    for name, (families, text) in family_options().items():
        options.add_argument("--" + name.replace("_", "-"), dest=name, default=None, metavar="V",
                             help=f"{', '.join(families)}: {text}".replace("%", "%%"))
    from t2i.diffusion.options import LEGACY_KEYS

    for word in argv if argv is not None else sys.argv[1:]:  # the flags of older releases name their new form
        old = word.split("=")[0].removeprefix("--")
        if word.startswith("--") and old in LEGACY_KEYS:
            p.error(f"--{old} is now --{LEGACY_KEYS[old].replace('_', '-')} (diffusers' option name)")
    return p.parse_args(argv)


def read_conditions(args: argparse.Namespace) -> tuple[list[str] | None, list[str] | None]:
    if args.prompt is not None:
        if not all(p.strip() for p in args.prompt):  # before any model is loaded
            raise SystemExit("t2i sample: --prompt is empty: give the text the images should show")
        return list(args.prompt), None
    if args.prompts is not None:
        path = Path(args.prompts)
        if args.prompts == "-":  # `printf 'a frog\na star\n' | t2i sample --prompts - ...`
            path, text = "stdin", sys.stdin.read()
        elif not path.exists():
            raise SystemExit(f"t2i sample: --prompts file {path} does not exist")
        elif path.is_dir():
            raise SystemExit(f"t2i sample: --prompts {path} is a folder: give a text file, one prompt per line")
        else:  # a file, or a pipe such as bash's `--prompts <(...)`
            text = path.read_text(encoding="utf-8")
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
        if not prompts:
            raise SystemExit(f"t2i sample: {path} holds no prompts (one per line)")
        return prompts, None
    if args.labels is not None:
        labels = [x.strip() for x in args.labels.split(",") if x.strip()]
        if not labels:
            raise SystemExit(f"t2i sample: --labels holds no label, got {args.labels!r}: give e.g. 0,1,2")
        return None, labels
    return None, None


def label_indexes(labels: list[str], class_names: Sequence[str]) -> list[int]:
    """``--labels`` as class indexes: numbers as they are, names by the model's ``class_names``."""
    indexes = []
    for label in labels:
        if label.isdigit():
            indexes.append(int(label))
        elif label in class_names:
            indexes.append(list(class_names).index(label))
        else:
            raise SystemExit(f"t2i sample: --labels: {label!r} is neither a number nor one of the model's classes "
                             f"({', '.join(class_names) or 'it names none'})")
    return indexes


def split_options(generator: Any, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The given family options this generator's ``Options`` has (as strings: the contract converts them to
    the field types), and the flags of given ones it has not."""
    takes = {f.name for f in dataclasses.fields(generator.Options)}
    options, ignored = {}, []
    for name in family_options():
        value = getattr(args, name)
        if value is None:
            continue
        if name in takes:
            options[name] = value
        else:
            ignored.append("--" + name.replace("_", "-"))
    return options, ignored


def prompt_warnings(model: str, prompts: list[str]) -> list[str]:
    """At most two lines: the prompts' words that ``model``'s training captions never held, and what is outside
    them in the first of the other prompts that is (words never joined, a wording never used); [] if none (or
    unknown)."""
    from t2i.provenance import outside_captions_warning, trained_on, unknown_words

    trained = trained_on(model)
    unknown = [p for p in prompts if unknown_words(p, trained.words)]
    other = [p for p in prompts if p not in unknown and outside_captions_warning(p, model, trained)]
    lines = []
    if unknown:  # every unknown word in one line
        line = outside_captions_warning(" ".join(unknown), model, trained)
        lines.append(line if len(prompts) == 1 else f"{len(unknown)} of {len(prompts)} prompts: {line}")
    if other:
        line = outside_captions_warning(other[0], model, trained)
        example = f"{len(other)} of {len(prompts)} prompts (e.g. {other[0]!r})"
        lines.append(line if len(prompts) == 1 else f"{example}: {line}")
    return lines


def image_inputs(generator: Any, args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``--image``: variations (no prompt) or an edit towards ``--prompt``; images, metadata.jsonl and grid.png."""
    from t2i.data.bad_data import BadImage, open_image
    from t2i.generator import GenerationError

    if not hasattr(generator, "variations"):
        raise SystemExit(f"t2i sample: --image needs an unCLIP model (`t2i train unclip`); {args.model} is a "
                         f"{generator.family!r} model")
    if args.prompts is not None or args.labels is not None or len(args.prompt or []) > 1:
        raise SystemExit("t2i sample: --image takes one --prompt (an edit) or none (variations), not "
                         "--prompts/--labels or several --prompt")
    prompt = args.prompt[0] if args.prompt else None
    try:
        image = open_image(Path(args.image))
        image.load()  # a truncated file fails here, not in the model
    except (BadImage, OSError) as err:
        raise SystemExit(f"t2i sample: --image {args.image} is not a readable image ({err}); give a PNG/JPEG file") from None
    try:
        if prompt is None:
            images = generator.variations(image, n=args.n, seed=args.seed, strength=args.strength,
                                             layout=args.layout, **options)
        else:
            images = generator.edit(image, prompt, weight=args.weight, n=args.n, seed=args.seed, **options)
    except GenerationError as err:
        raise SystemExit(f"t2i sample: {err}") from None
    setting = {"strength": args.strength, "layout": args.layout} if prompt is None else {"weight": args.weight}
    rows = [{"text": prompt or "", "source_image": str(args.image), "seed": args.seed, "image_index": j, **setting}
            for j in range(len(images))]
    write_outputs(Path(args.out), images, rows)
    what = "variations" if prompt is None else f"edits (weight {args.weight})"
    print(f"wrote {len(rows)} {what} of {args.image} to {args.out} (metadata.jsonl, grid.png)")
    return 0


def write_outputs(out: Path, images: list, rows: list[dict[str, Any]], nrow: int | None = None) -> None:
    """``out/images/00000.png ...``, ``out/metadata.jsonl`` (each row with its ``file_name`` first) and ``out/grid.png``."""
    from t2i.runtime.grids import save_grid

    (out / "images").mkdir(parents=True, exist_ok=True)
    named = []
    for k, (image, row) in enumerate(zip(images, rows)):
        name = f"images/{k:05d}.png"
        image.save(out / name)
        named.append({"file_name": name, **row})
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in named), encoding="utf-8")
    save_grid(images, out / "grid.png", nrow=nrow)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from gan_baselines.registry import load_generator
    from t2i.generator import GenerationError, conditions_for, generate_conditions

    if args.n < 1:
        raise SystemExit(f"t2i sample: --n must be >= 1, got {args.n}")
    if args.batch_size < 1:
        raise SystemExit(f"t2i sample: --batch-size must be >= 1, got {args.batch_size}")
    if args.torch_threads < 0:
        raise SystemExit(f"t2i sample: --torch-threads must be >= 0 (0 = torch's default), got {args.torch_threads}")
    prompts, labels = read_conditions(args)
    if args.torch_threads:
        import torch
        torch.set_num_threads(args.torch_threads)
    generator = load_generator(args.model, device=args.device)
    options, ignored = split_options(generator, args)
    if ignored:
        print(f"t2i sample: note: {', '.join(ignored)} ignored: family {generator.family!r} does not take them",
              file=sys.stderr)
    if args.image is not None:
        return image_inputs(generator, args, options)
    if generator.conditioning == "text" and prompts is None:
        raise SystemExit(f"t2i sample: {args.model} is text-conditional: give --prompt or --prompts")
    if generator.conditioning == "label" and labels is None:
        raise SystemExit(f"t2i sample: {args.model} is class-conditional: give --labels (e.g. 0,1,2)")
    if generator.conditioning == "none" and (prompts is not None or labels is not None):
        print(f"t2i sample: note: {args.model} is unconditional; --prompt/--prompts/--labels ignored", file=sys.stderr)
        prompts = labels = None
    if labels is not None:
        labels = label_indexes(labels, getattr(generator, "class_names", None) or [])
    if prompts is not None and generator.conditioning == "text":
        for warning in prompt_warnings(args.model, prompts):
            print(f"t2i sample: warning: {warning}", file=sys.stderr)
    conditions = conditions_for(generator, prompts, labels)
    try:
        images = generate_conditions(generator, conditions, seed=args.seed, n=args.n, batch_images=args.batch_size,
                                     progress="sampling", **options)
    except GenerationError as err:
        raise SystemExit(f"t2i sample: {err}") from None

    names = generator.class_names
    rows = []
    for k in range(len(images)):
        i, j = divmod(k, args.n)  # condition i, its image j
        condition = conditions[i]
        text = condition if isinstance(condition, str) else "" if condition is None else (
            names[condition] if names and condition < len(names) else str(condition))
        row = {"text": text, "seed": args.seed + i, "image_index": j}
        if labels is not None:
            row["label"] = condition
        rows.append(row)
    write_outputs(Path(args.out), images, rows, nrow=args.n if len(conditions) > 1 and args.n > 1 else None)
    print(f"wrote {len(rows)} images of {generator.family} to {args.out} (metadata.jsonl, grid.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
