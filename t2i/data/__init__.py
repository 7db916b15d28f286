"""Every dataset behind one call: ``load_dataset(source, split, size, ...)``.

Sources (see ``docs/DESIGN.md``, "Data"):
- ``"shapes"``: generated in memory (``t2i.data.shapes``) and cached as a uint8 tensor;
  default ``n``: 20000 for ``train``, 2000 for ``test`` and ``novel``. Option ``p_two``.
  Labels: the subject's (colour, shape) pair, 28 classes (``shapes.PAIRS``).
- ``"digits"``: scikit-learn's 8x8 digits upsampled (``t2i.data.digits``), 1 channel,
  10 classes, fixed stratified train/test split; default ``n``: the whole split.
- a folder with ``metadata.jsonl`` / ``metadata.csv`` (imagefolder layout, optionally
  with ``train/``, ``test/`` subfolders), e.g. one written by ``t2i data shapes``; or of
  images without metadata, labelled and captioned by their class folders (``t2i.data.folder``);
- a ``.csv`` / ``.tsv`` file of image path + caption (open_clip's ``filepath``/``title``);
- WebDataset shards: a ``.tar``, a brace pattern ``data-{000..009}.tar``, or a folder of
  ``.tar`` files, streamed as an ``IterableDataset``;
- Hugging Face ``datasets`` (``t2i.data.hf``): a ``save_to_disk`` folder, a hub name
  (``hf:org/name``, or ``org/name`` when no such local path exists; offline from the cache),
  or a local builder script ``my_dataset.py``.

User data (not shapes/digits) takes the preprocessing options of ``t2i.data.transforms``:
``resize`` (``center-crop``, ``random-crop``, ``pad``, ``stretch``), ``random_flip`` and
``draw_caption`` (several captions per image: one drawn per access); ``training_options(cfg)``
gives a trainer's, ``evaluation_options(cfg)`` the deterministic ones for evaluation.

Items: ``{"image": FloatTensor (C, S, S) in [0, 1], "text": str, "label": int (-1 if
none), "index": int}``. Attributes: ``channels``, ``size``, ``num_classes``,
``class_names``, ``records`` (shapes: structured labels), ``report`` (``BadDataReport``).

    python -c "from t2i.data import load_dataset; ds = load_dataset('shapes', n=8); print(ds, ds[0]['text'])"
"""

from __future__ import annotations

import itertools
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import shapes
from .bad_data import BadDataError, BadDataReport
from .base import TensorImageText, convert_channels
from .transforms import BACKGROUNDS, RESIZE_MODES, Augment, check_resize, evaluation_resize

__all__ = ["load_dataset", "BadDataReport", "BadDataError", "shapes_dataset", "DEFAULT_N", "describe_source",
           "shapes_options", "training_options", "evaluation_options", "random_choices", "RESIZE_MODES",
           "held_out_split", "has_test_split", "end_of_run_data", "trained_options", "as_trained", "all_captions",
           "require_captions", "spread_indices"]

# default number of generated shapes scenes per split
DEFAULT_N = {"train": 20_000, "test": 2_000, "novel": 2_000}
SHAPES_OPTIONS = ("p_two", "progress")
_PROGRESS_ABOVE = 5_000  # show a progress bar when rendering more scenes than this


@lru_cache(maxsize=4)
def _shapes_tensor(n: int, seed: int, size: int, split: str, p_two: float,
                   progress: bool) -> tuple[torch.Tensor, tuple[dict[str, Any], ...]]:
    records = shapes.make_scenes(n, seed, size, split, p_two)
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)  # (N, 3, S, S)
    for i, rec in enumerate(tqdm(records, desc=f"rendering shapes/{split}", unit="img", disable=not progress)):
        images[i] = torch.from_numpy(np.array(shapes.render(rec, size))).permute(2, 0, 1)  # (3, S, S)
    return images, tuple(records)


