"""Fine-tuning runs of `t2i train ldm --init` (issue 16): a LoRA run folder loads in sample, eval, bench and
the app; its base is saved by reference (a built-in name stays a name); the sampling defaults are the base
pipeline's unless --guidance/--sampler/--sample-steps are given."""

import json

import pytest

from gan_baselines.registry import load_generator
from t2i.builtin import ROOT
from t2i.diffusion.options import load_sampling_options
from train.cli import main as t2i

RUN = ["--steps", "2", "--batch-size", "8", "--n", "16", "--log-every", "1", "--checkpoint-every", "0",
       "--sample-prompts", "a red circle"]
BASE = load_sampling_options(ROOT / "shapes-ldm")  # guidance 5, the trainer's own default is 3


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "run"
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--lora-rank", "2", *RUN, "--out", str(out)]) == 0
    return out


def test_lora_run_names_its_builtin_base_and_keeps_its_sampling_defaults(lora_run):
    assert json.loads((lora_run / "t2i_lora.json").read_text())["base"] == "shapes-ldm"
    assert load_sampling_options(lora_run) == BASE and BASE.guidance_scale == 5.0


def test_lora_run_loads_in_sample_eval_bench_and_app(lora_run, tmp_path):
    from apps.app import AppConfig
    from apps.models import AppModels
    from t2i.bench.config import BenchConfig, resolve
    from train.bench import Bench

    generator = load_generator(lora_run)
    assert generator.family == "ldm" and generator.options == BASE
    assert t2i(["sample", "--model", str(lora_run), "--prompt", "a red circle", "--num-inference-steps", "2",
                "--out", str(tmp_path / "sample")]) == 0
    assert t2i(["eval", "--model", str(lora_run), "--prompts", "shapes:test:2", "--clip", "shapes-clip",
                "--metrics", "clip-score", "--out", str(tmp_path / "eval")]) == 0
    bench = Bench(resolve(BenchConfig(quick=True, out=str(tmp_path / "b"), work=str(tmp_path / "w"))), [], {})
    assert bench.load(lora_run).family == "ldm"
    models = AppModels.load(AppConfig(diffusion=str(lora_run), outputs=str(tmp_path / "outputs")))
    assert models.diffusion.options == BASE


def test_lora_base_given_as_a_path_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # a relative path to the base
    out = tmp_path / "run"
    assert t2i(["train", "ldm", "--init", "shapes-ldm/", "--lora-rank", "2", *RUN, "--out", str(out)]) == 0
    assert json.loads((out / "t2i_lora.json").read_text())["base"] == str(ROOT / "shapes-ldm")


def test_full_fine_tune_keeps_the_base_defaults_and_given_options_win(tmp_path):
    full = tmp_path / "full"
    assert t2i(["train", "ldm", "--init", "shapes-ldm", *RUN, "--out", str(full)]) == 0
    assert load_sampling_options(full) == BASE
    given = tmp_path / "given"
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--lora-rank", "2", "--guidance", "2", "--sampler", "ddim",
                "--sample-steps", "4", *RUN, "--out", str(given)]) == 0
    options = load_sampling_options(given)
    assert (options.guidance_scale, options.sampler, options.num_inference_steps) == (2.0, "ddim", 4)


def test_training_from_scratch_keeps_the_old_defaults(tmp_path):
    out = tmp_path / "scratch"
    assert t2i(["train", "ldm", "--vae", "shapes-vae-kl", "--unet", "test", "--sample-steps", "2", *RUN,
                "--out", str(out)]) == 0
    options = load_sampling_options(out)
    assert (options.guidance_scale, options.sampler) == (3.0, "dpm-solver++")


def test_loading_a_lora_run_keeps_diffusers_text_encoder_note_out(lora_run):
    # regression: every `t2i sample` / `t2i eval` of a LoRA run printed diffusers' long "No LoRA keys associated to
    # CLIPTextModel ..." warning (our adapters are the UNet's only, so it is always true and never useful)
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("diffusers").addHandler(handler)
    try:
        load_generator(lora_run)
    finally:
        logging.getLogger("diffusers").removeHandler(handler)
    assert not [m for m in seen if m.startswith("No LoRA keys")], seen


def test_grids_on_ones_own_data_draw_its_captions(tmp_path):
    """Regression: a fine-tune on one's own captioned images drew its sample grids from fixed shapes prompts."""
    from PIL import Image

    data = tmp_path / "mine"
    data.mkdir()
    captions = [f"a photo of thing {i % 10}" for i in range(12)]  # 10 distinct, two repeated
    for i, caption in enumerate(captions):
        Image.new("RGB", (40, 40), (20 * i, 100, 200 - 10 * i)).save(data / f"{i}.png")
    (data / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": c}) + "\n"
                                                 for i, c in enumerate(captions)))
    out = tmp_path / "run"
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--lora-rank", "2", "--data", str(data), "--steps", "1",
                "--batch-size", "4", "--checkpoint-every", "0", "--sample-steps", "2", "--out", str(out)]) == 0
    assert (out / "samples" / "prompts.txt").read_text().splitlines() == [f"a photo of thing {i}" for i in range(8)]


