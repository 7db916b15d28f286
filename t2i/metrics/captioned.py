"""Measures for any captioned data: generated images scored against a held-out captioned split.

Nothing here knows what the pictures show. The judge is an **evaluation CLIP** the user trained on
the training split only (``t2i train clip --data mydata``), and the held-out split (captions and
real images: a folder, a CSV, a ``datasets`` source) gives both the prompts and the yardstick.
Every generated number comes with the number real held-out images get, so "good" has a scale:

| name | generated images | reference beside it |
| --- | --- | --- |
| ``r-precision`` | own caption ranked first among 100 (AttnGAN; ``t2i.metrics.r_precision``), 95% CI | the real images' R-precision (ceiling), same candidates |
| ``clip-score`` | 100 * max(cos(image, caption), 0) (Hessel et al. 2021; ``t2i.metrics.clip_score``) | the real images' CLIP score |
| ``clip-fid``, ``clip-kid`` | FID / KID on CLIP image embeddings (``t2i.metrics.clip_features``) | real-vs-real floor |
| ``clip-retrieval`` | R@1/5/10 and median rank both ways among all held-out captions (``t2i.clip.evaluate``) | the real images' (the CLIP's own retrieval) |

The floor of ``clip-fid``/``clip-kid``: the held-out items are split at random (seeded) into two
disjoint halves A and B of equal size; the generated score is real A against the images generated
for B's captions (the first image of each), the floor is real A against real B. Same reference, same
count, same captions: the floor is what a perfect generator would score, not zero.

    python -c "from t2i.metrics.captioned import demo; demo()"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from PIL import Image

from t2i.metrics.clip_features import clip_extractor, clip_fid, clip_kid, clip_text_features
from t2i.metrics.clip_score import clip_score
from t2i.metrics.r_precision import NUM_CANDIDATES, r_precision

CAPTIONED_METRICS = ("r-precision", "clip-score", "clip-fid", "clip-kid", "clip-retrieval")


@dataclass
class HeldOut:
    """The held-out split: one real image per caption, in the order the prompts were generated."""

    images: torch.Tensor  # (N, C, S, S) in [0, 1]
    captions: list[str]  # N captions (the prompts; repeats allowed)
    source: str = ""  # where they came from, for reports
    labels: list[int] | None = None  # N class indexes where the source has classes (class folders, ClassLabel)


@dataclass
class CaptionedOptions:
    """How the measures are drawn; every random choice is seeded."""

    seed: int = 0  # seed of the R-precision candidates, the A/B halves and the bootstrap
    num_candidates: int = NUM_CANDIDATES  # r-precision: the true caption + this many - 1 others
    n_boot: int = 1000  # bootstrap resamples of the 95% intervals
    kid_subset_size: int = 1000  # KID subsets (all points when both sets are smaller)


def load_held_out(source: str, split: str = "auto", size: int = 32, n: int | None = None, seed: int = 0,
                  **options: Any) -> tuple[HeldOut, Any]:
    """The held-out split of any captioned source (``t2i.data.load_dataset``), read once, in order.

    ``split="auto"``: ``t2i.data.held_out_split`` (``test``, or the only split of a flat folder / CSV:
    the source given is the held-out data). Returns the ``HeldOut`` and the dataset's ``BadDataReport``
    (or None). Evaluation reads: no flips, the first of several captions; ``options`` (``image_column``,
    ``caption_column``, ``resize``, ``background``: as the model was trained, ``t2i.data.as_trained``).
    """
    from t2i.data import held_out_split, load_dataset, require_captions

    default = held_out_split(source)
    single = default == "train"  # a flat folder / CSV: all of it is held out, named without a split
    split = default if split == "auto" else split
    dataset = load_dataset(source, split=split, size=size, n=n, seed=seed, **options)
    require_captions(dataset, "scoring generated images against their prompts")
    images, captions, labels = [], [], []
    for batch in torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=False):
        images.append(batch["image"])  # (B, C, S, S)
        captions.extend(batch["text"])
        labels.extend(int(label) for label in batch["label"])
    if not captions:
        raise ValueError(f"{source} (split {split!r}) holds no captioned images; give a held-out split with captions")
    labelled = getattr(dataset, "num_classes", 0) > 0 and min(labels) >= 0
    return HeldOut(torch.cat(images), captions, str(source) if single else f"{source}:{split}",
                   labels if labelled else None), getattr(dataset, "report", None)


def check_held_out(held_out: HeldOut) -> None:
    """At least 2 distinct captions (R-precision needs a distractor) and 2 items per half (a covariance)."""
    if len(held_out.captions) != len(held_out.images):
        raise ValueError(f"one caption per held-out image: {len(held_out.images)} images, "
                         f"{len(held_out.captions)} captions")
    distinct = len(set(held_out.captions))
    if distinct < 2:
        raise ValueError(f"the held-out split {held_out.source or ''} has {distinct} distinct caption(s); "
                         "these measures need at least 2 (give a held-out split with more captioned images)")


def halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random halves A, B of ``range(n)``, each of ``n // 2`` items (seeded)."""
    if n // 2 < 2:
        raise ValueError(f"clip-fid/clip-kid compare two halves of the held-out split; {n} items give halves of "
                         f"{n // 2}, at least 2 each are needed (give at least 4 held-out items)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:n // 2], perm[n // 2: 2 * (n // 2)]


def score_captioned(names: Sequence[str], generated: Sequence[Image.Image] | torch.Tensor, held_out: HeldOut,
                    model: Any, model_name: str = "", n_per_prompt: int = 1,
                    options: CaptionedOptions | None = None,
                    distractors: Sequence[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each metric of ``names`` (``CAPTIONED_METRICS``) -> (results, real-vs-real floor).

    ``generated`` holds ``n_per_prompt`` images per held-out item, item-major (``[a0, a1, b0, b1]``, the
    generator contract's order): images ``i * n .. i * n + n - 1`` were generated for ``held_out.captions[i]``.
    ``distractors``: more held-out captions that r-precision draws its mismatching candidates among (and
    clip-retrieval ranks among) besides ``held_out``'s own, e.g. the rest of the split when only some of its
    items are generated (``t2i bench``).
    """
    options = options or CaptionedOptions()
    unknown = [m for m in names if m not in CAPTIONED_METRICS]
    if unknown:
        raise ValueError(f"{unknown} are not measures for any captioned data; choose from {list(CAPTIONED_METRICS)}")
    check_held_out(held_out)
    n = len(held_out.captions)
    if len(generated) != n * n_per_prompt:
        raise ValueError(f"expected {n_per_prompt} generated image(s) for each of {n} held-out captions, "
                         f"got {len(generated)}")
    prompts = [c for c in held_out.captions for _ in range(n_per_prompt)]
    extractor = clip_extractor(model, model_name)
    f_gen, f_real = extractor(generated), extractor(held_out.images)  # (N * n, P), (N, P)
    unique = sorted(set(held_out.captions) | set(distractors))
    f_text = clip_text_features(model, unique)  # (U, P)
    results: dict[str, Any] = {}
    floor: dict[str, Any] = {}
    for name in names:
        if name == "r-precision":
            results[name] = dict(r_precision(f_gen, prompts, f_text, unique, real_features=f_real,
                                             real_captions=held_out.captions, num_candidates=options.num_candidates,
                                             seed=options.seed, n_boot=options.n_boot), features=extractor.name)
        elif name == "clip-score":
            from t2i.clip import get_tokenizer

            tokenizer = get_tokenizer(model)
            results[name] = dict(clip_score(generated, prompts, model, tokenizer, model_name=model_name),
                                 real=clip_score(held_out.images, held_out.captions, model, tokenizer,
                                                 model_name=model_name))
        elif name in ("clip-fid", "clip-kid"):
            a, b = halves(n, options.seed)
            first = f_gen.view(n, n_per_prompt, -1)[:, 0]  # (N, P): the first image of each caption
            if name == "clip-fid":
                results[name], floor[name] = clip_fid(f_real[a], first[b]), clip_fid(f_real[a], f_real[b])
            else:
                kid = dict(subset_size=options.kid_subset_size, seed=options.seed)
                results[name], floor[name] = clip_kid(f_real[a], first[b], **kid), clip_kid(f_real[a], f_real[b], **kid)
            for d in (results[name], floor[name]):
                d.update(features=extractor.name, halves_seed=options.seed)
        elif name == "clip-retrieval":
            from t2i.clip.evaluate import retrieval_metrics

            results[name] = dict(retrieval_metrics(f_gen, prompts, f_text, unique),
                                 real=retrieval_metrics(f_real, held_out.captions, f_text, unique),
                                 features=extractor.name)
    return results, floor


def summary_lines(results: dict[str, Any], floor: dict[str, Any]) -> list[str]:
    """One line per measure: the generated images' number beside the real images' or the floor."""
    lines = []
    if "r-precision" in results:
        r = results["r-precision"]
        real = r.get("real", {})
        lines.append(f"r-precision {r['r_precision']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] "
                     f"(real images {real.get('r_precision', float('nan')):.3f} "
                     f"[{real.get('ci95', [float('nan')] * 2)[0]:.3f}, {real.get('ci95', [float('nan')] * 2)[1]:.3f}]), "
                     f"{r['num_candidates']} candidates per caption, {r['n_captions']} captions")
    if "clip-score" in results:
        c = results["clip-score"]
        lines.append(f"clip-score {c['clip_score']:.2f} (real images {c['real']['clip_score']:.2f})")
    for name, key in (("clip-fid", "clip_fid"), ("clip-kid", "clip_kid")):
        if name in results:
            lines.append(f"{name} {results[name][key]:.4g} (real-vs-real floor {floor[name][key]:.4g}), "
                         f"{results[name]['n_fake']} images against {results[name]['n_real']} real")
    if "clip-retrieval" in results:
        g, r = results["clip-retrieval"], results["clip-retrieval"]["real"]
        lines.append("clip-retrieval image->text R@1/5/10 " + "/".join(
            f"{g[f'image_to_text_R@{k}']:.3f}" for k in (1, 5, 10)) + " (real images " + "/".join(
            f"{r[f'image_to_text_R@{k}']:.3f}" for k in (1, 5, 10)) + f") among {int(r['num_unique_captions'])} captions")
    return lines


def demo() -> None:
    from t2i.clip.testing import tiny_clip

    torch.manual_seed(0)
    reals = torch.rand(12, 3, 32, 32)
    held_out = HeldOut(reals, [f"a picture number {i}" for i in range(12)], "random")
    results, floor = score_captioned(CAPTIONED_METRICS, reals.flip(0), held_out, tiny_clip(), "tiny")
    print("\n".join(summary_lines(results, floor)))
