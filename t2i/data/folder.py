"""The user's own images: an imagefolder (``metadata.jsonl``, or class folders) or a CSV/TSV file.

- **Folder**: the layout of Hugging Face ``datasets``' imagefolder and of diffusers'
  training scripts: ``metadata.jsonl`` (or ``metadata.csv``) with ``file_name`` (relative
  to the metadata file) and ``text``; optionally split subfolders ``train/``, ``test/``
  each holding their own metadata. An integer ``label`` column is used when present;
  ``objects``/``relation`` columns (a folder written by ``t2i data shapes``) become
  ``dataset.records``. ``text`` may be a list of captions: one is drawn per access in
  training, the first is used otherwise (``t2i.data.transforms``).
- **Folder of images without metadata**: the layout of torchvision's ``ImageFolder`` and of
  ``datasets``' imagefolder without metadata. Images in class subfolders (``animals/1.png``,
  ``food/2.png``; deeper folders belong to their top one) are labelled by folder, classes sorted
  by name (as both tools do), and captioned by the folder's name ("sports car" for
  ``sports_car/``), so class- and text-conditional trainers both read it; images lying loose, or in
  a single class folder (``datasets`` labels two classes or more: ``Images/`` beside a captions table is not
  a class), are neither labelled nor captioned (text-conditioned trainers refuse them: ``require_captions``).
  Caption files beside the images (``photo.png`` + ``photo.txt`` or ``.caption``: kohya's sd-scripts, Reed et
  al.'s CUB text files) caption them instead, one caption per non-blank line; an image without one, where
  others have one, is a ``bad_row``. Splits: with a ``train/`` subfolder, each subfolder is a split
  (``train/animals/1.png``). Items
  alternate between classes (``n`` takes from every class). The report's first lines say where
  labels and captions came from.
- **CSV/TSV**: open_clip's layout, columns ``filepath`` and ``title`` by default
  (``image_column``, ``caption_column``); also a ``.txt`` table (Flickr8k's ``captions.txt``).
  Separator by extension (``,`` for ``.csv`` and ``.txt``, tab for ``.tsv``) unless ``sep`` is given
  or the header holds none of it and another of ``SEPARATORS``; column names are stripped of spaces.
  Relative paths resolve against the CSV's folder, or, when none of the first rows' files is there, against
  the subfolder holding them (Flickr8k's ``Images/``; the report's notes say so); absolute paths are allowed,
  as in open_clip's CSVs. A row with more fields than the header (often an unquoted separator in a caption)
  is a ``bad_row``, reported with its line.
- **One row per caption** (Flickr8k, COCO): rows of a CSV or ``metadata.jsonl`` naming the same image are one
  item with the list of their captions (each row checked and reported on its own; label and structure from the
  first good row; a later row with another label is a ``bad_row``). One item per image: a contrastive batch
  never pairs one picture with two of its captions as if they were two pictures, and retrieval counts each of
  an image's captions as right (``t2i.clip.evaluate``).

Metadata is read line by line: a line that is not UTF-8 or not valid JSON is a ``bad_row``
reported with its line number; the other lines are used. A UTF-8 byte-order mark is ignored.

Images are converted to RGB (rules in ``t2i.data.bad_data``) and made ``size x size`` by the
resize mode (default: shorter side to ``size``, centre crop; ``t2i.data.transforms``). At construction every row is checked cheaply (caption, file
exists, image header readable: ``check="header"``) and bad rows are dropped and reported;
``check="decode"`` (implied by ``strict=True``) decodes every image too, so truncated files
are caught up front. A file that only fails when decoded during training is reported
(with a warning, in the process that loaded it) and replaced by the next good item, so a
DataLoader epoch never dies on it.

    t2i data shapes --out /tmp/s50 --n 50
    python -c "from t2i.data import load_dataset; ds = load_dataset('/tmp/s50'); print(ds, ds.report)"
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .bad_data import BadDataReport, BadImage, check_mode, load_image, open_image
from .transforms import (Augment, ImageShapes, caption_columns, check_captions, joined_captions,
                         require_columns)

FOLDER_OPTIONS = ("image_column", "caption_column", "label_column", "check")
CSV_OPTIONS = ("image_column", "caption_column", "label_column", "sep", "check")
CHECKS = ("header", "decode")
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
PROGRESS_ABOVE = 2000  # show a progress bar when checking more rows than this
MAX_SUBSTITUTES = 64  # consecutive bad files tolerated while fetching one item
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")  # a table of image path and caption (a .txt one needs a separator in line 1)
CAPTION_SUFFIXES = (".txt", ".caption")  # photo.png + photo.txt: kohya's sd-scripts, Reed et al.'s CUB text files
SEPARATORS = (",", "\t", "|", ";")  # a table's separator, when its header does not hold the extension's
BASE_PROBE = 20  # relative image paths looked up to find a CSV's image folder (``_image_base``)
MEMORY_BYTES = 2**30  # prepared images (uint8) a process keeps, so a file is decoded and resized once, not per epoch


@dataclass
class Row:
    path: Path  # the image file
    name: str  # as written in the metadata (shown in reports)
    text: Any  # raw caption value (checked later)
    label: Any = None  # raw label value or None
    extra: dict[str, Any] | None = None  # objects/relation of a shapes folder


def find_metadata(folder: Path) -> Path | None:
    for name in METADATA_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


@lru_cache(maxsize=1)
def _image_suffixes() -> frozenset[str]:
    """The extensions of the formats Pillow can open (``.png``, ``.jpg``, ``.webp``, ...; not save-only ``.pdf``)."""
    return frozenset(ext for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN)


def is_image(path: Path) -> bool:
    """A file whose extension is one Pillow opens."""
    return path.suffix.lower() in _image_suffixes() and path.is_file()


def _walk_images(folder: Path) -> Iterator[Path]:
    """The images under ``folder`` at any depth (hidden files and folders left out), in path order, lazily."""
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield from (Path(top) / f for f in sorted(files) if not f.startswith(".") and is_image(Path(top) / f))


def holds_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image file at any depth (stops at the first)."""
    return next(_walk_images(folder), None) is not None


