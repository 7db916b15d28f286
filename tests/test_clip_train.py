"""`t2i train clip` and `t2i eval clip`: 2-step runs, resume, locks, SigLIP, evaluation maths, 2 processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import load_file

import train.clip
import train.eval_clip
from t2i.clip.evaluate import evaluate_splits, retrieval_metrics
from t2i.clip.testing import make_tiny_clip
from t2i.text import TextEncoder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny", seed=3)


def _args(tiny, out, *extra):
    return ["--model", str(tiny), "--data", "shapes", "--n", "64", "--batch-size", "16", "--eval-n", "0",
            "--log-every", "1", "--out", str(out), *extra]


def _weights(folder):
    return load_file(str(Path(folder) / "open_clip_model.safetensors"))


def test_two_step_train_saves_open_clip_folder_and_evaluates(tiny, tmp_path):
    out = tmp_path / "run"
    assert train.clip.main(_args(tiny, out, "--steps", "2", "--eval-n", "32")) == 0
    model, _, _ = open_clip.create_model_and_transforms("local-dir:" + str(out / "model"))
    before, after = _weights(tiny), _weights(out / "model")
    assert not torch.equal(before["visual.conv1.weight"], after["visual.conv1.weight"])  # it trained
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)
    report = json.loads((out / "eval.json").read_text())
    assert set(report["splits"]) == {"test", "novel"}
    assert set(report["splits"]["test"]["zero_shot"]) == {"colour", "shape"}
    assert (out / "zero_shot.png").is_file()
    assert TextEncoder.from_pretrained(out / "model")(["a red circle"]).pooled.shape == (1, 16)


def test_a_user_folder_with_a_test_split_is_evaluated_at_the_end(tiny, tmp_path, capsys, monkeypatch):
    """Regression (issue 16 recipe): user data with a test/ split was never evaluated ("no built-in held-out
    split"); now its retrieval is reported; a single-split folder still says how to evaluate."""
    from t2i.data import shapes

    for split, n in (("train", 16), ("test", 8)):
        folder = tmp_path / "data" / split
        folder.mkdir(parents=True)
        rows = []
        for i, scene in enumerate(shapes.make_scenes(n, seed=len(split))):
            shapes.render(scene).save(folder / f"{i}.png")
            rows.append(json.dumps({"file_name": f"{i}.png", "text": scene["caption"]}))
        (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    common = ["--model", str(tiny), "--batch-size", "8", "--steps", "2", "--eval-n", "8"]
    assert train.clip.main([*common, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "split")]) == 0
    test = json.loads((tmp_path / "split" / "eval.json").read_text())["splits"]["test"]["retrieval"]
    assert test["num_images"] == 8 and 0 <= test["image_to_text_R@1"] <= 1
    assert train.clip.main([*common, "--data", str(tmp_path / "data" / "train"), "--out", str(tmp_path / "one")]) == 0
    assert "no held-out split to evaluate" in capsys.readouterr().out and not (tmp_path / "one" / "eval.json").exists()

    # regression: that evaluation read the held-out images centre-cropped on black whatever the run's --resize,
    # --background and columns (a CLIP trained on padded drawings on white scored R@1 6% instead of 17%)
    seen = []
    monkeypatch.setattr(train.clip, "evaluate_splits", lambda *a, **kw: seen.append(kw) or evaluate_splits(*a, **kw))
    assert train.clip.main([*common, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "pad"),
                            "--resize", "pad", "--background", "white"]) == 0
    assert seen[0]["resize"] == "pad" and seen[0]["background"] == "white"


def test_resume_gives_the_same_weights(tiny, tmp_path):
    train.clip.main(_args(tiny, tmp_path / "straight", "--steps", "3", "--checkpoint-every", "0"))
    train.clip.main(_args(tiny, tmp_path / "resumed", "--steps", "2", "--checkpoint-every", "1"))
    train.clip.main(_args(tiny, tmp_path / "resumed", "--steps", "3", "--checkpoint-every", "1", "--resume", "latest"))
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "resumed" / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_siglip_lock_text_bf16_ema_time_limit_on_digits(tmp_path):
    tiny = make_tiny_clip(tmp_path / "siglip", init_logit_bias=-10.0)  # a SigLIP-ready model (learned bias)
    out = tmp_path / "run"
    train.clip.main(["--model", str(tiny), "--data", "digits", "--n", "32", "--batch-size", "8", "--steps", "3",
                     "--loss", "siglip", "--lock-text", "--mixed-precision", "bf16", "--ema-decay", "0.9",
                     "--max-minutes", "1e-9", "--eval-n", "1", "--out", str(out)])
    report = json.loads((out / "eval.json").read_text())
    assert report["steps"] == 1  # --max-minutes stopped it after the first step
    assert report["splits"]["test"]["zero_shot"]["digit"]["num_images"] == 355
    before, after = _weights(tiny), _weights(out / "model")
    assert torch.equal(before["token_embedding.weight"], after["token_embedding.weight"])  # text tower frozen
    assert torch.equal(before["text_projection"], after["text_projection"])
    assert not torch.equal(before["visual.conv1.weight"], after["visual.conv1.weight"])
    assert "logit_bias" in after


def test_bad_loss_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(ValueError, match=r"loss must be one of \['clip', 'siglip'\]"):
        train.clip.main(_args(tiny, tmp_path / "bad", "--steps", "1", "--loss", "triplet"))