def test_grid_prompts_given_shapes_and_none():
    from t2i.runtime.grids import SHAPES_GRID_PROMPTS, grid_prompts

    assert grid_prompts(" a red circle | a blue square|", "anything", []) == ["a red circle", "a blue square"]
    assert grid_prompts("", "shapes", []) == list(SHAPES_GRID_PROMPTS)
    with pytest.raises(SystemExit, match="--sample-prompts"):
        grid_prompts("", "my_data/", [{"text": ""}])
    with pytest.raises(SystemExit, match="holds no prompt"):  # regression: failed after training, before the model was saved
        grid_prompts(" | ", "shapes", [])


def test_a_lora_run_is_a_teacher_and_a_base_with_its_adapter_merged(tmp_path):
    """Regression: `t2i train distill --teacher RUN` and `t2i train ldm --init RUN` refused a LoRA run folder
    (no model_index.json), though sample, eval, bench and the app load it. Now its base loads with the adapter
    merged into the UNet's weights: the same UNet outputs as the adapted one."""
    import torch

    from t2i.diffusion.interop import load_pipeline
    from t2i.diffusion.pipeline import LatentDiffusionPipeline

    run = tmp_path / "lora"
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--lora-rank", "2", "--lr", "0.01", *RUN, "--out", str(run)]) == 0
    merged, adapted = load_pipeline(run).unet, load_generator(run).pipe.unet
    base = LatentDiffusionPipeline.from_pretrained(str(ROOT / "shapes-ldm"), dtype=torch.float32).unet
    assert not getattr(merged, "peft_config", None)  # a plain UNet, no adapter layers left
    z = torch.randn(2, merged.config.in_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = torch.randn(2, 5, merged.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outs = [unet(z, torch.tensor([400, 700]), cond).sample for unet in (merged, adapted, base)]
    assert torch.allclose(outs[0], outs[1], atol=1e-4) and (outs[1] - outs[2]).abs().max() > 1e-3

    grid = ["--sample-steps", "2", "--sample-prompts", "a red circle", "--checkpoint-every", "0"]
    assert t2i(["train", "distill", "--teacher", str(run), "--n", "16", "--steps", "1", "--batch-size", "8", *grid,
                "--out", str(tmp_path / "student")]) == 0
    again = tmp_path / "lora-on-lora"  # its base is the LoRA run, merged when it loads
    assert t2i(["train", "ldm", "--init", str(run), "--lora-rank", "2", *RUN, "--out", str(again)]) == 0
    assert json.loads((again / "t2i_lora.json").read_text())["base"] == str(run)
    with torch.no_grad():  # the first adapter's change is in it (the second, 2 steps at lr 2e-4, adds little)
        stacked = load_generator(again).pipe.unet(z, torch.tensor([400, 700]), cond).sample
    assert (stacked - outs[0]).abs().max() < (outs[0] - outs[2]).abs().max() / 10


def test_first_stage_warning_names_the_data_as_given(tmp_path, capsys):
    """Regression: the warning's `t2i train vae-kl --data ...` left out --background/--resize, so following it
    trained a first stage on other images than the run's."""
    from PIL import Image

    data = tmp_path / "glyphs"
    data.mkdir()
    for i in range(4):
        glyph = Image.new("RGBA", (40, 32), (0, 0, 0, 0))
        glyph.paste((10 * i, 10, 10, 255), (10, 8, 30, 24))
        glyph.save(data / f"{i}.png")
    (data / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": f"glyph {i}"}) + "\n"
                                                 for i in range(4)))
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--lora-rank", "2", "--data", str(data), "--background",
                "white", "--resize", "pad", "--min-psnr", "99", "--steps", "1", "--batch-size", "4",
                "--checkpoint-every", "0", "--sample-steps", "2", "--out", str(tmp_path / "run")]) == 0
    warning = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("warning: the first stage"))
    assert f"`t2i train vae-kl --data {data} --resize pad --background white`" in warning
    # the figure is kept beside the model and on its card (new: it was only printed)
    measured = json.loads((tmp_path / "run" / "first_stage_metrics.json").read_text())
    assert round(measured["psnr_db"], 1) == float(warning.split(" at ")[1].split()[0]) < 99
    assert "| first_stage_metrics.psnr_db |" in (tmp_path / "run" / "README.md").read_text()


def test_a_fine_tune_on_new_words_is_told_its_text_encoder_never_learnt_them(tmp_path, capsys):
    """Regression: a LoRA of shapes-ldm on captions of other words trained in silence, though the base's text
    encoder never learnt them (the icons of a new-user check came out as shapes)."""
    from PIL import Image

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (60 * i, 90, 120)).save(data / f"{i}.png")
    (data / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": f"a photo of kitten {i}"})
                                                 + "\n" for i in range(4)))
    common = ["--lora-rank", "2", "--steps", "1", "--batch-size", "4", "--first-stage-check", "0", "--checkpoint-every",
              "0", "--sample-steps", "2", "--sample-prompts", "a red circle"]
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--data", str(data), *common, "--out", str(tmp_path / "a")]) == 0
    warning = next(line for line in capsys.readouterr().out.splitlines() if "never occur in" in line)
    assert "'kitten', 'photo'" in warning and f"`t2i train clip --init shapes-clip --data {data}`" in warning
    assert t2i(["train", "ldm", "--init", "shapes-ldm", "--data", "shapes", "--n", "8", *common,
                "--out", str(tmp_path / "b")]) == 0
    assert "never occur in" not in capsys.readouterr().out  # the base's own kind of caption: no warning
