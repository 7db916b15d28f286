"""Stable Diffusion interop: text encoders in, pipeline folders in and out.

Our pipeline folder *is* the Stable Diffusion layout (``model_index.json`` + ``vae/
text_encoder/ tokenizer/ unet/ scheduler/``) with the text encoder stored as a transformers
``CLIPTextModel`` + ``CLIPTokenizer``, so:
- ``StableDiffusionPipeline.from_pretrained(our_folder)`` works as is; ``export_stable_diffusion``
  additionally rewrites the model index as a ``StableDiffusionPipeline`` one (what hub tools
  and ``DiffusionPipeline.from_pretrained`` expect, safety checker left out);
- ``load_pipeline(folder_or_hub_id)`` reads ours or any SD-layout folder (SD 1.x/2.x style:
  extra components such as the safety checker are ignored) and checks that the parts fit;
- ``load_text_components(path_or_name)`` turns an open_clip CLIP (our runs, ``shapes-clip``)
  into ``CLIPTextModel`` + ``CLIPTokenizer`` through ``t2i.clip.export``, or loads a
  transformers one (folder, SD folder, hub id).

    HF_HUB_OFFLINE=1 python -c "from t2i.diffusion.interop import demo; demo()"
"""

from __future__ import annotations

import json

import tempfile
from pathlib import Path
from typing import Any

import torch

from t2i.diffusion.pipeline import LatentDiffusionPipeline, load_lora_run


def check_components(pipe: Any) -> None:
    """Raise ValueError when the VAE, UNet and text encoder do not fit together."""
    vae, unet, text_encoder, tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
    if unet.config.in_channels != vae.config.latent_channels:
        raise ValueError(f"UNet takes {unet.config.in_channels} channels but the VAE makes "
                         f"{vae.config.latent_channels}-channel latents")
    if unet.config.cross_attention_dim != text_encoder.config.hidden_size:
        raise ValueError(f"UNet cross-attends to {unet.config.cross_attention_dim}-dim states but the text encoder "
                         f"gives {text_encoder.config.hidden_size}-dim ones")
    if tokenizer.model_max_length > text_encoder.config.max_position_embeddings:
        raise ValueError(f"tokenizer pads to {tokenizer.model_max_length} tokens but the text encoder has only "
                         f"{text_encoder.config.max_position_embeddings} positions")


def load_pipeline(path_or_id: str | Path, **kwargs: Any) -> LatentDiffusionPipeline:
    """Our pipeline from our folder, a built-in name, a Stable-Diffusion-layout folder or a hub id (offline: local
    only); from a LoRA run folder, its base with the adapter merged into the UNet's weights."""
    from t2i.builtin import hub_error, resolve
    from t2i.runtime.checkpoint import stopped_run

    path_or_id = resolve(path_or_id, hub=True, what="pipeline")
    path = Path(str(path_or_id)).expanduser()
    if (path / "t2i_lora.json").is_file():  # `t2i train ldm --lora-rank R`'s run folder
        pipe = load_lora_run(path, fuse=True)
        check_components(pipe)
        return pipe
    if path.exists() and not (path / "model_index.json").is_file():
        if stopped := stopped_run(path):
            raise stopped
        raise FileNotFoundError(f"{path} is not a pipeline folder: no model_index.json (expected vae/, text_encoder/, "
                                "tokenizer/, unet/, scheduler/ as written by `t2i train ldm` or diffusers)")
    kwargs.setdefault("dtype", torch.float32)  # half-precision files (compact built-ins) are computed in float32
    try:
        pipe = LatentDiffusionPipeline.from_pretrained(str(path_or_id), **kwargs)
    except OSError as err:
        if path.exists():
            raise
        raise hub_error(path_or_id, "pipeline", err) from None
    check_components(pipe)
    return pipe


def export_stable_diffusion(pipe_or_folder: Any, out_dir: str | Path) -> Path:
    """Write a ``StableDiffusionPipeline`` folder (no safety checker) of our pipeline's components."""
    from diffusers import StableDiffusionPipeline

    pipe = pipe_or_folder if isinstance(pipe_or_folder, LatentDiffusionPipeline) else load_pipeline(pipe_or_folder)
    sd = StableDiffusionPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                 unet=pipe.unet, scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None,
                                 requires_safety_checker=False)
    sd.save_pretrained(str(out_dir))
    return Path(out_dir)


