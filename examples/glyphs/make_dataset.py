"""Build a real captioned dataset from the system's text fonts: every letter and digit of every
face (DejaVu and Liberation, Debian packages), captioned with the character, its case, the
typeface and the style, in the imagefolder layout every ``t2i train`` command reads.

The fonts come from ``apt-get install fonts-dejavu-core fonts-dejavu-extra fonts-liberation``
(no model or dataset hub). Each face's own name (its ``name`` table, read by FreeType) gives
the caption's typeface and style, so another folder of fonts (``--fonts``) works the same way.

A glyph is drawn white on black at one size for all faces, on a fixed baseline, centred
horizontally on its ink: case and x-height stay visible ("capital O" is taller than "small o").

Captions (``text`` is a list; trainers draw one per step, evaluation uses the first). The CLIP
tokenizer lowercases, so the case is always a word:
``"capital letter K, DejaVu Serif bold italic"``, ``"a bold italic capital K in DejaVu Serif"``,
``"the capital letter K set in DejaVu Serif, bold italic"``.

Split: a (character, face) pair is in ``test/`` when the first hex digit of the SHA-1 of its
first caption is 0 or 1 (about 1 in 8, fixed by the caption, not by the order of the fonts);
``train/`` holds the rest. Every character and every face is in the training split; the test
captions are combinations of them that no model saw, and each names what can be seen.

    python examples/glyphs/make_dataset.py --out data/glyphs --size 64
"""

from __future__ import annotations

import argparse
import hashlib
import json
import string
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
CHARACTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits
CANVAS = 256  # rendering side in pixels; the image is resized from it to --size
EM = 200  # font size in pixels on the canvas: ascenders to descenders of every face fit
BASELINE = 204  # baseline height on the canvas
SKIP_FAMILIES = ("Math",)  # faces that are not text faces (DejaVu Math TeX Gyre)
PLAIN_STYLES = {"book", "regular", "roman", "normal"}


def faces(font_dirs: list[str]) -> list[Path]:
    """TrueType/OpenType files under the folders, text faces only, sorted by path."""
    files = sorted(p for d in font_dirs for p in Path(d).glob("*.[ot]tf"))
    return [p for p in files if not any(w in ImageFont.truetype(str(p), 12).getname()[0] for w in SKIP_FAMILIES)]


def face_words(font: ImageFont.FreeTypeFont) -> tuple[str, str]:
    """(typeface, style) as caption words: ("DejaVu Serif", "condensed bold italic"); "regular" when plain."""
    family, style = font.getname()
    style = " ".join(w for w in style.lower().split() if w not in PLAIN_STYLES) or "regular"
    return family, style.replace("oblique", "italic")


def character_words(char: str) -> tuple[str, str]:
    """(long, short) names: ("capital letter K", "capital K"), ("small letter k", "small k"), ("digit 7", "digit 7")."""
    if char.isdigit():
        return f"digit {char}", f"digit {char}"
    case = "capital" if char.isupper() else "small"
    return f"{case} letter {char}", f"{case} {char}"


def captions(char: str, family: str, style: str) -> list[str]:
    long, short = character_words(char)
    article = "an" if style[0] in "aeiou" else "a"
    return [f"{long}, {family} {style}", f"{article} {style} {short} in {family}", f"the {long} set in {family}, {style}"]


def mapped(path: Path) -> set[int]:
    """Code points the face draws (its cmap); FreeType would draw the missing ones as an empty box."""
    from fontTools.ttLib import TTFont

    return set(TTFont(str(path), fontNumber=0).getBestCmap() or {})


def render(char: str, font: ImageFont.FreeTypeFont, size: int) -> Image.Image | None:
    """The glyph white on black, on the fixed baseline, centred on its ink; None if it has no ink."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    left, _, right, _ = draw.textbbox((0, BASELINE), char, font=font, anchor="ls")
    if right <= left:
        return None
    draw.text(((CANVAS - (right - left)) / 2 - left, BASELINE), char, fill=255, font=font, anchor="ls")
    if image.getbbox() is None:
        return None
    return image.convert("RGB").resize((size, size), Image.LANCZOS)


def split_of(caption: str) -> str:
    return "test" if hashlib.sha1(caption.encode()).hexdigest()[0] in "01" else "train"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (train/ and test/ with metadata.jsonl)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--fonts", nargs="+", default=list(FONT_DIRS), help="folders of .ttf/.otf faces")
    args = parser.parse_args(argv)
    paths = faces([d for d in args.fonts if Path(d).is_dir()])
    if not paths:
        raise SystemExit(f"error: no fonts in {' '.join(args.fonts)}: install them with "
                         "'apt-get install fonts-dejavu-core fonts-dejavu-extra fonts-liberation' or pass --fonts")
    out = Path(args.out)
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    missing = 0
    for path in paths:
        font = ImageFont.truetype(str(path), EM)
        family, style = face_words(font)
        drawn = mapped(path)
        for char in CHARACTERS:
            image = render(char, font, args.size) if ord(char) in drawn else None
            if image is None:
                missing += 1
                continue
            text = captions(char, family, style)
            split = split_of(text[0])
            name = f"{path.stem}-{'u' if char.isupper() else 'l' if char.islower() else 'd'}{char}.png"
            (out / split).mkdir(parents=True, exist_ok=True)
            image.save(out / split / name)
            rows[split].append({"file_name": name, "text": text})
    for split, items in rows.items():
        with open(out / split / "metadata.jsonl", "w", encoding="utf-8") as f:
            for row in items:
                f.write(json.dumps(row) + "\n")
    print(f"{out}: {len(paths)} faces x {len(CHARACTERS)} characters: train {len(rows['train'])}, "
          f"test {len(rows['test'])} images at {args.size} px ({missing} missing glyphs skipped)")


if __name__ == "__main__":
    main()
