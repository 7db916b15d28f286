"""The benchmark's pictures: quality vs training budget, vs sampling steps, vs guidance, cost vs quality,
the budget sweep's sampling-cost Pareto front and total cost for N images, and one side-by-side grid of
the same prompts for every model.

Inputs are the plain structures of ``results.json`` (see ``t2i.bench.report``); every
curve is a mean over seeds with a +/- 1 std band where there are several seeds, and the
real-vs-real floor is drawn as a dashed line (a latent model's first-stage ceiling, the floor images
reconstructed, as a dotted one in its colour).

    python -c "from t2i.bench.plots import demo; demo()"   # writes /tmp/bench_plots_demo/*.png
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from t2i.bench.scoring import CLOSER_TO_REAL, HEADLINE  # noqa: E402


EXTRA_LABELS = {"ms_per_image": ("sampling ms / image", False)}


def _label(metric: str) -> str:
    label, higher = {**HEADLINE, **EXTRA_LABELS}.get(metric, (metric, True))
    if metric in CLOSER_TO_REAL:
        return f"{label} (best at real's)"
    return f"{label} ({'higher' if higher else 'lower'} is better)"


def _floor_line(ax, floor: dict[str, Any] | None, metric: str) -> None:
    if floor and floor.get(metric) is not None:
        ax.axhline(floor[metric], color="grey", ls="--", lw=1, label="real vs real")


def _x_axis(ax, values: Sequence[float], base: float = 10, ticks: Sequence[float] | None = None) -> None:
    """Log x axis when ``values`` span at least a factor 8, else linear; compact tick labels."""
    xs = [v for v in values if v and v > 0]
    if ticks is not None:
        ax.set_xscale("log", base=base)
        ax.set_xticks(list(ticks))
    elif xs and max(xs) / min(xs) >= 8:
        ax.set_xscale("log", base=base)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.2g}"))


def _mean_std(rows: list[list[float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows = seeds, columns = points -> mean and std over seeds per point (NaN where missing)."""
    a = np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=float)
    return np.nanmean(a, 0), (np.nanstd(a, 0) if len(a) > 1 else np.zeros(a.shape[1]))


def _log_scale_if_wide(ax: Any) -> None:
    """A log y axis when the plotted values are all positive and span more than 20x (a distance such as FID,
    thousands for an untrained model and tens near the end: on a linear axis the end is flat)."""
    ys = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()] or [np.zeros(0)])
    ys = ys[np.isfinite(ys)]
    if ys.size and ys.min() > 0 and ys.max() / ys.min() > 20:
        ax.set_yscale("log")


def plot_quality_vs_budget(families: dict[str, Any], floor: dict[str, Any] | None, metrics: Sequence[str],
                           path: str | Path) -> Path:
    """One panel per metric (three to a row): x = training FLOPs spent (log), y = metric, a line per family
    (mean +/- std over seeds)."""
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, metrics):
        for name, fam in families.items():
            seeds = [s for s in fam.get("seeds", {}).values() if s.get("stages")]
            if not seeds:
                continue
            x = np.array([st["flops"] for st in seeds[0]["stages"]], dtype=float)
            mean, std = _mean_std([[st["metrics"].get(metric) for st in s["stages"]] for s in seeds])
            line, = ax.plot(x, mean, marker="o", label=name)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
            ceiling = fam.get("first_stage", {}).get("ceiling", {}).get(metric)
            if ceiling is not None:  # the floor set through this family's first stage: a perfect latent model's score
                ax.axhline(ceiling, color=line.get_color(), ls=":", lw=1.2, label=f"{name}'s first stage")
        _floor_line(ax, floor, metric)
        _log_scale_if_wide(ax)
        _x_axis(ax, [st["flops"] for f in families.values() for s in f.get("seeds", {}).values()
                     for st in s.get("stages", []) if st.get("flops")])
        ax.set_xlabel("training FLOPs (incl. first stage)")
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("quality vs training budget (mean +/- std over seeds)")
    return _save(fig, path)


def plot_sampler_curves(curves: dict[str, list[dict[str, Any]]], metrics: Sequence[str], path: str | Path,
                        title: str = "") -> Path:
    """One panel per metric: x = sampling steps (log), a line per sampler."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for sampler, points in curves.items():
            ax.plot([p["steps"] for p in points], [p["metrics"].get(metric, np.nan) for p in points], marker="o",
                    label=sampler)
        _x_axis(ax, [], 2, sorted({p["steps"] for pts in curves.values() for p in pts}))
        ax.set_xlabel("sampling steps")
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title or "latent diffusion: quality vs sampling steps per sampler")
    return _save(fig, path)


def plot_guidance(sweep: list[dict[str, Any]], metrics: Sequence[str], path: str | Path, chosen: float | None = None,
                  title: str = "") -> Path:
    """One panel per metric: x = classifier-free guidance scale."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.plot([p["guidance"] for p in sweep], [p["metrics"].get(metric, np.nan) for p in sweep], marker="o")
        if chosen is not None:
            ax.axvline(chosen, color="C1", ls=":", label=f"chosen {chosen:g}")
            ax.legend(fontsize=8)
        ax.set_xlabel("guidance scale (1 = none)")
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3)
    fig.suptitle(title or "latent diffusion: guidance sweep")
    return _save(fig, path)


