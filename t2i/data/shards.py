"""WebDataset tar shards, streamed: for data that outgrows a folder.

A shard is a plain tar file whose members are grouped into samples by key (the path up
to the first dot of the file name): ``000123.png`` (or ``.jpg``, ``.jpeg``, ``.webp``)
plus ``000123.txt`` (the caption; several lines: one caption per line, as Reed et al.'s CUB and flowers text
files, one drawn per access in training), optionally ``000123.cls`` (an integer label). We use
the ``webdataset`` package's tar iterators (``url_opener`` -> ``tar_file_expander`` ->
``group_by_keys``) and add what training needs on top:

- the stream is deterministic: shards in the given order (a folder: sorted ``*.tar``), an
  optional shuffle buffer seeded by ``(seed, epoch)`` (``set_epoch``);
- every sample has a stream position, returned as ``index``; ``start=k`` skips the first
  ``k`` positions without decoding them (resume a run at a sample offset); ``n`` stops
  the stream after ``n`` positions;
- every process and DataLoader worker yields the same full stream by default: that is what
  ``t2i.runtime`` expects (it deals out the global batches itself); for a plain
  ``DataLoader(..., num_workers=W)`` pass ``split_by_worker=True`` so that worker ``w``
  keeps only the positions ``p % W == w`` and no sample is repeated;
- bad samples (missing image or caption, corrupt/truncated image, empty caption, an
  unreadable shard) are skipped, warned about and counted in ``report`` (the report of
  the process that iterated: with ``num_workers > 0`` that is the worker's copy); with
  ``strict=True`` the constructor streams everything once and raises if anything is bad.

    python -c "from t2i.data.shards import demo; demo()"
"""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path
from typing import Any, Iterator

import braceexpand
from torch.utils.data import IterableDataset, get_worker_info
from PIL import Image
from tqdm.auto import tqdm
from webdataset.tariterators import group_by_keys, tar_file_expander, url_opener

from .bad_data import BadDataReport, BadImage, check_caption, load_image, open_image
from .transforms import Augment, ImageShapes, check_captions

SHARD_OPTIONS = ("shuffle_buffer", "start", "image_ext", "caption_ext", "split_by_worker")
IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "bmp")


def shard_splits(source: str | Path) -> dict[str, Path]:
    """The splits of a folder that holds its shards by split, as ``t2i data shards SOURCE --split all --out DIR``
    writes them (``DIR/train/*.tar``, ``DIR/test/*.tar``): ``{split: folder}``; empty for anything else (a
    folder of ``.tar`` files is one split)."""
    path = Path(str(source))
    if not path.is_dir() or any(path.glob("*.tar")):
        return {}
    return {sub.name: sub for sub in sorted(path.iterdir()) if sub.is_dir() and any(sub.glob("*.tar"))}


def expand_urls(source: str | Path) -> list[str]:
    """A ``.tar``, a brace pattern (``data-{000..009}.tar``) or a folder of ``.tar`` -> paths."""
    text = str(source)
    if Path(text).is_dir():
        urls = [str(p) for p in sorted(Path(text).glob("*.tar"))]
    else:
        urls = list(braceexpand.braceexpand(text))
    missing = [u for u in urls if not Path(u).is_file()]
    if not urls or missing:
        raise ValueError(f"WebDataset shards {text!r}: {'no .tar files' if not urls else f'missing {missing[:3]}'}")
    return urls


