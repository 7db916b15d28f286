"""Does the picture show what the prompt says about *two* objects? Relations and attribute binding.

For each model, the same held-out two-object prompts ("a blue square above a yellow triangle";
`test` = seen colour-shape pairs, `novel` = a held-out pair named) and one-object prompts, one
image each (prompt i drawn from seed i), judged by the shapes evaluator (spec rules: colour,
shape, binding = each object with its own colour and shape, relation, all correct). Prints a
table and writes a figure: one row per model, the same prompts in the columns, each image
framed green when all is correct, orange when only the relation is wrong, red otherwise
(``--figure-prompts`` picks the list: two-object test prompts by default).

    python -m benchmarks.relations --models before=/path/to/old/shapes-ldm shapes-ldm \
        --n 200 --figure docs/figures/relations_before_after.png --json benchmarks/results/relations.json

`--clips` asks the app's question of each CLIP: does CLIP score prefer the right drawing of a
two-object prompt over the same objects with their places swapped (`swapped_scene`)?
"""

from __future__ import annotations

import argparse
import json
import textwrap
import time
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw

FRAME = {"all": (40, 170, 60), "relation": (240, 150, 20), "wrong": (210, 40, 40)}  # RGB of the frame colours
CELL = 96  # pixels of one upscaled image in the figure


def measure(model: Any, n: int, **options: Any) -> tuple[dict[str, Any], dict[str, tuple[list[str], list[Image.Image], list[dict]]]]:
    """Shapes-evaluator table per split (test, novel) and kind (one, two objects) of ``model`` (a name, a
    folder or a loaded generator) with its sampling ``options``: one image per caption, caption i from seed
    i (the generator contract's seeding rule), so `t2i sample --prompts FILE --seed 0` on the same list draws
    the same images. Also returns (captions, images, judgements) per list."""
    from gan_baselines.registry import load_generator
    from t2i.data.shapes import prompts
    from t2i.evaluators.shapes import ShapesEvaluator
    from t2i.generator import generate_conditions

    generator = load_generator(model) if isinstance(model, (str, Path)) else model
    evaluator = ShapesEvaluator.from_pretrained()
    table: dict[str, Any] = {}
    kept = {}
    for split in ("test", "novel"):
        for kind in ("one", "two"):
            captions = [c for c, _ in prompts(n, seed=0, split=split, kind=kind)]
            images = generate_conditions(generator, captions, seed=0, n=1, **options)
            judged = evaluator.judge(images, captions)
            keys = ("colour", "shape", "size", "position", "all_correct") if kind == "one" else \
                ("colour", "shape", "binding", "relation", "all_correct")
            table[f"{split}_{kind}"] = {k: round(sum(j[k] for j in judged) / len(judged), 3) for k in keys}
            kept[f"{split}_{kind}"] = (captions, images, judged)
    return table, kept


def clip_prefers_right_drawing(clip: str, n: int) -> dict[str, float]:
    """Share of `n` two-object test scenes whose render scores a higher CLIP score with its caption
    than the swapped-places render does; and the mean CLIP score of each."""
    import numpy as np
    import torch

    from t2i.clip import get_tokenizer, load_clip
    from t2i.clip.negatives import swapped_scene
    from t2i.data.shapes import make_scenes, render
    from t2i.metrics.clip_score import clip_cosines

    def pixels(records: list[dict]) -> torch.Tensor:  # (N, 3, S, S) in [0, 1]
        return torch.stack([torch.from_numpy(np.array(render(r))).permute(2, 0, 1).float() / 255 for r in records])

    model = load_clip(clip)
    scenes = make_scenes(n, seed=0, split="test", p_two=1.0)
    captions = [r["caption"] for r in scenes]
    right = 100 * clip_cosines(pixels(scenes), captions, model, get_tokenizer(model)).clamp_min(0)
    swapped = 100 * clip_cosines(pixels([swapped_scene(r) for r in scenes]), captions, model, get_tokenizer(model)).clamp_min(0)
    return {"prefers_right": round(float((right > swapped).float().mean()), 3),
            "clip_score_right": round(float(right.mean()), 2), "clip_score_swapped": round(float(swapped.mean()), 2)}


