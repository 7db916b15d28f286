"""The unCLIP decoder (Ramesh et al. 2022, Sec. 2.1): latent diffusion conditioned on a CLIP image embedding.

The denoiser is a diffusers ``UNet2DConditionModel`` in Kandinsky 2.2's form: the image embedding
``e`` (B, D) is projected to 32 context tokens that the cross-attention reads
(``encoder_hid_dim_type="image_proj"``) and added to the timestep embedding
(``addition_embed_type="image"``), the two ways DALL-E 2's decoder uses it ("projecting and adding
CLIP embeddings to the existing timestep embedding, and projecting CLIP embeddings into four extra
tokens of context"). The embedding is CLIP's own, unnormalised (``t2i.prior.model``'s convention).

Stock-diffusers layout: a decoder folder is a ``KandinskyV22Pipeline`` (``unet/``, ``scheduler/``,
``movq/``), which needs two things our latent diffusion does not have, both made exact here:
- the UNet outputs ``2C`` channels, prediction then variance; this decoder has a fixed variance, so
  the variance half is zero (its output weights start at zero and no loss reaches them) and the
  pipeline, with a fixed-variance scheduler, drops it;
- the first stage is a ``VQModel`` decoded with ``force_not_quantize=True`` and no scaling factor:
  ``movq_from_vae`` copies the project's ``AutoencoderKL`` into one (same encoder and decoder; the
  posterior mean's half of ``quant_conv`` times the scaling factor ``s``; ``post_quant_conv`` divided
  by ``s``), so ``movq.decode(z * s) == vae.decode(z)``: the UNet works on ``z * s`` as ours always do.
Guidance (Ho & Salimans 2022): the null condition is the CLIP embedding of an all-zero pixel input,
as Kandinsky's prior pipeline makes it (``get_zero_embed``); it replaces the image's embedding with
probability ``cond_dropout`` in training.

    HF_HUB_OFFLINE=1 python -c "from t2i.unclip.decoder import demo; demo()"
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, VQModel
from torch.utils.data import Dataset

from t2i.diffusion.disk_cache import cache_fingerprint, open_cache_dir
from t2i.diffusion.training import build_latent_cache
from t2i.diffusion.unet import UNET_PRESETS
from t2i.prior.model import embed_images


def build_decoder_unet(preset: str, sample_size: int, latent_channels: int, embed_dim: int,
                       cross_attention_dim: int = 64, **overrides: Any) -> UNet2DConditionModel:
    """A fresh decoder UNet for ``sample_size``-square latents of ``latent_channels``, reading a ``(B, embed_dim)`` embedding."""
    if preset not in UNET_PRESETS:
        raise ValueError(f"unet preset must be one of {sorted(UNET_PRESETS)}, got {preset!r}")
    kwargs = {**UNET_PRESETS[preset], **overrides}
    levels = len(kwargs["block_out_channels"])
    if sample_size % 2 ** (levels - 1):
        raise ValueError(f"latent size {sample_size} must be divisible by {2 ** (levels - 1)} (UNet preset {preset!r})")
    unet = UNet2DConditionModel(sample_size=sample_size, in_channels=latent_channels, out_channels=2 * latent_channels,
                                cross_attention_dim=cross_attention_dim, encoder_hid_dim=embed_dim,
                                encoder_hid_dim_type="image_proj", addition_embed_type="image", **kwargs)
    with torch.no_grad():  # the variance half: zero now, and no loss ever reaches it
        unet.conv_out.weight[latent_channels:].zero_()
        unet.conv_out.bias[latent_channels:].zero_()
    return unet


def decoder_kwargs(image_embeds: torch.Tensor) -> dict[str, Any]:
    """The UNet's conditioning keyword arguments for embeddings ``(B, D)``, as ``KandinskyV22Pipeline`` passes them."""
    return {"encoder_hidden_states": None, "added_cond_kwargs": {"image_embeds": image_embeds}}


