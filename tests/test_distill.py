"""Guidance distillation (t2i.diffusion.distill, t2i train distill): the student's input, its loss,
one pass per step, stock diffusers on a distilled folder, and a 2-step run of the command.

Tiny random pipelines built locally; nothing is downloaded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from t2i.diffusion.distill import distill_loss, guidance_embedding, guided_prediction, is_guidance_distilled, make_student
from t2i.diffusion.pipeline import LatentDiffusionPipeline, encode_text
from t2i.diffusion.testing import ours_and_stock


def test_guidance_embedding_is_what_stock_diffusers_feeds_the_unet():
    scales = torch.tensor([1.0, 2.5, 5.0, 8.0])
    for dim in (256, 7):
        expected = StableDiffusionPipeline.get_guidance_scale_embedding(None, scales - 1, embedding_dim=dim)
        torch.testing.assert_close(guidance_embedding(scales, dim), expected)


def test_untrained_student_is_the_teachers_conditional_model(teacher):
    student = make_student(teacher.unet)
    assert is_guidance_distilled(student) and not is_guidance_distilled(teacher.unet)
    x = torch.randn(2, teacher.unet.config.in_channels, 4, 4)
    t = torch.tensor([10, 700])
    cond = encode_text(teacher.tokenizer, teacher.text_encoder, ["a red circle", "a blue square"], "cpu")
    with torch.no_grad():
        expected = teacher.unet(x, t, encoder_hidden_states=cond).sample
        got = student(x, t, encoder_hidden_states=cond, timestep_cond=guidance_embedding(torch.tensor([3.0, 7.0]), 256)).sample
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="already reads the guidance"):
        make_student(student)


def test_loss_is_the_mse_to_the_guided_teacher_by_hand(teacher):
    student = make_student(teacher.unet)
    torch.nn.init.normal_(student.time_embedding.cond_proj.weight, std=0.02)  # a student that differs from the teacher
    cond = encode_text(teacher.tokenizer, teacher.text_encoder, ["a red circle", "a blue square"], "cpu")
    uncond = encode_text(teacher.tokenizer, teacher.text_encoder, ["", ""], "cpu")
    z0 = torch.randn(2, teacher.unet.config.in_channels, 4, 4)
    loss = distill_loss(student, teacher.unet, teacher.scheduler, z0, cond, uncond, (2.0, 6.0),
                        torch.Generator().manual_seed(5))
    # the same draws by hand: noise, timesteps, then guidance scales
    gen = torch.Generator().manual_seed(5)
    eps = torch.randn(z0.shape, generator=gen)
    t = torch.randint(0, 1000, (2,), generator=gen)
    g = 2.0 + 4.0 * torch.rand(2, generator=gen)
    abar = teacher.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    zt = abar.sqrt() * z0 + (1 - abar).sqrt() * eps
    with torch.no_grad():
        e_c = teacher.unet(zt, t, encoder_hidden_states=cond).sample
        e_u = teacher.unet(zt, t, encoder_hidden_states=uncond).sample
        target = e_u + g.view(-1, 1, 1, 1) * (e_c - e_u)
        pred = student(zt, t, encoder_hidden_states=cond, timestep_cond=guidance_embedding(g, 256)).sample
    expected = (pred - target).pow(2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(loss.detach(), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(guided_prediction(teacher.unet, zt, t, cond, uncond, g), target, atol=1e-5, rtol=1e-4)


def count_unet_rows(pipe, **kwargs) -> list[int]:
    rows = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    try:
        pipe("a red circle", seed=0, num_inference_steps=3, output_type="np", **kwargs)
    finally:
        handle.remove()
    return rows


def test_distilled_unet_takes_one_pass_per_step_and_two_with_a_negative_prompt(teacher):
    distilled = LatentDiffusionPipeline(teacher.vae, teacher.text_encoder, teacher.tokenizer, make_student(teacher.unet),
                                        teacher.scheduler)
    distilled.set_progress_bar_config(disable=True)
    assert count_unet_rows(teacher, guidance_scale=5.0) == [2, 2, 2]  # classifier-free guidance: two rows per image
    assert count_unet_rows(distilled, guidance_scale=5.0) == [1, 1, 1]
    assert count_unet_rows(distilled, guidance_scale=5.0, negative_prompt="a blue square") == [2, 2, 2]


@pytest.mark.slow
def test_distill_command_writes_a_folder_stock_diffusers_samples_identically(teacher, tmp_path):
    from gan_baselines.registry import load_generator
    from train.cli import main as cli

    teacher.save_pretrained(tmp_path / "teacher")
    out = tmp_path / "student"
    assert cli(["train", "distill", "--teacher", str(tmp_path / "teacher"), "--size", "16", "--n", "32", "--steps", "2",
                "--batch-size", "8", "--sample-steps", "2", "--guidance", "4", "--checkpoint-every", "0",
                "--out", str(out)]) == 0
    assert json.loads((out / "unet" / "config.json").read_text())["time_cond_proj_dim"] == 256
    assert json.loads((out / "t2i_distill.json").read_text())["guidance_range"] == [1.0, 8.0]
    assert (out / "teacher.png").is_file() and list((out / "samples").glob("*.png"))
    gen = load_generator(out)
    assert gen.options.num_inference_steps == 2 and gen.options.guidance_scale == 4.0
    np.testing.assert_array_equal(*ours_and_stock(out, "a red circle", seed=3))
    # a guidance outside the distilled range is refused before any work
    assert cli(["train", "distill", "--teacher", str(tmp_path / "teacher"), "--guidance", "9", "--out",
                str(tmp_path / "bad")]) == 2


@pytest.mark.slow
def test_distill_with_a_cache_dir_learns_what_the_memory_cache_learns(teacher, tmp_path, capsys):
    """--cache-dir keeps distillation's latents and text states on disk: the same student, bit for bit."""
    from diffusers import UNet2DConditionModel

    from train.cli import main as cli

    teacher.save_pretrained(tmp_path / "teacher")
    common = ["train", "distill", "--teacher", str(tmp_path / "teacher"), "--size", "16", "--n", "32", "--steps", "2",
              "--batch-size", "8", "--sample-steps", "2", "--guidance", "4", "--checkpoint-every", "0"]
    assert cli([*common, "--out", str(tmp_path / "memory")]) == 0
    assert cli([*common, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "disk")]) == 0
    assert cli([*common, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "again")]) == 0
    assert "latent cache: reusing" in capsys.readouterr().out
    memory = UNet2DConditionModel.from_pretrained(tmp_path / "memory" / "unet").state_dict()
    for run in ("disk", "again"):
        student = UNet2DConditionModel.from_pretrained(tmp_path / run / "unet").state_dict()
        assert all(torch.equal(student[k], memory[k]) for k in memory), run


