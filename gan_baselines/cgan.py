"""Class-conditional GAN (Mirza & Osindero 2014) on DCGAN networks: G(z, y), D(x, y).

Conditioning by embedding concatenation: the generator reads ``[z, embed(y)]``; the
discriminator reads the image with ``embed(y)`` broadcast to extra input channels
(``disc="concat"``). The option ``disc="projection"`` (Miyato & Koyama 2018, Eq. 3) instead
adds the inner product of a class embedding with D's pooled features to an unconditional
logit: ``D(x, y) = psi(phi(x)) + embed(y)^T phi(x)``.

    python -c "from gan_baselines.cgan import demo; demo()"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_baselines.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_baselines.gan import load_net_config
from t2i.generator import Generator, seeded_noise, to_pil, validate_request
from t2i.io import load_weights

DISCRIMINATORS = ("concat", "projection")


class ConditionalGenerator(nn.Module):
    """(z (B, Z), y (B,)) -> image (B, C, S, S) in [-1, 1]."""

    def __init__(self, num_classes: int, latent_dim: int = 100, embed_dim: int = 32, channels: int = 1,
                 size: int = 32, base: int = 64):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)
        nn.init.normal_(self.embed.weight, 0.0, 1.0)  # same scale as z
        self.net = DCGANGenerator(latent_dim + embed_dim, channels, size, base)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(y)], dim=1))  # (B, Z + E) -> (B, C, S, S)


class ConditionalDiscriminator(nn.Module):
    """(x (B, C, S, S), y (B,)) -> logit (B,), by input concatenation or by projection."""

    def __init__(self, num_classes: int, channels: int = 1, size: int = 32, base: int = 64, embed_dim: int = 32,
                 mode: str = "concat"):
        super().__init__()
        if mode not in DISCRIMINATORS:
            raise ValueError(f"discriminator conditioning must be one of {list(DISCRIMINATORS)}, got {mode!r}")
        self.mode = mode
        extra = embed_dim if mode == "concat" else 0
        self.body = DCGANDiscriminator(channels, size, base, extra_channels=extra)
        # projection: one vector per class in D's feature space
        dim = embed_dim if mode == "concat" else self.body.feature_channels
        self.embed = nn.Embedding(num_classes, dim)
        nn.init.normal_(self.embed.weight, 0.0, 1.0 if mode == "concat" else 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = self.embed(y)  # (B, E)
        if self.mode == "concat":
            maps = e[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])  # (B, E, S, S)
            return self.body(torch.cat([x, maps], dim=1))  # (B,)
        phi = self.body.features(x)  # (B, F, 4, 4)
        psi = self.body.head(phi).flatten()  # (B,) unconditional term
        pooled = phi.sum(dim=(2, 3))  # (B, F): sum pooling as in Miyato & Koyama
        return psi + (e * pooled).sum(dim=1)  # (B,)


def build(arch: dict[str, Any]) -> tuple[ConditionalGenerator, ConditionalDiscriminator]:
    """G and D from a saved ``arch`` dict."""
    g = ConditionalGenerator(arch["num_classes"], arch["latent_dim"], arch["embed_dim"], arch["channels"],
                             arch["size"], arch["g_base"])
    d = ConditionalDiscriminator(arch["num_classes"], arch["channels"], arch["size"], arch["d_base"],
                                 arch["embed_dim"], arch["disc"])
    return g, d


class ClassConditionalGenerator(Generator):
    """A cGAN behind the generator contract: labels + seed in, images out."""

    family = "cgan"
    conditioning = "label"

    def __init__(self, net: ConditionalGenerator, config: dict[str, Any]):
        self.net, self.config = net, config
        self.latent_dim = config["arch"]["latent_dim"]
        self.num_classes = config["arch"]["num_classes"]
        self.class_names = config.get("class_names") or [str(i) for i in range(self.num_classes)]

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    @torch.no_grad()
    def generate(self, prompts=None, labels=None, seed: int = 0, num_images_per_prompt: int = 1, **options: Any):
        self.resolve_options(**options)  # takes none: a clear error for any
        count = validate_request(prompts, labels, num_images_per_prompt, num_classes=self.num_classes, needs="label")
        y = torch.tensor(list(labels), dtype=torch.long).repeat_interleave(num_images_per_prompt)  # (N,) [a0, a1, b0, b1]
        z = seeded_noise(seed, count, num_images_per_prompt, (self.latent_dim,))  # (N, Z), label i from seed + i
        return to_pil(self.net(z.to(self.device), y.to(self.device)), value_range=(-1.0, 1.0))


def load_generator(folder: str | Path) -> ClassConditionalGenerator:
    """The registry's loader for ``family: cgan`` folders."""
    cfg = load_net_config(folder, "cgan")
    net, _ = build(cfg["arch"])
    net.load_state_dict(load_weights(folder))
    return ClassConditionalGenerator(net.eval(), cfg)


def demo() -> None:
    for disc in DISCRIMINATORS:
        g, d = build({"num_classes": 10, "latent_dim": 64, "embed_dim": 16, "channels": 1, "size": 32,
                      "g_base": 32, "d_base": 32, "disc": disc})
        y = torch.arange(4)
        x = g(torch.randn(4, 64), y)
        print(disc, tuple(x.shape), tuple(d(x, y).shape))
