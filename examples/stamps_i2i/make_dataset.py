"""Build two image-to-image datasets from Tux Paint's stamps, in the layouts the papers' datasets ship.

The stamps are the PNG drawings and photos of Debian's ``tuxpaint-stamps-default`` (no model or dataset
hub): RGBA, LA and palette images of many sizes and aspect ratios. 700 of them (sorted paths shuffled
with seed 1) give:

- ``OUT/sketch2stamp/``, pix2pix's layout (like ``facades/``): ``train/`` (the first 600 stamps) and
  ``test/`` (the last 100) of side-by-side A|B JPEGs, 2S x S: B is the stamp on white, letterboxed to
  S px; A is its edge sketch (Pillow's ``FIND_EDGES`` on the greyscale B, thresholded at 40, black
  lines on white). The generator learns to colour and shade a line drawing.
- ``OUT/stamp2grey/``, CycleGAN's layout (like ``horse2zebra/``): ``trainA/`` the first 300 stamps as
  they ship (transparent PNGs of any size), ``trainB/`` the next 300 *other* stamps as greyscale JPEGs
  on white (at most 256 px), ``testA/`` and ``testB/`` 50 each of the last 100. No B is any A's partner.

Stamps that share a file name (``1.png`` in several folders) keep the first one written.
``OUT/my-sketches/`` holds three line drawings that are not stamps (a house on transparency, a ring
as a greyscale JPEG, a tall lollipop), inputs for ``t2i translate`` of other sizes and modes.

    python examples/stamps_i2i/make_dataset.py --out data/stamps-i2i
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageOps

STAMPS = Path("/usr/share/tuxpaint/stamps")  # apt-get install tuxpaint-stamps-default


def on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def letterbox(image: Image.Image, side: int) -> Image.Image:
    image = image.copy()
    image.thumbnail((side, side), Image.LANCZOS)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def sketch(rgb: Image.Image) -> Image.Image:
    """Black edges on white: the greyscale image's edges above 40, inverted."""
    edges = rgb.convert("L").filter(ImageFilter.FIND_EDGES)
    return ImageOps.invert(edges.point(lambda v: 255 if v > 40 else 0)).convert("RGB")


def write_sketches(folder: Path) -> None:
    """Three line drawings of other sizes and modes than the training pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    house = Image.new("RGBA", (200, 150), (0, 0, 0, 0))  # black lines on transparency
    draw = ImageDraw.Draw(house)
    draw.polygon([(50, 70), (100, 25), (150, 70)], outline=(0, 0, 0, 255), width=3)
    draw.rectangle((60, 70, 140, 140), outline=(0, 0, 0, 255), width=3)
    draw.rectangle((90, 100, 110, 140), outline=(0, 0, 0, 255), width=2)
    house.save(folder / "house.png")
    ring = Image.new("L", (120, 120), 255)
    draw = ImageDraw.Draw(ring)
    draw.ellipse((15, 15, 105, 105), outline=0, width=3)
    draw.ellipse((45, 45, 75, 75), outline=0, width=2)
    ring.save(folder / "coin.jpg")
    lollipop = Image.new("RGB", (90, 160), "white")
    draw = ImageDraw.Draw(lollipop)
    draw.line((45, 10, 45, 150), fill="black", width=3)
    draw.ellipse((20, 10, 70, 60), outline="black", width=3)
    lollipop.save(folder / "lollipop.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/stamps-i2i")
    parser.add_argument("--stamps", default=str(STAMPS), help="the folder of stamp PNGs")
    parser.add_argument("--size", type=int, default=128, help="side of each half of a pix2pix pair")
    args = parser.parse_args(argv)
    stamps = sorted(Path(args.stamps).rglob("*.png"))
    if len(stamps) < 700:
        raise SystemExit(f"{args.stamps} holds {len(stamps)} stamps, 700 needed: "
                         "apt-get install tuxpaint-stamps-default")
    random.Random(1).shuffle(stamps)
    stamps = stamps[:700]
    out = Path(args.out)
    root = out / "sketch2stamp"
    shutil.rmtree(root, ignore_errors=True)
    for split, part in (("train", stamps[:600]), ("test", stamps[600:])):
        (root / split).mkdir(parents=True)
        for path in part:
            b = letterbox(on_white(Image.open(path)), args.size)
            ab = Image.new("RGB", (2 * args.size, args.size))
            ab.paste(sketch(b), (0, 0))
            ab.paste(b, (args.size, 0))
            ab.save(root / split / f"{path.stem}.jpg", quality=92)
    root = out / "stamp2grey"
    shutil.rmtree(root, ignore_errors=True)
    domains = {"trainA": stamps[:300], "trainB": stamps[300:600], "testA": stamps[600:650], "testB": stamps[650:]}
    for name, part in domains.items():
        (root / name).mkdir(parents=True)
        for path in part:
            if name.endswith("A"):
                shutil.copy(path, root / name / path.name)
            else:
                grey = on_white(Image.open(path))
                grey.thumbnail((256, 256))
                grey.convert("L").save(root / name / f"{path.stem}.jpg", quality=90)
    write_sketches(out / "my-sketches")
    for folder in sorted(p for p in out.glob("*/*") if p.is_dir()):
        print(f"{folder}: {sum(1 for _ in folder.iterdir())} images")


if __name__ == "__main__":
    main()
