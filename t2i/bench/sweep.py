"""The budget sweep's arithmetic: the ladder, where diffusion overtakes, the sampling-cost front, total cost.

``t2i bench --ladder 1,2,4,...,64`` trains one run per family and seed and evaluates it at
every rung of a geometric budget ladder (anytime evaluation: the trainers' learning rates are
constant after warm-up, so the checkpoint at rung ``m`` is the run a budget of ``m x base``
would have made). This module turns those per-rung records into the issue's three answers:

- ``crossover``: the budget at which a family ``A`` (diffusion) overtakes ``B`` on one metric.
  Both families' per-seed curves are interpolated linearly in ``log(budget)`` onto the rungs
  of either family that lie in their common range; ``d = s (mean_A - mean_B)`` with
  ``s = +1`` for a higher-is-better metric and ``-1`` otherwise. ``A`` has overtaken from the
  last point where ``d <= 0`` on, and only if ``d > 0`` at the top of the common range ("not
  reached within the ladder" otherwise); the crossing is the zero of ``d`` between that point
  and the next, in log budget. Its interval is a percentile bootstrap over seeds (Efron &
  Tibshirani 1993, ch. 13): each family's seeds are resampled with replacement, the crossing
  recomputed, and the share of resamples that cross at all is reported beside it.
- ``pareto_front``: the points (sampling cost per image, quality) that no other point beats
  on both (lower cost, better quality).
- ``total_cost``: training cost plus ``N`` images' sampling cost, for ``N`` = 1e3 .. 1e7.
- A family whose ladder ends below the others' (``--ladder-top``: one that has reached its plateau need
  not train on) is held at its top rung's values beyond it by ``crossovers``, on the metrics where its last
  doubling is a plateau; on the others the crossing is sought within the common range as usual.
- ``add_diversity_gap``: the diversity ratio's distance to the real images' own, which a sweep ranks on
  (a model that ignores its prompt has the highest ratio, ~1).
- ``plateau``: whether a family has stopped improving over its last doubling of budget, i.e.
  "within noise": each seed's change from the rung at half the top rung's ladder multiple (or the nearest
  rung below it) to the top rung is a paired difference (the same run at two checkpoints), and the
  family is still improving (or getting worse) only if a one-sided paired t-test at ``level``
  says so (Student 1908); with 3 seeds that test is weak, so the change itself is reported beside
  the verdict. A curve flat over the last doubling that the same test finds no better at the top
  than at the first rung has not reached a plateau but not started (``NOT_LEARNING``: a model
  still at chance, say).

Everything here is pure: plain lists and dicts in, plain dicts out (``results.json``'s ``sweep``).

    python -c "from t2i.bench.sweep import demo; demo()"
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

TOTAL_COST_IMAGES = (1e3, 1e4, 1e5, 1e6, 1e7)  # N of the total-cost table (train + N images)
NOT_REACHED = "not reached within the ladder"
AHEAD = "ahead from the smallest common budget"
CROSSED = "crossed"
NO_OVERLAP = "no common budget range"
PLATEAU, IMPROVING, WORSE, TOO_SHORT = "plateau", "still improving", "getting worse", "span shorter than a doubling"
NOT_LEARNING = "no better than at the first rung"  # flat, but flat from the start: not a plateau reached


def parse_ladder(text: str) -> list[float]:
    """``"1,2,4,8"`` -> ``[1.0, 2.0, 4.0, 8.0]``: rungs as multiples of the base budget, positive and increasing."""
    rungs = [float(x) for x in text.split(",") if x.strip()]
    if not rungs or any(r <= 0 for r in rungs) or any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise ValueError(f"--ladder takes increasing positive multiples of the base budget, e.g. "
                         f"1,2,4,8,16,32,64; got {text!r}")
    return rungs


def parse_ladder_tops(text: str, ladder: Sequence[float]) -> dict[str, float]:
    """``"cgan=128,cvae-label=128"`` -> ``{"cgan": 128.0, ...}``: the rung of ``ladder`` where a family's ladder ends."""
    tops = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, rung = (part.strip() for part in item.partition("="))
        try:
            value = float(rung) if sep and name else None
        except ValueError:
            value = None
        if value not in ladder:
            raise ValueError(f"--ladder-top takes FAMILY=RUNG items, RUNG one of --ladder's "
                             f"({','.join(f'{m:g}' for m in ladder)}), e.g. cgan={ladder[-1]:g}; got {item!r}")
        tops[name] = value
    return tops


