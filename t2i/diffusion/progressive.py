"""Progressive distillation: one DDIM step of the student for two of its teacher.

Salimans & Ho 2022 ("Progressive Distillation for Fast Sampling of Diffusion Models",
Algorithm 2), applied to a guidance-distilled model as Meng et al. 2023 do in their stage two:

- the student samples with diffusers' ``DDIMScheduler`` at ``N`` steps; it is trained at exactly
  those timesteps ``t`` (the scheduler's own grid for ``N``), where one DDIM step goes from ``t`` to
  ``t - T/N``; the teacher takes two DDIM steps of ``T/(2N)`` over the same interval, under the
  guided prediction at ``g`` (one pass of a guidance-distilled teacher);
- the student's target is the clean latent ``x~`` that makes its single DDIM step land where the
  teacher's two did (Algorithm 2): ``x~ = (z'' - (s''/s) z) / (a'' - (s''/s) a)`` with
  ``a = sqrt(alpha_bar)``, ``s = sqrt(1 - alpha_bar)`` at ``t`` and at ``t'' = t - T/N``;
- the loss is the squared error on ``x0`` weighted by the truncated SNR ``max(a^2 / s^2, 1)``
  (Salimans & Ho, Sec. 4), the student's output kept in its own parameterisation.

So a student of a 12-step teacher samples in 6 steps. Halving again needs ``T // N`` to be twice
``T // 2N`` (``student_grid`` refuses the rest): with ``T`` = 1000, 6 -> 3 and 16 -> 8 are refused, 10 -> 5 works.

    HF_HUB_OFFLINE=1 python -m t2i.diffusion.progressive   # a tiny random teacher: the loss of one batch
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from t2i.diffusion.consistency import ddim_step, teacher_prediction, x0_and_eps
from t2i.diffusion.distill import guidance_embedding


def student_grid(ddim: Any, steps: int) -> tuple[torch.Tensor, int]:
    """The timesteps ``DDIMScheduler`` samples at ``steps`` steps ``(N,)`` and its step ``T // N``.

    Refuses a step count whose DDIM step is not twice the teacher's (the two halves would not meet)."""
    num_train = ddim.config.num_train_timesteps
    if steps < 1 or num_train // steps != 2 * (num_train // (2 * steps)):
        raise ValueError(f"progressive distillation to {steps} DDIM steps needs {num_train} // {steps} to be twice "
                         f"{num_train} // {2 * steps} (the teacher's step): choose another number of steps")
    scheduler = copy.deepcopy(ddim)
    scheduler.set_timesteps(steps)
    return scheduler.timesteps.clone(), num_train // steps


def _alpha_bar(ddim: Any, t: torch.Tensor) -> torch.Tensor:
    """``alpha_bar`` at timesteps ``t`` ``(B,)`` as ``DDIMScheduler.step`` reads it: ``final_alpha_cumprod`` below 0."""
    alphas = ddim.alphas_cumprod.to(t.device)
    final = torch.as_tensor(ddim.final_alpha_cumprod, dtype=alphas.dtype, device=t.device)
    return torch.where(t >= 0, alphas[t.clamp(min=0)], final).view(-1, 1, 1, 1)


@torch.no_grad()
def two_step_target(teacher: Any, ddim: Any, zt: torch.Tensor, t: torch.Tensor, step: int, cond: torch.Tensor,
                    uncond: torch.Tensor, guidance_scale: torch.Tensor) -> torch.Tensor:
    """Algorithm 2's ``x~`` ``(B, C, h, w)``: the clean latent whose DDIM step from ``(zt, t)`` to ``t - step``
    lands where the guided teacher's two DDIM steps of ``step / 2`` do."""
    prediction_type = ddim.config.prediction_type
    t_mid, t_end = t - step // 2, t - step
    a_t, a_mid, a_end = _alpha_bar(ddim, t), _alpha_bar(ddim, t_mid), _alpha_bar(ddim, t_end)
    out = teacher_prediction(teacher, zt, t, cond, uncond, guidance_scale)
    z_mid = ddim_step(*x0_and_eps(out, zt, a_t, prediction_type), a_mid)
    # below t = 0 both halves end at final_alpha_cumprod, where a DDIM step returns its input whatever the
    # prediction: the clamp only keeps the (unused) evaluation on the grid
    out_mid = teacher_prediction(teacher, z_mid.to(zt.dtype), t_mid.clamp(min=0), cond, uncond, guidance_scale)
    z_end = ddim_step(*x0_and_eps(out_mid, z_mid, a_mid, prediction_type), a_end)
    ratio = ((1 - a_end) / (1 - a_t)).sqrt()  # s''/s
    return (z_end - ratio * zt) / (a_end.sqrt() - ratio * a_t.sqrt())


def progressive_loss(student: Any, teacher: Any, ddim: Any, z0: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                     guidance_range: tuple[float, float], grid: tuple[torch.Tensor, int],
                     generator: torch.Generator) -> torch.Tensor:
    """Per-sample progressive distillation loss ``(B,)`` for a student sampled on ``grid`` (``student_grid``'s
    timesteps and step, built once per run).

    ``z0``: data latents ``(B, C, h, w)``; ``cond``/``uncond``: text states ``(B, T, D)``; ``ddim``: a
    ``DDIMScheduler`` on the training noise schedule. Grid points, noise and guidance scales come from
    ``generator`` (a CPU generator: reproducible and resumable)."""
    b, device = z0.shape[0], z0.device
    prediction_type = ddim.config.prediction_type
    grid, step = grid
    t = grid[torch.randint(0, len(grid), (b,), generator=generator)].to(device)  # (B,)
    a_t = _alpha_bar(ddim, t)
    lo, hi = guidance_range
    g = (lo + (hi - lo) * torch.rand(b, generator=generator)).to(device)  # (B,)
    eps = torch.randn(z0.shape, generator=generator).to(device, z0.dtype)
    zt = ddim.add_noise(z0, eps, t)

    x0_target = two_step_target(teacher, ddim, zt, t, step, cond, uncond, g)
    embed = guidance_embedding(g, student.config.time_cond_proj_dim).to(device, z0.dtype)
    out = student(zt, t, encoder_hidden_states=cond, timestep_cond=embed).sample.float()
    x0_student = x0_and_eps(out, zt, a_t, prediction_type)[0]
    weight = (a_t / (1 - a_t)).clamp(min=1.0).view(-1)  # truncated SNR, (B,)
    return weight * (x0_student - x0_target).pow(2).mean(dim=(1, 2, 3))


def demo() -> None:
    from t2i.diffusion.consistency import consistency_student
    from t2i.diffusion.pipeline import encode_text, make_scheduler
    from t2i.diffusion.testing import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    student = consistency_student(pipe.unet, 16)
    ddim = make_scheduler("ddim", pipe.scheduler.config)
    cond = encode_text(pipe.tokenizer, pipe.text_encoder, ["a red circle", "a blue square"], "cpu")
    uncond = encode_text(pipe.tokenizer, pipe.text_encoder, ["", ""], "cpu")
    z0 = torch.randn(2, pipe.unet.config.in_channels, 4, 4)
    print(progressive_loss(student, pipe.unet, ddim, z0, cond, uncond, (2.0, 8.0), student_grid(ddim, 6),
                           torch.Generator().manual_seed(0)))


if __name__ == "__main__":
    demo()
