"""The resolution presets (px64, px128, px256) of vae-kl, ldm and tgan-attn: parameters and FLOPs per image.

Each preset's networks are built on PyTorch's ``meta`` device (shapes and dtypes only: no memory, no
weights, no arithmetic), so even the 256 px ones cost nothing to "run" on a CPU. One image passes
through each network under ``FlopCounterMode`` (``t2i.bench.cost.count_flops``: matrix products,
convolutions and attention at 2 FLOPs per multiply-add; norms and activations are not counted), and
its output shape is checked against the resolution (``tests/test_resolutions.py`` runs the same).

Counted, per image, forward only:
- vae-kl: encoder (image -> posterior) and decoder (latent -> image), each with its 1x1 (post-)quant conv;
- ldm: one UNet evaluation, i.e. one denoising step without guidance (classifier-free guidance doubles
  it; the training step is about 3x a forward), on the latents of the same-named vae-kl preset;
- tgan-attn: G(z, text) and D(x, text) (one trunk pass and every head).
Text states are those of the built-in ``shapes-clip`` (T = 32 tokens of width 64, pooled 64); a wider
CLIP changes only the cross-attention key/value projections.

    python -m benchmarks.presets              # the markdown table in README.md ("Resolutions")
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from unittest import mock

import torch
from torch import nn

from t2i.bench.cost import count_flops

ROOT = Path(__file__).resolve().parents[1]
PRESET_DIRS = {"vae-kl": ROOT / "t2i" / "diffusion" / "presets" / "vae_kl",
               "ldm": ROOT / "t2i" / "diffusion" / "presets" / "ldm",
               "tgan-attn": ROOT / "gan_baselines" / "presets" / "tgan_attn"}
RESOLUTIONS = ("px64", "px128", "px256")  # the preset names every trainer above shares
TEXT_TOKENS, TEXT_WIDTH, POOLED_WIDTH = 32, 64, 64  # the built-in shapes-clip's text states (1, 32, 64), pooled (1, 64)


@dataclass
class NetworkCost:
    """One network of one preset, for one image."""

    trainer: str  # the `t2i train` command whose --preset this is
    preset: str  # px64 | px128 | px256
    size: int  # image side in pixels
    network: str  # which pass: VAE encoder/decoder, UNet step, G, D
    params: int  # parameters of that network
    gflops: float  # forward GFLOPs for one image
    output: tuple[int, ...]  # shape of its output for one image (batch dimension included)


def read_preset(trainer: str, name: str) -> dict:
    path = PRESET_DIRS[trainer] / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"no {trainer} preset {name!r}; the presets are {sorted(p.stem for p in path.parent.glob('*.json'))}")
    return json.loads(path.read_text())


def _measure(trainer: str, preset: str, size: int, network: str, modules: Sequence[nn.Module],
             forward: Callable[[], torch.Tensor]) -> NetworkCost:
    with torch.no_grad():
        out, flops = count_flops(forward)
    params = sum(p.numel() for m in modules for p in m.parameters())
    return NetworkCost(trainer, preset, size, network, params, flops / 1e9, tuple(out.shape))


def vae_costs(name: str) -> list[NetworkCost]:
    """Encoder and decoder of the vae-kl preset ``name`` at its size."""
    from t2i.diffusion.first_stage import build_vae, vae_factor

    cfg = read_preset("vae-kl", name)
    size = cfg["size"]
    with torch.device("meta"):
        vae = build_vae(cfg["arch"], sample_size=size, latent_channels=cfg.get("latent_channels", 4)).eval()
        x = torch.zeros(1, 3, size, size)
        z = torch.zeros(1, vae.config.latent_channels, size // vae_factor(vae), size // vae_factor(vae))
    return [_measure("vae-kl", name, size, f"VAE encoder ({cfg['arch']})", [vae.encoder, vae.quant_conv],
                     lambda: vae.encode(x).latent_dist.mean),  # (1, C, S/f, S/f)
            _measure("vae-kl", name, size, f"VAE decoder ({cfg['arch']})", [vae.decoder, vae.post_quant_conv],
                     lambda: vae.decode(z).sample)]  # (1, 3, S, S)


def unet_costs(name: str) -> list[NetworkCost]:
    """One denoising step of the ldm preset ``name`` on the latents of the vae-kl preset of the same name."""
    from t2i.diffusion.first_stage import VAE_PRESETS
    from t2i.diffusion.unet import build_unet

    cfg, vae_cfg = read_preset("ldm", name), read_preset("vae-kl", name)
    size = cfg["size"]
    factor = 2 ** (len(VAE_PRESETS[vae_cfg["arch"]]["block_out_channels"]) - 1)
    channels, side = vae_cfg.get("latent_channels", 4), size // factor
    with torch.device("meta"):
        unet = build_unet(cfg["unet"], side, channels, TEXT_WIDTH).eval()
        z, t = torch.zeros(1, channels, side, side), torch.tensor([500])
        states = torch.zeros(1, TEXT_TOKENS, TEXT_WIDTH)
    return [_measure("ldm", name, size, f"UNet step ({cfg['unet']}, latents {channels}x{side}x{side})", [unet],
                     lambda: unet(z, t, encoder_hidden_states=states).sample)]  # (1, C, S/f, S/f)


def gan_costs(name: str) -> list[NetworkCost]:
    """G and D of the tgan-attn preset ``name`` (with the trainer's defaults for what it leaves out)."""
    from gan_baselines import tgan_attn
    from t2i.config import config_from_dict
    from train.tgan_attn import AttnGANConfig

    cfg = config_from_dict(AttnGANConfig, read_preset("tgan-attn", name), source=f"tgan-attn preset {name}")
    arch = cfg.arch_for(TEXT_WIDTH, POOLED_WIDTH, TEXT_TOKENS, channels=3)
    with torch.device("meta"):
        G, D = tgan_attn.build(arch)
        G, D = G.eval(), D.eval()
        z, x = torch.zeros(1, cfg.latent_dim), torch.zeros(1, 3, cfg.size, cfg.size)
        tokens, pooled = torch.zeros(1, TEXT_TOKENS, TEXT_WIDTH), torch.zeros(1, POOLED_WIDTH)
        mask = torch.ones(1, TEXT_TOKENS, dtype=torch.bool)
    # every token is used, so trimming the unused padding columns is the identity; its data-dependent
    # length (mask.nonzero()) is the one step a meta tensor cannot take
    with mock.patch.object(tgan_attn, "trim", lambda tokens, mask: (tokens, mask)):
        return [_measure("tgan-attn", name, cfg.size, "G", [G], lambda: G(z, tokens, mask, pooled)),  # (1, 3, S, S)
                _measure("tgan-attn", name, cfg.size, "D", [D], lambda: D(x, tokens, mask, pooled))]  # (1, heads)


def preset_costs(names: Sequence[str] = RESOLUTIONS) -> list[NetworkCost]:
    """Every network of every resolution preset, in README order."""
    return [row for name in names for row in (*vae_costs(name), *unet_costs(name), *gan_costs(name))]


def markdown(rows: Sequence[NetworkCost]) -> str:
    lines = ["| preset | command | size | network | parameters | GFLOPs / image |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r.preset}` | `t2i train {r.trainer}` | {r.size} | {r.network} | "
                     f"{r.params / 1e6:.1f} M | {r.gflops:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.presets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(RESOLUTIONS), help="comma-separated preset names")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of the markdown table")
    args = parser.parse_args(argv)
    rows = preset_costs([n for n in args.presets.split(",") if n])
    if args.json:
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