def plot_cost_vs_quality(families: dict[str, Any], floor: dict[str, Any] | None, metric: str,
                         path: str | Path) -> Path:
    """Quality against training FLOPs, sampling GFLOP per image and sampling ms per image, a point per family."""
    costs = (("train_flops", "training FLOPs"), ("gflop_per_image", "sampling GFLOP / image"),
             ("ms_per_image", "sampling ms / image"))
    fig, axes = plt.subplots(1, len(costs), figsize=(15, 3.8))
    for ax, (key, xlabel) in zip(axes, costs):
        for name, fam in families.items():
            summary = fam.get("summary", {}).get(metric)
            x = fam.get("cost", {}).get(key)
            if summary is None or x is None:
                continue
            ax.errorbar([x], [summary["mean"]], yerr=[summary["std"]], fmt="o", capsize=3, label=name)
            ax.annotate(name, (x, summary["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
        _floor_line(ax, floor, metric)
        _x_axis(ax, [f.get("cost", {}).get(key) for f in families.values()])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("cost vs quality (mean +/- std over seeds)")
    return _save(fig, path)


def plot_pareto(sweep: dict[str, Any], path: str | Path) -> Path:
    """Quality against sampling GFLOP and ms per image: every family at its top rung (filled, eval prompts), the
    diffusion sampler x steps points (hollow, validation prompts), the Pareto front of each panel as a line."""
    points, metric = sweep["sampling_points"], sweep["metric"]
    costs = (("gflop_per_image", "sampling GFLOP / image"), ("ms_per_image", "sampling ms / image"))
    colour = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(p["family"] for p in points))}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, xlabel) in zip(axes, costs):
        for p in points:
            if p.get(key) is None or p.get("quality") is None:
                continue
            evaluated = p["prompts"] == "eval"
            ax.scatter([p[key]], [p["quality"]], s=40 if evaluated else 18, marker="o",
                       facecolors=colour[p["family"]] if evaluated else "none", edgecolors=colour[p["family"]])
            if evaluated:
                ax.annotate(p["label"], (p[key], p["quality"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        front = [points[i] for i in sweep["pareto"].get(key, [])]
        ax.step([p[key] for p in front], [p["quality"] for p in front], where="post", color="k", lw=1,
                label="Pareto front")
        _x_axis(ax, [p.get(key) for p in points])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("quality vs sampling cost (filled: top rung, eval prompts; hollow: diffusion sampler x steps, "
                 "validation prompts)", fontsize=9)
    return _save(fig, path)


def plot_total_cost(totals: list[dict[str, Any]], path: str | Path) -> Path:
    """Training plus N images' sampling cost against N (log-log), in FLOPs and in CPU-hours, a line per family."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (key, ylabel) in zip(axes, (("flops", "total FLOPs (train + N images)"),
                                        ("cpu_hours", "total CPU-hours (train + N images)"))):
        for t in totals:
            if t.get(key):
                ax.plot(t["images"], t[key], marker="o", label=t["family"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("images sampled N")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("total cost: training (top rung) + N images")
    return _save(fig, path)


def save_side_by_side(rows: list[tuple[str, torch.Tensor]], prompts: Sequence[str], path: str | Path) -> Path:
    """A grid: one row per model (``(label, images (K, C, S, S) in [0, 1])``), one column per prompt."""
    cols = len(prompts)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.4 * cols + 1.2, 1.5 * len(rows) + 0.9), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            img = images[c]
            img = img.expand(3, -1, -1) if img.shape[0] == 1 else img
            ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("\n".join(textwrap.wrap(prompts[c], 16)), fontsize=6)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("the same prompts and seed for every model", fontsize=9)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def demo() -> None:
    out = Path("/tmp/bench_plots_demo")
    stages = lambda a: [{"flops": f, "metrics": {"acc_all": a * f / 4e12}} for f in (1e12, 2e12, 4e12)]  # noqa: E731
    fams = {"tgan": {"seeds": {"0": {"stages": stages(0.5)}, "1": {"stages": stages(0.6)}},
                     "summary": {"acc_all": {"mean": 0.55, "std": 0.05}},
                     "cost": {"train_flops": 4e12, "gflop_per_image": 0.02, "ms_per_image": 0.3}}}
    print(plot_quality_vs_budget(fams, {"acc_all": 0.99}, ["acc_all"], out / "budget.png"))
    print(plot_cost_vs_quality(fams, {"acc_all": 0.99}, "acc_all", out / "cost.png"))
    print(save_side_by_side([("real", torch.rand(3, 3, 8, 8)), ("tgan", torch.rand(3, 3, 8, 8))],
                            ["a red circle", "a blue square", "a green cross"], out / "grid.png"))
