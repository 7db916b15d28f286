"""R-precision: does an evaluation model pick an image's own caption out of 100?

Xu et al. 2018, "AttnGAN: Fine-Grained Text to Image Generation with Attentional Generative
Adversarial Networks", Sec. 5 ("R-precision"), as used by DF-GAN (Tao et al. 2022) and most
text-to-image GAN papers since:

    For each generated image, its text description and 99 randomly selected mismatching
    descriptions from the test set form the candidates. The image and every candidate are
    embedded (AttnGAN: the DAMSM encoders; here: an evaluation CLIP trained on the training
    split only), the candidates are ranked by cosine similarity with the image, and the
    image counts as a hit when its own description is ranked first (r = 1 relevant item,
    so R-precision = precision at 1). R-precision = the share of hits.

Our protocol, fixed so that a number can be re-made:
- captions are compared as strings: the 99 mismatching ones are drawn among the *distinct*
  captions of the held-out split other than the true one (a repeated caption would tie with
  itself); with fewer than 100 distinct captions every one is a candidate (``num_candidates``
  reports how many);
- the draws come from one seeded generator, one candidate set per caption, and the same
  sets serve the generated images and the real ones, so the two numbers are paired;
- a tie with a mismatching caption is a miss (the own caption must score strictly higher);
- with several images per caption the hits are averaged per caption first, and the 95%
  interval is a percentile bootstrap over captions (``t2i.metrics.intervals``).

The **real images' own R-precision** (the held-out real image in place of the generated one)
is what pictures like the held-out ones score with this evaluation model: a generated image that
matches its caption as well as a real photo of it scores the same. A generator goes above it only by
drawing pictures more typical of each caption than real ones (often one per caption: collapse), so a
score above it is read beside a diversity or distribution measure.

    python -c "from t2i.metrics.r_precision import demo; demo()"
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from t2i.metrics.intervals import bootstrap_mean

NUM_CANDIDATES = 100  # the true caption + 99 mismatching ones (AttnGAN, Sec. 5)


def caption_ids(captions: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """The distinct captions (sorted) and the id of each caption among them ``(N,)``."""
    unique = sorted(set(captions))
    index = {c: i for i, c in enumerate(unique)}
    return unique, torch.tensor([index[c] for c in captions], dtype=torch.long)


def draw_candidates(true_ids: torch.Tensor, num_unique: int, num_candidates: int = NUM_CANDIDATES,
                    seed: int = 0) -> torch.Tensor:
    """Candidate caption ids ``(N, K)``: column 0 the true id, then K - 1 distinct other ids drawn at random.

    K = min(num_candidates, num_unique). Row i depends only on ``seed`` and its true id, so every
    image of one caption (and its real image) faces the same candidates.
    """
    if num_unique < 2:
        raise ValueError(f"R-precision needs at least 2 distinct captions, got {num_unique}")
    if num_candidates < 2:
        raise ValueError(f"num_candidates must be at least 2 (the true caption and one other), got {num_candidates}")
    k = min(num_candidates, num_unique)
    g = torch.Generator().manual_seed(seed)
    per_caption = torch.empty(num_unique, k, dtype=torch.long)  # one draw per distinct caption
    for t in range(num_unique):
        others = torch.randperm(num_unique - 1, generator=g)[:k - 1]  # ids of the other captions, 0..U-2
        per_caption[t, 0] = t
        per_caption[t, 1:] = others + (others >= t).long()  # skip the true id
    return per_caption[true_ids]  # (N, K)


def r_precision_hits(image_features: torch.Tensor, caption_features: torch.Tensor,
                     candidates: torch.Tensor) -> torch.Tensor:
    """1.0 where the true caption (column 0 of ``candidates``) scores strictly above every other -> ``(N,)``.

    ``image_features`` ``(N, P)`` and ``caption_features`` ``(U, P)`` are compared by cosine similarity.
    """
    img = torch.nn.functional.normalize(image_features.float(), dim=-1)  # (N, P)
    txt = torch.nn.functional.normalize(caption_features.float(), dim=-1)  # (U, P)
    sim = torch.einsum("np,nkp->nk", img, txt[candidates])  # (N, K): image i vs its candidates
    return (sim[:, 0] > sim[:, 1:].max(1).values).float()  # (N,)


def summarise(hits: torch.Tensor, groups: torch.Tensor, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean hit rate and 95% bootstrap interval over groups (a caption's images averaged first)."""
    _, inverse = torch.unique(groups, return_inverse=True)
    per_group = torch.zeros(int(inverse.max()) + 1, dtype=torch.float64).index_add_(0, inverse, hits.double())
    per_group /= torch.bincount(inverse).double()
    mean, lo, hi = bootstrap_mean(per_group, n_boot, seed)
    return {"r_precision": mean, "ci95": [lo, hi], "n_images": len(hits), "n_captions": len(per_group)}


def r_precision(image_features: torch.Tensor, captions: Sequence[str], caption_features: torch.Tensor,
                unique_captions: Sequence[str], real_features: torch.Tensor | None = None,
                real_captions: Sequence[str] | None = None, num_candidates: int = NUM_CANDIDATES, seed: int = 0,
                n_boot: int = 1000) -> dict[str, Any]:
    """R-precision of images ``(N, P)`` against their ``captions``, and of the real images (the ceiling).

    ``caption_features`` ``(U, P)`` embed ``unique_captions``, the distinct captions of the held-out
    split (distractors are drawn among them, so it must contain every caption of ``captions``).
    """
    index = {c: i for i, c in enumerate(unique_captions)}
    missing = sorted({c for c in list(captions) + list(real_captions or []) if c not in index})
    if missing:
        raise ValueError(f"captions not among the held-out captions: {missing[:3]}")
    if len(captions) != len(image_features):
        raise ValueError(f"one caption per image: {len(image_features)} images, {len(captions)} captions")
    ids = torch.tensor([index[c] for c in captions], dtype=torch.long)
    candidates = draw_candidates(ids, len(unique_captions), num_candidates, seed)
    out = summarise(r_precision_hits(image_features, caption_features, candidates), ids, n_boot, seed)
    out.update(num_candidates=candidates.shape[1], seed=seed)
    if real_features is not None:
        real_ids = torch.tensor([index[c] for c in real_captions], dtype=torch.long)
        real_candidates = draw_candidates(real_ids, len(unique_captions), num_candidates, seed)  # the same sets
        out["real"] = summarise(r_precision_hits(real_features, caption_features, real_candidates), real_ids,
                                n_boot, seed)
    return out


def demo() -> None:
    torch.manual_seed(0)
    captions = [f"caption {i}" for i in range(150)]
    text = torch.randn(150, 16)  # an "oracle" evaluation model: each real image embeds as its caption
    noisy = text + 1.5 * torch.randn(150, 16)  # a generator that half follows the caption
    res = r_precision(noisy, captions, text, captions, real_features=text, real_captions=captions)
    print(f"generated {res['r_precision']:.3f} {res['ci95']}, real {res['real']['r_precision']:.3f}, "
          f"{res['num_candidates']} candidates")
