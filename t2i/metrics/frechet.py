"""Frechet distance between Gaussians fitted to two feature sets: FID and domain FID.

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium", eq. (6) (the Frechet / Wasserstein-2 distance of two Gaussians,
Dowson & Landau 1982):

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

On Inception-v3 pool features (``inception_extractor``) this is **FID**; on the project's
evaluator features it is **domain FID**, a different number on a different scale, so it
is returned under the key ``domain_fid`` together with the extractor's name.

    python -c "import torch; from t2i.metrics.frechet import frechet_from_features as f; x = torch.randn(500, 8); print(f(x, x + 1))"
"""

from __future__ import annotations

from typing import Any

import torch

from t2i.metrics.features import FeatureExtractor, as_features, inception_extractor, is_features


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of features ``(N, D)``, in float64."""
    x = features.double()
    if len(x) < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors, got {len(x)}")
    mu = x.mean(0)  # (D,)
    centred = x - mu  # (N, D)
    sigma = centred.T @ centred / (len(x) - 1)  # (D, D)
    return mu, sigma


def _sqrt_psd(a: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a positive semi-definite matrix (negative round-off clipped to 0)."""
    evals, evecs = torch.linalg.eigh((a + a.T) / 2)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Heusel et al. 2017 eq. (6) for N(mu1, sigma1) and N(mu2, sigma2).

    Tr((S1 S2)^(1/2)) is computed as Tr((S1^(1/2) S2 S1^(1/2))^(1/2)): the two matrices are
    similar, and the second is symmetric PSD, so an eigendecomposition in float64 gives it
    stably even when the covariances are singular (fewer samples than dimensions).
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shapes do not match: mu {tuple(mu1.shape)}, {tuple(mu2.shape)}; "
                         f"sigma {tuple(sigma1.shape)}, {tuple(sigma2.shape)}")
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1  # (D, D), symmetric PSD, same eigenvalues as S1 S2
    tr_covmean = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    value = diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean
    return float(value.clamp_min(0))  # exact arithmetic is >= 0; clip round-off


def frechet_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance of Gaussians fitted to two feature sets ``(N, D)`` and ``(M, D)``."""
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def domain_fid(real: Any, fake: Any, extractor: FeatureExtractor | None = None) -> dict[str, Any]:
    """Frechet distance on the project's evaluator features (or given features): "domain FID", not FID.

    ``real``/``fake``: images (list of PIL or ``(N, C, H, W)`` in [0, 1]) with ``extractor``,
    or precomputed features ``(N, D)``.
    """
    f_real = as_features(real, extractor, "real")
    f_fake = as_features(fake, extractor, "fake")
    return {"domain_fid": frechet_from_features(f_real, f_fake), "n_real": len(f_real), "n_fake": len(f_fake),
            "features": extractor.name if extractor else "given"}


def fid(real: Any, fake: Any, inception_weights: str | None = None) -> dict[str, Any]:
    """FID proper: Inception-v3 pool3 features from the user's local, hash-checked weights file.

    ``real``/``fake`` are images; raises ``InceptionUnavailable`` (with what to do) when the
    weights are not present. Precomputed features are refused: they could come from any network.
    """
    if is_features(real) or is_features(fake):
        raise ValueError("fid takes images (it extracts Inception features itself); for given features use domain-fid")
    extractor = inception_extractor(inception_weights, output="pool")
    f_real, f_fake = as_features(real, extractor, "real"), as_features(fake, extractor, "fake")
    return {"fid": frechet_from_features(f_real, f_fake), "n_real": len(f_real), "n_fake": len(f_fake),
            "features": extractor.name}
