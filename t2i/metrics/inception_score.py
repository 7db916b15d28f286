"""Inception Score, only when the user has the FID Inception weights locally.

Salimans et al. 2016, "Improved Techniques for Training GANs", Sec. 4:

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

computed on ``splits`` consecutive chunks of the samples and reported as mean and std
over chunks (10 splits in the paper). It needs a classifier of the image's content, so
there is no "domain" fallback here: on shapes or digits, prompt accuracy and the digits
classifier's coverage/entropy measure the same thing exactly.

    python -c "import torch; from t2i.metrics.inception_score import inception_score_from_logits as s; print(s(torch.randn(100, 10) * 5, splits=2))"
"""

from __future__ import annotations

from typing import Any

import torch

from t2i.metrics.features import as_features, inception_extractor, is_features


def inception_score_from_logits(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Mean and std over ``splits`` chunks of exp(E_x KL(p(y|x) || p(y))) from logits ``(N, C)``."""
    if not 1 <= splits <= len(logits):
        raise ValueError(f"splits must be in [1, {len(logits)}] for {len(logits)} images, got {splits}")
    log_p = logits.double().log_softmax(dim=1)  # (N, C) log p(y|x)
    scores = []
    for chunk in log_p.chunk(splits, dim=0):
        log_marginal = chunk.exp().mean(0).log()  # (C,) log p(y) over this chunk
        kl = (chunk.exp() * (chunk - log_marginal)).sum(1)  # (n,) KL(p(y|x) || p(y))
        scores.append(kl.mean().exp())
    t = torch.stack(scores)
    return float(t.mean()), float(t.std()) if len(t) > 1 else 0.0


def inception_score(images: Any, inception_weights: str | None = None, splits: int = 10) -> dict[str, Any]:
    """Inception Score of images on the user's local, hash-checked Inception weights."""
    if is_features(images):
        raise ValueError("inception_score takes images; for logits you computed use inception_score_from_logits")
    extractor = inception_extractor(inception_weights, output="logits")
    logits = as_features(images, extractor, "images")
    mean, std = inception_score_from_logits(logits, splits)
    return {"inception_score": mean, "inception_score_std": std, "splits": splits, "n": len(logits)}
