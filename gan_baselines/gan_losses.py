"""GAN objectives as small callables returning per-sample losses; the training loop reduces and backpropagates.

Every discriminator here outputs a raw score (a logit) ``l``; for the two losses built on
the cross entropy, ``D(x) = sigmoid(l)`` is the probability that ``x`` is real. Each loss
has three parts, one per phase of GAN training:

- ``d_real(l)``: discriminator loss on real samples,
- ``d_fake(l)``: discriminator loss on generated samples,
- ``g(l)``: generator loss on generated samples.

The identities used (``log sigmoid(l) = -softplus(-l)``, ``log(1 - sigmoid(l)) = -softplus(l)``)
keep the cross-entropy losses finite for any logit.

    python -c "from gan_baselines.gan_losses import demo; demo()"
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# -2 log 2: the value V(G, D*) of the minimax game at its global optimum p_g = p_r,
# where D* = 1/2 everywhere (Goodfellow et al. 2014, Theorem 1).
EQUILIBRIUM_VALUE = -2.0 * math.log(2.0)


class GANLoss:
    """Base class: per-sample losses of shape (B,) from discriminator logits of shape (B,)."""

    name = "base"

    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MinimaxLoss(GANLoss):
    """The original game min_G max_D E log D(x) + E log(1 - D(G(z))) (Goodfellow et al. 2014, Eq. 1)."""

    name = "minimax"

    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-logits)  # -log D(x) = softplus(-l)

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(logits)  # -log(1 - D(G(z))) = softplus(l)

    def g(self, logits: torch.Tensor) -> torch.Tensor:
        return -F.softplus(logits)  # G minimises log(1 - D(G(z))) = -softplus(l); saturates when D rejects fakes


class NonSaturatingLoss(MinimaxLoss):
    """Same discriminator; the generator maximises log D(G(z)) instead (Goodfellow et al. 2014, Sec. 3)."""

    name = "non-saturating"

    def g(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-logits)  # -log D(G(z)) = softplus(-l); strong gradient when D rejects fakes


class LeastSquaresLoss(GANLoss):
    """LSGAN with targets a=0 (fake), b=1 (real), c=1 (Mao et al. 2017, Eq. 2); raw scores, no sigmoid."""

    name = "least-squares"

    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (logits - 1.0) ** 2  # 1/2 (D(x) - b)^2

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * logits**2  # 1/2 (D(G(z)) - a)^2

    def g(self, logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (logits - 1.0) ** 2  # 1/2 (D(G(z)) - c)^2


class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018, Eq. 16-17); repeated for the first stage's PatchGAN in
    ``t2i.diffusion.first_stage.hinge_d_loss`` (a fix to one is a fix to both)."""

    name = "hinge"

    def d_real(self, logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - logits)  # max(0, 1 - D(x))

    def d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 + logits)  # max(0, 1 + D(G(z)))

    def g(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits  # -D(G(z))


LOSSES: dict[str, type[GANLoss]] = {cls.name: cls for cls in (MinimaxLoss, NonSaturatingLoss, LeastSquaresLoss, HingeLoss)}


def get_loss(name: str) -> GANLoss:
    """A loss by name: one of ``minimax``, ``non-saturating``, ``least-squares``, ``hinge``."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]()


def mode_seeking(images_a: torch.Tensor, images_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                 eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking regulariser (Mao et al. 2019, Eq. 3), per pair (B,), for two samples of one condition.

    The generator maximises d_I(G(c, z_a), G(c, z_b)) / d_z(z_a, z_b) (mean absolute
    distances); as a loss to descend, 1 / (ratio + eps). It counters conditional mode
    collapse, where G ignores z and draws one image per condition.
    """
    ratio = (images_a - images_b).abs().flatten(1).mean(1) / (z_a - z_b).abs().flatten(1).mean(1)  # (B,)
    return 1.0 / (ratio + eps)


@torch.no_grad()
def game_stats(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, float]:
    """What every GAN run logs: mean D(x), mean D(G(z)) and the minimax value estimate.

    ``value`` is the Monte-Carlo estimate of V(G, D) = E log D(x) + E log(1 - D(G(z)))
    with D = sigmoid(logit); at the game's optimum it is -2 log 2 (``EQUILIBRIUM_VALUE``).
    For least-squares and hinge, sigmoid(score) is only a monotone read-out of D, not a
    calibrated probability.
    """
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    return {
        "d_real": torch.sigmoid(real_logits).mean().item(),
        "d_fake": torch.sigmoid(fake_logits).mean().item(),
        "value": (-F.softplus(-real_logits).mean() - F.softplus(fake_logits).mean()).item(),
    }


def demo() -> None:
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0, 2.0])
    for name in LOSSES:
        loss = get_loss(name)
        print(f"{name:15s} d_real={loss.d_real(real).tolist()} d_fake={loss.d_fake(fake).tolist()} "
              f"g={loss.g(fake).tolist()}")
    print("equilibrium value -2 log 2 =", EQUILIBRIUM_VALUE)
