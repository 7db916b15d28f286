"""Train the vanilla GAN (MLP generator and discriminator) by alternating updates (t2i train gan).

Goodfellow et al. (2014), Algorithm 1: every run step is one discriminator step on a
minibatch of real images and one of generated ones; every ``--d-steps``-th step (k in the
paper) is followed by one generator step on fresh noise. ``--loss`` picks the objective
(``gan_baselines.gan_losses``): ``minimax`` (G minimises log(1 - D(G(z)))),
``non-saturating`` (G maximises log D(G(z))), ``least-squares`` or ``hinge``.

Every run logs D(x), D(G(z)), both losses and the estimate of V(G, D) to
``OUT/metrics.jsonl``, and at the end plots them with the -2 log 2 equilibrium reference
to ``OUT/game.png``; sample grids go to ``OUT/samples/`` (the last one is
``t2i sample --model OUT/model --n 64 --seed SEED+1``). The generator is saved under
``OUT/model`` (family "gan"). The pieces every GAN trainer shares are in ``gan_baselines.gan_training``.

    t2i train gan --data digits --steps 50 --out /tmp/gan
    t2i train gan --data digits --loss minimax --d-steps 2 --steps 2000 --out runs/gan-minimax
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gan_baselines import gan
from gan_baselines.gan_losses import get_loss
from gan_baselines.gan_training import (GANRunConfig, adam, adversarial_step, finish, millions, save_samples,
                                        shown_network)
from t2i.config import parse_config
from t2i.data import load_dataset, training_options
from t2i.model_card import write_model_card
from t2i.runtime import Run


@dataclass
class GANConfig(GANRunConfig):
    data: str = "digits"  # training data: digits | shapes | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards
    steps: int = 3000  # run steps (each one discriminator step; a generator step every d_steps of them)
    batch_size: int = 64  # real images per discriminator step (the generator step uses as many samples)
    latent_dim: int = 64  # size of the noise z ~ N(0, I)
    hidden: int = 512  # width of the hidden layers of both MLPs
    layers: int = 3  # hidden layers of both MLPs


def train(cfg: GANConfig) -> Path:
    """Train the MLP GAN; returns the saved generator folder (``OUT/model``)."""
    run = Run(cfg, name="gan")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg))
    arch = {"latent_dim": cfg.latent_dim, "channels": dataset.channels, "size": cfg.size, "hidden": cfg.hidden,
            "layers": cfg.layers}
    G, D = gan.build(arch)
    loss_fn = get_loss(cfg.loss)
    opt_g, opt_d = adam(G.parameters(), cfg), adam(D.parameters(), cfg)
    G, D, opt_g, opt_d = run.prepare(G, D, opt_g, opt_d)
    ema = run.ema(G)
    config = {"family": "gan", "arch": arch, "loss": cfg.loss, "d_steps": cfg.d_steps, "data": cfg.data}
    shown = gan.UnconditionalGenerator(shown_network(run, G, ema), config).to(run.device)
    run.print(f"gan: {arch} | loss {cfg.loss} | d_steps {cfg.d_steps} | "
              f"G {millions(G)}, D {millions(D)}")
    for step, batch in run.loop(run.dataloader(dataset)):
        adversarial_step(run, G, D, opt_g, opt_d, loss_fn, batch["image"] * 2 - 1, step, cfg)  # images in [-1, 1]
        if run.should_sample() and step + 1 < cfg.steps:
            save_samples(run, shown, [None], seed=cfg.seed + 1, n=64, nrow=8)
    save_samples(run, shown, [None], seed=cfg.seed + 1, n=64, nrow=8)  # = t2i sample --model OUT/model --n 64 --seed SEED+1
    model_dir = finish(run, G, ema, config, title=f"gan, {cfg.loss} loss")[1]
    if run.is_main:
        write_model_card(run.out)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(GANConfig, argv, prog="t2i train gan", description=__doc__)
    print(f"saved {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
