"""Is an autoencoder a generator? Random codes, interpolation and latent arithmetic, AE vs VAE.

A plain autoencoder has no prior: nothing says where its codes live, so decoding random
``z ~ N(0, I)`` lands between and beyond the training codes. A VAE is trained so that its
posterior stays close to ``N(0, I)`` (the KL term), so the same recipe samples from it.
This study trains both (same MLP, code size and steps) and measures, with the project's
digits classifier (``t2i.evaluators.digits.score_samples``), the decoded prior samples:
mean top-class probability (do they look like some digit?), class coverage and the entropy
of the predicted-class histogram. Coverage comes in two readings: ``class_coverage``
(score_samples: share of the 10 classes predicted at least once, which any noise reaches
with enough samples) and ``confident_classes``: the number of classes that at least one
sample is given with probability >= ``--confident`` (0.5: the classifier's majority
vote), i.e. classes the model draws recognisably, as mode counts require a good sample
per mode. For reference the AE is also sampled from a Gaussian fitted to its codes.

Also shown and scored: linear interpolation between two test digits (mean top-class
probability along the path) and latent arithmetic ``z(x) - mean_z(class of x) +
mean_z(class + 1)`` (share of test digits the classifier then reads as the next class).

Writes ``prior_samples.png``, ``interpolation.png``, ``arithmetic.png``,
``class_histograms.png`` and ``metrics.json`` into ``--out`` (models in ``models/``).

    t2i study generation --out /tmp/generation --quick --classifier PATH
    t2i study generation --out outputs/studies/generation           # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gan_baselines.ae_training import AEConfig, train_autoencoder
from gan_baselines.autoencoders import load_autoencoder
from gan_baselines.studies import encode_all, load_split, save_image_rows, write_metrics
from gan_baselines.vae import load_vae
from gan_baselines.vae_training import VAEConfig, train_vae
from t2i.config import parse_config
from t2i.evaluators.digits import DigitsClassifier, score_samples
from t2i.generator import seeded_noise


@dataclass
class GenerationConfig:
    out: str = "outputs/studies/generation"  # output folder: figures, metrics.json and the trained models
    data: str = "digits"  # the digits dataset (the classifier scores 10 digit classes)
    size: int = 32  # image side length in pixels
    latent_dim: int = 8  # code size of both models
    hidden: list[int] = field(default_factory=lambda: [256])  # MLP hidden widths of both models
    steps: int = 2000  # training steps per model
    batch_size: int = 64  # batch per step
    lr: float = 2e-3  # Adam learning rate
    samples: int = 500  # prior samples scored per model
    interpolation_pair: list[int] = field(default_factory=lambda: [4, 9])  # classes of the two interpolated test digits
    interpolation_steps: int = 10  # images along each interpolation path, ends included
    classifier: str = "digits-classifier"  # the digits classifier: built-in name or folder
    confident: float = 0.5  # a class is drawn recognisably when a sample gets it with at least this probability
    seed: int = 0  # seed of the models and of the sampled codes
    quick: bool = False  # smoke test: 2 steps per model, 64 samples and 64 test images


def plot_histograms(histograms: dict[str, list[int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(histograms)
    for i, (name, counts) in enumerate(histograms.items()):
        ax.bar(np.arange(10) + (i - (len(histograms) - 1) / 2) * width, counts, width, label=name)
    ax.set_xticks(range(10))
    ax.set_xlabel("class predicted by the digits classifier")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(GenerationConfig, argv, prog="t2i study generation", description=__doc__)
    out = Path(cfg.out)
    steps = 2 if cfg.quick else cfg.steps
    n_samples = 64 if cfg.quick else cfg.samples
    classifier = DigitsClassifier.from_pretrained(cfg.classifier)
    x_train, y_train = load_split(cfg.data, "train", cfg.size)
    x_test, y_test = load_split(cfg.data, "test", cfg.size, n=64 if cfg.quick else None)
    common = dict(data=cfg.data, size=cfg.size, latent_dim=cfg.latent_dim, hidden=cfg.hidden, steps=steps,
                  batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log_every=50)
    ae, _ = load_autoencoder(train_autoencoder(AEConfig(out=str(out / "models" / "ae"), variant="plain", **common)))
    vae, _ = load_vae(train_vae(VAEConfig(out=str(out / "models" / "vae"), **common)))
    decoders = {"AE": ae.decode, "VAE": vae.decode}
    encoders = {"AE": ae.encode, "VAE": lambda x: vae.encode(x)[0]}  # the VAE's posterior mean

    # 1. prior samples: the same z ~ N(0, I) through both decoders; the AE also from a Gaussian fitted to its codes
    z = seeded_noise(cfg.seed, 1, n_samples, (cfg.latent_dim,))  # (N, D), one draw from the seed
    train_codes = encode_all(ae.encode, x_train)  # (N_train, D)
    fitted = torch.distributions.MultivariateNormal(
        train_codes.mean(0), torch.cov(train_codes.T) + 1e-5 * torch.eye(cfg.latent_dim))
    with torch.no_grad():
        samples = {"AE, z ~ N(0, I)": ae.decode(z), "VAE, z ~ N(0, I)": vae.decode(z),
                   "AE, z ~ Gaussian fit to its codes": ae.decode(fitted.sample((n_samples,)))}
    scores = {name: score_samples(images, classifier=classifier) for name, images in samples.items()}
    for name, s in scores.items():
        top, predicted = classifier.predict_proba(samples[name]).max(1)
        s["confident_classes"] = int(predicted[top >= cfg.confident].unique().numel())
        print(f"{name}: mean top-class p {s['mean_top_probability']:.3f}  coverage {s['class_coverage']:.2f}  "
              f"confident classes {s['confident_classes']}  entropy {s['histogram_entropy'] + 0.0:.3f} nats")
    save_image_rows([images[i * 12:(i + 1) * 12] for images in samples.values() for i in range(2)],
                    [f"{name}\n({'ab'[i]})" for name in samples for i in range(2)], out / "prior_samples.png",
                    title="decoded random codes")
    plot_histograms({name: s["histogram"] for name, s in scores.items()}, out / "class_histograms.png")

    # 2. interpolation between two test digits, in each model's code space
    a, b = (int((y_test == c).nonzero()[0]) for c in cfg.interpolation_pair)
    t = torch.linspace(0, 1, cfg.interpolation_steps).unsqueeze(1)  # (T, 1)
    paths, path_scores = {}, {}
    with torch.no_grad():
        for name in decoders:
            h = encoders[name](x_test[[a, b]])  # (2, D)
            paths[name] = decoders[name]((1 - t) * h[0] + t * h[1])  # (T, C, S, S)
            probs = classifier.predict_proba(paths[name][1:-1])  # the in-between images
            path_scores[name] = float(probs.max(1).values.mean())
    save_image_rows([x_test[[a, b]], paths["AE"], paths["VAE"]], ["test pair", "AE path", "VAE path"],
                    out / "interpolation.png", title="linear interpolation between two test digits")

    # 3. latent arithmetic: z(x) - mean_z(class y) + mean_z(class y + 1), class means over the train split
    arithmetic, rows = {}, [x_test[:10]]
    with torch.no_grad():
        for name in decoders:
            codes_train = encode_all(encoders[name], x_train)  # (N_train, D)
            means = torch.stack([codes_train[y_train == c].mean(0) for c in range(10)])  # (10, D)
            target = (y_test + 1) % 10
            moved = decoders[name](encode_all(encoders[name], x_test) - means[y_test] + means[target])
            arithmetic[name] = float((classifier.predict_proba(moved).argmax(1) == target).double().mean())
            rows.append(moved[:10])
    save_image_rows(rows, ["test digit", "AE: y -> y+1", "VAE: y -> y+1"], out / "arithmetic.png",
                    title="latent arithmetic z(x) - mean(class y) + mean(class y+1)")
    print(f"interpolation mean top-class p: {path_scores}; arithmetic success: {arithmetic}")

    ae_s, vae_s = scores["AE, z ~ N(0, I)"], scores["VAE, z ~ N(0, I)"]
    metrics = {
        "study": "generation", "data": cfg.data, "size": cfg.size, "steps": steps, "latent_dim": cfg.latent_dim,
        "hidden": cfg.hidden, "samples": n_samples, "classifier": str(classifier.path),
        "prior_samples": scores,
        "vae_beats_ae_on_top_probability": vae_s["mean_top_probability"] > ae_s["mean_top_probability"],
        "vae_beats_ae_on_class_coverage": vae_s["class_coverage"] > ae_s["class_coverage"],
        "confident": cfg.confident,
        "vae_beats_ae_on_confident_classes": vae_s["confident_classes"] > ae_s["confident_classes"],
        "interpolation_pair": list(cfg.interpolation_pair), "interpolation_mean_top_probability": path_scores,
        "arithmetic_success": arithmetic,
    }
    write_metrics(out, metrics)
    print(f"wrote figures and {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
