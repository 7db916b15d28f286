"""The in-memory dataset behind `shapes` and `digits`: a uint8 image tensor plus captions.

Items follow the data contract of ``docs/DESIGN.md``: ``{"image": FloatTensor (C, S, S)
in [0, 1], "text": str, "label": int, "index": int}``; the default collate stacks them.

    python -c "from t2i.data import load_dataset; print(load_dataset('digits')[0]['image'].shape)"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from .bad_data import BadDataReport


def prepare_out(folder: Path) -> Path:
    """Make ``folder/images`` for an imagefolder; an earlier one there is replaced, anything else refused."""
    if folder.exists() and any(folder.iterdir()):
        names = {p.name for p in folder.iterdir()}
        images = folder / "images"
        ours = names <= {"metadata.jsonl", "images"} and (not images.is_dir() or all(
            p.suffix == ".png" for p in images.iterdir()))
        if not ours:
            raise ValueError(f"{folder} is not empty and does not hold a dataset written by t2i data "
                             f"(found {sorted(names)[:5]}); choose a new or empty folder")
        for old in images.glob("*.png"):  # an earlier write: replace it completely
            old.unlink()
    (folder / "images").mkdir(parents=True, exist_ok=True)
    return folder


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 (N, C, S, S) -> ``channels`` (1: ITU-R 601 luma, 3: replicate grey); None keeps C."""
    if channels is None or channels == images.shape[1]:
        return images
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None (the source's own), got {channels!r}")
    if channels == 3:  # (N, 1, S, S) -> (N, 3, S, S)
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    grey = (images.float() * weights).sum(1, keepdim=True)  # (N, 1, S, S)
    return grey.round().clamp(0, 255).to(torch.uint8)


class TensorImageText(Dataset):
    """Map-style dataset over a cached ``uint8`` tensor ``(N, C, S, S)`` and N captions."""

    def __init__(self, images: torch.Tensor, texts: Sequence[str], labels: Sequence[int] | None = None,
                 class_names: Sequence[str] = (), records: list[dict[str, Any]] | None = None,
                 source: str = ""):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != images.shape[-2]:
            raise ValueError(f"images must be uint8 (N, C, S, S), got {images.dtype} {tuple(images.shape)}")
        if len(texts) != len(images):
            raise ValueError(f"{len(images)} images but {len(texts)} captions")
        self.images = images  # (N, C, S, S) uint8
        self.captions = list(texts)
        self.labels = torch.as_tensor(list(labels) if labels is not None else [-1] * len(texts), dtype=torch.long)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.records = records
        self.channels = images.shape[1]
        self.size = images.shape[-1]
        self.source = source
        self.report = BadDataReport(source=source, checked=len(texts))  # generated data: clean

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index = index % len(self)
        return {"image": self.images[index].float().div(255.0),  # (C, S, S) in [0, 1]
                "text": self.captions[index], "label": int(self.labels[index]), "index": index}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(source={self.source!r}, n={len(self)}, channels={self.channels}, "
                f"size={self.size}, num_classes={self.num_classes})")
