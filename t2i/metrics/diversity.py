"""Sample diversity: mean pairwise feature distance among images of the same prompt.

A mode-collapse signal. A conditional generator that ignores its noise draws the same
picture for every seed of a prompt, so its within-prompt distance falls towards 0 while
FID, computed over all prompts together, can still look fine. ``diversity_ratio`` divides
by the mean pairwise distance over *all* images, so it is free of the feature scale:
about 1 means a prompt's images vary as much as the whole set, 0 means collapse.

    python -c "import torch; from t2i.metrics.diversity import diversity; print(diversity(torch.randn(8, 4), groups=[0, 0, 0, 0, 1, 1, 1, 1]))"
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Hashable, Sequence

import torch

from t2i.metrics.features import FeatureExtractor, as_features

MAX_ALL_PAIRS = 2000  # images used for the all-pairs reference distance (seeded subsample)


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance over unordered pairs of rows of ``x (n, D)``, n >= 2."""
    return float(torch.pdist(x.double()).mean())


def diversity(fake: Any, groups: Sequence[Hashable] | None = None, num_images_per_prompt: int | None = None,
              extractor: FeatureExtractor | None = None, seed: int = 0) -> dict[str, Any]:
    """Within-prompt diversity of generated images (images or features ``(N, D)``).

    Groups are given per image (``groups``, e.g. the prompt of each image) or by
    ``num_images_per_prompt`` for the generator contract's order ``[a0, a1, b0, b1]``.
    """
    feats = as_features(fake, extractor, "fake")
    if (groups is None) == (num_images_per_prompt is None):
        raise ValueError("give exactly one of groups (one id per image) or num_images_per_prompt")
    if groups is None:
        if num_images_per_prompt < 2 or len(feats) % num_images_per_prompt:
            raise ValueError(f"num_images_per_prompt must be >= 2 and divide the {len(feats)} images, "
                             f"got {num_images_per_prompt}")
        groups = [i // num_images_per_prompt for i in range(len(feats))]
    if len(groups) != len(feats):
        raise ValueError(f"groups has {len(groups)} ids for {len(feats)} images")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    per_group = [mean_pairwise_distance(feats[idx]) for idx in members.values() if len(idx) >= 2]
    if not per_group:
        raise ValueError("diversity needs at least one prompt with 2 or more images")
    gen = torch.Generator().manual_seed(seed)
    sample = feats[torch.randperm(len(feats), generator=gen)[:MAX_ALL_PAIRS]]
    overall = mean_pairwise_distance(sample)
    within = float(torch.tensor(per_group, dtype=torch.float64).mean())
    return {"diversity": within, "diversity_min": min(per_group), "diversity_all": overall,
            "diversity_ratio": within / overall if overall > 0 else 0.0, "groups": len(per_group),
            "features": extractor.name if extractor else "given"}
