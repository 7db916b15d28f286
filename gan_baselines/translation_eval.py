"""How well an image-to-image model translates: pixel metrics against the target and the shapes evaluator.

- ``translate(G, images)``: a generator in eval mode over ``(N, C, S, S)`` images in [0, 1], batched;
- ``translator_input(image, size)``: any PIL image as a translator's input (``t2i translate`` and the app),
  read like its training data (``trained_reading``: the run's ``--resize`` and ``--background``);
- ``paired_report``: PSNR / SSIM of the outputs against the targets (``t2i.metrics.pixels``), and the
  shapes evaluator's prompt accuracy of the outputs against each scene's caption (colour, shape,
  size, position, ...), with the same numbers for the targets themselves as the ceiling;
- ``unpaired_report`` (CycleGAN): domain FID of G(A) against real B on the evaluator's features,
  the cycle error |F(G(a)) - a|, and whether colour and shape survive (the evaluator on G(A)
  against A's captions);

The evaluator judges scenes on black; targets on another background (the ``background`` task)
get the pixel metrics only.

    python -c "from gan_baselines.translation_eval import demo; demo()"
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from t2i.data.bad_data import ALPHA_MODES, to_rgb
from t2i.data.transforms import BACKGROUNDS, check_background, check_resize, evaluation_resize, fit
from t2i.metrics.pixels import psnr, ssim


def trained_reading(config: dict[str, Any]) -> tuple[str, str]:
    """(--resize, --background) a translator's data was read with, from its saved config (older runs: the defaults)."""
    return str(config.get("resize") or "center-crop"), str(config.get("background") or "black")


def translator_input(image: Image.Image, size: int, channels: int = 3, resize: str | None = None,
                     background: str = "black") -> tuple[torch.Tensor, str]:
    """``image`` as the input of a translator of ``size`` px: ``((C, S, S)`` in [0, 1], a note of what was changed).

    Any mode is converted (transparent pixels onto ``background``: black, the shapes background, unless the
    model was trained otherwise); an image exactly twice as wide as tall is read as a side-by-side A|B pair
    (the layout of pix2pix's datasets, at any size): its A half. Another size is a ValueError naming the
    sizes taken, or, with ``resize`` (a ``--resize`` mode: the model's), shaped to S x S by that rule (the
    note says so)."""
    notes = []
    if image.mode != "RGB":
        notes.append(f"converted from {image.mode} to RGB" + (f" on {background}" if image.mode in ALPHA_MODES else ""))
    image = to_rgb(image, BACKGROUNDS[check_background(background)])
    width, height = image.size
    if width == 2 * height:
        image = image.crop((0, 0, height, height))
        notes.append(f"read as an A|B pair ({width}x{height}): its A (left) half")
        width = height
    if (width, height) != (size, size):
        if resize is None:
            raise ValueError(f"the image is {width}x{height} px; the model translates {size}x{size} images "
                             f"(or {2 * size}x{size} A|B pairs)")
        image = fit(image, size, evaluation_resize(check_resize(resize)), background=BACKGROUNDS[background])
        notes.append(f"resized from {width}x{height} to {size}x{size} (--resize {resize})")
    if channels == 1:
        image = image.convert("L")
    array = np.asarray(image, dtype=np.uint8).copy()
    array = array[..., None] if array.ndim == 2 else array  # (S, S, C)
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255, "; ".join(notes)  # (C, S, S)


@torch.no_grad()
def translate(G: torch.nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``(N, C, S, S)`` in [0, 1] -> G's outputs ``(N, C, S, S)`` in [0, 1] (G in eval mode, mode restored)."""
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    try:
        out = [(G(images[i:i + batch_size].to(device) * 2 - 1).float().cpu() + 1) / 2
               for i in range(0, len(images), batch_size)]
    finally:
        G.train(was_training)
    return torch.cat(out).clamp(0, 1)


def judgeable(targets: torch.Tensor, records: Sequence[dict[str, Any] | None]) -> bool:
    """Can the shapes evaluator judge these scenes: labels known and targets on black (border pixels dark)?"""
    if not records or any(r is None or not r.get("caption") for r in records):
        return False
    border = torch.cat([targets[..., 0, :], targets[..., -1, :], targets[..., :, 0], targets[..., :, -1]], -1)
    return float(border.mean()) < 0.2


def _accuracy(images: torch.Tensor, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from t2i.evaluators.shapes import prompt_accuracy

    result = prompt_accuracy(images, [r["caption"] for r in records])
    return {k: round(v, 4) for k, v in result["all"].items() if isinstance(v, float)}


def paired_report(outputs: torch.Tensor, targets: torch.Tensor, records: Sequence[dict[str, Any] | None],
                  inputs: torch.Tensor | None = None) -> dict[str, Any]:
    """PSNR/SSIM (mean over images) of outputs vs targets [and of the inputs as they are], evaluator accuracy."""
    report: dict[str, Any] = {"n": len(outputs), "psnr": round(float(psnr(outputs, targets).mean()), 3),
                              "ssim": round(float(ssim(outputs, targets).mean()), 4)}
    if inputs is not None:
        report["input_psnr"] = round(float(psnr(inputs, targets).mean()), 3)
        report["input_ssim"] = round(float(ssim(inputs, targets).mean()), 4)
    if judgeable(targets, records):
        report["evaluator"] = _accuracy(outputs, records)  # type: ignore[arg-type]
        report["evaluator_targets"] = _accuracy(targets, records)  # type: ignore[arg-type]
    return report


def unpaired_report(fake_b: torch.Tensor, real_b: torch.Tensor, cycled_a: torch.Tensor, real_a: torch.Tensor,
                    records_a: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Domain FID of G(A) vs B, cycle error mean |F(G(a)) - a|, evaluator on G(A) against A's captions."""
    report: dict[str, Any] = {"n": len(fake_b),
                              "cycle_l1": round(float((cycled_a - real_a).abs().mean()), 4)}
    if judgeable(real_b, records_a):
        from t2i.evaluators.shapes import _builtin
        from t2i.metrics.frechet import domain_fid

        extractor = _builtin("shapes-evaluator").feature_extractor()
        report["domain_fid"] = round(domain_fid(real_b, fake_b, extractor)["domain_fid"], 3)
        report["evaluator"] = _accuracy(fake_b, records_a)  # type: ignore[arg-type]
    return report


def demo() -> None:
    from t2i.data.translation import load_translation

    data = load_translation("greyscale", n=16, split="test")
    A, B = data.A.float() / 255, data.B.float() / 255
    print(paired_report(A, B, data.records, inputs=A))
