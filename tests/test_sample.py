"""``t2i sample``: every generator through the registry, imagefolder output, reproducible rows in a batched
run, family options (diffusers' names, derived from the typed options) passed or ignored with a note, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import train.sample
from t2i.diffusion.testing import make_tiny_pipeline


@pytest.fixture(scope="module")
def ldm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ldm") / "pipe"
    make_tiny_pipeline(seed=0).save_pretrained(folder)
    (folder / "t2i_sampling.json").write_text(json.dumps({"sampler": "ddim", "num_inference_steps": 2,
                                                          "guidance_scale": 2.0}))
    return folder


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_prompts_file_writes_an_imagefolder_with_reproducible_rows(ldm_folder, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n\na blue square\n")
    out = tmp_path / "out"
    assert train.sample.main(["--model", str(ldm_folder), "--prompts", str(prompts), "--n", "2", "--seed", "5",
                              "--out", str(out)]) == 0
    meta = rows(out)
    assert [(r["text"], r["seed"], r["image_index"]) for r in meta] == [
        ("a red circle", 5, 0), ("a red circle", 5, 1), ("a blue square", 6, 0), ("a blue square", 6, 1)]
    assert all((out / r["file_name"]).is_file() for r in meta) and (out / "grid.png").is_file()

    from t2i.data import load_dataset

    ds = load_dataset(str(out), size=16)  # the datasets' own imagefolder reader takes it back
    assert len(ds) == 4 and ds[2]["text"] == "a blue square"

    again = tmp_path / "again"  # one row again from --prompt and its seed (the run above was one batch)
    train.sample.main(["--model", str(ldm_folder), "--prompt", "a blue square", "--n", "2", "--seed", "6",
                       "--out", str(again)])
    np.testing.assert_array_equal(pixels(again / "images/00001.png"), pixels(out / meta[3]["file_name"]))
    one_by_one = tmp_path / "one_by_one"  # the same run, one prompt per generator call
    train.sample.main(["--model", str(ldm_folder), "--prompts", str(prompts), "--n", "2", "--seed", "5",
                       "--batch-size", "2", "--out", str(one_by_one)])
    for r in meta:
        np.testing.assert_array_equal(pixels(one_by_one / r["file_name"]), pixels(out / r["file_name"]))
    # regression: a second --prompt silently replaced the first; repeated, they are the lines of --prompts
    repeated = tmp_path / "repeated"
    train.sample.main(["--model", str(ldm_folder), "--prompt", "a red circle", "--prompt", "a blue square", "--n", "2",
                       "--seed", "5", "--out", str(repeated)])
    assert (repeated / "metadata.jsonl").read_text() == (out / "metadata.jsonl").read_text()
    for r in meta:
        np.testing.assert_array_equal(pixels(repeated / r["file_name"]), pixels(out / r["file_name"]))


def test_diffusion_options_reach_the_pipeline(ldm_folder, tmp_path):
    args = ["--model", str(ldm_folder), "--prompt", "a red circle", "--seed", "0"]
    train.sample.main([*args, "--out", str(tmp_path / "a")])  # folder defaults: ddim, 2 steps, guidance 2
    train.sample.main([*args, "--sampler", "dpm-solver++", "--num-inference-steps", "3", "--guidance-scale", "4",
                       "--negative-prompt", "a green cross", "--out", str(tmp_path / "b")])
    assert np.abs(pixels(tmp_path / "a/images/00000.png").astype(int)
                  - pixels(tmp_path / "b/images/00000.png").astype(int)).max() > 0
    with pytest.raises(SystemExit, match="num_inference_steps must be an integer"):
        train.sample.main([*args, "--num-inference-steps", "0", "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="sampler must be one of"):
        train.sample.main([*args, "--sampler", "plms", "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit):  # the old names are not flags any more: argparse lists the valid ones
        train.sample.main([*args, "--steps", "3", "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="text-conditional: give --prompt"):
        train.sample.main(["--model", str(ldm_folder), "--out", str(tmp_path / "d")])


def test_a_gan_gets_labels_and_a_note_for_diffusion_options(tmp_path, capsys):
    import train.cgan

    run = tmp_path / "cgan"
    train.cgan.main(["--data", "digits", "--steps", "2", "--batch-size", "8", "--n", "32", "--g-base", "8",
                     "--d-base", "8", "--out", str(run)])
    out = tmp_path / "out"
    assert train.sample.main(["--model", str(run / "model"), "--labels", "3,7", "--n", "2", "--num-inference-steps",
                              "20", "--guidance-scale", "3", "--out", str(out)]) == 0
    assert "--num-inference-steps, --guidance-scale ignored: family 'cgan'" in capsys.readouterr().err
    meta = rows(out)
    assert [r["label"] for r in meta] == [3, 3, 7, 7] and len(list((out / "images").glob("*.png"))) == 4
    assert [r["text"] for r in meta][::2] == ["3", "7"]  # the class names the model was saved with (digits)
    # the final sample grid of the run is exactly this command's grid (the same contract and seeds)
    grid = tmp_path / "grid"
    train.sample.main(["--model", str(run / "model"), "--labels", ",".join(map(str, range(10))), "--n", "8",
                       "--seed", "1", "--out", str(grid)])
    np.testing.assert_array_equal(pixels(grid / "grid.png"), pixels(sorted((run / "samples").glob("samples_*.png"))[-1]))
    with pytest.raises(SystemExit, match="class-conditional: give --labels"):
        train.sample.main(["--model", str(run / "model"), "--prompt", "a 3", "--out", str(tmp_path / "x")])


def test_an_unconditional_autoencoder_samples_n_images(tmp_path, capsys):
    import train.ae

    run = tmp_path / "ae"
    train.ae.main(["--data", "digits", "--steps", "2", "--batch-size", "8", "--n", "32", "--out", str(run)])
    out = tmp_path / "out"
    assert train.sample.main(["--model", str(run / "model"), "--n", "3", "--sampler", "ddim", "--out", str(out)]) == 0
    assert "--sampler ignored" in capsys.readouterr().err
    assert [r["text"] for r in rows(out)] == ["", "", ""]
    code = tmp_path / "code"  # a family option of the autoencoder: decode chosen codes
    train.sample.main(["--model", str(run / "model"), "--latents", json.dumps([[0.0] * 16]), "--out", str(code)])
    assert len(rows(code)) == 1


def test_prompts_from_stdin_and_from_a_pipe(ldm_folder, tmp_path, monkeypatch):
    """Regression: `--prompts <(...)` (a pipe, not a regular file) was refused as "does not exist"; `-` is stdin."""
    import io
    import os
    import threading

    monkeypatch.setattr("sys.stdin", io.StringIO("a red circle\n\na blue square\n"))
    assert train.sample.main(["--model", str(ldm_folder), "--prompts", "-", "--out", str(tmp_path / "stdin")]) == 0
    assert [r["text"] for r in rows(tmp_path / "stdin")] == ["a red circle", "a blue square"]
    fifo, out = tmp_path / "fifo", tmp_path / "fifo_out"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=("a green star\n",), daemon=True)  # the shell's `<(...)`
    writer.start()
    assert train.sample.main(["--model", str(ldm_folder), "--prompts", str(fifo), "--out", str(out)]) == 0
    writer.join()
    assert [r["text"] for r in rows(out)] == ["a green star"]
    with pytest.raises(SystemExit, match="is a folder: give a text file"):
        train.sample.main(["--model", str(ldm_folder), "--prompts", str(tmp_path), "--out", str(tmp_path / "x")])


def test_bad_command_lines_are_clear_errors(ldm_folder, tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        train.sample.main(["--model", str(ldm_folder), "--prompts", str(tmp_path / "none.txt"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--labels holds no label"):
        train.sample.main(["--model", str(ldm_folder), "--labels", " , ", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--n must be >= 1"):
        train.sample.main(["--model", str(ldm_folder), "--prompt", "x", "--n", "0", "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="no model at"):
        train.sample.main(["--model", str(tmp_path / "missing"), "--prompt", "x", "--out", str(tmp_path)])


def test_torch_threads_sets_torch_threads_before_sampling(ldm_folder, tmp_path, monkeypatch):
    import torch
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    train.sample.main(["--model", str(ldm_folder), "--prompt", "x", "--torch-threads", "3", "--out", str(tmp_path / "a")])
    assert calls == [3]
    with pytest.raises(SystemExit, match="--torch-threads must be >= 0"):
        train.sample.main(["--model", str(ldm_folder), "--prompt", "x", "--torch-threads", "-1", "--out", str(tmp_path)])


def test_old_sampling_flags_name_their_new_form(capsys):
    """Regression: `t2i sample --steps 5` failed with argparse's bare "unrecognized arguments"."""
    from train.sample import main

    with pytest.raises(SystemExit) as stop:
        main(["--model", "shapes-ldm", "--prompt", "a red circle", "--out", "/tmp/never", "--steps", "5"])
    assert stop.value.code == 2 and "--steps is now --num-inference-steps" in capsys.readouterr().err
