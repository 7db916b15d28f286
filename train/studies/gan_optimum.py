"""Study: train D against a fixed generator and compare it with the optimal D* = p_r / (p_r + p_g).

Goodfellow et al. (2014), Proposition 1: for a fixed G the discriminator that maximises

    V(G, D) = E_{x~p_r} log D(x) + E_{x~p_g} log(1 - D(x))                       (Eq. 1)

is D*(x) = p_r(x) / (p_r(x) + p_g(x))                                             (Eq. 2)
and Theorem 1: V(G, D*) = -2 log 2 + 2 JSD(p_r || p_g).

Here p_r is a 1-D mixture of Gaussians and p_g a fixed Gaussian, both with known
densities. D = sigmoid(MLP(x)) is trained by gradient ascent on V, where the expectations
are integrals over a fine grid (a full-batch expectation, no sampling noise), with the
discriminator loss of ``gan_baselines.gan_losses.MinimaxLoss``. We report the max and mean
|D - D*| over the support (where p_r + p_g is not negligible) and compare V(G, D) with the
closed form computed by numerical integration. Writes ``metrics.json`` and
``gan_optimum.png`` (densities, D and D*; V during training against the closed form).

    t2i study gan-optimum --out runs/gan-optimum          # ~20 s on CPU
    t2i study gan-optimum --out /tmp/go --quick           # a few seconds, looser fit
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from gan_baselines.gan_losses import EQUILIBRIUM_VALUE, MinimaxLoss
from t2i.config import config_to_dict, parse_config


@dataclass
class GanOptimumConfig:
    out: str = "runs/gan-optimum"  # output folder for metrics.json and gan_optimum.png
    real_means: list[float] = field(default_factory=lambda: [-2.0, 1.5])  # means of the real mixture p_r
    real_stds: list[float] = field(default_factory=lambda: [0.6, 0.8])  # standard deviations of the mixture components
    real_weights: list[float] = field(default_factory=lambda: [0.4, 0.6])  # mixture weights (normalised to sum to 1)
    fake_mean: float = 0.5  # mean of the fixed generator's Gaussian p_g
    fake_std: float = 1.5  # standard deviation of p_g
    grid_min: float = -8.0  # left end of the integration grid
    grid_max: float = 8.0  # right end of the integration grid
    grid_points: int = 4001  # grid points for the expectations (trapezoid rule)
    support_density: float = 1e-3  # the support is where p_r + p_g >= this; errors are measured there
    hidden: int = 64  # width of the discriminator MLP's two hidden layers (tanh: smooth)
    steps: int = 1500  # Adam ascent steps on V(G, D)
    lr: float = 1e-2  # Adam learning rate (cosine-decayed to 1% of it)
    lbfgs_steps: int = 200  # L-BFGS iterations after Adam to finish the convergence (0 = none)
    seed: int = 0  # seed of the MLP's initialisation
    quick: bool = False  # a few-second run for tests: 1001 grid points, 300 Adam and 100 L-BFGS steps


def mixture_density(x: torch.Tensor, means, stds, weights) -> torch.Tensor:
    """Density of a 1-D Gaussian mixture at ``x`` (N,)."""
    w = torch.tensor(weights, dtype=x.dtype)
    w = w / w.sum()
    mu, sd = torch.tensor(means, dtype=x.dtype), torch.tensor(stds, dtype=x.dtype)
    z = (x[:, None] - mu) / sd  # (N, K)
    comp = torch.exp(-0.5 * z**2) / (sd * math.sqrt(2 * math.pi))  # (N, K)
    return comp @ w  # (N,)


def jsd(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> float:
    """JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, by the trapezoid rule on grid ``x``."""
    m = 0.5 * (p + q)
    kl_p = torch.where(p > 0, p * torch.log(p / m), torch.zeros_like(p))
    kl_q = torch.where(q > 0, q * torch.log(q / m), torch.zeros_like(q))
    return float(0.5 * torch.trapezoid(kl_p, x) + 0.5 * torch.trapezoid(kl_q, x))


class Discriminator1D(nn.Module):
    """A smooth MLP: x -> logit, with D(x) = sigmoid(logit)."""

    def __init__(self, hidden: int, scale: float):
        super().__init__()
        self.scale = scale  # inputs are divided by this so the MLP sees x in about [-1, 1]
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N,) -> (N,)
        return self.net(x[:, None] / self.scale).squeeze(-1)


def value(logits: torch.Tensor, p_r: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """V(G, D) = int p_r log D + p_g log(1 - D) dx, with the minimax discriminator loss's per-point terms."""
    loss = MinimaxLoss()
    # -log D(x) = d_real(l); -log(1 - D(x)) = d_fake(l)
    return -torch.trapezoid(p_r * loss.d_real(logits) + p_g * loss.d_fake(logits), x)


