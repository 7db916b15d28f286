"""A tiny random unCLIP model for tests, in the saved layout (``prior/`` + ``decoder/`` + ``t2i_unclip.json``).

Built locally in a few seconds: a tiny open_clip (``t2i.clip.testing``), a 1-layer prior, a test-size
first stage and decoder UNet; no network.

    HF_HUB_OFFLINE=1 python -c "from t2i.unclip.testing import demo; demo()"
"""

from __future__ import annotations

from pathlib import Path

import torch

from t2i.unclip.pipeline import UnCLIPOptions

TINY_OPTIONS = UnCLIPOptions(sampler="ddim", num_inference_steps=2, guidance_scale=2.0, prior_steps=2, prior_guidance=2.0)


def make_tiny_unclip(folder: str | Path, seed: int = 0, options: UnCLIPOptions = TINY_OPTIONS) -> Path:
    """Write a random tiny unCLIP to ``folder`` (its CLIP and prior run beside it, under ``folder/parts``)."""
    from t2i.clip.testing import TINY_MODEL_CFG, make_tiny_clip
    from t2i.diffusion.first_stage import build_vae
    from t2i.diffusion.pipeline import make_scheduler, training_scheduler
    from t2i.prior import save_prior, training_scheduler as prior_schedule
    from t2i.prior.model import tiny_prior
    from t2i.unclip.decoder import build_decoder_unet, movq_from_vae
    from t2i.unclip.pipeline import save_decoder, save_unclip

    folder = Path(folder)
    clip = make_tiny_clip(folder / "parts" / "clip", seed=seed)
    dim, tokens = TINY_MODEL_CFG["embed_dim"], TINY_MODEL_CFG["text_cfg"]["context_length"]
    prior_run = save_prior(folder / "parts" / "prior", tiny_prior(dim, tokens, seed=seed), prior_schedule(),
                           {"clip": str(clip)})
    torch.manual_seed(seed)
    vae = build_vae("f4-test", sample_size=32)
    unet = build_decoder_unet("test", 8, vae.config.latent_channels, dim, cross_attention_dim=16)
    save_decoder(folder / "decoder", unet, make_scheduler(options.sampler, training_scheduler().config), movq_from_vae(vae))
    return save_unclip(folder, prior_run, str(clip), options)


def demo() -> None:
    import tempfile

    from t2i.unclip.pipeline import load_generator

    with tempfile.TemporaryDirectory() as d:
        gen = load_generator(make_tiny_unclip(Path(d) / "unclip"))
        images = gen.generate(["a red circle"], seed=0, num_images_per_prompt=2)
        print(gen.describe()["parameters"], [im.size for im in images])
