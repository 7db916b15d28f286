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

``load_translation(source, ...)`` reads a task name (rendered in memory) or a folder of your images
in any of these layouts, the first two as the papers' datasets ship:
- pix2pix's ``train/``, ``val/``, ``test/`` of side-by-side A|B files (``facades/train/1.jpg``, 512 x 256);
- CycleGAN's ``trainA/``, ``trainB/``, ``testA/``, ``testB/`` (``horse2zebra/``);
- without splits: ``A/`` + ``B/`` (same names when paired), ``AB/`` or A|B files at the top (all training data);
  a split folder may hold ``A/`` + ``B/`` or ``AB/`` too.
The test split is ``test`` (else ``val``); ``has_split`` says whether a folder has one. Images of
any size and mode are read like every user image of the project (``t2i.data.bad_data``,
``t2i.data.transforms``): alpha onto ``--background``, shaped to S x S by ``--resize`` (a side-by-side
file is cut in half first, so A and B get the same crop); unreadable files are skipped (a pair
whole) and reported. Unpaired data (CycleGAN): two folders of different images are two domains,
read whole; paired data (same names, A|B files, built-in tasks) read as unpaired takes A from the
first half of the items and B from the second, so no B is the partner of any A. Mismatched names,
a missing side or split are one-line ``ValueError``s.

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
from tqdm.auto import tqdm

from t2i.data.bad_data import BadDataReport, BadImage, decode_image
from t2i.data.folder import find_metadata, is_image
from t2i.data.shapes import SUPERSAMPLE, _draw_object, make_scenes
from t2i.data.transforms import Augment, check_resize, item_rng

TASKS: dict[str, str] = {
    "outline": "object outlines -> filled objects",
    "greyscale": "greyscale scene -> colour scene",
    "background": "objects on black -> the same objects on white",
}
WHITE = (255, 255, 255)
PROGRESS_ABOVE = 200  # files decoded whole (any size) before a progress bar shows
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}  # split -> folder names (pix2pix ships val/ and test/)


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


def _images(folder: Path) -> dict[str, Path]:
    """The image files of an A or B folder by name (any format Pillow opens, as every user folder; hidden files out)."""
    return {p.name: p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and is_image(p)}


class TranslationData(Dataset):
    """(A, B) images as uint8 tensors ``(3, S, S)``; items ``{"A", "B" (float in [0, 1]), "index"}``.

    ``records`` holds each item's scene labels (``caption``, ``objects``, ``relation``) when known
    (built-in tasks and folders with ``metadata.jsonl``) and, for a folder, its A file's ``file_name``;
    ``records_b`` the same for the B side (for paired data, the same records). ``flip``: probability of
    a horizontal flip per item (a pair flips together), drawn from ``item_rng(seed, epoch, index)``.
    ``report``: what reading the files skipped, converted or cropped (printed by ``Run.dataloader``);
    ``where``: the folder read, or the task."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor, records: list[dict[str, Any] | None], paired: bool,
                 flip: float = 0.0, seed: int = 0, report: BadDataReport | None = None, where: str = "",
                 records_b: list[dict[str, Any] | None] | None = None):
        self.A, self.B, self.records, self.paired = A, B, records, paired
        self.records_b = records if records_b is None else records_b
        self.channels = 3
        self.flip, self.seed, self.epoch = flip, seed, 0
        self.report, self.where = report, where

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.A)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = i if self.paired else i % len(self.B)
        a, b = self.A[i], self.B[j]
        if self.flip > 0:
            rng = item_rng(self.seed, self.epoch, i)
            flip_a = rng.random() < self.flip
            flip_b = flip_a if self.paired else rng.random() < self.flip
            a, b = (a.flip(-1) if flip_a else a), (b.flip(-1) if flip_b else b)
        return {"A": a.float() / 255, "B": b.float() / 255, "index": i}


def _metadata(root: Path) -> dict[str, dict[str, Any]]:
    path = root / "metadata.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["file_name"]: {"caption": r.get("text"), "objects": r.get("objects"), "relation": r.get("relation")}
            for r in rows}


def _one_split(folder: Path) -> tuple[dict[str, Path], dict[str, Path] | None]:
    """One split's folder: ``A/`` + ``B/`` -> (A files, B files); ``AB/`` or images at its top -> (A|B files, None)."""
    has_a, has_b = (folder / "A").is_dir(), (folder / "B").is_dir()
    if has_a or has_b:
        if not (has_a and has_b):
            raise ValueError(f"{folder} has {'A/' if has_a else 'B/'} but no {'B/' if has_a else 'A/'}: "
                             "the two-folder layout needs both A/ and B/")
        return _images(folder / "A"), _images(folder / "B")
    side_by_side = _images(folder / "AB" if (folder / "AB").is_dir() else folder)
    if not side_by_side:
        raise ValueError(f"{folder} holds neither A/ and B/ nor side-by-side A|B images (AB/*.png or *.png, *.jpg); "
                         "CycleGAN's trainA/ + trainB/ and pix2pix's train/ + test/ folders are read too")
    return side_by_side, None


