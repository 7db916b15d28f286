"""Train the vanilla GAN (MLP generator and discriminator) by alternating updates (t2i train gan).

Goodfellow et al. (2014), Algorithm 1: every run step is one discriminator step on a
minibatch of real images and one of generated ones; every ``--d-steps``-th step (k in the
paper) is followed by one generator step on fresh noise. ``--loss`` picks the objective
(``gan_baselines.gan_losses``): ``minimax`` (G minimises log(1 - D(G(z)))),
``non-saturating`` (G maximises log D(G(z))), ``least-squares`` or ``hinge``.

Every run logs D(x), D(G(z)), both losses and the estimate of V(G, D) to
``OUT/metrics.jsonl``, and at the end plots them with the -2 log 2 equilibrium reference
to ``OUT/game.png``; sample grids go to ``OUT/samples/``. The generator is saved under
``OUT/model`` (family "gan"): ``t2i sample --model OUT/model``.

    t2i train gan --data digits --steps 50 --out /tmp/gan
    t2i train gan --data digits --loss minimax --d-steps 2 --steps 2000 --out runs/gan-minimax
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gan_baselines import gan
from gan_baselines.gan_losses import game_stats, get_loss
from t2i.config import parse_config
from t2i.data import load_dataset
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

    def validate(self) -> None:
        super().validate()
        get_loss(self.loss)  # raises with the list of valid names
        if self.d_steps < 1:
            raise ValueError(f"d_steps must be >= 1 (discriminator steps per generator step), got {self.d_steps!r}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim!r}")


@dataclass
class GANConfig(GANRunConfig):
    data: str = "digits"  # training data: digits | shapes | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards
    steps: int = 3000  # run steps (each one discriminator step; a generator step every d_steps of them)
    batch_size: int = 64  # real images per discriminator step (the generator step uses as many samples)
    latent_dim: int = 64  # size of the noise z ~ N(0, I)
    hidden: int = 512  # width of the hidden layers of both MLPs
    layers: int = 3  # hidden layers of both MLPs


def adam(params, cfg: GANRunConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def millions(module: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M"


def noise(run: Run, n: int, dim: int) -> torch.Tensor:
    """z ~ N(0, I) (n, dim) from the run's checkpointed generator, so a resumed run draws the same noise."""
    return torch.randn(n, dim, generator=run.generator).to(run.device)


def adversarial_step(run: Run, G, D, opt_g, opt_d, loss_fn, x: torch.Tensor, step: int, cfg: GANRunConfig) -> None:
    """One run step of an unconditional GAN (Goodfellow et al. 2014, Algorithm 1): a discriminator step on
    real ``x`` (b, C, S, S) in [-1, 1] and G(z), and every ``d_steps`` run steps one generator step."""
    b = x.shape[0]
    # discriminator step: ascend log D(x) + log(1 - D(G(z))), i.e. descend d_real + d_fake
    with run.accumulate(D):
        with torch.no_grad():
            fake = G(noise(run, b, cfg.latent_dim))  # (b, C, S, S)
        real_logits, fake_logits = D(x), D(fake)  # separate real and fake batches (batch norm), (b,) each
        loss_d = (loss_fn.d_real(real_logits) + loss_fn.d_fake(fake_logits)).mean()
        run.backward(loss_d)
        opt_d.step()
        opt_d.zero_grad()
    run.log(loss_d=loss_d, **game_stats(real_logits, fake_logits))
    # generator step, after every d_steps discriminator steps: descend g(D(G(z)))
    if (step + 1) % cfg.d_steps == 0:
        D.requires_grad_(False)  # the generator loss must not leave gradients in D
        with run.accumulate(G):
            loss_g = loss_fn.g(D(G(noise(run, b, cfg.latent_dim)))).mean()
            run.backward(loss_g)
            opt_g.step()
            opt_g.zero_grad()
        D.requires_grad_(True)
        run.log(loss_g=loss_g)


def save_samples(run: Run, G: torch.nn.Module, ema, *inputs: torch.Tensor, nrow: int) -> None:
    """The ``samples`` grid of the EMA generator (else G) in eval mode on fixed inputs (the same in every grid)."""
    net = ema.model if ema is not None else run.unwrap(G)
    was_training = net.training
    with torch.no_grad():
        run.save_grid(net.eval()(*inputs).float(), "samples", nrow=nrow, value_range=(-1.0, 1.0))
    net.train(was_training)


def finish(run: Run, G: torch.nn.Module, ema, config: dict, title: str) -> tuple[torch.nn.Module, Path]:
    """Save the EMA generator (else G) as ``OUT/model`` with ``config`` and plot the game (``game.png``).

    Returns the saved network and its folder."""
    final = ema.model if ema is not None else run.unwrap(G)
    paths = run.finish(save={"model": (final, config)})
    if run.is_main and (run.out / "metrics.jsonl").is_file():
        gan.plot_game(run.out / "metrics.jsonl", run.out / "game.png", title=title)
    return final, paths.get("model", run.out / "model")


def train(cfg: GANConfig) -> Path:
    """Train the MLP GAN; returns the saved generator folder (``OUT/model``)."""
    run = Run(cfg, name="gan")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict)
    arch = {"latent_dim": cfg.latent_dim, "channels": dataset.channels, "size": cfg.size, "hidden": cfg.hidden,
            "layers": cfg.layers}
    G, D = gan.build(arch)
    loss_fn = get_loss(cfg.loss)
    opt_g, opt_d = adam(G.parameters(), cfg), adam(D.parameters(), cfg)
    G, D, opt_g, opt_d = run.prepare(G, D, opt_g, opt_d)
    ema = run.ema(G)
    fixed_z = gan.draw_noise(cfg.seed + 1, 64, cfg.latent_dim).to(run.device)  # (64, Z) the same in every grid
    run.print(f"gan: {arch} | loss {cfg.loss} | d_steps {cfg.d_steps} | "
              f"G {millions(G)}, D {millions(D)}")
    for step, batch in run.loop(run.dataloader(dataset)):
        adversarial_step(run, G, D, opt_g, opt_d, loss_fn, batch["image"] * 2 - 1, step, cfg)  # images in [-1, 1]
        if run.should_sample():
            save_samples(run, G, ema, fixed_z, nrow=8)
    config = {"family": "gan", "arch": arch, "loss": cfg.loss, "d_steps": cfg.d_steps, "data": cfg.data}
    return finish(run, G, ema, config, title=f"gan, {cfg.loss} loss")[1]


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(GANConfig, argv, prog="t2i train gan", description=__doc__)
    print(f"saved {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
