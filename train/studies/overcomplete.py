"""Does an overcomplete autoencoder just copy its input? The identity-map test.

An autoencoder whose code is wider than its input can reconstruct perfectly by learning
the identity, which tells us nothing about the data. The test: feed it images of uniform
random noise, which look nothing like the training data. A near-identity map reconstructs
them well; a regularised one (denoising, sparse, contractive) maps them towards the data
and fails to. We also measure the input-output Jacobian ``J = dr/dx`` at test digits: the
identity has ``J = I`` (relative gap ``||J - I||_F^2 / ||I||_F^2 = 0``, gain ``mean diag J = 1``).

Every model here is the same one-layer overcomplete autoencoder (ReLU code of
``code_factor`` x the pixel count) with a *linear* output: a sigmoid output saturates on the
digits' black background and white strokes, which by itself stops the copy (it binarises),
and would hide what the regulariser does.

The study runs at the digits' native 8 x 8 pixels by default. At 32 px every digit is a
bicubic upsampling of an 8 x 8 image, so 99.9% of the training set's variance lies in
fewer than a hundred of the 1024 pixel directions (``metrics.json`` reports the PCA
counts): no autoencoder trained on it is asked about the other directions, and copying
noise there is neither taught nor prevented by training. At 8 px the data spreads over
the whole input space and the question is meaningful.

Writes ``identity_test.png``, ``noise_error.png`` and ``metrics.json`` into ``--out``.

    t2i study overcomplete --out /tmp/overcomplete --quick
    t2i study overcomplete --out outputs/studies/overcomplete        # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch.autograd.functional import jacobian

from gan_baselines.ae_training import REGULARIZERS, AEConfig, train_autoencoder
from gan_baselines.autoencoders import load_autoencoder
from gan_baselines.studies import load_split, one_per_class, save_image_rows, write_metrics
from t2i.config import parse_config


@dataclass
class OvercompleteConfig:
    out: str = "outputs/studies/overcomplete"  # output folder: figures, metrics.json and the trained models
    data: str = "digits"  # dataset with train and test splits
    size: int = 8  # image side; 8 = the digits' native resolution, where the data spans the pixel space
    code_factor: int = 4  # code size = code_factor * pixels (overcomplete: >= 1)
    regularizers: list[str] = field(default_factory=lambda: ["none", "denoising", "sparse", "contractive"])  # models to compare
    noise: str = "gaussian"  # corruption of the denoising model
    noise_level: float = 0.3  # its level (gaussian std or share of pixels)
    sparse_weight: float = 1e-3  # lambda of the L1 penalty on the code
    contractive_weight: float = 1e-2  # lambda of the squared Frobenius norm of the encoder Jacobian
    steps: int = 2000  # training steps per model
    batch_size: int = 64  # batch per step
    lr: float = 2e-3  # Adam learning rate
    noise_images: int = 256  # uniform-noise test images
    seed: int = 0  # seed of the models and the noise images
    quick: bool = False  # smoke test: 2 steps per model, 32 test and noise images


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the Pearson correlation of their pixels: 1 = a copy up to gain and offset."""
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)).mean())


def pca_components(x: torch.Tensor, share: float = 0.999) -> int:
    """How many principal components hold ``share`` of the variance of the images (N, C, S, S)."""
    flat = x.flatten(1).numpy().astype(np.float64)
    ratios = PCA().fit(flat).explained_variance_ratio_
    return int(np.searchsorted(np.cumsum(ratios), share) + 1)


