"""Pictures of a run: sample grids (torchvision ``make_grid``), real-next-to-generated grids with
their captions (``t2i eval`` on captioned data) and training curves (matplotlib).

    python -c "from t2i.runtime.grids import demo; demo()"
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import save_image


# The sample grids' prompts on shapes (``--sample-prompts`` default there): four one-object and four
# two-object captions of the spec's grammar; three name held-out colour-shape pairs (the novel split's).
SHAPES_GRID_PROMPTS = ("a large red circle in the center", "a small blue square in the top left",
                       "a large green triangle in the bottom right", "a small yellow cross in the top right",
                       "a white cross above a red triangle", "a blue circle to the left of a yellow square",
                       "a magenta square below a cyan circle", "a green circle to the right of a white square")


def grid_prompts(given: str, data: str, dataset: Iterable[dict], count: int = 8, scan: int = 256) -> list[str]:
    """The prompts of a trainer's sample grids: ``given`` ("|"-separated, ``--sample-prompts``) when set; the
    fixed shapes prompts on ``shapes``; else the first ``count`` distinct captions among the first ``scan``
    training items (their ``captions`` list when the dataset has one, so no image is decoded; a streamed one is
    read), so that a run on one's own captioned images draws its own kind of caption."""
    if given:
        prompts = [p.strip() for p in given.split("|") if p.strip()]
        if not prompts:
            raise SystemExit(f"--sample-prompts {given!r} holds no prompt: give 'a prompt|another', or leave it out")
        return prompts
    if str(data) == "shapes":
        return list(SHAPES_GRID_PROMPTS)
    listed = getattr(dataset, "captions", None)
    texts = listed[:scan] if listed is not None else (item["text"] for item in itertools.islice(iter(dataset), scan))
    found: list[str] = []
    for text in texts:
        if text and text not in found:
            found.append(text)
            if len(found) == count:
                break
    if not found:
        raise SystemExit(f"no captions in the first {scan} items of {data} to draw sample grids for: "
                         "give --sample-prompts 'a prompt|another'")
    return found


def save_grid(images: torch.Tensor | Sequence[Image.Image], path: str | Path, nrow: int | None = None,
              value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Save images (N, C, H, W) with values in ``value_range`` (or PIL images) as one PNG grid."""
    if not isinstance(images, torch.Tensor):
        images = torch.stack([pil_to_tensor(im.convert("RGB")).float() / 255 for im in images])
        value_range = (0.0, 1.0)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    lo, hi = value_range
    images = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images, path, nrow=nrow or max(1, math.ceil(math.sqrt(len(images)))), padding=2, pad_value=1.0)
    return path


CAPTION_FONT_PX = 12  # Pillow's default font at its own default size (10) drew spaces too narrow to see


def save_captioned_rows(rows: Sequence[tuple[str, Sequence[Image.Image]]], path: str | Path,
                        headers: Sequence[str] = ("real", "generated"), cell: int = 96, text_width: int = 300) -> Path:
    """One row per caption: its images side by side (e.g. the real one, then the generated ones), the caption
    wrapped on the right; ``headers`` label the first columns. Images are scaled to ``cell`` px squares."""
    import textwrap

    from PIL import ImageDraw, ImageFont

    if not rows:
        raise ValueError("save_captioned_rows needs at least one row")
    cols = max(len(images) for _, images in rows)
    pad, head = 4, 16
    width = pad + cols * (cell + pad) + text_width
    canvas = Image.new("RGB", (width, head + len(rows) * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=CAPTION_FONT_PX)
    for c, label in enumerate(list(headers)[:cols]):
        draw.text((pad + c * (cell + pad), 2), label, fill="black", font=font)
    for r, (caption, images) in enumerate(rows):
        y = head + r * (cell + pad)
        for c, im in enumerate(images):
            resample = Image.Resampling.NEAREST if im.size[0] <= cell else Image.Resampling.LANCZOS  # sharp pixels
            canvas.paste(im.convert("RGB").resize((cell, cell), resample), (pad + c * (cell + pad), y))
        lines = textwrap.wrap(caption, width=max(10, text_width // 7))[: max(1, cell // (CAPTION_FONT_PX + 4))]
        draw.multiline_text((pad + cols * (cell + pad), y + 2), "\n".join(lines), fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def plot_curves(metrics: str | Path, png: str | Path, title: str = "") -> Path:
    """One panel per scalar of ``metrics.jsonl`` (rows ``{"step": s, "loss": ...}``) -> PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_step: dict[int, dict[str, float]] = {}
    for line in Path(metrics).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_step[int(row.pop("step"))] = row  # a resumed run's rows replace a crashed one's
    steps = sorted(by_step)
    keys = sorted({k for row in by_step.values() for k in row})
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.2 * max(1, len(keys)), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        xs = [s for s in steps if key in by_step[s]]
        ax.plot(xs, [by_step[s][key] for s in xs], marker="." if len(xs) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        values = [by_step[s][key] for s in xs]
        if key != "images_per_s" and min(values, default=0) > 0 and max(values) > 10 * min(values):
            ax.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def demo() -> None:
    with tempfile.TemporaryDirectory() as d:
        print(save_grid(torch.rand(8, 3, 16, 16), Path(d) / "grid.png"), Image.open(Path(d) / "grid.png").size)
