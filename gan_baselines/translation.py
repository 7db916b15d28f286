"""Image-to-image GANs: pix2pix (Isola et al. 2017) and CycleGAN (Zhu et al. 2017), sized for 32/64 px.

- ``UNet``: the pix2pix generator, an encoder-decoder with skip connections between mirrored
  layers (Isola et al. 2017, section 3.1.1 and appendix 6.1.1): encoder C64-C128-C256-C512...
  (4x4 convolutions, stride 2, LeakyReLU 0.2, batch norm except on the first and the
  innermost layer), decoder CD512-CD512-CD512-C512... (transposed convolutions, batch norm,
  ReLU, dropout 0.5 on the first three), tanh output; one down-sampling per power of two of the
  side, down to 1 x 1 (32 px: 5 levels, 64 px: 6; the paper's 256 px: 8). The paper keeps
  dropout on at test time as its noise; here ``eval()`` turns it off (deterministic outputs).
- ``PatchGAN``: the discriminator that classifies overlapping N x N patches as real or fake
  (section 3.1.2). The paper's 70 x 70 PatchGAN is C64-C128-C256-C512 + a 1-channel conv,
  i.e. ``n_layers=3``; small images use fewer stride-2 layers so a patch stays a fraction of
  the image: ``receptive_field(n_layers)`` gives 70 (3), 34 (2), 16 (1). Defaults: 16 px
  patches at 32 px, 34 px at 64 px (``default_n_layers``).
- Losses as per-sample callables (the loop reduces): ``Pix2PixLoss`` (conditional GAN, Eq. 1,
  + lambda L1, Eq. 3-4) and ``CycleGANLoss`` (LSGAN adversarial terms, Eq. 1 with the least-squares
  loss of section 7.1, cycle consistency Eq. 2, identity of section 5.2, full objective Eq. 3).
- ``ImagePool``: the 50-image history of generated images the CycleGAN discriminators see
  (Shrivastava et al. 2017, as Zhu et al. 2017 section 4).

    python -c "from gan_baselines.translation import demo; demo()"
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


def levels_for(size: int) -> int:
    """Down-samplings of the U-Net for a ``size`` px image: down to 1 x 1 (log2 size)."""
    n = int(round(math.log2(size))) if size > 0 else 0
    if size < 8 or 2 ** n != size:
        raise ValueError(f"image size must be a power of two >= 8 (e.g. 32 or 64), got {size!r}")
    return n


class UNet(nn.Module):
    """pix2pix's U-Net generator: image ``(B, C_in, S, S)`` in [-1, 1] -> image ``(B, C_out, S, S)`` in [-1, 1]."""

    def __init__(self, size: int = 32, in_channels: int = 3, out_channels: int = 3, base: int = 64,
                 max_mult: int = 8, dropout: float = 0.5):
        super().__init__()
        n = levels_for(size)
        widths = [base * min(2 ** i, max_mult) for i in range(n)]  # C64-C128-C256-C512-C512-...
        self.down = nn.ModuleList()
        c_prev = in_channels
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(c_prev, w, 4, 2, 1, bias=i in (0, n - 1)))
            if 0 < i < n - 1:  # no norm on the first layer (paper) nor at 1 x 1 (batch norm of one pixel)
                layers.append(nn.BatchNorm2d(w))
            self.down.append(nn.Sequential(*layers))
            c_prev = w
        self.up = nn.ModuleList()
        for j, i in enumerate(reversed(range(n))):  # innermost first
            c_in = widths[i] if i == n - 1 else 2 * widths[i]  # the innermost takes no skip
            if i == 0:  # outermost: up to the image, tanh
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()))
                continue
            layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, widths[i - 1], 4, 2, 1, bias=False),
                      nn.BatchNorm2d(widths[i - 1])]
            if j < 3 and dropout > 0:  # CD512 x 3: dropout 0.5 on the first three decoder layers
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)  # (B, w_i, S / 2^(i+1), S / 2^(i+1))
            skips.append(x)
        x = self.up[0](skips.pop())  # innermost (B, w, 1, 1) -> (B, w', 2, 2)
        for layer in self.up[1:]:
            x = layer(torch.cat([x, skips.pop()], dim=1))  # skip connection: concatenate the mirrored encoder layer
        return x  # (B, C_out, S, S)


