"""Tiny random diffusion components for tests: built locally in about a second, no network.

``make_tiny_pipeline()`` gives a 16 px ``LatentDiffusionPipeline`` (factor-4 VAE, 2-level
UNet, 1-layer ``CLIPTextModel`` with a character-level ``CLIPTokenizer`` whose vocabulary is
written here, so nothing is downloaded). ``make_sd_folder(folder)`` writes the same
components in the Stable Diffusion layout, with a ``StableDiffusionPipeline`` model index.

    HF_HUB_OFFLINE=1 python -c "from t2i.diffusion.testing import make_tiny_pipeline; print(make_tiny_pipeline().unet.config.sample_size)"
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import torch

CHARS = string.ascii_lowercase + string.digits + "!,.'-"


def make_char_tokenizer(folder: str | Path, max_length: int = 16) -> Any:
    """A ``CLIPTokenizer`` over single characters (a word is its letters, the last with ``</w>``)."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(CHARS)}
    vocab.update({c + "</w>": len(CHARS) + i for i, c in enumerate(CHARS)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: character-level
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)


def make_tiny_components(seed: int = 0, size: int = 16, max_length: int = 16, token_dim: int = 32,
                         prediction_type: str = "epsilon") -> dict[str, Any]:
    """vae, text_encoder, tokenizer, unet, scheduler: random, tiny, deterministic in ``seed``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from t2i.diffusion.first_stage import build_vae
    from t2i.diffusion.pipeline import training_scheduler
    from t2i.diffusion.unet import build_unet

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_char_tokenizer(tmp, max_length=max_length)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=token_dim, intermediate_size=2 * token_dim,
                                num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=max_length,
                                hidden_act="gelu", bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        text_encoder = CLIPTextModel(config).eval()
        vae = build_vae("f4-test", sample_size=size).eval()
        unet = build_unet("test", sample_size=size // 4, latent_channels=vae.config.latent_channels,
                          cross_attention_dim=token_dim).eval()
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet,
            "scheduler": training_scheduler(prediction_type)}


def make_tiny_pipeline(seed: int = 0, **kwargs: Any) -> Any:
    from t2i.diffusion.pipeline import LatentDiffusionPipeline

    return LatentDiffusionPipeline(**make_tiny_components(seed, **kwargs))


def ours_and_stock(folder: str | Path, prompt: str, seed: int) -> tuple[Any, Any]:
    """The image of ``prompt`` at ``seed`` from our generator on ``folder`` (its saved sampler, steps and
    guidance) and from stock ``StableDiffusionPipeline.from_pretrained(folder)`` given the same, as arrays."""
    import numpy as np
    from diffusers import StableDiffusionPipeline

    from t2i.diffusion.pipeline import load_generator

    gen = load_generator(folder)
    ours = gen.generate(prompts=[prompt], seed=seed)[0]
    sd = StableDiffusionPipeline.from_pretrained(str(folder))
    sd.set_progress_bar_config(disable=True)
    theirs = sd(prompt, num_inference_steps=gen.options.num_inference_steps, guidance_scale=gen.options.guidance_scale,
                generator=torch.Generator().manual_seed(seed)).images[0]
    return np.asarray(ours), np.asarray(theirs)


def make_sd_folder(folder: str | Path, seed: int = 0, **kwargs: Any) -> Path:
    """A Stable-Diffusion-layout folder (as the hub ships them) of tiny random components."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**make_tiny_components(seed, **kwargs), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return Path(folder)
