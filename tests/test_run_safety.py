"""Runs never lose each other's work (issue 14): run identity on checkpoints, set-aside instead of
overwrite, refused foreign resumes, --lr on resume, the divergence guard, crash-consistent folder
swaps and the start-up cleanup. Tiny MLP of ``t2i.runtime.demo``."""

from __future__ import annotations

import json
import os
import threading

import pytest
import torch

from t2i.io import CheckpointError, load_config_json, load_weights, recover_folder, save_model, swap_in
from t2i.runtime import DivergenceError, NonFiniteError
from t2i.runtime.checkpoint import identity_of_checkpoint, read_checkpoint, remove_stale_temp, step_dirs
from t2i.runtime.demo import DemoConfig, train
from t2i.runtime.identity import differences, identity_of


def cfg(out, **kw):
    base = dict(out=str(out), steps=8, batch_size=8, n=32, checkpoint_every=2, checkpoints_keep=2, log_every=2)
    return DemoConfig(**(base | kw))


def names(root):
    return [f.name for _, f in step_dirs(root)]


def test_identity_ignores_resumable_fields_and_names_differences():
    a = identity_of(cfg("a", steps=8, lr=1e-3), "demo")
    b = identity_of(cfg("y", steps=80, lr=5e-4, log_every=7, checkpoints_keep=9), "demo")
    assert a.same_run(b)  # how long, how fast, where and how watched: the same run
    c = identity_of(cfg("x", seed=1, hidden=64), "demo")
    assert not a.same_run(c) and differences(c, a) == ["seed: 0 -> 1", "hidden: 32 -> 64"]


def test_a_fresh_run_keeps_its_checkpoints_and_another_runs_survive(tmp_path, capsys):
    """Regression (issue 14, item 1): the new run's checkpoints were deleted right after being written
    (rotation kept the old run's higher steps), and --resume latest resumed the old run."""
    train(cfg(tmp_path, seed=0, steps=10))  # run A: keeps step_8, step_10
    with pytest.raises(NonFiniteError):  # run B, seed 1, "crashes" at step 5
        train(cfg(tmp_path, seed=1, steps=10, nan_at_step=5))
    root = tmp_path / "checkpoints"
    assert names(root) == ["step_000004", "step_000002"]  # B's own, kept
    earlier = root / "earlier"
    (folder_a,) = list(earlier.iterdir())
    assert folder_a.name.startswith("demo-seed0-") and names(folder_a) == ["step_000010", "step_000008"]
    assert "moved 2 checkpoint(s) of an earlier run" in capsys.readouterr().out

    run, _, _ = train(cfg(tmp_path, seed=1, steps=10, resume="latest"))  # B resumes B
    assert run.step == 10 and "resumed from" in capsys.readouterr().out
    assert identity_of_checkpoint(root / "step_000010").seed == 1

    with pytest.raises(CheckpointError, match=r"belongs to another run \(demo run with seed 1.*not to this one "
                                              r"\(demo run with seed 0.*seed: 1 -> 0.*own newest checkpoint was set "
                                              r"aside: --resume .*earlier/demo-seed0-.*/step_000010"):
        train(cfg(tmp_path, seed=0, steps=12, resume="latest"))  # A's settings against B's checkpoints
    with pytest.raises(CheckpointError, match="belongs to another run"):
        train(cfg(tmp_path, seed=1, steps=12, resume=str(folder_a / "step_000010")))
    run, _, _ = train(cfg(tmp_path, seed=0, steps=12, resume=str(folder_a / "step_000010")))  # A from its folder
    assert run.step == 12 and names(folder_a) == ["step_000010", "step_000008"]  # A's originals untouched
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 0


def test_a_refused_resume_writes_nothing(tmp_path):
    train(cfg(tmp_path, seed=0, steps=2))
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(CheckpointError):
        train(cfg(tmp_path, seed=3, steps=4, resume="latest"))
    assert (tmp_path / "config.json").read_text() == before


def test_resuming_from_an_earlier_step_sets_the_newer_ones_aside(tmp_path):
    train(cfg(tmp_path, steps=8, checkpoints_keep=4))
    root = tmp_path / "checkpoints"
    run, _, _ = train(cfg(tmp_path, steps=8, checkpoints_keep=4, resume=str(root / "step_000004")))
    assert run.step == 8 and names(root) == ["step_000008", "step_000006", "step_000004", "step_000002"]
    assert names(next((root / "earlier").iterdir())) == ["step_000008", "step_000006"]  # the abandoned line


def test_lr_on_resume_rescales_the_optimiser_and_says_so(tmp_path, capsys):
    """Regression: --lr with --resume was silently ignored while config.json recorded the new value."""
    train(cfg(tmp_path, steps=4, lr=1e-3, warmup=100))
    run, _, _ = train(cfg(tmp_path, steps=5, lr=4e-3, warmup=100, resume="latest"))
    assert "resuming with lr 0.004 instead of the checkpoint's 0.001" in capsys.readouterr().out
    states = read_checkpoint(tmp_path / "checkpoints" / "step_000005")[1]
    assert states["scheduler_0"]["base_lrs"] == [pytest.approx(4e-3)]
    # warm-up factor (step + 1) / 100 after 5 scheduler steps, on the new base lr
    assert states["optimizer_0"]["param_groups"][0]["lr"] == pytest.approx(4e-3 * 6 / 100)
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 4e-3


