"""Evaluate a CLIP: image<->text retrieval and zero-shot classification on a held-out split.

Retrieval (recall@1/5/10 and median rank, 1-based). Captions repeat in synthetic data
(many `shapes` scenes share "a small red circle in the center"), and identical captions
have identical embeddings, so ground truth is by caption *string*: the N captions are
deduplicated into U unique ones; image->text ranks an image's caption among the U; text->image
ranks, for each unique caption, the best-placed of the images that carry it. An image with several
captions (Flickr8k and COCO give five) is right at k when any of its captions is among the first k, and
each of them ranks it as its own (the COCO protocol of Karpathy & Fei-Fei 2015). Without repeats this is the
usual one-to-one protocol.

Order sensitivity (``t2i.clip.order``, ARO-style): the share of images whose true caption
scores above each word-order perturbation of it (subject/object swapped, relation flipped,
attributes exchanged; from the scene labels on shapes, by rules on any captions).

Zero-shot classification (Radford et al. 2021, sec. 3.1.4): each class name is put into
every prompt template and the templates are combined in one of two ways (both accuracies
are always reported; ``ensemble`` picks the headline one and the confusion matrix):
``mean`` averages the normalised text embeddings (prompt ensembling,
``open_clip.build_zero_shot_classifier``), ``marginal`` sums the model's caption
probabilities per class, ``p(c | x) = sum_t softmax(s * cos)(c, t)``. Built in:
- ``shapes``: colour (7 classes) and shape (4) of single-object scenes, labels from
  ``dataset.records[i]["objects"][0]``; the templates enumerate the other attributes, e.g.
  colour uses "a {size} {} {shape} in the {position}" for every size, shape and position,
  so a class is a union of 40 (colour) or 70 (shape) captions: ``marginal``;
- ``digits``: the ten digits with "a handwritten digit {}" (``mean``).
Any dataset with labels: ``classes`` (one name per label, in label order) and ``templates``.

    python -c "from t2i.clip.evaluate import demo; demo()"
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from t2i.clip.model import get_tokenizer, preprocess_images
from t2i.clip.order import order_sensitivity, order_summary


@dataclass
class ZeroShotTask:
    name: str  # e.g. "colour"
    classes: list[str]  # class names put into the templates
    templates: list[str]  # format strings with one "{}"
    indices: list[int]  # dataset items the task is evaluated on
    labels: list[int]  # their class indices into ``classes``
    ensemble: str = "mean"  # how templates combine: mean (of embeddings) | marginal (sum of caption probabilities)


@torch.no_grad()
def encode_dataset(model, dataset, batch_size: int = 256, device: str | torch.device = "cpu",
                   progress: bool = True, every_caption: bool = False) -> tuple[torch.Tensor, list[Any]]:
    """Normalised image embeddings (N, P) and the N captions of a dataset (with ``every_caption``, each item's list
    of captions: several per image in user data, ``caption_lists``, or a streamed item's ``captions`` lines)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    lists = getattr(dataset, "caption_lists", None) if every_caption else None
    feats, texts = [], []
    for batch in tqdm(loader, desc="encoding images", disable=not progress, leave=False):
        images = preprocess_images(model, batch["image"].to(device))  # (B, 3, S, S)
        feats.append(model.encode_image(images, normalize=True).float().cpu())  # (B, P)
        # an unreadable file's item is the next readable one: its own captions, by the index it reports
        texts.extend([lists[int(j)] for j in batch["index"]] if lists is not None else
                     [c.split("\n") for c in batch["captions"]] if every_caption and "captions" in batch else
                     [[t] for t in batch["text"]] if every_caption else batch["text"])
    return torch.cat(feats), texts


@torch.no_grad()
def encode_texts(model, texts: Sequence[str], batch_size: int = 512, device: str | torch.device = "cpu") -> torch.Tensor:
    tokenizer = get_tokenizer(model)
    out = [model.encode_text(tokenizer(list(texts[i:i + batch_size])).to(device), normalize=True).float().cpu()
           for i in range(0, len(texts), batch_size)]
    return torch.cat(out)  # (N, P)


def retrieval_metrics(image_features: torch.Tensor, captions: Sequence[str | Sequence[str]],
                      caption_features: torch.Tensor, unique_captions: Sequence[str],
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k and median rank both ways; ``captions``: each image's caption, or list of its captions;
    ``caption_features`` (U, P) embed ``unique_captions``."""
    index = {c: i for i, c in enumerate(unique_captions)}
    positive = torch.zeros(len(unique_captions), len(captions), dtype=torch.bool)  # (U, N) caption u describes image n
    for n, own in enumerate(captions):
        positive[[index[c] for c in ([own] if isinstance(own, str) else own)], n] = True
    sim = image_features @ caption_features.T  # (N, U) cosine similarities
    # image -> text: 1 + number of captions scored above the best-scored of the image's own
    best = sim.masked_fill(~positive.T, float("-inf")).max(1, keepdim=True).values  # (N, 1)
    i2t_rank = 1 + (sim > best).sum(1)  # (N,)
    # text -> image: rank of every image for every caption, keep the best-ranked positive
    order = sim.T.argsort(dim=1, descending=True)  # (U, N)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(1, sim.shape[0] + 1).expand_as(order))  # (U, N) 1-based
    t2i_rank = ranks.masked_fill(~positive, sim.shape[0] + 1).min(1).values  # (U,)
    out: dict[str, float] = {"num_images": float(len(captions)), "num_unique_captions": float(len(unique_captions))}
    for name, rank in (("image_to_text", i2t_rank), ("text_to_image", t2i_rank)):
        for k in ks:
            out[f"{name}_R@{k}"] = float((rank <= k).float().mean())
        out[f"{name}_median_rank"] = float(rank.float().median())
    return out


def builtin_tasks(dataset, kind: str) -> list[ZeroShotTask]:
    """The built-in zero-shot tasks of ``shapes`` (colour, shape) and ``digits`` (digit)."""
    if kind == "digits":
        names = [str(d) for d in range(10)]
        labels = [int(x) for x in dataset.labels]
        return [ZeroShotTask("digit", names, ["a handwritten digit {}"], list(range(len(labels))), labels)]
    if kind != "shapes":
        return []
    from t2i.data import shapes as vocab

    colours, shape_names = list(vocab.COLOURS), list(vocab.SHAPES)
    single = [i for i, r in enumerate(dataset.records) if len(r["objects"]) == 1]
    objects = [dataset.records[i]["objects"][0] for i in single]
    colour_templates = [f"a {size} {{}} {shape} in the {pos}"
                        for size, shape, pos in itertools.product(vocab.SIZES, shape_names, vocab.POSITIONS)]
    shape_templates = [f"a {size} {colour} {{}} in the {pos}"
                       for size, colour, pos in itertools.product(vocab.SIZES, colours, vocab.POSITIONS)]
    return [
        ZeroShotTask("colour", colours, colour_templates, single, [colours.index(o["colour"]) for o in objects],
                     ensemble="marginal"),
        ZeroShotTask("shape", shape_names, shape_templates, single, [shape_names.index(o["shape"]) for o in objects],
                     ensemble="marginal"),
    ]


def user_task(dataset, classes: Sequence[str], templates: Sequence[str], ensemble: str = "mean") -> ZeroShotTask:
    """Zero-shot over the dataset's own labels: ``classes`` names each label, in label order."""
    labels = [int(x) for x in dataset.labels] if hasattr(dataset, "labels") else [dataset[i]["label"] for i in range(len(dataset))]
    if min(labels, default=-1) < 0:
        raise ValueError("zero-shot classification needs labelled data; this dataset has items without a label (-1)")
    if max(labels) >= len(classes):
        raise ValueError(f"the dataset has labels up to {max(labels)} but {len(classes)} class names were given; "
                         f"give one name per label in label order (dataset class names: {getattr(dataset, 'class_names', [])})")
    bad = [t for t in templates if t.count("{}") != 1]
    if bad or not templates:
        raise ValueError(f"each template needs exactly one '{{}}' for the class name, got {list(templates) or 'none'}")
    return ZeroShotTask("classes", list(classes), list(templates), list(range(len(labels))), labels, ensemble)


ENSEMBLES = ("mean", "marginal")


@torch.no_grad()
def zero_shot(model, image_features: torch.Tensor, task: ZeroShotTask, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Accuracy (both ensembles), per-class accuracy and confusion matrix (``task.ensemble``) of one task.

    - ``mean``: average the normalised text embeddings over templates, renormalise, nearest
      class (Radford et al. 2021; ``open_clip.build_zero_shot_classifier``);
    - ``marginal``: score every (class, template) caption with the model's own logits
      ``s * cos`` and sum their probabilities per class: ``p(c | x) = sum_t p(c, t | x)``, i.e.
      ``logsumexp_t``. Right when templates enumerate the *other* attributes (shapes: size,
      shape/colour, position), so a class is a union of captions rather than one direction.
    """
    import open_clip

    if task.ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {list(ENSEMBLES)}, got {task.ensemble!r}")
    feats = image_features[task.indices]  # (M, P)
    labels = torch.tensor(task.labels)
    k, t = len(task.classes), len(task.templates)
    weights = open_clip.build_zero_shot_classifier(model, get_tokenizer(model), task.classes, task.templates,
                                                   num_classes_per_batch=None, device=device)  # (P, K)
    preds = {"mean": (feats @ weights.float().cpu()).argmax(1)}  # (M,)
    captions = encode_texts(model, [tpl.format(c) for c in task.classes for tpl in task.templates], device=device)
    scale = float(model.logit_scale.exp())
    logits = (scale * feats @ captions.T).view(-1, k, t)  # (M, K, T)
    preds["marginal"] = logits.logsumexp(dim=2).argmax(1)  # (M,)
    pred = preds[task.ensemble]
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)  # rows: truth
    per_class = {c: float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None
                 for i, c in enumerate(task.classes)}
    return {"accuracy": float((pred == labels).float().mean()), "ensemble": task.ensemble,
            **{f"accuracy_{name}": float((p == labels).float().mean()) for name, p in preds.items()},
            "num_images": len(labels), "num_templates": t, "per_class": per_class,
            "confusion": confusion.tolist(), "classes": task.classes}


def evaluate(model, dataset, kind: str = "", classes: Sequence[str] | None = None,
             templates: Sequence[str] | None = None, device: str | torch.device = "cpu",
             batch_size: int = 256, progress: bool = True, ensemble: str = "mean",
             order: str = "auto") -> dict[str, Any]:
    """Retrieval + zero-shot + order sensitivity on one split. ``kind`` is "shapes"/"digits" for the
    built-in tasks; ``order`` the perturber of ``t2i.clip.negatives`` (auto, shapes, rules) or "off"."""
    model = model.to(device).eval()
    image_features, every = encode_dataset(model, dataset, batch_size, device, progress, every_caption=True)
    captions = [own[0] for own in every]  # the first of each: zero-shot and order sensitivity
    unique = sorted({c for own in every for c in own})
    result: dict[str, Any] = {"retrieval": retrieval_metrics(image_features, every,
                                                             encode_texts(model, unique, device=device), unique)}
    tasks = user_task(dataset, classes, templates or ["{}"], ensemble) if classes else None
    tasks = [tasks] if tasks is not None else builtin_tasks(dataset, kind)
    result["zero_shot"] = {t.name: zero_shot(model, image_features, t, device) for t in tasks if t.indices}
    if order != "off":
        result["order"] = order_sensitivity(model, image_features, captions, getattr(dataset, "records", None),
                                            perturber=order, device=device)
    return result


def default_splits(data: str) -> list[str]:
    """Held-out splits evaluated by default: shapes test + novel; else ``t2i.data.held_out_split``: test, or the
    one split of a single-split source (a flat folder or a CSV of held-out items, e.g. ``mydata/test``)."""
    from t2i.data import held_out_split

    return ["test", "novel"] if str(data) == "shapes" else [held_out_split(data)]


def evaluate_splits(model, data: str, splits: Sequence[str] | None = None, n: int | None = None, size: int | None = None,
                    classes: Sequence[str] | None = None, templates: Sequence[str] | None = None,
                    device: str | torch.device = "cpu", batch_size: int = 256, seed: int = 0,
                    ensemble: str = "mean", order: str = "auto", **reading: str) -> dict[str, Any]:
    """``evaluate`` on each split of a data source (``t2i.data.load_dataset``, with the ``reading`` options given:
    ``image_column``, ``caption_column``, ``resize``, ``background``; ``t2i.data.as_trained``); {split: results}."""
    from t2i.clip.model import image_size
    from t2i.data import describe_source, load_dataset, require_captions

    kind = describe_source(data)
    results = {}
    for split in splits or default_splits(data):
        dataset = load_dataset(data, split=split, size=size or image_size(model), n=n, seed=seed,
                               **{k: v for k, v in reading.items() if v})
        require_captions(dataset, "a CLIP's retrieval evaluation")
        results[split] = evaluate(model, dataset, kind=kind, classes=classes, templates=templates, device=device,
                                  batch_size=batch_size, ensemble=ensemble, order=order)
    return results


def write_report(results: dict[str, Any], out_dir: str | Path, title: str = "", extra: dict[str, Any] | None = None) -> Path:
    """``eval.json`` (all numbers) + ``zero_shot.png`` (confusion matrices) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "eval.json"
    path.write_text(json.dumps({**(extra or {}), "splits": results}, indent=2) + "\n")
    if any(r.get("zero_shot") for r in results.values()):
        plot_zero_shot(results, out_dir / "zero_shot.png", title=title)
    return path


def summary(results: dict[str, Any]) -> str:
    """One line per split: recalls, median ranks and zero-shot accuracies."""
    lines = []
    for split, r in results.items():
        ret = r["retrieval"]
        parts = [f"{split}: i2t R@1/5/10 " + "/".join(f"{100 * ret[f'image_to_text_R@{k}']:.1f}" for k in (1, 5, 10)),
                 "t2i R@1/5/10 " + "/".join(f"{100 * ret[f'text_to_image_R@{k}']:.1f}" for k in (1, 5, 10)),
                 f"median rank {ret['image_to_text_median_rank']:.0f}/{ret['text_to_image_median_rank']:.0f}"]
        parts += [f"zero-shot {name} {100 * z['accuracy']:.1f}% ({z['ensemble']}; "
                  f"{'marginal' if z['ensemble'] == 'mean' else 'mean'} "
                  f"{100 * z['accuracy_marginal' if z['ensemble'] == 'mean' else 'accuracy_mean']:.1f}%)"
                  for name, z in r["zero_shot"].items()]
        line = ", ".join(parts)
        if r.get("order", {}).get("kinds"):
            line += f"\n  {split} order: {order_summary(r['order'])}"
        lines.append(line)
    return "\n".join(lines)


def plot_zero_shot(results: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Confusion matrices of the zero-shot tasks as one PNG (rows: true class, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [(split, name, r) for split, res in results.items() for name, r in res.get("zero_shot", {}).items()]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(4 * max(1, len(tasks)), 4), squeeze=False)
    for ax, (split, name, r) in zip(axes[0], tasks):
        conf = torch.tensor(r["confusion"], dtype=torch.float)
        ax.imshow((conf / conf.sum(1, keepdim=True).clamp(min=1)).numpy(), vmin=0, vmax=1, cmap="Blues")
        ticks = range(len(r["classes"]))
        ax.set_xticks(ticks, r["classes"], rotation=90, fontsize=7)
        ax.set_yticks(ticks, r["classes"], fontsize=7)
        ax.set_title(f"{split} {name}: {100 * r['accuracy']:.1f}%", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def demo() -> None:
    from t2i.clip.testing import tiny_clip
    from t2i.data import load_dataset

    ds = load_dataset("shapes", split="test", n=64)
    res = evaluate(tiny_clip(), ds, kind="shapes", progress=False)
    print({k: round(v, 3) for k, v in res["retrieval"].items()}, {k: v["accuracy"] for k, v in res["zero_shot"].items()})
