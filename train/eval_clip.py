"""Evaluate a CLIP: image<->text recall@1/5/10, median rank and zero-shot accuracy on held-out data.

Dispatched by ``t2i eval clip``. Retrieval and zero-shot follow ``t2i.clip.evaluate``
(captions that repeat count as the same caption). Built-in zero-shot tasks: colour and
shape for ``shapes`` (single-object scenes), the ten digits for ``digits``; for any
labelled data give ``--classes`` (one name per label, in label order) and ``--templates``.
Order sensitivity (ARO-style, ``t2i.clip.order``): the share of images whose true caption
beats each word-order perturbation (``--order auto``: from the scene labels on shapes, by the
rule-based perturber on any other captions; ``off`` to skip). User images are read as the CLIP was
trained (``--resize``, ``--background`` and the columns of its run's config.json; ``auto``).
Writes ``eval.json`` and ``zero_shot.png`` to ``--out`` (default ``runs/eval-clip``).

    t2i eval clip --model shapes-clip --data shapes --n 500 --out /tmp/clip-eval
    t2i eval clip --model runs/clip/model --data digits --classes 0,1,2,3,4,5,6,7,8,9 --templates "a handwritten digit {}"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from t2i.clip.evaluate import default_splits, evaluate_splits, summary, write_report
from t2i.clip.model import load_clip
from t2i.data import READING_DEFAULTS, as_trained
from t2i.data.transforms import BACKGROUNDS, RESIZE_MODES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="t2i eval clip", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a saved CLIP folder (open_clip layout) or a built-in name (shapes-clip)")
    p.add_argument("--data", default="shapes", help="shapes | digits | a folder with metadata.jsonl | a .csv | shards")
    p.add_argument("--split", default="", help="comma-separated splits; default: test (+ novel for shapes)")
    p.add_argument("--n", type=int, default=0, help="items per split (0 = the source's default, e.g. 2000 shapes scenes)")
    p.add_argument("--size", type=int, default=0, help="image size to load the data at (0 = the model's input size)")
    p.add_argument("--classes", default="", help="comma-separated class names, one per dataset label, for zero-shot")
    p.add_argument("--templates", action="append", default=None,
                   help="prompt template with one {} for the class name; repeat for several (default: '{}')")
    p.add_argument("--ensemble", default="mean", choices=["mean", "marginal"],
                   help="with --classes: average template embeddings (mean, CLIP paper) or sum caption probabilities")
    p.add_argument("--order", default="auto", choices=["auto", "shapes", "rules", "off"],
                   help="order-sensitivity report: perturbations from shapes labels, by rules on any caption, or off")
    p.add_argument("--resize", default="auto", choices=["auto", *RESIZE_MODES],
                   help="user images to square; auto: as the CLIP was trained (its run's config.json), else center-crop")
    p.add_argument("--background", default="auto", choices=["auto", *BACKGROUNDS],
                   help="user images: the colour under transparent pixels; auto: as the CLIP was trained, else black")
    p.add_argument("--image-column", default="",
                   help="the image column of a CSV / datasets source (default: as the CLIP was trained, else its own)")
    p.add_argument("--caption-column", default="",
                   help="the caption column of a CSV / datasets source (default: as the CLIP was trained, else its own)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seed of generated data (shapes)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--out", default="runs/eval-clip", help="folder for eval.json and zero_shot.png")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.templates and not args.classes:
        raise SystemExit("t2i eval clip: --templates needs --classes (the names to put into them)")
    model = load_clip(args.model, device=args.device)
    splits = [s for s in args.split.split(",") if s] or default_splits(args.data)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] or None
    options, note = as_trained(args.data, {k: getattr(args, k) for k in READING_DEFAULTS}, args.model)
    if note:
        print(note)
    results = evaluate_splits(model, args.data, splits, n=args.n or None, size=args.size or None, classes=classes,
                              templates=args.templates, device=args.device, batch_size=args.batch_size,
                              seed=args.seed, ensemble=args.ensemble, order=args.order, **options)
    if not args.split and splits == ["train"]:  # a single-split source given as the held-out data: name it as given
        results = {Path(str(args.data).rstrip("/")).name: results["train"]}
    report = write_report(results, Path(args.out), title=f"{args.model} on {args.data}",
                          extra={"model": str(args.model), "data": args.data, "n": args.n})
    print(summary(results))
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