def jacobian_identity_gap(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Mean over images of ``||J - I||_F^2 / n`` and of ``mean(diag J)`` for ``J = dr/dx`` (n x n)."""
    gaps, gains = [], []
    for xi in x:
        jac = jacobian(lambda v: model.reconstruct(v.unsqueeze(0)).flatten(), xi).reshape(xi.numel(), xi.numel())  # (n, n)
        eye = torch.eye(xi.numel())
        gaps.append(((jac - eye).pow(2).sum() / xi.numel()).item())
        gains.append(jac.diagonal().mean().item())
    return float(np.mean(gaps)), float(np.mean(gains))


def plot_errors(names: list[str], digits: list[float], noise: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, digits, 0.4, label="test digits")
    ax.bar(xs + 0.2, noise, 0.4, label="uniform noise")
    ax.set_xticks(xs, names)
    ax.set_ylabel("reconstruction MSE")
    ax.set_title("overcomplete AEs: copying noise = identity map", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(OvercompleteConfig, argv, prog="t2i study overcomplete", description=__doc__)
    bad = [r for r in cfg.regularizers if r not in REGULARIZERS]
    if bad or not cfg.regularizers:
        raise SystemExit(f"t2i study overcomplete: regularizers must be a non-empty list from {REGULARIZERS}, got {bad}")
    if cfg.code_factor < 1:
        raise SystemExit(f"t2i study overcomplete: code_factor must be >= 1 (an overcomplete code), got {cfg.code_factor}")
    out = Path(cfg.out)
    steps = 2 if cfg.quick else cfg.steps
    n_eval = 32 if cfg.quick else None
    x_train, _ = load_split(cfg.data, "train", cfg.size)
    x_test, y_test = load_split(cfg.data, "test", cfg.size, n=n_eval)
    g = torch.Generator().manual_seed(cfg.seed)
    noise = torch.rand((n_eval or cfg.noise_images, *x_test.shape[1:]), generator=g)  # (M, C, S, S) ~ U[0, 1]
    pixels = x_test[0].numel()
    shown = one_per_class(y_test, 8)
    digit_rows, noise_rows = [x_test[shown]], [noise[:8]]
    digit_labels, noise_labels = ["test digits"], ["noise input"]
    results: dict[str, dict[str, float]] = {}
    for reg in cfg.regularizers:
        folder = train_autoencoder(AEConfig(out=str(out / "models" / reg), variant="overcomplete", regularizer=reg, data=cfg.data,
                                size=cfg.size, latent_dim=cfg.code_factor * pixels, output="linear", noise=cfg.noise,
                                noise_level=cfg.noise_level, sparse_weight=cfg.sparse_weight,
                                contractive_weight=cfg.contractive_weight, steps=steps, batch_size=cfg.batch_size,
                                lr=cfg.lr, seed=cfg.seed, log_every=50))
        model, _ = load_autoencoder(folder)
        with torch.no_grad():
            r_test, r_noise = model.reconstruct(x_test), model.reconstruct(noise)
        gap, gain = jacobian_identity_gap(model, x_test[:32])
        results[reg] = {
            "test_mse": (r_test - x_test).pow(2).mean().item(),
            "noise_mse": (r_noise - noise).pow(2).mean().item(),
            # 0 = noise copied exactly, 1 = no better than answering the constant 0.5 (variance of U[0, 1] = 1/12)
            "noise_relative_error": ((r_noise - noise).pow(2).mean() / (1 / 12)).item(),
            "noise_correlation": correlation(r_noise, noise),  # 1 = the noise comes back (up to gain/offset)
            "jacobian_identity_gap": gap,
            "jacobian_mean_diagonal": gain,
        }
        digit_rows.append(r_test[shown].clamp(0, 1))
        noise_rows.append(r_noise[:8].clamp(0, 1))
        digit_labels.append(f"{reg}\nMSE {results[reg]['test_mse']:.4f}")
        noise_labels.append(f"{reg}\nMSE {results[reg]['noise_mse']:.4f}")
        print(f"{reg:>12}: " + "  ".join(f"{k} {v:.4f}" for k, v in results[reg].items()))
    save_image_rows(noise_rows + digit_rows, noise_labels + digit_labels, out / "identity_test.png",
                    title=f"overcomplete AEs ({cfg.code_factor * pixels}-D code, {pixels} pixels): noise and digits")
    names = list(cfg.regularizers)
    plot_errors(names, [results[r]["test_mse"] for r in names], [results[r]["noise_mse"] for r in names],
                out / "noise_error.png")
    metrics = {
        "study": "overcomplete", "data": cfg.data, "size": cfg.size, "pixels": pixels,
        "code_dim": cfg.code_factor * pixels, "steps": steps, "test_images": len(x_test), "noise_images": len(noise),
        "pca_components_99_9pct": {f"{cfg.size}px": pca_components(x_train)},
        "models": results,
    }
    if cfg.size != 32 and not cfg.quick:  # the argument of the docstring, measured
        metrics["pca_components_99_9pct"]["32px"] = pca_components(load_split(cfg.data, "train", 32)[0])
    if "none" in results:
        others = [r for r in results if r != "none"]
        metrics["unregularised_copies_noise_best"] = all(
            results["none"]["noise_mse"] < results[r]["noise_mse"] for r in others)
    write_metrics(out, metrics)
    print(f"wrote {out / 'identity_test.png'}, {out / 'noise_error.png'}, {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
