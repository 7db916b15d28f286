"""Every option that takes a model path accepts a built-in short name too (issue 16): 2-step runs on the
real built-ins (t2i/builtin/), through the `t2i` dispatcher as a user types them."""

import pytest

from t2i.builtin import ROOT
from train.cli import main as t2i

RUN = ["--steps", "2", "--batch-size", "8", "--n", "16", "--log-every", "1", "--checkpoint-every", "0"]
GAN = ["--g-base", "8", "--d-base", "8", "--eval-n", "0"]
LDM = ["--sample-steps", "2", "--sample-prompts", "a red circle"]

# (the options under test, the command line with {out})
COMMANDS = {
    "train clip --pretrained": ["train", "clip", "--pretrained", "shapes-clip", "--eval-n", "0", *RUN],
    "train clip --model": ["train", "clip", "--model", "shapes-clip", "--eval-n", "0", *RUN],
    "train ldm --init": ["train", "ldm", "--init", "shapes-ldm", *LDM, *RUN],
    "train ldm --init --lora-rank": ["train", "ldm", "--init", "shapes-ldm", "--lora-rank", "2", *LDM, *RUN],
    "train ldm --vae --clip": ["train", "ldm", "--vae", "shapes-vae-kl", "--clip", "shapes-clip", "--unet", "test",
                               *LDM, *RUN],
    "train distill --teacher": ["train", "distill", "--teacher", "shapes-ldm", "--sample-steps", "2",
                                "--sample-prompts", "a red circle", *RUN],
    "train tgan --clip": ["train", "tgan", "--clip", "shapes-clip", *GAN, *RUN],
    "train tgan-attn --clip": ["train", "tgan-attn", "--clip", "shapes-clip", "--g-channels", "16,16,8",
                               "--d-channels", "8,8,16", "--text-width", "16", "--eval-n", "0", *RUN],
    "train cvae --text-encoder": ["train", "cvae", "--text-encoder", "shapes-clip", *RUN],
    "sample --model": ["sample", "--model", "shapes-ldm", "--prompt", "a red circle", "--num-inference-steps", "2"],
    "eval --model --clip": ["eval", "--model", "shapes-tgan", "--prompts", "shapes:test:4", "--clip", "shapes-clip",
                            "--metrics", "clip-score"],
    "eval clip --model": ["eval", "clip", "--model", "shapes-clip", "--n", "16", "--split", "test"],
}


@pytest.mark.parametrize("options", sorted(COMMANDS))
def test_option_accepts_a_builtin_name(options, tmp_path):
    if "distill" in options and not (ROOT.parent.parent / "train" / "distill.py").is_file():
        pytest.skip("no t2i train distill in this checkout")
    assert t2i([*COMMANDS[options], "--out", str(tmp_path / "out")]) == 0
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written, f"{options}: nothing written"


def test_clip_pretrained_name_starts_from_the_builtin_weights(tmp_path):
    """`--pretrained shapes-clip` loads those weights (not a random init): at lr ~0 the result equals them."""
    from safetensors.torch import load_file

    out = tmp_path / "clip"
    assert t2i(["train", "clip", "--pretrained", "shapes-clip", "--lr", "1e-12", "--weight-decay", "0", "--eval-n",
                "0", *RUN, "--out", str(out)]) == 0
    before = load_file(str(ROOT / "shapes-clip" / "open_clip_model.safetensors"))
    after = load_file(str(out / "model" / "open_clip_model.safetensors"))
    assert all((before[k].float() - after[k].float()).abs().max() < 1e-4 for k in before)


def test_app_loads_every_model_by_builtin_name(tmp_path):
    from apps.app import AppConfig
    from apps.models import AppModels

    cfg = AppConfig(diffusion="shapes-ldm", gan="shapes-tgan", clip="shapes-clip", ae="digits-ae", vae="digits-vae",
                    outputs=str(tmp_path / "outputs"))
    models = AppModels.load(cfg)
    assert models.diffusion.path == ROOT / "shapes-ldm" and models.gan.path == ROOT / "shapes-tgan"


def test_bench_judges_and_loads_by_builtin_name(tmp_path):
    from t2i.bench.config import BenchConfig, resolve
    from train.bench import Bench

    cfg = resolve(BenchConfig(quick=True, evaluator="shapes-evaluator", out=str(tmp_path / "o"),
                              work=str(tmp_path / "w"), load="tgan=shapes-tgan"))
    bench = Bench(cfg, [], {"tgan": "shapes-tgan"})
    assert type(bench.load_evaluator()).__name__ == "ShapesEvaluator"
    assert bench.load(bench.loads["tgan"]).path == ROOT / "shapes-tgan"


def test_a_clip_run_folder_works_wherever_a_clip_folder_does(tmp_path):
    """Regression (issue 16 recipe): `t2i eval clip --model RUN` and `t2i train ldm --clip RUN` refused the folder
    `t2i train clip` writes (its CLIP is in RUN/model/); every CLIP option now accepts it."""
    run = tmp_path / "clip"
    assert t2i(["train", "clip", "--pretrained", "shapes-clip", "--eval-n", "0", *RUN, "--out", str(run)]) == 0
    assert not (run / "open_clip_config.json").exists() and (run / "model" / "open_clip_config.json").is_file()
    for command in (["eval", "clip", "--model", str(run), "--n", "16", "--split", "test"],
                    ["train", "ldm", "--init", "shapes-ldm", "--clip", str(run), *LDM, *RUN],
                    ["train", "tgan", "--clip", str(run), *GAN, *RUN],
                    ["train", "clip", "--pretrained", str(run), "--eval-n", "0", *RUN]):
        assert t2i([*command, "--out", str(tmp_path / command[1])]) == 0, command
