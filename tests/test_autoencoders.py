"""Autoencoder models, corruption and per-sample losses against hand computation and brute-force Jacobians."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from gan_baselines.autoencoders import (
    AutoencoderGenerator, ContractiveLoss, ConvAutoencoder, DenoisingLoss, MLPAutoencoder, ReconstructionLoss,
    SparseLoss, build_autoencoder, contractive_penalty, jacobian_frobenius_sq, reconstruction_error,
)
from gan_baselines.corruption import corrupt, random_levels
from t2i.generator import GenerationError
from t2i.io import save_model


def brute_force_frobenius_sq(encode, x):
    """||J||_F^2 per sample from the full Jacobian of one sample at a time."""
    out = []
    for xi in x:
        jac = jacobian(lambda v: encode(v.unsqueeze(0)).squeeze(0), xi)  # (D, C, S, S)
        out.append(jac.pow(2).sum())
    return torch.stack(out)


def test_reconstruction_error_matches_hand_computation():
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])  # sigmoid -> 0.5, 0.75
    x = torch.tensor([[[[1.0, 0.0]]]])
    mse = reconstruction_error(logits, x, "mse")
    assert torch.allclose(mse, torch.tensor([(0.5 ** 2 + 0.75 ** 2) / 2]))
    bce = reconstruction_error(logits, x, "bce")  # -log 0.5 and -log(1 - 0.75)
    assert torch.allclose(bce, torch.tensor([(math.log(2.0) + math.log(4.0)) / 2]))
    with pytest.raises(ValueError, match="mse"):
        reconstruction_error(logits, x, "l1")
    linear = reconstruction_error(logits, x, "mse", output="linear")  # the raw output is the image
    assert torch.allclose(linear, torch.tensor([(1.0 + math.log(3.0) ** 2) / 2]))
    with pytest.raises(ValueError, match="sigmoid output"):
        reconstruction_error(logits, x, "bce", output="linear")


def test_model_shapes_and_bad_sizes():
    x = torch.rand(3, 2, 8, 8)
    for model in (MLPAutoencoder(2, 8, (16,), 5), ConvAutoencoder(2, 8, (4, 8), 5)):
        assert model.encode(x).shape == (3, 5)
        out = model.reconstruct(x)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        h, logits = model(x)  # the training pass
        assert torch.equal(h, model.encode(x)) and torch.equal(torch.sigmoid(logits), out)
        rebuilt = build_autoencoder(model.config())
        rebuilt.load_state_dict(model.state_dict())
        assert torch.equal(rebuilt.reconstruct(x), out)
    with pytest.raises(ValueError, match="divisible"):
        ConvAutoencoder(1, 12, (4, 8, 16), 2)
    with pytest.raises(ValueError, match="code_activation"):
        MLPAutoencoder(code_activation="softmax")


def test_plain_loss_is_reconstruction_of_the_input():
    torch.manual_seed(0)
    model, x = MLPAutoencoder(1, 4, (8,), 2), torch.rand(5, 1, 4, 4)
    terms = ReconstructionLoss("mse")(model, x)
    assert terms["loss"].shape == (5,)
    assert torch.allclose(terms["loss"], (model.reconstruct(x) - x).pow(2).flatten(1).mean(1))


def test_denoising_loss_encodes_the_corrupted_copy_and_targets_the_clean_one():
    torch.manual_seed(0)
    model, x = MLPAutoencoder(1, 4, (8,), 2), torch.rand(5, 1, 4, 4)
    torch.manual_seed(1)
    x_tilde = corrupt(x, "masking", 0.5)
    expected = (model.reconstruct(x_tilde) - x).pow(2).flatten(1).mean(1)
    torch.manual_seed(1)
    terms = DenoisingLoss("mse", noise="masking", level=0.5)(model, x)
    assert torch.allclose(terms["loss"], expected)
    assert not torch.allclose(terms["loss"], ReconstructionLoss("mse")(model, x)["loss"])
    with pytest.raises(ValueError, match="probability"):
        DenoisingLoss(noise="salt_pepper", level=1.5)


def test_corruptions():
    x = torch.full((200, 1, 16, 16), 0.5)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(corrupt(x, "masking", 0.0, generator=g), x)
    assert torch.equal(corrupt(x, "masking", 1.0, generator=g), torch.zeros_like(x))
    masked = corrupt(x, "masking", 0.3, generator=g)
    assert abs((masked == 0).float().mean().item() - 0.3) < 0.01
    sp = corrupt(x, "salt_pepper", 0.4, generator=g)
    assert set(sp.unique().tolist()) == {0.0, 0.5, 1.0}
    assert abs((sp != 0.5).float().mean().item() - 0.4) < 0.01
    assert abs((sp == 1).float().mean().item() - 0.2) < 0.01  # salt and pepper equally likely
    noisy = corrupt(x, "gaussian", 0.1, generator=g)
    assert abs((noisy - x).std().item() - 0.1) < 0.005 and noisy.min() >= 0 and noisy.max() <= 1
    with pytest.raises(ValueError, match="one of"):
        corrupt(x, "blur", 0.1)
    per_image = corrupt(x[:2], "masking", torch.tensor([0.0, 1.0]).view(2, 1, 1, 1), generator=g)  # one level each
    assert torch.equal(per_image[0], x[0]) and torch.equal(per_image[1], torch.zeros_like(x[1]))
    levels = random_levels(1000, 0.4, generator=g)
    assert levels.shape == (1000, 1, 1, 1) and 0 <= levels.min() and levels.max() <= 0.4
    assert abs(levels.mean().item() - 0.2) < 0.02
    with pytest.raises(ValueError, match="probability"):
        corrupt(x[:2], "masking", torch.tensor([0.5, 1.5]).view(2, 1, 1, 1))


def test_sparse_loss_adds_l1_of_the_code():
    model = MLPAutoencoder(1, 2, (), 3, "relu")
    with torch.no_grad():  # h = relu(W x + b) with a hand-picked W, b
        model.encoder[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 2.0, 0]]))
        model.encoder[1].bias.copy_(torch.tensor([0.0, 0.5, 0.0]))
    x = torch.tensor([[[[0.2, 0.1], [0.3, 0.9]]]])
    terms = SparseLoss("mse", weight=0.5)(model, x)
    l1 = 0.2 + (0.5 - 0.1) + 2 * 0.3
    assert torch.allclose(terms["l1"], torch.tensor([l1]))
    assert torch.allclose(terms["loss"], terms["rec"] + 0.5 * l1)


def test_contractive_closed_form_matches_hand_computation_in_one_dimension():
    model = MLPAutoencoder(1, 1, (), 1, "sigmoid")
    with torch.no_grad():
        model.encoder[1].weight.fill_(2.0)
        model.encoder[1].bias.fill_(-0.5)
    x = torch.tensor([[[[0.75]]]])
    h = torch.sigmoid(torch.tensor(2.0 * 0.75 - 0.5))
    penalty, _, _ = contractive_penalty(model, x)
    assert torch.allclose(penalty, (h * (1 - h) * 2.0).pow(2).reshape(1))


@pytest.mark.parametrize("make", [
    lambda: MLPAutoencoder(1, 4, (), 6, "sigmoid"),  # closed form, Rifai et al.
    lambda: MLPAutoencoder(1, 4, (), 6, "relu"),  # closed form, s' = 1[a > 0]
    lambda: MLPAutoencoder(2, 3, (), 5, "tanh", output="linear"),  # closed form, s' = 1 - h^2
    lambda: MLPAutoencoder(1, 3, (), 4, "none"),  # closed form, linear encoder: ||W||_F^2
    lambda: MLPAutoencoder(2, 4, (10, 7), 3, "tanh"),  # autograd, deep
    lambda: ConvAutoencoder(1, 8, (3, 4), 3),  # autograd, convolutional
])
def test_contractive_penalty_matches_brute_force_jacobian(make):
    torch.manual_seed(0)
    model = make().double()
    x = torch.rand(4, model.channels, model.size, model.size, dtype=torch.float64)
    penalty, h, _ = contractive_penalty(model, x)
    assert torch.allclose(h, model.encode(x))
    brute = brute_force_frobenius_sq(model.encode, x)
    assert torch.allclose(penalty, brute, atol=1e-5, rtol=0)
    assert (brute > 0).all()
    x_grad = x.clone().requires_grad_(True)
    autograd_only = jacobian_frobenius_sq(model.encode(x_grad), x_grad)  # the general path agrees with the closed form
    assert torch.allclose(autograd_only, brute, atol=1e-5, rtol=0)


def test_contractive_loss_trains_the_penalty_down():
    torch.manual_seed(0)
    model, x = MLPAutoencoder(1, 4, (), 8, "sigmoid"), torch.rand(16, 1, 4, 4)
    loss_fn = ContractiveLoss("mse", weight=1.0)
    first = loss_fn(model, x)
    assert torch.allclose(first["loss"], first["rec"] + first["jacobian"])
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        loss_fn(model, x)["loss"].mean().backward()
        opt.step()
    assert loss_fn(model, x)["jacobian"].mean() < first["jacobian"].mean()


def test_generator_is_deterministic_and_round_trips(tmp_path):
    from gan_baselines.registry import load_generator

    torch.manual_seed(0)
    model = MLPAutoencoder(1, 8, (16,), 2)
    save_model(tmp_path / "ae", model, {"family": "ae", **model.config()})
    gen = load_generator(tmp_path / "ae")
    assert isinstance(gen, AutoencoderGenerator) and gen.conditioning == "none"
    a = gen.generate(seed=3, num_images_per_prompt=3)
    b = gen.generate(seed=3, num_images_per_prompt=3)
    c = gen.generate(seed=4, num_images_per_prompt=3)
    assert len(a) == 3 and a[0].size == (8, 8) and a[0].mode == "L"
    assert [im.tobytes() for im in a] == [im.tobytes() for im in b]
    assert [im.tobytes() for im in a] != [im.tobytes() for im in c]
    direct = AutoencoderGenerator(model).decode(torch.zeros(1, 2))
    chosen = gen.generate(latents=[[0.0, 0.0]])[0]
    assert chosen.tobytes() == bytes(direct.mul(255).round().to(torch.uint8).flatten().tolist())
    assert len(gen.generate(prompts=["a", "b"], num_images_per_prompt=2)) == 4
    with pytest.raises(GenerationError, match="unknown option.*it takes \\['latents'\\]"):
        gen.generate(guidance=2.0)
    with pytest.raises(GenerationError, match="ask for 2 images"):
        gen.generate(latents=[[0.0, 0.0], [1.0, 1.0]])
