"""Hugging Face ``datasets`` sources: a ``save_to_disk`` folder, a hub name, a local builder script.

- a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (recognised by
  its ``state.json`` + ``dataset_info.json``, or ``dataset_dict.json``; a DatasetDict gives ``split``);
- a hub name, ``hf:org/name`` or a plain ``org/name`` that is not a local path, through
  ``datasets.load_dataset(name, split=split)``: offline (``HF_HUB_OFFLINE=1``) it loads from
  the ``datasets`` cache, and when the name is not cached the error says so in one line;
- a local builder script ``my_dataset.py`` (a ``datasets.DatasetBuilder`` subclass, the old
  "loading script" layout, which ``datasets`` >= 4 no longer runs itself): we import it, prepare
  it into the ``datasets`` cache (once per script content) and read the split.

All three end as an Arrow table, memory-mapped from disk, so a dataset larger than memory
trains without being read into it. Columns (``image_column``, default ``image``;
``caption_column``, default ``text``; ``label_column``, default ``label``): an image may be an
``Image`` feature (decoded here, with the bad-data rules of ``t2i.data.bad_data``), a file
path (relative paths resolve against the saved folder or the script's folder) or bytes; a
caption a string or a list of strings (one drawn per access in training, the first otherwise).
Rows naming one image (a table of one row per caption, as COCO's) are one item with all their captions, as in
``t2i.data.folder``: told apart by the image's path, and by its bytes where rows share a file name.
A table without a ``text`` column (``datasets``' imagefolder of class folders: ``image``, ``label``)
is captioned by its ``ClassLabel`` names, as ``t2i.data.folder`` captions class folders; without
those either, it has no captions (``captioned`` False: the unconditional trainers read it).
Captions are checked up front; images when read (a bad one is reported and replaced by the
next good item, as in ``t2i.data.folder``), or all up front with ``check="decode"`` (implied by
``strict=True``; ``t2i data validate`` uses it).

    python -c "from t2i.data.hf import demo; demo()"
"""

from __future__ import annotations

import hashlib
import io
import importlib.util
import inspect
import itertools
import re
import sys
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from .bad_data import BadDataReport, BadImage, load_image, open_image
from .folder import CHECKS, PROGRESS_ABOVE, SkipsBadImages, check_image_rows, class_caption, rows_per_image
from .transforms import Augment, ImageShapes, caption_columns, check_captions, joined_captions, require_columns

HF_OPTIONS = ("image_column", "caption_column", "label_column", "check")
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+|[A-Za-z0-9][\w.-]*")  # org/name or a canonical name


def is_saved_dataset(path: Path) -> bool:
    """A ``save_to_disk`` folder: a Dataset (``state.json`` + ``dataset_info.json``) or a DatasetDict."""
    return path.is_dir() and ((path / "state.json").is_file() and (path / "dataset_info.json").is_file()
                              or (path / "dataset_dict.json").is_file())


def hub_name(source: str) -> str | None:
    """``hf:org/name`` -> ``org/name``; a plain ``org/name`` that is not a local path too; else None."""
    if source.startswith("hf:"):
        return source[3:]
    if "/" in source and _HUB_NAME.fullmatch(source) and not Path(source).exists():
        return source
    return None


def _open_saved(path: Path, split: str):
    import datasets

    table = datasets.load_from_disk(str(path))
    if isinstance(table, datasets.DatasetDict):
        if split not in table:
            raise ValueError(f"{path} is a DatasetDict without split {split!r}; its splits are {list(table)}")
        table = table[split]
    elif split != "train":
        raise ValueError(f"{path} is a single saved split (a Dataset, not a DatasetDict): use split='train', "
                         f"got {split!r}")
    return table