def shapes_dataset(split: str = "train", size: int = 32, n: int | None = None, seed: int = 0,
                   channels: int | None = None, p_two: float = 0.5, progress: bool | None = None) -> TensorImageText:
    """The shapes split rendered in memory (cached per arguments, so a second call is free)."""
    if split not in DEFAULT_N:
        raise ValueError(f"shapes split must be one of {list(DEFAULT_N)}, got {split!r}")
    n = DEFAULT_N[split] if n is None else int(n)
    if n <= 0:
        raise ValueError(f"n must be a positive number of scenes, got {n}")
    progress = n > _PROGRESS_ABOVE if progress is None else progress
    images, records = _shapes_tensor(n, int(seed), int(size), split, float(p_two), bool(progress))
    recs = list(records)  # shared with the cache: treat as read-only
    return TensorImageText(convert_channels(images, channels), [r["caption"] for r in recs],
                           [shapes.label_of(r) for r in recs], class_names=shapes.class_names(),
                           records=recs, source=f"shapes/{split}")


def describe_source(source: str | Path) -> str:
    """Which loader a source goes to: shapes, digits, folder, csv, shards, hf-disk, hf-script or
    hf-hub (ValueError if none)."""
    from .hf import hub_name, is_saved_dataset

    text = str(source)
    if text in ("shapes", "digits"):
        return text
    if "{" in text and text.endswith(".tar"):
        return "shards"
    path = Path(text)
    if path.is_file():
        if path.suffix.lower() in (".csv", ".tsv"):
            return "csv"
        if path.suffix.lower() == ".txt":  # Flickr8k's captions.txt: a table if its first line has a separator
            from .folder import SEPARATORS

            with open(path, encoding="utf-8", errors="replace") as f:
                if any(sep in f.readline() for sep in SEPARATORS):
                    return "csv"
        if path.suffix.lower() == ".tar":
            return "shards"
        if path.suffix.lower() == ".py":
            return "hf-script"
    if hub_name(text) is not None:
        return "hf-hub"
    if path.is_dir():
        from .folder import find_metadata, holds_images

        if is_saved_dataset(path):
            return "hf-disk"

        if find_metadata(path) is not None or any(find_metadata(path / s) for s in ("train", "test", "validation")):
            return "folder"
        from .shards import shard_splits

        if any(path.glob("*.tar")) or shard_splits(path):  # a folder of shards, or of split folders of them
            return "shards"
        if holds_images(path):  # images without metadata: class folders, or loose
            return "folder"
    where = "not found" if not path.exists() else "not a recognised dataset" + (": no images in it" * path.is_dir())
    raise ValueError(f"data source {text!r} ({where}); use 'shapes', 'digits', a folder with "
                     "metadata.jsonl (or metadata.csv) or of images in class folders, "
                     "a .csv/.tsv (or .txt) table of image path + caption, "
                     "WebDataset shards (a .tar file, a pattern like data-{000..009}.tar, or a folder of .tar), "
                     "a datasets save_to_disk folder, a dataset script .py, or a hub name hf:org/name")


def held_out_split(source: str | Path) -> str:
    """The split an evaluation reads by default: ``test`` where the source has named splits (shapes,
    digits, a folder with ``train/`` ``test/``, of images or of shards, a saved ``DatasetDict``, a hub or
    script dataset), else
    ``train``, the one split of a single-split source (a flat folder, a CSV, shards, a saved ``Dataset``):
    there the source given *is* the held-out data, e.g. ``mydata/test``."""
    kind = describe_source(source)
    path = Path(str(source))
    if kind == "folder":
        from .folder import folder_splits

        return "train" if list(folder_splits(path).values()) == [path] else "test"
    if kind == "hf-disk":
        return "test" if (path / "dataset_dict.json").is_file() else "train"
    if kind == "shards":
        from .shards import shard_splits

        return "test" if "test" in shard_splits(path) else "train"
    return "train" if kind == "csv" else "test"


def has_test_split(source: str | Path) -> bool:
    """Whether ``source`` holds a ``test`` split one can read without a download: the built-in data, a folder
    with ``test/`` (``metadata.jsonl`` inside, images beside ``train/``, or shards), a saved ``DatasetDict``
    listing one.
    Hub and script datasets say so only when loaded: False."""
    kind = describe_source(source)
    path = Path(str(source))
    if kind in ("shapes", "digits"):
        return True
    if kind == "folder":
        from .folder import folder_splits

        return "test" in folder_splits(path)
    if kind == "hf-disk" and (path / "dataset_dict.json").is_file():
        return "test" in json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
    if kind == "shards":
        from .shards import shard_splits

        return "test" in shard_splits(path)
    return False