def test_distill_partial_captions_are_what_the_student_is_taught_on_and_are_refused_off_shapes(teacher, tmp_path,
                                                                                              capsys, monkeypatch):
    """--partial-captions distils on the teacher's caption distribution (one-object scenes captioned with a word
    left out): with P = 1 every caption the loss sees is a partial one, with 0 none is; non-shapes data is
    refused in one line."""
    import train.distill
    from train.cli import main as cli

    seen: dict[str, list] = {"cached": [], "ids": []}
    build_caches, distill_loss = train.distill.build_caches, train.distill.distill_loss

    def marked_build_caches(*args, **kwargs):  # row i of the text states holds the number i: a cond row names its caption
        cached, table = build_caches(*args, **kwargs)
        seen["cached"].append(cached)
        return cached, torch.arange(len(table), dtype=table.dtype)[:, None, None].expand_as(table).clone()

    def recording_loss(student, teacher_unet, scheduler, z0, cond, *args, **kwargs):
        seen["ids"] += cond[:, 0, 0].long().tolist()
        return distill_loss(student, teacher_unet, scheduler, z0, cond, *args, **kwargs)

    monkeypatch.setattr(train.distill, "build_caches", marked_build_caches)
    monkeypatch.setattr(train.distill, "distill_loss", recording_loss)
    teacher.save_pretrained(tmp_path / "teacher")
    common = ["train", "distill", "--teacher", str(tmp_path / "teacher"), "--size", "16", "--n", "32", "--steps", "2",
              "--batch-size", "8", "--sample-steps", "2", "--guidance", "4", "--checkpoint-every", "0", "--p-two", "0"]
    for p in ("0", "1"):
        seen["ids"].clear()
        assert cli([*common, "--partial-captions", p, "--out", str(tmp_path / f"p{p}")]) == 0
        cached = seen["cached"][-1]
        full = set(cached.text_ids.tolist())  # each scene's own caption
        assert len(seen["ids"]) == 16
        if p == "0":
            assert cached.partial_ids is None and set(seen["ids"]) <= full
        else:
            partial = set(cached.partial_ids[cached.partial_ids >= 0].tolist())
            assert partial and not partial & full and set(seen["ids"]) <= partial
    assert "partial captions: 32 one-object scenes" in capsys.readouterr().out
    seen["ids"].clear()  # --reworded-captions 1: every caption the loss sees is a rewording of the scene's
    assert cli([*common, "--reworded-captions", "1", "--out", str(tmp_path / "reworded")]) == 0
    cached = seen["cached"][-1]
    reworded = set(cached.reworded_ids[cached.reworded_ids >= 0].tolist())
    assert reworded and not reworded & set(cached.text_ids.tolist()) and set(seen["ids"]) <= reworded
    assert f"reworded captions: {len(reworded)} captions" in capsys.readouterr().out  # distinct ones added
    for flag in ("--partial-captions", "--reworded-captions"):
        assert cli(["train", "distill", "--teacher", str(tmp_path / "teacher"), "--data", "digits",
                    flag, "0.5", "--out", str(tmp_path / "bad")]) == 2
        assert f"{flag} writes captions from shapes' scene labels: it is a shapes option" in capsys.readouterr().err