def test_two_step_eval_clip(tiny, tmp_path):
    out = tmp_path / "eval"
    assert train.eval_clip.main(["--model", str(tiny), "--data", "shapes", "--split", "test", "--n", "40",
                                 "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())["splits"]["test"]
    assert 0 <= report["retrieval"]["image_to_text_R@1"] <= report["retrieval"]["image_to_text_R@10"] <= 1
    colour = report["zero_shot"]["colour"]
    assert colour["num_templates"] == 40 and colour["ensemble"] == "marginal"
    assert colour["accuracy"] == colour["accuracy_marginal"] and 0 <= colour["accuracy_mean"] <= 1
    train.eval_clip.main(["--model", str(tiny), "--data", "digits", "--classes", ",".join("0123456789"),
                          "--templates", "a handwritten digit {}", "--out", str(out)])
    digits = json.loads((out / "eval.json").read_text())["splits"]["test"]["zero_shot"]["classes"]
    assert digits["num_images"] == 355 and len(digits["confusion"]) == 10
    with pytest.raises(ValueError, match="one name per label"):
        train.eval_clip.main(["--model", str(tiny), "--data", "digits", "--classes", "a,b", "--out", str(out)])


def test_retrieval_counts_repeated_captions_as_one():
    captions = ["a", "b", "a", "c"]
    unique = ["a", "b", "c"]
    text = torch.eye(3)  # (U, P)
    images = torch.eye(3)[[0, 1, 0, 2]]  # every image on its caption
    perfect = retrieval_metrics(images, captions, text, unique)
    assert perfect["image_to_text_R@1"] == 1.0 and perfect["text_to_image_R@1"] == 1.0
    assert perfect["image_to_text_median_rank"] == 1.0
    # images 0 and 1 swapped; image 2 still on "a" but less similar than image 1
    images = torch.stack([torch.eye(3)[1], torch.eye(3)[0], 0.5 * torch.eye(3)[0], torch.eye(3)[2]])
    swapped = retrieval_metrics(images, captions, text, unique)
    assert swapped["image_to_text_R@1"] == 0.5  # images 2 and 3 still rank their caption first
    assert swapped["text_to_image_R@1"] == pytest.approx(1 / 3)  # only "c"; "a" finds image 2 second
    assert swapped["text_to_image_median_rank"] == 2.0


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--hard-negatives", "shapes", "--negatives-per-caption", "2"]],
                         ids=["clip", "negclip"])
def test_two_processes_train_on_the_global_batch(tiny, tmp_path, extra):
    """2 CPU processes with gathered features (and gathered hard negatives) give the 1-process losses
    on the same global batch."""
    common = _args(tiny, "OUT", "--steps", "2", "--checkpoint-every", "0", *extra)
    train.clip.main([a if a != "OUT" else str(tmp_path / "one") for a in common])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu", "-m", "train.clip",
           *[a if a != "OUT" else str(tmp_path / "two") for a in common]]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    one = [json.loads(x)["loss"] for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x)["loss"] for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert one == pytest.approx(two, rel=1e-4, abs=1e-5)
    a, b = _weights(tmp_path / "one" / "model"), _weights(tmp_path / "two" / "model")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_zero_shot_ensembles_agree_on_one_template():
    from t2i.clip.evaluate import ZeroShotTask, zero_shot
    from t2i.clip.testing import tiny_clip

    model = tiny_clip(seed=5)
    feats = torch.nn.functional.normalize(torch.randn(50, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    classes = ["red", "green", "blue", "white"]
    labels = torch.randint(0, 4, (50,), generator=torch.Generator().manual_seed(1)).tolist()
    one = zero_shot(model, feats, ZeroShotTask("c", classes, ["a {} thing"], list(range(50)), labels, "marginal"))
    assert one["accuracy_mean"] == one["accuracy_marginal"]  # one template: both are the nearest caption
    many = zero_shot(model, feats, ZeroShotTask("c", classes, ["a {} thing", "the {} one"], list(range(50)), labels))
    assert many["ensemble"] == "mean" and many["accuracy"] == many["accuracy_mean"]
    assert sum(map(sum, many["confusion"])) == 50


def test_init_names_the_starting_weights_as_in_the_other_trainers_and_a_long_warmup_is_noted(tiny, tmp_path, capsys):
    """Regression: `t2i train clip --init shapes-clip` (the spelling of `t2i train ldm`) was refused as unknown;
    a fine-tune shorter than --warmup (default 100) ran at a rising learning rate with no word about it."""
    out = tmp_path / "run"
    assert train.clip.main(["--init", str(tiny), "--data", "shapes", "--n", "32", "--batch-size", "16",
                            "--eval-n", "0", "--steps", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out  # the tiny CLIP is not the default --model's architecture: fine-tuned as saved
    assert f"starting from the weights of {tiny} in its own architecture" in printed
    assert "--warmup 100 is not shorter than --steps 2" in printed and "--warmup 1" in printed
    assert json.loads((out / "config.json").read_text())["pretrained"] == str(tiny)
    saved = json.loads((out / "model" / "open_clip_config.json").read_text())["model_cfg"]
    assert saved == json.loads((tiny / "open_clip_config.json").read_text())["model_cfg"]
    assert not torch.equal(_weights(tiny)["visual.conv1.weight"], _weights(out / "model")["visual.conv1.weight"])
