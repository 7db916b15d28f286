"""Translate images with a trained pix2pix or CycleGAN generator (t2i translate).

``--model`` is a run folder of ``t2i train pix2pix|cyclegan`` (or its ``model/``); ``--direction ba``
uses a CycleGAN run's B -> A generator. ``--input`` is one image or a folder of images of any size and
mode, read as the run read its training data (its ``--resize`` and ``--background``; side-by-side A|B
files of twice the model's width are read as their A half); outputs go to ``--out`` under the same names.

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
from t2i.data.translation import SUFFIXES



def _inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path} does not exist: give an image or a folder of images")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise ValueError(f"--input {path} holds no images ({', '.join(SUFFIXES)})")
    return files


def _load(path: Path, config: dict) -> tuple[torch.Tensor, str]:
    """(the image as the model reads it (C, S, S) in [0, 1], what was changed): converted and shaped like the
    run's training data (its --background and --resize)."""
    resize, background = trained_reading(config)
    try:
        rgb, converted = decode_image(path, background=background)
        image, note = translator_input(rgb, config["arch"]["size"], config["arch"].get("channels", 3), resize,
                                       background)
    except BadImage as err:
        raise ValueError(f"--input {path}: {err.detail} ({err.kind}); give PNG or JPEG images") from None
    return image, "; ".join(filter(None, [converted, note]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2i translate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="run folder of t2i train pix2pix|cyclegan, or its model/")
    parser.add_argument("--input", required=True, help="an image or a folder of images")
    parser.add_argument("--out", required=True, help="output folder (same file names as the inputs)")
    parser.add_argument("--direction", choices=("ab", "ba"), default="ab", help="ba: a CycleGAN run's B -> A generator")
    args = parser.parse_args(argv)
    G, config = load_translator(args.model, args.direction)
    files = _inputs(Path(args.input))
    loaded = [_load(f, config) for f in files]
    x = torch.stack([image for image, _ in loaded])  # (N, C, S, S) in [0, 1]
    y = translate(G, x)
    changed = [(f, note) for f, (_, note) in zip(files, loaded) if note]
    if changed:
        print(f"{len(changed)} of {len(files)} input(s) read as the model's training data was, e.g. "
              f"{changed[0][0].name}: {changed[0][1]}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f, image in zip(files, y):
        Image.fromarray((image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()).save(out / (f.stem + ".png"))
    print(f"translated {len(files)} image(s) with {config['family']} ({args.direction}) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
