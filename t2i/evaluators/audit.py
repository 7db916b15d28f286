"""How far to trust the evaluators: accuracy on real data and rejection of wrong prompts.

- ``audit_shapes``: the shapes evaluator judges real renders of the ``test`` (and ``novel``)
  split against their own captions (every attribute should be right), and against
  captions with exactly one attribute changed (``perturb``: all should be rejected).
  ``degrade`` imitates generated images (blur, tint, noise): the shape classifier is trained
  on degraded renders, and the audit also reports accuracy on a fixed degradation.
- ``audit_digits``: the digits classifier's accuracy on the digits ``test`` split.

These numbers go into each evaluator's model card (``t2i train evaluators``).

    python -c "from t2i.evaluators.audit import demo; demo()"
"""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from t2i.data.shapes import COLOURS, POSITIONS, RELATIONS, SHAPES, SIZES, make_scenes, render
from t2i.evaluators.shapes import ShapesEvaluator, scene_targets
from t2i.metrics.features import to_batch

ONE_ATTRIBUTES = ("colour", "shape", "size", "position")
TWO_ATTRIBUTES = ("colour", "shape", "relation")


def degrade(img: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Imperfections of generated images, each with probability ``p``: blur, darker/tinted colour, noise.

    ``img``: ``(S, S, 3)`` in [0, 255]; returns uint8. Strengths scale with S (blur in pixels at 32 px).
    """
    S = img.shape[0]
    img = img.astype(np.float64)
    if rng.random() < p:
        img = ndimage.gaussian_filter(img, sigma=(rng.uniform(0.3, 0.9) * S / 32,) * 2 + (0,))
    if rng.random() < p:
        img = img * rng.uniform(0.75, 1.05) + rng.uniform(-15, 15, size=3) * (img > 20)
    if rng.random() < p:
        img = img + rng.normal(0, rng.uniform(2, 10), size=img.shape)
    return img.clip(0, 255).round().astype(np.uint8)


def stress(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A harsher mix than ``degrade``, none of it seen in training as such: small rotation, blur,
    per-channel gain, noise, then JPEG at quality 50. ``(S, S, 3)`` in [0, 255] -> uint8."""
    S = img.shape[0]
    img = ndimage.rotate(img.astype(np.float64), rng.uniform(-6, 6), axes=(1, 0), reshape=False, order=1)
    img = ndimage.gaussian_filter(img, sigma=(rng.uniform(0.5, 1.0) * S / 32,) * 2 + (0,))
    img = img * rng.uniform(0.8, 1.15, size=3) + rng.normal(0, 10, size=img.shape)
    buffer = io.BytesIO()
    Image.fromarray(img.clip(0, 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=50)
    return np.asarray(Image.open(buffer).convert("RGB"))


def caption_of(objects: list[dict[str, Any]], relation: str | None) -> str:
    """The spec's caption of one object (size, colour, shape, position) or two (colour, shape) + relation."""
    if relation is None:
        o = objects[0]
        return f"a {o['size']} {o['colour']} {o['shape']} in the {o['position']}"
    a, b = objects
    return f"a {a['colour']} {a['shape']} {relation} a {b['colour']} {b['shape']}"


def perturb(record: dict[str, Any], attribute: str, rng: random.Random) -> str:
    """The record's caption with ``attribute`` changed to another valid value (two-object: one object's)."""
    objects = [dict(o) for o in record["objects"]]
    relation = record["relation"]
    if attribute == "relation":
        relation = rng.choice([r for r in RELATIONS if r != relation])
        return caption_of(objects, relation)
    values = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES), "position": list(POSITIONS)}
    if attribute not in values:
        raise ValueError(f"attribute must be one of {list(values) + ['relation']}, got {attribute!r}")
    which = rng.randrange(len(objects))
    others = [(o["colour"], o["shape"]) for k, o in enumerate(objects) if k != which]
    choices = []
    for v in values[attribute]:
        changed = dict(objects[which], **{attribute: v})
        if v != objects[which][attribute] and (changed["colour"], changed["shape"]) not in others:
            choices.append(v)  # a two-object caption never names the same pair twice
    objects[which][attribute] = rng.choice(choices)
    return caption_of(objects, relation)


