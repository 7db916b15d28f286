"""Train a DCGAN (Radford et al. 2015) at 32 or 64 px (t2i train dcgan).

Transposed-convolution generator, strided-convolution discriminator, batch norm, LeakyReLU,
Adam(2e-4, beta1 = 0.5), images in [-1, 1] (``gan_baselines.dcgan``). The loop is the
alternating one of ``t2i train gan`` (``gan_baselines.gan_training.adversarial_step``): one
discriminator step per run step, one generator step every ``--d-steps`` steps, with any of
the four losses. Logs D(x), D(G(z)), both losses and V(G, D) (``OUT/game.png`` at the end,
with the -2 log 2 reference); sample grids in ``OUT/samples/`` (the last one is
``t2i sample --model OUT/model --n 64 --seed SEED+1``); the generator under ``OUT/model``
(family "dcgan").

    t2i train dcgan --data shapes --n 512 --steps 50 --g-base 16 --d-base 16 --out /tmp/dcgan
    t2i train dcgan --data shapes --size 64 --steps 5000 --out runs/dcgan64
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from gan_baselines import dcgan
from gan_baselines.gan import UnconditionalGenerator
from gan_baselines.gan_losses import get_loss
from gan_baselines.gan_training import (GANRunConfig, adam, adversarial_step, finish, millions, save_samples,
                                        shown_network)
from t2i.config import parse_config
from t2i.data import load_dataset, training_options
from t2i.model_card import write_model_card
from t2i.runtime import Run


@dataclass
class DCGANConfig(GANRunConfig):
    data: str = "shapes"  # training data: shapes | digits | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards
    size: int = 32  # image side in pixels: 32 or 64 (any power of two in 16..128 works)
    steps: int = 5000  # run steps (each one discriminator step; a generator step every d_steps of them)
    batch_size: int = 64  # real images per discriminator step (the generator step uses as many samples)
    g_base: int = 64  # generator channels at the last up-sampling (doubled per layer towards 4x4)
    d_base: int = 64  # discriminator channels after the first convolution (doubled per layer)


def train(cfg: DCGANConfig) -> Path:
    """Train the DCGAN; returns the saved generator folder (``OUT/model``)."""
    # Copied from train.gan.train with the convolutional networks (each trainer reads top to bottom)
    run = Run(cfg, name="dcgan")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg))
    arch = {"latent_dim": cfg.latent_dim, "channels": dataset.channels, "size": cfg.size, "g_base": cfg.g_base,
            "d_base": cfg.d_base}
    G, D = dcgan.build(arch)
    loss_fn = get_loss(cfg.loss)
    opt_g, opt_d = adam(G.parameters(), cfg), adam(D.parameters(), cfg)
    G, D, opt_g, opt_d = run.prepare(G, D, opt_g, opt_d)
    ema = run.ema(G)
    config = {"family": "dcgan", "arch": arch, "loss": cfg.loss, "d_steps": cfg.d_steps, "data": cfg.data}
    shown = UnconditionalGenerator(shown_network(run, G, ema), config).to(run.device)
    run.print(f"dcgan: {arch} | loss {cfg.loss} | d_steps {cfg.d_steps} | "
              f"G {millions(G)}, D {millions(D)}")
    for step, batch in run.loop(run.dataloader(dataset)):
        adversarial_step(run, G, D, opt_g, opt_d, loss_fn, batch["image"] * 2 - 1, step, cfg)  # images in [-1, 1]
        if run.should_sample() and step + 1 < cfg.steps:
            save_samples(run, shown, [None], seed=cfg.seed + 1, n=64, nrow=8)
    save_samples(run, shown, [None], seed=cfg.seed + 1, n=64, nrow=8)  # = t2i sample --model OUT/model --n 64 --seed SEED+1
    model_dir = finish(run, G, ema, config, title=f"dcgan {cfg.size} px, {cfg.loss} loss")[1]
    if run.is_main:
        write_model_card(run.out)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DCGANConfig, argv, prog="t2i train dcgan", description=__doc__)
    print(f"saved {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
