"""Build a real captioned dataset from the Noto Color Emoji font: one image per emoji, its
Unicode name as the caption, in the imagefolder layout every ``t2i train`` command reads.

The font is a Debian/Ubuntu package (no model or dataset hub needed):
``apt-get install fonts-noto-color-emoji``. Every code point of the font that has a Unicode
name (``unicodedata.name``) and draws something is rendered from the font's 136 x 128 colour
bitmaps, cropped to its ink, centred on a square of ``--background`` and resized to ``--size``.
Flags, keycaps, skin-tone and ZWJ sequences need text shaping and are left out; so are the
building blocks that are not pictures on their own (modifiers, joiners, regional letters).

Captions (``text`` is a list; trainers draw one per step, evaluation uses the first):
``"red apple"``, ``"an emoji of a red apple"``, ``"a red apple emoji"``.
Split: an emoji is in ``test/`` when the first hex digit of the SHA-1 of its name is 0 or 1
(about 1 in 8, fixed by the name, not by the font's order); ``train/`` holds the rest. So
test captions are names the models never saw: the held-out measure is generalisation.

    python examples/emoji/make_dataset.py --out data/emoji --size 64
"""

from __future__ import annotations

import argparse
import hashlib
import json
import unicodedata
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
STRIKE = 109  # the one bitmap size in the font (CBDT strike); other sizes are refused by FreeType
CANVAS = (160, 160)  # larger than a glyph (136 x 128) so nothing is clipped
SKIP_WORDS = ("MODIFIER", "REGIONAL INDICATOR", "ZERO WIDTH", "VARIATION SELECTOR", "TAG ", "COMBINING", "DIGIT", "NUMBER SIGN", "ASTERISK")


def emoji_code_points(font_path: Path) -> list[int]:
    """Code points the font maps, that have a Unicode name and are pictures on their own."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(font_path)).getBestCmap()
    keep = []
    for cp in sorted(cmap):
        name = unicodedata.name(chr(cp), "")
        if cp < 0x2000 or not name or any(w in name for w in SKIP_WORDS):
            continue
        keep.append(cp)
    return keep


def render(cp: int, font: ImageFont.FreeTypeFont, size: int, background: str) -> Image.Image | None:
    """The emoji's colour bitmap, cropped to its ink, centred on a square, ``size`` px; None if blank."""
    glyph = Image.new("RGBA", CANVAS, (0, 0, 0, 0))
    ImageDraw.Draw(glyph).text((8, 8), chr(cp), font=font, embedded_color=True)
    box = glyph.getchannel("A").getbbox()
    if box is None:
        return None
    glyph = glyph.crop(box)
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), background)
    square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return square.convert("RGB").resize((size, size), Image.LANCZOS)


def captions(cp: int) -> list[str]:
    name = unicodedata.name(chr(cp)).lower()
    article = "an" if name[0] in "aeiou" else "a"
    return [name, f"an emoji of {article} {name}", f"{article} {name} emoji"]


def split_of(cp: int) -> str:
    digest = hashlib.sha1(unicodedata.name(chr(cp)).encode()).hexdigest()
    return "test" if digest[0] in "01" else "train"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (train/ and test/ with metadata.jsonl)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--background", default="black", help="background colour (a PIL colour name or #rrggbb)")
    parser.add_argument("--font", default=str(FONT), help="the Noto Color Emoji font file")
    args = parser.parse_args(argv)
    font_path = Path(args.font)
    if not font_path.is_file():
        raise SystemExit(f"error: no emoji font at {font_path}: install it with 'apt-get install fonts-noto-color-emoji' or pass --font")
    font = ImageFont.truetype(str(font_path), STRIKE)
    out = Path(args.out)
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    blank = 0
    for cp in emoji_code_points(font_path):
        image = render(cp, font, args.size, args.background)
        if image is None:
            blank += 1
            continue
        split = split_of(cp)
        name = f"u{cp:05x}.png"
        (out / split).mkdir(parents=True, exist_ok=True)
        image.save(out / split / name)
        rows[split].append({"file_name": name, "text": captions(cp)})
    for split, items in rows.items():
        with open(out / split / "metadata.jsonl", "w", encoding="utf-8") as f:
            for row in items:
                f.write(json.dumps(row) + "\n")
    print(f"{out}: train {len(rows['train'])}, test {len(rows['test'])} images at {args.size} px ({blank} blank glyphs skipped)")


if __name__ == "__main__":
    main()
