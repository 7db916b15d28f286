"""Paired and unpaired image-to-image data made from the shapes scenes, and loaders for user folders.

Built-in tasks (``TASKS``), each an (A, B) pair drawn from one shapes scene, chosen so an
output can be judged by the shapes evaluator against the scene's labels:
- ``outline``: A = each object's 1 px outline (its colour), B = the filled scene: shape,
  colour, size and position must survive;
- ``greyscale``: A = the scene in greyscale (ITU-R 601 luma), B = the colour scene: the model
  must recover each object's palette colour from its grey level and shape context;
- ``background``: A = the scene on black, B = the same objects on a white background (white
  objects are left out of this task: they would vanish).

On disk (``write_translation``), pix2pix's side-by-side layout and a two-folder layout:
``AB/00000.png`` (A | B, 2S x S), ``A/00000.png`` and ``B/00000.png`` (same names), and
``metadata.jsonl`` (``file_name`` = the name, ``text``, ``objects``, ``relation``, ``task``).
Unpaired data (CycleGAN) is the two-folder layout read with ``unpaired=True``: A from the first
half of the items, B from the second half, so no B is the partner of any A.

``load_translation(source, ...)`` reads a task name (rendered in memory), a side-by-side folder
(``AB/`` or PNGs at top level) or a two-folder one (``A/`` + ``B/``); mismatched names, wrong
sizes or a missing side are one-line ``ValueError``s.

    python -c "from t2i.data.translation import demo; demo()"   # writes /tmp/translation_demo
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import Dataset

from t2i.data.shapes import SUPERSAMPLE, _draw_object, make_scenes

TASKS: dict[str, str] = {
    "outline": "object outlines -> filled objects",
    "greyscale": "greyscale scene -> colour scene",
    "background": "objects on black -> the same objects on white",
}
WHITE = (255, 255, 255)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")


def _draw(record: dict[str, Any], background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """The 4x canvas of a scene (as ``t2i.data.shapes.render`` before its box filter)."""
    S = int(record["image_size"])
    big = Image.new("RGB", (S * SUPERSAMPLE, S * SUPERSAMPLE), background)
    draw = ImageDraw.Draw(big)
    for obj in record["objects"]:
        _draw_object(draw, obj)
    return big


def render_pair(record: dict[str, Any], task: str) -> tuple[Image.Image, Image.Image]:
    """(A, B) RGB images of one scene record for ``task``."""
    _check_task(task)
    filled = _draw(record)
    B = filled.reduce(SUPERSAMPLE)  # the shapes image itself
    if task == "greyscale":
        return B.convert("L").convert("RGB"), B
    if task == "background":
        return B, _draw(record, WHITE).reduce(SUPERSAMPLE)
    # outline: filled minus its erosion by one output pixel (SUPERSAMPLE sub-pixels each side)
    mask = filled.convert("L").point(lambda v: 255 if v else 0)
    inner = mask.filter(ImageFilter.MinFilter(2 * SUPERSAMPLE + 1))
    ring = Image.composite(Image.new("L", mask.size, 0), mask, inner)  # inside the erosion -> 0
    outline = Image.composite(filled, Image.new("RGB", filled.size, (0, 0, 0)), ring)
    return outline.reduce(SUPERSAMPLE), B


def task_scenes(task: str, n: int, seed: int = 0, size: int = 32, split: str = "train",
                p_two: float = 0.5) -> list[dict[str, Any]]:
    """``n`` scene records for ``task`` (``background`` redraws scenes holding a white object)."""
    _check_task(task)
    if task != "background":
        return make_scenes(n, seed, size, split, p_two)
    scenes: list[dict[str, Any]] = []
    k = n
    while len(scenes) < n:  # scene i of a longer stream is the same scene: extend until enough remain
        k = 2 * k + 8
        scenes = [r for r in make_scenes(k, seed, size, split, p_two)
                  if all(o["colour"] != "white" for o in r["objects"])]
    return scenes[:n]


def write_translation(out: str | Path, task: str, n: int, seed: int = 0, size: int = 32, split: str = "train",
                      p_two: float = 0.5) -> Path:
    """Write ``AB/``, ``A/``, ``B/`` and ``metadata.jsonl`` (module docstring); deterministic from the seed."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        names = {p.name for p in out.iterdir()}
        if not names <= {"AB", "A", "B", "metadata.jsonl"}:
            raise ValueError(f"{out} is not empty and does not hold data written by t2i data translation "
                             f"(found {sorted(names)[:5]}); choose a new or empty folder")
        for side in ("AB", "A", "B"):
            for old in (out / side).glob("*.png"):
                old.unlink()
    for side in ("AB", "A", "B"):
        (out / side).mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(max(n - 1, 0))))
    lines = []
    for i, rec in enumerate(task_scenes(task, n, seed, size, split, p_two)):
        name = f"{i:0{width}d}.png"
        a, b = render_pair(rec, task)
        ab = Image.new("RGB", (2 * size, size))
        ab.paste(a, (0, 0))
        ab.paste(b, (size, 0))
        ab.save(out / "AB" / name, format="PNG")
        a.save(out / "A" / name, format="PNG")
        b.save(out / "B" / name, format="PNG")
        lines.append(json.dumps({"file_name": name, "text": rec["caption"], "objects": rec["objects"],
                                 "relation": rec["relation"], "task": task}))
    (out / "metadata.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    return out


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)  # (3, H, W)


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg")}