def folder_splits(root: Path) -> dict[str, Path]:
    """A user folder's splits, name -> folder: ``{"train": root}`` for a single split (metadata at the top, or
    images without a ``train/`` subfolder), else the subfolders with metadata, or, in a folder of images with
    ``train/``, every subfolder that holds images."""
    if find_metadata(root) is not None:
        return {"train": root}
    subfolders = [s for s in sorted(root.iterdir()) if s.is_dir() and not s.name.startswith(".")]
    with_metadata = {s.name: s for s in subfolders if find_metadata(s)}
    if with_metadata or not (root / "train").is_dir():
        return with_metadata or {"train": root}
    return {s.name: s for s in subfolders if holds_images(s)}


def rows_per_image(keys: list[Any], n: int | None = None) -> tuple[list[list[int]], list[str]]:
    """Row indices grouped by the image each names (``keys``: its path; None, an image of its own), in order of first
    appearance, the first ``n`` groups; and the note to report when some image has several rows (one per caption)."""
    by_image: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        by_image.setdefault(i if key is None else key, []).append(i)  # a row index never equals a path
    groups = list(by_image.values())[:n] if n is not None else list(by_image.values())
    if len(by_image) == len(keys):
        return groups, []
    per_image = sorted({len(group) for group in groups})
    each = f"{per_image[0]}" if len(per_image) == 1 else f"{per_image[0]} to {per_image[-1]}"
    return groups, [f"{sum(map(len, groups))} rows name {len(groups)} images: one item per image with its captions "
                    f"({each} rows each; training draws one caption per item and epoch)"]


def check_image_rows(rows: list[Any], check_row: Callable[[Any], tuple[list[str], int]], name: Callable[[Any], str],
                     report: BadDataReport) -> tuple[Any, list[str], int] | None:
    """The rows naming one image, each checked on its own by ``check_row`` (its captions and label; ``BadImage``
    reported under ``name(row)``): the first good row, every good row's captions, its label; None when none is good.
    A row whose label differs from the first good row's is a bad row."""
    good: list[tuple[Any, list[str], int]] = []
    for row in rows:
        try:
            texts, label = check_row(row)
            if good and label != good[0][2]:
                raise BadImage("bad_row", f"label {label}, while an earlier row of this image has {good[0][2]}")
        except BadImage as bad:
            report.add(bad.kind, name(row), bad.detail)
            continue
        good.append((row, texts, label))
    return (good[0][0], [t for _, texts, _ in good for t in texts], good[0][2]) if good else None