def audit_shapes(evaluator: ShapesEvaluator, n: int = 1000, seed: int = 0, sizes: tuple[int, ...] = (32, 64),
                 splits: tuple[str, ...] = ("test", "novel", "test+degraded", "test+stress")) -> dict[str, Any]:
    """Per size and split: accuracy per attribute on true captions, rejection rate of one-attribute changes.

    ``"test+degraded"`` passes every test image through ``degrade`` (each imperfection with
    probability 0.5, as in training) and ``"test+stress"`` through ``stress`` (seeded): proxies
    for imperfect generated images. On the clean test split SceneNet's own attribute
    predictions (the domain-FID network) are scored too: per-target and exact-match accuracy.
    """
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    for S in sizes:
        for split in splits:
            records = make_scenes(n, seed=seed, size=S, split=split.split("+")[0])
            images = [render(r) for r in tqdm(records, desc=f"audit {split} {S}px", unit="img", leave=False)]
            if "+" in split:
                noise = np.random.default_rng(seed + S)
                spoil = degrade if split.endswith("+degraded") else stress
                images = [Image.fromarray(spoil(np.asarray(im), noise)) for im in images]
            if split == "test":
                results[f"scene_net_{S}px"] = scene_net_accuracy(evaluator, images, records)
            truth = evaluator.judge(images, [r["caption"] for r in records])
            accuracy = {}
            for key in ("colour", "shape", "size", "position", "relation", "all_correct"):
                rows = [j[key] for j in truth if key in j]
                accuracy[key] = float(np.mean(rows))
            changed, kinds, index = [], [], []  # every image once per attribute its caption has
            for i, r in enumerate(records):
                for attribute in (ONE_ATTRIBUTES if r["relation"] is None else TWO_ATTRIBUTES):
                    changed.append(perturb(r, attribute, rng))
                    kinds.append(attribute)
                    index.append(i)
            wrong = evaluator.judge([images[i] for i in index], changed)
            rejected = np.array([not j["all_correct"] for j in wrong])
            rejection = {k: float(rejected[[i for i, kk in enumerate(kinds) if kk == k]].mean())
                         for k in sorted(set(kinds))}
            rejection["all"] = float(rejected.mean())
            results[f"{split}_{S}px"] = {"n_images": n, "accuracy": accuracy,
                                         "rejection": rejection, "n_changed_prompts": len(changed)}
    return results


@torch.no_grad()
def scene_net_accuracy(evaluator: ShapesEvaluator, images: list[Image.Image], records: list[dict]) -> dict[str, float]:
    """SceneNet's multi-label predictions (logit > 0) against the scenes' targets."""
    x = to_batch(images)
    predicted = torch.cat([evaluator.attribute_logits(x[i:i + 256]) > 0 for i in range(0, len(x), 256)])
    truth = torch.stack([scene_targets(r) for r in records]) > 0.5  # (N, 39)
    return {"per_target_accuracy": float((predicted == truth).double().mean()),
            "exact_match": float((predicted == truth).all(1).double().mean())}


def audit_digits(classifier: Any, n: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Accuracy of the digits classifier on the digits test split (all 355 images; ``n`` unused)."""
    from t2i.data import load_dataset

    results = {}
    for split in ("test", "train"):
        data = load_dataset("digits", split=split, size=32)
        probs = classifier.predict_proba(data.images.float() / 255)
        results[f"{split}_accuracy"] = float((probs.argmax(1) == data.labels).double().mean())
        results[f"n_{split}"] = len(data)
    return results


def demo() -> None:
    evaluator = ShapesEvaluator.from_pretrained()
    torch.set_num_threads(2)
    print(audit_shapes(evaluator, n=50, sizes=(32,), splits=("test",)))
