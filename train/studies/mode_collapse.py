"""Study: mode collapse per GAN loss, and the saturation argument for the non-saturating loss.

Three measurements, written as PNGs next to ``metrics.json``:

1. **8-Gaussian ring** (Metz et al. 2017): eight modes of std ``sigma`` on a circle. For
   each loss an MLP GAN is trained from the same seed; we report the modes covered (a mode
   is covered when at least ``cover_share`` of the samples are high-quality samples of it)
   and the fraction of high-quality samples (within 3 sigma of a mode). ``ring.png``.
2. **Digits**: a small DCGAN per loss trained with ``t2i train dcgan``; the class histogram
   of its samples by the project's digits classifier (``t2i.evaluators.digits``) shows which
   digits it over- or under-produces (entropy log 10 = 2.303 when balanced). A generator
   that never left noise also lands in one class, with a low classifier confidence and a
   final D(G(z)) near 0; both are reported next to the histogram.
   ``digits_histogram.png`` (skipped, with a note, without a classifier).
3. **Saturation** (Goodfellow et al. 2014, Sec. 3): early in training D rejects fakes
   confidently, D(G(z)) ~ 0. The minimax generator loss log(1 - D(G(z))) then has a
   gradient that vanishes with D(G(z)) (d/dl of -softplus(l) is -sigmoid(l)), while the
   non-saturating -log D(G(z)) keeps a gradient of about 1 per sample (d/dl of
   softplus(-l) is -(1 - sigmoid(l))). From one initial G and a D pre-trained to reject
   it, we follow the generator's gradient norm over the first steps under both losses.
   ``saturation.png``.

    t2i study mode-collapse --out runs/mode-collapse          # ~5 min on 2 CPU cores
    t2i study mode-collapse --out /tmp/mc --quick             # seconds: tiny runs for tests
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gan_baselines.gan import MLPDiscriminator, MLPGenerator
from gan_baselines.gan_losses import LOSSES, get_loss
from t2i.config import config_to_dict, parse_config


@dataclass
class ModeCollapseConfig:
    out: str = "runs/mode-collapse"  # output folder for metrics.json and the figures
    losses: list[str] = field(default_factory=lambda: list(LOSSES))  # losses compared on the ring and on digits
    modes: int = 8  # Gaussians on the ring
    radius: float = 2.0  # ring radius
    sigma: float = 0.05  # standard deviation of each Gaussian
    cover_share: float = 0.01  # a mode is covered when this share of all samples are high-quality samples of it
    ring_steps: int = 2500  # generator steps per ring GAN (one discriminator step each)
    ring_batch: int = 256  # ring minibatch size
    ring_lr: float = 5e-4  # Adam learning rate on the ring (betas 0.5, 0.999)
    ring_samples: int = 2500  # samples drawn to score each ring GAN
    hidden: int = 128  # hidden width of the ring MLPs
    latent_dim: int = 16  # noise size of the ring generator
    digits_losses: list[str] = field(default_factory=lambda: ["minimax", "non-saturating"])  # losses run on digits
    digits_steps: int = 1500  # steps of each digits GAN (t2i train dcgan)
    digits_base: int = 16  # channel base of the digits DCGAN's generator and discriminator
    digits_samples: int = 1000  # generated digits classified per loss
    classifier: str = "digits-classifier"  # digits classifier: a built-in name or a folder
    saturation_pretrain: int = 300  # discriminator steps against the initial G before measuring
    saturation_steps: int = 200  # generator steps during which the gradient norm is recorded
    seed: int = 0  # seed of every run (the same initial networks for every loss)
    quick: bool = False  # seconds-long run for tests: tiny step counts everywhere


def ring_centres(cfg: ModeCollapseConfig) -> torch.Tensor:
    angles = torch.arange(cfg.modes) * 2 * math.pi / cfg.modes
    return cfg.radius * torch.stack([angles.cos(), angles.sin()], dim=1)  # (M, 2)


def sample_ring(cfg: ModeCollapseConfig, n: int, gen: torch.Generator) -> torch.Tensor:
    centres = ring_centres(cfg)
    which = torch.randint(cfg.modes, (n,), generator=gen)
    return centres[which] + cfg.sigma * torch.randn(n, 2, generator=gen)  # (n, 2)


def score_ring(points: torch.Tensor, cfg: ModeCollapseConfig) -> dict:
    """High-quality share (within 3 sigma of a mode) and covered modes."""
    dist = torch.cdist(points, ring_centres(cfg))  # (n, M)
    nearest_d, nearest = dist.min(dim=1)
    good = nearest_d <= 3 * cfg.sigma
    per_mode = torch.bincount(nearest[good], minlength=cfg.modes)  # high-quality samples per mode
    covered = int((per_mode >= cfg.cover_share * len(points)).sum())
    return {"modes_covered": covered, "modes": cfg.modes, "high_quality": good.float().mean().item(),
            "per_mode": per_mode.tolist()}


def ring_nets(cfg: ModeCollapseConfig) -> tuple[MLPGenerator, MLPDiscriminator]:
    torch.manual_seed(cfg.seed)  # the same initial G and D for every loss
    return MLPGenerator(cfg.latent_dim, (2,), cfg.hidden, 3, output="linear"), MLPDiscriminator((2,), cfg.hidden, 3)


def train_ring(cfg: ModeCollapseConfig, loss_name: str, steps: int) -> tuple[MLPGenerator, dict]:
    """Alternating updates (one D step, one G step) on the ring; returns G and its scores."""
    loss_fn = get_loss(loss_name)
    G, D = ring_nets(cfg)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.ring_lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.ring_lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for _ in tqdm(range(steps), desc=f"ring, {loss_name}", leave=False):
        # discriminator step: descend d_real(D(x)) + d_fake(D(G(z)))
        x = sample_ring(cfg, cfg.ring_batch, gen)  # (B, 2)
        z = torch.randn(cfg.ring_batch, cfg.latent_dim, generator=gen)
        with torch.no_grad():
            fake = G(z)
        loss_d = (loss_fn.d_real(D(x)) + loss_fn.d_fake(D(fake))).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # generator step: descend g(D(G(z)))
        z = torch.randn(cfg.ring_batch, cfg.latent_dim, generator=gen)
        loss_g = loss_fn.g(D(G(z))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    with torch.no_grad():
        points = G(torch.randn(cfg.ring_samples, cfg.latent_dim, generator=gen))
    return G, {**score_ring(points, cfg), "points": points}


def saturation(cfg: ModeCollapseConfig, pretrain: int, steps: int) -> dict[str, dict[str, list[float]]]:
    """Generator gradient norms over the first ``steps`` G steps, from one G and a D pre-trained to reject it."""
    G0, D0 = ring_nets(cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    opt_d = torch.optim.Adam(D0.parameters(), lr=cfg.ring_lr, betas=(0.5, 0.999))
    bce = get_loss("minimax")
    for _ in range(pretrain):  # D learns to reject the initial G's samples
        with torch.no_grad():
            fake = G0(torch.randn(cfg.ring_batch, cfg.latent_dim, generator=gen))
        loss_d = (bce.d_real(D0(sample_ring(cfg, cfg.ring_batch, gen))) + bce.d_fake(D0(fake))).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    out = {}
    for name in ("minimax", "non-saturating"):
        loss_fn = get_loss(name)
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.ring_lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.ring_lr, betas=(0.5, 0.999))
        g = torch.Generator().manual_seed(cfg.seed + 3)  # the same noise and data for both losses
        norms, d_fake = [], []
        for _ in range(steps):
            z = torch.randn(cfg.ring_batch, cfg.latent_dim, generator=g)
            logits = D(G(z))  # (B,)
            loss_g = loss_fn.g(logits).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            norms.append(torch.nn.utils.get_total_norm([p.grad for p in G.parameters()]).item())
            d_fake.append(torch.sigmoid(logits).mean().item())
            opt_g.step()
            # keep D in the game with its usual step (same loss for D under both G losses)
            with torch.no_grad():
                fake = G(torch.randn(cfg.ring_batch, cfg.latent_dim, generator=g))
            loss_d = (loss_fn.d_real(D(sample_ring(cfg, cfg.ring_batch, g))) + loss_fn.d_fake(D(fake))).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        out[name] = {"grad_norm": norms, "d_fake": d_fake}
    return out


def digits_histograms(cfg: ModeCollapseConfig, out: Path, steps: int, samples: int) -> dict:
    """Run ``t2i train dcgan`` on digits per loss and classify its samples with the digits classifier."""
    from gan_baselines.registry import load_generator
    from t2i.evaluators.digits import DigitsClassifier, score_samples
    from t2i.generator import generate_conditions
    from train.cli import main as t2i_command  # another command runs through the dispatcher

    try:
        classifier = DigitsClassifier.from_pretrained(cfg.classifier)
    except (FileNotFoundError, OSError) as err:
        return {"skipped": f"no digits classifier at {cfg.classifier!r}: {err}"}
    results = {}
    for name in cfg.digits_losses:
        run = out / f"digits-{name}"
        t2i_command(["train", "dcgan", f"--out={run}", "--data=digits", f"--loss={name}", f"--steps={steps}",
                     f"--seed={cfg.seed}", "--latent-dim=64", f"--g-base={cfg.digits_base}", f"--d-base={cfg.digits_base}",
                     "--checkpoint-every=0", "--sample-every=0", f"--log-every={max(1, min(50, steps))}"])
        generator = load_generator(run / "model")
        per_call = min(samples, 64)  # draws of 64 from seeds seed, seed + 1, ...
        images = generate_conditions(generator, [None] * math.ceil(samples / per_call), seed=cfg.seed,
                                     n=per_call)[:samples]
        results[name] = score_samples(images, classifier=classifier)
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        results[name]["final_d_fake"] = last["d_fake"]  # ~0: D still rejects every sample (saturated G)
    return results


def plot(out: Path, cfg: ModeCollapseConfig, ring: dict, digits: dict, sat: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = ring_centres(cfg)
    fig, axes = plt.subplots(1, len(ring), figsize=(3.2 * len(ring), 3.3), squeeze=False)
    for ax, (name, r) in zip(axes[0], ring.items()):
        pts = r["points"]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color="tab:orange")
        ax.scatter(centres[:, 0], centres[:, 1], s=30, marker="x", color="k")
        ax.set_title(f"{name}\n{r['modes_covered']}/{cfg.modes} modes, {100 * r['high_quality']:.0f}% high quality",
                     fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-1.6 * cfg.radius, 1.6 * cfg.radius)
        ax.set_ylim(-1.6 * cfg.radius, 1.6 * cfg.radius)
    fig.tight_layout()
    fig.savefig(out / "ring.png", dpi=110)
    plt.close(fig)

    scored = {k: v for k, v in digits.items() if isinstance(v, dict) and "histogram" in v}
    if scored:
        fig, ax = plt.subplots(figsize=(7, 3.3))
        width = 0.8 / len(scored)
        for i, (name, s) in enumerate(scored.items()):
            ax.bar([c + i * width for c in range(10)], s["histogram"], width=width,
                   label=f"{name} (entropy {abs(s['histogram_entropy']):.2f} / {s['histogram_entropy_max']:.2f}, "
                         f"confidence {s['mean_top_probability']:.2f})")
        ax.set_xticks([c + 0.4 - width / 2 for c in range(10)], [str(c) for c in range(10)])
        ax.set_xlabel("digit predicted by the digits classifier")
        ax.set_ylabel("generated samples")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "digits_histogram.png", dpi=110)
        plt.close(fig)

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, s in sat.items():
        ax1.plot(s["grad_norm"], label=name)
        ax2.plot(s["d_fake"], label=name)
    ax1.set_yscale("log")
    ax1.set_title("generator gradient norm (D pre-trained to reject G)")
    ax2.set_title("mean D(G(z))")
    p = torch.linspace(1e-4, 1 - 1e-4, 400)
    ax3.plot(p, p, label="minimax: |d/dl log(1 - D)| = D")  # sigmoid(l)
    ax3.plot(p, 1 - p, label="non-saturating: |d/dl -log D| = 1 - D")
    ax3.set_xlabel("D(G(z))")
    ax3.set_title("per-sample gradient w.r.t. the logit")
    for ax in (ax1, ax2):
        ax.set_xlabel("generator step")
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "saturation.png", dpi=110)
    plt.close(fig)


def run(cfg: ModeCollapseConfig) -> dict:
    for name in set(cfg.losses) | set(cfg.digits_losses):
        get_loss(name)  # unknown names fail here, before any training
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    q = cfg.quick
    ring = {name: train_ring(cfg, name, 20 if q else cfg.ring_steps)[1] for name in cfg.losses}
    sat = saturation(cfg, 20 if q else cfg.saturation_pretrain, 10 if q else cfg.saturation_steps)
    digits = digits_histograms(cfg, out, 2 if q else cfg.digits_steps, 16 if q else cfg.digits_samples)
    plot(out, cfg, ring, digits, sat)
    early = 10  # "early in training": the first generator steps
    metrics = {
        "ring": {k: {kk: vv for kk, vv in v.items() if kk != "points"} for k, v in ring.items()},
        "digits": digits,
        "saturation": {name: {"grad_norm_first": s["grad_norm"][0],
                              "grad_norm_mean_early": sum(s["grad_norm"][:early]) / len(s["grad_norm"][:early]),
                              "d_fake_first": s["d_fake"][0]} for name, s in sat.items()},
    }
    (out / "metrics.json").write_text(json.dumps({"config": config_to_dict(cfg), **metrics}, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(ModeCollapseConfig, argv, prog="t2i study mode-collapse", description=__doc__)
    m = run(cfg)
    for name, r in m["ring"].items():
        print(f"ring  {name:15s} modes covered {r['modes_covered']}/{r['modes']}, high quality {r['high_quality']:.3f}")
    for name, s in m["digits"].items():
        if isinstance(s, dict):
            print(f"digits {name:15s} histogram {s['histogram']} entropy {abs(s['histogram_entropy']):.3f} "
                  f"(max {s['histogram_entropy_max']:.3f}), coverage {s['class_coverage']:.2f}, classifier "
                  f"confidence {s['mean_top_probability']:.2f}, final D(G(z)) {s['final_d_fake']:.2g}")
        else:
            print(f"digits: {s}")
    for name, s in m["saturation"].items():
        print(f"saturation {name:15s} D(G(z)) at start {s['d_fake_first']:.4f}, "
              f"G grad norm first {s['grad_norm_first']:.3g}, "
              f"mean of first steps {s['grad_norm_mean_early']:.3g}")
    print(f"wrote {cfg.out}/metrics.json, ring.png, saturation.png" + (", digits_histogram.png" if any(
        isinstance(v, dict) for v in m["digits"].values()) else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
