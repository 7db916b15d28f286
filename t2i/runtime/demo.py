"""A tiny but complete trainer on the runtime: an MLP regressing random tensors.

It uses every chore a family trainer uses (prepare, EMA, LR schedule, accumulation,
dropout and ``run.generator`` noise so RNG state matters, logs, sample grids, checkpoints,
resume, final save) and is what the runtime's tests and the 2-process test run.

    python -m t2i.runtime.demo --steps 20 --out /tmp/rt-demo
    accelerate launch --multi_gpu --num_processes 2 -m t2i.runtime.demo --steps 20 --out /tmp/rt-demo2 --cpu true
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from t2i.config import parse_config
from t2i.runtime import Run, RunConfig


@dataclass
class DemoConfig(RunConfig):
    steps: int = 40  # optimiser steps to train for
    batch_size: int = 16  # global batch per optimiser step
    checkpoint_every: int = 10  # write a resumable checkpoint every N steps; 0 = only at the end
    log_every: int = 5  # update the progress bar and metrics.jsonl every N steps
    data: str = "random"  # unused by the demo: it trains on seeded random tensors
    n: int = 256  # number of random (x, y) training pairs
    dim: int = 16  # input size (a 4x4 "image" per sample in the grids)
    hidden: int = 32  # hidden units of the MLP
    dropout: float = 0.1  # dropout probability (makes the torch RNG part of the state)
    input_noise: float = 0.01  # std of noise from run.generator added to inputs (0 = off)
    warmup: int = 5  # linear LR warm-up steps (a LambdaLR, so the schedule is checkpointed)
    nan_at_step: int = -1  # make the loss NaN at this step to see the non-finite guard (-1 = never)
    explode_at_step: int = -1  # multiply the loss by 1e9 at this step to see the divergence guard (-1 = never)

    resumable: ClassVar[tuple[str, ...]] = RunConfig.resumable + ("nan_at_step", "explode_at_step")  # fault injection


def make_data(cfg: DemoConfig) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(1234)  # the data does not depend on cfg.seed
    x = torch.randn(cfg.n, cfg.dim, generator=g)  # (N, D)
    w = torch.randn(cfg.dim, 1, generator=g)
    y = torch.sin(x @ w) + 0.1 * torch.randn(cfg.n, 1, generator=g)  # (N, 1)
    return torch.utils.data.TensorDataset(x, y)


def make_model(cfg: DemoConfig) -> nn.Module:
    return nn.Sequential(nn.Linear(cfg.dim, cfg.hidden), nn.SiLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 1))


def train(cfg: DemoConfig) -> tuple[Run, nn.Module, object]:
    """Run the demo; return (run, prepared model, ema-or-None) for tests to inspect."""
    run = Run(cfg, name="demo")
    model = make_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup))
    model, opt, sched = run.prepare(model, opt, sched)
    ema = run.ema(model)
    loader = run.dataloader(make_data(cfg))
    for step, (x, y) in run.loop(loader):  # x (b, D), y (b, 1) with b = run.micro_batch
        if cfg.input_noise > 0:
            x = x + cfg.input_noise * torch.randn(x.shape, generator=run.generator).to(x.device)
        with run.accumulate(model):
            per_sample = (model(x) - y).pow(2).mean(dim=1)  # (b,)
            loss = per_sample.mean()
            if step == cfg.nan_at_step:
                loss = loss * float("nan")
            if step == cfg.explode_at_step:
                loss = loss * 1e9
            run.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        run.log(loss=loss, lr=sched.get_last_lr()[0])
        if run.should_sample():
            first = run.unwrap(model)[0].weight.detach()  # (hidden, D) -> one 4x4 tile per hidden unit
            side = int(cfg.dim ** 0.5)
            if side * side == cfg.dim:
                run.save_grid(first.reshape(-1, 1, side, side), "weights", value_range=(-1.0, 1.0))
    final = ema.model if ema is not None else run.unwrap(model)
    run.finish(save={"model": (final, {"family": "runtime-demo", "dim": cfg.dim, "hidden": cfg.hidden})})
    return run, model, ema


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DemoConfig, argv, prog="python -m t2i.runtime.demo", description=__doc__)
    train(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
