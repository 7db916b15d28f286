"""The metric registry: every metric is a function of keyword arguments returning a dict.

| name | what it says | needs |
| --- | --- | --- |
| ``fid``, ``kid`` | distance of the sample set to the data, on Inception-v3 | the local FID Inception weights (hash-checked) |
| ``domain-fid``, ``domain-kid`` | the same on the project's evaluator features; **not** comparable to FID | an evaluator's ``feature_extractor()`` or features |
| ``precision-recall`` | fidelity / coverage of the data (Kynkaanniemi et al. 2019, k=3) | features or images + extractor |
| ``density-coverage`` | outlier-robust fidelity / coverage (Naeem et al. 2020, k=5) | features or images + extractor |
| ``clip-score`` | image-prompt agreement, 100 * max(cos, 0) | a CLIP model, tokenizer |
| ``r-precision`` | own caption ranked first among 100 held-out ones (Xu et al. 2018), 95% CI, real-image ceiling | CLIP image + caption features |
| ``clip-fid``, ``clip-kid`` | FID / KID on a CLIP's image embeddings (Kynkaanniemi et al. 2023); **not** FID | ``clip_extractor(model)`` or CLIP features |
| ``clip-retrieval`` | R@1/5/10, median rank image<->text among the held-out captions | CLIP image + caption features |
| ``inception-score`` | confidence and variety of Inception's classes | the local FID Inception weights |
| ``diversity`` | mean pairwise distance among images of one prompt (mode collapse) | features or images + extractor |
| ``prompt-accuracy`` | exact share of shapes images matching their prompt | ``t2i.evaluators.shapes`` |
| ``digits-score`` | class-conditional digits: accuracy vs requested label, coverage | ``t2i.evaluators.digits`` |

Images are a list of PIL images or a tensor ``(N, C, H, W)`` in [0, 1]; wherever features
are accepted a 2-D tensor ``(N, D)`` is read as precomputed features (extract once, score many).
``t2i.metrics.captioned.score_captioned`` runs the CLIP-based ones on any captioned data, each beside
the number real held-out images get (``t2i eval --prompts mydata/test --clip MYCLIP``).

    python -c "import torch; from t2i.metrics import compute; x = torch.randn(200, 8); print(compute('domain-fid', real=x, fake=x + 1))"
"""

from __future__ import annotations

from typing import Any, Callable

from t2i.metrics.clip_features import clip_extractor, clip_fid, clip_kid, clip_text_features
from t2i.metrics.clip_score import clip_score
from t2i.metrics.diversity import diversity
from t2i.metrics.features import (
    INCEPTION_ENV,
    INCEPTION_SHA256,
    FeatureExtractor,
    InceptionUnavailable,
    as_features,
    inception_available,
    inception_extractor,
    to_batch,
)
from t2i.metrics.frechet import domain_fid, fid, frechet_distance, frechet_from_features, gaussian_stats
from t2i.metrics.inception_score import inception_score, inception_score_from_logits
from t2i.metrics.kid import domain_kid, kid, kid_from_features, mmd2_unbiased, polynomial_kernel
from t2i.metrics.prdc import density_coverage, knn_radii, precision_recall
from t2i.metrics.r_precision import r_precision


def prompt_accuracy(images: Any, prompts: list[str], novel_flags: list[bool] | None = None,
                    evaluator: Any = None) -> dict[str, Any]:
    """GenEval-style exact prompt accuracy of shapes images (see ``t2i.evaluators.shapes``)."""
    from t2i.evaluators.shapes import prompt_accuracy as run

    return run(images, prompts, novel_flags=novel_flags, evaluator=evaluator)


def digits_score(images: Any, requested_labels: list[int] | None = None, classifier: Any = None) -> dict[str, Any]:
    """Digits samples scored by the project's classifier (see ``t2i.evaluators.digits``)."""
    from t2i.evaluators.digits import score_samples

    return score_samples(images, requested_labels=requested_labels, classifier=classifier)


def clip_retrieval(image_features: Any, captions: list[str], caption_features: Any,
                   unique_captions: list[str]) -> dict[str, Any]:
    """Image<->text recall@1/5/10 and median rank (``t2i.clip.evaluate.retrieval_metrics``)."""
    from t2i.clip.evaluate import retrieval_metrics

    return retrieval_metrics(image_features, captions, caption_features, unique_captions)


METRICS: dict[str, Callable[..., dict[str, Any]]] = {
    "fid": fid,
    "kid": kid,
    "domain-fid": domain_fid,
    "domain-kid": domain_kid,
    "precision-recall": precision_recall,
    "density-coverage": density_coverage,
    "clip-score": clip_score,
    "r-precision": r_precision,
    "clip-fid": clip_fid,
    "clip-kid": clip_kid,
    "clip-retrieval": clip_retrieval,
    "inception-score": inception_score,
    "diversity": diversity,
    "prompt-accuracy": prompt_accuracy,
    "digits-score": digits_score,
}


def compute(name: str, **kwargs: Any) -> dict[str, Any]:
    """Run the metric ``name`` with its keyword arguments; see the table above."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {sorted(METRICS)}")
    return METRICS[name](**kwargs)


__all__ = [
    "METRICS", "compute", "FeatureExtractor", "InceptionUnavailable", "INCEPTION_ENV", "INCEPTION_SHA256",
    "as_features", "to_batch", "inception_available", "inception_extractor", "fid", "kid", "domain_fid",
    "domain_kid", "frechet_distance", "frechet_from_features", "gaussian_stats", "kid_from_features",
    "mmd2_unbiased", "polynomial_kernel", "precision_recall", "density_coverage", "knn_radii", "clip_score",
    "inception_score", "inception_score_from_logits", "diversity", "prompt_accuracy", "digits_score",
    "r_precision", "clip_extractor", "clip_fid", "clip_kid", "clip_text_features", "clip_retrieval",
]