def _split_files(root: Path, split: str) -> tuple[dict[str, Path], dict[str, Path] | None, Path] | None:
    """The files of ``split`` (module docstring: the layouts) and the folder that holds them; None when the
    folder has no such split (a folder without splits is all training data)."""
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"an image-to-image folder has the splits {list(SPLIT_FOLDERS)} (test is read from test/ or "
                         f"val/, testA/ + testB/ or valA/ + valB/), not {split!r}")
    for name in SPLIT_FOLDERS[split]:
        a, b = root / f"{name}A", root / f"{name}B"
        if a.is_dir() or b.is_dir():  # CycleGAN's trainA/ + trainB/
            if not (a.is_dir() and b.is_dir()):
                raise ValueError(f"{root} has {a.name if a.is_dir() else b.name}/ but no "
                                 f"{b.name if a.is_dir() else a.name}/: CycleGAN's layout needs both")
            return _images(a), _images(b), root
        if (root / name).is_dir():  # pix2pix's train/, val/, test/
            return (*_one_split(root / name), root / name)
    if split != "train" or any((root / n).is_dir() or (root / f"{n}A").is_dir() for n in SPLIT_FOLDERS["test"]):
        return None
    return (*_one_split(root), root)


def has_split(source: str | Path, split: str) -> bool:
    """Whether ``source`` (a task, or a folder) holds ``split``; tasks hold every split."""
    return str(source) in TASKS or (Path(source).is_dir() and _split_files(Path(source), split) is not None)


def is_translation_folder(source: str | Path) -> bool:
    """Whether ``source`` is a folder in one of the image-to-image layouts (module docstring) rather than a
    captioned imagefolder (``metadata.jsonl`` beside the images)."""
    root = Path(source)
    if not root.is_dir():
        return False
    folders = {p.name for p in root.iterdir() if p.is_dir()}
    if folders & {"A", "B", "AB"} or any(f"{s}{side}" in folders for s in ("train", "test", "val") for side in "AB"):
        return True
    return any(name in folders and find_metadata(root / name) is None and _images(root / name)
               for name in ("train", "test", "val"))


