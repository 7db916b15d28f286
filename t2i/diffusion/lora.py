"""LoRA on the UNet attention through peft, saved in the format diffusers loads.

Hu et al. 2022 (LoRA, Eq. 3): a frozen weight ``W`` gets a trainable low-rank update,
``h = W x + (alpha / r) B A x`` with ``A`` (r x d_in) Gaussian and ``B`` (d_out x r) zero at the
start, so the adapted model begins exactly at the base model. We adapt the query, key,
value and output projections of every UNet attention block (self and cross attention),
as diffusers' ``train_text_to_image_lora.py`` does.

The weights are saved apart as ``pytorch_lora_weights.safetensors`` (diffusers' key names,
peft config in the safetensors metadata), so both our pipeline and a stock
``StableDiffusionPipeline`` apply them with ``pipe.load_lora_weights(folder)``.

    HF_HUB_OFFLINE=1 python -c "from t2i.diffusion.lora import demo; demo()"
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # attention projections in diffusers' Attention
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # the file name diffusers looks for


def add_lora(unet: UNet2DConditionModel, rank: int, alpha: float | None = None,
             targets: tuple[str, ...] = LORA_TARGETS) -> list[torch.nn.Parameter]:
    """Freeze ``unet`` and add a rank-``rank`` adapter; returns the trainable LoRA parameters."""
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA rank must be an integer >= 1, got {rank!r}")
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                                target_modules=list(targets)))
    params = [p for p in unet.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"no UNet module matched the LoRA targets {targets}")
    return params


def lora_state_dict(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The adapter weights with diffusers' key names (``...to_q.lora_A.weight``)."""
    return convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))


def save_lora(folder: str | Path, unet: UNet2DConditionModel) -> Path:
    """Write ``folder/pytorch_lora_weights.safetensors`` (with the peft config as metadata)."""
    from t2i.diffusion.pipeline import LatentDiffusionPipeline

    metadata = unet.peft_config["default"].to_dict()
    LatentDiffusionPipeline.save_lora_weights(save_directory=str(folder), unet_lora_layers=lora_state_dict(unet),
                                              unet_lora_adapter_metadata=metadata, weight_name=LORA_WEIGHTS)
    return Path(folder) / LORA_WEIGHTS


def apply_lora(pipe: Any, folder: str | Path, scale: float = 1.0, fuse: bool = False) -> Any:
    """Load LoRA weights into ``pipe`` (ours or a stock diffusers pipeline); ``scale`` multiplies the update."""
    folder = Path(folder)
    if not (folder / LORA_WEIGHTS).is_file():
        raise FileNotFoundError(f"no {LORA_WEIGHTS} in {folder}: expected the output of `t2i train ldm --lora-rank R`")
    # our adapters are the UNet's alone, by design: diffusers' long note that the text encoder got no LoRA keys is
    # true of every such file, so it is kept out of the user's output
    loader_log = logging.getLogger("diffusers.loaders.lora_base")
    quiet = logging.Filter()
    quiet.filter = lambda record: not record.getMessage().startswith("No LoRA keys associated to")
    loader_log.addFilter(quiet)
    try:
        pipe.load_lora_weights(str(folder), weight_name=LORA_WEIGHTS, adapter_name="lora")
    finally:
        loader_log.removeFilter(quiet)
    pipe.set_adapters(["lora"], adapter_weights=[scale])
    if fuse:
        pipe.fuse_lora(lora_scale=1.0)
        pipe.unload_lora_weights()
    return pipe


def demo() -> None:
    import tempfile

    from t2i.diffusion.testing import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    params = add_lora(pipe.unet, rank=4)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{sum(p.numel() for p in params)} LoRA parameters ->", save_lora(tmp, pipe.unet).name)
