"""Latent diffusion on diffusers, conditioned on CLIP text token states.

- ``first_stage``: the diffusers ``AutoencoderKL`` first stage (presets, losses, latent scaling factor)
- ``unet``: ``UNet2DConditionModel`` presets with cross-attention on text token states
- ``pipeline``: ``LatentDiffusionPipeline`` (visible denoising loop, samplers), ``load_generator``
- ``lora``: peft LoRA on the UNet attention, saved in diffusers' LoRA format
- ``interop``: Stable-Diffusion-layout folders in and out
- ``testing``: tiny random components for tests

    HF_HUB_OFFLINE=1 python -m t2i.diffusion.pipeline
"""
