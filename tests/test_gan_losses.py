"""GAN losses against values computed by hand, and the identities they rely on."""

import math

import pytest
import torch

from gan_baselines.gan_losses import EQUILIBRIUM_VALUE, LOSSES, game_stats, get_loss

LOGITS = torch.tensor([0.0, 2.0])
LOG2 = math.log(2.0)  # -log sigmoid(0) = -log(1 - sigmoid(0))
SP_NEG2 = math.log(1 + math.exp(-2.0))  # softplus(-2) = -log sigmoid(2)
SP_2 = math.log(1 + math.exp(2.0))  # softplus(2) = -log(1 - sigmoid(2))

# loss -> (d_real, d_fake, g) on logits [0, 2], worked out by hand
EXPECTED = {
    "minimax": ([LOG2, SP_NEG2], [LOG2, SP_2], [-LOG2, -SP_2]),
    "non-saturating": ([LOG2, SP_NEG2], [LOG2, SP_2], [LOG2, SP_NEG2]),
    "least-squares": ([0.5, 0.5], [0.0, 2.0], [0.5, 0.5]),  # 1/2 (l-1)^2, 1/2 l^2, 1/2 (l-1)^2
    "hinge": ([1.0, 0.0], [1.0, 3.0], [0.0, -2.0]),  # relu(1-l), relu(1+l), -l
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_values_by_hand(name):
    loss = get_loss(name)
    d_real, d_fake, g = EXPECTED[name]
    torch.testing.assert_close(loss.d_real(LOGITS), torch.tensor(d_real))
    torch.testing.assert_close(loss.d_fake(LOGITS), torch.tensor(d_fake))
    torch.testing.assert_close(loss.g(LOGITS), torch.tensor(g))


def test_cross_entropy_losses_match_bce():
    logits = torch.linspace(-8, 8, 17)
    loss = get_loss("minimax")
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    torch.testing.assert_close(loss.d_real(logits), bce(logits, torch.ones_like(logits), reduction="none"))
    torch.testing.assert_close(loss.d_fake(logits), bce(logits, torch.zeros_like(logits), reduction="none"))


def test_losses_are_per_sample_and_finite_for_extreme_logits():
    logits = torch.tensor([-200.0, -5.0, 0.0, 5.0, 200.0])
    for name in LOSSES:
        loss = get_loss(name)
        for part in (loss.d_real, loss.d_fake, loss.g):
            out = part(logits)
            assert out.shape == logits.shape
            assert torch.isfinite(out).all(), (name, part)


def test_minimax_generator_gradient_saturates_and_non_saturating_does_not():
    # when D confidently rejects a fake (logit -10, D = 4.5e-5), d/dl of log(1 - D) is -D ~ 0,
    # while d/dl of -log D is -(1 - D) ~ -1 (Goodfellow et al. 2014, Sec. 3)
    for name, expected in (("minimax", -torch.sigmoid(torch.tensor(-10.0))), ("non-saturating", torch.tensor(-1.0))):
        logit = torch.tensor([-10.0], requires_grad=True)
        get_loss(name).g(logit).sum().backward()
        torch.testing.assert_close(logit.grad[0], expected, atol=1e-4, rtol=1e-3)


def test_equilibrium_value_is_minus_two_log_two():
    stats = game_stats(torch.zeros(8), torch.zeros(8))  # D = 1/2 everywhere
    assert stats["d_real"] == pytest.approx(0.5)
    assert stats["d_fake"] == pytest.approx(0.5)
    assert stats["value"] == pytest.approx(EQUILIBRIUM_VALUE)
    assert EQUILIBRIUM_VALUE == pytest.approx(-1.3862944, abs=1e-7)


def test_value_is_minus_discriminator_minimax_loss():
    real, fake = torch.tensor([1.0, -0.5, 3.0]), torch.tensor([-2.0, 0.3, 0.0])
    loss = get_loss("minimax")
    expected = -(loss.d_real(real).mean() + loss.d_fake(fake).mean())
    assert game_stats(real, fake)["value"] == pytest.approx(expected.item())


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(ValueError, match="non-saturating"):
        get_loss("wasserstein")