def receptive_field(n_layers: int) -> int:
    """Side in pixels of the input patch one PatchGAN output sees: n_layers stride-2 4x4 convs, then two
    stride-1 4x4 convs (r -> (r - 1) * stride + 4 going back from the output). n_layers=3: 70."""
    r = 1
    for stride in [1, 1] + [2] * n_layers:  # output layer first
        r = (r - 1) * stride + 4
    return r


def default_n_layers(size: int) -> int:
    """Stride-2 layers of the PatchGAN at ``size`` px: 16 px patches at 32 px, 34 at 64 px, 70 at >= 128."""
    return 1 if size <= 32 else 2 if size <= 64 else 3


class PatchGAN(nn.Module):
    """Patch discriminator: ``(B, C, S, S)`` -> one logit per patch ``(B, 1, H', W')`` (section 3.1.2)."""

    def __init__(self, in_channels: int = 6, base: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm must be one of ['batch', 'instance'], got {norm!r}")
        Norm = nn.BatchNorm2d if norm == "batch" else nn.InstanceNorm2d
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, 2, 1), nn.LeakyReLU(0.2)]  # C64, no norm
        c = base
        for i in range(1, n_layers + 1):  # stride 2 up to n_layers, then one stride-1 layer
            w = base * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, w, 4, stride, 1, bias=False), Norm(w), nn.LeakyReLU(0.2)]
            c = w
        if n_layers == 0:
            raise ValueError("n_layers must be >= 1")
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))  # one logit per patch
        self.net = nn.Sequential(*layers)
        self.n_layers = n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 1, H', W')


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(1)  # (B, ...) -> (B,)


