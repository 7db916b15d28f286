"""The latent and text caches on disk (``t2i train ldm --cache --cache-dir DIR``; ``distill`` and ``unclip``
``--cache-dir DIR``): memory-mapped, resumable and fingerprinted, for data whose cache does not fit in memory or
whose encoding may be cut short.

``DIR`` holds numpy ``.npy`` arrays (``np.load(path, mmap_mode="r")`` reads them; training touches only
the rows of its batches, through the OS page cache) and small JSON files:

- ``fingerprint.json``: what the cache was made from: the data (source, split, n, size, seed, loading
  options, item count), digests of the first stage's and the text encoder's weights and of the
  tokenizer's vocabulary (or of a CLIP image tower's weights and preprocessing, for ``image_embeds.npy``),
  and ``FORMAT``. A run whose fingerprint differs is refused (``open_cache_dir``).
- ``moments.npy`` ``(N, 2C, h, w)`` float32 posterior mean and std; ``text_ids.npy`` ``(N,)`` int64 caption
  id of each item; ``texts.jsonl`` the caption table, one JSON string per line in id order;
  ``latents.json`` the progress: items and captions finished. Other per-item arrays encoded in the same
  pass sit beside ``moments.npy`` under their names (the unCLIP decoder's ``image_embeds.npy`` ``(N, D)``
  float32 CLIP image embeddings) and share its progress.
- ``text_states.npy`` ``(U + 1, T, D)`` float32 text states of the table's rows, then "" (the last row);
  ``text_states.json`` the progress: rows finished, and a digest of the rows (``--partial-captions``
  adds rows: another table is encoded afresh).

Each chunk (one encoder batch) is written through a memory map opened for it alone and flushed, its new
captions appended, then the progress file is replaced atomically (``os.replace``). A build killed at any
point (Ctrl-C, ``kill``; a power cut is not covered: nothing is fsynced) continues with the same command
after its last finished chunk, and a finished one is read as it is. Building holds one chunk in memory;
training maps the arrays copy-on-write (``mmap_mode="c"``: writable tensors, the files never change).

    HF_HUB_OFFLINE=1 python -c "from t2i.diffusion.disk_cache import demo; demo()"
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from t2i.io import atomic_write

FORMAT = 1  # the layout above; bump it when a file changes meaning, so older caches are refused, not misread


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's state (names, dtypes, shapes, bytes): its weights' identity wherever they came from."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """sha256 of a tokenizer's kind, context length and vocabulary."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{type(tokenizer).__name__}|{tokenizer.model_max_length}|{vocab}".encode()).hexdigest()


def cache_fingerprint(dataset: Dataset, source: str, options: dict[str, Any], vae: torch.nn.Module,
                      text_encoder: torch.nn.Module | None = None, tokenizer: Any = None,
                      image_encoder: torch.nn.Module | None = None) -> dict[str, Any]:
    """Everything the cached arrays depend on: the data (``source`` and the ``load_dataset`` ``options`` that
    made ``dataset``, and its item count), the first stage's weights, the text encoder's weights and tokenizer
    (None for a cache without text states), the image encoder's (an open_clip image tower, ``clip.visual``:
    its weights and its ``preprocess_cfg``, input size, mean and std; only for a cache of image embeddings),
    and ``FORMAT``."""
    from t2i.builtin import reference

    if not hasattr(dataset, "__len__"):
        raise ValueError("--cache-dir needs data of known length (a folder, a CSV, datasets, shapes, digits); "
                         "WebDataset shards are streamed: drop --cache-dir (the cache is then kept in memory)")
    name = str(source) if str(source) in ("shapes", "digits") else reference(source)  # a path made absolute
    text = None if text_encoder is None else {"weights": weights_digest(text_encoder),
                                              "tokenizer": tokenizer_digest(tokenizer)}
    fingerprint = {"format": FORMAT, "data": {"source": name, "items": len(dataset), **options},
                   "vae": weights_digest(vae), "text_encoder": text}
    if image_encoder is not None:  # absent otherwise: the fingerprints of ldm's and distill's caches are unchanged
        fingerprint["image_encoder"] = {"weights": weights_digest(image_encoder),
                                        "preprocess": dict(image_encoder.preprocess_cfg)}
    return fingerprint


