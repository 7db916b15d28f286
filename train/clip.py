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

The final model (EMA weights with ``--ema-decay``) is saved in open_clip's layout under
``OUT/model`` and evaluated on the held-out split(s) (``OUT/eval.json``, ``OUT/zero_shot.png``).

    t2i train clip --preset t2i-tiny --steps 20 --batch-size 64 --eval-n 200 --out /tmp/clip-demo
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from t2i.builtin import is_builtin
from t2i.clip.evaluate import default_splits, evaluate_splits, summary, write_report
from t2i.clip.model import (
    create_clip, get_tokenizer, image_size, load_clip, preprocess_images, register_presets, save_clip,
)
from t2i.clip.presets import train_presets
from t2i.config import parse_config
from t2i.data import describe_source, load_dataset
from t2i.runtime import Run, RunConfig

LOSSES = ("clip", "siglip")
SAVE_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class ClipConfig(RunConfig):
    model: str = "t2i-tiny"  # open_clip architecture (ViT-B-32, ...), our preset (t2i-tiny, t2i-small) or a saved CLIP folder
    pretrained: str = ""  # initial weights: an open_clip tag, a checkpoint file or a folder; "" = random init
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


def is_saved(model: str) -> bool:
    """A built-in short name or a folder (rather than an architecture name)."""
    return is_builtin(model) or Path(model).expanduser().is_dir()


def build_model(cfg: ClipConfig) -> torch.nn.Module:
    import open_clip

    register_presets()
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {cfg.loss!r}")
    if cfg.save_dtype not in SAVE_DTYPES:
        raise ValueError(f"save_dtype must be one of {list(SAVE_DTYPES)}, got {cfg.save_dtype!r}")
    # SigLIP starts from t = 10, b = -10 (Zhai et al. 2023, sec. 3.2); saved folders and SigLIP
    # architectures (with their own init_logit_bias) keep theirs
    arch_cfg = open_clip.get_model_config(cfg.model) if not is_saved(cfg.model) else None
    overrides = {}
    if cfg.loss == "siglip" and arch_cfg is not None and "init_logit_bias" not in arch_cfg:
        overrides = {"init_logit_scale": math.log(10), "init_logit_bias": -10.0}
    model = create_clip(cfg.model, pretrained=cfg.pretrained or None, **overrides)
    if cfg.loss == "siglip" and model.logit_bias is None:
        raise ValueError(f"--loss siglip needs a learned logit bias; {cfg.model} was saved without one "
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

    if cfg.loss == "siglip":
        return SigLipLoss(rank=run.process_index, world_size=run.num_processes)
    return ClipLoss(local_loss=True, gather_with_grad=True, cache_labels=True,
                    rank=run.process_index, world_size=run.num_processes)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(ClipConfig, argv, prog="t2i train clip", presets=train_presets(),
                       description=__doc__.split("\n")[0])
    run = Run(cfg, name="clip")
    model = build_model(cfg)
    size = cfg.size  # the data's size; preprocess_images resizes if the model wants another
    if size != image_size(model):
        run.print(f"clip: note: data at {size} px is resized to the model's {image_size(model)} px input")
    tokenizer = get_tokenizer(model)
    dataset = load_dataset(cfg.data, split="train", size=size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    run.print(f"clip: {cfg.model} ({trainable / 1e6:.2f} M trainable parameters), {cfg.loss} loss, "
              f"{len(dataset) if hasattr(dataset, '__len__') else 'streamed'} training items at {size} px")

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
            images = preprocess_images(raw, batch["image"])  # (B, 3, S, S) normalised
            texts = tokenizer(list(batch["text"])).to(run.device)  # (B, T)
            with run.autocast():
                # normalised (B, P) features, exp(logit_scale) [, logit_bias]
                outputs = model(images, texts)
                loss = loss_fn(*outputs)
            run.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        if run.sync:
            with torch.no_grad():  # open_clip_train: keep the temperature 1/s above 1/100
                raw.logit_scale.clamp_(0, math.log(100))
        run.log(loss=loss, logit_scale=outputs[2], lr=sched.get_last_lr()[-1])

    train_minutes = (time.perf_counter() - start) / 60
    run.print(f"clip: trained {stopped_at} steps in {train_minutes:.1f} minutes")
    final = ema.model if ema is not None else raw
    run.finish()
    if run.is_main:
        folder = save_clip(final, run.out / "model", dtype=SAVE_DTYPES[cfg.save_dtype])
        run.print(f"clip: saved {folder} (open_clip layout; t2i.text.TextEncoder.from_pretrained loads it)")
        if cfg.eval_n > 0:
            final = load_clip(folder, device=run.device)  # evaluate what was saved
            splits = [s for s in default_splits(cfg.data) if describe_source(cfg.data) in ("shapes", "digits")]
            if splits:
                results = evaluate_splits(final.eval(), cfg.data, splits, n=cfg.eval_n if cfg.data == "shapes" else None,
                                          size=size, device=run.device)
                report = write_report(results, run.out, title=f"{cfg.model} on {cfg.data}",
                                      extra={"model": str(folder), "steps": stopped_at,
                                             "train_minutes": round(train_minutes, 2)})
                run.print(summary(results) + f"\nclip: wrote {report}")
            else:
                run.print("clip: no built-in held-out split for this data; evaluate with `t2i eval clip --model "
                          f"{folder} --data DIR --split test`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
