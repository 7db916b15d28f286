"""Train a class-conditional GAN (Mirza & Osindero 2014) on DCGAN networks (t2i train cgan).

G(z, y) reads the noise concatenated with a class embedding; D(x, y) reads the image with
the class embedding as extra channels (``--disc concat``), or adds a projection term
(``--disc projection``, Miyato & Koyama 2018). Fake samples get uniformly drawn labels.
The loop is the alternating one of ``t2i train gan``; it logs D(x), D(G(z)), both losses
and V(G, D) (``OUT/game.png``), writes one grid row per class to ``OUT/samples/`` (the last
one is ``t2i sample --model OUT/model --labels 0,1,...,K-1 --n 8 --seed SEED+1``), and
saves the generator under ``OUT/model`` (family "cgan"; ``generate(labels=[3, 7])``). On
digits it ends by scoring ``--eval-n`` samples per class with the project's digits
classifier (``OUT/eval.json``: accuracy against the requested digit, class coverage).

    t2i train cgan --data digits --steps 50 --g-base 16 --d-base 16 --out /tmp/cgan
    t2i train cgan --data digits --steps 2000 --out runs/cgan-digits     # ~4 CPU-minutes, 99% digit accuracy
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_baselines import cgan
from gan_baselines.gan_losses import game_stats, get_loss
from gan_baselines.gan_training import (GANRunConfig, adam, d_augment, finish, millions, noise, save_samples,
                                         shown_network)
from t2i.config import parse_config
from t2i.data import load_dataset, training_options
from t2i.generator import generate_conditions
from t2i.model_card import write_model_card
from t2i.runtime import Run


@dataclass
class CGANConfig(GANRunConfig):
    data: str = "digits"  # labelled data: digits (10 classes) | shapes (28 colour-shape classes) | a labelled folder
    steps: int = 2000  # run steps (each one discriminator step; a generator step every d_steps of them)
    batch_size: int = 64  # real images per discriminator step (the generator step uses as many samples)
    latent_dim: int = 64  # size of the noise z ~ N(0, I)
    embed_dim: int = 16  # size of the class embedding (concat: also the extra input channels of D)
    ema_decay: float = 0.999  # EMA of the generator's weights (the saved model); 0 = off
    disc: str = "concat"  # discriminator conditioning: concat (embedding as input channels) | projection
    g_base: int = 32  # generator channels at the last up-sampling (doubled per layer towards 4x4)
    d_base: int = 32  # discriminator channels after the first convolution (doubled per layer)
    eval_n: int = 100  # digits only: samples per class scored by the digits classifier at the end (eval.json); 0 = off

    def validate(self) -> None:
        super().validate()
        if self.disc not in cgan.DISCRIMINATORS:
            raise ValueError(f"disc must be one of {list(cgan.DISCRIMINATORS)}, got {self.disc!r}")


def random_labels(run: Run, n: int, num_classes: int) -> torch.Tensor:
    """Labels of generated samples, uniform over the classes, from the run's checkpointed generator."""
    return torch.randint(num_classes, (n,), generator=run.generator).to(run.device)


def evaluate(generator: cgan.ClassConditionalGenerator, per_class: int, seed: int) -> dict:
    """Digits: share of samples the project's digits classifier reads as the requested digit, and class coverage.

    ``per_class`` conditions per class (label i of ``[0..K-1] * per_class`` from ``seed + i``), one image each:
    ``t2i sample --labels 0,1,...,9,0,1,... --n 1 --seed SEED`` makes the same images.
    """
    from t2i.evaluators.digits import score_samples

    labels = list(range(generator.num_classes)) * per_class
    images = generate_conditions(generator, labels, seed=seed, n=1)
    return score_samples(images, requested_labels=labels)