def loose_beside_splits(root: Path, splits: dict[str, Path]) -> list[str]:
    """A note when images lie at the top of ``root`` beside its split subfolders, which are all that is read."""
    if root in splits.values():
        return []
    loose = [f.name for f in sorted(root.iterdir()) if not f.name.startswith(".") and is_image(f)]
    if not loose:
        return []
    return [f"{len(loose)} image(s) at the top of {root} lie outside its splits ({', '.join(f'{s}/' for s in splits)}) "
            f"and are not read, e.g. {loose[0]}: move them into a split to use them"]


def _class_folders(folder: Path) -> list[Path] | None:
    """The class subfolders of a split of images, or None when some image lies loose in it (unlabelled)."""
    if any(not f.name.startswith(".") and is_image(f) for f in folder.iterdir()):
        return None
    classes = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".") and holds_images(d)]
    return classes or None


def caption_tables(folder: Path) -> list[Path]:
    """The CSV/TSV/TXT tables at the top of a folder of images without metadata: captions the user may have meant
    (not an image's caption file)."""
    images = {f.stem for f in folder.iterdir() if is_image(f)}
    return [f for f in sorted(folder.iterdir()) if f.is_file() and f.suffix.lower() in TABLE_SUFFIXES
            and f.stem not in images]


def class_caption(name: str) -> str:
    """A class folder's name as a caption: ``sports_car`` -> "sports car"."""
    return " ".join(name.replace("_", " ").replace("-", " ").split())