def differences(ours: dict[str, Any], theirs: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two fingerprints (``data.seed``, ``vae``)."""
    found = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(prefix + key)
    return found


def open_cache_dir(folder: str | Path, fingerprint: dict[str, Any]) -> Path:
    """``folder`` ready to hold the cache of ``fingerprint``: created with ``fingerprint.json`` when new or empty,
    else its stored fingerprint must be this one (ValueError naming what differs and the fix)."""
    folder = Path(folder)
    path = folder / "fingerprint.json"
    expected = json.loads(json.dumps(fingerprint))  # as it reads back (tuples become lists)
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != expected:
            raise ValueError(f"--cache-dir {folder} holds the cache of other data or models "
                             f"(it differs in {', '.join(differences(expected, stored))}): give another --cache-dir "
                             f"or delete {folder}")
        return folder
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"--cache-dir {folder} is not a cache (no fingerprint.json) and not an empty folder: "
                         "give a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(expected, indent=1) + "\n"))
    return folder


def read_progress(path: Path, fresh: dict[str, Any]) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else dict(fresh)


def save_progress(path: Path, progress: dict[str, Any]) -> None:
    """The commit point of a chunk: after a kill the file is the old progress or the new one."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(progress) + "\n"))


def write_rows(path: Path, start: int, rows: np.ndarray, total: int) -> None:
    """Rows ``[start, start + len(rows))`` of the ``.npy`` array at ``path``, created as ``(total, ...)`` when
    missing (a sparse file; created under a temporary name, so a kill never leaves half a header)."""
    if not path.is_file():
        atomic_write(path, lambda tmp: np.lib.format.open_memmap(tmp, mode="w+", dtype=rows.dtype,
                                                                  shape=(total, *rows.shape[1:])).flush())
    array = np.load(path, mmap_mode="r+")
    array[start:start + len(rows)] = rows
    array.flush()
    del array  # unmapped: the written pages do not stay in this process's memory


def mapped(path: Path) -> torch.Tensor:
    """The array at ``path`` as a tensor over a copy-on-write memory map (rows are read when touched)."""
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def read_texts(path: Path, count: int) -> dict[str, int]:
    """The first ``count`` captions of the table as ``{caption: id}``; lines past them were appended by a chunk
    that never finished and are cut off."""
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        texts = [json.loads(f.readline()) for _ in range(count)]
        end = f.tell()
    if path.stat().st_size > end:
        os.truncate(path, end)
    return {t: i for i, t in enumerate(texts)}


RESERVED = ("text_ids", "text_states")  # arrays of the caption table, not per-item encodings


def build_latents(folder: Path, dataset: Dataset, encoders: dict[str, Callable[[torch.Tensor], torch.Tensor]],
                  batch_size: int, log: Callable[[str], None] = print
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[str]]:
    """The latent cache in ``folder`` (from ``open_cache_dir``): encodes the items not yet finished there, one
    chunk of ``batch_size`` at a time, with each of ``encoders`` (name -> images ``(B, C, S, S)`` -> float32
    ``(B, ...)`` kept in ``name.npy``: ``moments`` ``(B, 2C, h, w)``, and any others such as ``image_embeds``
    ``(B, D)``). Returns those arrays ``{name: (N, ...)}`` and the caption ids ``(N,)`` mapped from disk, and
    the caption table (ids by first appearance in item order, as the in-memory cache numbers them)."""
    clash = [name for name in encoders if name in RESERVED]
    if clash:
        raise ValueError(f"cache arrays may not be named {' or '.join(RESERVED)}, got {clash}")
    n, progress_path = len(dataset), folder / "latents.json"
    progress = read_progress(progress_path, {"items": 0, "texts": 0})
    done = progress["items"]
    if done == 0:  # a fresh start (or a build killed in its first chunk): no stale file is kept
        for stale in [f"{name}.npy" for name in encoders] + ["text_ids.npy", "texts.jsonl"]:
            (folder / stale).unlink(missing_ok=True)
    table = read_texts(folder / "texts.jsonl", progress["texts"])
    if done == n:
        log(f"latent cache: reusing {folder} ({n} items, {len(table)} captions), nothing encoded")
    elif done:
        log(f"latent cache: resuming in {folder} at item {done} of {n} (its finished chunks are not encoded again)")
    loader = DataLoader(Subset(dataset, range(done, n)), batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="caching latents", unit="batch", disable=done == n):
        arrays = {name: encode(batch["image"]).numpy() for name, encode in encoders.items()}  # (B, ...) float32
        new = [t for t in dict.fromkeys(batch["text"]) if t not in table]  # in order of first appearance
        for text in new:
            table[text] = len(table)
        for name, rows in arrays.items():
            write_rows(folder / f"{name}.npy", done, rows, n)
        write_rows(folder / "text_ids.npy", done, np.array([table[t] for t in batch["text"]], dtype=np.int64), n)
        with (folder / "texts.jsonl").open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(t) + "\n" for t in new)
        done += len(batch["text"])
        save_progress(progress_path, {"items": done, "texts": len(table)})
    return ({name: mapped(folder / f"{name}.npy") for name in encoders}, mapped(folder / "text_ids.npy"),
            list(table))