class _Reader:
    """Reads user images of any size and mode as ``size x size`` RGB: alpha onto ``background``, shaped by
    ``resize`` (one fixed rule: the images are read once); what it skipped or converted goes to ``report``."""

    def __init__(self, size: int, resize: str, background: str, report: BadDataReport):
        if check_resize(resize) == "random-crop":
            raise ValueError("translation data is read once, before training: --resize random-crop would crop every "
                             "pair the same way in every epoch; use center-crop, pad or stretch")
        self.size, self.augment, self.report = size, Augment(resize=resize, background=background), report
        self.report.shapes.resize = resize

    def image(self, path: Path) -> Image.Image | None:
        """The decoded RGB image, or None (skipped, reported)."""
        self.report.checked += 1
        try:
            rgb, converted = decode_image(path, background=self.augment.background)
        except BadImage as err:
            self.report.add(err.kind, str(path), err.detail)
            return None
        if converted:
            self.report.add("converted", str(path), converted)
        return rgb

    def fit(self, image: Image.Image) -> torch.Tensor:
        self.report.shapes.add(image)
        return _to_tensor(self.augment.image(image, self.size, item_rng(0, 0, 0)))  # (3, S, S) uint8

    def halves(self, path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A side-by-side A|B file -> its two halves, each shaped to ``size``."""
        ab = self.image(path)
        if ab is None:
            return None
        width, height = ab.size
        if width <= height:
            raise ValueError(f"{path} is {width}x{height} px, not an A|B pair side by side (twice as wide as tall); "
                             "put single images in A/ and B/ (same names)")
        half = width // 2
        return self.fit(ab.crop((0, 0, half, height))), self.fit(ab.crop((half, 0, 2 * half, height)))


def _shown(names: list[str], what: str) -> Any:
    """``names``, behind a progress bar when there are more than ``PROGRESS_ABOVE`` files to decode."""
    return tqdm(names, desc=what, unit="img", leave=False) if len(names) > PROGRESS_ABOVE else names


def _read_folder(root: Path, split: str, reader: _Reader, n: int, unpaired: bool) -> TranslationData:
    """A folder's ``split`` as read (paired when its files are partners), its report the reader's."""
    found = _split_files(root, split)
    if found is None:
        where = ", ".join(f"{s}/ or {s}A/ + {s}B/" for s in SPLIT_FOLDERS[split])
        raise ValueError(f"{root} has no {split} split ({where})")
    a_files, b_files, where = found
    meta = _metadata(where) or _metadata(root)
    if b_files is None:  # side by side
        pairs = {k: reader.halves(a_files[k]) for k in _shown(list(a_files)[:n or None], f"reading {where}")}
        names = [k for k, ab in pairs.items() if ab is not None]
        A_list, B_list = [pairs[k][0] for k in names], [pairs[k][1] for k in names]
        paired, b_kept = True, names
    else:
        paired = set(a_files) == set(b_files)
        if not paired and not unpaired:
            only_a, only_b = sorted(set(a_files) - set(b_files)), sorted(set(b_files) - set(a_files))
            raise ValueError(f"{where}: A and B must hold the same file names for paired data; only in A: "
                             f"{only_a[:3]}, only in B: {only_b[:3]} (or train on them unpaired: t2i train cyclegan)")
        if not a_files or not b_files:
            raise ValueError(f"{where}: its A or B folder holds no images (files of a format Pillow opens: .png, "
                             ".jpg, .webp, .tif, ...)")
        a_names = list(a_files)[:n or None]
        b_names = a_names if paired else list(b_files)[:n or None]
        a_read = {k: reader.image(a_files[k]) for k in _shown(a_names, f"reading {where} (A)")}
        b_read = {k: reader.image(b_files[k]) for k in _shown(b_names, f"reading {where} (B)")}
        if paired:  # a pair with one bad side is skipped whole
            a_names = b_names = [k for k in a_names if a_read[k] is not None and b_read[k] is not None]
        names = [k for k in a_names if a_read[k] is not None]
        A_list = [reader.fit(a_read[k]) for k in names]
        b_kept = [k for k in b_names if b_read[k] is not None]
        B_list = [reader.fit(b_read[k]) for k in b_kept]
    if not A_list or not B_list:
        raise ValueError(f"{where}: no readable images left ({reader.report.problems} skipped):\n{reader.report}")
    records, records_b = ([{"file_name": k, **(meta.get(k) or {})} for k in kept]  # + labels of metadata.jsonl
                          for kept in (names, b_kept))
    return TranslationData(torch.stack(A_list), torch.stack(B_list), records, paired, report=reader.report,
                           where=str(where), records_b=records_b)


def load_translation(source: str | Path, size: int = 32, n: int = 0, seed: int = 0, split: str = "train",
                     unpaired: bool = False, resize: str = "center-crop", background: str = "black",
                     random_flip: float = 0.0, strict: bool = False) -> TranslationData:
    """A built-in task name, or a folder in one of the layouts of the module docstring; its ``split``.

    ``n`` > 0 keeps the first n items (a task name renders n, default 1000). User images of any size
    and mode are read with ``resize`` / ``background`` (``t2i.data.transforms``); unreadable ones are
    skipped and reported (``strict``: refused). ``unpaired``: A and B as two domains (module docstring)."""
    if str(source) in TASKS:
        if random_flip or resize != "center-crop" or background != "black":
            raise ValueError(f"the built-in task {source!r} is rendered at --size on black and its scenes name left "
                             "and right: --resize, --background and --random-flip are for folders of your images")
        scenes = task_scenes(str(source), n or 1000, seed, size, split)
        pairs = [render_pair(r, str(source)) for r in scenes]
        A = torch.stack([_to_tensor(a) for a, _ in pairs])
        B = torch.stack([_to_tensor(b) for _, b in pairs])
        records: list[dict[str, Any] | None] = [
            {"caption": r["caption"], "objects": r["objects"], "relation": r["relation"]} for r in scenes]
        data = TranslationData(A, B, records, paired=True, where=str(source))
    else:
        root = Path(source)
        if not root.is_dir():
            raise ValueError(f"translation data must be one of the tasks {list(TASKS)} or a folder, got {str(source)!r}"
                             f"{' (no such folder)' if not root.exists() else ''}")
        data = _read_folder(root, split, _Reader(size, resize, background, BadDataReport(source=str(root))), n,
                            unpaired)
        if strict:
            data.report.raise_if_problems()
    A, B, records, records_b = data.A, data.B, data.records, data.records_b
    if unpaired and data.paired:  # partners: A from the first half, B from the second, so no B is any A's partner
        half = len(A) // 2
        if half < 1:
            raise ValueError(f"unpaired data needs at least 2 items (A from one half, B from the other), got {len(A)}")
        A, B, records, records_b = A[:half], B[half:2 * half], records[:half], records_b[half:2 * half]
    return TranslationData(A, B, records, paired=data.paired and not unpaired, flip=random_flip, seed=seed,
                           report=data.report, where=data.where, records_b=records_b)


def load_split(source: str | Path, split: str, size: int = 32, n: int = 0, resize: str = "center-crop",
               background: str = "black") -> TranslationData:
    """A folder's ``split`` whole: paired when its files are partners, else its two domains."""
    reader = _Reader(size, resize, background, BadDataReport(source=f"{source} ({split} split)"))
    return _read_folder(Path(source), split, reader, n, unpaired=True)


def load_held_out(source: str | Path, size: int = 32, n: int = 0, seed: int = 0, resize: str = "center-crop",
                  background: str = "black") -> tuple[TranslationData, str]:
    """The pairs a run is measured on, and the split they come from: a task's or a folder's test split
    (``load_split``), else the training data ("train")."""
    if str(source) in TASKS:
        return load_translation(source, size=size, n=n, seed=seed, split="test"), "test"
    split = "test" if has_split(source, "test") else "train"
    return load_split(source, split, size, n, resize, background), split


def demo() -> None:
    for task in TASKS:
        out = write_translation(f"/tmp/translation_demo/{task}", task, 8)
        print(task, len(load_translation(out)), "pairs in", out)