def train(cfg: CGANConfig) -> Path:
    """Train the conditional GAN; returns the saved generator folder (``OUT/model``)."""
    run = Run(cfg, name="cgan")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg))
    num_classes = getattr(dataset, "num_classes", None) or 0
    if num_classes < 2:
        raise ValueError(f"cgan needs a labelled dataset (digits, shapes, or a folder with labels); "
                         f"{cfg.data!r} has num_classes={num_classes}")
    arch = {"num_classes": num_classes, "latent_dim": cfg.latent_dim, "embed_dim": cfg.embed_dim,
            "channels": dataset.channels, "size": cfg.size, "g_base": cfg.g_base, "d_base": cfg.d_base,
            "disc": cfg.disc}
    G, D = cgan.build(arch)
    loss_fn = get_loss(cfg.loss)
    opt_g, opt_d = adam(G.parameters(), cfg), adam(D.parameters(), cfg)
    G, D, opt_g, opt_d = run.prepare(G, D, opt_g, opt_d)
    ema = run.ema(G)
    config = {"family": "cgan", "arch": arch, "class_names": list(getattr(dataset, "class_names", None) or []),
              "loss": cfg.loss, "d_steps": cfg.d_steps, "data": cfg.data}
    shown = cgan.ClassConditionalGenerator(shown_network(run, G, ema), config).to(run.device)
    run.print(f"cgan: {arch} | loss {cfg.loss} | d_steps {cfg.d_steps} | "
              f"G {millions(G)}, D {millions(D)}")
    augment = d_augment(run, cfg)  # DiffAugment of D's inputs (--augment), else the identity
    for step, batch in run.loop(run.dataloader(dataset)):
        x = batch["image"] * 2 - 1  # (b, C, S, S) in [-1, 1]
        y = batch["label"]  # (b,)
        b = x.shape[0]
        # discriminator step: ascend log D(x, y) + log(1 - D(G(z, y'), y')), y' uniform
        with run.accumulate(D):
            y_fake = random_labels(run, b, num_classes)
            with torch.no_grad():
                fake = G(noise(run, b, cfg.latent_dim), y_fake)  # (b, C, S, S)
            real_logits, fake_logits = D(augment(x), y), D(augment(fake), y_fake)  # (b,), (b,)
            loss_d = (loss_fn.d_real(real_logits) + loss_fn.d_fake(fake_logits)).mean()
            run.backward(loss_d)
            opt_d.step()
            opt_d.zero_grad()
        run.log(loss_d=loss_d, **game_stats(real_logits, fake_logits))
        # generator step, after every d_steps discriminator steps: descend g(D(G(z, y), y))
        if (step + 1) % cfg.d_steps == 0:
            D.requires_grad_(False)  # the generator loss must not leave gradients in D
            with run.accumulate(G):
                y_gen = random_labels(run, b, num_classes)
                loss_g = loss_fn.g(D(augment(G(noise(run, b, cfg.latent_dim), y_gen)), y_gen)).mean()
                run.backward(loss_g)
                opt_g.step()
                opt_g.zero_grad()
            D.requires_grad_(True)
            run.log(loss_g=loss_g)
        if run.should_sample() and step + 1 < cfg.steps:  # one row per class
            save_samples(run, shown, list(range(num_classes)), seed=cfg.seed + 1, n=8)
    save_samples(run, shown, list(range(num_classes)), seed=cfg.seed + 1, n=8)  # the saved model's grid
    final, model_dir = finish(run, G, ema, config, title=f"cgan ({cfg.disc} D), {cfg.loss} loss")
    if run.is_main and cfg.data == "digits" and cfg.eval_n > 0:
        scores = evaluate(cgan.ClassConditionalGenerator(final.eval(), config).to(run.device), cfg.eval_n, cfg.seed)
        (run.out / "eval.json").write_text(json.dumps(scores, indent=2) + "\n")
        run.print(f"cgan: {100 * scores['accuracy']:.1f}% of {scores['n']} samples classified as the requested digit, "
                  f"{100 * scores['class_coverage']:.0f}% of the classes covered (eval.json)")
    if run.is_main:
        write_model_card(run.out)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(CGANConfig, argv, prog="t2i train cgan", description=__doc__)
    print(f"saved {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
