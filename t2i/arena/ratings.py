"""Ratings from arena votes: Bradley-Terry fit on the Elo scale, bootstrap intervals, online Elo.

Bradley-Terry (Bradley & Terry 1952): model i beats model j with probability
``sigma(theta_i - theta_j)``, sigma the logistic function. As Chatbot Arena (Chiang et al. 2024,
sec. 5; its ``compute_mle_elo``) and GenAI-Arena (Jiang et al. 2024) do, the strengths are fitted by
maximising the log-likelihood of the votes, a tie counting as half a win for each side, and are
reported on the Elo scale: ``rating_i = 1000 + 400 / ln(10) * theta_i``, so that a 400-point gap
means 10:1 odds. "Both bad" counts as a tie (``both_bad="tie"``, Chatbot Arena's choice) or is left
out (``both_bad="exclude"``). A weak Gaussian prior (an L2 term ``l2 / 2 * |theta|^2``; Chatbot Arena's
logistic regression carries one too) keeps a model that never lost finite and puts the mean rating
at 1000 exactly; ``l2=0`` is the plain maximum-likelihood fit (mean still anchored at 1000).

Intervals: the votes are resampled with replacement ``rounds`` times (seeded) and refitted; the
95% interval is the 2.5th to 97.5th percentile of each model's rating (Chatbot Arena's bootstrap).

Online Elo (Elo 1978), for reference: votes in the order cast, ``R_a += K * (S_a - E_a)``; it depends
on the order of the votes, the Bradley-Terry fit does not.

    python -c "from t2i.arena.ratings import demo; demo()"
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from t2i.arena.store import Vote

SCALE = 400 / math.log(10)  # logits -> Elo points
ANCHOR = 1000.0  # the mean rating
BOTH_BAD = ("tie", "exclude")  # what "both bad" counts as


@dataclass
class Row:
    """One model's line of the leaderboard."""

    model: str  # the model's name
    rating: float  # Bradley-Terry rating, Elo scale
    lower: float  # 2.5th percentile of the bootstrap ratings
    upper: float  # 97.5th percentile of the bootstrap ratings
    elo: float  # online Elo after every vote in order (for reference)
    battles: int  # battles it played (excluded "both bad" votes not counted)
    wins: int  # battles it won
    ties: int  # ties ("both bad" included when they count as ties)
    losses: int  # battles it lost

    @property
    def win_rate(self) -> float:
        return self.wins / self.battles if self.battles else 0.0


def _scores(votes: Sequence[Vote], models: Sequence[str], both_bad: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per kept vote: index of model A, of model B, and A's score (1 win, 0.5 tie, 0 loss)."""
    if both_bad not in BOTH_BAD:
        raise ValueError(f"both_bad must be one of {list(BOTH_BAD)}, got {both_bad!r}")
    index = {m: i for i, m in enumerate(models)}
    value = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
    kept = [v for v in votes if not (v.outcome == "both_bad" and both_bad == "exclude")]
    return (np.array([index[v.model_a] for v in kept], dtype=int), np.array([index[v.model_b] for v in kept], dtype=int),
            np.array([value[v.outcome] for v in kept], dtype=float))


def win_matrix(a: np.ndarray, b: np.ndarray, score_a: np.ndarray, k: int) -> np.ndarray:
    """``W[i, j]``: how many times i beat j, a tie adding 1/2 to both directions. ``(k, k)``"""
    W = np.zeros((k, k))
    np.add.at(W, (a, b), score_a)
    np.add.at(W, (b, a), 1.0 - score_a)
    return W


def fit_bradley_terry(W: np.ndarray, l2: float = 0.1, tol: float = 1e-10, max_iter: int = 100) -> np.ndarray:
    """Strengths ``theta (k,)``, mean zero, minimising the negative log-likelihood plus the prior:

        L(theta) = -sum_ij W_ij log sigma(theta_i - theta_j) + l2 / 2 * |theta|^2

    by Newton's method (L is convex). Gradient: ``dL/dtheta_i = -sum_j (W_ij P_ji - W_ji P_ij) + l2 theta_i``
    with ``P_ij = sigma(theta_i - theta_j)``; Hessian: the Laplacian of ``C_ij = (W_ij + W_ji) P_ij P_ji``
    plus ``l2 I``. L does not change along ``1`` when l2 = 0, so the step is solved with ``J / k`` added
    (it leaves the mean-zero directions alone) and every iterate stays mean zero.
    """
    k = W.shape[0]
    theta = np.zeros(k)

    def loss(t: np.ndarray) -> float:
        d = t[:, None] - t[None, :]  # (k, k): theta_i - theta_j
        return float(np.sum(W * np.logaddexp(0.0, -d)) + l2 / 2 * t @ t)  # -log sigma(d) = log(1 + e^-d)

    for _ in range(max_iter):
        P = 1 / (1 + np.exp(-(theta[:, None] - theta[None, :])))  # (k, k): P_ij = sigma(theta_i - theta_j)
        grad = -(W * P.T - W.T * P).sum(axis=1) + l2 * theta  # (k,)
        if np.max(np.abs(grad)) < tol:
            break
        C = (W + W.T) * P * P.T
        H = np.diag(C.sum(axis=1)) - C + l2 * np.eye(k) + np.ones((k, k)) / k  # (k, k)
        step = -np.linalg.lstsq(H, grad, rcond=None)[0]  # lstsq: models that never met leave H singular
        step -= step.mean()
        current, t = loss(theta), 1.0
        while loss(theta + t * step) > current and t > 1e-8:  # backtracking keeps every step downhill
            t /= 2
        theta = theta + t * step
    return theta - theta.mean()


def bradley_terry(votes: Sequence[Vote], both_bad: str = "tie", l2: float = 0.1) -> dict[str, float]:
    """Each model's Bradley-Terry rating on the Elo scale (mean 1000)."""
    models = sorted({v.model_a for v in votes} | {v.model_b for v in votes})
    if not models:
        return {}
    a, b, s = _scores(votes, models, both_bad)
    theta = fit_bradley_terry(win_matrix(a, b, s, len(models)), l2)
    return {m: ANCHOR + SCALE * float(t) for m, t in zip(models, theta)}


def bootstrap(votes: Sequence[Vote], rounds: int = 200, seed: int = 0, both_bad: str = "tie", l2: float = 0.1,
              level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Each model's ``level`` percentile interval of its rating over ``rounds`` resamplings of the votes."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    models = sorted({v.model_a for v in votes} | {v.model_b for v in votes})
    a, b, s = _scores(votes, models, both_bad)
    if not len(s):
        return {m: (ANCHOR, ANCHOR) for m in models}
    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, len(models)))
    for r in range(rounds):
        pick = rng.integers(0, len(s), len(s))  # resample votes with replacement
        samples[r] = ANCHOR + SCALE * fit_bradley_terry(win_matrix(a[pick], b[pick], s[pick], len(models)), l2)
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(samples, tail, axis=0), np.percentile(samples, 100 - tail, axis=0)
    return {m: (float(lo), float(hi)) for m, lo, hi in zip(models, lower, upper)}


