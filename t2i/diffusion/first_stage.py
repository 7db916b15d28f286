"""The first stage: a diffusers ``AutoencoderKL`` that maps images to latents and back.

Rombach et al. 2022 (Sec. 3.1, App. G): an encoder gives a diagonal Gaussian posterior
``q(z|x)``, the decoder reconstructs ``x`` from a sample, and a small KL term towards
``N(0, I)`` keeps the latent space smooth. The diffusion model works on
``z * scaling_factor``, where the factor is measured on the data as ``1 / std(z)`` (Sec. 4.3.2,
"rescale the latents to unit variance") and stored in the VAE's own config
(``vae.config.scaling_factor``), so the saved folder is a stock diffusers VAE folder.

Optional adversarial term: a small PatchGAN discriminator with the hinge loss (Esser et al.
2021, "taming transformers", Eq. 4-5), switched on after ``adv_start`` steps.

    python -c "from t2i.diffusion.first_stage import build_vae; v = build_vae('f4-tiny'); print(v.config.block_out_channels)"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Literal

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn

# preset name -> AutoencoderKL keyword arguments; downsampling factor = 2 ** (levels - 1)
VAE_PRESETS: dict[str, dict[str, Any]] = {
    "f4-test": dict(block_out_channels=(8, 16, 16), layers_per_block=1, latent_channels=4, norm_num_groups=8),
    "f4-tiny": dict(block_out_channels=(32, 64, 64), layers_per_block=1, latent_channels=4, norm_num_groups=16),
    "f4-small": dict(block_out_channels=(64, 128, 128), layers_per_block=2, latent_channels=4, norm_num_groups=32),
    "f8-small": dict(block_out_channels=(64, 128, 128, 128), layers_per_block=2, latent_channels=4, norm_num_groups=32),
    # 256 px (the px256 preset): 32x32 latents; Stable Diffusion's (128, 256, 512, 512) at half the width
    "f8-medium": dict(block_out_channels=(64, 128, 256, 256), layers_per_block=2, latent_channels=4,
                      norm_num_groups=32),
}
VAEPreset = Literal[tuple(VAE_PRESETS)]  # type: ignore[valid-type]  # the names above, for configs and CLI choices


def build_vae(preset: str, sample_size: int = 32, in_channels: int = 3, **overrides: Any) -> AutoencoderKL:
    """A fresh AutoencoderKL; ``in_channels`` 3 (digits are repeated to RGB by the trainer)."""
    if preset not in VAE_PRESETS:
        raise ValueError(f"vae preset must be one of {sorted(VAE_PRESETS)}, got {preset!r}")
    kwargs = {**VAE_PRESETS[preset], **overrides}
    levels = len(kwargs["block_out_channels"])
    return AutoencoderKL(in_channels=in_channels, out_channels=in_channels, sample_size=sample_size,
                         down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, **kwargs)


def vae_factor(vae: AutoencoderKL) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def vae_loss(vae: AutoencoderKL, x: torch.Tensor, kl_weight: float, rec: str = "l1",
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-sample loss ``(B,)``: reconstruction (mean over pixels) + kl_weight * KL (mean over latent dims).

    ``x`` in [-1, 1], ``(B, 3, H, W)``. Returns the loss and the reconstruction for logging/GAN terms.
    """
    posterior = vae.encode(x).latent_dist  # q(z|x) = N(mean, diag(exp(logvar)))
    z = posterior.sample(generator)  # (B, C, H/f, W/f), reparameterised
    x_hat = vae.decode(z).sample  # (B, 3, H, W)
    if rec == "l1":
        rec_loss = (x_hat - x).abs().mean(dim=(1, 2, 3))
    elif rec == "l2":
        rec_loss = (x_hat - x).pow(2).mean(dim=(1, 2, 3))
    else:
        raise ValueError(f"rec must be 'l1' or 'l2', got {rec!r}")
    # KL(q || N(0, I)) = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2) (Kingma & Welling 2014, App. B), per dim
    kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean(dim=(1, 2, 3))
    return rec_loss + kl_weight * kl, {"rec": rec_loss.detach(), "kl": kl.detach(), "x_hat": x_hat}


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): one real/fake logit per receptive-field patch, ``(B, 1, h, w)``."""

    def __init__(self, in_channels: int = 3, width: int = 32, layers: int = 2):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, layers):
            blocks += [nn.Conv2d(width * 2 ** (i - 1), width * 2 ** i, 4, 2, 1), nn.GroupNorm(8, width * 2 ** i),
                       nn.LeakyReLU(0.2)]
        blocks.append(nn.Conv2d(width * 2 ** (layers - 1), 1, 3, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# The hinge identities of gan_baselines.gan_losses.HingeLoss, repeated on purpose (t2i does not import
# gan_baselines) and averaged over the PatchGAN's logit map: a fix to one is a fix to both.
def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss per sample: relu(1 - D(x)) + relu(1 + D(x_hat)) (Lim & Ye 2017)."""
    return F.relu(1 - logits_real).mean(dim=(1, 2, 3)) + F.relu(1 + logits_fake).mean(dim=(1, 2, 3))


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator (decoder) side of the hinge loss per sample: -D(x_hat)."""
    return -logits_fake.mean(dim=(1, 2, 3))


@torch.no_grad()
def measure_scaling_factor(vae: AutoencoderKL, batches: Iterable[torch.Tensor], max_images: int = 2048) -> float:
    """``1 / std`` of posterior samples over up to ``max_images`` images in [-1, 1] (Rombach et al., Sec. 4.3.2)."""
    total, total_sq, count = 0.0, 0.0, 0
    generator = torch.Generator().manual_seed(0)
    device = next(vae.parameters()).device
    for x in batches:
        z = vae.encode(x.to(device)).latent_dist.sample(generator).double()  # CPU noise, moved to the device
        total, total_sq, count = total + z.sum().item(), total_sq + z.pow(2).sum().item(), count + z.numel()
        if count >= max_images * z[0].numel():
            break
    if count == 0:
        raise ValueError("cannot measure the latent scaling factor: no images were given")
    std = (total_sq / count - (total / count) ** 2) ** 0.5
    if not std > 0:
        raise ValueError(f"latent std is {std}: the VAE collapsed; cannot set a scaling factor")
    return 1.0 / std


def load_vae(path_or_id: str | Path) -> AutoencoderKL:
    """A VAE from: a built-in name (``shapes-vae-kl``), a ``t2i train vae-kl`` run (``vae/`` inside), a
    pipeline folder (``vae/``), a plain AutoencoderKL folder, or a hub id (``org/name``, or its ``vae`` subfolder)."""
    from t2i.builtin import hub_error, resolve
    from t2i.runtime.checkpoint import stopped_run

    f32 = {"dtype": torch.float32}  # half-precision files (the compact built-ins) are computed in float32
    source = resolve(path_or_id, hub=True, what="VAE")  # a missing local path: builtin.missing
    if isinstance(source, str):  # a standalone VAE repo, then a pipeline repo's vae/ subfolder
        try:
            return AutoencoderKL.from_pretrained(source, **f32)
        except OSError:
            try:
                return AutoencoderKL.from_pretrained(source, subfolder="vae", **f32)
            except OSError as err:
                raise hub_error(source, "VAE", err) from None
    path = source
    f32 = {**f32, "use_safetensors": True}  # local folders: never unpickle a .bin (the toolkit refuses pickles)
    if (path / "vae" / "config.json").is_file():
        return AutoencoderKL.from_pretrained(str(path / "vae"), **f32)
    if stopped := stopped_run(path):
        raise stopped
    if (path / "config.json").is_file() and not (path / "model_index.json").is_file():
        config = json.loads((path / "config.json").read_text())
        if config.get("_class_name") != "AutoencoderKL":
            what = config.get("family") or config.get("_class_name") or "another kind of model"
            raise FileNotFoundError(f"{path} holds no VAE: its config.json describes {what}; give a `t2i train vae-kl` "
                                    "run, a pipeline folder or an AutoencoderKL folder")
        return AutoencoderKL.from_pretrained(str(path), **f32)
    raise FileNotFoundError(f"{path} holds no VAE: expected a `t2i train vae-kl` run or pipeline folder "
                            "(with vae/config.json) or an AutoencoderKL folder (config.json + weights)")
