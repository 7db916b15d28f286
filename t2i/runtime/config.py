"""``RunConfig``: the options every trainer shares. Family configs inherit it and add fields.

Defaults are the safe ones: full precision, CPU-capable, checkpoints on. A family may
override a default by redeclaring the field (``lr: float = 2e-4  # Adam step size``).

    python -c "from t2i.runtime.config import RunConfig; print(RunConfig(steps=10))"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass
class RunConfig:
    out: str = ""  # output folder (config.json, checkpoints/, samples/, metrics.jsonl, final model); "" = runs/<name>
    steps: int = 1000  # optimiser steps to train for (one step = batch_size samples over all processes)
    batch_size: int = 64  # GLOBAL batch per optimiser step; each process gets batch_size / (num_processes * grad_accum) per micro-batch
    grad_accum: int = 1  # micro-batches accumulated per optimiser step (same maths as a bigger batch, less memory)
    lr: float = 1e-3  # learning rate
    seed: int = 0  # seed for python, numpy and torch (process i uses seed + i) and for the data order
    mixed_precision: str = "no"  # autocast precision: no | bf16 (CPU and recent GPUs) | fp16 (CUDA only, with loss scaling)
    grad_clip: float = 0.0  # clip the global gradient norm to this value on each optimiser step; 0 = off
    ema_decay: float = 0.0  # keep an exponential moving average of the weights with this decay (e.g. 0.999); 0 = off
    checkpoint_every: int = 500  # write a resumable checkpoint every N steps; 0 = only at the end
    checkpoints_keep: int = 2  # how many of the newest checkpoints to keep under out/checkpoints/
    resume: str = ""  # "" = start fresh, "latest" = newest complete checkpoint in out/checkpoints (fresh if none), or a checkpoint folder
    sample_every: int = 0  # run.should_sample() is true every N steps (and on the last step); 0 = only on the last step
    log_every: int = 10  # update the progress bar, metrics.jsonl and TensorBoard every N steps
    tensorboard: bool = False  # also log scalars to TensorBoard under out/tensorboard (through accelerate's trackers)
    num_workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    strict: bool = False  # turn any bad data item into an error before training starts instead of skipping it
    data: str = "shapes"  # training data: shapes | digits | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards | a datasets save_to_disk folder, builder script .py or hub name hf:org/name
    image_column: str = ""  # user data: the image column ("" = file_name in metadata.jsonl, filepath in a CSV, image in datasets; shards: the image extension, "" = any)
    caption_column: str = ""  # user data: the caption column ("" = text in metadata.jsonl and datasets, title in a CSV; shards: the caption extension, "" = txt); a list of captions, or several columns joined by commas (caption_0,caption_1): one drawn per item and epoch
    resize: str = "center-crop"  # user images to size x size: center-crop (short side to size) | random-crop | pad (letterbox on --background) | stretch
    random_flip: float = 0.0  # user data: probability of a horizontal flip per item (refused on shapes/digits: "left of" would become false)
    background: str = "black"  # user data: colour under transparent pixels and around --resize pad: black | white (dark drawings on transparency: icons, line art)
    size: int = 32  # image side length in pixels
    cpu: bool = False  # train on the CPU even when a GPU is available
    divergence_factor: float = 1e4  # stop when |loss| exceeds this many times max(1, |first loss|): a loss explosion (too high an lr); 0 = off

    # Fields that may differ between a run and its resume: how it is run, watched or saved, not
    # what it learns. Every other field (and the seed) is part of the run's identity: checkpoints
    # carry it, and resuming with another identity is refused (t2i.runtime.identity). ``lr`` may
    # change: the resumed optimisers are rescaled to it. Family configs' own watch-only fields
    # (evaluation sizes, sample grids, time limits, saved dtype) are listed here too.
    resumable: ClassVar[tuple[str, ...]] = (
        "out", "resume", "steps", "lr", "batch_size", "grad_accum", "mixed_precision", "checkpoint_every",
        "checkpoints_keep", "sample_every", "log_every", "tensorboard", "num_workers", "strict", "cpu",
        "divergence_factor", "eval_n", "eval_images", "max_minutes", "sample_prompts", "sampler", "sample_steps",
        "guidance", "save_dtype", "first_stage_check", "min_psnr")

    # Fields added after runs existed: left out of the identity while at these values, so a checkpoint
    # written before the field existed stays resumable (its run learnt exactly what the default gives).
    identity_defaults: ClassVar[dict[str, object]] = {"image_column": "", "caption_column": "", "resize": "center-crop",
                                                      "random_flip": 0.0, "background": "black"}

    def validate(self) -> None:
        """Raise ValueError naming the bad field and what is allowed (called by ``Run``)."""
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {list(MIXED_PRECISION)}, got {self.mixed_precision!r}")
        positive = {"steps": self.steps, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "checkpoints_keep": self.checkpoints_keep, "log_every": self.log_every, "size": self.size}
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value!r}")
        non_negative = {"checkpoint_every": self.checkpoint_every, "sample_every": self.sample_every,
                        "num_workers": self.num_workers, "grad_clip": self.grad_clip}
        for key, value in non_negative.items():
            if value < 0:
                raise ValueError(f"{key} must be >= 0 (0 = off), got {value!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = no EMA; typical 0.999), got {self.ema_decay!r}")
        if not self.divergence_factor >= 0:
            raise ValueError(f"divergence_factor must be >= 0 (0 = off; default 1e4), got {self.divergence_factor!r}")
        from t2i.data.transforms import RESIZE_MODES, check_background

        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {list(RESIZE_MODES)}, got {self.resize!r}")
        if not 0.0 <= self.random_flip <= 1.0:
            raise ValueError(f"random_flip is a probability in [0, 1], got {self.random_flip!r}")
        check_background(self.background)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