def test_a_loss_explosion_stops_the_run_like_a_nan(tmp_path):
    with pytest.raises(DivergenceError, match=r"the loss exploded at step 5: .*divergence_factor 10000 .*"
                                              r"step_000004 .*Lower --lr"):
        train(cfg(tmp_path, explode_at_step=5))
    assert names(tmp_path / "checkpoints") == ["step_000004", "step_000002"] and not (tmp_path / "model").exists()
    run, _, _ = train(cfg(tmp_path, divergence_factor=0, explode_at_step=5, resume="latest"))  # 0 = off
    assert run.step == 8


@pytest.mark.slow
def test_dcgan_with_an_absurd_lr_stops_instead_of_saving_a_model(tmp_path):
    """Regression: dcgan with lr 1000 trained to a loss of 9e24 and saved it as a model."""
    from train.dcgan import main

    with pytest.raises(DivergenceError, match="the loss exploded"):
        main(["--data", "digits", "--steps", "20", "--lr", "1000", "--g-base", "8", "--d-base", "8",
              "--batch-size", "16", "--checkpoint-every", "0", "--out", str(tmp_path)])
    assert not (tmp_path / "model").exists()


def test_save_model_is_never_missing_while_it_is_rewritten(tmp_path):
    """Regression (item 7): the old folder was moved aside before the new one came in."""
    folder = save_model(tmp_path / "model", torch.nn.Linear(4, 4), {"family": "demo", "version": 0})
    (folder / "README.md").write_text("card")
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(load_config_json(folder)["version"])
            except Exception as err:  # a missing or half-written folder
                seen.append(repr(err))

    thread = threading.Thread(target=reader)
    thread.start()
    for version in range(1, 40):
        save_model(folder, torch.nn.Linear(4, 4), {"family": "demo", "version": version})
    stop.set()
    thread.join()
    assert seen and all(isinstance(v, int) for v in seen), [v for v in seen if not isinstance(v, int)][:3]
    assert load_config_json(folder)["version"] == 39 and (folder / "README.md").read_text() == "card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_the_fallback_swap_is_repaired_after_a_crash(tmp_path, monkeypatch):
    """Where the atomic exchange is unavailable, a crash between the two renames leaves only the
    set-aside copy; the next save (or run start) moves it back instead of deleting it."""
    import t2i.io as io

    monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    folder = save_model(tmp_path / "model", torch.nn.Linear(2, 2), {"family": "demo", "version": 1})
    save_model(folder, torch.nn.Linear(2, 2), {"family": "demo", "version": 2})  # fallback path works
    assert load_config_json(folder)["version"] == 2
    aside = tmp_path / ".model.old-crash"
    folder.rename(aside)  # as if killed right after moving the old folder aside
    recover_folder(folder)
    assert load_config_json(folder)["version"] == 2 and not aside.exists()
    train(cfg(tmp_path / "run", steps=2))
    ck = tmp_path / "run" / "checkpoints"
    (ck / "step_000002").rename(ck / ".step_000002.old-crash")
    remove_stale_temp(ck)  # start-up cleanup: restores, never deletes, the only copy
    assert read_checkpoint(ck / "step_000002")[0] == 2


def test_swap_in_exchanges_atomically(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f").write_text("new")
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "f").write_text("old")
    swap_in(tmp_path / "new", tmp_path / "final")
    assert (tmp_path / "final" / "f").read_text() == "new" and not (tmp_path / "new").exists()


def test_pickles_have_no_command_line_switch(tmp_path):
    """Regression (item 8): README documented an --allow-pickle option that did not exist."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert "--allow-pickle" not in (root / "README.md").read_text()
    assert "--allow-pickle" not in (root / "t2i" / "io.py").read_text()
    torch.save({"w": torch.ones(1)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"refusing to load pickle .* allow_pickle=True\)"):
        load_weights(tmp_path / "w.pt")


def test_save_model_drops_temp_folders_of_killed_saves_but_not_of_live_ones(tmp_path):
    """Regression: a save killed mid-write left `.model.tmp-*` folders beside the model forever."""
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs
    dead = tmp_path / f".model.tmp-{gone.pid}-abc"
    live = tmp_path / f".model.tmp-{os.getppid()}-xyz"  # our parent is alive
    old_style = tmp_path / ".model.tmp-q1w2e3"
    for folder in (dead, live, old_style):
        folder.mkdir()
    save_model(tmp_path / "model", {"w": torch.ones(2)}, {"family": "test"})
    assert not dead.exists() and not old_style.exists() and live.exists()
    assert torch.equal(load_weights(tmp_path / "model")["w"], torch.ones(2))
