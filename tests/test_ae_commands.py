"""Two-step runs of every autoencoder/VAE command and study, each ending in files we can load or read."""

import json

import pytest

from gan_baselines.registry import load_generator
from train.cli import main as cli

TINY = ["--steps", "2", "--batch-size", "8", "--n", "32", "--log-every", "1"]


@pytest.mark.parametrize("variant", ["plain", "conv", "denoising", "sparse", "contractive", "overcomplete"])
def test_train_ae_every_variant(tmp_path, variant):
    from train.ae import main

    extra = ["--size", "8"] if variant == "overcomplete" else []  # a 2 x 64 code instead of 2 x 1024
    assert main(["--variant", variant, "--out", str(tmp_path), *TINY, *extra]) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["family"] == "ae" and config["variant"] == variant
    assert (tmp_path / "samples").is_dir() and (tmp_path / "metrics.jsonl").is_file()
    gen = load_generator(tmp_path / "model")
    images = gen.generate(seed=1, num_images_per_prompt=2)
    assert len(images) == 2 and images[0].size == (config["size"],) * 2


def test_train_ae_rejects_a_narrow_overcomplete_code(tmp_path):
    from train.ae import main

    with pytest.raises(ValueError, match="overcomplete code needs latent_dim >= the 64"):
        main(["--variant", "overcomplete", "--size", "8", "--latent-dim", "32", "--out", str(tmp_path), *TINY])


def test_train_vae_through_the_t2i_command(tmp_path):
    assert cli(["train", "vae", "--out", str(tmp_path), "--latent-dim", "2", "--kl-warmup", "4", *TINY]) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["family"] == "vae" and config["conditioning"] == "none" and config["latent_dim"] == 2
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [round(r["beta"], 3) for r in rows] == [0.25, 0.5]  # the KL weight ramps up
    gen = load_generator(tmp_path / "model")
    assert [im.tobytes() for im in gen.generate(seed=3)] == [im.tobytes() for im in gen.generate(seed=3)]


def test_train_cvae_on_labels(tmp_path):
    from train.cvae import main

    assert main(["--conditioning", "label", "--data", "digits", "--arch", "mlp", "--out", str(tmp_path), *TINY]) == 0
    gen = load_generator(tmp_path / "model")
    assert gen.family == "cvae" and gen.conditioning == "label" and gen.num_classes == 10
    assert len(gen.generate(labels=[0, 9], num_images_per_prompt=3, seed=0)) == 6


def test_train_cvae_on_text(tmp_path):
    from t2i.clip.testing import make_tiny_clip
    from train.cvae import main

    clip = make_tiny_clip(tmp_path / "clip")
    assert main(["--data", "shapes", "--text-encoder", str(clip), "--widths", "8,16", "--out", str(tmp_path / "run"),
                 *TINY]) == 0
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["conditioning"] == "text" and config["text_encoder"] == str(clip.resolve())
    gen = load_generator(tmp_path / "run" / "model")
    images = gen.generate(prompts=["a red circle"], num_images_per_prompt=2, seed=0)
    assert len(images) == 2 and images[0].mode == "RGB"


def test_cvae_refuses_no_conditioning(tmp_path):
    from train.cvae import main

    with pytest.raises(SystemExit, match="label' or 'text"):
        main(["--conditioning", "none", "--out", str(tmp_path), *TINY])


STUDIES = {
    "latent-dim": ["reconstructions.png", "mse_vs_latent.png"],
    "latent-map": ["latent_map.png"],
    "denoising": ["denoising.png", "psnr_vs_noise.png"],
    "embeddings": ["probe_accuracy.png"],
    "generation": ["prior_samples.png", "interpolation.png", "arithmetic.png", "class_histograms.png"],
    "overcomplete": ["identity_test.png", "noise_error.png"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_study_quick(tmp_path, name):
    extra = []
    if name == "generation":  # an untrained classifier stands in for the built-in one
        from t2i.evaluators.digits import DigitsClassifier

        clf = DigitsClassifier.build({"family": "digits-classifier", "width": 4, "feature_dim": 8})
        extra = ["--classifier", str(clf.save(tmp_path / "classifier"))]
    assert cli(["study", name, "--out", str(tmp_path / "out"), "--quick", *extra]) == 0
    for png in STUDIES[name]:
        assert (tmp_path / "out" / png).stat().st_size > 1000, png
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["study"] == name and metrics["steps"] == 2


@pytest.mark.parametrize("command", ["ae", "vae"])
def test_user_images_are_read_with_the_runs_resize_and_background(tmp_path, capsys, command):
    """Regression: the AE and VAE trainers read a user folder centre-cropped on black whatever --resize /
    --background said (the options were accepted and ignored); the bad-data report shows how it was read."""
    from PIL import Image

    folder = tmp_path / "drawings"
    folder.mkdir()
    rows = []
    for i in range(4):
        Image.new("RGBA", (12, 40), (0, 0, 0, 0)).save(folder / f"{i}.png")  # tall, transparent
        rows.append(json.dumps({"file_name": f"{i}.png", "text": "a tall drawing"}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    common = ["train", command, "--data", str(folder), "--size", "8", "--steps", "1", "--batch-size", "2",
              "--log-every", "1"]
    assert cli(common + ["--out", str(tmp_path / "cropped")]) == 0
    said = capsys.readouterr().out
    assert "onto black" in said and "not square: 4 of 4" in said
    assert cli(common + ["--resize", "pad", "--background", "white", "--out", str(tmp_path / "padded")]) == 0
    said = capsys.readouterr().out
    assert "onto white" in said and "not square" not in said


def test_a_run_ends_measuring_reconstructions_of_held_out_images(tmp_path, capsys):
    """New: an autoencoder family's run ends with PSNR and SSIM of its saved model on the test split (a source
    without one: its training images, said so), in reconstruction_metrics.json, reconstructions.png and the card."""
    import torch
    from PIL import Image

    from gan_baselines.autoencoders import load_autoencoder
    from gan_baselines.reconstruction import METRICS_FILE
    from t2i.data import load_dataset
    from t2i.metrics.pixels import psnr

    run = tmp_path / "ae"
    assert cli(["train", "ae", "--variant", "conv", "--eval-images", "400", "--out", str(run), *TINY]) == 0
    figures = json.loads((run / METRICS_FILE).read_text())
    assert figures["split"] == "test" and figures["images"] == 355  # all of digits' test split (up to 400)
    assert "reconstructions of 355 held-out test images: PSNR" in capsys.readouterr().out
    model, _ = load_autoencoder(run / "model")  # the figure is the saved model's, recomputed here
    x = torch.stack([item["image"] for item in load_dataset("digits", split="test", size=32)])
    with torch.no_grad():
        assert abs(float(psnr(model.reconstruct(x).clamp(0, 1), x).mean()) - figures["psnr_db"]) < 1e-3
    assert 0 < figures["ssim"] < 1 and Image.open(run / "reconstructions.png").size[1] > 2 * 32
    assert "| reconstruction_metrics.psnr_db |" in (run / "README.md").read_text()

    folder = tmp_path / "flat"  # one split only: measured on the training images
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i, 0, 200)).save(folder / f"{i}.png")
    assert cli(["train", "vae", "--data", str(folder), "--size", "16", "--steps", "1", "--batch-size", "2",
                "--out", str(tmp_path / "vae")]) == 0
    assert json.loads((tmp_path / "vae" / METRICS_FILE).read_text())["split"] == "train"
    assert "reconstructions of 6 training images (no test split" in capsys.readouterr().out
