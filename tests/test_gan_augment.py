"""DiffAugment (Zhao et al. 2020) for every GAN trainer (`--augment`); runs from before the option existed keep
their identity (they resume)."""

import pytest
import torch

from gan_baselines.gan_training import d_augment
from t2i.io import load_weights
from t2i.runtime.identity import identity_of
from train.cgan import CGANConfig
from train.cli import main as t2i
from train.dcgan import DCGANConfig
from train.tgan_attn import AttnGANConfig

TINY = ["--steps", "3", "--batch-size", "8", "--n", "32", "--log-every", "1", "--checkpoint-every", "0",
        "--g-base", "8", "--d-base", "8"]


def test_augment_leaves_older_runs_identities_alone():
    assert "augment" not in identity_of(DCGANConfig(data="digits"), "dcgan").settings
    changed = identity_of(CGANConfig(augment=["cutout"]), "cgan")
    assert changed.settings["augment"] == ["cutout"]
    assert changed.config_hash != identity_of(CGANConfig(), "cgan").config_hash
    # tgan-attn had --augment before the other GANs: its runs always held it in their identity
    assert identity_of(AttnGANConfig(), "tgan-attn").settings["augment"] == []


def test_d_augment_is_the_identity_without_a_policy_and_differentiable_with_one():
    run = type("FakeRun", (), {"generator": torch.Generator().manual_seed(0)})()
    x = torch.rand(4, 3, 8, 8, requires_grad=True) * 2 - 1
    assert d_augment(run, CGANConfig())(x) is x
    y = d_augment(run, CGANConfig(augment=["translation", "brightness", "cutout"]))(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    y.sum().backward()  # G learns through the augmentation
    with pytest.raises(ValueError, match="augment must list names among"):
        CGANConfig(augment=["rotation"]).validate()


def test_cgan_with_augment_trains_differently_and_reproducibly(tmp_path):
    weights = {}
    policy = ["--augment", "translation,cutout"]
    for name, extra in (("plain", []), ("aug", policy), ("aug2", policy)):
        assert t2i(["train", "cgan", "--data", "digits", *TINY, *extra, "--out", str(tmp_path / name)]) == 0
        weights[name] = load_weights(next((tmp_path / name / "model").glob("*.safetensors")))
    assert any(not torch.equal(weights["plain"][k], weights["aug"][k]) for k in weights["plain"])
    assert all(torch.equal(weights["aug"][k], weights["aug2"][k]) for k in weights["aug"])