class ShardDataset(IterableDataset):
    """Stream ``{"image", "text", "label", "index", "captions"}`` items from WebDataset shards (``captions``: all of
    the image's, one per line)."""

    def __init__(self, source: str | Path, size: int = 32, n: int | None = None, seed: int = 0,
                 strict: bool = False, channels: int | None = None, shuffle_buffer: int = 0,
                 start: int = 0, caption_ext: str = "txt", split: str = "train", split_by_worker: bool = False,
                 image_ext: str = "", augment: Augment | None = None):
        splits = shard_splits(source)
        if splits and split not in splits:
            raise ValueError(f"{source} holds the shard splits {sorted(splits)}, not {split!r}")
        if not splits and split != "train":
            raise ValueError(f"WebDataset shards are a single split: use split='train', got {split!r}")
        source = splits.get(split, source)
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None (RGB), got {channels!r}")
        if shuffle_buffer < 0 or start < 0 or (n is not None and n <= 0):
            raise ValueError(f"need shuffle_buffer >= 0, start >= 0, n > 0; got {shuffle_buffer}, {start}, {n}")
        self.urls = expand_urls(source)
        self.source = str(source)
        self.size, self.channels = int(size), channels or 3
        self.n, self.seed, self.epoch = n, int(seed), 0
        self.shuffle_buffer, self.start, self.caption_ext = int(shuffle_buffer), int(start), caption_ext
        self.split_by_worker = bool(split_by_worker)
        self.augment = augment or Augment(seed=self.seed)  # resize mode, flips (by seed, epoch, position)
        self.image_exts = (image_ext,) if image_ext else IMAGE_EXTS  # "" = the first image extension present
        self.num_classes, self.class_names, self.records = 0, [], None
        self.report = BadDataReport(source=self.source, shapes=ImageShapes(self.augment.resize))
        if image_ext or caption_ext != "txt":
            self._check_members()
        if strict:
            self.scan().raise_if_problems()

    def _check_members(self) -> None:
        """A chosen image/caption extension must be a member of the first sample (ValueError listing them)."""
        first = next(iter(self.raw_samples()), None)
        if first is None:
            return
        members = sorted(k for k in first if not k.startswith("__"))
        chosen = [(self.caption_ext, "caption_column")]
        if self.image_exts != IMAGE_EXTS:
            chosen.append((self.image_exts[0], "image_column"))
        for ext, option in chosen:
            if ext not in first:
                raise ValueError(f"{self.source}: no {ext!r} member in sample {first['__key__']!r} "
                                 f"(set {option} to one of its members: {members})")

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle buffer and the random crops and flips."""
        self.epoch = self.augment.epoch = int(epoch)

    def _on_error(self, exn: Exception) -> bool:
        where = next((a for a in reversed(exn.args) if isinstance(a, str)), self.source)
        detail = exn.args[0] if exn.args else exn
        self.report.warn("corrupt", where, f"unreadable shard data: {type(exn).__name__}: {detail}")
        return True  # keep going with the next file / shard

    def raw_samples(self) -> Iterator[dict[str, Any]]:
        """Undecoded samples ``{"__key__", "__url__", ext: bytes}`` in stream order."""
        opened = url_opener([{"url": u} for u in self.urls], handler=self._on_error)
        files = tar_file_expander(opened, handler=self._on_error)
        samples = group_by_keys(files, handler=self._on_error)
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        rng = random.Random(f"t2i-shards|{self.seed}|{self.epoch}")
        buffer: list[dict[str, Any]] = []
        for sample in samples:  # reservoir-style buffer: yield a random element, refill its slot
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            k = rng.randrange(len(buffer))
            yield buffer[k]
            buffer[k] = sample
        rng.shuffle(buffer)
        yield from buffer

    def decode(self, sample: dict[str, Any], position: int) -> dict[str, Any]:
        """A raw sample -> an item; raises ``BadImage`` when it cannot be used."""
        name = f"{sample.get('__url__', '?')}:{sample['__key__']}"
        ext = next((e for e in self.image_exts if e in sample), None)
        if ext is None:
            raise BadImage("missing", f"no image ({'/'.join(self.image_exts)}) for this key")
        raw = sample.get(self.caption_ext)
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as err:
            raise BadImage("empty_caption", f"caption is not UTF-8 text: {err}") from err
        lines = [line for line in text.splitlines() if line.strip()] if isinstance(text, str) else []
        texts = check_captions(lines) if len(lines) > 1 else [check_caption(text)]  # a line per caption
        rng = self.augment.rng(position)  # caption draw, then crop, then flip: as the map-style datasets
        label = -1
        if "cls" in sample:
            try:
                label = int(sample["cls"].decode("utf-8").strip())
            except (UnicodeDecodeError, ValueError) as err:
                raise BadImage("bad_row", f"label {sample['cls'][:20]!r} is not an integer") from err
        opened = open_image(sample[ext], name)
        self.report.shapes.add(opened)
        text = self.augment.caption(texts, rng)
        image, converted = load_image(opened, self.size, self.channels, name=name, augment=self.augment, rng=rng)
        if converted:
            self.report.add("converted", name, converted)
        # every caption of the image, one per line (collates as a string): what retrieval counts as right
        return {"image": image, "text": text, "label": label, "index": position, "captions": "\n".join(texts)}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info() if self.split_by_worker else None
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        self.report = BadDataReport(source=self.source, shapes=ImageShapes(self.augment.resize))  # the latest pass
        for position, sample in enumerate(self.raw_samples()):
            if self.n is not None and position >= self.n:
                break
            if position < self.start or position % workers != worker:
                continue  # resume offset / another worker's sample: not decoded
            self.report.checked += 1
            try:
                yield self.decode(sample, position)
            except BadImage as bad:
                self.report.warn(bad.kind, f"{sample.get('__url__', '?')}:{sample['__key__']}", bad.detail)

    def scan(self) -> BadDataReport:
        """Stream (and decode) everything once in this process; returns the report."""
        for _ in tqdm(self, desc=f"scanning {self.source}", unit="sample", disable=None):  # bar on a terminal
            pass
        return self.report

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(source={self.source!r}, shards={len(self.urls)}, size={self.size}, "
                f"start={self.start}, shuffle_buffer={self.shuffle_buffer})")


def encode_png(image: Image.Image) -> bytes:
    """A PIL image as PNG bytes (modes PNG cannot hold, such as CMYK, converted to RGB)."""
    buf = io.BytesIO()
    (image if image.mode in ("1", "L", "LA", "I", "P", "RGB", "RGBA") else image.convert("RGB")).save(buf, format="PNG")
    return buf.getvalue()


def write_shards(items: list[tuple], out: str | Path, per_shard: int = 1000,
                 labels: list[int] | None = None) -> list[Path]:
    """Write ``(image_bytes, caption[, ext])`` items as ``out/shard-00000.tar``, ... with keys
    ``000000``, ...: ``key.{ext}`` (default png) + ``key.txt`` [+ ``key.cls`` from ``labels``]. A caption may be a
    list of an image's captions: one per line of ``key.txt`` (line breaks inside a caption become spaces)."""
    if per_shard <= 0:
        raise ValueError(f"per_shard must be positive, got {per_shard}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(0, len(items), per_shard):
        path = out / f"shard-{s // per_shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(s, min(s + per_shard, len(items))):
                data, text, ext = (*items[i], "png")[:3]
                lines = [" ".join(c.splitlines()) for c in ([text] if isinstance(text, str) else text)]
                members = [(f"{i:06d}.{ext}", data), (f"{i:06d}.txt", "\n".join(lines).encode("utf-8"))]
                if labels is not None:
                    members.append((f"{i:06d}.cls", str(labels[i]).encode()))
                for name, blob in members:
                    member = tarfile.TarInfo(name)
                    member.size = len(blob)
                    tar.addfile(member, io.BytesIO(blob))
        paths.append(path)
    return paths


def demo() -> None:
    from . import shapes

    items = []
    for rec in shapes.make_scenes(10):
        buf = io.BytesIO()
        shapes.render(rec).save(buf, format="PNG")
        items.append((buf.getvalue(), rec["caption"]))
    write_shards(items, "/tmp/shards_demo", per_shard=4)
    ds = ShardDataset("/tmp/shards_demo/shard-{00000..00002}.tar", start=3)
    print(ds, [item["index"] for item in ds], ds.report.summary(), sep="\n")