class SkipsBadImages(Dataset):
    """Item access shared by the user-data datasets: an image that fails to decode is reported once and
    replaced by the next readable one (at most ``MAX_SUBSTITUTES`` tried); captions, crops and flips come
    from ``augment``'s per-item, per-epoch generator. Unless crops are random, an image is decoded and resized
    once and kept in memory (``MEMORY_BYTES`` per process), the flip drawn per access as before: the same pixels,
    without decoding every file every epoch (in the training process; ``--num-workers`` workers start afresh
    each epoch, so they keep nothing). Subclasses set ``rows``, ``caption_lists``, ``labels``,
    ``augment``, ``report``, ``source``, ``size``, ``channels``, ``_failed`` and define ``_load_item(j, rng,
    augment)`` (the decoded image) and ``_item_name(j)`` (how the report names item ``j``)."""

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the random crops, flips and caption draws (``Run.dataloader`` calls it)."""
        self.augment.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index %= len(self)
        for k in range(min(MAX_SUBSTITUTES, len(self))):
            j = (index + k) % len(self)  # a file that fails now is replaced by the next one
            if j in self._failed:
                continue
            rng = self.augment.rng(j)  # caption draw, then crop, then flip
            text = self.augment.caption(self.caption_lists[j], rng)
            try:
                image = self._prepared(j, rng)
            except BadImage as bad:
                self._failed.add(j)  # reported once, skipped silently afterwards
                self.report.warn(bad.kind, self._item_name(j), bad.detail)
                continue
            return {"image": image, "text": text, "label": self.labels[j], "index": j}
        raise RuntimeError(f"{MAX_SUBSTITUTES} consecutive unreadable images from index {index} in "
                           f"{self.source}; run `t2i data validate {self.source}`")

    def _prepared(self, j: int, rng: Any) -> torch.Tensor:
        """Item ``j``'s image ``(C, S, S)`` in [0, 1]: from memory when kept (see the class docstring), flipped
        by ``rng`` as ``Augment.image`` would (a deterministic resize draws nothing, so the draws are the same)."""
        if self.augment.resize == "random-crop":
            return self._load_item(j, rng, self.augment)
        memory = self.__dict__.setdefault("_memory", {})  # item -> uint8 (C, S, S), before the flip
        if j in memory:
            image = memory[j].float().div_(255.0)  # exactly to_tensor's values
        else:
            image = self._load_item(j, rng, replace(self.augment, random_flip=0.0))
            if (len(memory) + 1) * image.numel() <= MEMORY_BYTES:
                memory[j] = image.mul(255.0).round_().to(torch.uint8)
        if self.augment.random_flip > 0 and rng.random() < self.augment.random_flip:
            image = image.flip(-1)
        return image

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(source={self.source!r}, n={len(self)}, channels={self.channels}, "
                f"size={self.size}, skipped={self.report.problems})")


class CaptionedFiles(SkipsBadImages):
    """Map-style dataset over checked ``Row``s, one item per image file (rows naming it: its captions); ``n`` keeps
    the first ``n`` images. See the module docstring."""

    def __init__(self, rows: list[Row], size: int = 32, channels: int | None = None, strict: bool = False,
                 check: str = "header", source: str = "", bad_rows: list[tuple[str, str]] = (),
                 augment: Augment | None = None, class_names: list[str] | None = None, captioned: bool = True,
                 notes: list[str] = (), n: int | None = None):
        if check not in CHECKS:
            raise ValueError(f"check must be one of {list(CHECKS)}, got {check!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None (RGB), got {channels!r}")
        self.size, self.channels, self.source = int(size), channels or 3, source
        self.augment = augment or Augment()
        groups, grouped = rows_per_image([row.path for row in rows], n)
        images = [[rows[i] for i in group] for group in groups]
        self.report = BadDataReport(source=source, checked=sum(map(len, images)) + len(bad_rows),
                                    images=len(images) if grouped else None,
                                    shapes=ImageShapes(self.augment.resize), notes=[*notes, *grouped])
        self.captioned = captioned  # False: a folder of images without metadata or classes ("" for every text)
        for name, detail in bad_rows:
            self.report.add("bad_row", name, detail)
        decode = strict or check == "decode"
        self._labelled = any(row.label is not None and row.label != "" for row in rows)  # then every row needs one
        self.rows, self.caption_lists, self.labels, self._sizes = [], [], [], []
        for same in tqdm(images, desc=f"checking {source}", unit="img", disable=len(images) < PROGRESS_ABOVE):
            good = self._check_rows(same)
            if not good:
                continue
            row, texts, label = good
            try:
                width = self._check_image(row, decode)
            except BadImage as bad:
                self.report.add(bad.kind, row.name, bad.detail)
                continue
            self.rows.append(row)
            self.caption_lists.append(texts)
            self.labels.append(label)
            self._sizes.append(width)
        self.captions = [texts[0] for texts in self.caption_lists]  # the first of each: evaluation, sample prompts
        if strict:
            self.report.raise_if_problems()
        if not self.rows:
            raise ValueError(f"no usable items in {source}: fix the items listed, or give another data source "
                             f"(`t2i data validate {source}` lists every problem):\n{self.report.summary()}")
        labelled = [x for x in self.labels if x >= 0]
        self.num_classes = len(class_names) if class_names else max(labelled) + 1 if labelled else 0
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.records = self._records()
        if self.records is not None and self.augment.random_flip > 0:
            raise ValueError(f"random_flip on {source}: its captions name positions (left/right), which a flip "
                             "would make false; use random_flip=0 for shapes data")
        self._failed: set[int] = set()  # rows that failed to decode in this process

    def original_file(self, j: int) -> tuple[bytes, str]:
        """Item ``j``'s image file as stored and its extension (``t2i data shards`` copies it)."""
        path = self.rows[j].path
        return path.read_bytes(), path.suffix.lstrip(".").lower()

    def _check_rows(self, same: list[Row]) -> tuple[Row, list[str], int] | None:
        return check_image_rows(same, self._check_row, lambda row: row.name, self.report)

    def _check_row(self, row: Row) -> tuple[list[str], int]:
        """A row's captions and label (``BadImage`` for an empty caption, bad structure or label)."""
        texts = check_captions(row.text) if self.captioned else [""]  # one caption or a list (one drawn per access)
        if row.extra is not None:
            check_objects(row.extra.get("objects"))
        label = -1  # no label column at all: -1 for every row
        if self._labelled:  # a label-conditional trainer would index a class table with it: must be an int >= 0
            if row.label is None or row.label == "":
                raise BadImage("bad_row", "no label, while other rows have one (label every row, or none)")
            if isinstance(row.label, bool) or not str(row.label).strip().isdigit():
                raise BadImage("bad_row", f"label {row.label!r} is not an integer >= 0")
            label = int(str(row.label).strip())
        return texts, label

    def _check_image(self, row: Row, decode: bool) -> int | None:
        """Open (``decode``: decode) a row's image, counting its conversion and shape; its width when square."""
        with open_image(row.path, row.name) as img:
            self.report.shapes.add(img)
            width = img.size[0] if img.size[0] == img.size[1] else None
            if decode:
                _, converted = load_image(img, self.size, self.channels, name=row.name, augment=self.augment)
            else:
                converted = check_mode(img, self.augment.background)
        if converted:
            self.report.add("converted", row.name, converted)
        return width

    def _records(self) -> list[dict[str, Any]] | None:
        """Structured labels of a shapes folder, rescaled to ``size`` when the images are square."""
        if not any(row.extra is not None for row in self.rows):
            return None
        records = []
        for row, text, width in zip(self.rows, self.captions, self._sizes):
            scale = self.size / width if width else 1.0
            extra = row.extra or {}  # a row added to a shapes folder without structured labels: no objects
            objects = [dict(o, centre=[v * scale for v in o["centre"]], bbox=[v * scale for v in o["bbox"]])
                       for o in extra.get("objects") or []]
            records.append({"caption": text, "objects": objects, "relation": extra.get("relation"),
                            "image_size": self.size if width else None})
        return records

    def _load_item(self, j: int, rng: Any, augment: Augment) -> Any:
        row = self.rows[j]
        return load_image(row.path, self.size, self.channels, name=row.name, augment=augment, rng=rng)[0]

    def _item_name(self, j: int) -> str:
        return self.rows[j].name


