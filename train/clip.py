"""Train or fine-tune a CLIP (open_clip) on captioned images: contrastive InfoNCE or SigLIP.

Loss: open_clip's ``ClipLoss``, the symmetric InfoNCE of Radford et al. (2021) with a
learned temperature, ``(CE(s * I T^T, diag) + CE(s * T I^T, diag)) / 2`` with
``s = exp(logit_scale)`` clamped to 100; or ``--loss siglip``: ``SigLipLoss``, the pairwise
sigmoid loss of Zhai et al. (2023) with a learned scale and bias. Under several processes
each process embeds its share of the batch and the features are gathered with their
gradients (open_clip's ``gather_with_grad`` + ``local_loss``), so the contrastive batch is
the global ``--batch-size``. With ``--grad-accum k`` each micro-batch is its own contrastive
batch (batch_size / k). Digits (1 channel) are repeated to 3 channels.

Fine-tuning a pretrained model on a small caption set: ``--pretrained TAG|FILE|DIR`` plus
``--lock-image`` (LiT, Zhai et al. 2022) and/or ``--lock-text`` to freeze a tower.

Word order (NegCLIP, Yuksekgonul et al. 2023): ``--hard-negatives shapes|rules|auto`` adds
``--negatives-per-caption K`` perturbed captions per pair (``t2i.clip.negatives``: subject and
object swapped, relation flipped, colours/shapes exchanged from the shapes labels; or
rule-based swaps of noun phrases, modifiers and nouns on any caption) as extra negative
columns of the image->text logits (``t2i.clip.loss.NegClipLoss``); gathered across processes
like the captions. Off by default (plain CLIP). The progress bar then shows ``order_acc``, the
share of negatives the image already scores below its caption.

The final model (EMA weights with ``--ema-decay``) is saved in open_clip's layout under
``OUT/model`` and evaluated on the held-out split(s) (``OUT/eval.json``, ``OUT/zero_shot.png``).

    t2i train clip --preset t2i-tiny --steps 20 --batch-size 64 --eval-n 200 --out /tmp/clip-demo
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from t2i.builtin import is_builtin, resolve
from t2i.clip.evaluate import default_splits, evaluate_splits, summary, write_report
from t2i.clip.loss import NegClipLoss, order_accuracy
from t2i.clip.negatives import PERTURBERS, check_kinds, partial_scene, sample_negatives, swapped_scene
from t2i.clip.model import (
    CONFIG_NAME, clip_model_folder, create_clip, get_tokenizer, image_size, is_clip_folder, load_clip,
    preprocess_images, register_presets, save_clip,
)
from t2i.clip.presets import train_presets
from t2i.config import parse_config
from t2i.data import evaluation_options, item_count, load_dataset, require_captions, shapes_options, training_options
from t2i.model_card import write_model_card
from t2i.runtime import Run, RunConfig

LOSSES = ("clip", "siglip")
SAVE_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class ClipConfig(RunConfig):
    model: str = "t2i-tiny"  # open_clip architecture (ViT-B-32, ...), our preset (t2i-tiny, t2i-small) or a saved CLIP folder
    pretrained: str = ""  # initial weights: an open_clip tag, a checkpoint file or a folder; "" = random init
    aliases: ClassVar[dict[str, str]] = {"init": "pretrained"}  # --init, as the other trainers name fine-tuning's start
    loss: str = "clip"  # clip (symmetric InfoNCE, learned temperature) | siglip (pairwise sigmoid, learned scale + bias)
    lr: float = 1e-3  # peak AdamW learning rate (after warm-up; cosine decay to 0 by the last step)
    warmup: int = 100  # linear learning-rate warm-up steps
    weight_decay: float = 0.1  # AdamW weight decay on matrices (not on gains, biases, embeddings' scale, logit scale)
    lock_image: bool = False  # freeze the image tower (LiT), e.g. to fine-tune a pretrained model on few captions
    lock_image_unlocked_groups: int = 0  # with --lock-image: leave this many last layer groups trainable
    lock_text: bool = False  # freeze the text tower
    lock_text_unlocked_layers: int = 0  # with --lock-text: leave this many last transformer blocks trainable
    n: int = 0  # training items to use (0 = the source's default, e.g. 20000 shapes scenes)
    eval_n: int = 2000  # items per held-out split for the final evaluation (shapes: test and novel); 0 = skip it
    max_minutes: float = 0.0  # stop after the first step that ends past this many minutes of wall time (0 = no limit); the LR schedule still follows --steps
    save_dtype: str = "float32"  # dtype of the saved weights: float32 (exact) | float16 | bfloat16 (half the file size)
    hard_negatives: str = "off"  # NegCLIP negative captions: off | shapes (from scene labels) | rules (any caption) | auto (shapes labels when present)
    negatives_per_caption: int = 2  # with --hard-negatives: perturbed captions per pair, drawn from the kinds that apply
    negative_kinds: str = ""  # with --hard-negatives: comma-separated kinds to draw from ("" = all of the perturber's)
    p_two: float = 0.5  # shapes only: probability that a training scene holds two objects (the spec's default 0.5)
    partial_captions: float = 0.0  # shapes only: probability that a one-object scene is captioned with some attributes left out ("a red circle")
    hard_negative_images: float = 0.0  # shapes only: share of each batch's last slots replaced by the swapped-places twins of its two-object scenes

    def validate(self) -> None:
        super().validate()
        if self.hard_negatives not in PERTURBERS:
            raise ValueError(f"hard_negatives must be one of {list(PERTURBERS)}, got {self.hard_negatives!r}")
        if self.hard_negatives != "off":
            if self.loss != "clip":
                raise ValueError("--hard-negatives needs --loss clip (NegCLIP extends the InfoNCE loss)")
            if not 0.0 <= self.partial_captions <= 1.0:
                raise ValueError(f"partial_captions must be a probability in [0, 1], got {self.partial_captions!r}")
            if not 0.0 <= self.hard_negative_images <= 0.5:
                raise ValueError(f"hard_negative_images must be in [0, 0.5], got {self.hard_negative_images!r}")
            if self.negatives_per_caption < 1:
                raise ValueError(f"negatives_per_caption must be >= 1, got {self.negatives_per_caption!r}")
            check_kinds(self.kinds(), self.hard_negatives)

    def kinds(self) -> list[str]:
        return [k.strip() for k in self.negative_kinds.split(",") if k.strip()]


def is_saved(model: str) -> bool:
    """A built-in short name or a folder (rather than an architecture name)."""
    return is_builtin(model) or Path(model).expanduser().is_dir()


def saved_architecture(name: str) -> dict | None:
    """The model config of a saved CLIP (a built-in name, a folder or a run folder), or None when it is not one."""
    path = resolve(name) if is_builtin(name) else Path(name).expanduser()
    if not (path.is_dir() and is_clip_folder(path)):
        return None
    return json.loads((clip_model_folder(path) / CONFIG_NAME).read_text())["model_cfg"]


def model_source(cfg: ClipConfig) -> tuple[str, str | None]:
    """(--model, --pretrained) to build from. A saved CLIP given to --pretrained / --init with --model left at its
    default is fine-tuned as saved, in its own architecture, where open_clip would refuse it as a mismatch."""
    import open_clip

    register_presets()
    if cfg.pretrained and cfg.model == ClipConfig.model:
        saved = saved_architecture(cfg.pretrained)
        if saved is not None and saved != open_clip.get_model_config(cfg.model):
            return cfg.pretrained, None
    return cfg.model, cfg.pretrained or None


def build_model(cfg: ClipConfig) -> torch.nn.Module:
    import open_clip

    register_presets()
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {cfg.loss!r}")
    if cfg.save_dtype not in SAVE_DTYPES:
        raise ValueError(f"save_dtype must be one of {list(SAVE_DTYPES)}, got {cfg.save_dtype!r}")
    # SigLIP starts from t = 10, b = -10 (Zhai et al. 2023, sec. 3.2); saved folders and SigLIP
    # architectures (with their own init_logit_bias) keep theirs
    source, pretrained = model_source(cfg)
    arch_cfg = open_clip.get_model_config(source) if not is_saved(source) else None
    overrides = {}
    if cfg.loss == "siglip" and arch_cfg is not None and "init_logit_bias" not in arch_cfg:
        overrides = {"init_logit_scale": math.log(10), "init_logit_bias": -10.0}
    model = create_clip(source, pretrained=pretrained, **overrides)
    if cfg.loss == "siglip" and model.logit_bias is None:
        raise ValueError(f"--loss siglip needs a learned logit bias; {source} was saved without one "
                         "(train it from an architecture name, or keep --loss clip)")
    if cfg.lock_image:
        model.lock_image_tower(unlocked_groups=cfg.lock_image_unlocked_groups, freeze_bn_stats=True)
    if cfg.lock_text:
        model.lock_text_tower(unlocked_layers=cfg.lock_text_unlocked_layers)
    return model


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only, as open_clip_train does (1-D gains/biases and logit scale/bias excluded)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def make_loss(cfg: ClipConfig, run: Run) -> torch.nn.Module:
    from open_clip.loss import ClipLoss, SigLipLoss

    if cfg.hard_negatives != "off":
        return NegClipLoss(rank=run.process_index, world_size=run.num_processes)
    if cfg.loss == "siglip":
        return SigLipLoss(rank=run.process_index, world_size=run.num_processes)
    return ClipLoss(local_loss=True, gather_with_grad=True, cache_labels=True,
                    rank=run.process_index, world_size=run.num_processes)


def partial_captions(captions: list[str], scenes: list, probability: float, keys: list[str]):
    """Caption each one-object scene, with ``probability``, by a partial caption of it
    (``t2i.clip.negatives.partial_scene``); drawn per item key, like the negatives."""
    captions, scenes = list(captions), list(scenes)
    for j, key in enumerate(keys):
        rng = random.Random(key)
        if scenes[j] is not None and len(scenes[j]["objects"]) == 1 and rng.random() < probability:
            scenes[j] = partial_scene(scenes[j], rng)
            captions[j] = scenes[j]["caption"]
    return captions, scenes


def add_swapped_twins(pixels: torch.Tensor, captions: list[str], scenes: list, share: float):
    """Replace the last ``share`` of the batch by the swapped-places twins of its two-object scenes.

    Each twin (``t2i.clip.negatives.swapped_scene``, drawn at the batch's size) comes with its own
    true caption, so the pair is a hard negative both ways: the caption "A above B" must pick
    its image over the twin's, and each image its caption over the twin's.
    """
    from t2i.data.shapes import render

    b = len(captions)
    slots = int(share * b)
    sources = [j for j in range(b - slots) if scenes[j] is not None and len(scenes[j]["objects"]) == 2][:slots]
    if not sources:
        return pixels, captions, scenes
    pixels, captions, scenes = pixels.clone(), list(captions), list(scenes)
    for slot, j in zip(range(b - slots, b), sources):
        twin = swapped_scene(scenes[j])
        drawn = torch.from_numpy(np.array(render(twin))).permute(2, 0, 1)  # (3, S, S) uint8
        pixels[slot] = drawn.to(pixels.device, pixels.dtype) / 255
        captions[slot], scenes[slot] = twin["caption"], twin
    return pixels, captions, scenes


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(ClipConfig, argv, prog="t2i train clip", presets=train_presets(),
                       description=__doc__.split("\n")[0])
    run = Run(cfg, name="clip")
    size = cfg.size  # the data's size; preprocess_images resizes if the model wants another
    # the data first: a wrong --data is reported before a from-scratch model logs its random initialisation
    dataset = load_dataset(cfg.data, split="train", size=size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg),
                           **shapes_options(cfg.data, cfg.p_two))
    require_captions(dataset, "clip")
    model = build_model(cfg)
    if size != image_size(model):
        run.print(f"clip: note: data at {size} px is resized to the model's {image_size(model)} px input")
    tokenizer = get_tokenizer(model)
    records = getattr(dataset, "records", None)  # shapes: scene labels, for the structured perturber
    kinds = check_kinds(cfg.kinds(), cfg.hard_negatives) if cfg.hard_negatives != "off" else []
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    source, _ = model_source(cfg)
    run.print(f"clip: {source} ({trainable / 1e6:.2f} M trainable parameters), "
              f"{cfg.loss if not kinds else f'NegCLIP ({cfg.negatives_per_caption} of {kinds})'} loss, "
              f"{item_count(dataset)} training items at {size} px")
    if cfg.pretrained:
        start = f"the weights of {cfg.pretrained}" + (" in its own architecture" if source == cfg.pretrained else "")
    else:
        start = f"the saved weights of {cfg.model}" if is_saved(cfg.model) else "random weights"
    run.print(f"clip: starting from {start}")

    if cfg.warmup >= cfg.steps:
        run.print(f"clip: note: --warmup {cfg.warmup} is not shorter than --steps {cfg.steps}, so the learning rate "
                  f"rises all run and never decays; for a short fine-tune give e.g. --warmup {max(1, cfg.steps // 10)}")
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine to 0 (open_clip_train's cosine_lr)
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    model, opt, sched = run.prepare(model, opt, sched)
    ema = run.ema(model)
    loss_fn = make_loss(cfg, run)
    loader = run.dataloader(dataset)
    raw = run.unwrap(model)
    start, stopped_at, checked = time.perf_counter(), cfg.steps, -1
    for step, batch in run.loop(loader):
        if cfg.max_minutes > 0 and step != checked and step > 0:  # at a step boundary: step `step - 1` is done
            checked = step  # (EMA, logs); every process decides together, or DDP would hang
            late = torch.tensor([float(time.perf_counter() - start > 60 * cfg.max_minutes)], device=run.device)
            if float(run.reduce(late, "sum")) > 0:
                run.print(f"clip: --max-minutes {cfg.max_minutes} reached after {step} of {cfg.steps} steps")
                stopped_at = step
                break
        with run.accumulate(model):
            pixels, captions = batch["image"], list(batch["text"])
            negatives = []
            if kinds:  # drawn per (seed, step, item): the same after a resume and on any number of processes
                index = [int(i) for i in batch["index"]]
                scenes = [records[i] for i in index] if records is not None else [None] * len(captions)
                if cfg.partial_captions > 0 and records is not None:
                    captions, scenes = partial_captions(captions, scenes, cfg.partial_captions,
                                                        keys=[f"{cfg.seed}|{step}|{i}|partial" for i in index])
                if cfg.hard_negative_images > 0 and records is not None:
                    pixels, captions, scenes = add_swapped_twins(pixels, captions, scenes, cfg.hard_negative_images)
                negatives, valid = sample_negatives(captions, scenes, cfg.hard_negatives, cfg.negatives_per_caption,
                                                    kinds, keys=[f"{cfg.seed}|{step}|{i}" for i in index])
            images = preprocess_images(raw, pixels)  # (b, 3, S, S) normalised
            texts = tokenizer(captions + negatives).to(run.device)  # (b + b K, T)
            with run.autocast():
                # normalised (b, P) image and (b + b K, P) text features, exp(logit_scale) [, logit_bias]
                outputs = model(images, texts)
                if kinds:
                    image_f, text_f, scale = outputs[:3]
                    b, valid = len(captions), torch.tensor(valid, device=run.device)
                    loss = loss_fn(image_f, text_f[:b], scale, text_f[b:], valid)
                    order_acc = order_accuracy(image_f, text_f[:b], text_f[b:], valid)
                else:
                    loss = loss_fn(*outputs)
            run.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        if run.sync:
            with torch.no_grad():  # open_clip_train: keep the temperature 1/s above 1/100
                raw.logit_scale.clamp_(0, math.log(100))
        run.log(loss=loss, logit_scale=outputs[2], lr=sched.get_last_lr()[-1], **({"order_acc": order_acc} if kinds else {}))

    train_minutes = (time.perf_counter() - start) / 60
    run.print(f"clip: trained {stopped_at} steps in {train_minutes:.1f} minutes")
    final = ema.model if ema is not None else raw
    run.finish()
    if run.is_main:
        folder = save_clip(final, run.out / "model", dtype=SAVE_DTYPES[cfg.save_dtype])
        run.print(f"clip: saved {folder} (open_clip layout; t2i.text.TextEncoder.from_pretrained loads it)")
        if cfg.eval_n > 0:
            final = load_clip(folder, device=run.device)  # evaluate what was saved
            # the built-in data's held-out splits; a user source's test split when it has one (a single-split
            # source is the training data itself: nothing held out to evaluate)
            splits = default_splits(cfg.data)
            if splits == ["train"]:
                run.print(f"clip: no held-out split to evaluate in {cfg.data}; give one with `t2i eval clip --model "
                          f"{folder} --data HELD_OUT`")
            else:
                results = evaluate_splits(final.eval(), cfg.data, splits,
                                          n=cfg.eval_n if cfg.data == "shapes" else None, size=size,
                                          device=run.device, **evaluation_options(cfg))
                report = write_report(results, run.out, title=f"{cfg.model} on {cfg.data}",
                                      extra={"model": str(folder), "steps": stopped_at,
                                             "train_minutes": round(train_minutes, 2)})
                run.print(summary(results) + f"\nclip: wrote {report}")
        write_model_card(run.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