def online_elo(votes: Sequence[Vote], k: float = 32.0, both_bad: str = "tie") -> dict[str, float]:
    """Sequential Elo: start at 1000, ``E_a = 1 / (1 + 10^((R_b - R_a) / 400))``, ``R_a += k (S_a - E_a)``."""
    models = sorted({v.model_a for v in votes} | {v.model_b for v in votes})
    ratings = {m: ANCHOR for m in models}
    a, b, s = _scores(votes, models, both_bad)
    for i, j, score in zip(a, b, s):
        ma, mb = models[i], models[j]
        expected = 1 / (1 + 10 ** ((ratings[mb] - ratings[ma]) / 400))
        ratings[ma] += k * (score - expected)
        ratings[mb] -= k * (score - expected)
    return ratings


def leaderboard(votes: Sequence[Vote], rounds: int = 200, seed: int = 0, both_bad: str = "tie",
                l2: float = 0.1) -> list[Row]:
    """One row per model, best rating first."""
    ratings = bradley_terry(votes, both_bad, l2)
    intervals = bootstrap(votes, rounds, seed, both_bad, l2) if ratings else {}
    elo = online_elo(votes, both_bad=both_bad)
    counts = {m: [0, 0, 0] for m in ratings}  # wins, ties, losses
    for v in votes:
        if v.outcome == "both_bad" and both_bad == "exclude":
            continue
        if v.outcome in ("a", "b"):
            winner, loser = (v.model_a, v.model_b) if v.outcome == "a" else (v.model_b, v.model_a)
            counts[winner][0] += 1
            counts[loser][2] += 1
        else:
            counts[v.model_a][1] += 1
            counts[v.model_b][1] += 1
    rows = [Row(m, r, *intervals[m], elo[m], sum(counts[m]), *counts[m]) for m, r in ratings.items()]
    return sorted(rows, key=lambda row: -row.rating)


HEADER = ("rank", "model", "rating", "95% interval", "online Elo", "battles", "wins", "ties", "losses", "win rate")


def table_rows(rows: Sequence[Row]) -> list[list[str | int]]:
    """The leaderboard as printable cells, in ``HEADER``'s order."""
    return [[rank, r.model, f"{r.rating:.0f}", f"{r.lower:.0f} to {r.upper:.0f}", f"{r.elo:.0f}", r.battles, r.wins,
             r.ties, r.losses, f"{r.win_rate:.2f}"] for rank, r in enumerate(rows, 1)]


def format_table(rows: Sequence[Row]) -> str:
    """The leaderboard as a Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(str(c) for c in cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines)


def demo() -> None:
    from t2i.arena.store import new_vote

    log = [("x", "y", "a")] * 6 + [("x", "y", "b")] * 2 + [("y", "z", "a")] * 5 + [("y", "z", "tie")] * 3
    votes = [new_vote("p", 0, a, b, o) for a, b, o in log]
    print(format_table(leaderboard(votes)))
