"""The vanilla GAN (Goodfellow et al. 2014): MLP generator and discriminator, and what every GAN shares.

``MLPGenerator`` maps noise z ~ N(0, I) to a sample (an image in [-1, 1], or a point for
the toy studies); ``MLPDiscriminator`` maps a sample to a logit. The losses are in
``gan_baselines.gan_losses``; the alternating training loop (k discriminator steps per
generator step, Algorithm 1 of the paper) is ``train/gan.py``.

Also here, used by every GAN family of the toolkit: the unconditional
``t2i.generator.Generator`` (``UnconditionalGenerator``, families ``gan`` and ``dcgan``), reading
a saved model's config (``load_net_config``) and the plot of a run's game (``plot_game``). The
noise of a request is ``t2i.generator.seeded_noise`` (condition i from seed + i) and images leave
the networks in [-1, 1] through ``t2i.generator.to_pil``.

    python -c "from gan_baselines.gan import demo; demo()"
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from t2i.generator import Generator, seeded_noise, to_pil, validate_request
from t2i.io import load_config_json, load_weights


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> sample (B, *out_shape); Tanh output for images in [-1, 1]."""

    def __init__(self, latent_dim: int, out_shape: Sequence[int], hidden: int = 256, layers: int = 3,
                 output: str = "tanh"):
        super().__init__()
        if output not in ("tanh", "linear"):
            raise ValueError(f"output must be 'tanh' (images) or 'linear' (points), got {output!r}")
        self.latent_dim, self.out_shape = latent_dim, tuple(out_shape)
        dims = [latent_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        blocks.append(nn.Linear(dims[-1], math.prod(self.out_shape)))
        if output == "tanh":
            blocks.append(nn.Tanh())
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)  # (B, *out_shape)


class MLPDiscriminator(nn.Module):
    """sample (B, *in_shape) -> logit (B,), with LeakyReLU(0.2) hidden layers."""

    def __init__(self, in_shape: Sequence[int], hidden: int = 256, layers: int = 3):
        super().__init__()
        dims = [math.prod(in_shape)] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        blocks.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(-1)  # (B, prod(in_shape)) -> (B,)


def build(arch: dict[str, Any]) -> tuple[MLPGenerator, MLPDiscriminator]:
    """G and D from a saved ``arch`` dict: latent_dim, channels, size, hidden, layers."""
    shape = (arch["channels"], arch["size"], arch["size"])
    g = MLPGenerator(arch["latent_dim"], shape, arch["hidden"], arch["layers"])
    d = MLPDiscriminator(shape, arch["hidden"], arch["layers"])
    return g, d


def load_net_config(folder: str | Path, family: str) -> dict[str, Any]:
    """A saved model's config.json, checked to be of ``family``."""
    cfg = load_config_json(folder)
    if cfg.get("family") != family:
        raise ValueError(f"{folder} holds a {cfg.get('family')!r} model, not a {family!r} one")
    return cfg


class UnconditionalGenerator(Generator):
    """An unconditional GAN (``gan`` or ``dcgan``) behind the generator contract: prompts are only counted."""

    conditioning = "none"

    def __init__(self, net: nn.Module, config: dict[str, Any]):
        self.net, self.config = net, config
        self.family = config["family"]
        self.latent_dim = config["arch"]["latent_dim"]

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    @torch.no_grad()
    def generate(self, prompts=None, labels=None, seed: int = 0, num_images_per_prompt: int = 1, **options: Any):
        self.resolve_options(**options)  # takes none: a clear error for any
        count = validate_request(prompts, labels, num_images_per_prompt, needs="none")
        z = seeded_noise(seed, count, num_images_per_prompt, (self.latent_dim,)).to(self.device)  # (N, Z)
        return to_pil(self.net(z), value_range=(-1.0, 1.0))


def load_generator(folder: str | Path) -> UnconditionalGenerator:
    """The registry's loader for ``family: gan`` folders."""
    cfg = load_net_config(folder, "gan")
    net, _ = build(cfg["arch"])
    net.load_state_dict(load_weights(folder))
    return UnconditionalGenerator(net.eval(), cfg)


def plot_game(metrics: str | Path, png: str | Path, title: str = "") -> Path:
    """The game of a GAN run from its ``metrics.jsonl``: D(x) and D(G(z)), both losses, and V against -2 log 2.

    Rows carry ``d_real``, ``d_fake``, ``value`` (see ``gan_losses.game_stats``), ``loss_d``
    and ``loss_g`` (and ``d_wrong`` for a matching-aware D); a resumed run's rows replace a
    crashed one's at the same step.
    """
    import json

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gan_baselines.gan_losses import EQUILIBRIUM_VALUE

    by_step: dict[int, dict[str, float]] = {}
    for line in Path(metrics).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_step[int(row.pop("step"))] = row
    steps = sorted(by_step)

    def series(key: str) -> tuple[list[int], list[float]]:
        xs = [s for s in steps if key in by_step[s]]
        return xs, [by_step[s][key] for s in xs]

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax1.plot(*series("d_real"), label="D(x) on real")
    ax1.plot(*series("d_fake"), label="D(G(z)) on generated")
    if any("d_wrong" in row for row in by_step.values()):  # matching-aware D (tgan)
        ax1.plot(*series("d_wrong"), label="D(x) with a mismatched caption")
    ax1.axhline(0.5, color="0.5", ls=":", label="1/2 (equilibrium)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_title("discriminator outputs (sigmoid of the logit)")
    ax2.plot(*series("loss_d"), label="discriminator loss")
    ax2.plot(*series("loss_g"), label="generator loss")
    ax2.set_title("losses")
    ax3.plot(*series("value"), color="tab:green", label="V(G, D) estimate")
    ax3.axhline(EQUILIBRIUM_VALUE, color="k", ls="--", label="-2 log 2")
    ax3.set_title("value of the game")
    for ax in (ax1, ax2, ax3):
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return Path(png)


def demo() -> None:
    g, d = build({"latent_dim": 64, "channels": 1, "size": 32, "hidden": 256, "layers": 3})
    x = g(seeded_noise(0, 1, 4, (64,)))
    print(tuple(x.shape), tuple(d(x).shape), to_pil(x, value_range=(-1.0, 1.0))[0])
