"""Guidance distillation: one UNet pass per sampling step instead of two.

Classifier-free guidance (Ho & Salimans 2022, Eq. 6) runs the UNet twice per step:
``eps_g(x_t, c) = eps(x_t, "") + g (eps(x_t, c) - eps(x_t, ""))``. Guidance distillation
(Meng et al., CVPR 2023, "On distillation of guided diffusion models", Sec. 3.1, stage one)
trains a student that reads ``g`` as an extra input to reproduce ``eps_g`` in one pass, for
every ``g`` of a range: ``min E || eps_student(x_t, c, g) - eps_g(x_t, c) ||^2`` over data
latents at uniform timesteps and ``g ~ U[g_min, g_max]``.

The student is the teacher's ``UNet2DConditionModel`` with ``time_cond_proj_dim`` set: the
embedding of ``g - 1`` (``guidance_embedding``, the sinusoidal embedding of diffusers' LCM
pipelines, Luo et al. 2023) is projected by ``time_embedding.cond_proj`` and added to the timestep
features. That projection starts at zero, so the untrained student is the teacher's conditional
model. Stock ``diffusers.StableDiffusionPipeline`` recognises such a UNet (it then feeds the
embedding of ``guidance_scale - 1`` and skips the unconditional pass), so a distilled folder
samples the same images in stock diffusers and in ``t2i.diffusion.pipeline``.

    HF_HUB_OFFLINE=1 python -m t2i.diffusion.distill   # a tiny random teacher: the loss of one batch
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from diffusers import UNet2DConditionModel

GUIDANCE_EMBED_DIM = 256  # width of the guidance embedding, as diffusers' LCM UNets (time_cond_proj_dim)


def guidance_embedding(guidance_scale: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of ``w = guidance_scale - 1`` (Vaswani et al. 2017 frequencies, ``w`` x 1000).

    The same numbers as ``StableDiffusionPipeline.get_guidance_scale_embedding(guidance_scale - 1, dim)``
    (a test checks it), which is what stock diffusers feeds a UNet with ``time_cond_proj_dim``.
    """
    w = (guidance_scale.float() - 1.0) * 1000.0  # (B,)
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=w.device) * -(math.log(10000.0) / (half - 1)))
    angles = w[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return torch.nn.functional.pad(emb, (0, dim % 2))  # (B, dim)


def is_guidance_distilled(unet: Any) -> bool:
    """Whether ``unet`` reads the guidance scale as an input (a ``time_cond_proj_dim`` UNet)."""
    return getattr(unet.config, "time_cond_proj_dim", None) is not None


def make_student(teacher: UNet2DConditionModel, embed_dim: int = GUIDANCE_EMBED_DIM) -> UNet2DConditionModel:
    """The teacher's architecture and weights plus a zero-initialised guidance projection (``cond_proj``)."""
    if is_guidance_distilled(teacher):
        raise ValueError("the teacher already reads the guidance scale (time_cond_proj_dim is set): distil a "
                         "plain classifier-free-guidance model")
    config = {k: v for k, v in teacher.config.items() if not k.startswith("_")}  # "_use_default_values" would undo the next line
    config["time_cond_proj_dim"] = embed_dim
    student = UNet2DConditionModel.from_config(config)
    missing, unexpected = student.load_state_dict(copy.deepcopy(teacher.state_dict()), strict=False)
    if unexpected or set(missing) != {"time_embedding.cond_proj.weight"}:
        raise RuntimeError(f"student/teacher weights differ beyond cond_proj: missing {missing}, unexpected {unexpected}")
    torch.nn.init.zeros_(student.time_embedding.cond_proj.weight)
    return student.to(next(teacher.parameters()).dtype)


@torch.no_grad()
def guided_prediction(teacher: Any, zt: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                      guidance_scale: torch.Tensor) -> torch.Tensor:
    """The teacher's classifier-free guided output ``eps_u + g (eps_c - eps_u)`` ``(B, C, h, w)``, one batched pass."""
    pred = teacher(torch.cat([zt, zt]), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, cond])).sample
    pred_uncond, pred_cond = pred.float().chunk(2)
    g = guidance_scale.float().view(-1, 1, 1, 1)
    return pred_uncond + g * (pred_cond - pred_uncond)


def distill_loss(student: Any, teacher: Any, scheduler: Any, z0: torch.Tensor, cond: torch.Tensor,
                 uncond: torch.Tensor, guidance_range: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Per-sample guidance-distillation loss ``(B,)`` (Meng et al. 2023, Sec. 3.1, at data latents ``z0``).

    ``cond``/``uncond``: text states ``(B, T, D)`` of the captions and of the empty prompt; timesteps,
    noise and guidance scales come from ``generator`` (a CPU generator: reproducible and resumable).
    The target is in the teacher's own parameterisation (epsilon or v), as the student's output is.
    """
    b = z0.shape[0]
    eps = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator).to(z0.device)
    lo, hi = guidance_range
    g = (lo + (hi - lo) * torch.rand(b, generator=generator)).to(z0.device)  # (B,)
    zt = scheduler.add_noise(z0, eps, t)
    target = guided_prediction(teacher, zt, t, cond, uncond, g)
    embed = guidance_embedding(g, student.config.time_cond_proj_dim).to(z0.dtype)
    pred = student(zt, t, encoder_hidden_states=cond, timestep_cond=embed).sample
    return (pred.float() - target).pow(2).mean(dim=(1, 2, 3))


def demo() -> None:
    from t2i.diffusion.pipeline import encode_text
    from t2i.diffusion.testing import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    student = make_student(pipe.unet)
    cond = encode_text(pipe.tokenizer, pipe.text_encoder, ["a red circle", "a blue square"], "cpu")
    uncond = encode_text(pipe.tokenizer, pipe.text_encoder, ["", ""], "cpu")
    z0 = torch.randn(2, pipe.unet.config.in_channels, 4, 4)
    print(distill_loss(student, pipe.unet, pipe.scheduler, z0, cond, uncond, (1.0, 8.0), torch.Generator().manual_seed(0)))


if __name__ == "__main__":
    demo()
