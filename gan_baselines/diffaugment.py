"""Differentiable augmentation for GAN discriminators (DiffAugment, Zhao et al. 2020).

The same kind of random transformation is applied to real *and* generated images before D,
so D cannot memorise the training images, while G's gradient passes through the
transformation. The policies here are the ones that keep a shapes caption true: a
translation by at most a few pixels (``max_shift``; the data's own jitter of a centre is
0.06 S, about 2 px at 32 px) and a small brightness shift; ``cutout`` (Zhao et al.'s third
policy) may erase a named object, so it is opt-in. Images are in [-1, 1]. A translation repeats the
border pixels into the space it opens (the background, black or white alike; Zhao et al. pad with 0,
mid grey, which on shapes' black or stamps' white gives every real image a frame no sample of the
data has); cutout fills its square with 0 as they do.

    python -c "from gan_baselines.diffaugment import demo; demo()"
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("translation", "brightness", "cutout")


def translate(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by integer (dx, dy) in [-max_shift, max_shift], repeating its border into the gap."""
    B, _, H, W = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (B, 2), generator=generator).tolist()
    pad = F.pad(x, (max_shift,) * 4, mode="replicate")  # (B, C, H + 2m, W + 2m): the background continues
    return torch.stack([pad[i, :, max_shift - dy: max_shift - dy + H, max_shift - dx: max_shift - dx + W]
                        for i, (dx, dy) in enumerate(shifts)])  # (B, C, H, W), content moved by (dx, dy)


def brightness(x: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add one uniform offset in [-strength, strength] per image (on the [-1, 1] scale)."""
    offset = (torch.rand(x.shape[0], 1, 1, 1, generator=generator) * 2 - 1) * strength
    return x + offset.to(x.device, x.dtype)


def cutout(x: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Set one square of side ``fraction * S`` to 0 (mid grey) at a random place per image (Zhao et al. 2020)."""
    B, _, H, W = x.shape
    side = max(1, int(round(fraction * H)))
    corners = torch.randint(0, H - side + 1, (B, 2), generator=generator)
    rows, cols = torch.arange(H)[None, :], torch.arange(W)[None, :]
    keep_r = (rows < corners[:, :1]) | (rows >= corners[:, :1] + side)  # (B, H)
    keep_c = (cols < corners[:, 1:]) | (cols >= corners[:, 1:] + side)  # (B, W)
    keep = (keep_r[:, :, None] | keep_c[:, None, :])[:, None].to(x.device)  # (B, 1, H, W)
    return torch.where(keep, x, torch.zeros_like(x))


def diff_augment(x: torch.Tensor, policy: Sequence[str], generator: torch.Generator | None = None,
                 max_shift: int = 2, strength: float = 0.1, cutout_fraction: float = 0.25) -> torch.Tensor:
    """Apply each augmentation of ``policy`` in order (differentiable in ``x``); images in [-1, 1]."""
    ops: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "translation": lambda t: translate(t, max_shift, generator),
        "brightness": lambda t: brightness(t, strength, generator),
        "cutout": lambda t: cutout(t, cutout_fraction, generator),
    }
    for name in policy:
        if name not in ops:
            raise ValueError(f"augmentation must be among {list(AUGMENTATIONS)}, got {name!r}")
        x = ops[name](x)
    return x


def demo() -> None:
    x = torch.zeros(2, 1, 6, 6) - 1
    x[:, :, 2:4, 2:4] = 1
    print(translate(x, 1, torch.Generator().manual_seed(0))[0, 0])