def declare_float32(config_path: str | Path) -> None:
    """Name float32 in a transformers model's ``config.json``. transformers loads a model in its config's dtype,
    diffusers in float32: so a stock pipeline over half-precision files gets one dtype (float32 compute)."""
    path = Path(config_path)
    config = json.loads(path.read_text())
    config.pop("torch_dtype", None)
    path.write_text(json.dumps({**config, "dtype": "float32"}, indent=2) + "\n")


def save_half(pipe_or_folder: Any, out_dir: str | Path) -> Path:
    """Write a pipeline folder with half-precision weights (half the bytes; the built-ins ship so).

    Loading goes through ``load_pipeline`` / ``load_generator``, which compute in float32 again;
    ``t2i_sampling.json`` is copied along.
    """
    import shutil

    src = None if isinstance(pipe_or_folder, LatentDiffusionPipeline) else Path(str(pipe_or_folder))
    pipe = pipe_or_folder if src is None else load_pipeline(src)
    components = {name: getattr(pipe, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    half = LatentDiffusionPipeline(**components)
    for name in ("vae", "text_encoder", "unet"):
        getattr(half, name).to(torch.float16)
    half.save_pretrained(str(out_dir))
    for name in ("vae", "text_encoder", "unet"):
        getattr(half, name).to(torch.float32)
    declare_float32(Path(out_dir) / "text_encoder" / "config.json")
    if src is not None and (src / "t2i_sampling.json").is_file():
        shutil.copy(src / "t2i_sampling.json", Path(out_dir) / "t2i_sampling.json")
    return Path(out_dir)


def load_text_components(path_or_name: str | Path) -> tuple[Any, Any]:
    """``(CLIPTextModel, CLIPTokenizer)`` from an open_clip folder or built-in name (exported on the
    fly), a transformers text-model folder, a folder with ``text_encoder/`` + ``tokenizer/``, or a hub id."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from t2i.builtin import hub_error, resolve
    from t2i.clip.model import is_clip_folder
    from t2i.runtime.checkpoint import stopped_run

    text = str(path_or_name)
    source = resolve(text, hub=True, what="text encoder")  # a missing local path: builtin.missing
    if isinstance(source, str):  # a hub id: a text-model repo, then a pipeline repo's subfolders
        try:
            return CLIPTextModel.from_pretrained(text).eval(), CLIPTokenizer.from_pretrained(text)
        except OSError:
            try:
                return (CLIPTextModel.from_pretrained(text, subfolder="text_encoder").eval(),
                        CLIPTokenizer.from_pretrained(text, subfolder="tokenizer"))
            except OSError as err:
                raise hub_error(text, "text encoder", err) from None
    path = source
    if is_clip_folder(path):
        from t2i.clip.export import export_text_encoder

        with tempfile.TemporaryDirectory() as tmp:
            export_text_encoder(path, tmp, with_projection=False)
            return CLIPTextModel.from_pretrained(tmp).eval(), CLIPTokenizer.from_pretrained(tmp)
    if (path / "text_encoder").is_dir():
        return (CLIPTextModel.from_pretrained(str(path / "text_encoder")).eval(),
                CLIPTokenizer.from_pretrained(str(path / "tokenizer")))
    if stopped := stopped_run(path):
        raise stopped
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no text encoder: expected an open_clip folder "
                                "(open_clip_config.json), a CLIPTextModel folder or text_encoder/ + tokenizer/")
    tok = path / "tokenizer" if (path / "tokenizer").is_dir() else path
    return CLIPTextModel.from_pretrained(str(path)).eval(), CLIPTokenizer.from_pretrained(str(tok))


def demo() -> None:
    from diffusers import StableDiffusionPipeline

    from t2i.diffusion.testing import make_tiny_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        export_stable_diffusion(make_tiny_pipeline(), Path(tmp) / "sd")
        sd = StableDiffusionPipeline.from_pretrained(str(Path(tmp) / "sd"))
        print(type(sd).__name__, [type(c).__name__ for c in sd.components.values() if c is not None])
