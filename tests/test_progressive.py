"""Progressive distillation (t2i.diffusion.progressive, t2i train distill --method progressive): the student's
grid is DDIMScheduler's, Algorithm 2's target makes one diffusers DDIM step land where two of the teacher's do,
the loss vanishes for a perfect denoiser, and a 2-step run of the command writes a folder that stock diffusers
samples identically at the halved step count.

Tiny random pipelines built locally; nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from t2i.diffusion.consistency import consistency_student, teacher_prediction
from t2i.diffusion.pipeline import encode_text, make_scheduler
from t2i.diffusion.progressive import progressive_loss, student_grid, two_step_target
from t2i.diffusion.testing import ours_and_stock


def _ddim(pipe, spacing: str = "trailing") -> DDIMScheduler:
    return make_scheduler("ddim", {**pipe.scheduler.config, "timestep_spacing": spacing, "steps_offset": 1})


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_student_grid_is_ddims_and_uneven_halves_are_refused(teacher, spacing):
    ddim = _ddim(teacher, spacing)
    grid, step = student_grid(ddim, 6)
    reference = copy.deepcopy(ddim)
    reference.set_timesteps(6)
    assert grid.tolist() == reference.timesteps.tolist() and step == 1000 // 6
    with pytest.raises(ValueError, match="twice"):
        student_grid(ddim, 3)  # 1000 // 3 = 333 is not 2 x (1000 // 6 = 166)


def test_target_makes_one_diffusers_ddim_step_land_on_the_teachers_two(teacher):
    ddim = _ddim(teacher)
    unet = consistency_student(teacher.unet, 16).eval()  # a guidance-distilled teacher: one pass per step
    with torch.no_grad():  # a non-zero guidance input, so the guidance scale matters
        torch.nn.init.normal_(unet.time_embedding.cond_proj.weight, std=0.02)
    cond = encode_text(teacher.tokenizer, teacher.text_encoder, ["a red circle"], "cpu")
    uncond = encode_text(teacher.tokenizer, teacher.text_encoder, [""], "cpu")
    g = torch.tensor([4.0])
    grid, step = student_grid(ddim, 6)
    for t in (grid[0], grid[2], grid[-1]):  # the top, the middle and the last step to t = 0
        t = t.view(1)
        zt = torch.randn(1, unet.config.in_channels, 4, 4, generator=torch.Generator().manual_seed(int(t)))
        x_target = two_step_target(unet, ddim, zt, t, step, cond, uncond, g)
        fine, coarse = copy.deepcopy(ddim), copy.deepcopy(ddim)
        fine.set_timesteps(12)
        coarse.set_timesteps(6)
        z = zt
        for tt in (t, t - step // 2):  # the teacher's two steps, by diffusers' DDIMScheduler
            z = fine.step(teacher_prediction(unet, z, tt, cond, uncond, g), int(tt), z).prev_sample
        a = coarse.alphas_cumprod[int(t)]
        eps_student = (zt - a.sqrt() * x_target) / (1 - a).sqrt()  # the epsilon output whose x0 is the target
        landed = coarse.step(eps_student, int(t), zt).prev_sample
        torch.testing.assert_close(landed, z, atol=2e-5, rtol=1e-4)


class _PerfectDenoiser(torch.nn.Module):
    """The exact epsilon of a one-point data distribution ``x0``: DDIM is exact on it, at any step count."""

    def __init__(self, x0: torch.Tensor, alphas: torch.Tensor, offset: float = 0.0):
        super().__init__()
        self.x0, self.alphas, self.offset = x0, alphas, offset
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.config = SimpleNamespace(time_cond_proj_dim=8)

    def forward(self, z, t, encoder_hidden_states=None, timestep_cond=None):
        a = self.alphas[t].view(-1, 1, 1, 1)
        return SimpleNamespace(sample=self.scale * (z - a.sqrt() * self.x0) / (1 - a).sqrt() + self.offset)


def test_loss_is_zero_for_a_perfect_denoiser_and_positive_otherwise(teacher):
    ddim = _ddim(teacher)
    x0 = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    perfect = _PerfectDenoiser(x0, ddim.alphas_cumprod)
    z0 = x0.expand(8, -1, -1, -1).clone()
    cond = uncond = torch.zeros(8, 3, 8)
    loss = progressive_loss(perfect, perfect, ddim, z0, cond, uncond, (2.0, 8.0), student_grid(ddim, 6),
                            torch.Generator().manual_seed(1))
    assert loss.shape == (8,) and loss.max() < 1e-8
    wrong = _PerfectDenoiser(x0, ddim.alphas_cumprod, offset=0.1)
    loss = progressive_loss(wrong, perfect, ddim, z0, cond, uncond, (2.0, 8.0), student_grid(ddim, 6),
                            torch.Generator().manual_seed(1))
    assert loss.min() > 1e-4
    loss.mean().backward()  # the gradient reaches the student
    assert wrong.scale.grad is not None and perfect.scale.grad is None


def test_progressive_command_writes_a_ddim_folder_stock_diffusers_samples_identically(teacher, tmp_path):
    from gan_baselines.registry import load_generator
    from train.cli import main as cli

    teacher.save_pretrained(tmp_path / "teacher")
    common = ["train", "distill", "--teacher", str(tmp_path / "teacher"), "--size", "16", "--n", "32",
              "--batch-size", "8", "--checkpoint-every", "0", "--steps", "2"]
    assert cli(common + ["--out", str(tmp_path / "fast")]) == 0  # a guidance-distilled teacher at 8 DDIM steps
    # refused before any work: a step count whose DDIM step is not two of the teacher's, a non-DDIM sampler
    progressive = ["--teacher", str(tmp_path / "fast"), "--method", "progressive"]
    assert cli(common + progressive + ["--sample-steps", "3", "--out", str(tmp_path / "bad")]) == 2
    assert cli(common + progressive + ["--sampler", "euler", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "half"
    assert cli(common + progressive + ["--guidance", "4", "--out", str(out)]) == 0
    record = json.loads((out / "t2i_distill.json").read_text())
    assert record["method"].startswith("progressive") and (record["teacher_ddim_steps"], record["ddim_steps"]) == (8, 4)
    gen = load_generator(out)
    assert (gen.options.sampler, gen.options.num_inference_steps, gen.options.guidance_scale) == ("ddim", 4, 4.0)
    np.testing.assert_array_equal(*ours_and_stock(out, "a red circle", seed=3))
