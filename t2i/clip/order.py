"""Order sensitivity of a CLIP: does an image prefer its true caption over each perturbation of it?

The ARO protocol (Yuksekgonul et al., ICLR 2023: VG-Relation, VG-Attribution, COCO/Flickr
Order): for every image, the true caption and a perturbed one (``t2i.clip.negatives``) are
scored by cosine similarity, and the accuracy of a perturbation kind is the share of images
whose true caption scores higher. One negative per comparison, so chance is 50%; a
bag-of-words model sits there for swaps that keep the words (subject/object swapped,
colours exchanged). On ``shapes`` the perturbations come from the scene labels (exact), on
any other captions from the rule-based perturber.

Besides one accuracy per kind, ``all_two_object`` / ``all`` give the share of images that beat
*every* negative they have (the stricter figure a generator conditioned on the text needs).

    python -c "from t2i.clip.order import demo; demo()"
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch

from t2i.clip.negatives import perturbations


@torch.no_grad()
def order_sensitivity(model, image_features: torch.Tensor, captions: Sequence[str],
                      records: Sequence[dict[str, Any] | None] | None = None, perturber: str = "auto",
                      seed: int = 0, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Per perturbation kind: accuracy (true caption scored above the negative) and count.

    ``image_features`` ``(N, P)`` normalised (``t2i.clip.evaluate.encode_dataset``), one caption
    and (for shapes) one scene record per image. ``seed`` fixes the rule-based shuffles and the
    one-object replacement values.
    """
    from t2i.clip.evaluate import encode_texts

    records = list(records) if records is not None else [None] * len(captions)
    rng = random.Random(seed)
    rows = [(i, kind, negative) for i, (text, rec) in enumerate(zip(captions, records))
            for kind, negative in perturbations(text, rec, perturber, rng).items() if negative is not None]
    if not rows:
        return {"kinds": {}, "num_images": len(captions), "perturber": perturber}
    texts = sorted(set(captions) | {negative for _, _, negative in rows})
    index = {t: j for j, t in enumerate(texts)}
    text_features = encode_texts(model, texts, device=device)  # (U, P) normalised
    items = torch.tensor([i for i, _, _ in rows])
    true = (image_features * text_features[[index[c] for c in captions]]).sum(-1)  # (N,)
    negative = (image_features[items] * text_features[[index[n] for _, _, n in rows]]).sum(-1)  # (R,)
    wins = true[items] > negative  # (R,)
    kinds: dict[str, dict[str, float]] = {}
    for kind in dict.fromkeys(k for _, k, _ in rows):
        mask = torch.tensor([k == kind for _, k, _ in rows])
        kinds[kind] = {"accuracy": float(wins[mask].float().mean()), "n": int(mask.sum()),
                       "mean_margin": float((true[items][mask] - negative[mask]).mean())}
    losses = torch.zeros(len(captions)).index_add_(0, items, (~wins).float())  # (N,) negatives scored above
    has_rows = torch.zeros(len(captions)).index_add_(0, items, torch.ones(len(rows))) > 0  # (N,)
    beaten_all = losses == 0
    out: dict[str, Any] = {"kinds": kinds, "num_images": len(captions), "perturber": perturber,
                           "all": float(beaten_all[has_rows].float().mean())}
    two = torch.tensor([rec is not None and len(rec.get("objects") or []) == 2 for rec in records]) & has_rows
    if two.any():
        out["all_two_object"] = float(beaten_all[two].float().mean())
        out["num_two_object"] = int(two.sum())
    return out


def order_summary(order: dict[str, Any]) -> str:
    """``swap_objects 98.0% of 412, flip_relation 97.5% of 398, ...`` (empty when there was nothing to perturb):
    each rate with the captions it was measured on, since on one's own captions a kind may apply to a handful."""
    parts = [f"{kind} {100 * r['accuracy']:.1f}% of {r['n']}" for kind, r in order.get("kinds", {}).items()]
    if "all_two_object" in order:
        parts.append(f"two-object beats all {100 * order['all_two_object']:.1f}% of {order['num_two_object']}")
    return ", ".join(parts)


def demo() -> None:
    from t2i.clip.evaluate import encode_dataset
    from t2i.clip.testing import tiny_clip
    from t2i.data import load_dataset

    ds = load_dataset("shapes", split="test", n=64)
    model = tiny_clip()
    feats, captions = encode_dataset(model, ds, progress=False)
    print(order_summary(order_sensitivity(model, feats, captions, ds.records)))
