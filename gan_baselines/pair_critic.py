"""A critic of two images drawn for one caption, together: the variety a caption leaves open.

A conditional GAN's D judges one image per caption, so a G that draws the same colour every time it is asked for
"a small circle in the top left" is not caught: each single image is a fine one. PacGAN (Lin et al. 2018) lets D
see m samples packed along the channels, so that a collapsed G's packs look unlike real ones; here m = 2 and both
images answer the same caption, conditioned by projection (Miyato & Koyama 2018): a real pair is two real images
with that caption, a fake pair G(z1, c) and G(z2, c). Where the caption names every attribute the real pairs are
near twins; where it leaves one out they differ in it, and so must G's.

    python -c "from gan_baselines.pair_critic import demo; demo()"
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import spectral_norm


class PairCritic(nn.Module):
    """(a (B, C, S, S), b (B, C, S, S), pooled caption (B, P)) -> logits (B, 1): is (a, b) a real pair for it?"""

    def __init__(self, channels: int, pooled_dim: int, widths: Sequence[int] = (32, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 2 * channels  # the pair packed along the channels (PacGAN)
        for width in widths:  # each halves the side, as DCGAN's D
            layers += [spectral_norm(nn.Conv2d(c_in, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c_in = width
        self.trunk = nn.Sequential(*layers)
        self.realism = spectral_norm(nn.Linear(c_in, 1))
        self.project = spectral_norm(nn.Linear(pooled_dim, c_in, bias=False))

    def forward(self, a: torch.Tensor, b: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        h = self.trunk(torch.cat([a, b], dim=1)).sum((2, 3))  # (B, W): sum pooling over the places
        logit = self.realism(h).squeeze(1) + (self.project(pooled) * h).sum(1)  # Miyato & Koyama (2018), Eq. 3
        return logit.unsqueeze(1)  # (B, 1): one head, as the text GAN losses take (B, R)


class Partners:
    """Which items share a caption: ``caption -> indices`` over a dataset's captions, plus any further captions true
    of an item (``extra(index)``, e.g. the partial captions of a shapes scene). ``draw`` gives, for an item shown
    with ``text``, another item with that caption (drawn from ``random.Random(key)``), or None where there is none."""

    def __init__(self, captions: Sequence[str], extra: Callable[[int], Iterable[str]] | None = None):
        self.captions, self.index = list(captions), defaultdict(list)
        for i, caption in enumerate(captions):
            for text in {caption, *(extra(i) if extra is not None else ())}:
                self.index[text].append(i)

    def draw(self, text: str, item: int, key: str) -> int | None:
        others = [j for j in self.index.get(text, ()) if j != item]
        return random.Random(key).choice(others) if others else None

    def share(self) -> float:
        """The share of the items whose own caption another item has too."""
        return sum(len(self.index[c]) > 1 for c in self.captions) / max(len(self.captions), 1)


def demo() -> None:
    critic = PairCritic(channels=3, pooled_dim=8)
    a, b, pooled = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32), torch.randn(4, 8)
    print("logits", tuple(critic(a, b, pooled).shape))  # (4, 1)
    partners = Partners(["a red circle", "a red circle", "a blue square"], extra=lambda i: ["a circle"] * (i < 2))
    print("partner of item 0 for 'a red circle':", partners.draw("a red circle", 0, "k"),
          "| of item 2 for 'a blue square':", partners.draw("a blue square", 2, "k"))
