"""Latent diffusion on diffusers, conditioned on CLIP text token states.

- ``first_stage``: the diffusers ``AutoencoderKL`` first stage (presets, losses, latent scaling factor)
- ``unet``: ``UNet2DConditionModel`` presets with cross-attention on text token states
- ``pipeline``: ``LatentDiffusionPipeline`` (visible denoising loop, samplers), ``load_generator``
- ``training``: the per-sample denoising loss (epsilon / v, min-SNR-gamma) and the latent/text caches
- ``distill``: guidance distillation (one UNet pass per step; the guidance scale as a UNet input)
- ``lora``: peft LoRA on the UNet attention, saved in diffusers' LoRA format
- ``interop``: Stable-Diffusion-layout folders in and out, text encoders from open_clip, half-precision copies
- ``testing``: tiny random components for tests

    HF_HUB_OFFLINE=1 python -m t2i.diffusion.pipeline
"""
