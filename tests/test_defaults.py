"""`t2i train defaults`: every recipe runs (2 steps each) and installs loadable models with cards."""

import json
from pathlib import Path

import pytest

from gan_baselines.registry import load_generator
from t2i.builtin import ROOT


@pytest.mark.slow
def test_quick_defaults_train_and_install_every_model(tmp_path):
    from train.defaults import RECIPES, main

    root = tmp_path / "builtin"
    assert main(["--quick", "--out", str(tmp_path / "runs"), "--builtin-root", str(root)]) == 0
    for recipe in RECIPES:
        folder = root / recipe.name
        assert (folder / "README.md").is_file() and json.loads((folder / "metrics.json").read_text()) is not None
    for name in ("shapes-tgan", "shapes-cvae", "shapes-ldm", "shapes-ldm-fast", "shapes-ldm-6", "shapes-unclip"):  # measured by the shapes evaluator after training
        metrics = json.loads((root / name / "metrics.json").read_text())
        assert 0 <= metrics["novel_one_object_colour"] <= 1 and "test_one_object_all_correct" in metrics
    assert json.loads((root / "shapes-tgan" / "config.json").read_text())["family"] == "tgan-attn"
    assert "shapes-clip" in (root / "shapes-tgan" / "config.json").read_text()  # points at the built-in name
    assert "/runs/" not in (root / "shapes-tgan" / "config.json").read_text()
    from t2i.provenance import RECORD, trained_on  # the GAN's run record travels with its model/ (regression: it
    # stayed in the run folder, so an installed GAN trained with --reworded-captions would be read as plain)

    record = json.loads((root / "shapes-tgan" / RECORD).read_text())
    assert record["data"] == "shapes" and record["clip"] == "shapes-clip" and record["reworded"] is True
    assert record["reworded_scenes"] == "all"  # the second run rewords every scene's captions (the first: one-object)
    assert record["base"] is None  # its second run goes on from the first on the same data: no words to add
    card = (root / "shapes-tgan" / "README.md").read_text()  # both runs: the second from the first's checkpoint
    assert f" && t2i train tgan-attn --init {tmp_path / 'runs' / 'shapes-tgan' / 'stage1'} --steps 6000 " in card
    assert "--full-stops 0.3" in card and (root / "shapes-tgan" / "discriminator.safetensors").is_file()  # for --init
    assert trained_on(root / "shapes-tgan").clip == "shapes-clip"
    images = load_generator(root / "shapes-ldm").generate(prompts=["a small red circle in the center"], seed=0)
    assert images[0].size == (32, 32)
    assert len(load_generator(root / "digits-vae").generate(seed=0, num_images_per_prompt=3)) == 3
    # the distilled pipeline links its teacher's VAE and text encoder (one copy) and still loads everywhere
    fast = root / "shapes-ldm-fast"
    assert all((fast / part).is_symlink() and (fast / part).resolve() == (root / "shapes-ldm" / part).resolve()
               for part in ("vae", "text_encoder", "tokenizer"))
    assert json.loads((fast / "unet" / "config.json").read_text())["time_cond_proj_dim"] is not None
    # its teacher by name, not by the path of this root (regression: it recorded --builtin-root's folder)
    assert json.loads((fast / "t2i_distill.json").read_text())["teacher"] == "shapes-ldm"
    assert load_generator(fast).generate(prompts=["a small red circle in the center"], seed=0)[0].size == (32, 32)
    # its progressive student: taught by this root's shapes-ldm-fast (named by its built-in name), samples in 6 steps
    six = root / "shapes-ldm-6"
    assert all((six / part).resolve() == (root / "shapes-ldm" / part).resolve() for part in ("vae", "text_encoder", "tokenizer"))
    assert json.loads((six / "t2i_distill.json").read_text())["teacher"] == "shapes-ldm-fast"
    assert json.loads((six / "t2i_sampling.json").read_text())["num_inference_steps"] == 6
    assert "--teacher shapes-ldm-fast" in (six / "README.md").read_text()
    assert not (ROOT / ".shapes-ldm.tmp").exists()
    # unCLIP: a prior run (another entry point) then the decoder, chained; the card gives both commands
    unclip = root / "shapes-unclip"
    card = (unclip / "README.md").read_text()
    assert "t2i train prior --preset shapes-prior --clip " in card and " && t2i train unclip " in card
    assert "--prior " in card and json.loads((unclip / "t2i_unclip.json").read_text())["clip"] == "shapes-clip"
    assert load_generator(unclip).generate(prompts=["a small red circle in the center"], seed=0)[0].size == (32, 32)
    # its prior's training record is installed (the app's vocabulary warning)
    assert trained_on(unclip).data == "shapes" and "circle" in trained_on(unclip).words
    # retraining one model against the installed CLIP: its card names that CLIP by short name, not by path
    assert main(["--quick", "--only", "shapes-cvae", "--out", str(tmp_path / "runs2"), "--builtin-root", str(root)]) == 0
    card = (root / "shapes-cvae" / "README.md").read_text()
    assert "--text-encoder shapes-clip " in card and str(root) not in card
    # the diffusers folders are installed in half precision, as the shipped built-ins are (the 40 MB cap)
    from safetensors import safe_open

    for weights in [*(root / "shapes-ldm").glob("*/*.safetensors"), *(root / "shapes-unclip").glob("*/*/*.safetensors"), root / "shapes-vae-kl" / "diffusion_pytorch_model.safetensors"]:
        with safe_open(str(weights), "pt") as f:
            assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}, weights