def run(cfg: GanOptimumConfig) -> dict:
    torch.manual_seed(cfg.seed)
    steps, lbfgs_steps, points = (300, 100, 1001) if cfg.quick else (cfg.steps, cfg.lbfgs_steps, cfg.grid_points)
    x = torch.linspace(cfg.grid_min, cfg.grid_max, points, dtype=torch.float64)  # (N,)
    p_r = mixture_density(x, cfg.real_means, cfg.real_stds, cfg.real_weights)  # (N,)
    p_g = mixture_density(x, [cfg.fake_mean], [cfg.fake_std], [1.0])  # (N,)
    d_star = p_r / (p_r + p_g).clamp_min(1e-300)  # Eq. 2
    support = (p_r + p_g) >= cfg.support_density
    closed_form = EQUILIBRIUM_VALUE + 2.0 * jsd(p_r, p_g, x)  # Theorem 1

    disc = Discriminator1D(cfg.hidden, scale=max(abs(cfg.grid_min), abs(cfg.grid_max)) / 2).double()
    opt = torch.optim.Adam(disc.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=cfg.lr * 0.01)
    history: list[tuple[int, float]] = []
    for step in tqdm(range(steps), desc="gan-optimum: Adam on V(G, D)", leave=False):
        v = value(disc(x), p_r, p_g, x)
        opt.zero_grad(set_to_none=True)
        (-v).backward()  # gradient ascent on V
        opt.step()
        sched.step()
        if step % 10 == 0:
            history.append((step, v.item()))
    if lbfgs_steps:
        lbfgs = torch.optim.LBFGS(disc.parameters(), lr=1.0, max_iter=lbfgs_steps, tolerance_grad=1e-12,
                                  tolerance_change=1e-15, history_size=50, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            lbfgs.zero_grad(set_to_none=True)
            loss = -value(disc(x), p_r, p_g, x)
            loss.backward()
            return loss

        lbfgs.step(closure)
    with torch.no_grad():
        logits = disc(x)
        d = torch.sigmoid(logits)
        v_final = value(logits, p_r, p_g, x).item()
        v_star = value(torch.logit(d_star.clamp(1e-12, 1 - 1e-12)), p_r, p_g, x).item()
    history.append((steps + lbfgs_steps, v_final))
    err = (d - d_star).abs()[support]
    metrics = {
        "mean_abs_error": err.mean().item(),
        "max_abs_error": err.max().item(),
        "support": [x[support].min().item(), x[support].max().item()],
        "value_trained": v_final,
        "value_optimal_numeric": v_star,
        "value_closed_form": closed_form,
        "value_gap": abs(v_final - closed_form),
        "jsd": jsd(p_r, p_g, x),
        "equilibrium_value": EQUILIBRIUM_VALUE,
        "steps": steps,
        "lbfgs_steps": lbfgs_steps,
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"config": config_to_dict(cfg), **metrics}, indent=2) + "\n")
    plot(out / "gan_optimum.png", x, p_r, p_g, d_star, d, support, history, closed_form)
    return metrics


def plot(path: Path, x, p_r, p_g, d_star, d, support, history, closed_form: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(x, p_r, color="tab:green", label="p_r (real)")
    ax1.plot(x, p_g, color="tab:purple", label="p_g (fixed G)")
    ax1.plot(x, d_star, "k--", lw=2, label="D* = p_r / (p_r + p_g)")
    ax1.plot(x, d, color="tab:orange", lw=1.5, label="trained D")
    lo, hi = x[support].min().item(), x[support].max().item()
    ax1.axvspan(x[0].item(), lo, color="0.9")
    ax1.axvspan(hi, x[-1].item(), color="0.9")
    ax1.set_xlabel("x")
    ax1.set_title("optimal vs trained discriminator (grey: outside support)")
    ax1.legend(fontsize=8)
    steps, values = zip(*history)
    ax2.plot(steps, values, color="tab:orange", label="V(G, D) during training")
    ax2.axhline(closed_form, color="k", ls="--", label=f"-2 log 2 + 2 JSD = {closed_form:.4f}")
    ax2.axhline(EQUILIBRIUM_VALUE, color="0.5", ls=":", label=f"-2 log 2 = {EQUILIBRIUM_VALUE:.4f}")
    ax2.set_xlabel("step")
    ax2.set_ylabel("V")
    ax2.set_ylim(min(EQUILIBRIUM_VALUE, min(values)) - 0.05, closed_form + 0.1)
    ax2.set_title("value of the game")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(GanOptimumConfig, argv, prog="t2i study gan-optimum", description=__doc__)
    m = run(cfg)
    print(f"mean |D - D*| = {m['mean_abs_error']:.5f}, max |D - D*| = {m['max_abs_error']:.5f} "
          f"over x in [{m['support'][0]:.2f}, {m['support'][1]:.2f}]")
    print(f"V(G, D) = {m['value_trained']:.5f}; -2 log 2 + 2 JSD = {m['value_closed_form']:.5f} "
          f"(gap {m['value_gap']:.5f}); V(G, D*) by integration = {m['value_optimal_numeric']:.5f}")
    print(f"wrote {Path(cfg.out) / 'metrics.json'} and {Path(cfg.out) / 'gan_optimum.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
