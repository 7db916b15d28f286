"""Ctrl-C (or SIGTERM) during training loses nothing: the step under way finishes, a checkpoint of it is written,
the command says how to continue, and continuing ends with the weights of a run never interrupted.

Regression: a Ctrl-C or a SIGTERM (a cluster's preemption) ended a run with its steps since the last
``--checkpoint-every`` lost (by default every step of most trainers: 1000 steps for the GANs, none for the others)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import torch

from t2i.io import load_weights
from train.cli import main as cli

STEPS = ["--data", "digits", "--hidden", "32", "--batch-size", "8", "--n", "64", "--log-every", "1",
         "--steps", "600"]


def at_a_terminal() -> None:
    """Ctrl-C as at a terminal: a test suite started in the background by a shell ignores SIGINT, and so would
    its children (the run keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_saves_the_finished_steps_and_the_named_command_continues_bit_identically(tmp_path):
    assert cli(["train", "gan", *STEPS, "--out", str(tmp_path / "straight")]) == 0

    run = tmp_path / "stopped"
    child = subprocess.Popen([sys.executable, "-m", "train.cli", "train", "gan", *STEPS, "--out", str(run)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"}, preexec_fn=at_a_terminal)
    metrics, deadline = run / "metrics.jsonl", time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 20) and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    message = err.strip().splitlines()[-1]
    assert "t2i train gan: interrupted by SIGINT at step" in message and "of 600: checkpoint" in message, err
    stopped_at = int(message.split(" at step ")[1].split()[0])
    assert 20 <= stopped_at < 600 and not (run / "model").exists()
    assert (run / "checkpoints" / f"step_{stopped_at:06d}" / "checkpoint.json").is_file()
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, stopped_at + 1))  # every finished step logged, none past the checkpoint

    command = shlex.split(message.split("`")[1])
    assert command[:3] == ["t2i", "train", "gan"] and "--resume" in command
    assert cli(command[1:]) == 0  # from the folder the run was started in: its config's paths hold
    straight, continued = load_weights(tmp_path / "straight" / "model"), load_weights(run / "model")
    assert straight.keys() == continued.keys()
    for key in straight:
        torch.testing.assert_close(continued[key], straight[key], rtol=0, atol=0, msg=key)