def test_recipes_reproduce_the_shipped_diffusion_settings():
    """Regression: the shapes-ldm recipe trained 5000 steps of the plain defaults, not the shipped preset."""
    from train.defaults import RECIPES

    args = {r.name: r.args for r in RECIPES}
    assert args["shapes-ldm"][:2] == ["--preset", "shapes-tiny"] and args["shapes-vae-kl"][:2] == ["--preset", "shapes-f4"]
    from t2i.diffusion.options import load_sampling_options

    sampling = load_sampling_options(ROOT / "shapes-ldm")  # diffusers' option names (older files: steps/guidance)
    preset = json.loads((ROOT.parents[0] / "diffusion" / "presets" / "ldm" / "shapes-tiny.json").read_text())
    assert preset["guidance"] == sampling.guidance_scale and preset["sample_steps"] == sampling.num_inference_steps


def test_a_fresh_root_trains_against_the_shipped_clip(tmp_path):
    """Regression: `--only shapes-cvae --builtin-root EMPTY` looked for shapes-clip in the empty root."""
    from train.defaults import main

    root = tmp_path / "builtin"
    assert main(["--quick", "--only", "shapes-cvae", "--out", str(tmp_path / "runs"), "--builtin-root", str(root)]) == 0
    assert "--text-encoder shapes-clip " in (root / "shapes-cvae" / "README.md").read_text()


def test_unknown_name_is_refused(tmp_path):
    from train.defaults import main

    with pytest.raises(SystemExit, match="unknown name"):
        main(["--only", "shapes-nope", "--out", str(tmp_path)])


def test_registry_loads_a_run_folder_through_its_model(tmp_path):
    """Regression: `t2i sample --model RUN` failed on a run folder (RUN/config.json has no family)."""
    from train import vae

    vae.main(["--steps", "1", "--batch-size", "8", "--n", "16", "--latent-dim", "2", "--hidden", "16",
              "--checkpoint-every", "0", "--out", str(tmp_path / "run")])
    assert len(load_generator(tmp_path / "run").generate(seed=0, num_images_per_prompt=2)) == 2


def test_a_staged_recipe_starts_each_run_from_the_model_of_the_run_before(tmp_path, monkeypatch):
    """shapes-clip: NegCLIP on plain shapes, then three fine-tuning runs, each from the last one's model."""
    import train.clip
    from train.defaults import main

    calls: list[list[str]] = []
    monkeypatch.setattr(train.clip, "main", lambda args: calls.append(list(args)) or 0)
    main(["--only", "shapes-clip", "--out", str(tmp_path / "runs"), "--install", "false"])
    run = tmp_path / "runs" / "shapes-clip"
    outs = [c[c.index("--out") + 1] for c in calls]
    assert outs == [str(run / "stage1"), str(run / "stage2"), str(run / "stage3"), str(run)]
    assert calls[0][:2] == ["--preset", "t2i-tiny-negclip"] and "--pretrained" not in calls[0]
    for previous, call in zip(outs, calls[1:]):
        assert call[call.index("--pretrained") + 1] == str(Path(previous) / "model")
    assert "--lock-text" in calls[-1] and "{previous}" not in " ".join(sum(calls, []))
