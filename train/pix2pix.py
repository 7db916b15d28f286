"""Train pix2pix (Isola et al. 2017) on paired images: U-Net generator, PatchGAN, L1 + adversarial loss.

Data (``--data``): a built-in task rendered from the shapes scenes (``outline``, ``greyscale``,
``background``; see ``t2i.data.translation``), or a folder of your image pairs: pix2pix's ``train/`` +
``test/`` (or ``val/``) of side-by-side A|B files (``facades/``), or without splits A|B files (``AB/`` or
at the top) or ``A/`` + ``B/`` with the same names; images of any size and mode, read with ``--resize``,
``--background`` and ``--random-flip`` (a pair flips together). ``t2i data translation`` writes the built-in
tasks in both layouts. The generator maps A to B.

Each run step: a discriminator step on (x, y) real and (x, G(x)) fake pairs (D sees the input: a
conditional GAN), then a generator step on the adversarial term plus lambda * L1 (lambda 100).
``--adv-weight 0`` (or ``--l1-only``) is the L1-only U-Net of the paper's ablation: D is not trained.
Adam(2e-4, beta1 0.5) as the paper; batch norm in both networks. Grids ``OUT/samples/translate_*.png``
show input | output | target rows; at the end the model (``OUT/model``, family "pix2pix") is measured on
``--eval-n`` held-out pairs (the test split; a folder without one: training pairs): PSNR, SSIM and the
shapes evaluator's judgement of the outputs against the scenes' captions, written to ``OUT/eval.json``.

    t2i train pix2pix --data greyscale --n 64 --steps 2 --batch-size 8 --g-base 8 --d-base 8 --eval-n 16 --out /tmp/p2p
    t2i train pix2pix --data greyscale --n 2000 --steps 1500 --batch-size 32 --out runs/p2p-grey
    t2i train pix2pix --data greyscale --n 2000 --steps 1500 --batch-size 32 --l1-only --out runs/l1-grey
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_baselines.translation import Pix2PixLoss, build_pix2pix, receptive_field
from gan_baselines.translation_eval import paired_report, translate
from gan_baselines.gan_training import millions
from t2i.config import parse_config
from t2i.data.translation import load_held_out, load_translation
from t2i.model_card import write_model_card
from t2i.runtime import Run, RunConfig


@dataclass
class Pix2PixConfig(RunConfig):
    data: str = "greyscale"  # a built-in task (outline | greyscale | background) or a folder (train/ + test/ ...)
    size: int = 32  # image side in pixels, a power of two (32 and 64 are measured here; the paper used 256)
    n: int = 2000  # training pairs: a task renders this many; a folder keeps its first N (0 = all)
    steps: int = 1500  # optimiser steps (each one D step and one G step)
    batch_size: int = 32  # pairs per step (the paper uses 1-10 at 256 px; larger batches suit 32 px on CPUs)
    lr: float = 2e-4  # Adam learning rate of both networks (the paper's)
    beta1: float = 0.5  # Adam beta1 (the paper's)
    beta2: float = 0.999  # Adam beta2
    g_base: int = 32  # U-Net channels of the first layer (the paper's 64; doubled per level up to 8x)
    d_base: int = 32  # PatchGAN channels of the first layer (the paper's 64)
    n_layers: int = 0  # PatchGAN stride-2 layers (patch side: 1 -> 16 px, 2 -> 34, 3 -> 70); 0 = by size
    dropout: float = 0.5  # dropout of the first three U-Net decoder layers while training (the paper's 0.5)
    l1_weight: float = 100.0  # lambda of the L1 term (the paper's 100)
    adv_weight: float = 1.0  # weight of the adversarial term; 0 = L1-only U-Net (the ablation), D untrained
    l1_only: bool = False  # the same as --adv-weight 0
    eval_n: int = 500  # held-out pairs measured at the end (the test split's; a folder without one: training pairs)
    sample_every: int = 250  # write an input | output | target grid every N steps (and at the end)
    checkpoint_every: int = 500  # write a resumable checkpoint every N steps; 0 = only at the end

    def validate(self) -> None:
        super().validate()
        if self.adv_weight < 0 or self.l1_weight < 0:
            raise ValueError(f"adv_weight and l1_weight must be >= 0, got {self.adv_weight!r}, {self.l1_weight!r}")
        if self.l1_only and self.adv_weight not in (0.0, 1.0):
            raise ValueError(f"--l1-only means --adv-weight 0; drop one of them (got --adv-weight {self.adv_weight})")
        if self.n < 0 or self.eval_n < 0:
            raise ValueError(f"n and eval_n must be >= 0, got {self.n!r}, {self.eval_n!r}")


def _grid(A: torch.Tensor, out: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return torch.stack([A, out, B], dim=1).flatten(0, 1)  # (3N, C, S, S): input | output | target per row


def train(cfg: Pix2PixConfig) -> Path:
    """Train pix2pix; returns the saved generator folder (``OUT/model``)."""
    run = Run(cfg, name="pix2pix")
    adv_weight = 0.0 if cfg.l1_only else cfg.adv_weight
    dataset = load_translation(cfg.data, size=cfg.size, n=cfg.n, seed=cfg.seed, split="train", resize=cfg.resize,
                               background=cfg.background, random_flip=cfg.random_flip, strict=cfg.strict)
    held_out, held_split = load_held_out(cfg.data, cfg.size, cfg.eval_n or 16, cfg.seed, cfg.resize, cfg.background)
    if held_split == "train":
        run.print(f"pix2pix: {cfg.data} has no test split (test/, val/ or testA/ + testB/): the end-of-run "
                  "measurement reads training images")
    arch = {"size": cfg.size, "channels": dataset.channels, "g_base": cfg.g_base, "d_base": cfg.d_base,
            "n_layers": cfg.n_layers, "dropout": cfg.dropout}
    G, D = build_pix2pix(arch)
    loss = Pix2PixLoss(l1_weight=cfg.l1_weight, adv_weight=adv_weight)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    G, D, opt_g, opt_d = run.prepare(G, D, opt_g, opt_d)
    ema = run.ema(G)
    config = {"family": "pix2pix", "arch": arch, "data": cfg.data, "l1_weight": cfg.l1_weight,
              "adv_weight": adv_weight, "resize": cfg.resize,
              "background": cfg.background}  # how the data was read: t2i translate and the app read inputs alike
    run.print(f"pix2pix: {len(dataset)} pairs of {cfg.data} | G {millions(G)}, D {millions(D)} "
              f"({receptive_field(run.unwrap(D).n_layers)} px patches) | L1 x {cfg.l1_weight}, adversarial x {adv_weight}")
    shown_A, shown_B = held_out.A[:8].float() / 255, held_out.B[:8].float() / 255

    def sample() -> None:
        final = ema.model if ema is not None else run.unwrap(G)
        run.save_grid(_grid(shown_A, translate(final, shown_A), shown_B), "translate", nrow=3 * 4)

    for step, batch in run.loop(run.dataloader(dataset)):
        x, y = batch["A"] * 2 - 1, batch["B"] * 2 - 1  # (b, C, S, S) in [-1, 1]
        # discriminator step: descend -log D(x, y) - log(1 - D(x, G(x))), halved (Eq. 1)
        if adv_weight > 0:
            with run.accumulate(D):
                with torch.no_grad():
                    fake = G(x)  # (b, C, S, S)
                real_logits = D(torch.cat([x, y], 1))  # (b, 1, P, P): D sees the input with the output
                fake_logits = D(torch.cat([x, fake], 1))
                loss_d = loss.d(real_logits, fake_logits).mean()
                run.backward(loss_d)
                opt_d.step()
                opt_d.zero_grad()
            run.log(loss_d=loss_d, d_real=torch.sigmoid(real_logits).mean(), d_fake=torch.sigmoid(fake_logits).mean())
        # generator step: descend adv * softplus(-D(x, G(x))) + lambda |y - G(x)|_1 (Eq. 4)
        D.requires_grad_(False)  # the generator loss must not leave gradients in D
        with run.accumulate(G):
            fake = G(x)
            l1 = loss.l1(fake, y)  # (b,)
            g_adv = loss.g_adv(D(torch.cat([x, fake], 1))) if adv_weight > 0 else torch.zeros_like(l1)
            loss_g = (adv_weight * g_adv + cfg.l1_weight * l1).mean()
            run.backward(loss_g)
            opt_g.step()
            opt_g.zero_grad()
        D.requires_grad_(True)
        run.log(loss_g=loss_g, l1=l1.mean(), g_adv=g_adv.mean())
        if run.should_sample() and step + 1 < cfg.steps:
            sample()
    sample()
    final = ema.model if ema is not None else run.unwrap(G)
    paths = run.finish(save={"model": (final, config)})
    if run.is_main and cfg.eval_n:
        A, B = held_out.A[:cfg.eval_n].float() / 255, held_out.B[:cfg.eval_n].float() / 255
        report = paired_report(translate(final, A), B, held_out.records[:cfg.eval_n], inputs=A)
        report.update(data=cfg.data, split=held_split, adv_weight=adv_weight,
                      steps=cfg.steps)
        (run.out / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
        run.print(f"pix2pix eval: {json.dumps(report)}")
    if run.is_main:
        write_model_card(run.out)
    return paths.get("model", run.out / "model")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(Pix2PixConfig, argv, prog="t2i train pix2pix", description=__doc__)
    print(f"saved {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
