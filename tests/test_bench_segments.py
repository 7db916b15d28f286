"""t2i bench --segment-minutes: a long stage is trained in checkpointed segments; a bench killed inside one
resumes from the last segment's checkpoint, carries what the finished segments cost, and ends with the weights of
a stage trained whole."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

import train.cvae
from t2i.bench.config import BenchConfig, resolve
from t2i.bench.cost import PARTIAL_STAGE, partial_stage, record_partial_stage
from t2i.bench.families import FAMILIES
from train.bench import segment_ends, train_stages, trained_to

STAGES = [2, 6]


def _argv(folder: Path) -> list[str]:
    return ["--data=digits", "--batch-size=16", "--lr=1e-3", "--seed=0", "--checkpoint-every=0",
            "--checkpoints-keep=1", "--sample-every=0", "--log-every=10", "--n=64", "--cpu=true",
            "--conditioning=label", "--arch=conv", f"--out={folder}"]


def _train(folder: Path, segment_s: float) -> None:
    train_stages(FAMILIES["cvae-label"], folder, _argv(folder), STAGES, 1e-3, 0, segment_s)


def test_segment_ends():
    assert segment_ends(0, 10, 0) == [10]
    assert segment_ends(4, 10, 3) == [7, 10]
    assert segment_ends(4, 10, 6) == [10]  # a segment as long as the stage: trained whole
    assert segment_ends(4, 10, 2) == [6, 8, 10]


def test_segment_minutes_are_checked():
    with pytest.raises(ValueError, match="--segment-minutes takes CPU-minutes"):
        resolve(BenchConfig(quick=True, segment_minutes=-1))


def test_a_stage_killed_between_segments_resumes_and_ends_as_one_trained_whole(tmp_path, monkeypatch, capsys):
    _train(tmp_path / "whole", segment_s=0)

    calls, real_main = [], train.cvae.main

    def killed_at_step_5(argv):
        calls.append(next(a for a in argv if a.startswith("--steps=")))
        if calls[-1] == "--steps=5":
            raise KeyboardInterrupt  # the bench dies here: the segments to step 4 are done
        return real_main(argv)

    monkeypatch.setattr(train.cvae, "main", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "run", segment_s=1e-3)  # the first stage's rate makes every segment one step
    assert calls == ["--steps=2", "--steps=3", "--steps=4", "--steps=5"]  # the first stage has no rate: whole
    carried = partial_stage(tmp_path / "run", 6)
    assert carried["step"] == 4 and carried["cpu_s"] > 0
    assert "6" not in json.loads((tmp_path / "run" / "bench_stage_time.json").read_text())

    monkeypatch.setattr(train.cvae, "main", real_main)
    capsys.readouterr()
    cpu = time.process_time()
    _train(tmp_path / "run", segment_s=1e-3)
    rerun_cpu = time.process_time() - cpu
    assert "resuming it from its checkpoint at step 4" in capsys.readouterr().out
    times = json.loads((tmp_path / "run" / "bench_stage_time.json").read_text())
    assert rerun_cpu < times["6"]["cpu_s"] <= carried["cpu_s"] + rerun_cpu  # the carried segments + those trained now
    assert not (tmp_path / "run" / PARTIAL_STAGE).exists()
    for steps in STAGES:
        name = f"stage-{steps:06d}/model.safetensors"
        ours, whole = load_file(tmp_path / "run" / name), load_file(tmp_path / "whole" / name)
        assert ours.keys() == whole.keys() and all((ours[k] == whole[k]).all() for k in ours)


def test_a_bench_stopped_by_sigterm_logs_its_invocation_as_interrupted(tmp_path, monkeypatch, capsys):
    """SIGTERM is handled as Ctrl-C: the bench stops (exit 130), says how to go on and logs its wall time, which
    the next report on that --work counts (its finished stages and segments are kept)."""
    import train.bench

    def terminated(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler interrupts this

    monkeypatch.setattr(train.bench.Bench, "run", terminated)
    argv = ["--quick", "--families=cvae", f"--out={tmp_path / 'out'}", f"--work={tmp_path / 'work'}"]
    start = time.perf_counter()
    assert train.bench.main(argv) == 130 and time.perf_counter() - start < 20
    assert "interrupted after" in capsys.readouterr().err
    logged = json.loads((tmp_path / "work" / "invocations.json").read_text())
    assert [(e["command"], e["interrupted"]) for e in logged] == [(train.bench.command_line(argv), True)]
    assert signal.getsignal(signal.SIGTERM) is not train.bench._interrupt  # the handler is put back


def test_the_work_left_counts_from_the_last_segment(tmp_path):
    """The workers' costliest-first order counts a run's steps left from its last trained segment."""
    assert trained_to(tmp_path, [10, 20, 40], [10, 20]) == 20
    record_partial_stage(tmp_path, 40, 35, 60.0, 61.0)
    assert trained_to(tmp_path, [10, 20, 40], [10, 20]) == 35
    assert trained_to(tmp_path, [10, 20, 40, 80], [10]) == 10  # the record is of another stage
    assert trained_to(tmp_path, [10, 20], [10, 20]) == 20
