"""The victim of the fault campaign (``tests/test_fault_campaign.py``): one attempt at the runtime demo
run, killed with SIGKILL at a chosen moment inside the checkpoint and model writes.

``attempt(out, kill_at, ...)`` trains ``t2i.runtime.demo`` (resuming the newest checkpoint of its
run) and counts every step of the crash-consistency protocol as it happens: each file written
(``write_text_durably`` / ``save_tensors_durably``), each folder swap (``swap_in``) and each
rename (set-aside, rotation). At step number ``kill_at`` the process sends itself SIGKILL, after
tearing the file being written in half when that step is a file write, as a power cut would.
It appends ``checkpoint N`` to ``out/acks.txt`` after each checkpoint write returns: work the
campaign then requires never to lose. Runs in a ``forkserver`` child, so imports are paid once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

KILLED = -signal.SIGKILL


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def attempt(out: str, kill_at: int, steps: int, fresh: bool) -> None:
    import threading
    import warnings

    from tqdm import tqdm

    # tqdm's default lock is a multiprocessing semaphore: a child killed while holding it (or its
    # leaked copy) must not block the next one; a thread lock is enough in one process
    tqdm.set_lock(threading.RLock())

    import torch

    import t2i.io as io
    import t2i.runtime.checkpoint as ckpt
    import t2i.runtime.run as run_module
    from t2i.io import CheckpointError
    from t2i.runtime.demo import DemoConfig, train

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    counter = {"n": 0}

    def tick(tear: Path | None = None, data: bytes = b"") -> None:
        counter["n"] += 1
        if counter["n"] == kill_at:
            if tear is not None:  # a torn write: half the bytes reach the file, then the power goes
                Path(tear).write_bytes(data[: len(data) // 2])
            _die()

    real_text, real_tensors, real_swap, real_rename = (io.write_text_durably, io.save_tensors_durably, io.swap_in,
                                                       os.rename)

    def write_text(path, text):
        tick(path, text.encode())
        real_text(path, text)

    def save_tensors(tensors, path):
        tick(path, b"\0" * 4096)
        real_tensors(tensors, path)

    def swap(new, final):
        tick()
        real_swap(new, final)
        tick()  # swapped in; the old copy not yet deleted

    def rename(src, dst, *args, **kwargs):
        tick()
        real_rename(src, dst, *args, **kwargs)

    io.write_text_durably = ckpt.write_text_durably = write_text
    io.save_tensors_durably = ckpt.save_tensors_durably = save_tensors
    io.swap_in = ckpt.swap_in = swap
    os.rename = rename

    real_write_checkpoint = ckpt.write_checkpoint

    def write_checkpoint(root, step, states, keep, identity=None):
        path = real_write_checkpoint(root, step, states, keep, identity)
        with open(Path(out) / "acks.txt", "a") as fh:  # this checkpoint is done: it must never be lost
            fh.write(f"checkpoint {step}\n")
        return path

    ckpt.write_checkpoint = write_checkpoint
    assert run_module.ckpt is ckpt
    cfg = dict(out=out, steps=steps, batch_size=8, grad_accum=2, n=40, ema_decay=0.9, checkpoint_every=2,
               checkpoints_keep=2, log_every=2, warmup=6, dropout=0.2, input_noise=0.05)
    try:
        train(DemoConfig(**cfg, resume="" if fresh else "latest"))
    except CheckpointError as err:
        if "belongs to another run" not in str(err):
            raise
        # killed while moving another run's checkpoints aside: what the message says to do is start fresh
        train(DemoConfig(**cfg, resume=""))