def figure(rows: dict[str, tuple[list[str], list[Image.Image], list[dict]]], path: Path, columns: int = 8) -> Path:
    """Rows = models; columns = the first `columns` prompts; the prompt is written above each column."""
    labels = list(rows)
    captions = rows[labels[0]][0][:columns]
    head, side = 40, 110
    sheet = Image.new("RGB", (side + columns * (CELL + 6), head + len(labels) * (CELL + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, caption in enumerate(captions):
        for line, text in enumerate(textwrap.wrap(caption, 17)[:3]):  # about 17 characters fit above a cell
            draw.text((side + c * (CELL + 6), 2 + 12 * line), text, fill="black")
    for r, label in enumerate(labels):
        _, images, judged = rows[label]
        y = head + r * (CELL + 6)
        draw.text((4, y + CELL // 2 - 6), label[:17], fill="black")
        for c in range(len(captions)):
            x = side + c * (CELL + 6)
            j = judged[c]
            colour = FRAME["all"] if j["all_correct"] else FRAME["relation"] if j.get("binding") else FRAME["wrong"]
            draw.rectangle((x - 3, y - 3, x + CELL + 2, y + CELL + 2), fill=colour)
            sheet.paste(images[c].convert("RGB").resize((CELL, CELL), Image.NEAREST), (x, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=[], help="generators: names or folders, optionally LABEL=MODEL")
    parser.add_argument("--clips", nargs="*", default=[], help="CLIPs for the CLIP-score check: names or folders, optionally LABEL=MODEL")
    parser.add_argument("--n", type=int, default=200, help="prompts per split and kind (one image each)")
    parser.add_argument("--figure", default="", help="PNG of the first 8 prompts of --figure-prompts, one row per model")
    parser.add_argument("--figure-prompts", default="test_two", choices=[f"{s}_{k}" for s in ("test", "novel")
                                                                         for k in ("one", "two")],
                        help="which prompt list the figure shows (split_kind)")
    parser.add_argument("--json", default="", help="where to write the table")
    args = parser.parse_args(argv)
    results, rows, clips = {}, {}, {}
    for spec in args.clips:
        label, _, model = spec.rpartition("=")
        clips[label or Path(model).name] = found = clip_prefers_right_drawing(model, args.n)
        print(f"{label or model}: CLIP score prefers the right drawing over the swapped one on {found['prefers_right']:.1%} "
              f"of {args.n} two-object test scenes (mean score {found['clip_score_right']} vs {found['clip_score_swapped']})")
    for spec in args.models:
        label, _, model = spec.rpartition("=")
        label = label or Path(model).name
        start = time.perf_counter()
        table, kept = measure(model, args.n)
        results[label] = {"model": model, "seconds": round(time.perf_counter() - start, 1), **table}
        rows[label] = kept[args.figure_prompts]
        print(f"{label}: " + "; ".join(f"{k} " + ", ".join(f"{a} {v:.3f}" for a, v in t.items())
                                      for k, t in table.items()), flush=True)
    if not results:
        return _write(args, results, clips)
    print("| model | split | one: all correct | two: colour | two: shape | two: binding | two: relation | two: all correct |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r in results.items():
        for split in ("test", "novel"):
            two = r[f"{split}_two"]
            print(f"| {label} | {split} | {r[f'{split}_one']['all_correct']:.3f} | {two['colour']:.3f} | {two['shape']:.3f} | "
                  f"{two['binding']:.3f} | {two['relation']:.3f} | {two['all_correct']:.3f} |")
    if args.figure:
        print(f"wrote {figure(rows, Path(args.figure))}")
    return _write(args, results, clips)


def _write(args: argparse.Namespace, results: dict, clips: dict) -> int:
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"n": args.n, "generators": results, "clips": clips}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