def check_objects(objects: Any) -> None:
    """The ``objects`` of a shapes-folder row: a list of dicts with numeric ``centre`` and ``bbox``."""
    if objects is None:
        return
    ok = isinstance(objects, list) and all(
        isinstance(o, dict) and all(isinstance(o.get(k), list) and all(isinstance(v, (int, float)) for v in o[k])
                                    for k in ("centre", "bbox")) for o in objects)
    if not ok:
        raise BadImage("bad_row", "objects must be a list of {centre: [x, y], bbox: [x0, y0, x1, y1], ...}")


def _utf8_lines(path: Path) -> list[tuple[int, str | None, str]]:
    """``(line number, text or None, problem)`` for each line; None where the bytes are not UTF-8."""
    lines = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # byte-order mark
        try:
            lines.append((lineno, raw.decode("utf-8"), ""))
        except UnicodeDecodeError as err:
            lines.append((lineno, None, f"not UTF-8 text: byte {raw[err.start:err.start + 1]!r} at column {err.start + 1}"))
    return lines


def _read_jsonl(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str]]]:
    """``(location, row)`` of every JSON object line; bad lines as ``(location, problem)``."""
    rows, bad = [], []
    for lineno, line, problem in _utf8_lines(path):
        if line is None:
            bad.append((f"{path.name}:{lineno}", problem))
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            bad.append((f"{path.name}:{lineno}", f"invalid JSON: {err}"))
            continue
        rows.append((f"{path.name}:{lineno}", row))
    return rows, bad


_EXTRA = "\0extra fields"  # csv.DictReader's key for fields beyond the header (never a real column name)


