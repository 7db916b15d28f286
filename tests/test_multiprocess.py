"""The runtime under two CPU processes (torchrun + gloo, started by accelerate launch).

accelerate 1.x's ``launch --cpu --num_processes 2`` starts ONE process unless an MPI
hostfile is given, so the test uses ``--multi_gpu`` (torchrun) and the trainer's
``--cpu true``, which makes accelerate use gloo on the CPU even where GPUs exist.
"""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from t2i.runtime.checkpoint import read_checkpoint
from t2i.runtime.demo import DemoConfig, train

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(steps=6, batch_size=16, n=64, dropout=0.0, input_noise=0.0, checkpoint_every=3, log_every=2,
                sample_every=3, ema_decay=0.9, cpu=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(out: Path, **settings) -> subprocess.CompletedProcess:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), str(ROOT / "tests" / "support" / "tiny_trainer.py"),
           f"--out={out}", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=150)


@pytest.mark.slow
def test_two_process_run_matches_one_process_with_the_same_global_batch(tmp_path):
    two = tmp_path / "two"
    proc = launch_two(two, **SETTINGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # only the main process wrote: one metrics row per log, one grid per sample, one final model
    rows = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6] and all(math.isfinite(r["loss"]) for r in rows)
    assert sorted(p.name for p in (two / "samples").iterdir()) == ["weights_000003.png", "weights_000006.png"]
    assert (two / "model" / "model.safetensors").is_file() and (two / "curves.png").is_file()
    step, states = read_checkpoint(two / "checkpoints" / "step_000006")
    assert step == 6 and states["trainer"]["num_processes"] == 2
    assert {"rng_0", "rng_1"} <= set(states)  # each process's RNG, gathered to the main one
    assert not torch.equal(states["rng_0"]["torch"], states["rng_1"]["torch"])  # seeded per process

    # 2 processes x micro-batch 8 == 1 process x 2 accumulated micro-batches of 8: same samples per step
    _, model, _ = train(DemoConfig(out=str(tmp_path / "one"), grad_accum=2, **SETTINGS))
    for key, p in run_state(model).items():
        torch.testing.assert_close(states["model_0"][key], p, rtol=1e-5, atol=1e-6)

    # a 2-process checkpoint resumes in one process (position saved in samples)
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    os.replace(two / "checkpoints" / "step_000003", resumed / "checkpoints" / "step_000003")
    _, model, _ = train(DemoConfig(out=str(resumed), grad_accum=2, resume="latest", **SETTINGS))
    for key, p in run_state(model).items():
        torch.testing.assert_close(states["model_0"][key], p, rtol=1e-5, atol=1e-6)


def run_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.state_dict().items()}
