"""Train the latent-diffusion first stage: a diffusers AutoencoderKL (t2i train vae-kl).

Loss per image: L1 (or L2) reconstruction + ``kl_weight`` * KL(q(z|x) || N(0, I)), plus an
optional PatchGAN hinge term after ``adv_start`` steps (``t2i.diffusion.first_stage``).
At the end the latent scaling factor is measured on the training data (1 / std of posterior
samples) and stored in the VAE's config; the VAE is written in diffusers' layout under
``OUT/vae/`` (``AutoencoderKL.from_pretrained(OUT + "/vae")``), with ``OUT/vae_metrics.json``
(test PSNR, scaling factor) and ``OUT/reconstructions.png`` (top: inputs, bottom: outputs).
``t2i train ldm --vae OUT`` takes the run folder.

Fine-tuning (``--init``, any VAE ``t2i train ldm --vae`` accepts): the first stage of a diffusion model
fitted to new data. ``--train-part decoder`` keeps the encoder, and so the latent space (and scaling
factor) the diffusion model was trained on, fixed and trains only the decoder, as Stability AI's
fine-tuned Stable Diffusion VAEs (``sd-vae-ft-mse``) did; ``all`` trains both and re-measures the factor.

    t2i train vae-kl --data shapes --steps 20 --batch-size 16 --out /tmp/vae-kl
    t2i train vae-kl --preset shapes-f4 --out runs/shapes-vae-kl      # the built-in recipe
    t2i train vae-kl --preset px128 --data my_images/ --out runs/vae128   # px64|px128|px256: README "Resolutions"
    t2i train vae-kl --init shapes-ldm --train-part decoder --data my_images/ --size 64 --out runs/my-vae
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from t2i.config import config_to_dict, parse_config, presets_in
from t2i.data import end_of_run_data, first_items, item_count, load_dataset, training_options
from t2i.diffusion.first_stage import (PatchDiscriminator, VAEPreset, build_vae, hinge_d_loss, hinge_g_loss,
                                       load_vae, measure_scaling_factor, vae_factor, vae_loss)
from t2i.diffusion.training import reconstruct, reconstruction_psnr, to_vae_input
from t2i.model_card import write_model_card
from t2i.runtime import Run, RunConfig

PRESETS = Path(__file__).resolve().parents[1] / "t2i" / "diffusion" / "presets" / "vae_kl"


@dataclass
class VAEKLConfig(RunConfig):
    arch: VAEPreset = "f4-tiny"  # AutoencoderKL preset (f = downsampling factor); unused with --init
    init: str = ""  # fine-tune this VAE (a vae-kl run, pipeline or AutoencoderKL folder, built-in name, hub id); "" = new
    train_part: Literal["all", "decoder"] = "all"  # decoder: encoder frozen, latent space and scaling factor kept
    latent_channels: int = 4  # channels of the latent z
    n: int = 0  # use only the first N training items (0 = the whole train split)
    lr: float = 4e-4  # Adam learning rate
    batch_size: int = 64  # global batch per optimiser step
    steps: int = 3000  # optimiser steps to train for
    kl_weight: float = 1e-4  # weight of the per-dimension KL term (small: a smooth but informative latent)
    rec: Literal["l1", "l2"] = "l1"  # reconstruction loss (mean over pixels)
    adv_weight: float = 0.0  # weight of the PatchGAN hinge term on the decoder; 0 = off
    adv_start: int = 0  # step at which the adversarial term (and the discriminator's training) starts
    scale_images: int = 2048  # training images used to measure the latent scaling factor (1 / std)
    eval_images: int = 512  # test-split images for the reconstruction PSNR in vae_metrics.json
    checkpoint_every: int = 1000  # write a resumable checkpoint every N steps; 0 = only at the end


@torch.no_grad()
def shapes_reconstruction_accuracy(vae, device: torch.device, size: int, n: int = 200) -> dict[str, dict[str, float]]:
    """The shapes evaluator on reconstructions of single-object scenes: the ceiling the first stage
    puts on any latent model (test split, and novel = held-out colour-shape pairs)."""
    import numpy as np
    from PIL import Image

    from t2i.data.shapes import prompts, render
    from t2i.evaluators.shapes import prompt_accuracy

    out = {}
    for split in ("test", "novel"):
        scenes = prompts(n, seed=0, split=split, kind="one", size=size)
        x = torch.stack([torch.from_numpy(np.array(render(r, size))).permute(2, 0, 1) for _, r in scenes])
        x_hat = reconstruct(vae, x.float().div(255).to(device))  # (N, 3, S, S) in [0, 1], on 8-bit levels
        images = [Image.fromarray(a) for a in (x_hat.permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8")]
        acc = prompt_accuracy(images, [caption for caption, _ in scenes])["one"]
        out[split] = {k: acc[k] for k in ("colour", "shape", "size", "position", "all_correct")}
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(VAEKLConfig, argv, prog="t2i train vae-kl", description=__doc__, presets=presets_in(PRESETS))
    run = Run(cfg, name="vae-kl")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg))
    if cfg.init:
        vae = load_vae(cfg.init)
        vae.register_to_config(sample_size=cfg.size)
    elif cfg.train_part != "all":
        raise SystemExit("--train-part decoder fine-tunes an existing VAE: give --init (a VAE, pipeline or built-in name)")
    else:
        vae = build_vae(cfg.arch, sample_size=cfg.size, latent_channels=cfg.latent_channels)
    if cfg.size % vae_factor(vae):
        raise SystemExit(f"--size {cfg.size} must be a multiple of the VAE factor {vae_factor(vae)}")
    if cfg.train_part == "decoder":  # the encoder and its quant_conv define the latent space: frozen
        vae.encoder.requires_grad_(False)
        if vae.quant_conv is not None:
            vae.quant_conv.requires_grad_(False)
    trained = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trained, lr=cfg.lr, betas=(0.5, 0.9))
    models = [vae, opt]
    disc = opt_d = None
    if cfg.adv_weight > 0:
        disc = PatchDiscriminator()
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        models += [disc, opt_d]
    prepared = run.prepare(*models)
    vae, opt = prepared[0], prepared[1]
    if disc is not None:
        disc, opt_d = prepared[2], prepared[3]
    ema = run.ema(vae)
    run.print(f"AutoencoderKL {'from ' + cfg.init if cfg.init else cfg.arch}: factor {vae_factor(run.unwrap(vae))}, "
              f"{sum(p.numel() for p in trained) / 1e6:.2f} M of {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M "
              f"parameters trained ({cfg.train_part}), {item_count(dataset)} images")
    if cfg.init:
        before = reconstruction_psnr(run.unwrap(vae), dataset, run.device, cfg.eval_images)
        run.print(f"reconstruction PSNR of {cfg.init} on the training images before fine-tuning: {before:.2f} dB")

    for step, batch in run.loop(run.dataloader(dataset)):
        x = to_vae_input(batch["image"])  # (B, 3, S, S) in [-1, 1]
        adversarial = disc is not None and step >= cfg.adv_start
        # phase 1, autoencoder: reconstruction + KL (+ hinge generator term -D(x_hat))
        with run.accumulate(vae):
            loss, parts = vae_loss(vae, x, cfg.kl_weight, cfg.rec, generator=run.generator)
            if adversarial:
                loss = loss + cfg.adv_weight * hinge_g_loss(disc(parts["x_hat"]))
            run.backward(loss.mean())
            opt.step()
            opt.zero_grad()
        # phase 2, discriminator: relu(1 - D(x)) + relu(1 + D(x_hat))
        if adversarial:
            with run.accumulate(disc):
                d_loss = hinge_d_loss(disc(x), disc(parts["x_hat"].detach())).mean()
                run.backward(d_loss)
                opt_d.step()
                opt_d.zero_grad()
            run.log(d_loss=d_loss)
        run.log(loss=loss.mean(), rec=parts["rec"].mean(), kl=parts["kl"].mean())
        if run.should_sample():
            run.save_grid(torch.cat([x[:8], parts["x_hat"][:8].detach().clamp(-1, 1)]), "recon", nrow=8,
                          value_range=(-1, 1))

    final = ema.model if ema is not None else run.unwrap(vae)
    final.eval()
    if run.is_main:
        batches = (to_vae_input(b["image"]) for b in torch.utils.data.DataLoader(dataset, batch_size=256))
        if cfg.train_part == "decoder":  # the latent space is the init's: so is its scale
            factor = final.config.scaling_factor
        else:
            factor = measure_scaling_factor(final, batches, max_images=cfg.scale_images)
        final.register_to_config(scaling_factor=factor)  # stored in vae/config.json, read by every pipeline
        final.save_pretrained(str(run.out / "vae"))
        # measured on the first eval_images (digits' test split has only 355 images, fewer than the default)
        test, why = end_of_run_data(cfg, dataset, cfg.eval_images)
        if why:
            run.print(f"vae-kl: no test split ({why}); the PSNR below is measured on training images")
        psnr = reconstruction_psnr(final, test, run.device, cfg.eval_images)
        x = to_vae_input(torch.stack([item["image"] for item in first_items(test, 8)]).to(run.device))
        with torch.no_grad():
            x_hat = final.decode(final.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        from t2i.runtime.grids import save_grid

        save_grid(torch.cat([x, x_hat]), run.out / "reconstructions.png", nrow=len(x), value_range=(-1, 1))
        metrics = {"scaling_factor": factor, "latent_std": 1 / factor, "test_psnr_db": psnr,
                   "factor": vae_factor(final), "latent_shape": [final.config.latent_channels, cfg.size // vae_factor(final),
                                                                cfg.size // vae_factor(final)],
                   "steps": cfg.steps, "config": config_to_dict(cfg)}
        if cfg.data == "shapes" and cfg.eval_images >= 50:
            metrics["reconstruction_prompt_accuracy"] = shapes_reconstruction_accuracy(final, run.device, cfg.size)
        (run.out / "vae_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        run.print(f"scaling factor {factor:.4f} (latent std {1 / factor:.4f}), test PSNR {psnr:.2f} dB "
                  f"-> {run.out / 'vae'}")
        if not math.isfinite(psnr):
            raise SystemExit("reconstruction PSNR is not finite: the VAE diverged")
    run.finish()
    if run.is_main:
        write_model_card(run.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
