"""Training an autoencoder (``t2i train ae`` and the AE studies): the config, the variants and the loop.

Each variant is an architecture plus a loss from ``gan_baselines.autoencoders``; the
defaults a variant fills in (code size, hidden layers, code activation) are in ``VARIANTS``
and any of them can be set. ``train_autoencoder(cfg)`` runs the loop on the shared runtime
and saves the final model under ``OUT/model`` (``config.json`` with family "ae" +
``model.safetensors``), then measures it on held-out images (``gan_baselines.reconstruction``). The
command is ``train/ae.py``; the studies in ``train/studies/`` call ``train_autoencoder`` with their own
configs.

    python -c "from gan_baselines.ae_training import AEConfig, model_config_for; print(model_config_for(AEConfig(), 1))"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_baselines.autoencoders import (
    ContractiveLoss, ConvAutoencoder, DenoisingLoss, MLPAutoencoder, ReconstructionLoss, SparseLoss,
)
from gan_baselines.reconstruction import measure_reconstructions
from t2i.data import load_dataset, training_options
from t2i.model_card import write_model_card
from t2i.runtime import Run, RunConfig

# variant -> defaults for the options left unset (None / 0 / "")
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"arch": "mlp", "hidden": [512, 256], "latent_dim": 16, "code_activation": "none"},
    "conv": {"arch": "conv", "latent_dim": 16, "code_activation": "none"},
    "denoising": {"arch": "mlp", "hidden": [512, 256], "latent_dim": 16, "code_activation": "none"},
    "sparse": {"arch": "mlp", "hidden": [512], "latent_dim": 256, "code_activation": "relu"},
    # one sigmoid layer, as in Rifai et al. (2011): the contractive penalty has a closed form
    "contractive": {"arch": "mlp", "hidden": [], "latent_dim": 256, "code_activation": "sigmoid"},
    # code twice as wide as the image (latent_dim -2 = 2 x pixels)
    "overcomplete": {"arch": "mlp", "hidden": [], "latent_dim": -2, "code_activation": "relu"},
}
REGULARIZERS = ("none", "denoising", "sparse", "contractive")
MAX_STATS_DIM = 64  # code statistics are stored in config.json for codes up to this size


@dataclass
class AEConfig(RunConfig):
    variant: str = "plain"  # plain | conv | denoising | sparse | contractive | overcomplete
    data: str = "digits"  # training data: digits | shapes | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards
    n: int = 0  # use only the first N training items (0 = the whole train split)
    steps: int = 2000  # optimiser steps to train for
    batch_size: int = 128  # global batch per optimiser step
    lr: float = 1e-3  # Adam learning rate
    latent_dim: int = 0  # code size; 0 = the variant's default (see VARIANTS; overcomplete: twice the pixel count)
    hidden: list[int] | None = None  # MLP hidden widths, e.g. 512,256 (empty: a single layer); unset = the variant's default
    widths: list[int] | None = None  # conv channel widths, one per halving of the image; unset = 32,64,128
    code_activation: str = ""  # activation on the code: none | relu | sigmoid | tanh; "" = the variant's default
    output: str = "sigmoid"  # decoder output: sigmoid (images in [0, 1]) | linear (can represent the identity; mse only)
    loss: str = "mse"  # reconstruction loss: mse | bce (both per pixel, averaged over pixels)
    regularizer: str = "denoising"  # overcomplete only: none | denoising | sparse | contractive
    noise: str = "gaussian"  # denoising corruption: gaussian | masking | salt_pepper
    noise_level: float = 0.3  # gaussian: noise std; masking, salt_pepper: share of pixels destroyed
    random_level: bool = False  # draw each image's noise level uniformly from [0, noise_level] (a blind denoiser)
    sparse_weight: float = 1e-3  # lambda of the L1 penalty on the code (sparse, overcomplete+sparse)
    contractive_weight: float = 1e-2  # lambda of the squared Frobenius norm of the encoder Jacobian
    checkpoint_every: int = 0  # write a resumable checkpoint every N steps; 0 = only at the end
    eval_images: int = 256  # test images reconstructed at the end (PSNR, SSIM -> reconstruction_metrics.json); 0 = skip


def model_config_for(cfg: AEConfig, channels: int) -> dict[str, Any]:
    """The model config (arch, sizes, activation) after filling in the variant's defaults."""
    if cfg.variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {cfg.variant!r}")
    if cfg.regularizer not in REGULARIZERS:
        raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {cfg.regularizer!r}")
    if cfg.output == "linear" and cfg.loss == "bce":
        raise ValueError("loss 'bce' needs output 'sigmoid' (a Bernoulli mean); use --loss mse with --output linear")
    d = dict(VARIANTS[cfg.variant])
    pixels = channels * cfg.size * cfg.size
    latent = cfg.latent_dim or d["latent_dim"]
    latent = -latent * pixels if latent < 0 else latent
    activation = cfg.code_activation or d["code_activation"]
    if cfg.variant == "overcomplete":
        if latent < pixels:
            raise ValueError(f"an overcomplete code needs latent_dim >= the {pixels} input values, got {latent}")
    model = {"arch": d["arch"], "channels": channels, "size": cfg.size, "latent_dim": latent,
             "code_activation": activation, "output": cfg.output}
    if d["arch"] == "mlp":
        model["hidden"] = list(d["hidden"] if cfg.hidden is None else cfg.hidden)
    else:
        model["widths"] = list(cfg.widths or [32, 64, 128])
    return model