def end_of_run_data(cfg: Any, trained: Any, n: int) -> tuple[Any, str]:
    """The images a trainer measures its final model on: ``cfg.data``'s test split read as evaluation reads it
    (shapes: ``n`` scenes rendered; other sources: the whole split), or, from a source without one (a flat folder,
    a CSV, shards), the training data ``trained``: ``(dataset, why)``, ``why`` empty for a test split, else
    the reason there is none, for the trainer's report."""
    try:
        test = load_dataset(cfg.data, split="test", size=cfg.size, seed=cfg.seed,
                            n=n if str(cfg.data) == "shapes" else None, **evaluation_options(cfg))
    except ValueError as err:  # a single-split folder, a CSV or shards: no test split to measure on
        return trained, str(err)
    return test, ""


def require_captions(dataset: Any, who: str) -> None:
    """Refuse, naming the fix, a dataset without captions (a folder of loose images, ``t2i.data.folder``) for
    ``who``: a text-conditioned trainer or measure."""
    if not getattr(dataset, "captioned", True):
        from .folder import caption_tables

        folder = Path(dataset.source)
        tables = caption_tables(folder) if folder.is_dir() else []
        beside = f"; or give the table beside them as --data ({', '.join(map(str, tables))})" if tables else ""
        raise ValueError(f"{dataset.source} has no captions (images without metadata.jsonl or class folders), which "
                         f"{who} needs: add a metadata.jsonl of file_name and text, or sort the images into class "
                         f"folders, whose names become their captions{beside}")


def shapes_options(source: str | Path, p_two: float) -> dict[str, Any]:
    """A trainer's ``--p-two`` as a ``load_dataset`` option: only for shapes, only when it differs from
    the spec's default (ValueError otherwise, naming the fix)."""
    if str(source) == "shapes":
        return {"p_two": p_two}
    if p_two != 0.5:
        raise ValueError(f"--p-two is a shapes option; {str(source)!r} is not the shapes dataset (drop --p-two)")
    return {}


def training_options(cfg: Any) -> dict[str, Any]:
    """A trainer's user-data options from its ``RunConfig`` (columns, resize mode, flips, caption draws)."""
    return {"image_column": cfg.image_column, "caption_column": cfg.caption_column, "resize": cfg.resize,
            "random_flip": cfg.random_flip, "draw_caption": True, **_background(cfg)}


def evaluation_options(cfg: Any) -> dict[str, Any]:
    """The same for evaluation: no random crop (the centre instead), no flip, the first caption."""
    return {"image_column": cfg.image_column, "caption_column": cfg.caption_column,
            "resize": evaluation_resize(cfg.resize), **_background(cfg)}


READING_DEFAULTS = {"image_column": "", "caption_column": "", "resize": "center-crop", "background": "black"}


def trained_options(*models: str, kind: str = "") -> tuple[dict[str, Any], str]:
    """How the first of ``models`` that is a t2i run folder (or a run's ``model/`` subfolder) read its user
    images, as evaluation reads them (``evaluation_options`` of its ``config.json``): ``(options, the config
    file)``, or ``({}, "")`` when none is (a built-in name, an exported model). Its columns are left out when it
    trained on another ``kind`` of source (``describe_source``: a table's column is no shard's member)."""
    from types import SimpleNamespace

    from t2i.provenance import read_json_object, record_places

    for model in filter(None, models):
        for place in record_places(model):  # the model folder, and the run folder above a model/
            saved = read_json_object(place / "config.json")
            if "resize" in saved:  # a RunConfig, not a model's architecture
                read = SimpleNamespace(**{k: saved.get(k, v) for k, v in READING_DEFAULTS.items()})
                options = evaluation_options(read)
                try:
                    other_kind = bool(kind and saved.get("data")) and describe_source(saved["data"]) != kind
                except ValueError:  # its data is not here (another machine, moved): keep its columns
                    other_kind = False
                if other_kind:
                    options = {k: v for k, v in options.items() if k not in ("image_column", "caption_column")}
                return options, str(place / "config.json")
    return {}, ""


