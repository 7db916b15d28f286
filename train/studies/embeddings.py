"""How linearly separable are the codes? Logistic-regression probes on AE codes, VAE means, PCA and pixels.

For each code size, a plain MLP autoencoder and an MLP VAE are trained without labels;
then a multinomial logistic regression (scikit-learn, standardised inputs) is fitted on the
train-split codes and scored on the test split. Baselines: PCA of the pixels with the same
number of components (the best linear code of that size, in squared error) and the raw
pixels. A probe measures what the unsupervised code makes linearly available, not what it
contains.

Writes ``probe_accuracy.png`` and ``metrics.json`` into ``--out`` (models in ``models/``).

    t2i study embeddings --out /tmp/embeddings --quick
    t2i study embeddings --out outputs/studies/embeddings           # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gan_baselines.ae_training import AEConfig, train_autoencoder
from gan_baselines.autoencoders import load_autoencoder
from gan_baselines.studies import encode_all, load_split, write_metrics
from gan_baselines.vae import load_vae
from gan_baselines.vae_training import VAEConfig, train_vae
from t2i.config import parse_config


@dataclass
class EmbeddingsConfig:
    out: str = "outputs/studies/embeddings"  # output folder: figure, metrics.json and the trained models
    data: str = "digits"  # labelled dataset with train and test splits
    size: int = 32  # image side length in pixels
    latent_dims: list[int] = field(default_factory=lambda: [2, 10])  # code sizes (AE, VAE and PCA alike)
    hidden: list[int] = field(default_factory=lambda: [256])  # MLP hidden widths of the AE and the VAE
    steps: int = 1500  # training steps per model
    batch_size: int = 64  # batch per step
    lr: float = 2e-3  # Adam learning rate
    seed: int = 0  # seed of the models, PCA and the probes
    quick: bool = False  # smoke test: 2 steps per model, 200 train and 64 test images


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   seed: int = 0) -> float:
    """Test accuracy of a multinomial logistic regression on standardised features."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=seed))
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


def plot_bars(dims: list[int], acc: dict[str, dict[int, float]], pixels: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    names = ["AE code", "VAE mean", "PCA"]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = np.arange(len(dims)) + (i - 1) * width
        ax.bar(xs, [acc[name][d] for d in dims], width, label=name)
    ax.axhline(pixels, color="black", ls="--", lw=1, label=f"raw pixels ({pixels:.2f})")
    ax.set_xticks(np.arange(len(dims)), [f"{d}-D" for d in dims])
    ax.set_ylim(0, 1)
    ax.set_ylabel("linear probe test accuracy")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(EmbeddingsConfig, argv, prog="t2i study embeddings", description=__doc__)
    out = Path(cfg.out)
    steps = 2 if cfg.quick else cfg.steps
    x_train, y_train = load_split(cfg.data, "train", cfg.size, n=200 if cfg.quick else None)
    x_test, y_test = load_split(cfg.data, "test", cfg.size, n=64 if cfg.quick else None)
    ytr, yte = y_train.numpy(), y_test.numpy()
    flat_train, flat_test = x_train.flatten(1).numpy(), x_test.flatten(1).numpy()  # (N, C*S*S)
    acc: dict[str, dict[int, float]] = {"AE code": {}, "VAE mean": {}, "PCA": {}}
    for d in cfg.latent_dims:
        common = dict(data=cfg.data, size=cfg.size, latent_dim=d, hidden=cfg.hidden, steps=steps,
                      batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log_every=50)
        ae, _ = load_autoencoder(train_autoencoder(AEConfig(out=str(out / "models" / f"ae_{d}"), variant="plain", **common)))
        vae, _ = load_vae(train_vae(VAEConfig(out=str(out / "models" / f"vae_{d}"), **common)))
        features = {
            "AE code": (encode_all(ae.encode, x_train).numpy(), encode_all(ae.encode, x_test).numpy()),
            "VAE mean": (encode_all(vae.encode, x_train).numpy(), encode_all(vae.encode, x_test).numpy()),
        }
        pca = PCA(n_components=d, random_state=cfg.seed).fit(flat_train)
        features["PCA"] = (pca.transform(flat_train), pca.transform(flat_test))
        for name, (ftr, fte) in features.items():
            acc[name][d] = probe_accuracy(ftr, ytr, fte, yte, cfg.seed)
        print(f"{d}-D probes: " + "  ".join(f"{name} {acc[name][d]:.3f}" for name in acc))
    pixels = probe_accuracy(flat_train, ytr, flat_test, yte, cfg.seed)
    print(f"raw pixels ({flat_train.shape[1]}-D): {pixels:.3f}")
    dims = list(cfg.latent_dims)
    plot_bars(dims, acc, pixels, out / "probe_accuracy.png")
    metrics = {
        "study": "embeddings", "data": cfg.data, "size": cfg.size, "steps": steps, "hidden": cfg.hidden,
        "train_images": len(x_train), "test_images": len(x_test), "latent_dims": dims,
        "probe_test_accuracy": {name: {str(d): v for d, v in values.items()} for name, values in acc.items()},
        "raw_pixels_probe_test_accuracy": pixels, "raw_pixels_dim": int(flat_train.shape[1]),
    }
    write_metrics(out, metrics)
    print(f"wrote {out / 'probe_accuracy.png'}, {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
