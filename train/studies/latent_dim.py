"""Reconstruction error against code size: MLP autoencoders with latent sizes 2, 5, 10, 32.

An undercomplete autoencoder keeps only what fits through its code. This trains one plain
MLP autoencoder per latent size (same architecture, data, seed and steps) and measures
test-set MSE and PSNR. The 2-D code keeps the rough shape of a digit; by 5 and 10
dimensions the strokes come back (the classic 2-D vs 5-D comparison).

Writes into ``--out``: ``reconstructions.png`` (test originals above their reconstructions
for each size), ``mse_vs_latent.png`` and ``metrics.json``; the models go in ``models/``.

    t2i study latent-dim --out /tmp/latent-dim --quick
    t2i study latent-dim --out outputs/studies/latent-dim          # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from gan_baselines.ae_training import AEConfig, train_autoencoder
from gan_baselines.autoencoders import load_autoencoder, psnr
from gan_baselines.studies import load_split, one_per_class, save_image_rows, write_metrics
from t2i.config import parse_config


@dataclass
class LatentDimConfig:
    out: str = "outputs/studies/latent-dim"  # output folder: figures, metrics.json and the trained models
    data: str = "digits"  # dataset with a test split: digits | shapes | a folder
    size: int = 32  # image side length in pixels
    latent_dims: list[int] = field(default_factory=lambda: [2, 5, 10, 32])  # code sizes to compare
    hidden: list[int] = field(default_factory=lambda: [256])  # MLP hidden widths (the same for every code size)
    steps: int = 1500  # training steps per model
    batch_size: int = 64  # batch per step
    lr: float = 2e-3  # Adam learning rate
    seed: int = 0  # seed of every model (same init scheme and data order)
    quick: bool = False  # smoke test: 2 steps per model and 64 test images


def plot_curve(dims: list[int], mse: list[float], psnr_db: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(dims, mse, "o-", color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("latent size")
    ax.set_ylabel("test MSE", color="tab:blue")
    twin = ax.twinx()
    twin.plot(dims, psnr_db, "s--", color="tab:red")
    twin.set_ylabel("test PSNR (dB)", color="tab:red")
    ax.set_title("reconstruction vs code size")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(LatentDimConfig, argv, prog="t2i study latent-dim", description=__doc__)
    out = Path(cfg.out)
    steps = 2 if cfg.quick else cfg.steps
    x_test, y_test = load_split(cfg.data, "test", cfg.size, n=64 if cfg.quick else None)
    shown = one_per_class(y_test, 10)
    rows, labels, results = [x_test[shown]], ["original"], {}
    for d in cfg.latent_dims:
        folder = train_autoencoder(AEConfig(out=str(out / "models" / f"latent_{d}"), variant="plain", data=cfg.data, size=cfg.size,
                                latent_dim=d, hidden=cfg.hidden, steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                seed=cfg.seed, log_every=50))
        model, _ = load_autoencoder(folder)
        with torch.no_grad():
            recon = torch.cat([model.reconstruct(chunk) for chunk in x_test.split(512)])  # (N, C, S, S)
        mse = (recon - x_test).pow(2).flatten(1).mean(1)  # (N,)
        results[d] = {"mse": mse.mean().item(), "psnr_db": psnr(recon, x_test).mean().item()}
        rows.append(recon[shown])
        labels.append(f"d={d}\nMSE {results[d]['mse']:.4f}")
        print(f"latent {d:>3}: test MSE {results[d]['mse']:.5f}  PSNR {results[d]['psnr_db']:.2f} dB")
    save_image_rows(rows, labels, out / "reconstructions.png", title=f"{cfg.data} test images and reconstructions")
    dims = list(cfg.latent_dims)
    plot_curve(dims, [results[d]["mse"] for d in dims], [results[d]["psnr_db"] for d in dims], out / "mse_vs_latent.png")
    mses = [results[d]["mse"] for d in dims]
    metrics = {
        "study": "latent-dim", "data": cfg.data, "size": cfg.size, "steps": steps, "hidden": cfg.hidden,
        "test_images": len(x_test), "latent_dims": dims,
        "test_mse": {str(d): results[d]["mse"] for d in dims},
        "test_psnr_db": {str(d): results[d]["psnr_db"] for d in dims},
        "mse_strictly_decreasing": all(a > b for a, b in zip(mses, mses[1:])),
    }
    write_metrics(out, metrics)
    print(f"wrote {out / 'reconstructions.png'}, {out / 'mse_vs_latent.png'}, {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
