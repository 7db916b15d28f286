"""Two-step runs of every GAN command, exact resume, and the two GAN studies in their quick modes."""

import json

import pytest
import torch

from gan_baselines.registry import load_generator
from t2i.io import load_weights

TINY = ["--steps", "2", "--batch-size", "8", "--n", "32", "--log-every", "1", "--checkpoint-every", "0"]
GAME_KEYS = {"d_real", "d_fake", "value", "loss_d", "loss_g"}


def _check_run(out, family, **generate):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert GAME_KEYS <= set(rows[-1]), rows[-1]  # D(x), D(G(z)), both losses and V are logged
    assert (out / "game.png").is_file() and list((out / "samples").glob("samples_*.png"))
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["family"] == family
    images = load_generator(out / "model").generate(seed=0, **generate)
    assert images and images[0].size == (32, 32)
    return config


def test_train_gan_two_steps(tmp_path):
    from train import gan

    assert gan.main(TINY + ["--data", "digits", "--hidden", "32", "--loss", "minimax", "--out", str(tmp_path)]) == 0
    assert _check_run(tmp_path, "gan")["loss"] == "minimax"


def test_train_dcgan_two_steps(tmp_path):
    from train import dcgan

    assert dcgan.main(TINY + ["--data", "shapes", "--g-base", "8", "--d-base", "8", "--loss", "hinge",
                              "--out", str(tmp_path)]) == 0
    _check_run(tmp_path, "dcgan")


def test_train_cgan_two_steps(tmp_path):
    from train import cgan

    assert cgan.main(TINY + ["--data", "digits", "--g-base", "8", "--d-base", "8", "--disc", "projection",
                             "--eval-n", "2", "--out", str(tmp_path)]) == 0
    config = _check_run(tmp_path, "cgan", labels=[0, 9])
    assert config["arch"]["num_classes"] == 10 and config["arch"]["disc"] == "projection"
    scores = json.loads((tmp_path / "eval.json").read_text())  # scored by the digits classifier
    assert scores["n"] == 20 and 0 <= scores["accuracy"] <= 1


def test_train_tgan_two_steps_with_tiny_clip(tmp_path):
    from t2i.clip.testing import make_tiny_clip
    from train import tgan

    clip = make_tiny_clip(tmp_path / "clip")
    out = tmp_path / "run"
    assert tgan.main(TINY + ["--data", "shapes", "--clip", str(clip), "--g-base", "8", "--d-base", "8",
                             "--clip-weight", "0.1", "--eval-n", "4", "--out", str(out)]) == 0
    config = _check_run(out, "tgan", prompts=["a large red circle in the center"])
    assert config["clip"] == str(clip.resolve())
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"d_wrong", "clip_term"} <= set(row)  # matching-aware D and the auxiliary CLIP term ran
    assert len((out / "samples" / "prompts.txt").read_text().splitlines()) == 8
    scores = json.loads((out / "eval.json").read_text())  # judged by the shapes evaluator
    assert scores["all"]["n"] == 4 and 0 <= scores["all_correct"] <= 1


def test_text_gan_grids_draw_distinct_captions(tmp_path):
    """Regression: the grids drew the first 8 items' captions, so a folder with several images per caption
    drew the same row several times; now the first 8 distinct ones."""
    from PIL import Image

    from t2i.clip.testing import make_tiny_clip
    from train import tgan

    data = tmp_path / "pairs"
    data.mkdir()
    for i in range(20):  # two images per caption
        Image.new("RGB", (32, 32), (12 * i, 80, 160)).save(data / f"{i}.png")
    (data / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": f"thing {i // 2}"}) + "\n"
                                                 for i in range(20)))
    out = tmp_path / "run"
    assert tgan.main(TINY + ["--data", str(data), "--n", "20", "--clip", str(make_tiny_clip(tmp_path / "clip")),
                             "--g-base", "8", "--d-base", "8", "--out", str(out)]) == 0
    assert (out / "samples" / "prompts.txt").read_text().splitlines() == [f"thing {k}" for k in range(8)]


def test_bad_options_are_errors(tmp_path):
    from train import gan

    with pytest.raises(ValueError, match="non-saturating"):
        gan.main(["--loss", "wasserstein", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="d_steps"):
        gan.main(["--d-steps", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):  # unknown option: argparse error listing the valid ones
        gan.main(["--k", "2", "--out", str(tmp_path)])


def test_resume_continues_at_the_right_step(tmp_path):
    """4 steps straight == 2 steps, then --resume latest to 4 (the generator updates every 2nd step)."""
    from train import gan

    common = ["--data", "digits", "--hidden", "32", "--batch-size", "8", "--n", "64", "--d-steps", "2",
              "--log-every", "1", "--checkpoint-every", "2"]
    gan.main(common + ["--steps", "4", "--out", str(tmp_path / "straight")])
    gan.main(common + ["--steps", "2", "--out", str(tmp_path / "split")])
    assert (tmp_path / "split" / "checkpoints" / "step_000002" / "checkpoint.json").is_file()
    gan.main(common + ["--steps", "4", "--resume", "latest", "--out", str(tmp_path / "split")])
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    a, b = load_weights(tmp_path / "straight" / "model"), load_weights(tmp_path / "split" / "model")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_stopped_run_names_the_command_that_finishes_it(tmp_path, capsys):
    """Regression: sampling a run that stopped before saving its model said "config.json names family None"."""
    import shlex
    import shutil

    from train.cli import main as cli

    run = tmp_path / "run"
    common = ["--data", "digits", "--hidden", "32", "--batch-size", "8", "--n", "64", "--log-every", "1"]
    assert cli(["train", "gan", *common, "--steps", "4", "--checkpoint-every", "2", "--out", str(run)]) == 0
    shutil.rmtree(run / "model")  # as if killed after step 3: the step-2 checkpoint is its newest
    shutil.rmtree(run / "checkpoints" / "step_000004")
    capsys.readouterr()
    assert cli(["sample", "--model", str(run), "--n", "1", "--out", str(tmp_path / "s")]) == 2
    message = capsys.readouterr().err
    assert "stopped before saving its model (its newest checkpoint: step_000002)" in message, message
    command = shlex.split(message.split("`")[1])
    assert command[:3] == ["t2i", "train", "gan"]
    assert cli(command[1:]) == 0  # the named command finishes the run: its model samples
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 4 and load_generator(run).generate(seed=0)


def test_gan_optimum_quick_reaches_the_optimal_discriminator(tmp_path):
    from train.studies import gan_optimum

    assert gan_optimum.main(["--quick", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["mean_abs_error"] < 0.02
    assert abs(m["value_trained"] - m["value_closed_form"]) < 0.01
    # V(G, D*) by integration is the closed form -2 log 2 + 2 JSD (Goodfellow et al. 2014, Theorem 1)
    assert m["value_optimal_numeric"] == pytest.approx(m["value_closed_form"], abs=1e-6)
    assert (tmp_path / "gan_optimum.png").is_file()


def test_mode_collapse_quick(tmp_path):
    from train.studies import mode_collapse

    assert mode_collapse.main(["--quick", "--out", str(tmp_path), "--losses", "minimax,hinge"]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m["ring"]) == {"minimax", "hinge"}
    assert 0 <= m["ring"]["hinge"]["modes_covered"] <= 8
    assert set(m["saturation"]) == {"minimax", "non-saturating"}
    assert (tmp_path / "ring.png").is_file() and (tmp_path / "saturation.png").is_file()