def _curves_on(x: Sequence[float], seeds: Sequence[Sequence[float]], grid: np.ndarray) -> np.ndarray:
    """Each seed's curve (values at budgets ``x``) interpolated linearly in log budget onto ``grid``: (seeds, points)."""
    lx = np.log(np.asarray(x, dtype=float))
    return np.array([np.interp(np.log(grid), lx, np.asarray(s, dtype=float)) for s in seeds])


def crossing(x_a: Sequence[float], seeds_a: Sequence[Sequence[float]], x_b: Sequence[float],
             seeds_b: Sequence[Sequence[float]], higher: bool) -> tuple[str, float | None]:
    """Where ``A``'s seed-mean curve overtakes ``B``'s for good: ``(status, budget)`` (see the module docstring).

    ``status`` is ``CROSSED`` (budget = the interpolated zero), ``AHEAD`` (budget = the smallest common
    budget: an upper bound), ``NOT_REACHED`` or ``NO_OVERLAP`` (budget None).
    """
    lo, hi = max(min(x_a), min(x_b)), min(max(x_a), max(x_b))
    if lo >= hi:
        return NO_OVERLAP, None
    grid = np.array(sorted({v for v in list(x_a) + list(x_b) if lo <= v <= hi}), dtype=float)
    sign = 1.0 if higher else -1.0
    d = sign * (_curves_on(x_a, seeds_a, grid).mean(0) - _curves_on(x_b, seeds_b, grid).mean(0))  # (points,)
    if d[-1] <= 0:
        return NOT_REACHED, None
    behind = np.nonzero(d <= 0)[0]
    if len(behind) == 0:
        return AHEAD, float(grid[0])
    i = int(behind[-1])  # last point not ahead; A stays ahead from grid[i + 1] on
    t = -d[i] / (d[i + 1] - d[i])  # zero of the linear piece, 0 <= t < 1
    return CROSSED, float(math.exp(math.log(grid[i]) + t * (math.log(grid[i + 1]) - math.log(grid[i]))))


def crossover(x_a: Sequence[float], seeds_a: Sequence[Sequence[float]], x_b: Sequence[float],
              seeds_b: Sequence[Sequence[float]], higher: bool, n_boot: int = 1000, level: float = 0.9,
              seed: int = 0) -> dict[str, Any]:
    """The crossing of the seed means and a bootstrap interval over seeds (``level`` two-sided percentile).

    Returns ``{"status", "budget", "interval": [lo, hi] | None, "reached": share of resamples that cross}``.
    """
    status, budget = crossing(x_a, seeds_a, x_b, seeds_b, higher)
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(n_boot):
        sa = [seeds_a[i] for i in rng.integers(0, len(seeds_a), len(seeds_a))]
        sb = [seeds_b[i] for i in rng.integers(0, len(seeds_b), len(seeds_b))]
        s, b = crossing(x_a, sa, x_b, sb, higher)
        if b is not None:
            found.append(b)
    interval = None
    if found:
        q = (1 - level) / 2
        interval = [float(np.exp(np.quantile(np.log(found), q))), float(np.exp(np.quantile(np.log(found), 1 - q)))]
    return {"status": status, "budget": budget, "interval": interval, "reached": len(found) / n_boot if n_boot else None}


def interpolate_log(x: Sequence[float], y: Sequence[float], at: float | None) -> float | None:
    """``y`` at budget ``at``, linear in log budget between the rungs (a budget's CPU-hours, say); None outside."""
    if at is None or at < min(x) or at > max(x):
        return None
    return float(np.interp(math.log(at), np.log(np.asarray(x, dtype=float)), np.asarray(y, dtype=float)))


