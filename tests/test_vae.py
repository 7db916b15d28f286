"""VAE pieces against closed forms and Monte-Carlo estimates; the conditional VAE generator contract."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from gan_baselines.vae import (
    ConvVAE, MLPVAE, VAEGenerator, VAELoss, build_vae, kl_to_standard_normal, label_condition,
    negative_log_likelihood, reparameterize,
)
from t2i.generator import GenerationError
from t2i.io import save_model


def test_kl_matches_torch_distributions_and_a_monte_carlo_estimate():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4)
    kl = kl_to_standard_normal(mu, logvar)
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros(3, 4), torch.ones(3, 4))
    assert torch.allclose(kl, kl_divergence(q, p).sum(1), atol=1e-5)
    z = q.sample((200_000,))  # (N, 3, 4): E_q[log q(z) - log p(z)]
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(kl, mc, rtol=0.02, atol=0.02)
    assert torch.allclose(kl_to_standard_normal(torch.zeros(2, 5), torch.zeros(2, 5)), torch.zeros(2))


def test_reparameterisation_is_mu_plus_sigma_eps_and_has_the_right_moments():
    mu, logvar, eps = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(4.0)]]), torch.tensor([[0.5, 0.5]])
    assert torch.allclose(reparameterize(mu, logvar, eps), torch.tensor([[1.5, -1.0]]))
    torch.manual_seed(0)
    z = reparameterize(mu.expand(100_000, 2), logvar.expand(100_000, 2))
    assert torch.allclose(z.mean(0), mu[0], atol=0.02) and torch.allclose(z.std(0), torch.tensor([1.0, 2.0]), atol=0.02)
    mu_g, logvar_g = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    reparameterize(mu_g, logvar_g, eps).sum().backward()  # gradients flow through both parameters
    assert torch.allclose(mu_g.grad, torch.ones(1, 2)) and torch.allclose(logvar_g.grad, 0.5 * (0.5 * logvar).exp() * eps)


def test_negative_log_likelihood_by_hand():
    logits, x = torch.tensor([[[[0.0, math.log(3.0)]]]]), torch.tensor([[[[1.0, 0.0]]]])
    assert torch.allclose(negative_log_likelihood(logits, x, "bce"), torch.tensor([math.log(2.0) + math.log(4.0)]))
    assert torch.allclose(negative_log_likelihood(logits, x, "mse"), torch.tensor([0.25 + 0.5625]))


def test_vae_loss_is_nll_plus_beta_kl_with_one_reparameterised_sample():
    torch.manual_seed(0)
    model, x = MLPVAE(1, 4, (8,), 3), torch.rand(5, 1, 4, 4)
    mu, logvar = model.encode(x)
    torch.manual_seed(1)
    z = reparameterize(mu, logvar)
    rec = negative_log_likelihood(model.decode_logits(z), x, "bce")
    kl = kl_to_standard_normal(mu, logvar)
    torch.manual_seed(1)
    terms = VAELoss("bce", beta=4.0)(model, x)
    assert terms["loss"].shape == (5,)
    assert torch.allclose(terms["rec"], rec) and torch.allclose(terms["kl"], kl)
    assert torch.allclose(terms["loss"], rec + 4.0 * kl)
    with pytest.raises(ValueError, match="beta"):
        VAELoss(beta=-1.0)


def test_conditions_are_checked_and_rebuilt_models_agree():
    x = torch.rand(2, 3, 8, 8)
    cond = label_condition([1, 4], 5)
    assert torch.equal(cond, torch.tensor([[0.0, 1, 0, 0, 0], [0, 0, 0, 0, 1]]))
    for model in (MLPVAE(3, 8, (16,), 4, cond_dim=5), ConvVAE(3, 8, (4, 8), 4, cond_dim=5)):
        mu, logvar = model.encode(x, cond)
        assert mu.shape == logvar.shape == (2, 4)
        assert model.decode(mu, cond).shape == x.shape
        with pytest.raises(ValueError, match="needs a condition"):
            model.encode(x)
        rebuilt = build_vae(model.config())
        rebuilt.load_state_dict(model.state_dict())
        assert torch.equal(rebuilt.reconstruct(x, cond), model.reconstruct(x, cond))
    with pytest.raises(ValueError, match="unconditional"):
        MLPVAE(3, 8, (16,), 4).encode(x, cond)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        label_condition([5], 5)


def test_label_cvae_generator_round_trip_determinism_and_ordering(tmp_path):
    from gan_baselines.registry import load_generator

    torch.manual_seed(0)
    model = MLPVAE(1, 8, (16,), 2, cond_dim=10)
    save_model(tmp_path / "cvae", model, {"family": "cvae", "conditioning": "label", "num_classes": 10, **model.config()})
    gen = load_generator(tmp_path / "cvae")
    assert isinstance(gen, VAEGenerator) and gen.conditioning == "label" and gen.num_classes == 10
    a = gen.generate(labels=[3, 7], num_images_per_prompt=2, seed=5)
    b = gen.generate(labels=[3, 7], num_images_per_prompt=2, seed=5)
    assert len(a) == 4 and [im.tobytes() for im in a] == [im.tobytes() for im in b]
    # same code, different label: the condition changes the image; order is [3, 3, 7, 7]
    same_code = gen.generate(labels=[3, 7], latents=[[0.2, -0.1]] * 2)
    assert same_code[0].tobytes() != same_code[1].tobytes()
    assert gen.generate(labels=[7], latents=[[0.2, -0.1]])[0].tobytes() == same_code[1].tobytes()
    with pytest.raises(GenerationError, match="class-conditional"):
        gen.generate(prompts=["a handwritten digit 3"])
    with pytest.raises(GenerationError, match=r"\[0, 9\]"):
        gen.generate(labels=[10])


def test_text_cvae_generator_conditions_on_prompts(tmp_path):
    from gan_baselines.registry import load_generator
    from t2i.clip.testing import make_tiny_clip
    from t2i.text import TextEncoder

    clip = make_tiny_clip(tmp_path / "clip")
    enc = TextEncoder.from_pretrained(clip)
    torch.manual_seed(0)
    model = ConvVAE(3, 8, (4, 8), 3, cond_dim=enc.pooled_dim)
    save_model(tmp_path / "tcvae", model, {"family": "cvae", "conditioning": "text", "text_encoder": str(clip),
                                           **model.config()})
    gen = load_generator(tmp_path / "tcvae")
    images = gen.generate(prompts=["a red circle", "a blue square"], seed=0, num_images_per_prompt=2)
    assert len(images) == 4 and images[0].mode == "RGB" and images[0].size == (8, 8)
    again = gen.generate(prompts=["a red circle", "a blue square"], seed=0, num_images_per_prompt=2)
    assert [im.tobytes() for im in images] == [im.tobytes() for im in again]
    same_code = gen.generate(prompts=["a red circle", "a blue square"], latents=[[0.0, 0.0, 0.0]] * 2)
    assert same_code[0].tobytes() != same_code[1].tobytes()
    with pytest.raises(GenerationError, match="text-conditional"):
        gen.generate(labels=[1])


def test_unconditional_vae_generator_counts_and_temperature(tmp_path):
    from gan_baselines.registry import load_generator

    torch.manual_seed(0)
    model = MLPVAE(1, 8, (16,), 2)
    save_model(tmp_path / "vae", model, {"family": "vae", "conditioning": "none", **model.config()})
    gen = load_generator(tmp_path / "vae")
    assert len(gen.generate(seed=0, num_images_per_prompt=5)) == 5
    cold = gen.generate(seed=0, temperature=1e-6)[0]
    assert cold.tobytes() == gen.generate(latents=[[0.0, 0.0]])[0].tobytes()
    with pytest.raises(GenerationError, match="latents"):
        gen.generate(latents=[[0.0, 0.0]], num_images_per_prompt=2)
