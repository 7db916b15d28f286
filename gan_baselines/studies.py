"""What the AE, VAE and GAN studies (``t2i study ...``) share: whole splits as tensors, codes of a split,
labelled rows of images, and ``metrics.json``.

    python -c "from gan_baselines.studies import one_per_class; import torch; print(one_per_class(torch.tensor([1, 1, 0, 2]), 3))"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from t2i.data import load_dataset


def load_split(data: str, split: str, size: int, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole map-style split as tensors: images (N, C, S, S) in [0, 1] and labels (N,)."""
    dataset = load_dataset(data, split=split, size=size, n=n)
    if isinstance(dataset, torch.utils.data.IterableDataset):
        raise ValueError(f"the studies need a map-style dataset with a {split!r} split; {data!r} is streamed shards")
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=len(dataset))))
    return batch["image"], batch["label"]


@torch.no_grad()
def encode_all(encode, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """``encode`` over ``x`` in chunks: (N, C, S, S) -> (N, D) (the first output if it returns a tuple)."""
    out = []
    for chunk in x.split(batch):
        h = encode(chunk)
        out.append(h[0] if isinstance(h, tuple) else h)
    return torch.cat(out)


def save_image_rows(rows: list[torch.Tensor], labels: list[str], path: str | Path, title: str = "") -> Path:
    """A figure with one labelled row of images per tensor (N, C, S, S) in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(0.9 * cols + 1.6, 0.95 * len(rows) + 0.4), squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                img = images[c].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()  # (S, S, C)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def one_per_class(labels: torch.Tensor, count: int = 10) -> torch.Tensor:
    """Indices of the first item of each class (then the next items) to show ``count`` varied examples."""
    firsts = [int((labels == c).nonzero()[0]) for c in labels.unique().tolist()]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return torch.tensor((firsts + rest)[:count])


def write_metrics(out: str | Path, metrics: dict[str, Any]) -> Path:
    """Write ``out/metrics.json`` (indented, so a diff of two runs reads well)."""
    path = Path(out) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path
