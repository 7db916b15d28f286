"""Does a one-object prompt land where it says? Position accuracy per named position and size.

For each model: every seen colour-shape pair (24) at each of the five positions and both sizes,
`--k` images per prompt (seeded as the generator contract says), judged by the shapes evaluator
(spec rule: the named anchor is the nearest anchor to the object's centre). Prints, per position
and size, the position accuracy and the mean centre the model drew next to the mean labelled
centre of real scenes at that place (the spec's anchors after jitter and clamping), and writes a
figure: one row per model, large objects "in the bottom right" and "in the center" (the two
places a 3-level UNet on 8x8 latents confuses, see `t2i.diffusion.unet`), framed green when
placed right, red when not.

    python -m benchmarks.positions --models before=/path/to/old/shapes-ldm shapes-ldm --k 2 \
        --figure benchmarks/results/positions.png --json benchmarks/results/positions.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def prompts_by_place() -> dict[tuple[str, str], list[str]]:
    """(size, position) -> the 24 one-object captions of the seen colour-shape pairs (the `test` split's)."""
    from t2i.data.shapes import HELD_OUT_PAIRS, PAIRS, POSITIONS, SIZES
    return {(size, position): [f"a {size} {c} {s} in the {position}" for c, s in PAIRS if (c, s) not in HELD_OUT_PAIRS]
            for size in SIZES for position in POSITIONS}


def real_centres() -> dict[tuple[str, str], list[float]]:
    """(size, position) -> mean labelled object centre (x, y) of the one-object scenes among 4000 `test` scenes."""
    from t2i.data.shapes import make_scenes
    centres: dict[tuple[str, str], list] = {}
    for record in make_scenes(4000, seed=1, split="test"):
        if len(record["objects"]) == 1:
            obj = record["objects"][0]
            centres.setdefault((obj["size"], obj["position"]), []).append(obj["centre"])
    return {place: [round(float(v), 2) for v in np.mean(c, axis=0)] for place, c in centres.items()}


def measure(model: Any, k: int) -> tuple[dict[str, Any], dict[tuple[str, str], tuple[list[str], list, list[dict]]]]:
    """Per (size, position): position accuracy, all correct, mean drawn centre; and the images and judgements."""
    from gan_baselines.registry import load_generator
    from t2i.evaluators.shapes import ShapesEvaluator
    from t2i.generator import generate_conditions

    generator = load_generator(model) if isinstance(model, (str, Path)) else model
    evaluator = ShapesEvaluator.from_pretrained()
    table, kept, real = {}, {}, real_centres()
    for (size, position), captions in prompts_by_place().items():
        images = generate_conditions(generator, captions, seed=0, n=k)
        repeated = [c for c in captions for _ in range(k)]
        judged = evaluator.judge(images, repeated)
        drawn = [p["objects"][0]["centre"] for p in evaluator.predict(images) if p["objects"]]
        table[f"{size} {position}"] = {
            "position": round(sum(j["position"] for j in judged) / len(judged), 3),
            "all_correct": round(sum(j["all_correct"] for j in judged) / len(judged), 3),
            "drawn_centre": [round(float(v), 2) for v in np.mean(drawn, axis=0)] if drawn else None,
            "real_centre": real[(size, position)]}
        kept[(size, position)] = (repeated, images, judged)
    return table, kept


def figure(rows: dict[str, dict], path: Path, places=(("large", "bottom right"), ("large", "center")),
           columns: int = 8) -> Path:
    """One row per model: `columns` images of each place in `places`, spread over its prompts, framed by position
    right (green) or wrong (red)."""
    from PIL import Image, ImageDraw

    from benchmarks.relations import FRAME  # the frame colours of the relations figure: right / wrong
    cell, pad, side, head = 64, 4, 110, 16
    width = side + len(places) * columns * (cell + pad) + pad * 4
    sheet = Image.new("RGB", (width, head + len(rows) * (cell + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for p, (size, position) in enumerate(places):
        draw.text((side + p * (columns * (cell + pad) + pad * 4), 2), f"a {size} ... in the {position}", fill="black")
    for r, (label, kept) in enumerate(rows.items()):
        y = head + r * (cell + pad)
        draw.text((4, y + cell // 2 - 6), label[:17], fill="black")
        for p, place in enumerate(places):
            _, images, judged = kept[place]
            every = max(1, len(images) // columns)  # spread over the prompts: every colour and shape shows
            for c, i in enumerate(range(0, len(images), every)[:columns]):
                x = side + p * (columns * (cell + pad) + pad * 4) + c * (cell + pad)
                draw.rectangle((x - 2, y - 2, x + cell + 1, y + cell + 1),
                               fill=FRAME["all"] if judged[i]["position"] else FRAME["wrong"])
                sheet.paste(images[i].convert("RGB").resize((cell, cell), Image.NEAREST), (x, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", help="generators: names or folders, optionally LABEL=MODEL")
    parser.add_argument("--k", type=int, default=2, help="images per prompt (24 prompts per size and position)")
    parser.add_argument("--figure", default="", help="PNG: large objects in the bottom right and the center, a row per model")
    parser.add_argument("--json", default="", help="where to write the table")
    args = parser.parse_args(argv)
    results, rows = {}, {}
    for spec in args.models:
        label, _, model = spec.rpartition("=")
        label = label or Path(model).name
        start = time.perf_counter()
        results[label], rows[label] = measure(model, args.k)
        results[label]["seconds"] = round(time.perf_counter() - start, 1)
    places = [p for p in next(iter(results.values())) if p != "seconds"]
    print(f"position accuracy per place, {24 * args.k} images each (24 prompts x {args.k}); drawn / real mean centre (x, y) in px")
    print("| place | " + " | ".join(results) + " |")
    print("| --- |" + " --- |" * len(results))
    for place in places:
        cells = [f"{r[place]['position']:.3f} ({r[place]['drawn_centre'][0]:.1f}, {r[place]['drawn_centre'][1]:.1f})"
                 if r[place]["drawn_centre"] else f"{r[place]['position']:.3f}" for r in results.values()]
        real = next(iter(results.values()))[place]["real_centre"]
        print(f"| {place} (real ({real[0]:.1f}, {real[1]:.1f})) | " + " | ".join(cells) + " |")
    if args.figure:
        print(f"wrote {figure(rows, Path(args.figure))}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"k": args.k, "generators": results}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