def movq_from_vae(vae: AutoencoderKL) -> VQModel:
    """A ``VQModel`` (used without its codebook) whose ``decode(z * s, force_not_quantize=True)`` is ``vae.decode(z)``
    and whose ``encode(x)`` is ``s`` times the posterior mean; ``s`` = ``vae.config.scaling_factor``."""
    c = vae.config
    if c.get("norm_type", "group") != "group" or not c.get("mid_block_add_attention", True):
        raise ValueError("movq_from_vae copies AutoencoderKLs with group norm and mid-block attention")
    s = float(c.scaling_factor)
    movq = VQModel(in_channels=c.in_channels, out_channels=c.out_channels, down_block_types=tuple(c.down_block_types),
                   up_block_types=tuple(c.up_block_types), block_out_channels=tuple(c.block_out_channels),
                   layers_per_block=c.layers_per_block, act_fn=c.act_fn, latent_channels=c.latent_channels,
                   sample_size=c.sample_size, num_vq_embeddings=1, norm_num_groups=c.norm_num_groups,
                   scaling_factor=1.0, force_upcast=False)
    ch = c.latent_channels
    encoder = {k: v for k, v in vae.encoder.state_dict().items() if not k.startswith("conv_out.")}
    movq.encoder.load_state_dict(encoder, strict=False)
    movq.decoder.load_state_dict(vae.decoder.state_dict())
    with torch.no_grad():
        # the VAE's encoder ends in conv_out (2C: mean, logvar) then the 1x1 quant_conv; the mean's rows of the
        # 1x1 folded into the 3x3 give the VQModel's conv_out (C), and its quant_conv multiplies by s
        wq, bq = vae.quant_conv.weight[:ch, :, 0, 0], vae.quant_conv.bias[:ch]  # (C, 2C), (C,)
        wc, bc = vae.encoder.conv_out.weight, vae.encoder.conv_out.bias  # (2C, F, 3, 3), (2C,)
        movq.encoder.conv_out.weight.copy_(torch.einsum("ok,kfij->ofij", wq, wc))
        movq.encoder.conv_out.bias.copy_(wq @ bc + bq)
        movq.quant_conv.weight.copy_(torch.eye(ch).view(ch, ch, 1, 1) * s)
        movq.quant_conv.bias.zero_()
        movq.post_quant_conv.weight.copy_(vae.post_quant_conv.weight / s)  # 1x1 conv: W (z s) / s = W z
        movq.post_quant_conv.bias.copy_(vae.post_quant_conv.bias)
        movq.quantize.embedding.weight.zero_()  # unused (force_not_quantize), kept deterministic
    return movq.eval()


@torch.no_grad()
def null_image_embedding(clip: Any) -> torch.Tensor:
    """``(D,)``: the CLIP image embedding of an all-zero (normalised) pixel input, Kandinsky's ``get_zero_embed``."""
    from t2i.clip.model import image_size

    size = image_size(clip)
    device = next(clip.parameters()).device
    return clip.encode_image(torch.zeros(1, 3, size, size, device=device))[0].float().cpu()


class CachedImageLatents(Dataset):
    """Items ``{"moments": (2C, h, w) posterior mean and std, "image_embed": (D,)}``: each image's first-stage
    posterior and its own CLIP embedding, computed once (``build_decoder_cache``)."""

    def __init__(self, moments: torch.Tensor, image_embeds: torch.Tensor):
        if len(moments) != len(image_embeds):
            raise ValueError(f"{len(moments)} latents but {len(image_embeds)} image embeddings")
        self.moments, self.image_embeds = moments, image_embeds

    def __len__(self) -> int:
        return len(self.moments)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"moments": self.moments[i], "image_embed": self.image_embeds[i]}


@torch.no_grad()
def build_decoder_cache(run: Any, dataset: Dataset, source: str, data_options: dict[str, Any], vae: Any, clip: Any,
                        cache_dir: str = "") -> CachedImageLatents:
    """Each training image's first-stage posterior moments ``(N, 2C, h, w)`` and CLIP image embedding ``(N, D)``,
    encoded in one pass (``build_latent_cache``, the embeddings as its extra array ``image_embeds``). In memory,
    or with ``cache_dir`` in that folder, memory-mapped, resumed after an interruption and reused (refused when it
    holds the cache of other data, another first stage or another CLIP image tower: ``t2i.diffusion.disk_cache``),
    built by the main process first, as ``t2i.diffusion.training.build_caches`` builds ldm's."""
    folder = None
    with run.main_process_first() if cache_dir else nullcontext():  # one process writes the folder
        if cache_dir:
            folder = open_cache_dir(cache_dir, cache_fingerprint(dataset, source, data_options, vae,
                                                                 image_encoder=clip.visual))
        embed = functools.partial(embed_images, clip, device=run.device)  # (B, C, S, S) -> (B, D)
        latents = build_latent_cache(dataset, vae, run.device, folder=folder, log=run.print,
                                     extras={"image_embeds": embed})
    cache = CachedImageLatents(latents.moments, latents.extras["image_embeds"])
    cache.report = latents.report  # the bad-data report travels with the data (run.dataloader prints it)
    return cache


def drop_embeddings(image_embeds: torch.Tensor, null: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each row of ``(B, D)`` by the null embedding ``(D,)`` with probability ``p`` (classifier-free guidance)."""
    drop = torch.rand(len(image_embeds), generator=generator).to(image_embeds.device) < p  # (B,)
    return torch.where(drop[:, None], null.to(image_embeds), image_embeds)


def demo() -> None:
    from t2i.diffusion.first_stage import build_vae

    vae = build_vae("f4-test", sample_size=16)
    vae.register_to_config(scaling_factor=0.5)
    movq = movq_from_vae(vae)
    z = torch.randn(1, 4, 4, 4)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        gap = (movq.decode(z * 0.5, force_not_quantize=True).sample - vae.decode(z).sample).abs().max()
        gap = max(gap, (movq.encode(x).latents - 0.5 * vae.encode(x).latent_dist.mean).abs().max())
    unet = build_decoder_unet("test", 4, 4, embed_dim=8, cross_attention_dim=16)
    out = unet(torch.randn(2, 4, 4, 4), 10, **decoder_kwargs(torch.randn(2, 8))).sample
    print(f"movq vs vae decode max gap {gap:.2e}; decoder output {tuple(out.shape)}, variance half max {out[:, 4:].abs().max():.1f}")