def _read_csv(path: Path, sep: str) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str]]]:
    """Rows of a CSV/TSV; lines that are not UTF-8 or have more fields than the header are reported."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")  # bad bytes -> lone surrogates, found below
    text = text[1:] if text.startswith("\ufeff") else text
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sep, restkey=_EXTRA)
    rows, bad = [], []
    if reader.fieldnames and any(_has_bad_bytes(f) for f in reader.fieldnames):
        raise ValueError(f"{path}: the header line is not UTF-8 text; save the file as UTF-8")
    if reader.fieldnames:
        reader.fieldnames = [f.strip() for f in reader.fieldnames]  # "image_name| comment": the column is "comment"
    try:
        for row in reader:
            where = f"{path.name}:{reader.line_num}"
            if _EXTRA in row:
                bad.append((where, f"{len(reader.fieldnames or []) + len(row[_EXTRA])} fields, the header has "
                                   f"{len(reader.fieldnames or [])} (quote fields that contain {sep!r})"))
                continue
            if any(isinstance(v, str) and _has_bad_bytes(v) for v in row.values()):
                bad.append((where, "not UTF-8 text"))
                continue
            rows.append((where, row))
    except csv.Error as err:  # e.g. a NUL byte, or an unterminated quote at the end of the file
        bad.append((f"{path.name}:{reader.line_num}", f"unreadable CSV from here on: {err}"))
    return rows, bad


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _to_rows(table: list[tuple[str, dict[str, Any]]], base: Path, image_column: str, caption_column: str,
             label_column: str, source: str, bad: list[tuple[str, str]], contained: bool) -> list[Row]:
    """Metadata rows -> ``Row``s; ``contained``: image paths must stay inside ``base`` (imagefolder)."""
    columns = sorted({str(k) for _, r in table for k in r})
    if table:
        require_columns(source, columns, image_column, caption_column)
    captions = caption_columns(caption_column)
    rows = []
    inside = os.path.normpath(base.absolute())
    for where, r in table:
        name = r.get(image_column)
        if not isinstance(name, str) or not name.strip():
            bad.append((where, f"no {image_column!r}"))
            continue
        name = name.strip()
        # lexical check (symlinks inside the folder may point anywhere, as datasets often link their files)
        if contained and os.path.commonpath([inside, os.path.normpath(base.absolute() / name)]) != inside:
            bad.append((name, f"path leaves the dataset folder {base} (file names are relative to it)"))
            continue
        extra = {"objects": r["objects"], "relation": r.get("relation")} if "objects" in r else None
        caption = joined_captions([r.get(c) for c in captions])
        rows.append(Row(base / name, name, caption, r.get(label_column), extra))
    return rows


def load_folder(source: str | Path, split: str = "train", size: int = 32, n: int | None = None,
                strict: bool = False, channels: int | None = None, image_column: str = "file_name",
                caption_column: str = "text", label_column: str = "label", check: str = "header",
                augment: Augment | None = None) -> CaptionedFiles:
    """An imagefolder with ``metadata.jsonl``/``metadata.csv`` (or of images in class folders: ``load_image_folder``),
    flat or with split subfolders."""
    root = Path(source)
    splits = folder_splits(root)
    if not any(find_metadata(f) for f in splits.values()):
        given = [f"--{k.replace('_', '-')}" for k, v, default in (("image_column", image_column, "file_name"),
                 ("caption_column", caption_column, "text"), ("label_column", label_column, "label")) if v != default]
        if given:
            raise ValueError(f"{root} has no metadata.jsonl, so no columns: drop {' '.join(given)} (labels and "
                             "captions come from its class folders)")
        return load_image_folder(root, splits, split, size, n, strict, channels, check, augment)
    if split not in splits:
        raise ValueError(f"{root} is a single split (no train/ test/ subfolders): use split='train', got {split!r}"
                         if find_metadata(root) else f"{root} has no split {split!r}; its splits are {sorted(splits)}")
    folder = splits[split]
    meta = find_metadata(folder)
    assert meta is not None
    table, bad = _read_jsonl(meta) if meta.suffix == ".jsonl" else _read_csv(meta, ",")
    rows = _to_rows(table, folder, image_column, caption_column, label_column, str(meta), bad, contained=True)
    return CaptionedFiles(rows, size, channels, strict, check, source=str(folder), bad_rows=bad, augment=augment,
                          notes=loose_beside_splits(root, splits), n=n)


def load_image_folder(root: Path, splits: dict[str, Path], split: str = "train", size: int = 32, n: int | None = None,
                      strict: bool = False, channels: int | None = None, check: str = "header",
                      augment: Augment | None = None) -> CaptionedFiles:
    """A folder of images without metadata (class subfolders, or loose images; ``splits``: ``folder_splits(root)``);
    see the module docstring."""
    if split not in splits:
        raise ValueError(f"{root} has no split {split!r}; its splits are {sorted(splits)}"
                         if len(splits) > 1 or (root / "train").is_dir() else
                         f"{root} is a single split (no train/ test/ subfolders): use split='train', got {split!r}")
    folder = splits[split]
    class_folders = {name: _class_folders(f) or [] for name, f in splits.items()}
    classes = sorted({c.name for found in class_folders.values() for c in found})  # every split's, one index
    groups = [(classes.index(c.name), list(_walk_images(c))) for c in class_folders[split]] if len(classes) > 1 else []
    if groups:  # first image of each class, then the second of each, ...: the first n items span the classes
        files = dict(groups)
        order = sorted((i, k) for k, paths in groups for i in range(len(paths)))
        rows = [Row(files[k][i], str(files[k][i].relative_to(folder)), class_caption(classes[k]), k) for i, k in order]
        counts = ", ".join(f"{classes[k]} {len(paths)}" for k, paths in groups)
        notes = [f"no metadata.jsonl: labels and captions from the {len(groups)} class folders ({counts})"]
    else:
        rows = [Row(f, str(f.relative_to(folder)), None) for f in _walk_images(folder)]
        why = f"one class folder ({classes[0]}/)" if classes else "no class folders"
        notes = [f"no metadata.jsonl and {why}: images without captions or labels (for the unconditional "
                 "trainers; captions come from metadata.jsonl with file_name and text, caption files beside the "
                 "images, or class folders)"]
        notes += [f"a table lies beside the images: give it as the data source (--data {t}) to read its captions"
                  for t in caption_tables(folder)]
    bad: list[tuple[str, str]] = []
    caption_files = any(caption_file(row.path) for row in rows)
    if caption_files:  # they caption the images; class folders still label them
        rows, bad = with_caption_files(rows)
        notes = ["no metadata.jsonl: captions from the caption files beside the images (photo.png + photo.txt, one "
                 "caption per line)" + (f"; labels from the {len(groups)} class folders" if groups else "")]
    notes += loose_beside_splits(root, splits)
    return CaptionedFiles(rows, size, channels, strict, check, source=str(folder), augment=augment, bad_rows=bad,
                          class_names=classes if groups else None, captioned=bool(groups) or caption_files,
                          notes=notes, n=n)


def caption_file(image: Path) -> Path | None:
    """The caption file beside ``image``: its name with a ``CAPTION_SUFFIXES`` extension, or None."""
    return next((f for f in map(image.with_suffix, CAPTION_SUFFIXES) if f.is_file()), None)


def with_caption_files(rows: list[Row]) -> tuple[list[Row], list[tuple[str, str]]]:
    """``rows`` captioned by their caption files, each non-blank line a caption, and the bad rows: an image
    without one (where others have one) or whose file is not UTF-8 text."""
    kept, bad = [], []
    for row in rows:
        found = caption_file(row.path)
        if found is None:
            bad.append((row.name, f"no caption file {row.path.with_suffix('.txt').name} beside it, while other "
                                  "images have one: add one, or move the image out"))
            continue
        try:
            lines = [line for line in found.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        except UnicodeDecodeError as err:
            bad.append((row.name, f"{found.name} is not UTF-8 text ({err.reason}): save it as UTF-8"))
            continue
        kept.append(replace(row, text=lines if len(lines) > 1 else "".join(lines)))  # empty: an empty caption
    return kept, bad


def load_csv(source: str | Path, split: str = "train", size: int = 32, n: int | None = None,
             strict: bool = False, channels: int | None = None, image_column: str = "filepath",
             caption_column: str = "title", label_column: str = "label", sep: str | None = None,
             check: str = "header", augment: Augment | None = None) -> CaptionedFiles:
    """A CSV/TSV of image path + caption (open_clip's ``filepath``/``title`` by default)."""
    path = Path(source)
    if split != "train":
        raise ValueError(f"a CSV file is a single split: use split='train', got {split!r}")
    table, bad = _read_csv(path, sep if sep is not None else csv_separator(path))
    base, notes = _image_base(path.parent, [r.get(image_column) for _, r in table])
    rows = _to_rows(table, base, image_column, caption_column, label_column, str(path), bad, contained=False)
    return CaptionedFiles(rows, size, channels, strict, check, source=str(path), bad_rows=bad, augment=augment,
                          notes=notes, n=n)


def csv_separator(path: Path) -> str:
    """A table's separator: tab for ``.tsv``, else a comma, unless its header line holds none of that and one of
    ``SEPARATORS`` (Flickr30k's ``results.csv`` is separated by ``|``)."""
    default = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return default if default in header else next((s for s in SEPARATORS if s in header), default)


def _image_base(folder: Path, names: list[Any]) -> tuple[Path, list[str]]:
    """Where a CSV's relative image paths resolve: its folder, or, when none of the first ``BASE_PROBE`` of them is
    there, the subfolder holding most of them (Flickr8k's ``captions.txt`` beside ``Images/``), said in a note."""
    probe = [n.strip() for n in names if isinstance(n, str) and n.strip() and not Path(n.strip()).is_absolute()]
    probe = probe[:BASE_PROBE]
    if not probe or any((folder / n).exists() for n in probe):
        return folder, []
    found = {sub: sum((sub / n).exists() for n in probe) for sub in sorted(folder.iterdir())
             if sub.is_dir() and not sub.name.startswith(".")}
    best = max(found, key=found.get, default=None)
    if best is None or not found[best]:
        return folder, []
    return best, [f"image paths read in {best.name}/ (the first {len(probe)} are not beside the table; "
                  f"{found[best]} of them are there)"]
