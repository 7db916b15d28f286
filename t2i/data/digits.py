"""The `digits` dataset: scikit-learn's bundled 8x8 handwritten digits, upsampled.

``sklearn.datasets.load_digits`` ships 1797 grayscale 8x8 images (values 0..16) inside
the package, so nothing is downloaded. We scale them to [0, 1], upsample to ``size``
(default 32) with bicubic interpolation (``align_corners=False``, clipped to [0, 1]),
and caption each one ``a handwritten digit 7``. Labels are the digit (10 classes).

Fixed, stratified train/test split, independent of any library's shuffling: within each
class, in the file order of ``load_digits``, every fifth image (class rank ``% 5 == 4``)
is ``test``, the rest ``train``: 1442 train and 355 test images, 20% of every class.

    python -c "from t2i.data.digits import demo; demo()"   # split sizes and a caption
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from .base import TensorImageText, convert_channels, prepare_out

CLASS_NAMES = [str(d) for d in range(10)]
SPLITS = ("train", "test")
TEST_EVERY = 5  # every fifth image of each class is test


def caption(digit: int) -> str:
    return f"a handwritten digit {digit}"


def split_indices(targets: np.ndarray, split: str) -> np.ndarray:
    """Indices (in file order) of ``split``: per class, rank % 5 == 4 is test."""
    if split not in SPLITS:
        raise ValueError(f"digits split must be one of {list(SPLITS)}, got {split!r}")
    rank = np.zeros(len(targets), dtype=np.int64)
    for c in np.unique(targets):
        where = np.flatnonzero(targets == c)
        rank[where] = np.arange(len(where))
    is_test = rank % TEST_EVERY == TEST_EVERY - 1
    return np.flatnonzero(is_test if split == "test" else ~is_test)


@lru_cache(maxsize=4)
def _upsampled(size: int) -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)  # (N, 1, S, S)
    x = (x.clamp(0, 1) * 255.0).round().to(torch.uint8)
    return x, bunch.target.astype(np.int64)


def load_digits_dataset(split: str = "train", size: int = 32, n: int | None = None,
                        channels: int | None = None) -> TensorImageText:
    """The digits split as a map-style dataset (1 channel unless ``channels=3``)."""
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size!r}")
    images, targets = _upsampled(size)
    idx = split_indices(targets, split)
    if n is not None:
        if not 0 < n <= len(idx):
            raise ValueError(f"digits {split} has {len(idx)} images; n must be in 1..{len(idx)}, got {n}")
        idx = idx[:n]
    labels = targets[idx].tolist()
    return TensorImageText(convert_channels(images[idx], channels), [caption(d) for d in labels], labels,
                           class_names=CLASS_NAMES, source=f"digits/{split}")


def write_digits(out: str | Path, size: int = 32, progress: bool = True) -> Path:
    """Write both splits as imagefolders: ``out/{train,test}/images/*.png`` + ``metadata.jsonl``
    (``file_name``, ``text``, ``label``); ``datasets.load_dataset("imagefolder", data_dir=out)``
    reads them as two splits."""
    out = Path(out)
    for split in SPLITS:
        ds = load_digits_dataset(split, size)
        prepare_out(out / split)
        lines = []
        for i in tqdm(range(len(ds)), desc=f"digits {split}", unit="img", disable=not progress):
            name = f"images/{i:05d}.png"
            Image.fromarray(ds.images[i, 0].numpy(), "L").save(out / split / name, format="PNG")
            lines.append(json.dumps({"file_name": name, "text": ds.captions[i], "label": int(ds.labels[i])}))
        (out / split / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return out


def demo() -> None:
    for s in SPLITS:
        ds = load_digits_dataset(s)
        print(s, len(ds), ds[0]["text"], tuple(ds[0]["image"].shape))
