"""Train the project's evaluators (shapes evaluator, digits classifier) and write their model cards.

Deterministic on CPU (fixed seeds, data order and thread count; deterministic algorithms),
a few minutes each on 2 cores. Each evaluator is written as ``config.json`` +
``model.safetensors`` + ``README.md`` (recipe, data, steps, time, hardware and the
accuracies measured right after training) under ``--out`` (default: the built-in folder
``t2i/builtin/``, so a run regenerates the shipped weights).

    t2i train evaluators --out /tmp/evaluators --which digits --digits-steps 100 --eval-n 100
    t2i train evaluators --measure-only true --which shapes      # re-measure the shipped ones
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from t2i.builtin import ROOT
from t2i.config import config_to_dict, parse_config
from t2i.data import load_dataset
from t2i.data.shapes import COLOURS, SHAPES, render
from t2i.evaluators.audit import audit_digits, audit_shapes, degrade
from t2i.evaluators.digits import FAMILY as DIGITS_FAMILY
from t2i.evaluators.digits import DigitsClassifier, DigitsNet
from t2i.evaluators.segment import find_blobs, silhouette_crop
from t2i.evaluators.shapes import FAMILY as SHAPES_FAMILY
from t2i.evaluators.shapes import ShapesEvaluator, scene_targets


@dataclass
class EvaluatorsConfig:
    out: str = ""  # folder receiving shapes-evaluator/ and digits-classifier/ ("" = the built-in folder)
    which: Literal["shapes", "digits", "all"] = "all"  # which evaluator(s) to train
    seed: int = 0  # seed of data generation, initialisation and batch order
    threads: int = 1  # torch CPU threads (part of the determinism; 1 is also fastest on busy shared cores)
    measure_only: bool = False  # skip training: load the evaluators in --out and print their measurements only
    silhouette_objects: int = 16000  # rendered single objects (any extent, 32/64 px, augmented) for SilhouetteNet
    silhouette_steps: int = 800  # optimiser steps of SilhouetteNet
    silhouette_width: int = 16  # SilhouetteNet's first conv width
    scene_images: int = 10000  # shapes train scenes (32 px) for SceneNet
    scene_steps: int = 800  # optimiser steps of SceneNet
    scene_width: int = 16  # SceneNet's first conv width
    feature_dim: int = 128  # width of the feature layer (domain FID features) of SceneNet and DigitsNet
    digits_steps: int = 500  # optimiser steps of the digits classifier
    digits_width: int = 16  # DigitsNet's first conv width
    batch_size: int = 128  # images per optimiser step
    lr: float = 3e-3  # Adam learning rate (cosine decay to 0)
    eval_n: int = 1000  # audit scenes per image size (32, 64 px) and split (test, novel, degraded, stressed)


# --- shapes: silhouette data ------------------------------------------------------------
def silhouette_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops ``(n', 1, 24, 24)`` and shape labels ``(n',)`` of single rendered objects of any extent."""
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for i in tqdm(range(n), desc="silhouettes", unit="obj"):
        S = int(rng.choice([32, 64]))
        shape = SHAPES[i % len(SHAPES)]
        e = round(rng.uniform(0.2, 0.62) * S * 4) / 4  # extent on the 1/4-pixel grid, small to past large
        cx, cy = (round(rng.uniform(e / 2, S - e / 2) * 4) / 4 for _ in range(2))
        obj = {"colour": str(rng.choice(list(COLOURS))), "shape": shape, "centre": [cx, cy],
               "bbox": [cx - e / 2, cy - e / 2, cx + e / 2, cy + e / 2]}
        img = degrade(np.asarray(render({"objects": [obj], "image_size": S})), rng)
        blobs = find_blobs(img)
        if blobs:  # the largest component is the object (noise makes only specks)
            crops.append(silhouette_crop(blobs[0]))
            labels.append(SHAPES.index(shape))
    return torch.stack(crops), torch.tensor(labels)


