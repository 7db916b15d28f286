"""``Run``: the shared chores of a training loop (see ``t2i/runtime/__init__.py`` for the usage).

    python -m t2i.runtime.demo --steps 20 --out /tmp/rt-demo
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import (DataLoaderConfiguration, GradientAccumulationPlugin, ProjectConfiguration,
                              gather_object, send_to_device, set_seed)
from tqdm.auto import tqdm

from t2i.config import config_to_dict, save_config
from t2i.data.transforms import evaluation_resize
from t2i.io import CheckpointError, save_model
from t2i.runtime import checkpoint as ckpt
from t2i.runtime.config import RunConfig
from t2i.runtime.data import RunLoader
from t2i.runtime.ema import EMA
from t2i.runtime.grids import plot_curves, save_grid
from t2i.runtime.identity import identity_of, refusal


class NonFiniteError(FloatingPointError):
    """A NaN/inf loss, gradient or weight: the run stops before it can poison a checkpoint."""


class DivergenceError(NonFiniteError):
    """A finite but exploding loss (``cfg.divergence_factor``): the run stops like on a NaN."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM after saving a checkpoint of its last finished step (the message
    names the command that continues it)."""


class StopSignals:
    """While training (``Run.loop``, one process, the main thread): the first Ctrl-C (SIGINT) or SIGTERM is
    noted in ``received`` and the step under way finishes; the handlers in place before come back at once, so a
    second signal acts as it would have (Ctrl-C: KeyboardInterrupt now). A signal the process ignores (a job
    started in the background by a shell, ``nohup``) stays ignored. Several processes keep the defaults: they
    would have to agree on the step to stop at."""

    def __init__(self) -> None:
        self.received: str = ""
        self._before: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python takes signal handlers in the main thread only
        for number in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(number) is not signal.SIG_IGN:
                self._before[number] = signal.signal(number, self._note)

    def _note(self, number: int, frame: Any) -> None:
        self.received = signal.Signals(number).name
        self.restore()
        print(f"\n{self.received}: finishing this step, then saving a checkpoint (again to stop at once)",
              file=sys.stderr, flush=True)

    def restore(self) -> None:
        for number, handler in self._before.items():
            signal.signal(number, handler)
        self._before = {}


class State(dict):
    """A dict of extra values (counters, a GAN's adaptive ``p``) to register with ``run.register``."""

    def state_dict(self) -> dict:
        return dict(self)

    def load_state_dict(self, state: dict) -> None:
        self.clear()
        self.update(state)


def _fresh_accelerate_state() -> None:
    """Let several Runs live one after another in one process (tests, studies).

    accelerate keeps its settings in process-wide singletons; a new Run with another
    precision would otherwise fail. Under ``accelerate launch`` the process group stays.
    """
    AcceleratorState._reset_state(reset_partial_state=not torch.distributed.is_initialized())
    GradientState._reset_state()



def check_reading(dataset: Any, cfg: Any, name: str) -> None:
    """Raise when ``dataset`` (a user-data set: it has an ``augment``) reads its images otherwise than ``cfg`` asks.
    A random crop counts as its evaluation twin, the centre crop: trainers that read each image once (a cache of
    embeddings) read it so, and refuse ``random-crop`` themselves."""
    augment = getattr(dataset, "augment", None)
    if augment is None or not hasattr(cfg, "resize"):
        return
    read = (evaluation_resize(augment.resize), augment.background, augment.random_flip)
    asked = (evaluation_resize(cfg.resize), cfg.background, cfg.random_flip)
    if read != asked:
        raise RuntimeError(f"{name}: the training data was read with --resize {augment.resize} --background "
                           f"{augment.background} --random-flip {augment.random_flip}, but the run asks for --resize "
                           f"{cfg.resize} --background {cfg.background} --random-flip {cfg.random_flip}: the trainer "
                           "must load it with t2i.data.training_options(cfg)")

class Run:
    """One training run: accelerate, seeds, EMA, grad clip, non-finite guard, logs, checkpoints."""

    def __init__(self, cfg: RunConfig, name: str):
        cfg.validate()
        self.cfg, self.name = cfg, name
        self.out = Path(cfg.out or f"runs/{name}")
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"--out {self.out} is a file: give a folder (it is created if missing)")
        cpu = cfg.cpu or not torch.cuda.is_available()
        if cfg.mixed_precision == "fp16" and cpu:
            raise ValueError("mixed_precision='fp16' needs a CUDA GPU (loss scaling); on the CPU use 'bf16' or 'no'")
        _fresh_accelerate_state()
        self.accelerator = Accelerator(
            cpu=cpu, mixed_precision=cfg.mixed_precision,
            # we decide which micro-batch syncs (run.sync), so a GAN may call run.accumulate twice per batch
            gradient_accumulation_plugin=GradientAccumulationPlugin(
                num_steps=cfg.grad_accum, adjust_scheduler=False, sync_with_dataloader=False),
            # split_batches: cfg.batch_size is global, so an LR scheduler steps once per optimiser step
            dataloader_config=DataLoaderConfiguration(split_batches=True),
            log_with="tensorboard" if cfg.tensorboard else None,
            project_config=ProjectConfiguration(project_dir=str(self.out), logging_dir=str(self.out / "tensorboard")))
        per_process = cfg.batch_size / (self.num_processes * cfg.grad_accum)
        if per_process != int(per_process):
            raise ValueError(f"batch_size ({cfg.batch_size}) must be divisible by num_processes * grad_accum "
                             f"({self.num_processes} * {cfg.grad_accum}); each process gets whole micro-batches")
        self.micro_batch = int(per_process)  # samples per process per micro-batch
        set_seed(cfg.seed, device_specific=True)  # python, numpy, torch (+cuda) with seed + process_index
        self.generator = torch.Generator().manual_seed(cfg.seed + self.process_index)  # checkpointed
        self.step = 0  # finished optimiser steps
        self.sync = True  # is this micro-batch the one that ends an optimiser step?
        self.last_checkpoint: Path | None = None
        self._objects: dict[str, Any] = {}  # name -> object with state_dict/load_state_dict
        self._models: list[torch.nn.Module] = []
        self._emas: list[EMA] = []
        self._loader: RunLoader | None = None
        self._accum_models: tuple[torch.nn.Module, ...] = ()
        self._micro = 0
        self._in_loop = False
        self._restored = False
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._tick = (time.perf_counter(), 0)
        self._loss_refs: dict[tuple[int, ...], float] = {}  # divergence guard: max(1, |first loss|) per phase
        self._data_report: Any = None  # the training data's BadDataReport (printed at start and, if it grew, at the end)
        self._reported_problems = 0
        self.checkpoint_root = self.out / "checkpoints"
        self.identity = identity_of(cfg, name)  # config hash + seed, recorded in every checkpoint
        if self.is_main:
            ckpt.remove_stale_temp(self.checkpoint_root)  # a run killed mid-write left temp folders
        self.wait()
        self._resume_candidates = self._plan_resume()  # refuses another run's checkpoint before writing anything
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out / "config.json")
            earlier = [folder for _, folder in ckpt.step_dirs(self.checkpoint_root)]
            if not cfg.resume and earlier:  # a fresh start never deletes an earlier run's checkpoints
                moved = ckpt.set_aside(self.checkpoint_root, earlier)
                self.print(f"{name}: starting fresh; moved {len(moved)} checkpoint(s) of an earlier run to "
                           f"{sorted({str(m.parent) for m in moved})} (resume them with --resume PATH)")
        if cfg.tensorboard:
            scalars = {k: v for k, v in config_to_dict(cfg).items() if isinstance(v, (int, float, str, bool))}
            self.accelerator.init_trackers(name, config=scalars)
        self.wait()

    # ------------------------------------------------------------ accelerate passthroughs
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def process_index(self) -> int:
        return self.accelerator.process_index

    def print(self, *args: Any) -> None:
        """Print once (main process), without breaking the progress bar."""
        if self.is_main:
            tqdm.write(" ".join(str(a) for a in args))

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()

    def main_process_first(self):
        """A context: the main process runs the block, then the others (to read what it wrote, e.g. a cache)."""
        return self.accelerator.main_process_first()

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return self.accelerator.unwrap_model(model)

    def autocast(self):
        return self.accelerator.autocast()

    def gather(self, tensor: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Concatenate ``tensor`` (B, ...) from all processes -> (P * B, ...).

        ``grad=True`` keeps the autograd graph (``torch.distributed.nn.all_gather``), as a
        global contrastive loss needs (open_clip's ``gather_with_grad``).
        """
        if self.num_processes == 1:
            return tensor
        if grad:
            import torch.distributed.nn.functional as dist_fn
            return torch.cat(dist_fn.all_gather(tensor), dim=0)
        return self.accelerator.gather(tensor)

    def reduce(self, tensor: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        return tensor if self.num_processes == 1 else self.accelerator.reduce(tensor, reduction)

    # ------------------------------------------------------------ objects
    def prepare(self, *objs: Any) -> Any:
        """accelerate-prepare models, optimisers and LR schedulers and register them for checkpoints."""
        kinds = []
        for obj in objs:
            if isinstance(obj, torch.nn.Module):
                kinds.append("model")
            elif isinstance(obj, torch.optim.Optimizer):
                kinds.append("optimizer")
            elif isinstance(obj, torch.optim.lr_scheduler.LRScheduler):
                kinds.append("scheduler")
            else:
                raise TypeError(f"run.prepare takes models, optimizers and LR schedulers, got {type(obj).__name__}; "
                                "use run.dataloader(dataset) for data and run.register(name, obj) for other state")
        prepared = self.accelerator.prepare(*objs)
        prepared = prepared if isinstance(prepared, tuple) else (prepared,)
        for kind, obj in zip(kinds, prepared):
            index = sum(name.startswith(kind + "_") for name in self._objects)
            self._objects[f"{kind}_{index}"] = obj
            if kind == "model":
                self._models.append(obj)
        return prepared[0] if len(prepared) == 1 else prepared

    def register(self, name: str, obj: Any) -> Any:
        """Checkpoint any object with ``state_dict()``/``load_state_dict()`` under ``name``."""
        if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
            raise TypeError(f"run.register needs an object with state_dict/load_state_dict, got {type(obj).__name__} "
                            "(wrap plain values in t2i.runtime.State)")
        if name in self._objects or name in ("trainer", "data") or name.startswith("rng_"):
            raise ValueError(f"name {name!r} is taken; taken: {sorted(self._objects)} + trainer, data, rng_*")
        self._objects[name] = obj
        return obj

    def ema(self, model: torch.nn.Module) -> EMA | None:
        """An EMA of ``model``'s weights when ``cfg.ema_decay > 0`` (else None), updated and checkpointed."""
        if self.cfg.ema_decay == 0:
            return None
        if not any(model is m for m in self._models):
            raise ValueError("call run.prepare(model, ...) before run.ema(model), so the average lives on run.device")
        ema = EMA(self.unwrap(model), self.cfg.ema_decay)
        self._emas.append(ema)
        self._objects["ema" if len(self._emas) == 1 else f"ema_{len(self._emas) - 1}"] = ema
        return ema

    def dataloader(self, dataset: torch.utils.data.Dataset, shuffle: bool = True,
                   collate_fn: Callable | None = None) -> RunLoader:
        """Per-process micro-batches of ``batch_size / (num_processes * grad_accum)``, seeded, resumable.

        Prints the dataset's bad-data report (``dataset.report``) when it skipped, converted or cropped items.
        A user-data set read otherwise than the run's ``--resize`` / ``--background`` / ``--random-flip`` is a
        trainer's bug (it loaded the data without ``t2i.data.training_options(cfg)``): refused, naming it."""
        check_reading(dataset, self.cfg, self.name)
        report = getattr(dataset, "report", None)
        if report is not None and hasattr(report, "summary"):
            self._data_report, self._reported_problems = report, report.problems
            if report.noteworthy:
                self.print(f"{self.name}: bad-data report (items skipped, converted or cut by a crop; "
                           f"`t2i data validate` lists them all):\n{report.summary()}")
        return RunLoader(dataset, self.micro_batch, self.num_processes, self.process_index, self.cfg.seed, shuffle,
                         self.cfg.num_workers, collate_fn, pin_memory=self.device.type == "cuda")

    # ------------------------------------------------------------ the loop
    def loop(self, loader: RunLoader) -> Iterator[tuple[int, Any]]:
        """Yield ``(step, batch)`` until ``cfg.steps``; after each optimiser step: EMA, logs, checkpoints."""
        if not isinstance(loader, RunLoader):
            raise TypeError(f"run.loop needs the loader from run.dataloader(dataset), got {type(loader).__name__}")
        self._loader = loader
        if not self._restored:
            self._restore()
            self._restored = True
            if self.is_main:
                self._trim_metrics(self.step)  # rows of an earlier or crashed run past this step
        if self.step >= self.cfg.steps:
            self.print(f"{self.name}: already at step {self.step} of {self.cfg.steps}; nothing to train")
            return
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc=self.name, disable=not self.is_main, dynamic_ncols=True)
        self._tick = (time.perf_counter(), self.step)
        self._in_loop = True
        signals = StopSignals()
        try:
            if self.num_processes == 1:  # several would have to agree on the step to stop at (StopSignals)
                signals.install()
            for batch in loader.batches():
                self.sync = (self._micro + 1) % self.cfg.grad_accum == 0
                self.accelerator.gradient_state._set_sync_gradients(self.sync)  # AcceleratedOptimizer obeys it
                self._accum_models = ()
                yield self.step, send_to_device(batch, self.device)
                self._micro += 1
                if not self.sync:
                    continue
                self.step += 1
                for ema in self._emas:
                    ema.update()
                bar.update(1)
                if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                    self._flush_logs(bar)
                every = self.cfg.checkpoint_every
                if (every and self.step % every == 0) or self.step == self.cfg.steps:
                    self.save_checkpoint()
                if self.step >= self.cfg.steps:
                    break
                if signals.received:
                    self._stop(bar, signals.received)
            self._write_cost(bar.format_dict.get("elapsed", 0.0), self.step - bar.format_dict.get("initial", 0))
        finally:
            signals.restore()
            self._in_loop = False
            self.sync = True
            self.accelerator.gradient_state._set_sync_gradients(True)
            bar.close()

    def _stop(self, bar: tqdm, signal_name: str) -> None:
        """Ctrl-C or SIGTERM between two steps: keep the finished steps (logs, a checkpoint of this step), then
        raise ``RunInterrupted`` naming the command that continues the run."""
        if self._sums:
            self._flush_logs(bar)
        if self.last_checkpoint != self.checkpoint_root / f"step_{self.step:06d}":  # not saved at this step already
            self.save_checkpoint()
        self._write_cost(bar.format_dict.get("elapsed", 0.0), self.step - bar.format_dict.get("initial", 0))
        raise RunInterrupted(f"{signal_name} at step {self.step} of {self.cfg.steps}: checkpoint "
                             f"{self.last_checkpoint} written; continue with "
                             f"`{ckpt.resume_command(self.name, self.out)}`")

    def _write_cost(self, seconds: float, steps: int) -> None:
        """What this session of the loop cost: wall time per step and peak memory (process RSS; the
        accelerator's peak allocation on CUDA), printed and written to ``out/run_cost.json``."""
        if not self.is_main or steps <= 0:
            return
        import resource

        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        cost = {"steps": steps, "wall_s": round(seconds, 3), "s_per_step": round(seconds / steps, 5),
                "batch_size": self.cfg.batch_size, "peak_rss_mb": round(rss_mb), "device": str(self.device),
                "processes": self.num_processes, "torch_threads": torch.get_num_threads()}
        if self.device.type == "cuda":
            cost["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20)
        (self.out / "run_cost.json").write_text(json.dumps(cost, indent=2) + "\n")
        self.print(f"{self.name}: {steps} steps in {seconds / 60:.1f} min ({seconds / steps:.3f} s/step), "
                   f"peak memory {cost.get('cuda_peak_mb', cost['peak_rss_mb'])} MB "
                   f"({'CUDA' if 'cuda_peak_mb' in cost else 'process RSS'})")

    @contextlib.contextmanager
    def accumulate(self, *models: torch.nn.Module):
        """Gradient accumulation: no DDP all-reduce on micro-steps; optimiser steps only when ``run.sync``."""
        self.accelerator.gradient_state._set_sync_gradients(self.sync)
        self._accum_models = models
        with contextlib.ExitStack() as stack:
            if not self.sync:
                for m in models:
                    stack.enter_context(self.accelerator.no_sync(m))
            yield

    def backward(self, loss: torch.Tensor, model: torch.nn.Module | None = None) -> None:
        """Non-finite guard on the loss, backward (scaled by 1/grad_accum), then on sync steps the
        gradient guard and clipping of ``model`` (default: the models given to run.accumulate, else all)."""
        models = (model,) if model is not None else (self._accum_models or tuple(self._models))
        value = loss.detach().float()
        bad = ~torch.isfinite(value).all()
        exploded = torch.zeros((), dtype=torch.bool)
        if self.cfg.divergence_factor > 0 and not bool(bad):
            magnitude = float(value.abs().max())
            reference = self._loss_refs.setdefault(tuple(id(m) for m in models), max(1.0, magnitude))
            exploded = torch.tensor(magnitude > self.cfg.divergence_factor * reference)
        flags = torch.stack([bad.cpu(), exploded]).float()
        if self.num_processes > 1:  # every process must stop together, or the others hang in all-reduce
            flags = self.reduce(flags.to(self.device), "sum").cpu()
        if flags[0] > 0:
            raise NonFiniteError(f"non-finite loss ({value.flatten()[:4].tolist()}) at step {self.step}; "
                                 f"stopped before the optimiser step. {self._last_good()}")
        if flags[1] > 0:
            reference = self._loss_refs.get(tuple(id(m) for m in models), 1.0)
            raise DivergenceError(
                f"the loss exploded at step {self.step}: |loss| = {float(value.abs().max()):.4g} is more than "
                f"divergence_factor {self.cfg.divergence_factor:g} x {reference:.4g} (max(1, |first loss|)); stopped "
                f"before the optimiser step. {self._last_good()} Lower --lr (now {self.cfg.lr:g}), or raise "
                "--divergence-factor (0 = off) if such losses are expected.")
        self.accelerator.backward(loss)
        if not self.sync:
            return
        params = [p for m in models for p in m.parameters() if p.grad is not None]
        if not params:
            return
        if self.cfg.grad_clip > 0:
            norm = self.accelerator.clip_grad_norm_(params, self.cfg.grad_clip)  # unscales fp16 grads first
        elif self.accelerator.scaler is not None:
            return  # fp16: the grad scaler itself skips steps with inf gradients and lowers the scale
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if not torch.isfinite(norm) and self.accelerator.scaler is None:
            raise NonFiniteError(f"non-finite gradient norm ({float(norm)}) at step {self.step} with a finite loss; "
                                 f"stopped before the optimiser step. {self._last_good()}")
        if len(self._models) == 1:
            self.log(grad_norm=norm)
        else:  # e.g. a GAN: one curve per phase
            names = [n for n, obj in self._objects.items() if any(obj is m for m in models)]
            self.log(**{"grad_norm/" + "+".join(names): norm})

    def _last_good(self) -> str:
        if self.last_checkpoint is None:
            return "No checkpoint was written in this run."
        return f"The last good checkpoint is {self.last_checkpoint} (resume with --resume latest)."

    # ------------------------------------------------------------ logs and samples
    def log(self, **values: float | torch.Tensor) -> None:
        """Average scalars over the steps between flushes (every cfg.log_every); call on every process."""
        for key, value in values.items():
            value = value.detach().float().mean() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            self._sums[key] = self._sums.get(key, 0.0) + value.to(self.device)
            self._counts[key] = self._counts.get(key, 0) + 1

    def _flush_logs(self, bar: tqdm) -> None:
        keys = sorted(self._sums)
        now, (then, then_step) = time.perf_counter(), self._tick
        row: dict[str, float] = {}
        if keys:
            means = torch.stack([self._sums[k] / self._counts[k] for k in keys])
            row = dict(zip(keys, self.reduce(means, "mean").tolist()))
        row["images_per_s"] = self.cfg.batch_size * (self.step - then_step) / max(now - then, 1e-9)
        self._sums, self._counts, self._tick = {}, {}, (now, self.step)
        bar.set_postfix({k: f"{v:.4g}" for k, v in row.items()}, refresh=False)
        if self.is_main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": self.step, **row}) + "\n")
        if self.cfg.tensorboard:
            self.accelerator.log(row, step=self.step)

    def should_sample(self) -> bool:
        """True on the last micro-batch of every ``sample_every``-th step and of the final step."""
        if not self.sync:
            return False
        done = self.step + 1  # steps finished once this one is
        return (self.cfg.sample_every > 0 and done % self.cfg.sample_every == 0) or done == self.cfg.steps

    def save_grid(self, images: torch.Tensor | list, name: str = "samples", nrow: int | None = None,
                  value_range: tuple[float, float] = (0.0, 1.0)) -> Path | None:
        """Write ``out/samples/{name}_{step:06d}.png`` (main process); images (N, C, H, W) or PIL."""
        if not self.is_main:
            return None
        step = self.step + 1 if self._in_loop else self.step
        return save_grid(images, self.out / "samples" / f"{name}_{step:06d}.png", nrow=nrow, value_range=value_range)

    # ------------------------------------------------------------ checkpoints
    def _check_weights_finite(self) -> None:
        for name, obj in self._objects.items():
            if name.startswith("model_") or isinstance(obj, EMA):
                module = obj.model if isinstance(obj, EMA) else obj
                for pname, p in module.named_parameters():
                    if not torch.isfinite(p).all():
                        raise NonFiniteError(f"{name}.{pname} is non-finite after step {self.step}; not writing a "
                                             f"checkpoint from a poisoned state. {self._last_good()}")

    def save_checkpoint(self) -> Path | None:
        """Write ``out/checkpoints/step_{step:06d}`` (called by run.loop); main process writes."""
        self._check_weights_finite()
        states: dict[str, Any] = {}
        for name, obj in self._objects.items():
            states[name] = (self.unwrap(obj) if name.startswith("model_") else obj).state_dict()
        states["trainer"] = {"step": self.step, "num_processes": self.num_processes, "batch_size": self.cfg.batch_size,
                             "grad_accum": self.cfg.grad_accum, "seed": self.cfg.seed, "lr": self.cfg.lr}
        if self._loader is not None:
            states["data"] = self._loader.state_dict()
        rng = ckpt.capture_rng(self.generator)
        rngs = gather_object([rng]) if self.num_processes > 1 else [rng]
        for rank, state in enumerate(rngs):
            states[f"rng_{rank}"] = state
        path = None
        if self.is_main:
            path = ckpt.write_checkpoint(self.checkpoint_root, self.step, states, keep=self.cfg.checkpoints_keep,
                                         identity=self.identity)
        self.last_checkpoint = self.checkpoint_root / f"step_{self.step:06d}"
        self.wait()
        return path

    def _plan_resume(self) -> list[Path]:
        """The checkpoint folders ``cfg.resume`` may load, newest first; CheckpointError naming both runs
        when they belong to another run (checked before the run writes anything)."""
        resume, root = self.cfg.resume, self.checkpoint_root
        if not resume:
            return []
        if resume != "latest":
            path = Path(resume)
            if not path.is_dir():
                raise CheckpointError(f"--resume {resume}: no such checkpoint folder; give a step_N folder "
                                      f"(e.g. {root / 'step_000500'}) or --resume latest")
            if ckpt.read_manifest(path) is None:
                raise CheckpointError(f"--resume {resume}: {path} is not a complete checkpoint ({ckpt.MANIFEST}, "
                                      "written last, is missing or unreadable); --resume latest picks the newest "
                                      "complete one")
            theirs = ckpt.identity_of_checkpoint(path)
            if theirs is not None and not theirs.same_run(self.identity):
                raise CheckpointError(refusal(self.identity, theirs, f"checkpoint {path}"))
            return [path]
        mine, others = [], []
        for _, folder in ckpt.step_dirs(root):
            theirs = ckpt.identity_of_checkpoint(folder)
            (others if theirs is not None and not theirs.same_run(self.identity) else mine).append(folder)
        if others and not mine:
            theirs = ckpt.identity_of_checkpoint(others[0])
            message = refusal(self.identity, theirs, f"--resume latest: the newest checkpoint in {root} "
                                                     f"({others[0].name})")
            own = [f for f in sorted((root / "earlier").glob("*/step_*"), key=lambda f: f.name, reverse=True)
                   if (i := ckpt.identity_of_checkpoint(f)) is not None and i.same_run(self.identity)]
            if own:  # set aside by a later fresh run: say where
                message += f" This run's own newest checkpoint was set aside: --resume {own[0]}"
            raise CheckpointError(message)
        return mine

    def _restore(self) -> None:
        if not self.cfg.resume:
            return
        found = None
        for folder in self._resume_candidates:
            if self.cfg.resume != "latest":  # an explicit folder: any problem is an error
                found = (*ckpt.read_checkpoint(folder), folder)
                break
            try:
                found = (*ckpt.read_checkpoint(folder), folder)
                break
            except CheckpointError as err:
                warnings.warn(f"skipping checkpoint {folder}: {err}", RuntimeWarning, stacklevel=3)
        if found is None:
            self.print(f"{self.name}: no complete checkpoint of this run under {self.checkpoint_root}; starting fresh")
            self._set_aside_other_lines(None, 0)
            return
        step, states, path = found
        missing = sorted(set(self._objects) - set(states))
        if missing:
            raise CheckpointError(f"checkpoint {path} lacks {missing} (it has {sorted(states)}); "
                                  "prepare/register the same models, optimisers and EMA as the run that wrote it")
        for name, obj in self._objects.items():
            (self.unwrap(obj) if name.startswith("model_") else obj).load_state_dict(states[name])
        trainer = states["trainer"]
        if trainer["batch_size"] != self.cfg.batch_size:
            self.print(f"{self.name}: note: resuming with batch_size {self.cfg.batch_size} instead of the checkpoint's "
                       f"{trainer['batch_size']}: the optimiser and LR schedule were tuned for the old one")
        if self._loader is not None and "data" in states:
            self._loader.load_state_dict(states["data"])
        rng_key = f"rng_{self.process_index}"
        if rng_key in states:
            ckpt.restore_rng(states[rng_key], self.generator)
        else:
            warnings.warn(f"{path} has no RNG state for process {self.process_index} (written with "
                          f"{trainer['num_processes']} processes); reseeding it", RuntimeWarning, stacklevel=3)
            set_seed(self.cfg.seed + 7919 * step, device_specific=True)
        old_lr = trainer.get("lr")
        if old_lr is not None and float(old_lr) != self.cfg.lr:
            self._rescale_lr(float(old_lr), self.cfg.lr)
        self.step, self._micro, self.last_checkpoint = step, 0, path
        self.print(f"{self.name}: resumed from {path} at step {step}")
        self._set_aside_other_lines(path, step)

    def _set_aside_other_lines(self, path: Path | None, step: int) -> None:
        """Keep under checkpoints/ only the line this run continues (its own checkpoints up to ``step``
        when resuming from there); move the rest to checkpoints/earlier/ so rotation never deletes them."""
        self.wait()  # every process has read its checkpoint before anything moves
        if self.is_main:
            root = self.checkpoint_root
            continues_here = path is not None and path.resolve().parent == root.resolve()
            stray = []
            for s, folder in ckpt.step_dirs(root):
                theirs = ckpt.identity_of_checkpoint(folder)
                mine = theirs is None or theirs.same_run(self.identity)
                if not (continues_here and mine and s <= step):
                    stray.append(folder)
            if stray:
                moved = ckpt.set_aside(root, stray)
                self.print(f"{self.name}: moved {len(moved)} checkpoint(s) that this run does not continue to "
                           f"{sorted({str(m.parent) for m in moved})}")
        self.wait()

    def _rescale_lr(self, old: float, new: float) -> None:
        """``--lr`` changed on resume: scale every optimiser's learning rates and their schedules by new / old."""
        ratio = new / old
        for name, obj in self._objects.items():
            if name.startswith("optimizer_"):
                for group in obj.param_groups:
                    group["lr"] *= ratio
                    if "initial_lr" in group:
                        group["initial_lr"] *= ratio
            elif name.startswith("scheduler_"):
                sched = getattr(obj, "scheduler", obj)  # accelerate's wrapper holds the torch scheduler
                if hasattr(sched, "base_lrs"):
                    sched.base_lrs = [lr * ratio for lr in sched.base_lrs]
                if hasattr(sched, "_last_lr"):
                    sched._last_lr = [lr * ratio for lr in sched._last_lr]
        self.print(f"{self.name}: resuming with lr {new:g} instead of the checkpoint's {old:g}: every optimiser's "
                   f"learning rate and schedule is scaled by {ratio:g} (config.json records the new value)")

    def _trim_metrics(self, step: int) -> None:
        """Drop metric rows logged after ``step`` by a crashed run (or all of an old run's)."""
        path = self.out / "metrics.jsonl"
        if path.is_file():
            rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            path.write_text("".join(r + "\n" for r in rows))

    # ------------------------------------------------------------ the end
    def finish(self, save: dict[str, tuple[Any, dict[str, Any]]] | None = None) -> dict[str, Path]:
        """Save final models (``t2i.io.save_model`` under out/NAME), plot curves.png, close trackers."""
        self.wait()
        report = self._data_report
        if report is not None and report.problems > self._reported_problems:  # found while training (shards, lazy decode)
            self.print(f"{self.name}: bad data found during training (skipped):\n{report.summary()}")
        paths: dict[str, Path] = {}
        if self.is_main:
            for key, (module, config) in (save or {}).items():
                if isinstance(module, torch.nn.Module):
                    module = self.unwrap(module)
                    if not all(torch.isfinite(t).all() for t in module.state_dict().values() if t.is_floating_point()):
                        raise NonFiniteError(f"final weights of {key!r} are non-finite; not saving them")
                paths[key] = save_model(self.out / key, module, config)
            if (self.out / "metrics.jsonl").is_file():
                paths["curves"] = plot_curves(self.out / "metrics.jsonl", self.out / "curves.png", title=self.name)
        if self.cfg.tensorboard:
            self.accelerator.end_training()
        self.wait()
        return paths

    def __repr__(self) -> str:
        return (f"Run({self.name!r}, out={str(self.out)!r}, device={self.device}, processes={self.num_processes}, "
                f"micro_batch={self.micro_batch}, step={self.step}/{self.cfg.steps})")