class TranslationData(Dataset):
    """(A, B) images as uint8 tensors ``(3, S, S)``; items ``{"A", "B" (float in [0, 1]), "index"}``.

    ``records`` holds each item's scene labels (``caption``, ``objects``, ``relation``) when known
    (built-in tasks and folders with ``metadata.jsonl``), else ``None``; for unpaired data they are
    the labels of the A side."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor, records: list[dict[str, Any] | None], paired: bool):
        self.A, self.B, self.records, self.paired = A, B, records, paired
        self.channels = 3

    def __len__(self) -> int:
        return len(self.A)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = i if self.paired else i % len(self.B)
        return {"A": self.A[i].float() / 255, "B": self.B[j].float() / 255, "index": i}


def _read(path: Path, size: tuple[int, int]) -> Image.Image:
    image = Image.open(path)
    if image.size != size:
        raise ValueError(f"{path} is {image.size[0]}x{image.size[1]} px, expected {size[0]}x{size[1]} "
                         "(all images of a translation folder must have one size; --size sets it)")
    return image


def _metadata(root: Path) -> dict[str, dict[str, Any]]:
    path = root / "metadata.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["file_name"]: {"caption": r.get("text"), "objects": r.get("objects"), "relation": r.get("relation")}
            for r in rows}


def load_translation(source: str | Path, size: int = 32, n: int = 0, seed: int = 0, split: str = "train",
                     unpaired: bool = False) -> TranslationData:
    """A built-in task name, a side-by-side folder (``AB/`` or top-level A|B PNGs) or a two-folder one (``A/``, ``B/``).

    ``n`` > 0 keeps the first n items (a task name renders n, default 1000). ``unpaired``: A from the
    first half, B from the second (module docstring)."""
    if str(source) in TASKS:
        scenes = task_scenes(str(source), n or 1000, seed, size, split)
        pairs = [render_pair(r, str(source)) for r in scenes]
        A = torch.stack([_to_tensor(a) for a, _ in pairs])
        B = torch.stack([_to_tensor(b) for _, b in pairs])
        records: list[dict[str, Any] | None] = [
            {"caption": r["caption"], "objects": r["objects"], "relation": r["relation"]} for r in scenes]
    else:
        root = Path(source)
        if not root.is_dir():
            raise ValueError(f"translation data must be one of the tasks {list(TASKS)} or a folder, got {str(source)!r}"
                             f"{' (no such folder)' if not root.exists() else ''}")
        meta = _metadata(root)
        has_a, has_b = (root / "A").is_dir(), (root / "B").is_dir()
        if has_a or has_b:
            if not (has_a and has_b):
                raise ValueError(f"{root} has {'A/' if has_a else 'B/'} but no {'B/' if has_a else 'A/'}: "
                                 "the two-folder layout needs both A/ and B/")
            a_files, b_files = _pngs(root / "A"), _pngs(root / "B")
            if not unpaired and set(a_files) != set(b_files):
                only_a, only_b = sorted(set(a_files) - set(b_files)), sorted(set(b_files) - set(a_files))
                raise ValueError(f"{root}: A/ and B/ must hold the same file names for paired data; only in A/: "
                                 f"{only_a[:3]}, only in B/: {only_b[:3]} (or read them as unpaired data)")
            names = sorted(a_files)
            if not names or not b_files:
                raise ValueError(f"{root}: A/ or B/ holds no images (.png, .jpg)")
            A_img = [_read(a_files[k], (size, size)) for k in names]
            b_names = names if not unpaired else sorted(b_files)
            B_img = [_read(b_files[k], (size, size)) for k in b_names]
        else:
            folder = root / "AB" if (root / "AB").is_dir() else root
            files = _pngs(folder)
            if not files:
                raise ValueError(f"{root} holds neither A/ and B/ nor side-by-side A|B images (AB/*.png or *.png)")
            names = sorted(files)
            A_img, B_img = [], []
            for k in names:
                ab = _read(files[k], (2 * size, size))
                A_img.append(ab.crop((0, 0, size, size)))
                B_img.append(ab.crop((size, 0, 2 * size, size)))
        A = torch.stack([_to_tensor(a) for a in A_img])
        B = torch.stack([_to_tensor(b) for b in B_img])
        records = [meta.get(k) for k in names]
        if n:
            A, B, records = A[:n], B[:n], records[:n]
    if unpaired:
        half = len(A) // 2
        if half < 1:
            raise ValueError(f"unpaired data needs at least 2 items (A from one half, B from the other), got {len(A)}")
        return TranslationData(A[:half], B[half:2 * half], records[:half], paired=False)
    return TranslationData(A, B, records, paired=True)


def demo() -> None:
    for task in TASKS:
        out = write_translation(f"/tmp/translation_demo/{task}", task, 8)
        print(task, len(load_translation(out)), "pairs in", out)