def pareto_front(points: Sequence[dict[str, Any]], cost: str, quality: str, higher: bool) -> list[int]:
    """Indices of the points no other point beats (cost <=, quality >= (or <=), one strictly), by rising cost."""
    def beats(p: dict[str, Any], q: dict[str, Any]) -> bool:
        better_q = p[quality] >= q[quality] if higher else p[quality] <= q[quality]
        strictly = p[cost] < q[cost] or p[quality] != q[quality]
        return p[cost] <= q[cost] and better_q and strictly

    usable = [i for i, p in enumerate(points) if p.get(cost) is not None and p.get(quality) is not None]
    front = [i for i in usable if not any(beats(points[j], points[i]) for j in usable if j != i)]
    return sorted(front, key=lambda i: points[i][cost])


def total_cost(train: float, per_image: float, images: Sequence[float] = TOTAL_COST_IMAGES) -> list[float]:
    """Training cost plus ``n`` images' sampling cost, for each ``n`` (the same unit in and out)."""
    return [train + n * per_image for n in images]


def plateau(x: Sequence[float], seeds: Sequence[Sequence[float]], higher: bool, level: float = 0.95,
            multiples: Sequence[float] | None = None) -> dict[str, Any]:
    """Has the curve stopped improving over its last doubling? (see the module docstring)

    ``x``: the rung budgets, rising; ``seeds``: each seed's values at them; ``multiples``: the rungs' ladder
    multiples, on which the doubling is judged when given. A one-off cost inside ``x`` (a first stage, a latent
    cache's build) is not doubled with the rungs, so on ``x`` the rung below the top can sit just above half of
    it and the comparison would reach back two rungs. Returns ``{"status", "from", "to"
    (the two budgets compared), "change" (seed-mean of to - from, in the metric's units), "stderr" (its
    standard error over seeds; None for one seed), "t"}``; ``status`` is ``PLATEAU``, ``NOT_LEARNING``,
    ``IMPROVING``, ``WORSE`` or ``TOO_SHORT``.
    """
    from scipy import stats

    top = len(x) - 1
    scale = list(multiples) if multiples is not None and len(multiples) == len(x) else list(x)
    below = [i for i in range(top) if scale[i] <= scale[top] / 2 * (1 + 1e-9)]
    if not below:
        return {"status": TOO_SHORT, "from": None, "to": float(x[top]), "change": None, "stderr": None, "t": None}
    i = below[-1]
    diffs = np.array([float(s[top]) - float(s[i]) for s in seeds])  # (seeds,)
    change = float(diffs.mean())
    out = {"from": float(x[i]), "to": float(x[top]), "change": change, "stderr": None, "t": None}
    if len(diffs) < 2:
        return out | {"status": PLATEAU if change == 0 else (IMPROVING if (change > 0) == higher else WORSE)}
    critical = float(stats.t.ppf(level, len(diffs) - 1))

    def paired_t(d: np.ndarray) -> tuple[float, float]:
        """(t statistic of the gain, standard error of the mean difference)"""
        stderr = float(d.std(ddof=1) / math.sqrt(len(d)))
        gain = float(d.mean()) if higher else -float(d.mean())  # > 0: better at the top rung
        return (gain / stderr if stderr > 0 else (math.copysign(math.inf, gain) if gain else 0.0)), stderr

    t, stderr = paired_t(diffs)
    status = IMPROVING if t > critical else WORSE if t < -critical else PLATEAU
    if status == PLATEAU and paired_t(np.array([float(s[top]) - float(s[0]) for s in seeds]))[0] <= critical:
        status = NOT_LEARNING
    return out | {"status": status, "stderr": stderr, "t": t}


def plateaus(families: dict[str, Any], metrics: Sequence[str], higher: dict[str, bool]) -> list[dict[str, Any]]:
    """``plateau`` of every trained family (with rungs) on each metric its records have."""
    out = []
    for name, fam in families.items():
        if not fam.get("rungs"):
            continue
        for metric in metrics:
            curves = seed_curves(fam, metric)
            if curves is not None:
                out.append(plateau(curves[0], curves[1], higher[metric], multiples=_multiples(fam))
                           | {"family": name, "metric": metric})
    return out


