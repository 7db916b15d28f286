"""DCGAN (Radford et al. 2015): transposed-convolution generator, strided-convolution discriminator.

The architecture guidelines of the paper (Sec. 3): no pooling (strided convolutions in D,
fractionally-strided ones in G), batch norm in both except G's output and D's input
layer, ReLU in G with Tanh at the output, LeakyReLU(0.2) in D, weights from N(0, 0.02).
Images live in [-1, 1] inside the networks; the data's [0, 1] is mapped with ``x * 2 - 1``.

Both networks work at any power-of-two size from 16 to 256 px (tests run 2 steps at 32, 64
and 128): G starts from a 4x4 map and doubles it ``log2(S) - 2`` times; D halves it back to
4x4. The conditional GANs (``cgan``, ``tgan``) reuse these two networks.

    python -c "from gan_baselines.dcgan import demo; demo()"
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_baselines.gan import UnconditionalGenerator, load_net_config
from t2i.io import load_weights

SIZES = (16, 32, 64, 128, 256)  # image sides G and D are built for (4x4 doubled 2 to 6 times)


def num_doublings(size: int) -> int:
    """How many 2x up-samplings take a 4x4 map to ``size`` (32 px: 3)."""
    if size not in SIZES:
        raise ValueError(f"DCGAN image size must be one of {list(SIZES)}, got {size!r}")
    return int(math.log2(size)) - 2


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2015, Sec. 4: all weights from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z (B, in_dim) -> image (B, C, S, S) in [-1, 1]."""

    def __init__(self, in_dim: int = 100, channels: int = 3, size: int = 32, base: int = 64):
        super().__init__()
        n = num_doublings(size)
        ch = base * 2 ** (n - 1)  # 32 px, base 64: 256 channels at 4x4
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):  # 4x4 -> S/2 x S/2, halving the channels each time
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]  # no batch norm on the output layer
        self.net = nn.Sequential(*layers)
        self.in_dim, self.channels, self.size = in_dim, channels, size
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (B, in_dim, 1, 1) -> (B, C, S, S)


class DCGANDiscriminator(nn.Module):
    """image (B, C + extra, S, S) -> logit (B,); ``features`` stops at the (B, F, 4, 4) map."""

    def __init__(self, channels: int = 3, size: int = 32, base: int = 64, extra_channels: int = 0):
        super().__init__()
        n = num_doublings(size)
        # no batch norm on the input layer (Radford et al. 2015, Sec. 3)
        layers: list[nn.Module] = [nn.Conv2d(channels + extra_channels, base, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = base
        for _ in range(n - 1):  # S/2 -> 4x4, doubling the channels each time
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.feature_channels = ch  # F
        self.head = nn.Conv2d(ch, 1, 4, 1, 0)  # (B, F, 4, 4) -> (B, 1, 1, 1)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()  # (B,)


def build(arch: dict[str, Any]) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """G and D from a saved ``arch`` dict: latent_dim, channels, size, g_base, d_base."""
    g = DCGANGenerator(arch["latent_dim"], arch["channels"], arch["size"], arch["g_base"])
    d = DCGANDiscriminator(arch["channels"], arch["size"], arch["d_base"])
    return g, d


def load_generator(folder: str | Path) -> UnconditionalGenerator:
    """The registry's loader for ``family: dcgan`` folders."""
    cfg = load_net_config(folder, "dcgan")
    net, _ = build(cfg["arch"])
    net.load_state_dict(load_weights(folder))
    return UnconditionalGenerator(net.eval(), cfg)


def demo() -> None:
    for size in (32, 64):
        g, d = build({"latent_dim": 100, "channels": 3, "size": size, "g_base": 32, "d_base": 32})
        x = g(torch.randn(2, 100))
        print(size, tuple(x.shape), tuple(d(x).shape), sum(p.numel() for p in g.parameters()), "G params")
