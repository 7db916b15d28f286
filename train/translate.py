"""Translate images with a trained pix2pix or CycleGAN generator (t2i translate).

``--model`` is a run folder of ``t2i train pix2pix|cyclegan`` (or its ``model/``); ``--direction ba``
uses a CycleGAN run's B -> A generator. ``--input`` is one image or a folder of images of any size and
mode, read as the run read its training data (its ``--resize`` and ``--background``, or the ones given;
files exactly twice as wide as tall are read as side-by-side A|B pairs: their A half); outputs go to
``--out`` under the same names.

    t2i data translation --task greyscale --out /tmp/grey --n 8 --split test
    t2i translate --model runs/p2p-grey --input /tmp/grey/A --out /tmp/grey-out
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from gan_baselines.translation import load_translator
from gan_baselines.translation_eval import trained_reading, translate, translator_input
from t2i.data.bad_data import BadImage, decode_image
from t2i.data.folder import is_image
from t2i.data.transforms import BACKGROUNDS, RESIZE_MODES



def _inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path} does not exist: give an image or a folder of images")
    files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and is_image(p))
    if not files:
        raise ValueError(f"--input {path} holds no images (files of a format Pillow opens: .png, .jpg, .webp, .tif, "
                         "...)")
    return files


def _load(path: Path, size: int, channels: int, resize: str, background: str) -> tuple[torch.Tensor, str]:
    """(the image as the model reads it (C, S, S) in [0, 1], what was changed)."""
    try:
        rgb, converted = decode_image(path, background=background)
        image, note = translator_input(rgb, size, channels, resize, background)
    except BadImage as err:
        raise ValueError(f"--input {path}: {err.detail} ({err.kind}); give PNG or JPEG images") from None
    return image, "; ".join(filter(None, [converted, note]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2i translate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="run folder of t2i train pix2pix|cyclegan, or its model/")
    parser.add_argument("--input", required=True, help="an image or a folder of images")
    parser.add_argument("--out", required=True, help="output folder (same file names as the inputs)")
    parser.add_argument("--direction", choices=("ab", "ba"), default="ab", help="ba: a CycleGAN run's B -> A generator")
    fixed_rules = [m for m in RESIZE_MODES if m != "random-crop"]  # one input, one answer
    parser.add_argument("--resize", choices=("auto", *fixed_rules), default="auto",
                        help="how an input of another size becomes the model's; auto: as the run read its data")
    parser.add_argument("--background", choices=("auto", *BACKGROUNDS), default="auto",
                        help="the colour under transparent pixels and around --resize pad; auto: the run's")
    args = parser.parse_args(argv)
    G, config = load_translator(args.model, args.direction)
    trained = trained_reading(config)
    resize, background = (trained[0] if args.resize == "auto" else args.resize,
                          trained[1] if args.background == "auto" else args.background)
    files = _inputs(Path(args.input))
    loaded = [_load(f, config["arch"]["size"], config["arch"].get("channels", 3), resize, background) for f in files]
    x = torch.stack([image for image, _ in loaded])  # (N, C, S, S) in [0, 1]
    y = translate(G, x)
    changed = [(f, note) for f, (_, note) in zip(files, loaded) if note]
    if changed:
        how = "as the model's training data was" if (resize, background) == trained else "as asked"
        print(f"{len(changed)} of {len(files)} input(s) converted or resized ({how}: --resize {resize} --background "
              f"{background}), e.g. {changed[0][0].name}: {changed[0][1]}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f, image in zip(files, y):
        Image.fromarray((image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()).save(out / (f.stem + ".png"))
    print(f"translated {len(files)} image(s) with {config['family']} ({args.direction}) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