def seed_curves(family: dict[str, Any], metric: str) -> tuple[list[float], list[list[float]]] | None:
    """A family's rung budgets (FLOPs spent) and per-seed values of ``metric`` at them; None if any is missing."""
    seeds = [s["stages"] for s in family.get("seeds", {}).values() if s.get("stages")]
    if not seeds:
        return None
    values = [[st["metrics"].get(metric) for st in stages] for stages in seeds]
    if any(v is None for row in values for v in row):
        return None
    return [float(st["flops"]) for st in seeds[0]], values


def _multiples(family: dict[str, Any]) -> list[float] | None:
    """A family's rungs' ladder multiples (x1, x2, ...), None where its rungs do not record them."""
    multiples = [r.get("multiple") for r in family.get("rungs") or []]
    return [float(m) for m in multiples] if multiples and None not in multiples else None


def _hours_at(rungs: list[dict[str, Any]], flops: float | None) -> float | None:
    """A family's CPU-hours at a FLOP budget, interpolated between its rungs; None where unknown."""
    hours = [r.get("cpu_hours") for r in rungs]
    if flops is None or not rungs or None in hours:
        return None
    return interpolate_log([r["flops"] for r in rungs], hours, flops)


def crossovers(families: dict[str, Any], diffusion: str, metrics: Sequence[str], higher: dict[str, bool],
               n_boot: int, chance: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Where ``diffusion`` overtakes every other trained family on each metric, in FLOPs and CPU-hours
    (diffusion's own CPU-hours at that budget, interpolated between its rungs). A family whose ladder was ended
    early (its ``ladder_top``) is held at its top rung's values beyond it where its last doubling is a plateau
    (``held_from``: its top budget). ``chance``: a metric's prompt-blind level; a crossing or lead whose diffusion
    seed mean at the top rung is no better than it gets ``at_chance`` (that level): it is not prompt following.
    ``common_top``: both seed means at the smaller of the two top budgets, where the comparison ends."""
    rungs = families[diffusion].get("rungs") or []
    out = []
    for other, fam in families.items():
        if other == diffusion or not fam.get("rungs"):
            continue
        for metric in metrics:
            a, b = seed_curves(families[diffusion], metric), seed_curves(fam, metric)
            if a is None or b is None:
                continue
            held = None
            beyond = [x for x in a[0] if x > b[0][-1]]
            if (fam.get("ladder_top") and beyond
                    and plateau(b[0], b[1], higher[metric], multiples=_multiples(fam))["status"] == PLATEAU):
                held = b[0][-1]
                b = (b[0] + beyond, [s + [s[-1]] * len(beyond) for s in b[1]])
            c = crossover(a[0], a[1], b[0], b[1], higher[metric], n_boot=n_boot)
            # the two seed means where the comparison ends: a top rung can cost more FLOPs than the other's (a
            # latent cache's build), so its value alone may read ahead while the curves at equal FLOPs do not
            common_top = min(a[0][-1], b[0][-1])
            c["common_top"] = {"flops": common_top, "diffusion": float(_curves_on(*a, np.array([common_top])).mean()),
                               "other": float(_curves_on(*b, np.array([common_top])).mean())}
            blind, top = (chance or {}).get(metric), sum(s[-1] for s in a[1]) / len(a[1])
            if blind is not None and c["status"] in (CROSSED, AHEAD) and (top <= blind if higher[metric] else top >= blind):
                c["at_chance"] = blind
            c.update(diffusion=diffusion, other=other, metric=metric, held_from=held,
                     cpu_hours=_hours_at(rungs, c["budget"]),
                     cpu_hours_interval=[_hours_at(rungs, v) for v in c["interval"]] if c["interval"] else None)
            out.append(c)
    return out


def sampling_points(families: dict[str, Any], diffusion_study: dict[str, Any] | None,
                    metric: str) -> list[dict[str, Any]]:
    """Quality vs sampling cost per image: every family at its top rung (eval prompts, seed mean) and every
    sampler x steps point of the diffusion study (validation prompts, seed 0)."""
    points = []
    for name, fam in families.items():
        cost, summary = fam.get("cost", {}), fam.get("summary", {}).get(metric)
        if summary is None:
            continue
        label = name + (f" ({fam['sampling']['sampler']}, {fam['sampling']['steps']} steps)" if fam.get("sampling")
                        else "")
        points.append({"label": label, "family": name, "prompts": "eval", "quality": summary["mean"],
                       "gflop_per_image": cost.get("gflop_per_image"), "ms_per_image": cost.get("ms_per_image")})
    for sampler, curve in ((diffusion_study or {}).get("sampler_curves") or {}).items():
        for p in curve:
            points.append({"label": f"{diffusion_study['family']} {sampler} {p['steps']}", "prompts": "validation",
                           "family": diffusion_study["family"], "quality": p["metrics"].get(metric),
                           "gflop_per_image": p.get("gflop_per_image"), "ms_per_image": p.get("ms_per_image")})
    return points


def add_diversity_gap(families: dict[str, Any], real_ratio: float) -> None:
    """Give every rung record that has a diversity ratio its ``diversity_gap``, ``|ratio - real_ratio|`` (in place):
    the ratio (within-prompt over overall diversity) is ~1 for a model that ignores its prompt, above real data's,
    so crossovers and plateaus rank on the distance to the real images' own ratio instead."""
    for fam in families.values():
        for seed in fam.get("seeds", {}).values():
            for stage in seed.get("stages", []):
                if stage["metrics"].get("diversity_ratio") is not None:
                    stage["metrics"]["diversity_gap"] = abs(stage["metrics"]["diversity_ratio"] - real_ratio)


def sweep_summary(families: dict[str, Any], diffusion: str | None, diffusion_study: dict[str, Any] | None,
                  metrics: Sequence[str], higher: dict[str, bool], n_boot: int, threads: int,
                  chance: dict[str, float] | None = None) -> dict[str, Any]:
    """``results.json``'s ``sweep``: crossovers (``chance``: the prompt-blind levels) and plateaus on each of
    ``metrics`` (the data's ``Measures.crossover``), the sampling-cost points and fronts on the first (the
    headline), and total cost for N images."""
    metric = metrics[0]
    points = sampling_points(families, diffusion_study, metric)
    fronts = {cost: pareto_front(points, cost, "quality", higher[metric]) for cost in ("gflop_per_image", "ms_per_image")}
    totals = []
    for name, fam in families.items():
        cost, rungs = fam.get("cost", {}), fam.get("rungs") or [{}]
        if cost.get("train_flops") is None or cost.get("gflop_per_image") is None:
            continue
        hours = rungs[-1].get("cpu_hours")
        totals.append({"family": name, "images": list(TOTAL_COST_IMAGES),
                       "flops": total_cost(cost["train_flops"], cost["gflop_per_image"] * 1e9),
                       "cpu_hours": (total_cost(hours, cost["ms_per_image"] / 1000 * threads / 3600)
                                     if hours is not None and cost.get("ms_per_image") is not None else None)})
    return {"metric": metric, "crossovers": crossovers(families, diffusion, metrics, higher, n_boot, chance)
            if diffusion else [], "plateaus": plateaus(families, metrics, higher), "sampling_points": points,
            "pareto": fronts, "total_cost": totals}


def demo() -> None:
    x = [1.0, 2.0, 4.0]
    print(crossover(x, [[0.0, 0.2, 0.6], [0.0, 0.2, 0.6]], x, [[0.3, 0.3, 0.3]], higher=True, n_boot=10))
    pts = [{"gflop": 0.01, "acc": 0.1}, {"gflop": 0.3, "acc": 0.6}, {"gflop": 0.5, "acc": 0.5}]
    print("plateau:", plateau(x, [[0.0, 0.5, 0.52], [0.0, 0.6, 0.58], [0.1, 0.5, 0.53]], higher=True))
    print("front:", pareto_front(pts, "gflop", "acc", higher=True), "total:", total_cost(1e12, 1e7, (1e3, 1e6)))
