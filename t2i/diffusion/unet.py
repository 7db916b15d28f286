"""The denoiser: a diffusers ``UNet2DConditionModel`` cross-attending to CLIP text token states.

Presets are a plain lookup (name -> UNet keyword arguments); the sample size, latent channels
and cross-attention width come from the first stage and the text encoder, so one preset
serves any VAE/CLIP pair. The cross-attention blocks implement Rombach et al. 2022, Sec. 3.3:
``Attention(Q = W_q phi(z_t), K = W_k tau(y), V = W_v tau(y))`` with ``tau(y)`` the
``(B, T, D)`` token states of the frozen text tower.

    python -c "from t2i.diffusion.unet import build_unet; u = build_unet('tiny', 8, 4, 64); print(sum(p.numel() for p in u.parameters()))"
"""

from __future__ import annotations

from typing import Any, Literal

from diffusers import UNet2DConditionModel

# preset name -> UNet2DConditionModel keyword arguments (everything but sizes taken from the data)
UNET_PRESETS: dict[str, dict[str, Any]] = {
    # tests: 2 levels, 16-32 channels, a few hundred thousand parameters
    "test": dict(block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1, attention_head_dim=2,
                 norm_num_groups=8),
    # 32 px images through a factor-4 VAE: 8x8 latents -> 8, 4, 2; cross-attention at 8 and 4
    "tiny": dict(block_out_channels=(64, 128, 128),
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                 attention_head_dim=4, norm_num_groups=32),
    # 32 px images, 8x8 latents -> 8, 4 with the middle block at 4x4; cross-attention at 8 and 4 (160 channels there
    # keep "tiny"'s parameter count, 6.0 M vs 5.8 M). A stride-2 3x3 convolution (padding 1) on an even side centres
    # its outputs on the even rows and columns, so after two halvings one 2x2 cell of "tiny" covers both the centre and
    # the bottom-right quarter, where "tiny" misplaces large objects most. Measured (benchmarks/positions.py,
    # RESULTS "Where large objects land"): the 4x4 middle moves those misses to other corners, no net gain; not adopted
    "tiny-2level": dict(block_out_channels=(64, 160),
                        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                        attention_head_dim=4, norm_num_groups=32),
    # 16x16 latents: 64 px through a factor-4 VAE (px64), 128 px through a factor-8 one (px128); or 32 px with
    # more capacity. Cross-attention at 16 and 8
    "small": dict(block_out_channels=(96, 192, 256),
                  down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=2,
                  attention_head_dim=8, norm_num_groups=32),
    # 32x32 latents: 256 px through a factor-8 VAE (px256): 32, 16, 8, 4; cross-attention at 16 and 8 (and the
    # 4x4 middle), none at 32x32 where 1024 query tokens would cost most and add least
    "medium": dict(block_out_channels=(128, 256, 384, 384),
                   down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                   layers_per_block=2, attention_head_dim=8, norm_num_groups=32),
}
UNetPreset = Literal[tuple(UNET_PRESETS)]  # type: ignore[valid-type]  # the names above, for configs and CLI choices


def build_unet(preset: str, sample_size: int, latent_channels: int, cross_attention_dim: int,
               **overrides: Any) -> UNet2DConditionModel:
    """A fresh UNet for ``sample_size`` x ``sample_size`` latents with ``latent_channels`` channels."""
    if preset not in UNET_PRESETS:
        raise ValueError(f"unet preset must be one of {sorted(UNET_PRESETS)}, got {preset!r}")
    kwargs = {**UNET_PRESETS[preset], **overrides}
    levels = len(kwargs["block_out_channels"])
    if sample_size % 2 ** (levels - 1):
        raise ValueError(f"latent size {sample_size} must be divisible by {2 ** (levels - 1)} "
                         f"(the {levels}-level UNet preset {preset!r} halves it {levels - 1} times)")
    return UNet2DConditionModel(sample_size=sample_size, in_channels=latent_channels, out_channels=latent_channels,
                                cross_attention_dim=cross_attention_dim, **kwargs)