@dataclass
class Pix2PixLoss:
    """pix2pix's objective (Isola et al. 2017): G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G) (Eq. 4).

    D sees the input with the output (a conditional GAN, Eq. 1). Every method returns a per-sample
    loss ``(B,)``: each patch logit's loss averaged over the patches."""

    l1_weight: float = 100.0  # lambda of Eq. 4 (100 in the paper)
    adv_weight: float = 1.0  # weight of the adversarial term; 0 = the L1-only U-Net of the ablation (Table 1)

    def d(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        # Eq. 1 for D: -log D(x, y) - log(1 - D(x, G(x))) = softplus(-l_real) + softplus(l_fake), halved as
        # the paper does ("we divide the objective by 2 while optimizing D", section 3.3)
        return 0.5 * (_per_sample(F.softplus(-real_logits)) + _per_sample(F.softplus(fake_logits)))

    def g(self, fake_logits: torch.Tensor, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # non-saturating G term -log D(x, G(x)) = softplus(-l_fake) (section 3.3) + lambda |y - G(x)|_1 (Eq. 3)
        return self.adv_weight * self.g_adv(fake_logits) + self.l1_weight * self.l1(fake, target)

    @staticmethod
    def g_adv(fake_logits: torch.Tensor) -> torch.Tensor:
        return _per_sample(F.softplus(-fake_logits))

    @staticmethod
    def l1(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _per_sample((target - fake).abs())  # Eq. 3: E ||y - G(x)||_1, per pixel


@dataclass
class CycleGANLoss:
    """CycleGAN's objective (Zhu et al. 2017, Eq. 3): L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda L_cyc(G, F),
    with the least-squares GAN loss (section 4 / 7.1) and the identity loss (section 5.2) weighted
    ``identity * lambda``. Per-sample callables ``(B,)``."""

    cycle_weight: float = 10.0  # lambda of Eq. 3 (10 in the paper)
    identity: float = 0.5  # identity weight as a fraction of lambda (0.5 in the paper's photo <-> painting runs)

    @staticmethod
    def d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        # LSGAN for D: (D(y) - 1)^2 + D(G(x))^2, halved "to slow down the rate at which D learns" (section 7.1)
        return 0.5 * (_per_sample((real_logits - 1) ** 2) + _per_sample(fake_logits ** 2))

    @staticmethod
    def g_adv(fake_logits: torch.Tensor) -> torch.Tensor:
        return _per_sample((fake_logits - 1) ** 2)  # LSGAN for G: (D(G(x)) - 1)^2

    def cycle(self, reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        return self.cycle_weight * _per_sample((reconstructed - original).abs())  # Eq. 2: ||F(G(x)) - x||_1

    def identity_loss(self, same: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        # section 5.2 (Taigman et al. 2017): ||G(y) - y||_1, keeps colours when the input already is in the target domain
        return self.identity * self.cycle_weight * _per_sample((same - original).abs())


class ImagePool:
    """History of generated images (Shrivastava et al. 2017; Zhu et al. 2017, section 4): D is updated on a
    mix of the newest fakes and up to ``size`` older ones. Until the pool is full every fake is stored and
    returned; then each fake, with probability 1/2, is swapped for a random stored one (which it replaces).
    Its own seeded generator and a state dict make it resumable (``run.register``)."""

    def __init__(self, size: int = 50, seed: int = 0):
        if size < 0:
            raise ValueError(f"pool size must be >= 0 (0 = no history), got {size!r}")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` detached fakes -> ``(B, C, S, S)`` images for the discriminator step."""
        if self.size == 0:
            return fakes
        out = []
        for image in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) < 0.5:
                k = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": [i.cpu() for i in self.images], "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.images = [i.clone() for i in state["images"]]
        self.generator.set_state(state["generator"])


def build_pix2pix(arch: dict) -> tuple[UNet, PatchGAN]:
    """G and D from an arch dict: size, channels, g_base, d_base, n_layers (0 = default_n_layers(size))."""
    c = arch["channels"]
    G = UNet(arch["size"], c, c, base=arch["g_base"], dropout=arch.get("dropout", 0.5))
    D = PatchGAN(2 * c, arch["d_base"], arch.get("n_layers") or default_n_layers(arch["size"]))  # D sees (x, y)
    return G, D


TRANSLATION_FAMILIES = ("pix2pix", "cyclegan")


def load_translator(path: str | Path, direction: str = "ab") -> tuple[UNet, dict]:
    """The generator saved by ``t2i train pix2pix|cyclegan`` (a run folder or its ``model/``) in eval mode, and
    its config. ``direction="ba"``: a CycleGAN run's B -> A generator (``model_ba/``)."""
    from t2i.io import load_config_json, load_weights

    folder = Path(path)
    if direction not in ("ab", "ba"):
        raise ValueError(f"direction must be one of ['ab', 'ba'], got {direction!r}")
    name = "model" if direction == "ab" else "model_ba"
    if (folder / name / "config.json").is_file():
        folder = folder / name  # a training run folder
    elif direction == "ba" and folder.name == "model" and (folder.parent / name).is_dir():
        folder = folder.parent / name
    if direction == "ba" and folder.name != name:
        raise ValueError(f"{path} has no B -> A generator (only CycleGAN runs have one, in model_ba/)")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: give a run folder of t2i train pix2pix|cyclegan or its model/")
    config = load_config_json(folder)
    if config.get("family") not in TRANSLATION_FAMILIES:
        raise ValueError(f"{folder} holds family {config.get('family')!r}, not an image-to-image model "
                         f"{list(TRANSLATION_FAMILIES)}")
    arch = config["arch"]
    G = UNet(arch["size"], arch["channels"], arch["channels"], base=arch["g_base"], dropout=arch.get("dropout", 0.5))
    G.load_state_dict(load_weights(folder))
    return G.eval(), config


def demo() -> None:
    G, D = build_pix2pix({"size": 32, "channels": 3, "g_base": 16, "d_base": 16})
    x = torch.randn(2, 3, 32, 32)
    y = G(x)
    print("G", tuple(y.shape), "D", tuple(D(torch.cat([x, y], 1)).shape), "patch", receptive_field(D.n_layers))
