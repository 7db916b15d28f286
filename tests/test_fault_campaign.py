"""Fault campaign: a training run killed with SIGKILL over and over, at random moments and inside every
step of the checkpoint and model writes (torn files, between swap and delete, mid-rotation, while
moving another run's checkpoints aside), resumed each time with ``--resume latest``.

Required (issue 14): at least 20 kills; after every kill each checkpoint folder loads, no
acknowledged checkpoint is lost, the other run's checkpoints survive, an existing final model
never disappears; and the end result is bit-identical to a run that was never interrupted."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from pathlib import Path

import pytest
import torch

from t2i.io import load_weights
from t2i.runtime.checkpoint import read_checkpoint, step_dirs, write_checkpoint
from t2i.runtime.identity import RunIdentity

from .support.fault_child import attempt

STEPS = 16
KILL_ATTEMPTS = 22
HANG_S = 300  # an attempt takes about 2 s; this long means it hangs


def run_attempt(ctx, out: Path, kill_at: int = 0, fresh: bool = False, timer: float | None = None) -> int:
    """One child; returns its exit code (-9 when killed, by itself or by the timer)."""
    proc = ctx.Process(target=attempt, args=(str(out), kill_at, STEPS, fresh))
    proc.start()
    proc.join(timer if timer is not None else HANG_S)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert timer is not None, f"an attempt hung for {HANG_S} s (a lock left held by a killed process?)"
    return proc.exitcode


def loadable(folder: Path) -> bool:
    try:
        read_checkpoint(folder)
        return True
    except Exception:
        return False


def acked(out: Path) -> int:
    path = out / "acks.txt"
    steps = [int(line.split()[1]) for line in path.read_text().splitlines()] if path.is_file() else []
    return max(steps, default=0)


def model_state(out: Path) -> dict | None:
    try:
        return load_weights(out / "model")
    except Exception:
        return None


@pytest.mark.slow
def test_kill_9_campaign_loses_nothing_and_ends_bit_identical(tmp_path):
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.support.fault_child", "t2i.runtime.demo", "accelerate"])
    reference = tmp_path / "reference"
    assert run_attempt(ctx, reference) == 0

    out = tmp_path / "victim"
    other = RunIdentity("demo", 99, "feedfacecafe", {"note": "another run in the same folder"})
    for step in (2, 4):  # another run's checkpoints: no kill may cost them
        write_checkpoint(out / "checkpoints", step, {"trainer": {"step": step}}, keep=5, identity=other)

    rng = random.Random(14)
    kills, kinds = 0, {}
    for k in range(KILL_ATTEMPTS):
        model_before = model_state(out)
        if k == 0:  # fresh start, killed between moving the two old checkpoints aside
            code, kind = run_attempt(ctx, out, kill_at=2, fresh=True), "set-aside"
        elif k % 4 == 3:  # anywhere: start-up, a training step, a write
            code, kind = run_attempt(ctx, out, timer=rng.uniform(0.05, 1.2)), "timer"
        elif model_before is not None:  # trained: the resume only re-saves the final model; kill inside that
            code, kind = run_attempt(ctx, out, kill_at=rng.randint(1, 4)), "inside the model save"
        else:  # the n-th file write, swap or rename of this attempt (about 15 per checkpoint)
            code, kind = run_attempt(ctx, out, kill_at=rng.randint(1, 30)), "inside a checkpoint write"
        assert code in (0, -signal.SIGKILL), f"attempt {k} failed with exit code {code}"
        kills += code == -signal.SIGKILL
        kinds[kind] = kinds.get(kind, 0) + (code == -signal.SIGKILL)

        root = out / "checkpoints"
        mine = [(s, f) for s, f in step_dirs(root)]
        assert all(loadable(f) for _, f in mine), f"a partial checkpoint is visible after attempt {k}"
        newest = max((s for s, f in mine if loadable(f)), default=0)
        assert newest >= acked(out), f"attempt {k}: checkpoint {acked(out)} was acknowledged, newest is {newest}"
        theirs = [f for f in root.rglob("step_*") if read_checkpoint(f)[1]["trainer"] == {"step": int(f.name[5:])}]
        assert len(theirs) == 2, f"attempt {k}: the other run's checkpoints were touched"
        if model_before is not None:  # once written, the final model never disappears nor tears
            after = model_state(out)
            assert after is not None and all(torch.equal(after[key], model_before[key]) for key in model_before)

    assert run_attempt(ctx, out) == 0  # a last, clean resume
    assert kills >= 20, f"only {kills} kills: {kinds}"
    final, expected = read_checkpoint(out / "checkpoints" / f"step_{STEPS:06d}")[1], \
        read_checkpoint(reference / "checkpoints" / f"step_{STEPS:06d}")[1]
    for name in ("model_0", "ema", "optimizer_0"):
        a, b = final[name], expected[name]
        flat_a = a.get("model", a.get("state", a)) if isinstance(a, dict) else a
        flat_b = b.get("model", b.get("state", b)) if isinstance(b, dict) else b
        assert repr(sorted(flat_a)) == repr(sorted(flat_b))
    assert torch.equal(final["rng_0"]["torch"], expected["rng_0"]["torch"]) and final["data"] == expected["data"]
    for key, value in final["model_0"].items():
        assert torch.equal(value, expected["model_0"][key]), key
    for pid, slots in final["optimizer_0"]["state"].items():
        for slot, value in slots.items():
            assert torch.equal(value, expected["optimizer_0"]["state"][pid][slot])
    assert (out / "model" / "model.safetensors").read_bytes() == (reference / "model" / "model.safetensors").read_bytes()
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    leftovers += [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers
    print(f"fault campaign: {kills} kills ({kinds}), 0 lost checkpoints, final state bit-identical")