def make_loss(cfg: AEConfig):
    """The variant's per-sample loss callable."""
    kind = cfg.variant if cfg.variant != "overcomplete" else cfg.regularizer
    if kind == "denoising":
        return DenoisingLoss(cfg.loss, noise=cfg.noise, level=cfg.noise_level, random_level=cfg.random_level)
    if kind == "sparse":
        return SparseLoss(cfg.loss, weight=cfg.sparse_weight)
    if kind == "contractive":
        return ContractiveLoss(cfg.loss, weight=cfg.contractive_weight)
    return ReconstructionLoss(cfg.loss)  # plain, conv, overcomplete without a regulariser


def build_model(model_config: dict[str, Any]) -> nn.Module:
    keys = ("channels", "size", "latent_dim", "code_activation", "output")
    if model_config["arch"] == "conv":
        return ConvAutoencoder(widths=model_config["widths"], **{k: model_config[k] for k in keys})
    return MLPAutoencoder(hidden=model_config["hidden"], **{k: model_config[k] for k in keys})


@torch.no_grad()
def code_stats(model: nn.Module, dataset, device: torch.device, max_items: int = 2048) -> dict[str, list[float]]:
    """Per-dimension mean, std, min and max of the codes of up to ``max_items`` training images."""
    codes = []
    loader = torch.utils.data.DataLoader(dataset, batch_size=256)
    seen = 0
    for batch in loader:
        codes.append(model.encode(batch["image"].to(device)).float().cpu())  # (B, D)
        seen += len(codes[-1])
        if seen >= max_items:
            break
    h = torch.cat(codes)[:max_items]  # (N, D)
    return {"code_mean": h.mean(0).tolist(), "code_std": h.std(0).tolist(),
            "code_min": h.min(0).values.tolist(), "code_max": h.max(0).values.tolist()}


def train_autoencoder(cfg: AEConfig) -> Path:
    """Train one autoencoder on the runtime; returns the saved model folder (``OUT/model``)."""
    if cfg.eval_images < 0:
        raise ValueError(f"eval_images must be >= 0 (0 = skip the held-out measure), got {cfg.eval_images}")
    run = Run(cfg, name=f"ae-{cfg.variant}")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg))
    model_config = model_config_for(cfg, dataset.channels)
    model = build_model(model_config)
    loss_fn = make_loss(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model, opt = run.prepare(model, opt)
    ema = run.ema(model)
    params = sum(p.numel() for p in model.parameters())
    run.print(f"ae-{cfg.variant}: {model_config} | {params / 1e6:.2f} M parameters | loss {type(loss_fn).__name__}")
    for step, batch in run.loop(run.dataloader(dataset)):
        x = batch["image"]  # (b, C, S, S) in [0, 1]
        with run.accumulate(model):
            with run.autocast():
                terms = loss_fn(model, x)  # per-sample terms, each (b,)
            loss = terms["loss"].mean()
            run.backward(loss)
            opt.step()
            opt.zero_grad()
        run.log(**{k: v.mean() for k, v in terms.items()})
        if run.should_sample():
            with torch.no_grad():
                net = run.unwrap(model)
                shown = x[:8]
                run.save_grid(torch.cat([shown, net.reconstruct(shown).float()]), "reconstructions", nrow=len(shown))
    final = ema.model if ema is not None else run.unwrap(model)
    config = {"family": "ae", "variant": cfg.variant, **model_config, "loss": cfg.loss, "data": cfg.data}
    if model_config["latent_dim"] <= MAX_STATS_DIM:  # ranges for latent sliders (the app's latent tab)
        config.update(code_stats(final.eval(), dataset, run.device))
    if cfg.variant in ("denoising", "overcomplete"):
        config.update(regularizer=cfg.regularizer if cfg.variant == "overcomplete" else "denoising",
                      noise=cfg.noise, noise_level=cfg.noise_level, random_level=cfg.random_level)
    paths = run.finish(save={"model": (final, config)})
    if run.is_main and cfg.eval_images:
        final.eval()
        measure_reconstructions(run, cfg, dataset, lambda batch: final.reconstruct(batch["image"].to(run.device)),
                                n=cfg.eval_images)
    if run.is_main:
        write_model_card(run.out)
    return paths.get("model", run.out / "model")
