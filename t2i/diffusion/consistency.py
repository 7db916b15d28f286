"""Latent consistency distillation: a few sampling steps instead of a dozen.

A consistency model ``f(x_t, t)`` maps every point of a probability-flow trajectory to the
trajectory's start ``x_0`` (Song et al., ICML 2023), so one evaluation denoises and a few,
with fresh noise in between, refine. Latent consistency distillation (Luo et al. 2023, "Latent
Consistency Models", Algorithm 1) learns it from a guided teacher in latent space:

- timesteps lie on a grid of ``N`` solver steps (diffusers' ``LCMScheduler``: ``N`` =
  ``original_inference_steps`` = 50, so ``t_n = 20 n - 1``); one skipped step of the teacher's
  DDIM solver (Song et al. 2021, Eq. 12) goes from ``x_{t_{n+1}}`` to ``x_{t_n}`` under the
  guided prediction ``eps_u + g (eps_c - eps_u)`` (LCM Eq. 9, their ``w`` = our ``g - 1``);
- ``f(x, t) = c_skip(t) x + c_out(t) x0_hat(x, t)`` with the boundary scalings of LCM Eq. 4
  (``c_skip(0) = 1``, ``c_out(0) = 0``; ``sigma_data`` = 0.5, timesteps x ``timestep_scaling``),
  the same formulas ``LCMScheduler.step`` samples with;
- the loss is the pseudo-Huber distance (Song & Dhariwal 2023, Sec. 3.3) between the online
  student at ``x_{t_{n+1}}`` and the target network (an EMA of the student) at the solver's
  ``x_{t_n}``.

The student reads ``g`` through ``time_cond_proj_dim`` (``t2i.diffusion.distill.guidance_embedding``).
A guidance-distilled teacher (one pass per step already) is its own initial student and gives the
guided prediction in one pass; a classifier-free-guidance teacher gets a zero-initialised guidance
input (``make_student``) and runs its two passes.

    HF_HUB_OFFLINE=1 python -m t2i.diffusion.consistency   # a tiny random teacher: the loss of one batch
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from t2i.diffusion.distill import guidance_embedding, guided_prediction, is_guidance_distilled, make_student

SIGMA_DATA = 0.5  # the data scale of the boundary scalings (LCMScheduler's, Song et al. 2023)


def consistency_student(teacher: Any, embed_dim: int) -> Any:
    """The initial student: a copy of a guidance-distilled teacher, else the teacher plus a zero guidance input."""
    return copy.deepcopy(teacher) if is_guidance_distilled(teacher) else make_student(teacher, embed_dim)


def boundary_scalings(t: torch.Tensor, timestep_scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c_skip, c_out)`` of LCM Eq. 4 at timesteps ``t`` ``(B,)``, each ``(B, 1, 1, 1)``; as ``LCMScheduler``."""
    s = t.double() * timestep_scaling
    c_skip = SIGMA_DATA ** 2 / (s ** 2 + SIGMA_DATA ** 2)
    c_out = s / (s ** 2 + SIGMA_DATA ** 2).sqrt()
    return c_skip.float().view(-1, 1, 1, 1), c_out.float().view(-1, 1, 1, 1)


