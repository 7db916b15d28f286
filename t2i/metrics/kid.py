"""Kernel distance: KID and domain KID (squared MMD with a cubic polynomial kernel).

Binkowski et al. 2018, "Demystifying MMD GANs", Sec. 4 (KID): the unbiased estimator of
the squared maximum mean discrepancy (Gretton et al. 2012, "A Kernel Two-Sample Test",
Lemma 6, eq. (3)) between feature sets X (m points) and Y (n points),

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
              - 2/(mn) sum_{i, j} k(x_i, y_j)

with the kernel k(x, y) = (x.y / d + 1)^3, d the feature dimension. Unlike FID it is
unbiased in the sample count, so small sets compare fairly; it can be slightly negative.
It is averaged over random subsets (as in the paper's code) and reported with its std.

    python -c "import torch; from t2i.metrics.kid import kid_from_features as k; x = torch.randn(300, 8); print(k(x, x + 0.5, subset_size=100, subsets=10))"
"""

from __future__ import annotations

from typing import Any

import torch

from t2i.metrics.features import FeatureExtractor, as_features, inception_extractor, is_features


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None,
                      coef: float = 1.0) -> torch.Tensor:
    """k(x, y) = (gamma x.y + coef)^degree with gamma = 1/d by default: ``(m, d), (n, d) -> (m, n)``."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None,
                  coef: float = 1.0) -> float:
    """Gretton et al. 2012 eq. (3): unbiased MMD^2 of ``x (m, d)`` and ``y (n, d)``, m, n >= 2."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points per set, got {m} and {n}")
    k_xx = polynomial_kernel(x, x, degree, gamma, coef)  # (m, m)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef)  # (n, n)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef)  # (m, n)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))  # i != j only
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(term_xx + term_yy - 2 * k_xy.mean())


def kid_from_features(real: torch.Tensor, fake: torch.Tensor, subset_size: int = 1000, subsets: int = 100,
                      seed: int = 0, degree: int = 3) -> tuple[float, float]:
    """Mean and std of MMD^2_u over ``subsets`` random subsets of ``subset_size`` points of each set.

    Subsets are drawn without replacement with a seeded generator; when both sets are no
    larger than ``subset_size`` every subset would be the whole set, so it is computed once.
    """
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if subset_size < 2 or subsets < 1:
        raise ValueError(f"subset_size must be >= 2 and subsets >= 1, got {subset_size} and {subsets}")
    real, fake = real.double(), fake.double()
    if len(real) <= subset_size and len(fake) <= subset_size:
        return mmd2_unbiased(real, fake, degree), 0.0
    size = min(subset_size, len(real), len(fake))
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=gen)[:size]]
        f = fake[torch.randperm(len(fake), generator=gen)[:size]]
        values.append(mmd2_unbiased(r, f, degree))
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(t) > 1 else 0.0


def domain_kid(real: Any, fake: Any, extractor: FeatureExtractor | None = None, subset_size: int = 1000,
               subsets: int = 100, seed: int = 0) -> dict[str, Any]:
    """KID on the project's evaluator features (or given features): "domain KID", not KID."""
    f_real = as_features(real, extractor, "real")
    f_fake = as_features(fake, extractor, "fake")
    mean, std = kid_from_features(f_real, f_fake, subset_size, subsets, seed)
    return {"domain_kid": mean, "domain_kid_std": std, "n_real": len(f_real), "n_fake": len(f_fake),
            "features": extractor.name if extractor else "given"}


def kid(real: Any, fake: Any, inception_weights: str | None = None, subset_size: int = 1000, subsets: int = 100,
        seed: int = 0) -> dict[str, Any]:
    """KID proper, on Inception-v3 pool3 features from the user's local, hash-checked weights file."""
    if is_features(real) or is_features(fake):
        raise ValueError("kid takes images (it extracts Inception features itself); for given features use domain-kid")
    extractor = inception_extractor(inception_weights, output="pool")
    f_real, f_fake = as_features(real, extractor, "real"), as_features(fake, extractor, "fake")
    mean, std = kid_from_features(f_real, f_fake, subset_size, subsets, seed)
    return {"kid": mean, "kid_std": std, "n_real": len(f_real), "n_fake": len(f_fake), "features": extractor.name}
