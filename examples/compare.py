"""Side-by-side picture for the real-data recipes (emoji, glyphs): for a few captions of a split, the real image and one
image from each model (the generator contract: caption i from seed i), captions written above.

    python examples/compare.py --data data/emoji --split test --models ldm=runs/emoji/ldm tgan=runs/emoji/tgan \
        --n 8 --out benchmarks/emoji/compare_test.png
"""

from __future__ import annotations

import argparse
import random
import textwrap
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from gan_baselines.registry import load_generator
from t2i.data import load_dataset
from t2i.generator import generate_conditions, to_pil

LABEL_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the captioned folder (with train/ and test/)")
    parser.add_argument("--split", default="test", help="which split's captions to draw")
    parser.add_argument("--models", nargs="+", required=True, help="NAME=FOLDER, one per row")
    parser.add_argument("--n", type=int, default=8, help="captions (columns)")
    parser.add_argument("--seed", type=int, default=0, help="picks the captions; caption i is drawn from seed i")
    parser.add_argument("--cell", type=int, default=96, help="side of each picture in the figure, pixels")
    parser.add_argument("--out", required=True, help="the PNG to write")
    args = parser.parse_args(argv)

    data = load_dataset(args.data, split=args.split, size=64)
    picks = random.Random(args.seed).sample(range(len(data)), min(args.n, len(data)))
    items = [data[i] for i in picks]
    captions = [item["text"] for item in items]
    rows: list[tuple[str, list[Image.Image]]] = [("real", to_pil(torch.stack([item["image"] for item in items])))]
    for spec in args.models:
        name, _, folder = spec.partition("=")
        generator = load_generator(folder)
        rows.append((name, generate_conditions(generator, captions, seed=0, progress=name)))

    cell, label_h, name_w = args.cell, 62, 70
    font = ImageFont.truetype(LABEL_FONT, 11)
    sheet = Image.new("RGB", (name_w + cell * len(captions), label_h + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, caption in enumerate(captions):
        draw.multiline_text((name_w + j * cell + 2, 2), "\n".join(textwrap.wrap(caption, 16)[:4]), fill="black", font=font)
    for r, (name, images) in enumerate(rows):
        draw.text((4, label_h + r * cell + cell // 2 - 6), name, fill="black", font=font)
        for j, image in enumerate(images):
            sheet.paste(image.convert("RGB").resize((cell, cell), Image.NEAREST), (name_w + j * cell, label_h + r * cell))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}: {len(captions)} {args.split} captions x {len(rows)} rows")


if __name__ == "__main__":
    main()
