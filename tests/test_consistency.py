"""Latent consistency distillation (t2i.diffusion.consistency, t2i train distill --method consistency): the
solver grid and boundary scalings are LCMScheduler's, the loss by hand, gradients reach only the online
student, and a 2-step run of the command writes a folder stock diffusers samples identically.

Tiny random pipelines built locally; nothing is downloaded.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from diffusers import LCMScheduler

from t2i.diffusion.consistency import (boundary_scalings, consistency_loss, consistency_student, solver_grid,
                                       teacher_prediction, x0_and_eps)
from t2i.diffusion.distill import guidance_embedding, make_student
from t2i.diffusion.pipeline import LatentDiffusionPipeline, encode_text, make_scheduler
from t2i.diffusion.testing import ours_and_stock


def test_solver_grid_and_boundary_scalings_are_the_lcm_schedulers(teacher):
    lcm = make_scheduler("lcm", teacher.scheduler.config)
    assert isinstance(lcm, LCMScheduler)
    n = lcm.config.original_inference_steps
    lcm.set_timesteps(n)
    grid = solver_grid(lcm.config.num_train_timesteps, n)
    assert grid.tolist() == sorted(lcm.timesteps.tolist()) and grid[0] == 19 and grid[-1] == 999
    t = torch.tensor([0, 19, 259, 999])
    c_skip, c_out = boundary_scalings(t, lcm.config.timestep_scaling)
    for i, step in enumerate(t.tolist()):
        expected = lcm.get_scalings_for_boundary_condition_discrete(step)
        assert c_skip[i].item() == pytest.approx(expected[0], rel=1e-5, abs=1e-12)
        assert c_out[i].item() == pytest.approx(expected[1], rel=1e-5, abs=1e-12)
    assert c_skip[0].item() == 1.0 and c_out[0].item() == 0.0  # the boundary: f(x, 0) = x


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_x0_and_eps_invert_the_forward_process(prediction_type):
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 2, 2, generator=gen), torch.randn(3, 4, 2, 2, generator=gen)
    a = torch.tensor([0.9, 0.5, 0.01]).view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    pred = eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0  # v, Salimans & Ho 2022
    got_x0, got_eps = x0_and_eps(pred, x_t, a, prediction_type)
    torch.testing.assert_close(got_x0, x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_eps, eps, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="epsilon or v_prediction"):
        x0_and_eps(pred, x_t, a, "sample")


def texts(teacher):
    cond = encode_text(teacher.tokenizer, teacher.text_encoder, ["a red circle", "a blue square"], "cpu")
    uncond = encode_text(teacher.tokenizer, teacher.text_encoder, ["", ""], "cpu")
    return cond, uncond


@pytest.mark.parametrize("guidance_distilled_teacher", [True, False])
def test_loss_is_the_pseudo_huber_distance_to_the_target_after_one_teacher_ddim_step(teacher, guidance_distilled_teacher):
    cond, uncond = texts(teacher)
    if guidance_distilled_teacher:  # its own initial student; one pass gives the guided prediction
        teacher_unet = make_student(teacher.unet)
        torch.nn.init.normal_(teacher_unet.time_embedding.cond_proj.weight, std=0.02)
    else:
        teacher_unet = teacher.unet
    student = consistency_student(teacher_unet, 256)
    target = copy.deepcopy(student).requires_grad_(False)
    torch.nn.init.normal_(target.time_embedding.cond_proj.weight, std=0.05)  # a target that differs from the student
    z0 = torch.randn(2, teacher.unet.config.in_channels, 4, 4)
    sched = teacher.scheduler
    loss = consistency_loss(student, target, teacher_unet, sched, z0, cond, uncond, (2.0, 6.0), 50, 10.0, 1e-3,
                            torch.Generator().manual_seed(4))
    # the same draws by hand: solver indices, guidance scales, then noise
    gen = torch.Generator().manual_seed(4)
    n = torch.randint(0, 50, (2,), generator=gen)
    g = 2.0 + 4.0 * torch.rand(2, generator=gen)
    eps = torch.randn(z0.shape, generator=gen)
    t, s = 20 * (n + 1) - 1, (20 * n - 1).clamp(min=0)
    a_t, a_s = sched.alphas_cumprod[t].view(-1, 1, 1, 1), sched.alphas_cumprod[s].view(-1, 1, 1, 1)
    x_t = a_t.sqrt() * z0 + (1 - a_t).sqrt() * eps
    emb = guidance_embedding(g, 256)
    with torch.no_grad():
        if guidance_distilled_teacher:
            e = teacher_unet(x_t, t, encoder_hidden_states=cond, timestep_cond=emb).sample
        else:
            e_c = teacher.unet(x_t, t, encoder_hidden_states=cond).sample
            e_u = teacher.unet(x_t, t, encoder_hidden_states=uncond).sample
            e = e_u + g.view(-1, 1, 1, 1) * (e_c - e_u)
        torch.testing.assert_close(teacher_prediction(teacher_unet, x_t, t, cond, uncond, g), e, atol=1e-5, rtol=1e-4)
        x0_teacher = (x_t - (1 - a_t).sqrt() * e) / a_t.sqrt()
        x_s = a_s.sqrt() * x0_teacher + (1 - a_s).sqrt() * e  # DDIM, eta = 0
        lcm = LCMScheduler()  # its own formulas for f(x, t) = c_skip x + c_out x0
        scal = [lcm.get_scalings_for_boundary_condition_discrete(int(v)) for v in t]
        scal_s = [lcm.get_scalings_for_boundary_condition_discrete(int(v)) for v in s]
        e_student = student(x_t, t, encoder_hidden_states=cond, timestep_cond=emb).sample
        e_target = target(x_s, s, encoder_hidden_states=cond, timestep_cond=emb).sample
        expected = []
        for i in range(2):
            pred = scal[i][0] * x_t[i] + scal[i][1] * (x_t[i] - (1 - a_t[i]).sqrt() * e_student[i]) / a_t[i].sqrt()
            goal = scal_s[i][0] * x_s[i] + scal_s[i][1] * (x_s[i] - (1 - a_s[i]).sqrt() * e_target[i]) / a_s[i].sqrt()
            expected.append((((pred - goal) ** 2 + 1e-6).sqrt() - 1e-3).mean())
    torch.testing.assert_close(loss.detach(), torch.stack(expected), atol=1e-5, rtol=1e-3)
    loss.mean().backward()  # the online student learns; the target and the teacher are constants
    assert student.conv_in.weight.grad is not None and student.conv_in.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in target.parameters()) and all(p.grad is None for p in teacher_unet.parameters())


@pytest.mark.slow
def test_consistency_command_writes_an_lcm_folder_stock_diffusers_samples_identically(teacher, tmp_path):
    from gan_baselines.registry import load_generator
    from train.cli import main as cli

    teacher.save_pretrained(tmp_path / "teacher")
    out = tmp_path / "lcm"
    common = ["train", "distill", "--teacher", str(tmp_path / "teacher"), "--size", "16", "--n", "32",
              "--batch-size", "8", "--checkpoint-every", "0", "--method", "consistency"]
    # the target network is the EMA: refused without one, as is a solver for a consistency model, before any work
    assert cli(common + ["--steps", "2", "--out", str(tmp_path / "bad")]) == 2
    assert cli(common + ["--ema-decay", "0.95", "--sampler", "ddim", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    assert cli(common + ["--steps", "2", "--ema-decay", "0.95", "--guidance", "4", "--out", str(out)]) == 0
    assert json.loads((out / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == "LCMScheduler"
    assert json.loads((out / "t2i_distill.json").read_text())["method"].startswith("latent consistency")
    gen = load_generator(out)
    assert (gen.options.sampler, gen.options.num_inference_steps, gen.options.guidance_scale) == ("lcm", 4, 4.0)
    np.testing.assert_array_equal(*ours_and_stock(out, "a red circle", seed=3))  # LCM's noise between steps included


def test_lcm_sampler_on_a_model_not_distilled_for_it_warns(teacher):
    with pytest.warns(UserWarning, match="consistency-distilled"):
        teacher("a red circle", seed=0, num_inference_steps=2, sampler="lcm", output_type="np")
    lcm_pipe = LatentDiffusionPipeline(teacher.vae, teacher.text_encoder, teacher.tokenizer, teacher.unet,
                                       make_scheduler("lcm", teacher.scheduler.config))
    lcm_pipe.set_progress_bar_config(disable=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pipeline saved with its LCMScheduler samples it silently
        lcm_pipe("a red circle", seed=0, num_inference_steps=2, sampler="lcm", output_type="np")