def x0_and_eps(pred: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor,
               prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean-latent and noise estimates from a model output at ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps``.

    ``alpha_bar``: ``(B, 1, 1, 1)``. epsilon: Ho et al. 2020, Eq. 15; v: Salimans & Ho 2022, Sec. 4
    (``x_0 = sqrt(a) x_t - sqrt(1 - a) v``, ``eps = sqrt(1 - a) x_t + sqrt(a) v``).
    """
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if prediction_type == "epsilon":
        return (x_t - s * pred) / a, pred
    if prediction_type == "v_prediction":
        return a * x_t - s * pred, s * x_t + a * pred
    raise ValueError(f"consistency distillation needs an epsilon or v_prediction teacher, got {prediction_type!r}")


def ddim_step(x0: torch.Tensor, eps: torch.Tensor, alpha_bar_prev: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, Eq. 12, eta = 0): ``sqrt(a') x0 + sqrt(1 - a') eps``."""
    return alpha_bar_prev.sqrt() * x0 + (1 - alpha_bar_prev).sqrt() * eps


def solver_grid(num_train_timesteps: int, solver_steps: int) -> torch.Tensor:
    """The teacher solver's timesteps ``t_n = n k - 1`` (``k = T / N``, n = 1..N), as ``LCMScheduler`` samples them."""
    k = num_train_timesteps // solver_steps
    return torch.arange(1, solver_steps + 1) * k - 1  # (N,)


@torch.no_grad()
def teacher_prediction(teacher: Any, zt: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                       guidance_scale: torch.Tensor) -> torch.Tensor:
    """The teacher's guided output at ``g``: one pass of a guidance-distilled teacher, else the two-pass formula."""
    if not is_guidance_distilled(teacher):
        return guided_prediction(teacher, zt, t, cond, uncond, guidance_scale)
    embed = guidance_embedding(guidance_scale, teacher.config.time_cond_proj_dim).to(zt.device, zt.dtype)
    return teacher(zt, t, encoder_hidden_states=cond, timestep_cond=embed).sample.float()


def consistency_loss(student: Any, target: Any, teacher: Any, scheduler: Any, z0: torch.Tensor, cond: torch.Tensor,
                     uncond: torch.Tensor, guidance_range: tuple[float, float], solver_steps: int,
                     timestep_scaling: float, huber_c: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample latent consistency distillation loss ``(B,)`` (Luo et al. 2023, Algorithm 1).

    ``z0``: data latents ``(B, C, h, w)``; ``cond``/``uncond``: text states ``(B, T, D)``; ``scheduler``:
    the training noise schedule; ``target``: the EMA of ``student`` (no gradient). Timestep indices,
    noise and guidance scales come from ``generator`` (a CPU generator: reproducible and resumable).
    """
    b, device = z0.shape[0], z0.device
    prediction_type = scheduler.config.prediction_type
    alphas = scheduler.alphas_cumprod.to(device)  # (T,)
    grid = solver_grid(scheduler.config.num_train_timesteps, solver_steps)
    n = torch.randint(0, solver_steps, (b,), generator=generator)
    t_start = grid[n].to(device)  # t_{n+1}, (B,)
    t_prev = (t_start - (grid[0] + 1)).clamp(min=0)  # t_n (0 below the grid: the boundary, c_skip = 1)
    a_start = alphas[t_start].view(-1, 1, 1, 1)
    a_prev = alphas[t_prev].view(-1, 1, 1, 1)
    lo, hi = guidance_range
    g = (lo + (hi - lo) * torch.rand(b, generator=generator)).to(device)  # (B,)
    eps = torch.randn(z0.shape, generator=generator).to(device, z0.dtype)
    zt = scheduler.add_noise(z0, eps, t_start)  # x_{t_{n+1}}
    embed = guidance_embedding(g, student.config.time_cond_proj_dim).to(device, z0.dtype)

    # online student: f(x_{t_{n+1}}, t_{n+1}) with the boundary scalings
    c_skip, c_out = boundary_scalings(t_start, timestep_scaling)
    out = student(zt, t_start, encoder_hidden_states=cond, timestep_cond=embed).sample.float()
    pred = c_skip * zt + c_out * x0_and_eps(out, zt, a_start, prediction_type)[0]

    with torch.no_grad():  # one DDIM step of the guided teacher, then the target network at x_{t_n}
        x0_teacher, eps_teacher = x0_and_eps(teacher_prediction(teacher, zt, t_start, cond, uncond, g), zt, a_start,
                                             prediction_type)
        x_prev = ddim_step(x0_teacher, eps_teacher, a_prev)
        out_target = target(x_prev.to(z0.dtype), t_prev, encoder_hidden_states=cond, timestep_cond=embed).sample.float()
        c_skip_prev, c_out_prev = boundary_scalings(t_prev, timestep_scaling)
        goal = c_skip_prev * x_prev + c_out_prev * x0_and_eps(out_target, x_prev, a_prev, prediction_type)[0]
    pseudo_huber = ((pred - goal).pow(2) + huber_c ** 2).sqrt() - huber_c
    return pseudo_huber.mean(dim=(1, 2, 3))


def demo() -> None:
    from t2i.diffusion.pipeline import encode_text, make_scheduler
    from t2i.diffusion.testing import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    student = consistency_student(pipe.unet, 16)
    target = copy.deepcopy(student).requires_grad_(False)
    lcm = make_scheduler("lcm", pipe.scheduler.config)
    cond = encode_text(pipe.tokenizer, pipe.text_encoder, ["a red circle", "a blue square"], "cpu")
    uncond = encode_text(pipe.tokenizer, pipe.text_encoder, ["", ""], "cpu")
    z0 = torch.randn(2, pipe.unet.config.in_channels, 4, 4)
    print(consistency_loss(student, target, pipe.unet, pipe.scheduler, z0, cond, uncond, (2.0, 8.0),
                           lcm.config.original_inference_steps, lcm.config.timestep_scaling, 1e-3,
                           torch.Generator().manual_seed(0)))


if __name__ == "__main__":
    demo()
