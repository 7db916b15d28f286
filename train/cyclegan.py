"""Train CycleGAN (Zhu et al. 2017) on unpaired images: two generators, two PatchGANs, LSGAN, cycle + identity.

Data (``--data``): a built-in task, or a folder of your images: CycleGAN's ``trainA/``, ``trainB/``
(``testA/``, ``testB/``), or ``A/`` + ``B/`` (``t2i.data.translation``). Two folders of different images are
the two domains, read whole; paired data (built-in tasks, same names, A|B files) is read unpaired: A from
the first half of the items, B from the second half, so no B is the partner of any A. Images of any size
and mode are read with ``--resize`` and ``--background``. G maps A -> B, F maps B -> A; D_B tells real B from
G(A), D_A real A from F(B).

Each run step (Zhu et al. 2017, Eq. 3 and section 4): a generator step on both generators together,
LSGAN terms (D(G(x)) - 1)^2 + cycle lambda |F(G(x)) - x|_1 + |G(F(y)) - y|_1 (lambda 10) + identity
0.5 lambda (|G(y) - y|_1 + |F(x) - x|_1); then a discriminator step on real images and on fakes drawn
from a 50-image history per direction (``ImagePool``, Shrivastava et al. 2017), each D loss halved.
Adam(2e-4, beta1 0.5). Generators are the pix2pix U-Net (the CycleGAN code's ``unet`` option; the
paper's ResNet generator is not implemented here), discriminators PatchGANs with instance norm.

Grids ``OUT/samples/cycle_*.png`` show A | G(A) | F(G(A)) rows. At the end G is saved as ``OUT/model``
and F as ``OUT/model_ba`` (family "cyclegan"), and ``--eval-n`` held-out images are measured in both
directions (``OUT/eval.json``): the cycle error and, where the target domain is on black (so the
shapes evaluator can read it: G(A) for outline/greyscale, F(B) for background), the domain FID of the
outputs against the real target domain on the evaluator's features and whether colour and shape
survive (the evaluator on the outputs against the inputs' captions); for the built-in tasks, whose
true pairs are known, PSNR/SSIM against them. A folder is measured on its test split (its training
images when it has none, and the run says so).

    t2i train cyclegan --data background --n 64 --steps 2 --batch-size 4 --g-base 8 --d-base 8 --eval-n 16 --out /tmp/cg
    t2i train cyclegan --data background --n 2000 --steps 2000 --out runs/cyclegan-bg
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_baselines.gan_training import millions
from gan_baselines.translation import CycleGANLoss, ImagePool, PatchGAN, UNet, default_n_layers, receptive_field
from gan_baselines.translation_eval import paired_report, translate, unpaired_report
from t2i.config import parse_config
from t2i.data.translation import load_held_out, load_translation
from t2i.model_card import write_model_card
from t2i.runtime import Run, RunConfig


@dataclass
class CycleGANConfig(RunConfig):
    data: str = "background"  # a built-in task (outline | greyscale | background) or a folder (trainA/ + trainB/ ...)
    size: int = 32  # image side in pixels, a power of two (32 and 64 are measured here; the paper used 256)
    n: int = 2000  # items before the unpaired split: A from the first half, B from the second (0 = a folder's all)
    steps: int = 2000  # optimiser steps (each one generator step and one discriminator step)
    batch_size: int = 8  # images per domain per step (the paper uses 1)
    lr: float = 2e-4  # Adam learning rate of all four networks (the paper's)
    beta1: float = 0.5  # Adam beta1 (the paper's)
    beta2: float = 0.999  # Adam beta2
    g_base: int = 16  # U-Net channels of the first layer (doubled per level up to 8x)
    d_base: int = 16  # PatchGAN channels of the first layer (the paper's 64)
    n_layers: int = 0  # PatchGAN stride-2 layers (patch side: 1 -> 16 px, 2 -> 34, 3 -> 70); 0 = by size
    cycle_weight: float = 10.0  # lambda of Eq. 3 (the paper's 10)
    identity: float = 0.5  # identity loss weight as a fraction of lambda (the paper's 0.5); 0 = off
    pool_size: int = 50  # generated images kept per direction for the discriminators (the paper's 50); 0 = off
    eval_n: int = 500  # held-out images measured at the end (the test split's; a folder without one: training images)
    sample_every: int = 250  # write an A | G(A) | F(G(A)) grid every N steps (and at the end)
    checkpoint_every: int = 500  # write a resumable checkpoint every N steps; 0 = only at the end

    def validate(self) -> None:
        super().validate()
        if self.cycle_weight < 0 or self.identity < 0 or self.pool_size < 0 or self.n < 0 or self.eval_n < 0:
            raise ValueError("cycle_weight, identity, pool_size, n and eval_n must be >= 0, got "
                             f"{self.cycle_weight!r}, {self.identity!r}, {self.pool_size!r}, {self.n!r}, {self.eval_n!r}")


def train(cfg: CycleGANConfig) -> Path:
    """Train CycleGAN; returns the saved A -> B generator folder (``OUT/model``)."""
    run = Run(cfg, name="cyclegan")
    dataset = load_translation(cfg.data, size=cfg.size, n=cfg.n, seed=cfg.seed, split="train", unpaired=True,
                               resize=cfg.resize, background=cfg.background, random_flip=cfg.random_flip,
                               strict=cfg.strict)
    held_out, held_split = load_held_out(cfg.data, cfg.size, cfg.eval_n or 16, cfg.seed, cfg.resize, cfg.background)
    if held_split == "train":
        run.print(f"cyclegan: {cfg.data} has no test split (test/, val/ or testA/ + testB/): the end-of-run "
                  "measurement reads training images")
    c, n_layers = dataset.channels, cfg.n_layers or default_n_layers(cfg.size)
    arch = {"size": cfg.size, "channels": c, "g_base": cfg.g_base, "d_base": cfg.d_base, "n_layers": n_layers,
            "dropout": 0.0}
    G_ab, G_ba = UNet(cfg.size, c, c, cfg.g_base, dropout=0.0), UNet(cfg.size, c, c, cfg.g_base, dropout=0.0)
    D_a, D_b = PatchGAN(c, cfg.d_base, n_layers, "instance"), PatchGAN(c, cfg.d_base, n_layers, "instance")
    loss = CycleGANLoss(cycle_weight=cfg.cycle_weight, identity=cfg.identity)
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(itertools.chain(G_ab.parameters(), G_ba.parameters()), lr=cfg.lr, betas=betas)
    opt_d = torch.optim.Adam(itertools.chain(D_a.parameters(), D_b.parameters()), lr=cfg.lr, betas=betas)
    G_ab, G_ba, D_a, D_b, opt_g, opt_d = run.prepare(G_ab, G_ba, D_a, D_b, opt_g, opt_d)
    pool_a = run.register("pool_a", ImagePool(cfg.pool_size, seed=cfg.seed))  # history of F(B) for D_A
    pool_b = run.register("pool_b", ImagePool(cfg.pool_size, seed=cfg.seed + 1))  # history of G(A) for D_B
    run.print(f"cyclegan: {len(dataset.A)} A and {len(dataset.B)} B images (unpaired) of {cfg.data} | "
              f"G, F {millions(G_ab)} each, "
              f"D_A, D_B {millions(D_a)} each ({receptive_field(n_layers)} px patches) | cycle x {cfg.cycle_weight}, "
              f"identity x {cfg.identity * cfg.cycle_weight}, pool {cfg.pool_size}")
    shown = held_out.A[:8].float() / 255

    def sample() -> None:
        fake = translate(run.unwrap(G_ab), shown)
        grid = torch.stack([shown, fake, translate(run.unwrap(G_ba), fake)], 1).flatten(0, 1)  # A | G(A) | F(G(A))
        run.save_grid(grid, "cycle", nrow=3 * 4)

    for step, batch in run.loop(run.dataloader(dataset)):
        x, y = batch["A"] * 2 - 1, batch["B"] * 2 - 1  # (b, C, S, S) in [-1, 1], unpaired
        # generator step: descend LSGAN (D(G(x)) - 1)^2 + lambda cycle |F(G(x)) - x|_1 + identity (Eq. 3, section 5.2)
        D_a.requires_grad_(False)
        D_b.requires_grad_(False)
        with run.accumulate(G_ab, G_ba):
            fake_b, fake_a = G_ab(x), G_ba(y)  # (b, C, S, S)
            adv = loss.g_adv(D_b(fake_b)) + loss.g_adv(D_a(fake_a))  # (b,)
            cycle = loss.cycle(G_ba(fake_b), x) + loss.cycle(G_ab(fake_a), y)  # forward and backward cycles
            identity = (loss.identity_loss(G_ab(y), y) + loss.identity_loss(G_ba(x), x)) if cfg.identity > 0 \
                else torch.zeros_like(adv)
            loss_g = (adv + cycle + identity).mean()
            run.backward(loss_g)
            opt_g.step()
            opt_g.zero_grad()
        D_a.requires_grad_(True)
        D_b.requires_grad_(True)
        run.log(loss_g=loss_g, g_adv=adv.mean(), cycle=cycle.mean(), identity=identity.mean())
        # discriminator step: descend 0.5 [(D(y) - 1)^2 + D(G(x))^2] per D, fakes from the 50-image history
        with run.accumulate(D_a, D_b):
            old_b, old_a = pool_b.query(fake_b.detach()), pool_a.query(fake_a.detach())
            loss_d = (loss.d(D_b(y), D_b(old_b)) + loss.d(D_a(x), D_a(old_a))).mean()
            run.backward(loss_d)
            opt_d.step()
            opt_d.zero_grad()
        run.log(loss_d=loss_d)
        if run.should_sample() and step + 1 < cfg.steps:
            sample()
    sample()
    config = {"family": "cyclegan", "arch": arch, "data": cfg.data, "direction": "A->B", "resize": cfg.resize,
              "background": cfg.background}  # how the data was read: t2i translate and the app read inputs alike
    paths = run.finish(save={"model": (run.unwrap(G_ab), config),
                             "model_ba": (run.unwrap(G_ba), {**config, "direction": "B->A"})})
    if run.is_main and cfg.eval_n:
        A, B = held_out.A[:cfg.eval_n].float() / 255, held_out.B[:cfg.eval_n].float() / 255
        rec_a = held_out.records[:cfg.eval_n]
        rec_b = rec_a if held_out.paired else [None] * len(B)  # unpaired folders: B's labels are unknown
        G_final, F_final = run.unwrap(G_ab), run.unwrap(G_ba)
        fake_b, fake_a = translate(G_final, A), translate(F_final, B)
        report = {"A->B": unpaired_report(fake_b, B, translate(F_final, fake_b), A, rec_a),  # judged where B is on black
                  "B->A": unpaired_report(fake_a, A, translate(G_final, fake_a), B, rec_b)}
        if held_out.paired:  # the true partners are known (built-in tasks): pixel metrics too
            for key, out, target in (("A->B", fake_b, B), ("B->A", fake_a, A)):
                paired = paired_report(out, target, [None])
                report[key].update(psnr=paired["psnr"], ssim=paired["ssim"])
        report.update(data=cfg.data, split=held_split, steps=cfg.steps)
        (run.out / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
        run.print(f"cyclegan eval: {json.dumps(report)}")
    if run.is_main:
        write_model_card(run.out)
    return paths.get("model", run.out / "model")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(CycleGANConfig, argv, prog="t2i train cyclegan", description=__doc__)
    print(f"saved {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