def as_trained(source: str | Path, given: dict[str, str], *models: str) -> tuple[dict[str, Any], str]:
    """Evaluation's reading options for ``source``: ``given`` (``image_column``, ``caption_column``,
    ``resize``, ``background``), where "" or "auto" means as the first run of ``models`` was trained
    (``trained_options``; not for shapes/digits, drawn one way), else ``READING_DEFAULTS``. Returns the options
    and a line naming what came from a run ("" when nothing did)."""
    for key, allowed in (("resize", RESIZE_MODES), ("background", tuple(BACKGROUNDS))):
        if given.get(key, "") not in ("", "auto", *allowed):
            raise ValueError(f"--{key} must be auto (as the model was trained) or one of {list(allowed)}, "
                             f"got {given[key]!r}")
    kind = describe_source(source)
    trained, config = trained_options(*models, kind=kind) if kind not in ("shapes", "digits") else ({}, "")
    options, taken = {}, []
    for key, default in READING_DEFAULTS.items():
        value = given.get(key, "")
        if value in ("", "auto"):
            value = trained.get(key, default)
            taken += [f"--{key.replace('_', '-')} {value}"] if value != default else []
        options[key] = value
    return options, f"reading the images as the model was trained: {' '.join(taken)} (from {config})" if taken else ""


def _background(cfg: Any) -> dict[str, str]:
    """``--background`` when it is not the default: left out at black, so the options (and the fingerprints of
    latent caches on disk built from them) stay what they were before the option existed."""
    return {"background": cfg.background} if cfg.background != "black" else {}


