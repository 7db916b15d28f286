"""CLI fuzz: ordinary mistakes with the `t2i` command end in one message that names the fix,
exit status 2, and never a traceback (issue 14: 32 of 56 mistakes printed tracebacks).

Each case runs the real dispatcher in-process (``train.cli.main``); a few run the installed
console script in a subprocess too. Every case fails before any training starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from t2i.io import save_model
from t2i.runtime.checkpoint import write_checkpoint
from t2i.runtime.identity import RunIdentity
from train.cli import main as cli

# (argv with {tmp} for the scratch folder, a regex the message must match: it names the fix)
MISTAKES = [
    # the dispatcher
    (["trian"], r"unknown command 'trian'; choose one of"),
    (["train", "dcgna"], r"unknown name 'dcgna'; choose one of"),
    (["study", "latent"], r"unknown name 'latent'; choose one of"),
    # options and config files
    (["train", "dcgan", "--stpes", "5"], r"unknown option\(s\) \['--stpes'.*valid options: .*--steps"),
    (["train", "dcgan", "--steps", "five"], r"steps must be int, got 'five'"),
    (["train", "dcgan", "--steps", "1.5"], r"steps must be int, got '1.5'"),
    (["train", "dcgan", "--cpu", "maybe"], r"cpu must be true or false, got 'maybe'"),
    (["train", "clip", "--preset", "huge"], r"argument --preset: invalid choice: 'huge' \(choose from"),
    (["train", "dcgan", "--config", "{tmp}/missing.json"], r"--config '.*missing.json': no such file"),
    (["train", "dcgan", "--config", "{tmp}/bad.json"], r"bad.json' is not valid JSON: .* at line 1, column"),
    (["train", "dcgan", "--config", "{tmp}/list.json"], r"must hold a JSON object of key: value settings, not a list"),
    (["train", "dcgan", "--config", "{tmp}/unknown_key.json"], r"unknown key\(s\) \['stesp'\] .*valid keys: "),
    (["train", "dcgan", "--config", "{tmp}/latin1.json"], r"is not UTF-8 text"),
    (["train", "dcgan", "--config", "{tmp}/wrong_type.json"], r"steps must be int, got 'many'"),
    # values the run refuses
    (["train", "dcgan", "--steps", "0"], r"steps must be >= 1, got 0"),
    (["train", "dcgan", "--batch-size", "0"], r"batch_size must be >= 1, got 0"),
    (["train", "dcgan", "--lr", "-1"], r"lr must be > 0, got -1"),
    (["train", "dcgan", "--lr", "nan"], r"lr must be > 0, got nan"),
    (["train", "dcgan", "--mixed-precision", "fp8"], r"mixed_precision must be one of \['no', 'fp16', 'bf16'\]"),
    (["train", "dcgan", "--ema-decay", "1.5"], r"ema_decay must be in \[0, 1\)"),
    (["train", "dcgan", "--grad-accum", "3"], r"batch_size \(64\) must be divisible by num_processes \* grad_accum"),
    (["train", "dcgan", "--checkpoint-every", "-1"], r"checkpoint_every must be >= 0 \(0 = off\)"),
    (["train", "dcgan", "--divergence-factor", "-1"], r"divergence_factor must be >= 0 \(0 = off"),
    (["train", "dcgan", "--loss", "wasserstein"], r"loss must be one of \['hinge', 'least-squares', 'minimax'"),
    (["train", "dcgan", "--d-steps", "0"], r"d_steps must be >= 1"),
    (["train", "dcgan", "--size", "0"], r"size must be >= 1, got 0"),
    (["train", "dcgan", "--out", "{tmp}/a_file"], r"--out .*a_file is a file: give a folder"),
    # data
    (["train", "dcgan", "--data", "{tmp}/nowhere"], r"data source '.*nowhere' \(not found\); use 'shapes', 'digits'"),
    (["train", "dcgan", "--data", "{tmp}/empty_dir"], r"\(not a recognised dataset: no images in it\); use 'shapes'"),
    (["train", "dcgan", "--data", "{tmp}/notes.txt"], r"\(not a recognised dataset\); use 'shapes', 'digits'"),
    (["train", "dcgan", "--data", "{tmp}/bad_data", "--strict"], r"strict mode: .*run without --strict to skip"),
    (["train", "dcgan", "--data", "{tmp}/all_bad"], r"no usable items in .*: fix the items listed"),
    (["train", "dcgan", "--data", "{tmp}/nocolumn.csv"], r"no 'filepath' column \(set --image-column"),
    (["train", "dcgan", "--data", "{tmp}/nocaption"], r"no 'text' column \(set --caption-column"),
    (["train", "dcgan", "--data", "shapes", "--n", "-1"], r"n must be a positive number of scenes"),
    # resume
    (["train", "dcgan", "--resume", "{tmp}/nowhere"], r"no such checkpoint folder; give a step_N folder .* --resume latest"),
    (["train", "dcgan", "--resume", "{tmp}/a_file"], r"no such checkpoint folder"),
    (["train", "dcgan", "--resume", "{tmp}/partial"], r"not a complete checkpoint.*--resume latest"),
    (["train", "dcgan", "--resume", "latest", "--out", "{tmp}/foreign"],
     r"belongs to another run \(dcgan run with seed 5.*not to this one \(dcgan run with seed 0.*seed: 5 -> 0"),
    (["train", "dcgan", "--resume", "{tmp}/foreign/checkpoints/step_000002"],
     r"belongs to another run .*drop --resume"),
    # models
    (["sample", "--model", "{tmp}/nowhere", "--prompt", "x", "--out", "{tmp}/o"],
     r"no model at '.*nowhere': no such file or folder; give an existing folder, a built-in name"),
    (["sample", "--model", "runs/nope", "--prompt", "x", "--out", "{tmp}/o"], r"no model at 'runs/nope': no such file"),
    (["sample", "--model", "nobody/nothing", "--prompt", "x", "--out", "{tmp}/o"],
     r"as a hub id it could not be loaded \(HF_HUB_OFFLINE is set.*give an existing folder"),
    (["sample", "--model", "{tmp}/noarch", "--prompt", "x", "--out", "{tmp}/o"],
     r"config.json lacks the key 'arch' .*re-save the model with its trainer"),
    (["sample", "--model", "{tmp}/badjson", "--prompt", "x", "--out", "{tmp}/o"], r"is not valid JSON.*re-save"),
    (["sample", "--model", "{tmp}/martian", "--prompt", "x", "--out", "{tmp}/o"],
     r"names family 'martian'; known families: "),
    (["sample", "--model", "{tmp}/stopped", "--prompt", "x", "--out", "{tmp}/o"],
     r"is a training run that stopped before saving its model or a checkpoint; train it again with `t2i train"),
    (["sample", "--model", "{tmp}/stopped_ae", "--n", "1", "--out", "{tmp}/o"],  # trainer ae-conv: command ae
     r"stopped before saving its model .*step_000003.*finish it with `t2i train ae --config .*stopped_ae/config.json "
     r"--resume latest`"),
    (["sample", "--model", "{tmp}/finished_clip", "--prompt", "x", "--out", "{tmp}/o"],  # not "stopped before saving"
     r"finished_clip is a `t2i train clip` run, not an image generator: give it where that kind of model is taken"),
    (["train", "ldm", "--init", "{tmp}/stopped", "--out", "{tmp}/o"], r"stopped/config.json`"),
    (["train", "ldm", "--vae", "{tmp}/stopped", "--out", "{tmp}/o"], r"stopped/config.json`"),
    (["train", "ldm", "--init", "shapes-ldm", "--clip", "{tmp}/stopped", "--out", "{tmp}/o"], r"stopped/config.json`"),
    (["train", "tgan", "--clip", "{tmp}/stopped", "--out", "{tmp}/o"], r"stopped/config.json`"),
    (["train", "clip", "--init", "{tmp}/stopped", "--out", "{tmp}/o"], r"stopped/config.json`"),
    (["eval", "clip", "--model", "{tmp}/stopped"], r"stopped/config.json`"),
    (["card", "{tmp}/stopped"], r"stopped/config.json`"),
    (["sample", "--model", "{tmp}/empty_dir", "--prompt", "x", "--out", "{tmp}/o"],
     r"is not a saved model: .*give a folder written by `t2i train"),
    (["sample", "--model", "{tmp}/truncated", "--prompt", "x", "--out", "{tmp}/o"],
     r"not a readable safetensors file .*re-save the model"),
    (["sample", "--model", "{tmp}/pickled", "--prompt", "x", "--out", "{tmp}/o"],
     r"has no model.safetensors, only \['w.pt'\]: pickles are refused.*convert"),
    (["sample", "--prompt", "x", "--out", "{tmp}/o"], r"the following arguments are required: --model"),
    (["sample", "--model", "{tmp}/nowhere", "--prompt", " ", "--out", "{tmp}/o"],  # refused before loading the model
     r"t2i sample: error: --prompt is empty: give the text"),
    (["sample", "--model", "digits-vae", "--labels", " ,", "--out", "{tmp}/o"], r"--labels holds no label"),
    (["sample", "--model", "digits-vae", "--n", "0", "--out", "{tmp}/o"], r"--n must be >= 1"),
    # latent diffusion components
    (["train", "ldm"], r"give --vae"),
    (["train", "ldm", "--vae", "{tmp}/nowhere"], r"no VAE at '.*nowhere': no such file or folder"),
    (["train", "ldm", "--vae", "runs/nope"], r"no VAE at 'runs/nope': no such file or folder"),
    (["train", "ldm", "--vae", "nobody/nothing"], r"no VAE at 'nobody/nothing'.*as a hub id it could not be loaded"),
    (["train", "ldm", "--vae", "shapes-vae-kl", "--caption-dropout", "1.5"], r"--caption-dropout must be in \[0, 1\)"),
    # other commands
    (["data", "shards", "{tmp}/nowhere", "--out", "{tmp}/sh"], r"not found.*use 'shapes', 'digits'"),
    (["eval", "--model", "digits-vae", "--prompts", "shapes-test-2", "--out", "{tmp}/e"],
     r"is neither a file nor shapes:SPLIT:N / digits:N"),
    (["app", "--port", "http"], r"port must be int, got 'http'"),
    (["app", "--max-outputs-mb", "0"], r"max_outputs_mb must be > 0"),
    (["app", "--gan", "{tmp}/nowhere"], r"no model at '.*nowhere': no such file or folder"),
    (["train", "cvae", "--conditioning", "none"], r"--conditioning must be 'label' or 'text'"),
    (["train", "tgan", "--clip", "{tmp}/nowhere", "--steps", "1"], r"no text encoder .*'.*nowhere'.*no such file"),
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """The files the mistakes point at: bad configs, bad data, foreign checkpoints, broken model folders."""
    tmp = tmp_path_factory.mktemp("mistakes")
    (tmp / "bad.json").write_text('{"steps": 3,,}')
    (tmp / "list.json").write_text("[1, 2]")
    (tmp / "unknown_key.json").write_text('{"stesp": 3}')
    (tmp / "latin1.json").write_bytes(b'{"data": "caf\xe9"}')
    (tmp / "wrong_type.json").write_text('{"steps": "many"}')
    (tmp / "a_file").write_text("not a folder")
    (tmp / "notes.txt").write_text("hello")
    (tmp / "empty_dir").mkdir()
    (tmp / "partial").mkdir()
    (tmp / "partial" / "model_0.json").write_text("{}")
    from PIL import Image

    for name, rows in (("bad_data", [("good.png", "a good image"), ("broken.png", "a broken one")]),
                       ("all_bad", [("broken.png", "a broken one")])):
        folder = tmp / name
        folder.mkdir()
        Image.new("RGB", (8, 8)).save(folder / "good.png")
        (folder / "broken.png").write_bytes(b"not a png")
        (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f, "text": t}) + "\n" for f, t in rows))
    (tmp / "nocaption").mkdir()
    Image.new("RGB", (8, 8)).save(tmp / "nocaption" / "a.png")
    (tmp / "nocaption" / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "caption": "x"}) + "\n")
    (tmp / "nocolumn.csv").write_text("path,title\na.png,x\n")
    identity = RunIdentity("dcgan", 5, "0123456789ab", {"data": "shapes"})
    write_checkpoint(tmp / "foreign" / "checkpoints", 2, {"trainer": {"step": 2}}, keep=2, identity=identity)
    net = torch.nn.Linear(2, 2)
    save_model(tmp / "noarch", net, {"family": "dcgan"})
    save_model(tmp / "badjson", net, {"family": "dcgan"})
    (tmp / "badjson" / "config.json").write_text("{family: dcgan")
    save_model(tmp / "martian", net, {"family": "martian"})
    arch = {"latent_dim": 8, "channels": 3, "size": 16, "g_base": 8, "d_base": 8}
    save_model(tmp / "truncated", net, {"family": "dcgan", "arch": arch})
    weights = tmp / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    (tmp / "pickled").mkdir()
    (tmp / "pickled" / "config.json").write_text(json.dumps({"family": "dcgan", "arch": arch}))
    torch.save(net.state_dict(), tmp / "pickled" / "w.pt")
    (tmp / "stopped").mkdir()  # a run killed before its first checkpoint: its own config.json, no model
    (tmp / "stopped" / "config.json").write_text(json.dumps({"out": "stopped", "steps": 9, "resume": ""}))
    (tmp / "stopped_ae").mkdir()  # killed after its step-3 checkpoint
    (tmp / "stopped_ae" / "config.json").write_text(json.dumps({"out": "stopped_ae", "steps": 9, "resume": ""}))
    write_checkpoint(tmp / "stopped_ae" / "checkpoints", 3, {"trainer": {"step": 3}}, keep=2,
                     identity=RunIdentity("ae-conv", 0, "0123456789ab", {}))
    (tmp / "finished_clip" / "model").mkdir(parents=True)  # a finished CLIP run: its model, and its checkpoint
    (tmp / "finished_clip" / "config.json").write_text(json.dumps({"out": "finished_clip", "steps": 3, "resume": ""}))
    (tmp / "finished_clip" / "model" / "open_clip_config.json").write_text("{}")
    write_checkpoint(tmp / "finished_clip" / "checkpoints", 3, {"trainer": {"step": 3}}, keep=2,
                     identity=RunIdentity("clip", 0, "0123456789ab", {}))
    (tmp / "runs").mkdir()  # so that "runs/nope" is a missing run folder, not a hub id
    return tmp


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli(argv)
    except SystemExit as exit_:  # argparse errors exit with status 2 after printing usage + message
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("argv,fix", MISTAKES, ids=[" ".join(a)[:60] for a, _ in MISTAKES])
def test_a_mistake_gets_one_message_that_names_the_fix(argv, fix, scratch, capsys, monkeypatch):
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = [a.replace("{tmp}", str(scratch)) for a in argv]
    code, output = run_cli(argv, capsys)
    assert code == 2, output
    assert "Traceback" not in output, output
    import re
    assert re.search(fix, output, flags=re.S), output


def test_there_are_at_least_fifty_mistakes():
    assert len(MISTAKES) >= 50


def test_debug_shows_the_traceback(scratch, capsys):
    with pytest.raises(ValueError, match="steps must be >= 1"):
        cli(["train", "dcgan", "--steps", "0", "--out", str(scratch / "debug"), "--debug"])


@pytest.mark.slow
def test_the_installed_command_prints_one_line(scratch):
    """The console script as a user runs it: exit status 2, one line on stderr, nothing on stdout."""
    t2i = Path(sys.executable).with_name("t2i")
    command = [str(t2i)] if t2i.exists() else [sys.executable, "-m", "train.cli"]
    result = subprocess.run([*command, "train", "dcgan", "--data", str(scratch / "nowhere"), "--out",
                             str(scratch / "x")], capture_output=True, text=True, cwd=scratch)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("t2i train dcgan: error: data source"), result.stderr


def test_a_wrong_data_path_for_clip_is_reported_before_any_model_is_built(scratch, capsys, caplog, monkeypatch):
    # regression: `t2i train clip --data nosuchdir` logged open_clip's "initialized randomly" before the error
    monkeypatch.chdir(scratch)
    code, output = run_cli(["train", "clip", "--data", str(scratch / "nowhere"), "--out", str(scratch / "c")], capsys)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert code == 2 and "data source" in output and "initialized randomly" not in output + logged, output + logged
