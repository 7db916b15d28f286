"""The shared training runtime: a small ``Run`` object that does the chores every loop needs.

Each model family writes its own loop top to bottom; ``Run`` only handles what they all
share: accelerate (device, mixed precision, gradient accumulation, multi-process), seeds,
EMA of weights, gradient clipping, a non-finite guard, a progress bar, metrics
(``metrics.jsonl``, ``curves.png``, TensorBoard when asked), sample grids as PNG, and
atomic checkpoints with exact resume. It is not a framework: no callbacks, no hooks.

A complete trainer (``train/ae.py`` style)::

    from dataclasses import dataclass
    import torch
    from t2i.config import parse_config
    from t2i.runtime import Run, RunConfig

    @dataclass
    class AEConfig(RunConfig):          # inherit the shared options, add the family's own
        latent_dim: int = 2  # size of the code

    def main(argv=None):
        cfg = parse_config(AEConfig, argv, prog="t2i train ae")
        run = Run(cfg, name="ae")                     # seeds, out dir, config.json, Accelerator
        model = Autoencoder(cfg.latent_dim)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))  # optional
        model, opt, sched = run.prepare(model, opt, sched)  # device/DDP/autocast + checkpointed
        ema = run.ema(model)                          # None when cfg.ema_decay == 0
        loader = run.dataloader(load_dataset(cfg.data, size=cfg.size, **training_options(cfg)))  # --resize ...
        for step, batch in run.loop(loader):          # resumes, stops at cfg.steps, checkpoints
            with run.accumulate(model):               # grad accumulation (+ DDP no_sync)
                x = batch["image"]                    # (B, C, S, S), already on run.device
                loss = (model(x) - x).pow(2).flatten(1).mean(1).mean()  # per-sample -> mean
                run.backward(loss)                    # non-finite guard, grad clip on sync steps
                opt.step(); sched.step(); opt.zero_grad()  # no-ops on accumulation micro-steps
            run.log(loss=loss)                        # call on every process
            if run.should_sample():                   # same answer on every process
                with torch.no_grad():
                    run.save_grid(run.unwrap(model)(x[:16]).clamp(0, 1), "recon")
        final = ema.model if ema is not None else run.unwrap(model)
        run.finish(save={"model": (final, {"family": "ae", "latent_dim": cfg.latent_dim})})

    # t2i train ae --steps 200 --batch-size 64 --checkpoint-every 50 --resume latest
    # two processes, same global batch (torchrun + gloo on the CPU; drop --cpu on GPUs):
    # accelerate launch --multi_gpu --num_processes 2 -m train.ae --steps 200 --cpu true
    # (accelerate 1.x's `launch --cpu --num_processes 2` starts ONE process unless given an MPI
    #  hostfile; `torchrun --nproc_per_node 2 -m train.ae --cpu true` works too)

Meaning of the numbers
- ``step`` (yielded, and ``run.step``) counts finished optimiser steps: the first batch has
  step 0, a checkpoint ``checkpoints/step_000050`` holds the state after 50 steps and a
  resumed run continues at step 50. With ``grad_accum = k`` each step yields k micro-batches
  with the same ``step``; ``run.sync`` is true on the last one (the optimiser step).
- ``cfg.batch_size`` is the global batch of one optimiser step, whatever the number of
  processes: each process gets ``batch_size // (num_processes * grad_accum)`` per micro-batch.
- The data order depends only on (seed, epoch), not on the number of processes.

Calls (all processes run the same code; only the main process writes files)
- ``run.prepare(*models_optimisers_schedulers)`` -> the same objects, prepared and registered
  for checkpoints as model_0, model_1, optimizer_0, scheduler_0, ... (GANs: prepare G, D and
  both optimisers, and pass each phase's model to ``run.accumulate``). Frozen modules (a
  first-stage VAE, a text encoder) are not prepared: ``.to(run.device)`` them. ``run.register(name, obj)`` adds any other object with
  ``state_dict``/``load_state_dict`` (a dict of counters: use ``t2i.runtime.State``).
- ``run.ema(model)`` -> ``EMA`` (``.model`` is the averaged copy, updated after every
  optimiser step by ``run.loop``) or None.
- ``run.dataloader(dataset, shuffle=True, collate_fn=None)``: map-style or IterableDataset; prints
  ``dataset.report`` (the bad-data report) when items were skipped, converted or cut by a crop, and again at
  ``run.finish`` if more were found while training.
  Iterable datasets must yield the same stream on every process; the runtime deals the
  samples out to processes/workers; resume re-reads and skips the consumed samples.
- ``run.backward(loss, model=None)``: NonFiniteError (naming the step) on a NaN/inf loss or
  gradient, and DivergenceError when ``|loss|`` explodes past ``cfg.divergence_factor`` times
  ``max(1, |first loss|)`` of that phase, before any optimiser step; clips to ``cfg.grad_clip``
  the models given to ``run.accumulate`` (or ``model=``).
- ``run.gather(t)``, ``run.reduce(t, "mean")``, ``run.is_main``, ``run.device``,
  ``run.num_processes``, ``run.process_index``, ``run.print(...)``, ``run.unwrap(m)``,
  ``run.autocast()``, ``run.generator`` (a checkpointed CPU torch.Generator), ``run.out``,
  ``run.wait()``, ``run.micro_batch`` (samples per process per micro-batch), ``run.sync``,
  ``run.last_checkpoint``, ``run.accelerator`` (the escape hatch).
- ``run.log(**scalars)`` averages them up to every ``cfg.log_every`` steps (mean over
  processes too) into the progress bar, ``out/metrics.jsonl`` and TensorBoard; grad norms are
  logged by ``run.backward``. ``run.should_sample()`` / ``run.save_grid(images, name)`` write
  ``out/samples/NAME_{step:06d}.png`` (images (N, C, H, W) in ``value_range``, or PIL).
- ``run.finish(save={"name": (module_or_state_dict, config_dict)})`` writes each model with
  ``t2i.io.save_model`` under ``out/name/``, plots ``curves.png`` and returns the paths.

Checkpoints and runs: every checkpoint records its run's identity (trainer, seed, hash of the
config fields that decide what it learns; ``t2i.runtime.identity``). Rotation deletes only the
run's own checkpoints; a fresh run moves an earlier run's checkpoints to
``checkpoints/earlier/`` instead of overwriting them; ``--resume`` refuses another run's
checkpoint, naming both runs and what differs; ``--lr`` may change on resume (the restored
optimisers are rescaled, with a message). Files are fsync'ed and swapped in atomically. Ctrl-C or
SIGTERM in ``run.loop`` (one process) lets the step under way finish, checkpoints it and raises
``RunInterrupted`` naming the command that continues the run (``run.StopSignals``).

Mixed precision: ``bf16`` works on CPU and GPU; ``fp16`` needs CUDA (loss scaling) and is
refused on CPU with a clear error. Checkpoints hold safetensors + JSON only (no pickles).

    python -m t2i.runtime.demo --steps 20 --out /tmp/rt-demo
"""

from t2i.io import CheckpointError
from t2i.runtime.config import MIXED_PRECISION, RunConfig
from t2i.runtime.ema import EMA
from t2i.runtime.identity import RunIdentity
from t2i.runtime.run import DivergenceError, NonFiniteError, Run, State

__all__ = ["CheckpointError", "DivergenceError", "EMA", "MIXED_PRECISION", "NonFiniteError", "Run", "RunConfig",
           "RunIdentity", "State"]