def rows_digest(rows: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(json.dumps(r) for r in rows).encode()).hexdigest()


def build_text_states(folder: Path, rows: Sequence[str], encode: Callable[[list[str]], torch.Tensor], batch_size: int,
                      log: Callable[[str], None] = print) -> torch.Tensor:
    """Text states of ``rows`` in ``folder`` (from ``open_cache_dir``), ``(len(rows), T, D)`` float32 mapped from
    disk: the rows not yet finished are encoded with ``encode`` (captions -> ``(B, T, D)``), ``batch_size`` at a
    time. Rows other than the finished ones' (the table grew: ``--partial-captions``) are encoded afresh."""
    progress_path, path, digest = folder / "text_states.json", folder / "text_states.npy", rows_digest(rows)
    progress = read_progress(progress_path, {"rows": 0, "digest": digest})
    if progress["digest"] != digest:
        log(f"text cache: {folder} holds the text states of another caption table (--partial-captions?): "
            "encoding this one's")
        progress = {"rows": 0, "digest": digest}
    done = progress["rows"]
    if done == 0:
        path.unlink(missing_ok=True)  # the other table's array, or a first chunk that never finished
    if done == len(rows):
        log(f"text cache: reusing {path} ({len(rows)} rows), nothing encoded")
    elif done:
        log(f"text cache: resuming in {folder} at row {done} of {len(rows)}")
    for start in tqdm(range(done, len(rows), batch_size), desc="caching text states", unit="batch",
                      disable=done == len(rows)):
        states = encode(list(rows[start:start + batch_size])).float().cpu().numpy()  # (B, T, D)
        write_rows(path, start, states, len(rows))
        save_progress(progress_path, {"rows": start + len(states), "digest": digest})
    return mapped(path)


def demo() -> None:
    import tempfile

    from t2i.data import load_dataset
    from t2i.diffusion.testing import make_tiny_pipeline
    from t2i.diffusion.training import build_latent_cache, build_text_cache

    pipe, options = make_tiny_pipeline(), {"split": "train", "size": 16, "n": 32, "seed": 0}
    dataset = load_dataset("shapes", **options)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):  # the second pass reuses what the first wrote
            folder = open_cache_dir(tmp, cache_fingerprint(dataset, "shapes", options, pipe.vae, pipe.text_encoder,
                                                           pipe.tokenizer))
            cached = build_latent_cache(dataset, pipe.vae, torch.device("cpu"), batch_size=8, folder=folder)
            states = build_text_cache(cached.texts, pipe.tokenizer, pipe.text_encoder, torch.device("cpu"),
                                      folder=folder)
        print(sorted(p.name for p in Path(tmp).iterdir()), tuple(cached.moments.shape), tuple(states.shape))
