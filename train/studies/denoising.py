"""Denoising: a plain autoencoder against a denoising autoencoder on corrupted test images.

Both are the same MLP autoencoder, trained for the same steps; the denoising one sees
``x~ = corrupt(x)`` and is asked for the clean ``x`` (Vincent et al. 2008), with each
image's noise level drawn from [0, ``train_level``] so one model serves every level: a
model trained at one high level over-smooths lightly corrupted images (at Gaussian 0.1
it is then no better than the plain AE), and the test level 0.5 lies beyond the training
range on purpose. On test images
corrupted at three noise levels we measure PSNR against the clean image of: the noisy
input itself, the plain AE's output and the denoising AE's output. A plain AE partly
denoises by accident (its narrow code cannot hold the noise); the denoising AE is trained
to map every corrupted neighbour of a digit back onto it.

Writes ``denoising.png`` (clean / noisy / plain AE / denoising AE rows per level),
``psnr_vs_noise.png`` and ``metrics.json`` into ``--out`` (models in ``models/``).

    t2i study denoising --out /tmp/denoising --quick
    t2i study denoising --out outputs/studies/denoising            # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from gan_baselines.ae_training import AEConfig, train_autoencoder
from gan_baselines.autoencoders import load_autoencoder, psnr
from gan_baselines.corruption import check_corruption, corrupt
from gan_baselines.studies import load_split, one_per_class, save_image_rows, write_metrics
from t2i.config import parse_config


@dataclass
class DenoisingConfig:
    out: str = "outputs/studies/denoising"  # output folder: figures, metrics.json and the trained models
    data: str = "digits"  # dataset with a test split
    size: int = 32  # image side length in pixels
    noise: str = "gaussian"  # corruption: gaussian | masking | salt_pepper
    levels: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5])  # test noise levels (std or share of pixels)
    train_level: float = 0.3  # the denoising AE is trained at levels drawn uniformly from [0, train_level]
    latent_dim: int = 32  # code size of both autoencoders
    hidden: list[int] = field(default_factory=lambda: [256])  # MLP hidden widths of both autoencoders
    steps: int = 1500  # training steps per model
    batch_size: int = 64  # batch per step
    lr: float = 2e-3  # Adam learning rate
    seed: int = 0  # seed of both models and of the test corruption
    quick: bool = False  # smoke test: 2 steps per model and 64 test images


def plot_psnr(levels: list[float], table: dict[str, list[float]], noise: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, style in (("noisy input", "k:"), ("plain AE", "o-"), ("denoising AE", "s-")):
        ax.plot(levels, table[name], style, label=name)
    ax.set_xlabel(f"{noise} noise level")
    ax.set_ylabel("test PSNR vs clean (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DenoisingConfig, argv, prog="t2i study denoising", description=__doc__)
    for level in [*cfg.levels, cfg.train_level]:
        check_corruption(cfg.noise, level)
    out = Path(cfg.out)
    steps = 2 if cfg.quick else cfg.steps
    x_test, y_test = load_split(cfg.data, "test", cfg.size, n=64 if cfg.quick else None)
    common = dict(data=cfg.data, size=cfg.size, latent_dim=cfg.latent_dim, hidden=cfg.hidden, steps=steps,
                  batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log_every=50)
    plain, _ = load_autoencoder(train_autoencoder(AEConfig(out=str(out / "models" / "plain"), variant="plain", **common)))
    dae, _ = load_autoencoder(train_autoencoder(AEConfig(out=str(out / "models" / "denoising"), variant="denoising",
                                             noise=cfg.noise, noise_level=cfg.train_level, random_level=True,
                                             **common)))
    shown = one_per_class(y_test, 8)
    rows, labels = [x_test[shown]], ["clean"]
    table: dict[str, list[float]] = {"noisy input": [], "plain AE": [], "denoising AE": []}
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        for level in cfg.levels:
            noisy = corrupt(x_test, cfg.noise, level, generator=g)  # the same corrupted images for both models
            outputs = {"noisy input": noisy, "plain AE": plain.reconstruct(noisy),
                       "denoising AE": dae.reconstruct(noisy)}
            for name, images in outputs.items():
                table[name].append(psnr(images, x_test).mean().item())
                rows.append(images[shown])
                labels.append(f"{name}\n{cfg.noise} {level:g}\n{table[name][-1]:.1f} dB")
            print(f"{cfg.noise} {level:g}: " + "  ".join(f"{k} {v[-1]:.2f} dB" for k, v in table.items()))
    save_image_rows(rows, labels, out / "denoising.png", title="PSNR against the clean test image")
    plot_psnr(list(cfg.levels), table, cfg.noise, out / "psnr_vs_noise.png")
    wins = [d > p for d, p in zip(table["denoising AE"], table["plain AE"])]
    metrics = {
        "study": "denoising", "data": cfg.data, "size": cfg.size, "steps": steps, "noise": cfg.noise,
        "train_level": cfg.train_level, "latent_dim": cfg.latent_dim, "hidden": cfg.hidden, "test_images": len(x_test),
        "levels": list(cfg.levels),
        "psnr_db": {name: dict(zip(map(str, cfg.levels), values)) for name, values in table.items()},
        "denoising_beats_plain_at_every_level": all(wins),
    }
    write_metrics(out, metrics)
    print(f"wrote {out / 'denoising.png'}, {out / 'psnr_vs_noise.png'}, {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
