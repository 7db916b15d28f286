"""GAN networks: shapes at 32 and 64 px, conditioning that matters, save/load and determinism under a seed."""

import numpy as np
import pytest
import torch

from gan_baselines import cgan, dcgan, gan, tgan
from gan_baselines.registry import load_generator
from t2i.builtin import reference
from t2i.generator import GenerationError
from t2i.io import save_model


def _arrays(images):
    return [np.asarray(im) for im in images]


@pytest.mark.parametrize("size", [32, 64])
def test_dcgan_shapes_and_range(size):
    g, d = dcgan.build({"latent_dim": 16, "channels": 3, "size": size, "g_base": 8, "d_base": 8})
    x = g(torch.randn(3, 16))
    assert x.shape == (3, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1  # Tanh output
    assert d(x).shape == (3,)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in d.modules())


def test_dcgan_rejects_unsupported_size():
    with pytest.raises(ValueError, match="32"):
        dcgan.DCGANGenerator(16, 3, 48)


@pytest.mark.parametrize("mode", cgan.DISCRIMINATORS)
def test_cgan_discriminator_depends_on_the_label(mode):
    torch.manual_seed(0)
    _, d = cgan.build({"num_classes": 10, "latent_dim": 8, "embed_dim": 8, "channels": 1, "size": 32,
                       "g_base": 8, "d_base": 8, "disc": mode})
    with torch.no_grad():
        torch.nn.init.normal_(d.embed.weight)  # make the class term visible at init
    d.eval()
    x = torch.randn(4, 1, 32, 32)
    a, b = d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.full((4,), 3))
    assert a.shape == (4,)
    assert not torch.allclose(a, b)


def test_tgan_networks_use_the_text_embedding():
    torch.manual_seed(0)
    g, d = tgan.build({"text_dim": 12, "latent_dim": 8, "cond_dim": 16, "channels": 3, "size": 32,
                       "g_base": 8, "d_base": 8})
    g.eval(), d.eval()
    z, e1, e2 = torch.randn(2, 8), torch.randn(2, 12), torch.randn(2, 12)
    assert g(z, e1).shape == (2, 3, 32, 32)
    assert not torch.allclose(g(z, e1), g(z, e2))
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(d(x, e1), d(x, e2))
    # the embedding is L2-normalised: its scale carries no information
    torch.testing.assert_close(g(z, e1), g(z, 5 * e1))


def _saved_cgan(tmp_path):
    arch = {"num_classes": 10, "latent_dim": 8, "embed_dim": 8, "channels": 1, "size": 32, "g_base": 8,
            "d_base": 8, "disc": "concat"}
    torch.manual_seed(0)
    net, _ = cgan.build(arch)
    with torch.no_grad():
        torch.nn.init.normal_(net.embed.weight, std=3.0)
    return save_model(tmp_path / "cgan", net, {"family": "cgan", "arch": arch, "class_names": [str(i) for i in range(10)]})


def test_cgan_generator_contract(tmp_path):
    gen = load_generator(_saved_cgan(tmp_path))
    assert gen.conditioning == "label" and gen.num_classes == 10
    a = gen.generate(labels=[3, 7], seed=5, num_images_per_prompt=2)
    assert len(a) == 4 and a[0].size == (32, 32) and a[0].mode == "L"
    again = gen.generate(labels=[3, 7], seed=5, num_images_per_prompt=2)
    assert all((x == y).all() for x, y in zip(_arrays(a), _arrays(again)))
    assert not (_arrays(a)[0] == _arrays(gen.generate(labels=[3, 7], seed=6, num_images_per_prompt=2))[0]).all()
    # same noise, another label: another image
    assert not (_arrays(gen.generate(labels=[3], seed=5))[0] == _arrays(gen.generate(labels=[8], seed=5))[0]).all()
    with pytest.raises(GenerationError, match="labels"):
        gen.generate(prompts=["a handwritten digit 3"])
    with pytest.raises(GenerationError, match=r"\[0, 9\]"):
        gen.generate(labels=[10])


@pytest.mark.parametrize("family", ["gan", "dcgan"])
def test_unconditional_generator_contract(tmp_path, family):
    if family == "gan":
        arch = {"latent_dim": 8, "channels": 1, "size": 32, "hidden": 16, "layers": 2}
        net, _ = gan.build(arch)
    else:
        arch = {"latent_dim": 8, "channels": 3, "size": 32, "g_base": 8, "d_base": 8}
        net, _ = dcgan.build(arch)
    folder = save_model(tmp_path / family, net, {"family": family, "arch": arch})
    gen = load_generator(folder)
    a = gen.generate(prompts=["ignored", "also ignored"], seed=1, num_images_per_prompt=3)
    assert len(a) == 6
    b = gen.generate(prompts=["ignored", "also ignored"], seed=1, num_images_per_prompt=3)
    assert all((x == y).all() for x, y in zip(_arrays(a), _arrays(b)))
    assert not (_arrays(a)[0] == _arrays(a)[1]).all()  # different noise per image


def test_tgan_generator_contract(tmp_path):
    from t2i.clip.testing import make_tiny_clip
    from t2i.text import TextEncoder

    clip = make_tiny_clip(tmp_path / "clip")
    text_dim = TextEncoder.from_pretrained(clip).pooled_dim
    arch = {"text_dim": text_dim, "latent_dim": 8, "cond_dim": 16, "channels": 3, "size": 32, "g_base": 8, "d_base": 8}
    torch.manual_seed(0)
    net, _ = tgan.build(arch)
    folder = save_model(tmp_path / "tgan", net, {"family": "tgan", "arch": arch, "clip": reference(clip)})
    gen = load_generator(folder)
    prompts = ["a large red circle in the center", "a small blue square in the top left"]
    a = gen.generate(prompts=prompts, seed=2, num_images_per_prompt=2)
    assert len(a) == 4 and a[0].mode == "RGB"
    b = gen.generate(prompts=prompts, seed=2, num_images_per_prompt=2)
    assert all((x == y).all() for x, y in zip(_arrays(a), _arrays(b)))
    # the prompt changes the image under the same noise
    first, second = gen.generate(prompts=prompts[:1], seed=2), gen.generate(prompts=prompts[1:], seed=2)
    assert not (_arrays(first)[0] == _arrays(second)[0]).all()
    with pytest.raises(GenerationError, match="text-conditional"):
        gen.generate(labels=[1])


def test_loader_refuses_another_family(tmp_path):
    arch = {"latent_dim": 8, "channels": 1, "size": 32, "hidden": 16, "layers": 2}
    net, _ = gan.build(arch)
    folder = save_model(tmp_path / "m", net, {"family": "gan", "arch": arch})
    with pytest.raises(ValueError, match="not a 'dcgan'"):
        dcgan.load_generator(folder)
