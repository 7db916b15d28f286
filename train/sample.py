"""Generate images with any saved generator: diffusion, GAN, VAE (t2i sample).

Every model is loaded through ``gan_baselines.registry.load_generator`` and called through
the one generator contract, so a new family needs nothing here. Output: the imagefolder
layout of the datasets, ``OUT/images/00000.png ...`` plus ``OUT/metadata.jsonl`` with one row
per image: ``file_name``, ``text`` (the prompt, or the class name / label for
class-conditional models, "" for unconditional ones), ``seed``, ``image_index`` and ``label``
when labels were given. Condition ``i`` (a prompt line, or a label) is generated with seed
``--seed + i``, ``--n`` images each, so ``t2i sample --prompt LINE --seed S --n N`` reproduces a
row of a ``--prompts`` run. Also ``OUT/grid.png`` (all images, one row per condition).

Family options (``--sampler``, ``--steps``, ``--guidance``, ``--negative-prompt``) go to the
generators whose ``generate`` takes them (latent diffusion); for the others (GANs, VAEs) an
option given on the command line is ignored with a note on stderr, never an error, so one
command line serves every model of a comparison.

    t2i sample --model shapes-ldm --prompt "a large red circle in the center" --n 8 --seed 0 --out /tmp/samples
    t2i sample --model runs/shapes-ldm --prompts prompts.txt --sampler dpm-solver++ --steps 20 --guidance 3 --out /tmp/s
    t2i sample --model digits-vae --n 16 --out /tmp/digits          # unconditional
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any, Sequence

FAMILY_OPTIONS = ("sampler", "steps", "guidance", "negative_prompt")  # passed only to generators that take them


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="t2i sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a saved model folder, a run folder, a built-in name or a hub id")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--prompt", help="one prompt")
    cond.add_argument("--prompts", metavar="FILE", help="a text file with one prompt per line (blank lines skipped)")
    cond.add_argument("--labels", help="class labels for class-conditional models, e.g. 0,1,2")
    p.add_argument("--n", type=int, default=1, help="images per prompt / label (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first prompt; prompt i uses seed + i (default: 0)")
    p.add_argument("--out", required=True, help="output folder (images/ + metadata.jsonl + grid.png)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--sampler", help="diffusion: ddpm | ddim | dpm-solver++ | euler | euler-ancestral | unipc")
    p.add_argument("--steps", type=int, help="diffusion: number of sampling steps")
    p.add_argument("--guidance", type=float, help="diffusion: classifier-free guidance scale (1 = none)")
    p.add_argument("--negative-prompt", dest="negative_prompt", help="diffusion: what to steer away from")
    return p.parse_args(argv)


def read_conditions(args: argparse.Namespace) -> tuple[list[str] | None, list[int] | None]:
    if args.prompt is not None:
        return [args.prompt], None
    if args.prompts is not None:
        path = Path(args.prompts)
        if not path.is_file():
            raise SystemExit(f"t2i sample: --prompts file {path} does not exist")
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not prompts:
            raise SystemExit(f"t2i sample: {path} holds no prompts (one per line)")
        return prompts, None
    if args.labels is not None:
        try:
            return None, [int(x) for x in args.labels.split(",") if x.strip()]
        except ValueError:
            raise SystemExit(f"t2i sample: --labels must be comma-separated integers, got {args.labels!r}") from None
    return None, None


def split_options(generator: Any, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The family options ``generator.generate`` takes, and the names of given ones it does not."""
    params = inspect.signature(generator.generate).parameters  # named parameters only, not **options
    options, ignored = {}, []
    for name in FAMILY_OPTIONS:
        value = getattr(args, name)
        if value is None:
            continue
        if name in params and params[name].kind is not inspect.Parameter.VAR_KEYWORD:
            options[name] = value
        else:
            ignored.append("--" + name.replace("_", "-"))
    return options, ignored


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from gan_baselines.registry import load_generator
    from t2i.generator import GenerationError
    from t2i.runtime.grids import save_grid
    from tqdm.auto import tqdm

    if args.n < 1:
        raise SystemExit(f"t2i sample: --n must be >= 1, got {args.n}")
    prompts, labels = read_conditions(args)
    generator = load_generator(args.model, device=args.device)
    family = getattr(generator, "family", type(generator).__name__)
    options, ignored = split_options(generator, args)
    if ignored:
        print(f"t2i sample: note: {', '.join(ignored)} ignored: family {family!r} does not take them", file=sys.stderr)
    if generator.conditioning == "text" and prompts is None:
        raise SystemExit(f"t2i sample: {args.model} is text-conditional: give --prompt or --prompts")
    if generator.conditioning == "label" and labels is None:
        raise SystemExit(f"t2i sample: {args.model} is class-conditional: give --labels (e.g. 0,1,2)")
    if generator.conditioning == "none" and (prompts is not None or labels is not None):
        print(f"t2i sample: note: {args.model} is unconditional; --prompt/--prompts/--labels ignored", file=sys.stderr)
        prompts = labels = None
    conditions: list[tuple[str | None, int | None]] = (
        [(p, None) for p in prompts] if prompts is not None else
        [(None, lab) for lab in labels] if labels is not None else [(None, None)])
    names = getattr(generator, "class_names", None)

    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, all_images = [], []
    for i, (prompt, label) in enumerate(tqdm(conditions, desc="sampling", unit="condition")):
        seed = args.seed + i
        try:
            images = generator.generate(prompts=None if prompt is None else [prompt],
                                        labels=None if label is None else [label], seed=seed,
                                        num_images_per_prompt=args.n, **options)
        except GenerationError as err:
            raise SystemExit(f"t2i sample: {err}") from None
        for j, image in enumerate(images):
            name = f"images/{len(rows):05d}.png"
            image.save(out / name)
            text = prompt if prompt is not None else (
                (names[label] if names and label < len(names) else str(label)) if label is not None else "")
            row = {"file_name": name, "text": text, "seed": seed, "image_index": j}
            if label is not None:
                row["label"] = label
            rows.append(row)
        all_images.extend(images)
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    save_grid(all_images, out / "grid.png", nrow=args.n if len(conditions) > 1 and args.n > 1 else None)
    print(f"wrote {len(rows)} images of {family} to {out} (metadata.jsonl, grid.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