def _open_hub(name: str, split: str):
    import datasets

    try:
        return datasets.load_dataset(name, split=split)
    except Exception as err:  # offline and not cached, no such repo, no such split: one line, what to do
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        known = re.search(r"Unknown split .*Should be one of (\[.*\])", first)
        if known:  # the dataset loaded (from the cache or the hub): only this split is missing
            raise ValueError(f"hub dataset {name!r} has no split {split!r}; its splits are {known.group(1)}") from err
        offline = datasets.config.HF_HUB_OFFLINE
        hint = (f"offline (HF_HUB_OFFLINE=1) a hub dataset loads only from the datasets cache "
                f"{datasets.config.HF_DATASETS_CACHE}: load it once online, or give a save_to_disk folder"
                if offline else "check the name and split on the hub, or give a save_to_disk folder")
        raise ValueError(f"hub dataset {name!r} split {split!r} could not be loaded ({type(err).__name__}: "
                         f"{first[:200]}); {hint}") from err


def _open_script(path: Path, split: str):
    """Import ``path``, find its one ``DatasetBuilder`` subclass, prepare it into the cache, read ``split``."""
    import datasets

    code = path.read_bytes()
    digest = hashlib.sha256(code).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(f"t2i_dataset_script_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # datasets re-imports a builder's module by name
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    builders = [c for _, c in inspect.getmembers(module, inspect.isclass)
                if issubclass(c, datasets.DatasetBuilder) and c.__module__ == module.__name__]
    if len(builders) != 1:
        raise ValueError(f"{path}: a dataset script defines exactly one datasets.DatasetBuilder subclass "
                         f"(e.g. GeneratorBasedBuilder), found {[c.__name__ for c in builders]}")
    builder = builders[0](dataset_name=path.stem, hash=digest, base_path=str(path.parent))
    builder.download_and_prepare()  # a no-op when this script's content was prepared before
    try:
        return builder.as_dataset(split=split)
    except (ValueError, KeyError) as err:
        splits = list(builder.info.splits or {})
        raise ValueError(f"{path} has no split {split!r}; its splits are {splits}") from err


def open_table(source: str, kind: str, split: str):
    """The ``datasets.Dataset`` of a source of kind ``hf-disk``, ``hf-hub`` or ``hf-script``."""
    if kind == "hf-disk":
        return _open_saved(Path(source), split)
    if kind == "hf-script":
        return _open_script(Path(source), split)
    return _open_hub(hub_name(source) or source, split)


SHAPES_SAMPLE = 256  # the header check counts the aspect ratios of this many rows spread over the table


class HFImageText(SkipsBadImages):
    """Map-style dataset over a ``datasets.Dataset`` with image and caption columns."""

    def __init__(self, table, size: int = 32, n: int | None = None, channels: int | None = None,
                 strict: bool = False, image_column: str = "image", caption_column: str = "",
                 label_column: str = "label", source: str = "", base: Path | None = None,
                 augment: Augment | None = None, check: str = "header"):
        import datasets

        if check not in CHECKS:
            raise ValueError(f"check must be one of {list(CHECKS)}, got {check!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None (RGB), got {channels!r}")
        caption_column = caption_column or ("text" if "text" in table.column_names else "")  # "": none
        captions = caption_columns(caption_column)
        require_columns(source, table.column_names, image_column, caption_column)
        feature = table.features[image_column]
        if isinstance(feature, datasets.Image) and feature.decode:
            table = table.cast_column(image_column, datasets.Image(decode=False))  # {bytes, path}: we decode
        groups, grouped = rows_per_image(image_keys(table, image_column), n)  # COCO-style: one row per caption
        if n is not None:  # the first n images' rows, each image's rows now side by side
            table = table.select([i for group in groups for i in group])
            ends = list(itertools.accumulate(map(len, groups)))
            groups = [list(range(end - len(group), end)) for group, end in zip(groups, ends)]
        self.table, self.image_column, self.base = table, image_column, base
        self.size, self.channels, self.source = int(size), channels or 3, source
        self.augment = augment or Augment()
        self.report = BadDataReport(source=source, checked=len(table), images=len(groups) if grouped else None,
                                    shapes=ImageShapes(self.augment.resize), notes=grouped)
        label_feature = table.features.get(label_column)
        raw_labels = table[label_column] if label_feature is not None else [None] * len(table)
        names = getattr(label_feature, "names", None)  # a ClassLabel names its classes
        self.captioned = bool(caption_column or names)  # False: "" for every text
        if caption_column:
            raw_captions = [joined_captions(list(values)) for values in zip(*(table[c] for c in captions))]
        elif names:
            raw_captions = [class_caption(names[k]) if isinstance(k, int) and 0 <= k < len(names) else None
                            for k in raw_labels]
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            self.report.notes.append(f"no 'text' column: captions from the {label_column!r} column's "
                                     f"{len(names)} class names ({shown})")
        else:
            raw_captions = [None] * len(table)
            self.report.notes.append("no 'text' column and no class names: images without captions (for the "
                                     "unconditional trainers; --caption-column names a caption column)")

        def check_row(i: int) -> tuple[list[str], int]:
            label = raw_labels[i]
            if label is not None and (isinstance(label, bool) or not isinstance(label, int) or label < 0):
                raise BadImage("bad_row", f"label {label!r} is not an integer >= 0")
            return (check_captions(raw_captions[i]) if self.captioned else [""]), -1 if label is None else int(label)

        self.rows, self.caption_lists, self.labels = [], [], []
        for group in tqdm(groups, desc=f"checking {source}", disable=len(groups) < PROGRESS_ABOVE):
            good = check_image_rows(group, check_row, lambda i: f"{source}[{i}]", self.report)
            if good is None:
                continue
            i, texts, label = good
            if strict or check == "decode":  # decoded as training will: conversions and crops reported
                try:
                    image, name = self._open(i)
                    self.report.shapes.add(image)
                    converted = load_image(image, self.size, self.channels, name=name, augment=self.augment)[1]
                except BadImage as bad:
                    self.report.add(bad.kind, f"{source}[{i}]", bad.detail)
                    continue
                if converted:
                    self.report.add("converted", name, converted)
            self.rows.append(i)
            self.caption_lists.append(texts)
            self.labels.append(label)
        if strict:
            self.report.raise_if_problems()
        if not self.rows:
            raise ValueError(f"no usable items in {source}:\n{self.report.summary()}")
        self.captions = [texts[0] for texts in self.caption_lists]  # the first of each: evaluation, prompts
        if not (strict or check == "decode"):  # the header check reads no image: count a spread sample's shapes
            self.report.shapes.sampled = len(self.rows) > SHAPES_SAMPLE
            for j in sorted({k * len(self.rows) // SHAPES_SAMPLE for k in range(SHAPES_SAMPLE)}):
                try:
                    self.report.shapes.add(self._open(self.rows[j])[0])
                except BadImage:  # reported when training reaches it
                    pass
        self.num_classes = len(names) if names else (max(self.labels) + 1 if max(self.labels) >= 0 else 0)
        self.class_names = list(names) if names else [str(i) for i in range(self.num_classes)]
        self.records = None
        self._failed: set[int] = set()

    def _stored(self, row: int) -> tuple[Any, str]:
        """The row's image as stored (bytes, a ``Path`` or a PIL image; ``BadImage`` when none) and its name (its
        path where it has one)."""
        value = self.table[row][self.image_column]
        name = f"{self.source}[{row}]"
        if isinstance(value, dict):  # an Image feature read undecoded: {"bytes": ..., "path": ...}
            value = value.get("bytes") or value.get("path")
        if isinstance(value, str):
            name = value
            value = self.base / value if self.base is not None and not Path(value).is_absolute() else Path(value)
        if value is None:
            raise BadImage("missing", "no image in this row")
        return value, name

    def _open(self, row: int) -> tuple[Any, str]:
        """The row's image, opened (header only; ``BadImage`` if it cannot be), and its name for the report."""
        value, name = self._stored(row)
        return (value if isinstance(value, Image.Image) else open_image(value, name)), name

    def original_file(self, j: int) -> tuple[bytes, str]:
        """Item ``j``'s image as stored and its extension (from its name, else its format; ``t2i data shards``)."""
        value, _ = self._stored(self.rows[j])
        if isinstance(value, Image.Image):
            from .shards import encode_png

            return encode_png(value), "png"
        data = value.read_bytes() if isinstance(value, Path) else value
        ext = value.suffix.lower() if isinstance(value, Path) else ""
        if ext not in Image.registered_extensions():  # bytes, or an odd file name: the format the bytes hold
            with Image.open(io.BytesIO(data)) as image:
                ext = {"JPEG": ".jpg"}.get(image.format or "", f".{(image.format or 'png').lower()}")
        return data, ext.lstrip(".")

    def _load(self, row: int, augment: Augment, rng=None):
        image, name = self._open(row)
        return load_image(image, self.size, self.channels, name=name, augment=augment, rng=rng)

    def _load_item(self, j: int, rng: Any, augment: Augment) -> Any:
        return self._load(self.rows[j], augment, rng)[0]

    def _item_name(self, j: int) -> str:
        return f"{self.source}[{self.rows[j]}]"


HASH_CHUNK = 1024  # rows whose image bytes are read at a time to tell images of one file name apart


def image_keys(table: Any, image_column: str) -> list[Any]:
    """What tells rows naming one image (``rows_per_image``): a path column's path; an undecoded ``Image``
    feature's path, with a hash of its bytes where several rows share a path (``save_to_disk`` and the hub keep only
    a file's name, and class folders often reuse names like ``0.png``); None (a row of its own) without a path."""
    import datasets

    feature = table.features[image_column]
    if getattr(feature, "dtype", None) in ("string", "large_string"):
        return list(table[image_column])
    if not isinstance(feature, datasets.Image):
        return [None] * len(table)  # images as bytes: each row its own
    keys: list[Any] = list(table.select_columns([image_column]).flatten()[f"{image_column}.path"])
    counts: dict[str, int] = {}
    for path in keys:
        counts[path] = counts.get(path, 0) + 1
    shared = [i for i, path in enumerate(keys) if path is not None and counts[path] > 1]
    for start in range(0, len(shared), HASH_CHUNK):
        chunk = shared[start:start + HASH_CHUNK]
        blobs = table.select(chunk).select_columns([image_column]).flatten()[f"{image_column}.bytes"]
        for i, blob in zip(chunk, blobs):
            if blob is not None:  # embedded: the same name may be another image
                keys[i] = (keys[i], hashlib.blake2b(blob, digest_size=16).digest())
    return keys


def load_hf(source: str | Path, kind: str, split: str = "train", size: int = 32, n: int | None = None,
            strict: bool = False, channels: int | None = None, image_column: str = "image",
            caption_column: str = "", label_column: str = "label", check: str = "header",
            augment: Augment | None = None) -> HFImageText:
    table = open_table(str(source), kind, split)
    base = Path(source) if kind == "hf-disk" else Path(source).parent if kind == "hf-script" else None
    return HFImageText(table, size, n, channels, strict, image_column or "image", caption_column,
                       label_column, source=f"{source}:{split}", base=base, augment=augment, check=check)


def demo() -> None:
    import tempfile

    import datasets

    from . import shapes

    recs = shapes.make_scenes(4)
    table = datasets.Dataset.from_dict({"image": [shapes.render(r) for r in recs],
                                        "text": [[r["caption"], "a picture"] for r in recs]},
                                       features=datasets.Features({"image": datasets.Image(),
                                                                   "text": datasets.Sequence(datasets.Value("string"))}))
    with tempfile.TemporaryDirectory() as tmp:
        table.save_to_disk(tmp)
        ds = load_hf(tmp, "hf-disk", augment=Augment(draw=True))
        print(ds, [ds[i]["text"] for i in range(4)])