def first_items(dataset: Any, k: int) -> list[dict[str, Any]]:
    """The first ``k`` items of a map-style or a streamed dataset (all of them when it holds fewer)."""
    if isinstance(dataset, torch.utils.data.IterableDataset):
        return list(itertools.islice(dataset, k))
    return [dataset[i] for i in range(min(k, len(dataset)))]


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` indices evenly spaced over ``range(total)`` (all of them when ``count >= total``): a sample of a
    folder sorted by kind that is not its first kind alone."""
    return torch.linspace(0, total - 1, min(count, total)).round().long().unique().tolist()


def item_count(dataset: Any) -> int | str:
    """How many items a dataset holds, for a trainer's start-up line: ``len``, or "streamed" for shards."""
    return len(dataset) if hasattr(dataset, "__len__") else "streamed"


def all_captions(dataset: Any) -> list[str] | None:
    """Every caption of a map-style dataset (each of several per image), or None when they are not known up
    front (streamed shards)."""
    lists = getattr(dataset, "caption_lists", None)
    return [c for captions in lists for c in captions] if lists is not None else getattr(dataset, "captions", None)


def random_choices(dataset: Any) -> list[str]:
    """What differs between two accesses of one item (random crops, flips, caption draws); [] if nothing.
    A cache of prepared items (latent diffusion's) would freeze these, so it refuses them."""
    augment = getattr(dataset, "augment", None)  # user-data loaders have one; shapes/digits are fixed
    if not isinstance(augment, Augment):
        return []
    found = ["--resize random-crop"] if augment.resize == "random-crop" else []
    found += ["--random-flip"] if augment.random_flip > 0 else []
    if augment.draw and any(len(c) > 1 for c in getattr(dataset, "caption_lists", ())):
        found.append("several captions per image")
    return found


def _check_options(kind: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for a {kind} source; allowed: {sorted(allowed)}")


def load_dataset(source: str | Path, split: str = "train", size: int = 32, n: int | None = None,
                 seed: int = 0, strict: bool = False, channels: int | None = None, image_column: str = "",
                 caption_column: str = "", resize: str = "center-crop", random_flip: float = 0.0,
                 draw_caption: bool = False, background: str = "black", **options: Any):
    """Load any dataset source (see the module docstring) as a torch dataset.

    ``strict=True`` turns bad data (corrupt/truncated/missing images, empty captions)
    into a ``BadDataError`` here, before training starts; otherwise bad items are skipped
    and reported on ``dataset.report``. ``options`` are source-specific (unknown ones are
    errors): shapes ``p_two``; folder ``image_column`` (``file_name``), ``caption_column``
    (``text``), ``label_column`` (``label``), ``check`` (``header``|``decode``); CSV the same
    with ``filepath``/``title`` defaults plus ``sep``; shards ``shuffle_buffer``, ``start``
    (sample offset to resume from), ``caption_ext`` (``txt``), ``split_by_worker``.
    For user data ``n`` keeps the first ``n`` rows (before bad ones are dropped); shapes
    and digits default to ``DEFAULT_N`` / the whole split. A name (``shapes``, ``digits``)
    wins over a folder of that name: write ``./shapes`` for the folder.

    ``image_column`` / ``caption_column`` (every trainer's ``--image-column`` / ``--caption-column``)
    name where user data keeps its images and captions; "" = the source's default (metadata.jsonl
    ``file_name``/``text``, CSV ``filepath``/``title`` as open_clip, shards: any image extension /
    ``txt``, datasets: ``image``/``text``). For shards they are member extensions (``jpg``, ``caption``).
    Shapes and digits refuse them.

    ``resize`` (``RESIZE_MODES``), ``random_flip`` (probability of a horizontal flip) and
    ``draw_caption`` (several captions per image: draw one per access; False: the first) prepare
    user images (``t2i.data.transforms``); random choices are seeded by ``seed``, the epoch
    (``dataset.set_epoch``) and the item's index. Shapes and digits refuse a resize mode (they are
    drawn square at ``size``) and flips (a flip turns "left of" into "right of", and mirrors digits).
    ``background`` (``black`` or ``white``) goes under transparent pixels and around ``pad``'s letterbox.
    """
    kind = describe_source(source)
    check_resize(resize)
    columns = {k: v for k, v in (("image_column", image_column), ("caption_column", caption_column)) if v}
    if columns and kind in ("shapes", "digits"):
        raise ValueError(f"--image-column/--caption-column name columns of user data (a folder, a .csv/.tsv, "
                         f"shards); {kind!r} has none (drop them)")
    if kind in ("shapes", "digits") and random_flip:
        raise ValueError(f"--random-flip is refused on {kind!r}: a flipped image no longer matches its caption "
                         f"({'left/right positions swap' if kind == 'shapes' else 'mirrored digits'}); use 0")
    if kind in ("shapes", "digits") and background != "black":
        raise ValueError(f"--background applies to user images with transparency; {kind!r} is drawn on black "
                         "(drop --background)")
    if kind in ("shapes", "digits") and resize != "center-crop":
        raise ValueError(f"--resize applies to user images of any shape; {kind!r} is drawn square at --size "
                         "(drop --resize)")
    augment = Augment(resize, float(random_flip), bool(draw_caption), int(seed), background=background)
    if kind == "shards":  # a WebDataset sample's members are named by extension
        columns = {("image_ext" if k == "image_column" else "caption_ext"): v for k, v in columns.items()}
    options = {**options, **columns}
    if kind == "shapes":
        _check_options(kind, options, SHAPES_OPTIONS)
        return shapes_dataset(split, size, n, seed, channels, **options)
    if kind == "digits":
        _check_options(kind, options, ())
        from .digits import load_digits_dataset

        return load_digits_dataset(split, size, n, channels)
    if kind in ("folder", "csv"):
        from .folder import CSV_OPTIONS, FOLDER_OPTIONS, load_csv, load_folder

        _check_options(kind, options, FOLDER_OPTIONS if kind == "folder" else CSV_OPTIONS)
        loader = load_folder if kind == "folder" else load_csv
        return loader(source, split=split, size=size, n=n, strict=strict, channels=channels, augment=augment,
                      **options)
    if kind.startswith("hf-"):
        from .hf import HF_OPTIONS, load_hf

        _check_options(kind, options, HF_OPTIONS)
        return load_hf(source, kind, split=split, size=size, n=n, strict=strict, channels=channels, augment=augment,
                       **options)
    from .shards import SHARD_OPTIONS, ShardDataset

    _check_options(kind, options, SHARD_OPTIONS)
    return ShardDataset(source, size=size, n=n, seed=seed, strict=strict, channels=channels, split=split,
                        augment=augment, **options)
