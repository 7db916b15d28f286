"""Training a VAE or a conditional VAE (``t2i train vae|cvae`` and the latent studies): configs and the loop.

The loop trains the plain VAE (``conditioning="none"``) and the conditional VAE (``label``: a
one-hot class; ``text``: the pooled CLIP embedding of the caption from a frozen
``t2i.text.TextEncoder``) on the negative ELBO with a beta weight (``gan_baselines.vae``).
``train_vae(cfg)`` saves the final model under ``OUT/model`` (family "vae" or "cvae") and measures its
reconstructions of held-out images (``gan_baselines.reconstruction``);
``CVAEConfig`` holds the conditional defaults of ``t2i train cvae``. Sample grids go through
the generator contract, and the last one is drawn after the loop from the saved weights, so it
is ``t2i sample --model OUT/model --n 64 --seed SEED+1``
(plain VAE; conditional: ``--prompts OUT/samples/prompts.txt`` or ``--labels 0,1,...`` with ``--n 8``).

    python -c "from gan_baselines.vae_training import CVAEConfig; print(CVAEConfig().conditioning)"
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from gan_baselines.vae import (CONDITIONINGS, ConvVAE, MLPVAE, VAEGenerator, VAELoss, label_condition,
                               text_condition)
from gan_baselines.reconstruction import measure_reconstructions
from t2i.builtin import reference
from t2i.data import all_captions, load_dataset, require_captions, training_options
from t2i.generator import generate_conditions
from t2i.model_card import write_model_card
from t2i.runtime import Run, RunConfig


@dataclass
class VAEConfig(RunConfig):
    data: str = "digits"  # training data: digits | shapes | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards
    n: int = 0  # use only the first N training items (0 = the whole train split; shapes: 20000)
    steps: int = 3000  # optimiser steps to train for
    batch_size: int = 128  # global batch per optimiser step
    lr: float = 1e-3  # Adam learning rate
    arch: str = "mlp"  # mlp | conv
    latent_dim: int = 16  # size of z
    hidden: list[int] = field(default_factory=lambda: [512, 256])  # MLP hidden widths (encoder; the decoder mirrors them)
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # conv channel widths, one per halving of the image
    loss: str = "bce"  # -log p(x|z): bce (Bernoulli decoder) | mse (Gaussian decoder, fixed variance), summed over pixels
    beta: float = 1.0  # weight of KL(q(z|x) || N(0, I)); 1 = the ELBO, >1 beta-VAE
    kl_warmup: int = 0  # ramp the KL weight linearly from 0 to beta over this many steps (0 = off)
    conditioning: str = "none"  # none (VAE) | label (one-hot class) | text (pooled CLIP embedding of the caption)
    text_encoder: str = "shapes-clip"  # text conditioning: CLIP folder, built-in name or transformers model
    checkpoint_every: int = 0  # write a resumable checkpoint every N steps; 0 = only at the end
    sample_every: int = 0  # save prior samples every N steps (and at the end); 0 = only at the end
    eval_images: int = 256  # test images reconstructed at the end (PSNR, SSIM -> reconstruction_metrics.json); 0 = skip

    aliases: ClassVar[dict[str, str]] = {"clip": "text_encoder"}  # --clip, as the other text trainers name it


def build_model(cfg: VAEConfig, channels: int, cond_dim: int):
    if cfg.arch == "mlp":
        return MLPVAE(channels, cfg.size, cfg.hidden, cfg.latent_dim, cond_dim)
    if cfg.arch == "conv":
        return ConvVAE(channels, cfg.size, cfg.widths, cfg.latent_dim, cond_dim)
    raise ValueError(f"arch must be 'mlp' or 'conv', got {cfg.arch!r}")


def prior_grid_conditions(conditioning: str, dataset: Any, num_classes: int) -> list:
    """The fixed conditions of the prior-sample grids: the first 8 captions, every class (up to 16), or one None."""
    if conditioning == "text":
        return [item["text"] for item in itertools.islice(iter(dataset), 8)]
    if conditioning == "label":
        return list(range(min(num_classes, 16)))
    return [None]


@torch.no_grad()
def save_prior_samples(run: Run, generator: VAEGenerator, conditions: list, seed: int) -> None:
    """The ``samples`` grid: 8 prior samples per condition (64 for the plain VAE) from ``seed``, in eval mode."""
    if not run.is_main:
        return
    was_training = generator.model.training
    generator.model.eval()
    n = 64 if conditions == [None] else 8
    images = generate_conditions(generator, conditions, seed=seed, n=n)
    generator.model.train(was_training)
    run.save_grid(images, "samples", nrow=8)


def train_vae(cfg: VAEConfig) -> Path:
    """Train a (conditional) VAE on the runtime; returns the saved model folder (``OUT/model``)."""
    if cfg.conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {cfg.conditioning!r}")
    if cfg.eval_images < 0:
        raise ValueError(f"eval_images must be >= 0 (0 = skip the held-out measure), got {cfg.eval_images}")
    family = "vae" if cfg.conditioning == "none" else "cvae"
    run = Run(cfg, name=family if family == "vae" else f"cvae-{cfg.conditioning}")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg))
    extra: dict[str, Any] = {}
    encoder = None
    cond_dim = 0
    if cfg.conditioning == "label":
        if not getattr(dataset, "num_classes", 0):
            raise ValueError(f"label conditioning needs a labelled dataset; {cfg.data!r} has no classes "
                             "(use --conditioning text, or digits / shapes)")
        cond_dim = dataset.num_classes
        extra = {"num_classes": dataset.num_classes, "class_names": list(dataset.class_names)}
    elif cfg.conditioning == "text":
        from t2i.text import TextEncoder

        require_captions(dataset, "cvae --conditioning text")
        encoder = TextEncoder.from_pretrained(cfg.text_encoder, device=run.device)
        encoder.warn_truncated_captions(all_captions(dataset))
        cond_dim = encoder.pooled_dim
        extra = {"text_encoder": reference(cfg.text_encoder)}

    def condition(batch: dict[str, Any]) -> torch.Tensor | None:
        """(b, K) condition vectors of a batch, on run.device, or None for the plain VAE."""
        if cfg.conditioning == "label":
            return label_condition(batch["label"].cpu(), cond_dim).to(run.device)
        if cfg.conditioning == "text":
            with torch.no_grad():
                return text_condition(encoder(list(batch["text"])).pooled).to(run.device)
        return None

    grid_conditions = prior_grid_conditions(cfg.conditioning, dataset, cond_dim)
    if run.is_main and cfg.conditioning == "text":
        (run.out / "samples").mkdir(parents=True, exist_ok=True)
        (run.out / "samples" / "prompts.txt").write_text("\n".join(grid_conditions) + "\n")
    model = build_model(cfg, dataset.channels, cond_dim)
    loss_fn = VAELoss(cfg.loss, beta=cfg.beta)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model, opt = run.prepare(model, opt)
    ema = run.ema(model)
    # the prior-sample grids go through the generator contract: = t2i sample --model OUT/model (same conditions, seed)
    prior = VAEGenerator(ema.model if ema is not None else run.unwrap(model),
                         {"family": family, "conditioning": cfg.conditioning, **extra}, encoder).to(run.device)
    run.print(f"{run.name}: {model.config()} | {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    for step, batch in run.loop(run.dataloader(dataset)):
        x, cond = batch["image"], condition(batch)  # (b, C, S, S), (b, K) or None
        # KL annealing (Bowman et al. 2016): beta_t = beta * min(1, t / warmup)
        loss_fn.beta = cfg.beta * min(1.0, (step + 1) / cfg.kl_warmup) if cfg.kl_warmup else cfg.beta
        with run.accumulate(model):
            with run.autocast():
                terms = loss_fn(model, x, cond)  # per-sample -ELBO terms, each (b,)
            loss = terms["loss"].mean()
            run.backward(loss)
            opt.step()
            opt.zero_grad()
        run.log(loss=loss, rec=terms["rec"].mean(), kl=terms["kl"].mean(), beta=loss_fn.beta)
        if run.should_sample():
            with torch.no_grad():
                net = run.unwrap(model)
                shown = x[:8]
                recon = net.reconstruct(shown, None if cond is None else cond[:8]).float()
                run.save_grid(torch.cat([shown, recon]), "reconstructions", nrow=len(shown))
            if step + 1 < cfg.steps:
                save_prior_samples(run, prior, grid_conditions, cfg.seed + 1)
    save_prior_samples(run, prior, grid_conditions, cfg.seed + 1)  # the saved model's grid
    final = ema.model if ema is not None else run.unwrap(model)
    config = {"family": family, "conditioning": cfg.conditioning, **final.config(), "loss": cfg.loss, "beta": cfg.beta,
              "data": cfg.data, **extra}
    paths = run.finish(save={"model": (final, config)})
    if run.is_main and cfg.conditioning == "text":  # the words of its captions, for off-vocabulary warnings
        from t2i.provenance import write_record

        write_record(run.out, cfg.data, dataset, clip=cfg.text_encoder)
    if run.is_main and cfg.eval_images:
        final.eval()
        measure_reconstructions(run, cfg, dataset, n=cfg.eval_images,
                                reconstruct=lambda batch: final.reconstruct(batch["image"].to(run.device),
                                                                            condition(batch)))
    if run.is_main:
        write_model_card(run.out)
    return paths.get("model", run.out / "model")


@dataclass
class CVAEConfig(VAEConfig):
    data: str = "shapes"  # training data: shapes | digits | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards
    arch: str = "conv"  # mlp | conv
    latent_dim: int = 32  # size of z
    conditioning: str = "text"  # label (one-hot class) | text (pooled CLIP embedding of the caption)
