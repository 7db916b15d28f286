"""Write the built-in datasets to disk, convert to shards, and validate user data.

Sub-commands:
- ``t2i data shapes --out DIR --n N --size 32 --split train --seed 0 --p-two 0.5``:
  an imagefolder (``images/*.png`` + ``metadata.jsonl`` with ``file_name``, ``text``,
  ``objects``, ``relation``), byte-identical for the same arguments.
- ``t2i data translation --task outline|greyscale|background --out DIR --n N --size 32 --seed 0``:
  image-to-image pairs from the shapes scenes in pix2pix's side-by-side layout (``AB/*.png``, A | B)
  and the two-folder layout (``A/``, ``B/``, same names) + ``metadata.jsonl`` with the scene labels
  (``t2i.data.translation``); ``t2i train pix2pix|cyclegan --data DIR`` reads either layout.
- ``t2i data digits --out DIR --size 32``: both splits as imagefolders,
  ``DIR/train`` and ``DIR/test`` (``metadata.jsonl`` with ``file_name``, ``text``, ``label``).
- ``t2i data shards SOURCE --out DIR --per-shard 1000``: any map-style source (shapes, digits, a folder, a
  table, a ``datasets`` source; ``--image-column`` / ``--caption-column`` as for training) as WebDataset tar
  shards (``key.png|jpg|...`` as stored + ``key.txt``, an image's captions one per line [+ ``key.cls``]);
  ``--split all`` writes each split the source holds into ``DIR/<split>/``, and ``--data DIR`` reads them as
  splits (training ``train/``, evaluations ``test/``).
- ``t2i data validate PATH [--strict] [--resize M] [--background C]``: decodes every image of a folder, CSV or shards
  (or every split of a saved ``datasets`` DatasetDict), read as a run with those options will read it,
  and prints the bad-data report (every problem; conversions counted per rule, every one with
  ``--strict``; how many images a crop cuts). Exit status: 0 clean, 1 problems found (items that
  training would skip; with ``--strict`` also images that needed conversion to RGB),
  2 the source itself cannot be read. An image-to-image folder (``t2i.data.translation``'s layouts)
  is read as ``t2i train pix2pix|cyclegan`` reads it, each split.

    t2i data shapes --out /tmp/shapes200 --n 200 && t2i data validate /tmp/shapes200
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from t2i.data import DEFAULT_N, describe_source, load_dataset, require_captions, shapes
from t2i.data import translation
from t2i.data.bad_data import CONVERTED_EXAMPLES, BadDataReport
from t2i.data.digits import write_digits
from t2i.data.folder import folder_splits
from t2i.data.shards import IMAGE_EXTS, encode_png, shard_splits, write_shards
from t2i.data.transforms import BACKGROUNDS, RESIZE_MODES


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="t2i data", description=__doc__.split("\n\n")[0], formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{shapes,translation,digits,shards,validate}")

    p = sub.add_parser("shapes", help="write the shapes dataset as an imagefolder", formatter_class=fmt)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=1000, help="number of scenes")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (32 or 64)")
    p.add_argument("--split", choices=shapes.SPLITS, default="train",
                   help="train/test never hold the held-out pairs; novel always does")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene stream")
    p.add_argument("--p-two", type=float, default=0.5, help="probability that a scene holds two objects")

    p = sub.add_parser("translation", help="write an image-to-image task (A|B, A/, B/) from shapes scenes",
                       formatter_class=fmt)
    p.add_argument("--task", choices=list(translation.TASKS), required=True,
                   help="; ".join(f"{k}: {v}" for k, v in translation.TASKS.items()))
    p.add_argument("--out", required=True, help="output folder (gets AB/, A/, B/ and metadata.jsonl)")
    p.add_argument("--n", type=int, default=1000, help="number of pairs")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (32 or 64)")
    p.add_argument("--split", choices=shapes.SPLITS, default="train", help="which scene stream (as t2i data shapes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene stream")

    p = sub.add_parser("digits", help="write sklearn digits (train and test) as imagefolders", formatter_class=fmt)
    p.add_argument("--out", required=True, help="output folder (gets train/ and test/)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels")

    p = sub.add_parser("shards", help="convert a map-style source to WebDataset shards", formatter_class=fmt)
    p.add_argument("source", help="shapes, digits, a folder with metadata.jsonl, or a .csv/.tsv")
    p.add_argument("--out", required=True, help="output folder for shard-00000.tar, ...")
    p.add_argument("--per-shard", type=int, default=1000, help="samples per tar file")
    p.add_argument("--split", default="train", help="which split of the source; all: every split it holds, each "
                   "into OUT/<split>/")
    p.add_argument("--n", type=int, default=None, help=f"items to write; None: all (shapes: {DEFAULT_N['train']} train)")
    p.add_argument("--size", type=int, default=32, help="image side for shapes/digits (files are copied as they are)")
    p.add_argument("--seed", type=int, default=0, help="seed for shapes")
    p.add_argument("--image-column", default=None, help="image column; None: file_name for folders, filepath for CSV, "
                   "image for datasets")
    p.add_argument("--caption-column", default=None, help="caption column(s), comma-separated; None: text for folders, "
                   "title for CSV, text for datasets")

    p = sub.add_parser("validate", help="report bad images and captions without training", formatter_class=fmt)
    p.add_argument("path", help="a folder with metadata.jsonl, a .csv/.tsv file, WebDataset shards, or an "
                   "image-to-image folder (pix2pix's train/ + test/, CycleGAN's trainA/ + trainB/, A/ + B/)")
    p.add_argument("--strict", action="store_true", help="also count images that needed conversion to RGB")
    p.add_argument("--split", default=None, help="only this split of a folder with split subfolders; None: all of them")
    p.add_argument("--image-column", default=None, help="image column; None: file_name for folders, filepath for CSV, any image extension for shards")
    p.add_argument("--caption-column", default=None, help="caption column; None: text for folders, title for CSV, txt for shards")
    p.add_argument("--sep", default=None, help="CSV separator; None: by extension, ',' (.csv) or tab (.tsv)")
    p.add_argument("--resize", default="center-crop", choices=list(RESIZE_MODES),
                   help="as training will read the images: how many a crop cuts is reported (default: center-crop)")
    p.add_argument("--background", default="black", choices=list(BACKGROUNDS),
                   help="as training will read the images: the colour under transparent pixels (default: black)")
    return parser


def _write_shards(args: argparse.Namespace) -> int:
    from PIL import Image

    kind = describe_source(args.source)
    if kind == "shards":
        raise ValueError(f"{args.source} already is WebDataset shards")
    if args.split == "all":  # OUT/<split>/ for each split: train on OUT/train, hold out OUT/test
        splits = every_split(args.source, kind) if kind not in ("shapes", "digits") else ["train", "test"]
        for split in splits:
            _write_shards(argparse.Namespace(**{**vars(args), "split": split, "out": str(Path(args.out) / split)}))
        held_out = "; evaluations read test/" if "test" in splits else ""
        print(f"give --data {args.out} to any trainer or evaluation (splits {', '.join(splits)}): training reads "
              f"train/{held_out}")
        return 0
    columns = {k: v for k, v in (("image_column", args.image_column), ("caption_column", args.caption_column))
               if v is not None}
    ds = load_dataset(args.source, split=args.split, size=args.size, n=args.n, seed=args.seed, **columns)
    require_captions(ds, "a shard (key.txt)")
    caption_lists = getattr(ds, "caption_lists", None) or [[c] for c in ds.captions]  # generated data: one each
    items, labels, encoded = [], [], 0
    for i in tqdm(range(len(ds)), desc="collecting", unit="img"):
        if kind in ("shapes", "digits"):  # generated: encode the cached pixels as PNG
            data, ext = encode_png(Image.fromarray(ds.images[i].permute(1, 2, 0).squeeze(-1).numpy())), "png"
        else:  # the file as stored (no re-encoding), unless the shard reader would not find its extension
            data, ext = ds.original_file(i)
            if ext not in IMAGE_EXTS:
                data, ext, encoded = encode_png(Image.open(io.BytesIO(data))), "png", encoded + 1
        items.append((data, caption_lists[i], ext))
        labels.append(int(ds.labels[i]))
    paths = write_shards(items, args.out, per_shard=args.per_shard, labels=labels if ds.num_classes else None)
    several = sum(len(captions) > 1 for _, captions, _ in items)
    print(f"wrote {len(items)} samples in {len(paths)} shards to {args.out}"
          + (f"; {several} with several captions (one per line of key.txt)" if several else "")
          + (f"; {encoded} images re-encoded as PNG (not {'/'.join(IMAGE_EXTS)})" if encoded else ""))
    return 0


def every_split(source: str, kind: str) -> list[str]:
    """The splits a source holds: a folder's split subfolders, a saved ``DatasetDict``'s splits, else ``train``."""
    root = Path(source)
    if kind == "folder":
        return list(folder_splits(root))
    if kind == "hf-disk" and (root / "dataset_dict.json").is_file():
        return json.loads((root / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    if kind == "shards":
        return list(shard_splits(root)) or ["train"]
    return ["train"]


def _validate_translation(args: argparse.Namespace) -> int:
    """An image-to-image folder: every image of each split it holds, read as pix2pix / CycleGAN will read it."""
    reports = []
    for split in ([args.split] if args.split else ["train", "test"]):
        if translation.has_split(args.path, split):
            data = translation.load_split(args.path, split, resize=args.resize, background=args.background)
            data.report.source += (f": image-to-image, {len(data.A)} {'pairs' if data.paired else 'A images'}"
                                   + ("" if data.paired else f" and {len(data.B)} B images"))
            reports.append(data.report)
    return _print_reports(reports, args.strict)


def _print_reports(reports: list[BadDataReport], strict: bool) -> int:
    bad = 0
    for report in reports:
        print(report.summary(max_examples=None, converted_examples=None if strict else CONVERTED_EXAMPLES))
        bad += report.problems + (report.converted if strict else 0)
    print("OK: no problems found" if not bad else f"FOUND {bad} problem item(s)")
    return 1 if bad else 0


def _validate(args: argparse.Namespace) -> int:
    if translation.is_translation_folder(args.path):
        try:
            return _validate_translation(args)
        except ValueError as err:
            print(f"t2i data validate: {err}", file=sys.stderr)
            return 2
    try:
        kind = describe_source(args.path)
    except ValueError as err:
        print(f"t2i data validate: {err}", file=sys.stderr)
        return 2
    if kind in ("shapes", "digits"):
        print(f"{kind} is generated in memory: nothing to validate")
        return 0
    reports: list[BadDataReport] = []
    columns = {k: v for k, v in (("image_column", args.image_column), ("caption_column", args.caption_column))
               if v is not None}
    reading = {"resize": args.resize, "background": args.background}
    try:
        if kind == "shards":
            if args.sep:
                raise ValueError("--sep applies to CSV files only")
            reports.append(load_dataset(args.path, **columns, **reading).scan())
        else:
            if kind == "csv" and args.sep is not None:
                columns["sep"] = args.sep
            splits = [args.split] if args.split is not None else every_split(args.path, kind)
            for split in splits:
                try:
                    ds = load_dataset(args.path, split=split, check="decode", **columns, **reading)
                    reports.append(ds.report)
                except ValueError as err:
                    if "no usable items" not in str(err):
                        raise
                    print(err)
                    return 2
    except ValueError as err:
        print(f"t2i data validate: {err}", file=sys.stderr)
        return 2
    return _print_reports(reports, args.strict)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "shapes":
        out = shapes.write_dataset(args.out, args.n, args.seed, args.size, args.split, args.p_two)
        print(f"wrote {args.n} {args.split} scenes ({args.size}px, seed {args.seed}) to {out}")
        return 0
    if args.command == "translation":
        out = translation.write_translation(args.out, args.task, args.n, args.seed, args.size, args.split)
        print(f"wrote {args.n} {args.task} pairs ({args.size}px, {args.split}, seed {args.seed}) to {out} "
              "(AB/ side by side, A/ and B/, metadata.jsonl)")
        return 0
    if args.command == "digits":
        out = write_digits(args.out, args.size)
        print(f"wrote digits train/ and test/ ({args.size}px) to {out}")
        return 0
    if args.command == "shards":
        return _write_shards(args)
    return _validate(args)


if __name__ == "__main__":
    sys.exit(main())