def jitter_crops(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine per crop (rotation +-8 deg, scale 0.88-1.12 per axis, shift +-6%): distorted shapes."""
    B = len(x)
    angle = (torch.rand(B, generator=gen) * 2 - 1) * np.deg2rad(8)
    sx, sy = (0.88 + 0.24 * torch.rand(B, generator=gen) for _ in range(2))
    tx, ty = ((torch.rand(B, generator=gen) * 2 - 1) * 0.12 for _ in range(2))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos / sx, -sin / sx, tx], 1), torch.stack([sin / sy, cos / sy, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, 24, 24, 2)
    return F.grid_sample(x, grid, align_corners=False)


def fit(net: torch.nn.Module, steps: int, cfg: EvaluatorsConfig, batch_fn, loss_fn, desc: str) -> float:
    """Adam with cosine decay; ``batch_fn(step) -> (x, y)``; returns the last loss."""
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * s / steps)))
    net.train()
    bar = tqdm(range(steps), desc=desc, unit="step")
    loss = torch.tensor(0.0)
    for step in bar:
        x, y = batch_fn(step)
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    net.eval()
    return loss.item()


def train_shapes(cfg: EvaluatorsConfig) -> ShapesEvaluator:
    config = {"family": SHAPES_FAMILY, "silhouette_width": cfg.silhouette_width, "scene_width": cfg.scene_width,
              "feature_dim": cfg.feature_dim}
    torch.manual_seed(cfg.seed)
    evaluator = ShapesEvaluator.build(config)
    gen = torch.Generator().manual_seed(cfg.seed)

    crops, labels = silhouette_data(cfg.silhouette_objects, cfg.seed)

    def silhouette_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(crops), (cfg.batch_size,), generator=gen)
        return jitter_crops(crops[idx], gen), labels[idx]

    fit(evaluator.silhouette, cfg.silhouette_steps, cfg, silhouette_batch, F.cross_entropy, "SilhouetteNet")

    data = load_dataset("shapes", split="train", size=32, n=cfg.scene_images, seed=cfg.seed)
    targets = torch.stack([scene_targets(r) for r in data.records])  # (N, 39)

    def scene_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(targets), (cfg.batch_size,), generator=gen)
        return data.images[idx].float() / 255, targets[idx]  # (B, 3, 32, 32), (B, 39)

    fit(evaluator.scene, cfg.scene_steps, cfg, scene_batch, F.binary_cross_entropy_with_logits, "SceneNet")
    evaluator.scene.set_feature_stats(data.images.float() / 255)
    return evaluator


def train_digits(cfg: EvaluatorsConfig) -> DigitsClassifier:
    config = {"family": DIGITS_FAMILY, "width": cfg.digits_width, "feature_dim": cfg.feature_dim}
    torch.manual_seed(cfg.seed)
    clf = DigitsClassifier(DigitsNet(cfg.digits_width, cfg.feature_dim), config)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = load_dataset("digits", split="train", size=32)
    images, labels = data.images.float() / 255, data.labels  # (N, 1, 32, 32), (N,)

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(labels), (cfg.batch_size,), generator=gen)
        B = len(idx)  # random rotation +-12 deg, scale 0.9-1.1, shift +-2 px
        angle = (torch.rand(B, generator=gen) * 2 - 1) * np.deg2rad(12)
        scale = 0.9 + 0.2 * torch.rand(B, generator=gen)
        shift = (torch.rand(B, 2, generator=gen) * 2 - 1) * (2 / 16)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, [B, 1, 32, 32], align_corners=False)
        return F.grid_sample(images[idx], grid, align_corners=False), labels[idx]

    fit(clf.net, cfg.digits_steps, cfg, batch, F.cross_entropy, "DigitsNet")
    clf.net.set_feature_stats(images)
    return clf


CARD_INTRO = {
    SHAPES_FAMILY: (
        "Attribute evaluator of 32/64 px `shapes` images: finds each object (palette colour per pixel, "
        "connected components, bounding box) and measures colour, size, position and the two-object relation "
        "by the rules of `shared/specs/shapes.md`; the shape of each object comes from `SilhouetteNet`, a small "
        "CNN on the object's 24x24 coverage map. `SceneNet` (whole 32 px image -> 39 attribute logits) provides "
        "the features of domain FID/KID, precision/recall and diversity: the global average of each conv layer "
        "and the 128-d hidden layer, standardised on the training scenes.\n\n"
        "```python\nfrom t2i.evaluators.shapes import ShapesEvaluator, prompt_accuracy\n"
        "ev = ShapesEvaluator.from_pretrained(\"shapes-evaluator\")\n"
        "ev.predict(images); ev.judge(images, prompts); prompt_accuracy(images, prompts)\n```",
        "SilhouetteNet: `silhouette_objects` single objects rendered by `t2i.data.shapes.render` with a random "
        "extent (0.20-0.62 S), colour and centre at 32 and 64 px, degraded by blur / brightness / tint / noise "
        "(each with probability 0.5), segmented like at test time; each batch adds a random affine jitter "
        "(+-8 deg, scale 0.88-1.12 per axis). SceneNet: `scene_images` scenes of the shapes `train` split at "
        "32 px, multi-label BCE on 28 pair-presence bits, two-objects, large, 5 positions, 4 relations, "
        "no augmentation (the features should notice imperfections). Adam, cosine decay, batch `batch_size`."),
    DIGITS_FAMILY: (
        "Classifier of 32 px 1-channel digits (`t2i.data` `digits`: scikit-learn's 8x8 digits upsampled), "
        "used to score class-conditional generators: accuracy against the requested digit, class coverage, "
        "confidence and class-histogram entropy; its conv-layer averages and 128-d hidden layer (standardised "
        "on the training digits) give domain FID features on digits.\n\n"
        "```python\nfrom t2i.evaluators.digits import DigitsClassifier, score_samples\n"
        "clf = DigitsClassifier.from_pretrained(\"digits-classifier\")\n"
        "clf.predict_proba(images); score_samples(images, requested_labels=labels)\n```",
        "The digits `train` split (1442 images), each batch augmented by a random affine (+-12 deg, scale "
        "0.9-1.1, shift +-2 px); 3 conv layers + dropout 0.3 + 128-d hidden layer; cross-entropy, Adam, cosine "
        "decay, batch `batch_size`."),
}


def write_card(folder: Path, name: str, cfg: dict[str, Any], measured: dict[str, Any], seconds: float,
               cpu_seconds: float, machine: str, argv: list[str] | None) -> None:
    """The model card: what it is, how it was made (recipe, command, time, hardware), what it measures."""
    intro, recipe = CARD_INTRO[name]
    command = "t2i train evaluators " + " ".join(argv if argv is not None else [])
    lines = [f"# {name}", "", intro, "", "## Recipe", "", recipe, "", f"Reproduce: `{command.strip()}` "
             "(deterministic: same seed, thread count and library versions give the same weights).", "",
             f"Training time (data + training, before measuring): {seconds:.0f} s wall-clock, {cpu_seconds:.0f} s of "
             f"CPU time, on {machine}.", "",
             "Config:", "", "```json",
             json.dumps(cfg, indent=2), "```", "", "## Measured right after training", ""]
    if name == SHAPES_FAMILY:
        lines += ["Accuracy: the evaluator judges real renders against their own captions (per attribute; "
                  "size and position on one-object scenes, relation on two-object scenes). Rejection: the same "
                  "images against captions with exactly one attribute changed (every image once per attribute "
                  "its caption has); a rejection is `all_correct == False`.", "",
                  "| split, size | colour | shape | size | position | relation | all correct | rejection (all) | "
                  "rejection per attribute |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for key, m in measured.items():
            if key.startswith("scene_net"):
                continue
            a, r = m["accuracy"], m["rejection"]
            per = ", ".join(f"{k} {100 * v:.2f}%" for k, v in r.items() if k != "all")
            lines.append(f"| {key} ({m['n_images']} images) | " + " | ".join(
                f"{100 * a[k]:.2f}%" for k in ("colour", "shape", "size", "position", "relation", "all_correct"))
                + f" | {100 * r['all']:.2f}% | {per} |")
        lines += ["", "`+degraded`: each image blurred / dimmed and tinted / noised, each with probability 0.5 "
                  "(the training degradations); `+stress`: rotation up to 6 deg, blur, per-channel gain "
                  "0.8-1.15, noise sigma 10 and JPEG quality 50 on every image (not seen in training as such).",
                  "", "SceneNet (the domain-FID feature network) on the clean test split: " + ", ".join(
                      f"{k[10:]}: {100 * v['per_target_accuracy']:.2f}% of its 39 targets right, "
                      f"{100 * v['exact_match']:.2f}% of images with all 39 right"
                      for k, v in measured.items() if k.startswith("scene_net")) + "."]
    else:
        lines += [f"Test accuracy: **{100 * measured['test_accuracy']:.2f}%** on the {measured['n_test']} images "
                  f"of the digits `test` split (train accuracy {100 * measured['train_accuracy']:.2f}% on "
                  f"{measured['n_train']}).", ""]
    lines += ["", "Raw numbers:", "", "```json", json.dumps(measured, indent=2), "```", ""]
    (folder / "README.md").write_text("\n".join(lines))


def hardware() -> str:
    """CPU model, cores and library versions, for the model card."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return (f"{model} ({os.cpu_count()} cores visible, shared with other jobs; torch threads: "
            f"{torch.get_num_threads()}); Python {platform.python_version()}, torch {torch.__version__}")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(EvaluatorsConfig, argv, prog="t2i train evaluators",
                       description="Train the shapes evaluator and the digits classifier deterministically.")
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    out = Path(cfg.out) if cfg.out else ROOT
    report: dict[str, Any] = {}
    jobs = [("shapes", SHAPES_FAMILY, train_shapes, ShapesEvaluator, audit_shapes),
            ("digits", DIGITS_FAMILY, train_digits, DigitsClassifier, audit_digits)]
    for which, name, train_fn, cls, audit_fn in jobs:
        if cfg.which not in (which, "all"):
            continue
        folder = out / name
        start, start_cpu = time.perf_counter(), time.process_time()
        if cfg.measure_only:
            model, seconds = cls.from_pretrained(folder), None
        else:
            model = train_fn(cfg)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
            model.save(folder)
        measured = audit_fn(model, cfg.eval_n, cfg.seed)
        print(json.dumps({name: measured}, indent=2))
        if seconds is not None:
            write_card(folder, name, config_to_dict(cfg), measured, seconds, cpu_seconds, hardware(), argv)
        report[name] = measured
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
