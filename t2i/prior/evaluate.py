"""How good is a prior: its predicted image embedding against the true one, and against the baseline
of using the caption's text embedding as the image embedding (what unCLIP's prior must beat).

For each held-out (caption, image) pair: cosine(predicted, true image embedding) and the rank of the
true image among a gallery of N images (the pair's own image and N-1 others: consecutive blocks of N
items) by cosine with the query. For two-object scenes one caption may fit several images; the target
is the scene's own image, as in ARO and CLIP retrieval, so R@1 is a lower bound of "a fitting image".
Intervals: percentile bootstrap (seeded) over pairs, 95%; the margin is the paired difference.

    HF_HUB_OFFLINE=1 python -c "from t2i.prior.evaluate import demo; demo()"
"""

from __future__ import annotations

from typing import Any

import torch

from t2i.metrics.intervals import bootstrap_mean as bootstrap  # the one bootstrap of the project


def gallery_ranks(queries: torch.Tensor, images: torch.Tensor, gallery: int = 100) -> torch.Tensor:
    """1-based rank ``(M,)`` of image i among its block of ``gallery`` images for query i (M = whole blocks)."""
    m = len(images) // gallery * gallery
    if m == 0:
        raise ValueError(f"retrieval among {gallery} needs at least {gallery} pairs, got {len(images)}")
    q = torch.nn.functional.normalize(queries[:m].float(), dim=-1).view(-1, gallery, queries.shape[-1])  # (K, N, D)
    g = torch.nn.functional.normalize(images[:m].float(), dim=-1).view(-1, gallery, images.shape[-1])  # (K, N, D)
    sim = q @ g.transpose(1, 2)  # (K, N, N): query i vs every image of its block
    own = sim.diagonal(dim1=1, dim2=2)  # (K, N)
    return (1 + (sim > own[..., None]).sum(-1)).flatten()  # (M,)


def per_pair(queries: torch.Tensor, images: torch.Tensor, gallery: int = 100) -> dict[str, torch.Tensor]:
    """Per-pair scores ``(M,)``: cosine with the own image, R@1 and R@5 hits (0/1)."""
    ranks = gallery_ranks(queries, images, gallery)
    m = len(ranks)
    cos = torch.nn.functional.cosine_similarity(queries[:m].float(), images[:m].float(), dim=-1)
    return {"cosine": cos, "R@1": (ranks <= 1).float(), "R@5": (ranks <= 5).float()}


def compare(predicted: torch.Tensor, text: torch.Tensor, images: torch.Tensor, gallery: int = 100,
            n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Prior vs the text-embedding baseline on one split: each metric's mean and 95% interval for both and
    for their paired difference (``margin`` = prior - text; the same resampled pairs for both)."""
    prior_scores, text_scores = per_pair(predicted, images, gallery), per_pair(text, images, gallery)
    out: dict[str, Any] = {"pairs": len(prior_scores["cosine"]), "gallery": gallery}
    for k in prior_scores:
        rows = {}
        for name, values in (("prior", prior_scores[k]), ("text", text_scores[k]),
                             ("margin", prior_scores[k] - text_scores[k])):
            mean, lo, hi = bootstrap(values, n_boot, seed)
            rows[name] = {"mean": mean, "ci95": [lo, hi]}
        out[k] = rows
    return out


def table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table of ``{split: compare(...)}``."""
    lines = ["| split | metric | prior | text embedding | margin (prior - text) |", "|---|---|---|---|---|"]
    for split, res in results.items():
        for k in ("cosine", "R@1", "R@5"):
            cells = [f"{res[k][n]['mean']:.3f} [{res[k][n]['ci95'][0]:.3f}, {res[k][n]['ci95'][1]:.3f}]"
                     for n in ("prior", "text", "margin")]
            name = k if k == "cosine" else f"{k} of {res['gallery']}"
            lines.append(f"| {split} ({res['pairs']} pairs) | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def demo() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(200, 8, generator=g)
    near = images + 0.5 * torch.randn(200, 8, generator=g)
    far = images + 2.0 * torch.randn(200, 8, generator=g)
    print(table({"toy": compare(near, far, images, gallery=100, n_boot=200)}))


@torch.no_grad()
def evaluate_prior(prior: Any, scheduler: Any, clip: Any, tokenizer: Any, dataset: Any, gallery: int = 100,
                   num_inference_steps: int = 25, guidance_scale: float = 1.0, sampler: str = "ddpm", seed: int = 0,
                   n_boot: int = 1000, batch_size: int = 500, device: Any = "cpu") -> dict[str, Any]:
    """``compare`` on a held-out dataset of ``{"image", "text"}`` items: the frozen CLIP embeds the images
    (targets) and captions (baseline and conditions); the prior samples one embedding per caption, batch j
    with seed ``seed + j`` (so the result does not depend on anything but these arguments)."""
    from t2i.prior.model import encode_captions, encode_images, sample_prior

    images, texts = encode_images(clip, dataset, device, progress=False)
    cond = encode_captions(clip, tokenizer, texts, device)
    uncond = encode_captions(clip, tokenizer, [""], device)
    predicted = torch.cat([
        sample_prior(prior, scheduler, cond[i:i + batch_size], uncond, num_inference_steps, guidance_scale,
                     seed=seed + j, sampler=sampler).cpu()
        for j, i in enumerate(range(0, len(texts), batch_size))])
    return compare(predicted, cond.pooled, images, gallery, n_boot, seed)
