"""Loss terms of the text GANs as small functions returning per-sample values (B,).

The training loop reduces and back-propagates them. ``logits`` of a multi-head
discriminator are (B, R): one score per head resolution; every head gets the same
objective and the heads are averaged.

- ``matching_aware_d_loss``: the discriminator loss of GAN-CLS (Reed et al. 2016,
  Algorithm 1): (real image, its caption) is real; (generated image, caption) and (real
  image, a wrong caption) are fake, weighted ``1 - m`` and ``m`` (Reed et al.: m = 1/2).
- ``r1_penalty``: the R1 gradient penalty on real data (Mescheder et al. 2018, Eq. 9),
  ``R1 = gamma / 2 * ||grad_x D(x)||^2``; returned per sample without gamma / 2.
- ``mode_seeking`` (Mao et al. 2019, Eq. 3) is in ``gan_baselines.gan_losses``.

    python -c "from gan_baselines.text_gan_losses import demo; demo()"
"""

from __future__ import annotations

import torch

from gan_baselines.gan_losses import GANLoss, get_loss


def matching_aware_d_loss(loss: GANLoss, real: torch.Tensor, fake: torch.Tensor, wrong: torch.Tensor | None,
                          differs: torch.Tensor | None, mismatch_weight: float) -> torch.Tensor:
    """Per-sample GAN-CLS discriminator loss (B,) from logits (B, R) of the three kinds of pair.

    ``d_real(s_r) + (1 - m) d_fake(s_f) + m d_fake(s_w) [differs_i] B / sum(differs)``, each term
    averaged over the R heads; ``differs`` (B,) is False where the "wrong" caption happens to equal
    the right one (that pair is no negative). Its batch mean is the mean of the mismatched terms.
    """
    out = loss.d_real(real).mean(1) + (1 - mismatch_weight) * loss.d_fake(fake).mean(1)  # (B,)
    if mismatch_weight > 0 and wrong is not None:
        weight = differs.to(out.dtype) * (len(differs) / differs.sum().clamp_min(1))  # (B,)
        out = out + mismatch_weight * loss.d_fake(wrong).mean(1) * weight
    return out


def generator_loss(loss: GANLoss, logits: torch.Tensor) -> torch.Tensor:
    """Per-sample generator loss (B,): ``g(D(G(z, c), c))`` averaged over the heads (B, R)."""
    return loss.g(logits).mean(1)


def r1_penalty(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||grad_x D(x)||^2`` (B,) of ``logits`` (B,) or (B, R) w.r.t. ``images`` (B, C, S, S).

    A multi-head D's logits are summed over heads first (the penalty of the sum of the heads).
    ``images`` must require grad and ``logits`` must come from them; the graph is kept
    (``create_graph``) so the penalty itself can be back-propagated into D.
    """
    (grad,) = torch.autograd.grad(logits.sum(), images, create_graph=True)  # d D(x_i) / d x_i (samples independent)
    return grad.pow(2).flatten(1).sum(1)  # (B,)


def demo() -> None:
    hinge = get_loss("hinge")
    real, fake, wrong = torch.tensor([[0.5], [2.0]]), torch.tensor([[-2.0], [0.0]]), torch.tensor([[0.0], [1.0]])
    print("GAN-CLS hinge:", matching_aware_d_loss(hinge, real, fake, wrong, torch.tensor([True, True]), 0.5))
    x = torch.ones(2, 1, 2, 2, requires_grad=True)
    print("R1 of D(x) = sum(x^2) at x = 1:", r1_penalty((x**2).flatten(1).sum(1), x))  # ||2x||^2 = 16
