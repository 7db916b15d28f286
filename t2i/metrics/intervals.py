"""Confidence intervals of a mean by the percentile bootstrap (Efron & Tibshirani 1993, ch. 13).

Resample the per-item values with replacement ``n_boot`` times (seeded), take the mean of each
resample, and report the 2.5th and 97.5th percentiles of those means as the 95% interval. Used by
the prior's evaluation (``t2i.prior.evaluate``) and R-precision (``t2i.metrics.r_precision``).

    python -c "import torch; from t2i.metrics.intervals import bootstrap_mean; print(bootstrap_mean(torch.tensor([0., 1, 1, 1])))"
"""

from __future__ import annotations

import torch


def bootstrap_mean(values: torch.Tensor, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper) of the mean of ``values`` ``(M,)``: the ``level`` interval over resampled items."""
    values = torch.as_tensor(values).double().flatten()
    if len(values) == 0:
        raise ValueError("a bootstrap interval needs at least one value, got none")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(values), (n_boot, len(values)), generator=g)  # (n_boot, M)
    means = values[idx].mean(1)  # (n_boot,)
    tails = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(means, tails).tolist()
    return float(values.mean()), lo, hi
