"""t2i.diffusion.bf16: a UNet step computed in a bfloat16 copy with float32 master weights (issue 19)."""

import json

import pytest
import torch

from t2i.diffusion.bf16 import BF16Compute
from t2i.diffusion.testing import make_tiny_pipeline
from train.cli import main as t2i


def _batch(unet, seed=0, batch=4):
    g = torch.Generator().manual_seed(seed)
    side, channels = unet.config.sample_size, unet.config.in_channels
    z = torch.randn(batch, channels, side, side, generator=g)
    cond = torch.randn(batch, 8, unet.config.cross_attention_dim, generator=g)
    return z, torch.randint(0, 1000, (batch,), generator=g), cond, torch.randn(z.shape, generator=g)


def _loss(model, z, t, cond, target):
    out = model(z, t, encoder_hidden_states=cond).sample
    assert out.dtype == torch.float32
    return (out - target).pow(2).mean()


def test_gradients_reach_the_float32_master_close_to_float32_ones():
    unet = make_tiny_pipeline(size=32).unet.train()
    z, t, cond, target = _batch(unet)
    _loss(unet, z, t, cond, target).backward()
    reference = [p.grad.clone() for p in unet.parameters()]
    unet.zero_grad(set_to_none=True)

    step = BF16Compute(unet)
    assert {p.dtype for n, p in step.compute.named_parameters() if ".attn" not in n} == {torch.bfloat16}
    assert {p.dtype for p in unet.parameters()} == {torch.float32}  # the master is untouched
    assert not list(step.state_dict())[0].startswith("_master")  # the master is not a submodule
    _loss(step, z, t, cond, target).backward()
    got = [p.grad for p in unet.parameters()]
    assert all(g is not None and g.dtype == torch.float32 for g in got)
    assert all(p.grad is None for p in step.compute.parameters())  # moved, not kept twice
    flat_ref, flat_got = torch.cat([g.flatten() for g in reference]), torch.cat([g.flatten() for g in got])
    cosine = torch.nn.functional.cosine_similarity(flat_ref, flat_got, dim=0)
    assert cosine > 0.999 and (flat_got - flat_ref).norm() / flat_ref.norm() < 0.05  # bfloat16's 8-bit mantissa


def test_micro_batches_add_up_and_every_step_reads_the_masters_new_weights():
    unet = make_tiny_pipeline(size=32).unet.train()
    step = BF16Compute(unet)
    z, t, cond, target = _batch(unet)
    _loss(step, z[:2], t[:2], cond[:2], target[:2]).backward()
    first = [p.grad.clone() for p in unet.parameters()]
    _loss(step, z[2:], t[2:], cond[2:], target[2:]).backward()
    unet.zero_grad(set_to_none=True)
    _loss(step, z[2:], t[2:], cond[2:], target[2:]).backward()
    second = [p.grad.clone() for p in unet.parameters()]
    unet.zero_grad(set_to_none=True)
    _loss(step, z[:2], t[:2], cond[:2], target[:2]).backward()
    _loss(step, z[2:], t[2:], cond[2:], target[2:]).backward()
    assert all(torch.allclose(p.grad, a + b) for p, a, b in zip(unet.parameters(), first, second))

    with torch.no_grad():
        unet.conv_in.weight.add_(1.0)  # what an optimiser step does to the master
    step(z, t, encoder_hidden_states=cond)
    assert torch.equal(step.compute.conv_in.weight, unet.conv_in.weight.bfloat16())


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], pytest.param(["--compile"], marks=pytest.mark.compile)])
def test_ldm_trains_and_resumes_with_bf16_weights(extra, tmp_path):
    folder = tmp_path / "sd"
    make_tiny_pipeline(size=32).save_pretrained(str(folder))
    run = ["train", "ldm", "--init", str(folder), "--data", "shapes", "--n", "16", "--batch-size", "4", "--cache",
           "--bf16-weights", *extra, "--log-every", "1", "--sample-steps", "2", "--sample-prompts", "a red circle",
           "--first-stage-check", "0", "--out", str(tmp_path / "run")]
    assert t2i([*run, "--steps", "2", "--checkpoint-every", "2"]) == 0
    assert t2i([*run, "--steps", "4", "--resume", "latest"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r][-1] == 4
    from diffusers import UNet2DConditionModel

    saved = UNet2DConditionModel.from_pretrained(str(tmp_path / "run" / "unet"))
    assert saved.dtype == torch.float32  # the master is what is saved


def test_bf16_weights_refuses_autocast_on_top(tmp_path, capsys):
    assert t2i(["train", "ldm", "--init", "nowhere", "--bf16-weights", "--mixed-precision", "bf16",
                "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bf16-weights" in err and "drop --mixed-precision bf16" in err


@pytest.mark.compile
def test_a_compiled_copy_gives_the_master_the_uncompiled_copys_gradients():
    """``--bf16-weights --compile``: the bfloat16 copy's forward is compiled; its gradients still reach the
    master through the copy's hooks, and every step still reads the master's new weights."""
    unet = make_tiny_pipeline(size=32).unet.train()
    z, t, cond, target = _batch(unet)
    _loss(BF16Compute(unet), z, t, cond, target).backward()
    reference = [p.grad.clone() for p in unet.parameters()]
    unet.zero_grad(set_to_none=True)

    step = BF16Compute(unet, compile=True)
    assert list(step.state_dict()) == list(BF16Compute(unet).state_dict())  # the copy registered once
    _loss(step, z, t, cond, target).backward()
    got = [p.grad for p in unet.parameters()]
    assert all(g is not None and g.dtype == torch.float32 for g in got)
    flat_ref, flat_got = torch.cat([g.flatten() for g in reference]), torch.cat([g.flatten() for g in got])
    assert torch.nn.functional.cosine_similarity(flat_ref, flat_got, dim=0) > 0.999  # fused kernels round differently

    before = unet.conv_in.weight.grad.clone()
    with torch.no_grad():
        unet.conv_in.weight.add_(1.0)
    unet.zero_grad(set_to_none=True)
    _loss(step, z, t, cond, target).backward()
    assert torch.equal(step.compute.conv_in.weight, unet.conv_in.weight.bfloat16())
    assert not torch.allclose(unet.conv_in.weight.grad, before)  # computed from the new weights


def test_bf16_weights_warns_on_a_cpu_without_bfloat16_units(monkeypatch):
    """On an AVX2-only CPU ``--bf16-weights`` was 18x slower than float32: the trainer says so in one line."""
    from t2i.diffusion import bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    warning = bf16.emulation_warning(torch.device("cpu"))
    assert warning and len(warning.splitlines()) == 1 and "drop --bf16-weights" in warning
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert bf16.emulation_warning(torch.device("cpu")) is None
    assert bf16.emulation_warning(torch.device("cuda")) is None  # a GPU: not this check's business
