"""What the GAN trainers share: options, the unconditional adversarial step, sample grids and the finish.

Used by ``t2i train gan|dcgan|cgan|tgan`` (``train/gan.py``, ``train/dcgan.py``,
``train/cgan.py``, ``train/tgan.py``), each of which keeps its own loop top to bottom:

- ``GANRunConfig``: the options every GAN trainer has (loss, k discriminator steps, Adam,
  DiffAugment of D's inputs);
- ``d_augment``: DiffAugment (Zhao et al. 2020), the same kind of random translation /
  brightness / cutout on real and generated images before D, against D memorising a small
  dataset (off by default; measured in ``benchmarks/RESULTS.md``, "DiffAugment for every GAN trainer");
- ``adversarial_step``: one run step of an unconditional GAN (Goodfellow et al. 2014,
  Algorithm 1); the conditional trainers write theirs out, as their inputs differ;
- ``save_samples``: the sample grid, drawn through the generator contract
  (``t2i.generator.generate_conditions``); the trainers draw the last one after the loop, from
  the weights they save (the EMA's last update included), so it is exactly what
  ``t2i sample --model OUT/model`` makes with the same conditions and seed;
- ``finish``: save the EMA generator (else G) and plot the game.

    python -c "from gan_baselines.gan_training import GANRunConfig; print(GANRunConfig(steps=1))"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import torch

from gan_baselines import gan
from gan_baselines.diffaugment import AUGMENTATIONS, diff_augment
from gan_baselines.gan_losses import game_stats, get_loss
from t2i.generator import Condition, Generator, generate_conditions
from t2i.runtime import Run, RunConfig


@dataclass
class GANRunConfig(RunConfig):
    """Options every GAN trainer shares (the family trainers inherit these)."""

    loss: str = "non-saturating"  # objective: minimax | non-saturating | least-squares | hinge
    d_steps: int = 1  # discriminator steps per generator step (k of Goodfellow et al. 2014, Algorithm 1)
    lr: float = 2e-4  # Adam learning rate of both networks (Radford et al. 2015)
    beta1: float = 0.5  # Adam beta1 (0.5 as in DCGAN: less momentum for a moving target)
    beta2: float = 0.999  # Adam beta2
    latent_dim: int = 100  # size of the noise z ~ N(0, I)
    n: int = 0  # use only the first N training items (0 = the whole train split)
    sample_every: int = 250  # write a sample grid every N steps (and at the end)
    checkpoint_every: int = 1000  # write a resumable checkpoint every N steps; 0 = only at the end
    augment: list[str] = field(default_factory=list)  # DiffAugment of D's inputs, e.g. translation,brightness,cutout
    augment_shift: int = 2  # translation: at most this many pixels per axis

    # added after runs existed: at these values left out of the run identity, so older checkpoints stay resumable
    identity_defaults: ClassVar[dict[str, object]] = {**RunConfig.identity_defaults, "augment": [], "augment_shift": 2}

    def validate(self) -> None:
        super().validate()
        get_loss(self.loss)  # raises with the list of valid names
        if self.d_steps < 1:
            raise ValueError(f"d_steps must be >= 1 (discriminator steps per generator step), got {self.d_steps!r}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim!r}")
        bad = [a for a in self.augment if a not in AUGMENTATIONS]
        if bad:
            raise ValueError(f"augment must list names among {list(AUGMENTATIONS)}, got {bad}")
        if self.augment_shift < 0:
            raise ValueError(f"augment_shift must be >= 0, got {self.augment_shift!r}")


def adam(params, cfg: GANRunConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def millions(module: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M"


def noise(run: Run, n: int, dim: int) -> torch.Tensor:
    """Training noise z ~ N(0, I) (n, dim) from the run's checkpointed generator, so a resumed run draws the same."""
    return torch.randn(n, dim, generator=run.generator).to(run.device)


def d_augment(run: Run, cfg: GANRunConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """What D's inputs pass through: DiffAugment's ``cfg.augment`` policy (Zhao et al. 2020), drawn from the
    run's checkpointed generator and differentiable, so G learns through it; the identity when the policy is empty."""
    if not cfg.augment:
        return lambda x: x
    return lambda x: diff_augment(x, cfg.augment, run.generator, max_shift=cfg.augment_shift)


def adversarial_step(run: Run, G, D, opt_g, opt_d, loss_fn, x: torch.Tensor, step: int, cfg: GANRunConfig) -> None:
    """One run step of an unconditional GAN (Goodfellow et al. 2014, Algorithm 1): a discriminator step on
    real ``x`` (b, C, S, S) in [-1, 1] and G(z), and every ``d_steps`` run steps one generator step; D sees
    both through ``d_augment``."""
    b = x.shape[0]
    augment = d_augment(run, cfg)
    # discriminator step: ascend log D(x) + log(1 - D(G(z))), i.e. descend d_real + d_fake
    with run.accumulate(D):
        with torch.no_grad():
            fake = G(noise(run, b, cfg.latent_dim))  # (b, C, S, S)
        real_logits, fake_logits = D(augment(x)), D(augment(fake))  # separate real and fake batches (batch norm)
        loss_d = (loss_fn.d_real(real_logits) + loss_fn.d_fake(fake_logits)).mean()
        run.backward(loss_d)
        opt_d.step()
        opt_d.zero_grad()
    run.log(loss_d=loss_d, **game_stats(real_logits, fake_logits))
    # generator step, after every d_steps discriminator steps: descend g(D(G(z)))
    if (step + 1) % cfg.d_steps == 0:
        D.requires_grad_(False)  # the generator loss must not leave gradients in D
        with run.accumulate(G):
            loss_g = loss_fn.g(D(augment(G(noise(run, b, cfg.latent_dim))))).mean()
            run.backward(loss_g)
            opt_g.step()
            opt_g.zero_grad()
        D.requires_grad_(True)
        run.log(loss_g=loss_g)


def shown_network(run: Run, G: torch.nn.Module, ema) -> torch.nn.Module:
    """The network the grids show and the run saves: the EMA copy of G (updated in place), else G itself."""
    return ema.model if ema is not None else run.unwrap(G)


@torch.no_grad()
def save_samples(run: Run, generator: Generator, conditions: Sequence[Condition], seed: int, n: int,
                 nrow: int | None = None) -> None:
    """The ``samples`` grid: ``generator`` (the shown network behind the contract) in eval mode, ``n`` images
    per condition from ``seed`` (condition i from ``seed + i``), one row per condition unless ``nrow``."""
    if not run.is_main:
        return
    nets = generator.modules()
    modes = {name: net.training for name, net in nets.items()}
    for net in nets.values():
        net.eval()
    try:
        images = generate_conditions(generator, conditions, seed=seed, n=n)
    finally:
        for name, net in nets.items():
            net.train(modes[name])
    run.save_grid(images, "samples", nrow=nrow or n)


def finish(run: Run, G: torch.nn.Module, ema, config: dict, title: str) -> tuple[torch.nn.Module, Path]:
    """Save the EMA generator (else G) as ``OUT/model`` with ``config`` and plot the game (``game.png``).

    Returns the saved network and its folder."""
    final = shown_network(run, G, ema)
    paths = run.finish(save={"model": (final, config)})
    if run.is_main and (run.out / "metrics.jsonl").is_file():
        gan.plot_game(run.out / "metrics.jsonl", run.out / "game.png", title=title)
    return final, paths.get("model", run.out / "model")
