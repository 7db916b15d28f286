"""Fidelity and diversity as separate numbers: precision/recall and density/coverage.

All four build the k-nearest-neighbour ball B(x, NND_k(x)) around each point, whose
radius is the distance to its k-th nearest neighbour in its own set (itself excluded).

Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
Models": eq. (1) f(phi, Phi) = 1 if ||phi - phi'|| <= ||phi' - NN_k(phi', Phi)|| for at
least one phi' in Phi; eq. (2) precision = mean over fakes of f(fake, reals) (how many
samples look real), recall = mean over reals of f(real, fakes) (how much of the data
the samples cover). k = 3 by default, as in the paper.

Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models",
Sec. 3: with real X_1..X_N and fake Y_1..Y_M,
    density  = 1/(kM) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]    (counts overlaps; ~1 when matched)
    coverage = 1/N sum_i 1[exists j: Y_j in B(X_i, NND_k(X_i))]     (real balls hit by a sample)
Both use balls around real points only, which makes them robust to outlying fakes; k = 5
by default, as in the paper.

    python -c "import torch; from t2i.metrics.prdc import precision_recall as pr; x = torch.randn(400, 4); print(pr(x, torch.randn(400, 4) * 0.5))"
"""

from __future__ import annotations

from typing import Any

import torch

from t2i.metrics.features import FeatureExtractor, as_features

CHUNK = 1024  # rows of a distance matrix held in memory at once


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact Euclidean distances ``(m, D), (n, D) -> (m, n)`` (no |a|^2 + |b|^2 - 2ab shortcut,
    whose round-off would move points across ball boundaries)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """NND_k: distance from each point of ``x (N, D)`` to its k-th nearest other point -> ``(N,)``."""
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, {len(x) - 1}] for {len(x)} points, got {k}")
    out = []
    for i in range(0, len(x), CHUNK):
        d = _dist(x[i:i + CHUNK], x)  # (c, N), includes the zero distance to itself
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # k+1 smallest: self, then k neighbours
    return torch.cat(out)


def _inside_counts(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each point, how many balls B(centre_i, radius_i) contain it -> ``(len(points),)``."""
    counts = []
    for i in range(0, len(points), CHUNK):
        d = _dist(points[i:i + CHUNK], centres)  # (c, N)
        counts.append((d <= radii[None, :]).sum(1))
    return torch.cat(counts)


def _check(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")


def precision_recall(real: Any, fake: Any, extractor: FeatureExtractor | None = None, k: int = 3) -> dict[str, Any]:
    """Kynkaanniemi et al. 2019 eq. (2): improved precision and recall with k-NN balls."""
    f_real, f_fake = as_features(real, extractor, "real"), as_features(fake, extractor, "fake")
    _check(f_real, f_fake)
    r_real, r_fake = knn_radii(f_real, k), knn_radii(f_fake, k)
    precision = (_inside_counts(f_fake, f_real, r_real) > 0).double().mean()  # fakes inside the real manifold
    recall = (_inside_counts(f_real, f_fake, r_fake) > 0).double().mean()  # reals inside the fake manifold
    return {"precision": float(precision), "recall": float(recall), "k": k,
            "features": extractor.name if extractor else "given"}


def density_coverage(real: Any, fake: Any, extractor: FeatureExtractor | None = None, k: int = 5) -> dict[str, Any]:
    """Naeem et al. 2020 Sec. 3: density (may exceed 1) and coverage (in [0, 1]), balls around reals only."""
    f_real, f_fake = as_features(real, extractor, "real"), as_features(fake, extractor, "fake")
    _check(f_real, f_fake)
    r_real = knn_radii(f_real, k)
    density = _inside_counts(f_fake, f_real, r_real).double().sum() / (k * len(f_fake))
    nearest_fake = torch.cat([_dist(f_real[i:i + CHUNK], f_fake).min(1).values
                              for i in range(0, len(f_real), CHUNK)])  # (N,)
    coverage = (nearest_fake <= r_real).double().mean()
    return {"density": float(density), "coverage": float(coverage), "k": k,
            "features": extractor.name if extractor else "given"}
