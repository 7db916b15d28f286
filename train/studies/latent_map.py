"""Where the test digits land in a 2-D code: a plain autoencoder next to a VAE.

Trains a 2-D MLP autoencoder and a 2-D MLP VAE (same widths, data, steps) and scatters the
test-set codes (the VAE's posterior means) coloured by class, with the circle holding 95%
of the prior N(0, I). The autoencoder's codes go wherever reconstruction puts them, at
any scale and with gaps between classes; the VAE's KL term pulls them into the prior's
ball, which is why decoding prior samples works for the VAE and not for the AE (see the
``generation`` study). Measured: k-NN (k=5) class accuracy from train codes to test codes,
the share of test codes inside the 95% circle, and the code spread per dimension.

Writes ``latent_map.png`` and ``metrics.json`` into ``--out`` (models in ``models/``).

    t2i study latent-map --out /tmp/latent-map --quick
    t2i study latent-map --out outputs/studies/latent-map          # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from gan_baselines.ae_training import AEConfig, train_autoencoder
from gan_baselines.autoencoders import load_autoencoder
from gan_baselines.studies import encode_all, load_split, write_metrics
from gan_baselines.vae import load_vae
from gan_baselines.vae_training import VAEConfig, train_vae
from t2i.config import parse_config

R95 = math.sqrt(-2 * math.log(0.05))  # radius holding 95% of a 2-D standard normal: P(|z| > r) = exp(-r^2 / 2)


@dataclass
class LatentMapConfig:
    out: str = "outputs/studies/latent-map"  # output folder: figure, metrics.json and the trained models
    data: str = "digits"  # labelled dataset with a test split
    size: int = 32  # image side length in pixels
    hidden: list[int] = field(default_factory=lambda: [256])  # MLP hidden widths of both models
    steps: int = 2000  # training steps per model
    batch_size: int = 64  # batch per step
    lr: float = 2e-3  # Adam learning rate
    beta: float = 1.0  # KL weight of the VAE
    seed: int = 0  # seed of both models
    quick: bool = False  # smoke test: 2 steps per model and 64 test images


def knn_accuracy(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                 test_labels: np.ndarray, k: int = 5) -> float:
    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_codes))).fit(train_codes, train_labels)
    return float((knn.predict(test_codes) == test_labels).mean())


def plot_maps(panels: list[tuple[str, np.ndarray]], labels: np.ndarray, class_names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8))
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (title, codes) in zip(axes, panels):
        for c, name in enumerate(class_names):
            sel = labels == c
            ax.scatter(codes[sel, 0], codes[sel, 1], s=7, color=cmap(c % cmap.N), label=name, alpha=0.8)
        ax.add_patch(plt.Circle((0, 0), R95, fill=False, ls="--", color="black", lw=1, label="95% of N(0, I)"))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.set_aspect("equal", adjustable="datalim")
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, markerscale=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(LatentMapConfig, argv, prog="t2i study latent-map", description=__doc__)
    out = Path(cfg.out)
    steps = 2 if cfg.quick else cfg.steps
    x_train, y_train = load_split(cfg.data, "train", cfg.size)
    x_test, y_test = load_split(cfg.data, "test", cfg.size, n=64 if cfg.quick else None)
    common = dict(data=cfg.data, size=cfg.size, latent_dim=2, hidden=cfg.hidden, steps=steps, batch_size=cfg.batch_size,
                  lr=cfg.lr, seed=cfg.seed, log_every=50)
    ae, _ = load_autoencoder(train_autoencoder(AEConfig(out=str(out / "models" / "ae"), variant="plain", **common)))
    vae, _ = load_vae(train_vae(VAEConfig(out=str(out / "models" / "vae"), beta=cfg.beta, **common)))
    codes = {
        "ae": (encode_all(ae.encode, x_train).numpy(), encode_all(ae.encode, x_test).numpy()),
        "vae": (encode_all(vae.encode, x_train).numpy(), encode_all(vae.encode, x_test).numpy()),  # posterior means
    }
    metrics = {"study": "latent-map", "data": cfg.data, "size": cfg.size, "steps": steps, "hidden": cfg.hidden,
               "test_images": len(x_test)}
    for name, (train_codes, test_codes) in codes.items():
        metrics[name] = {
            "knn5_test_accuracy": knn_accuracy(train_codes, y_train.numpy(), test_codes, y_test.numpy()),
            "share_inside_95pct_prior_circle": float((np.linalg.norm(test_codes, axis=1) < R95).mean()),
            "code_std": test_codes.std(0).tolist(),
            "code_abs_max": float(np.abs(test_codes).max()),
        }
        print(f"{name}: {metrics[name]}")
    class_names = [str(c) for c in range(int(y_train.max()) + 1)]
    plot_maps([(f"autoencoder codes (k-NN acc {metrics['ae']['knn5_test_accuracy']:.2f})", codes["ae"][1]),
               (f"VAE posterior means (k-NN acc {metrics['vae']['knn5_test_accuracy']:.2f})", codes["vae"][1])],
              y_test.numpy(), class_names, out / "latent_map.png")
    write_metrics(out, metrics)
    print(f"wrote {out / 'latent_map.png'}, {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
