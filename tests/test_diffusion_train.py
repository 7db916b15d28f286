"""Latent diffusion training: the loss against its definitions, caches, and 2-step runs of
``t2i train vae-kl`` and ``t2i train ldm`` (from scratch, cached + v-prediction + min-SNR,
LoRA fine-tuning, fine-tuning a Stable-Diffusion-layout folder). 16 px, tiny models."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from diffusers.training_utils import compute_snr

from t2i.diffusion.first_stage import build_vae, measure_scaling_factor
from t2i.diffusion.pipeline import training_scheduler
from t2i.diffusion.training import diffusion_loss, drop_captions, sample_cached, snr

TINY = ["--data", "shapes", "--size", "16", "--n", "32", "--batch-size", "8", "--steps", "2", "--log-every", "1"]
GRID = ["--sample-steps", "2", "--sample-prompts", "a red circle"]


class EchoUNet(torch.nn.Module):
    """Predicts a fixed tensor, so the loss can be checked by hand."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x, t, encoder_hidden_states):
        return type("Out", (), {"sample": self.out})()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_diffusion_loss_matches_its_definition(prediction_type):
    scheduler = training_scheduler(prediction_type)
    z0, pred = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    loss = diffusion_loss(EchoUNet(pred), scheduler, z0, torch.zeros(3, 1, 1), torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)  # replay the noise and timesteps it drew
    eps, t = torch.randn(z0.shape, generator=g), torch.randint(0, 1000, (3,), generator=g)
    abar = scheduler.alphas_cumprod[t].view(3, 1, 1, 1)
    target = eps if prediction_type == "epsilon" else abar.sqrt() * eps - (1 - abar).sqrt() * z0  # Salimans & Ho, Sec. 4
    torch.testing.assert_close(loss, (pred - target).pow(2).mean(dim=(1, 2, 3)))

    weighted = diffusion_loss(EchoUNet(pred), scheduler, z0, torch.zeros(3, 1, 1), torch.Generator().manual_seed(0),
                              snr_gamma=5.0)
    s = compute_snr(scheduler, t)  # diffusers' reference SNR
    torch.testing.assert_close(snr(scheduler, t), s)
    denominator = s if prediction_type == "epsilon" else s + 1
    torch.testing.assert_close(weighted, loss * torch.clamp(s, max=5.0) / denominator)


def test_cached_moments_sample_the_same_latents_as_the_posterior():
    vae = build_vae("f4-test", sample_size=16)
    posterior = vae.encode(torch.rand(2, 3, 16, 16) * 2 - 1).latent_dist
    moments = torch.cat([posterior.mean, posterior.std], dim=1)  # what the cache stores
    a = sample_cached(moments, torch.Generator().manual_seed(3))
    b = posterior.sample(torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_caption_dropout_rate():
    texts = drop_captions(["a red circle"] * 4000, 0.1, torch.Generator().manual_seed(0))
    assert 0.08 < texts.count("") / 4000 < 0.12 and set(texts) == {"", "a red circle"}


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    import train.vae_kl

    out = tmp_path_factory.mktemp("vae") / "run"
    assert train.vae_kl.main([*TINY, "--arch", "f4-test", "--scale-images", "32", "--eval-images", "8",
                              "--out", str(out)]) == 0
    return out


def test_vae_kl_run_stores_the_measured_scaling_factor(vae_run):
    from t2i.data import load_dataset

    vae = AutoencoderKL.from_pretrained(vae_run / "vae")  # diffusers' own layout
    metrics = json.loads((vae_run / "vae_metrics.json").read_text())
    assert vae.config.scaling_factor == pytest.approx(metrics["scaling_factor"])
    assert metrics["factor"] == 4 and metrics["latent_shape"] == [4, 4, 4]
    images = torch.stack([load_dataset("shapes", size=16, n=32)[i]["image"] for i in range(32)]) * 2 - 1
    again = measure_scaling_factor(vae, [images], max_images=32)  # 1 / std, measured again on the same data
    assert vae.config.scaling_factor == pytest.approx(again, rel=1e-4)
    assert (vae_run / "reconstructions.png").is_file() and (vae_run / "curves.png").is_file()


def test_vae_kl_adversarial_phase_runs(tmp_path):
    import train.vae_kl

    out = tmp_path / "adv"
    assert train.vae_kl.main([*TINY, "--arch", "f4-test", "--adv-weight", "0.1", "--adv-start", "1", "--scale-images",
                              "16", "--eval-images", "8", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "d_loss" not in rows[0] and np.isfinite(rows[1]["d_loss"])  # the discriminator starts at step 1


def test_vae_kl_on_digits_evaluates_the_whole_small_test_split(tmp_path):
    """Regression: the default --eval-images 512 exceeds digits' 355 test images and crashed after training."""
    import train.vae_kl

    out = tmp_path / "digits"
    assert train.vae_kl.main(["--data", "digits", "--size", "16", "--batch-size", "8", "--steps", "2", "--arch",
                              "f4-test", "--scale-images", "16", "--out", str(out)]) == 0
    metrics = json.loads((out / "vae_metrics.json").read_text())
    assert np.isfinite(metrics["test_psnr_db"]) and (out / "vae" / "config.json").is_file()


@pytest.fixture(scope="module")
def ldm_run(vae_run, tmp_path_factory):
    import train.ldm
    from t2i.clip.testing import make_tiny_clip

    clip = make_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")
    out = tmp_path_factory.mktemp("ldm") / "run"
    assert train.ldm.main([*TINY, *GRID, "--vae", str(vae_run), "--clip", str(clip), "--unet", "test",
                           "--ema-decay", "0.9", "--out", str(out)]) == 0
    return out


def test_ldm_run_is_a_pipeline_folder_served_by_the_registry(ldm_run):
    from gan_baselines.registry import load_generator

    assert (ldm_run / "model_index.json").is_file() and list((ldm_run / "samples").glob("samples_*.png"))
    saved = json.loads((ldm_run / "t2i_sampling.json").read_text())  # DiffusionOptions, diffusers' names
    assert saved["sampler"] == "dpm-solver++" and {"num_inference_steps", "guidance_scale"} <= set(saved)
    gen = load_generator(ldm_run)
    images = gen.generate(["a red circle"], seed=0, num_images_per_prompt=2, num_inference_steps=2)
    assert len(images) == 2 and images[0].size == (16, 16)
    assert gen.pipe.vae.config.scaling_factor != 0.18215  # the measured factor travelled with the VAE


def test_ldm_cached_v_prediction_min_snr_run(vae_run, ldm_run, tmp_path):
    import train.ldm

    out = tmp_path / "cached"
    assert train.ldm.main([*TINY, *GRID, "--vae", str(vae_run), "--clip", str(ldm_run), "--unet", "test", "--cache",
                           "--prediction-type", "v_prediction", "--snr-gamma", "5", "--out", str(out)]) == 0
    scheduler = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction"
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_ldm_lora_fine_tuning_saves_adapters_apart(ldm_run, tmp_path):
    import train.ldm
    from t2i.diffusion.pipeline import load_generator

    out = tmp_path / "lora"
    assert train.ldm.main([*TINY, *GRID, "--init", str(ldm_run), "--lora-rank", "2", "--lr", "0.05",
                           "--warmup-steps", "1", "--out", str(out)]) == 0
    assert (out / "pytorch_lora_weights.safetensors").is_file() and not (out / "unet").exists()
    assert json.loads((out / "t2i_lora.json").read_text())["base"] == str(ldm_run.resolve())
    from pathlib import Path

    from t2i.provenance import trained_on

    assert trained_on(ldm_run).data == "shapes" and Path(trained_on(ldm_run).clip).is_absolute()  # the tiny CLIP
    assert trained_on(out).clip == trained_on(ldm_run).clip and trained_on(out).words == trained_on(ldm_run).words
    base = load_generator(ldm_run).generate(["a red circle"], seed=0, num_inference_steps=2)[0]
    tuned = load_generator(out).generate(["a red circle"], seed=0, num_inference_steps=2)[0]  # base + LoRA
    assert np.abs(np.asarray(base, dtype=float) - np.asarray(tuned, dtype=float)).max() > 0


def test_ldm_fine_tunes_a_stable_diffusion_folder(tmp_path):
    import train.ldm
    from t2i.diffusion.testing import make_sd_folder

    sd = make_sd_folder(tmp_path / "sd")
    out = tmp_path / "ft"
    assert train.ldm.main([*TINY, *GRID, "--init", str(sd), "--out", str(out)]) == 0
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline.from_pretrained(out)  # still loads in stock diffusers


def test_vae_kl_decoder_fine_tune_keeps_the_latent_space(vae_run, tmp_path):
    """--init --train-part decoder: the encoder (so the latents a diffusion model learnt) and the scaling
    factor stay the base's, the decoder moves; --train-part decoder without --init is refused."""
    import train.vae_kl

    out = tmp_path / "ft"
    assert train.vae_kl.main([*TINY, "--init", str(vae_run), "--train-part", "decoder", "--size", "32", "--lr", "0.01",
                              "--scale-images", "16", "--eval-images", "8", "--out", str(out)]) == 0
    base, tuned = AutoencoderKL.from_pretrained(vae_run / "vae"), AutoencoderKL.from_pretrained(out / "vae")
    old, new = base.state_dict(), tuned.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith(("encoder.", "quant_conv.")))
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("decoder."))
    assert tuned.config.scaling_factor == base.config.scaling_factor and tuned.config.sample_size == 32
    with pytest.raises(SystemExit, match="give --init"):
        train.vae_kl.main([*TINY, "--train-part", "decoder", "--out", str(tmp_path / "x")])


def test_ldm_fine_tune_replaces_the_first_stage_and_text_encoder_at_another_size(vae_run, ldm_run, tmp_path):
    """--init BASE --vae V --clip C --size S: the saved pipeline (full) or the LoRA run folder carries the
    replaced parts and the new default size; the registry loads both with them."""
    import train.ldm
    from t2i.diffusion.first_stage import load_vae
    from t2i.diffusion.pipeline import load_generator

    tuned_vae = tmp_path / "vae"
    import train.vae_kl

    assert train.vae_kl.main([*TINY, "--init", str(vae_run), "--train-part", "decoder", "--lr", "0.01",
                              "--scale-images", "16", "--eval-images", "8", "--out", str(tuned_vae)]) == 0
    replace = ["--init", str(ldm_run), "--vae", str(tuned_vae), "--clip", str(ldm_run), "--size", "32"]
    full, lora = tmp_path / "full", tmp_path / "lora"
    assert train.ldm.main([*TINY, *GRID, *replace, "--out", str(full)]) == 0
    assert train.ldm.main([*TINY, *GRID, *replace, "--lora-rank", "2", "--out", str(lora)]) == 0
    record = json.loads((lora / "t2i_lora.json").read_text())
    assert record["replaced"] == ["vae", "text_encoder"] and record["sample_size"] == 8
    for run in (full, lora):  # the app scores with the CLIP that replaced the base's (t2i.provenance)
        assert json.loads((run / "t2i_training.json").read_text())["clip"] == str(ldm_run.resolve())
    decoder = load_vae(tuned_vae).state_dict()
    for run in (full, lora):
        gen = load_generator(run)
        assert gen.generate(["a red circle"], seed=0, num_inference_steps=2)[0].size == (32, 32)
        assert all(torch.equal(v, gen.pipe.vae.state_dict()[k]) for k, v in decoder.items())
    # the LoRA run's model card: its stock diffusers code loads the replaced parts beside the base (t2i.model_card)
    stock_code = re.findall(r"```python\n(.*?)```", (lora / "README.md").read_text(), flags=re.S)[0]
    assert 'subfolder="vae"' in stock_code and 'subfolder="text_encoder"' in stock_code
    namespace: dict = {}
    exec(stock_code, namespace)  # noqa: S102  (the card's own code)
    ours = load_generator(lora).generate(prompts=["a red circle"], seed=0)[0]
    np.testing.assert_array_equal(np.asarray(namespace["image"]), np.asarray(ours))
    wrong = tmp_path / "wrong_vae"  # 8 latent channels for a 4-channel UNet
    build_vae("f4-test", sample_size=16, latent_channels=8).save_pretrained(wrong)
    with pytest.raises(SystemExit, match="8 latent channels but the --init UNet takes 4"):
        train.ldm.main([*TINY, "--init", str(ldm_run), "--vae", str(wrong), "--out", str(tmp_path / "x")])


def test_partial_captions_enter_the_text_table_and_replace_only_one_object_captions():
    from t2i.diffusion.training import CachedLatents, add_partial_captions, draw_partial

    one = {"caption": "a small cyan square in the top left", "relation": "",
           "objects": [{"colour": "cyan", "shape": "square", "size": "small", "position": "top left"}]}
    two = {"caption": "a red circle above a blue cross", "relation": "above",
           "objects": [{"colour": "red", "shape": "circle", "size": "small"},
                       {"colour": "blue", "shape": "cross", "size": "small"}]}
    texts = [one["caption"], two["caption"]]
    cached = CachedLatents(torch.zeros(3, 2, 2, 2), torch.tensor([0, 1, 0]), list(texts))
    assert add_partial_captions(cached, [one, two, one]) == 2
    assert cached.texts[:2] == texts  # existing ids keep their meaning
    assert [cached.texts[i] for i in cached[0]["partial_ids"]] == [
        "a cyan square in the top left", "a small square in the top left", "a small cyan square"]
    assert cached[1]["partial_ids"].tolist() == [-1, -1, -1] and cached[2]["partial_ids"].equal(cached[0]["partial_ids"])

    ids, partial = torch.tensor([0, 1, 0] * 300), torch.stack([cached[i]["partial_ids"] for i in (0, 1, 2)] * 300)
    always = draw_partial(ids, partial, 1.0, torch.Generator().manual_seed(0))
    assert (always[1::3] == 1).all()  # the two-object scene keeps its caption
    drawn = torch.bincount(always[0::3])[partial[0]].float() / 300
    assert ((drawn - 1 / 3).abs() < 0.06).all()  # each partial caption, uniformly; never the full one
    assert draw_partial(ids, partial, 0.0, torch.Generator().manual_seed(0)).equal(ids)
    half = draw_partial(ids, partial, 0.5, torch.Generator().manual_seed(0))
    assert 0.4 < (half[0::3] != 0).float().mean() < 0.6


def test_reworded_captions_are_true_rewordings_drawn_from_the_text_table():
    """The built-ins drew "cyan cross above yellow triangle" (articles left out) and two-object prompts with sizes
    about as well as a coin flip on the relation: trained on one wording (benchmarks/caption_form.py)."""
    from t2i.data.shapes import make_scenes
    from t2i.clip.negatives import reworded_captions
    from t2i.diffusion.training import CachedLatents, add_reworded_captions, draw_partial

    one = make_scenes(1, seed=5, p_two=0.0)[0]
    two = next(s for s in make_scenes(20, seed=5, p_two=1.0) if s["relation"] == "to the right of")
    vertical = next(s for s in make_scenes(20, seed=5, p_two=1.0) if s["relation"] == "above")
    assert reworded_captions(one) == [one["caption"].replace("a ", "", 1).replace("the ", "")]
    a, b = two["objects"]
    sized = f"a small {a['colour']} {a['shape']} {two['relation']} a small {b['colour']} {b['shape']}"
    assert reworded_captions(two)[1] == sized
    assert reworded_captions(two)[2] == sized.replace("a small", "small").replace(" the ", " ")
    assert " a " not in f" {reworded_captions(two)[0]} " and " the " not in f" {reworded_captions(two)[0]} "
    short = two["caption"].replace(" to the right of ", " right of ")  # "right of" for "to the right of"
    assert reworded_captions(two)[3:] == [short, re.sub(r"\ba ", "", short)] and len(reworded_captions(vertical)) == 3
    texts = [one["caption"], two["caption"]]
    cached = CachedLatents(torch.zeros(3, 2, 2, 2), torch.tensor([0, 1, 0]), list(texts))
    assert add_reworded_captions(cached, [one, two, one]) == 6 and cached.texts[:2] == texts
    assert [cached.texts[i] for i in cached[1]["reworded_ids"]] == reworded_captions(two)
    assert cached[0]["reworded_ids"].tolist()[1:] == [-1] * 4  # one-object scenes have one rewording
    assert cached[2]["reworded_ids"].equal(cached[0]["reworded_ids"])
    ids = torch.tensor([0, 1, 0])
    reworded = torch.stack([cached[i]["reworded_ids"] for i in range(3)])
    always = draw_partial(ids, reworded, 1.0, torch.Generator().manual_seed(0))
    assert [cached.texts[i] for i in always][::2] == reworded_captions(one) * 2 and int(always[1]) in reworded[1]


def test_a_partial_caption_is_never_replaced_by_a_rewording():
    """Regression: a rewording drawn for a scene replaced the partial caption drawn for it, so a run with both options
    saw fewer partial captions than asked (0.35 of the one-object scenes for 0.5)."""
    from t2i.data.shapes import make_scenes
    from t2i.diffusion.training import CachedLatents, add_partial_captions, add_reworded_captions, draw_captions

    scenes = make_scenes(400, seed=2, p_two=0.5)
    cached = CachedLatents(torch.zeros(len(scenes), 2, 2, 2), torch.arange(len(scenes)), [s["caption"] for s in scenes])
    add_partial_captions(cached, scenes), add_reworded_captions(cached, scenes)
    batch = torch.utils.data.default_collate([cached[i] for i in range(len(scenes))])  # what a trainer's loader gives
    one = batch["partial_ids"][:, 0] >= 0
    ids = draw_captions(batch, 0.5, 0.3, torch.Generator().manual_seed(0))
    partial = (ids[:, None] == batch["partial_ids"]).any(1)
    reworded = (ids[:, None] == batch["reworded_ids"]).any(1)
    assert 0.4 < partial[one].float().mean() < 0.6  # as asked, rewordings or not
    assert 0.08 < reworded[one].float().mean() < 0.22 and 0.2 < reworded[~one].float().mean() < 0.4  # 0.5 x 0.3, 0.3
    assert not (partial & reworded).any() and not partial[~one].any()


def test_ldm_partial_and_reworded_captions_run_and_refusal(vae_run, ldm_run, tmp_path, capsys):
    import train.ldm

    out = tmp_path / "partial"
    assert train.ldm.main([*TINY, *GRID, "--vae", str(vae_run), "--clip", str(ldm_run), "--unet", "test", "--cache",
                           "--partial-captions", "0.5", "--reworded-captions", "0.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "partial captions:" in printed and "reworded captions:" in printed
    assert (out / "unet" / "config.json").exists()
    from t2i.provenance import joined_apart, shapes_pairs, trained_on, unseen_next

    trained = trained_on(out)  # its record knows the rewordings it was shown: no warning for them
    assert trained.never_next == shapes_pairs("never_next", reworded=True) != shapes_pairs("never_next")
    assert unseen_next("cyan cross above yellow triangle", trained.never_next) == []
    assert joined_apart("a small red circle above a large blue square", trained.apart) == [("small", "large"),
                                                                                           ("above", "large")]
    for flag in ("--partial-captions", "--reworded-captions"):
        with pytest.raises(SystemExit, match="use it with --data shapes --cache"):
            train.ldm.main([*TINY, "--vae", str(vae_run), flag, "0.5", "--out", str(tmp_path / "x")])
        with pytest.raises(SystemExit, match=f"{flag} must be a probability"):
            train.ldm.main([*TINY, "--vae", str(vae_run), "--cache", flag, "1.5", "--out", str(tmp_path / "x")])


def test_ldm_cache_dir_runs_learn_what_the_memory_cache_learns_and_reuse_the_folder(vae_run, ldm_run, tmp_path, capsys):
    """--cache-dir: the first run writes the cache, the next one reuses it without encoding anything (its files
    untouched), both train exactly as --cache in memory does; a run on other data is refused; --cache-dir
    without --cache is refused."""
    import train.ldm
    from diffusers import UNet2DConditionModel

    common = [*TINY, *GRID, "--vae", str(vae_run), "--clip", str(ldm_run), "--unet", "test", "--cache",
              "--checkpoint-every", "0", "--first-stage-check", "0"]
    cache = tmp_path / "cache"
    assert train.ldm.main([*common, "--out", str(tmp_path / "memory")]) == 0
    assert train.ldm.main([*common, "--cache-dir", str(cache), "--out", str(tmp_path / "first")]) == 0
    assert "reusing" not in capsys.readouterr().out
    written = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert {"fingerprint.json", "moments.npy", "text_ids.npy", "texts.jsonl", "text_states.npy"} <= set(written)
    assert train.ldm.main([*common, "--cache-dir", str(cache), "--out", str(tmp_path / "second")]) == 0
    out = capsys.readouterr().out
    assert f"latent cache: reusing {cache} (32 items" in out and "text cache: reusing" in out
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == written  # read, never rewritten
    memory = UNet2DConditionModel.from_pretrained(tmp_path / "memory" / "unet").state_dict()
    for run in ("first", "second"):
        trained = UNet2DConditionModel.from_pretrained(tmp_path / run / "unet").state_dict()
        assert all(torch.equal(trained[k], memory[k]) for k in memory), run
    with pytest.raises(ValueError, match=r"\(it differs in data.seed\): give another --cache-dir or delete"):
        train.ldm.main([*common, "--seed", "1", "--cache-dir", str(cache), "--out", str(tmp_path / "other")])
    with pytest.raises(SystemExit, match="add --cache"):
        train.ldm.main([*TINY, "--vae", str(vae_run), "--cache-dir", str(cache), "--out", str(tmp_path / "x")])


def test_ldm_run_resumed_with_more_steps_learns_what_one_longer_run_learns(vae_run, ldm_run, tmp_path):
    """The built-in recipe's options (cache, partial captions, two-object share, fused AdamW): 2 steps, then the same
    run resumed to 4, saves the same EMA UNet as one 4-step run (the learning rate is constant after warm-up, so
    a recipe's step count can be raised by resuming its last checkpoint)."""
    import train.ldm
    from diffusers import UNet2DConditionModel

    common = [*TINY, *GRID, "--vae", str(vae_run), "--clip", str(ldm_run), "--unet", "test", "--cache",
              "--partial-captions", "0.5", "--p-two", "0.7", "--fused-adamw", "--warmup-steps", "2",
              "--ema-decay", "0.5", "--first-stage-check", "0"]
    assert train.ldm.main([*common, "--steps", "4", "--checkpoint-every", "0", "--out", str(tmp_path / "straight")]) == 0
    assert train.ldm.main([*common, "--steps", "2", "--checkpoint-every", "2", "--out", str(tmp_path / "split")]) == 0
    halfway = UNet2DConditionModel.from_pretrained(tmp_path / "split" / "unet").state_dict()
    assert train.ldm.main([*common, "--steps", "4", "--checkpoint-every", "2", "--resume", "latest",
                           "--out", str(tmp_path / "split")]) == 0
    straight = UNet2DConditionModel.from_pretrained(tmp_path / "straight" / "unet").state_dict()
    split = UNet2DConditionModel.from_pretrained(tmp_path / "split" / "unet").state_dict()
    assert all(torch.equal(split[k], straight[k]) for k in straight)
    assert not all(torch.equal(halfway[k], straight[k]) for k in straight)  # the last two steps did learn


def test_ldm_refuses_lora_without_a_base(tmp_path):
    import train.ldm

    with pytest.raises(SystemExit, match="--lora-rank adapts an existing pipeline"):
        train.ldm.main([*TINY, "--vae", "x", "--lora-rank", "4", "--out", str(tmp_path / "x")])


@pytest.mark.slow
def test_fine_tune_measures_the_first_stage_on_the_data_and_warns_with_the_remedy(tmp_path, capsys):
    """Issue 16: fine-tunes on white-background images gave coloured blobs on black and nothing warned."""
    import json

    from PIL import Image, ImageDraw

    import train.ldm

    folder = tmp_path / "white"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(8):  # dark strokes on white: far from the black-background shapes the built-in first stage knows
        im = Image.new("RGB", (32, 32), "white")
        ImageDraw.Draw(im).line([(2, 4 * i), (30, 31 - 3 * i)], fill=(20 * i, 0, 90), width=2)
        im.save(folder / "images" / f"{i}.png")
        rows.append({"file_name": f"images/{i}.png", "text": f"a stroke number {i}"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--init", "shapes-ldm", "--steps", "1", "--batch-size", "4", "--checkpoint-every", "0",
              "--first-stage-check", "8", "--sample-steps", "1"]
    assert train.ldm.main([*common, "--data", str(folder), "--out", str(tmp_path / "white-run")]) == 0
    out = capsys.readouterr().out
    assert "first stage:" in out and f"t2i train vae-kl --data {folder}" in out
    assert train.ldm.main([*common, "--data", "shapes", "--n", "8", "--out", str(tmp_path / "shapes-run")]) == 0
    out = capsys.readouterr().out
    assert "first stage:" in out and "warning: the first stage" not in out
    # issue 16: the fine-tune records its captions' words; with its base's, they make its vocabulary
    from t2i.data.shapes import vocabulary
    from t2i.provenance import trained_on, unknown_words

    tuned = trained_on(tmp_path / "white-run")
    assert tuned.data == str(folder) and tuned.clip == "shapes-clip"  # the base's text encoder
    assert tuned.words == vocabulary() | {"stroke", "number"} | {str(i) for i in range(8)}
    assert unknown_words("a stroke number 3 above a red circle", tuned.words) == []
    assert unknown_words("a photo of a cat", tuned.words) == ["photo", "cat"]


def test_load_vae_refuses_other_models_and_never_unpickles(tmp_path):
    """Issue 14: `t2i train ldm --vae <a GAN folder>` tried to unpickle a weights file; now a one-line refusal."""
    import json
    import pickle

    from t2i.diffusion.first_stage import build_vae, load_vae

    gan = tmp_path / "gan"
    gan.mkdir()
    (gan / "config.json").write_text(json.dumps({"family": "dcgan", "z_dim": 64}))
    with pytest.raises(FileNotFoundError, match="holds no VAE: its config.json describes dcgan"):
        load_vae(gan)

    class Marker:  # unpickling this would write a file
        def __reduce__(self):
            return (open, (str(tmp_path / "unpickled"), "w"))

    vae_dir = tmp_path / "vae"
    build_vae("f4-test", sample_size=16).save_pretrained(vae_dir)
    for weights in vae_dir.glob("*.safetensors"):
        weights.unlink()
    (vae_dir / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(Marker()))
    with pytest.raises(OSError):
        load_vae(vae_dir)
    assert not (tmp_path / "unpickled").exists()


def assert_same_training(a: dict, b: dict, lr: float, steps: int) -> None:
    """Weights after the same steps computed two ways: all but a few agree to float tolerance; Adam moves a
    weight by about ``lr`` per step whatever its gradient's size, so where a gradient is ~0 a last-bit
    difference (compiled kernels) may flip that step's sign: bounded by ``2 lr`` per step."""
    diff = torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in b])
    assert float(diff.max()) <= 2 * lr * steps
    assert float((diff > 1e-5).float().mean()) < 1e-3, f"{int((diff > 1e-5).sum())} of {diff.numel()} weights differ"


@pytest.mark.parametrize("option", ["--fused-adamw", "--gradient-checkpointing",
                                    pytest.param("--compile", marks=pytest.mark.compile)])
def test_ldm_speed_options_learn_what_the_plain_step_learns(vae_run, ldm_run, tmp_path, option):
    """A 2-step run with a speed option saves a pipeline (and checkpoints of the plain module's weights,
    EMA included) equal to the plain run's within float tolerance."""
    import train.ldm
    from diffusers import UNet2DConditionModel

    from gan_baselines.registry import load_generator
    from t2i.runtime.checkpoint import read_checkpoint

    common = [*TINY, *GRID, "--vae", str(vae_run), "--clip", str(ldm_run), "--unet", "test", "--cache", "--lr", "1e-3",
              "--warmup-steps", "1", "--ema-decay", "0.5", "--checkpoint-every", "1"]
    assert train.ldm.main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert train.ldm.main([*common, option, "--out", str(tmp_path / "fast")]) == 0
    plain = UNet2DConditionModel.from_pretrained(tmp_path / "plain" / "unet").state_dict()
    fast = UNet2DConditionModel.from_pretrained(tmp_path / "fast" / "unet").state_dict()
    assert plain.keys() == fast.keys()
    assert_same_training(fast, plain, lr=1e-3, steps=2)
    _, states = read_checkpoint(tmp_path / "fast" / "checkpoints" / "step_000002")
    _, reference = read_checkpoint(tmp_path / "plain" / "checkpoints" / "step_000002")
    assert states["model_0"].keys() == reference["model_0"].keys()  # the plain module's names, no _orig_mod.
    assert_same_training(states["model_0"], reference["model_0"], lr=1e-3, steps=2)
    first = read_checkpoint(tmp_path / "plain" / "checkpoints" / "step_000001")[1]["model_0"]
    assert any(not torch.equal(first[k], reference["model_0"][k]) for k in first)  # the weights did move
    images = load_generator(tmp_path / "fast").generate(["a red circle"], seed=0, num_inference_steps=2)
    again = load_generator(tmp_path / "plain").generate(["a red circle"], seed=0, num_inference_steps=2)
    assert np.abs(np.asarray(images[0], dtype=float) - np.asarray(again[0], dtype=float)).max() <= 2


def test_gradient_checkpointing_recomputes_the_unet_blocks_in_backward(vae_run, ldm_run, tmp_path, monkeypatch):
    """--gradient-checkpointing goes through torch.utils.checkpoint in the training step (a LoRA run too, whose
    frozen base weights take no gradient), and never in sampling (the grids, under no_grad)."""
    import torch.utils.checkpoint

    import train.ldm

    calls = []
    original = torch.utils.checkpoint.checkpoint

    def counted(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counted)
    common = [*TINY, *GRID, "--steps", "1", "--checkpoint-every", "0", "--gradient-checkpointing"]
    assert train.ldm.main([*common, "--vae", str(vae_run), "--clip", str(ldm_run), "--unet", "test",
                           "--out", str(tmp_path / "full")]) == 0
    assert calls and all(calls)
    calls.clear()
    assert train.ldm.main([*common, "--init", str(ldm_run), "--lora-rank", "2", "--out", str(tmp_path / "lora")]) == 0
    assert calls and all(calls)


@pytest.mark.parametrize("preset, middle_side", [("tiny", 2), ("tiny-2level", 4)])
def test_unet_presets_put_the_middle_block_at_their_stated_resolution(preset, middle_side, tmp_path):
    # "tiny" halves 8x8 latents twice, where one 2x2 cell covers both the centre and the bottom-right quarter;
    # "tiny-2level" keeps a 4x4 middle. Both are stock diffusers UNets (saved and reloaded as they are).
    from diffusers import UNet2DConditionModel

    from t2i.diffusion.unet import build_unet
    unet = build_unet(preset, 8, 8, 64)
    seen = []
    unet.mid_block.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape[-2:])))
    out = unet(torch.randn(2, 8, 8, 8), torch.tensor([10, 500]), torch.randn(2, 5, 64)).sample
    assert seen == [(middle_side, middle_side)] and out.shape == (2, 8, 8, 8)
    unet.save_pretrained(tmp_path)
    again = UNet2DConditionModel.from_pretrained(tmp_path)
    assert list(again.config.block_out_channels) == list(unet.config.block_out_channels)


class PixelFirstStage(torch.nn.Module):
    """An AutoencoderKL stand-in whose latent is the image itself: decode(encode(x)) = x, or with the red and
    blue channels swapped (``swap=True``), a first stage that loses colour."""

    def __init__(self, swap: bool = False):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the stand-in a device
        self.swap = swap

    def encode(self, x):
        return type("Out", (), {"latent_dist": type("Dist", (), {"mode": lambda _: x})()})()

    def decode(self, z):
        return type("Out", (), {"sample": z.flip(1) if self.swap else z})()


def test_shapes_reconstruction_accuracy_judges_what_the_first_stage_gives_back():
    """`t2i train vae-kl`'s shapes ceiling check: a lossless first stage gives back every one-object scene right on both
    splits (the [0, 1] <-> [-1, 1] mapping and the 8-bit round trip are right), a colour-swapping one loses the colours
    that swapping red and blue changes, and keeps every shape."""
    from train.vae_kl import shapes_reconstruction_accuracy

    lossless = shapes_reconstruction_accuracy(PixelFirstStage(), torch.device("cpu"), 32, n=40)
    assert set(lossless) == {"test", "novel"}
    assert all(lossless[split]["all_correct"] == 1.0 for split in lossless)
    swapped = shapes_reconstruction_accuracy(PixelFirstStage(swap=True), torch.device("cpu"), 32, n=40)
    assert all(swapped[split]["shape"] == 1.0 for split in swapped)
    assert all(swapped[split]["colour"] < 0.8 for split in swapped)


def test_cache_flops_charge_the_encoders_once_per_item_in_place_of_once_per_step(vae_run, ldm_run, tmp_path):
    """The bench's price of ``ldm --cache`` (t2i.bench.cost.trainer_cache_flops): a cached step runs no encoder, and
    the one-off build runs the encoders once per training item: what a plain step of 8 spends on them, the build of
    16 scenes spends twice (give or take a caption: the empty one of guidance dropout, a repeated one)."""
    from t2i.bench.cost import trainer_cache_flops

    argv = ["--data", "shapes", "--size", "16", "--n", "16", "--batch-size", "8", "--log-every", "1", *GRID,
            "--vae", str(vae_run), "--clip", str(ldm_run), "--unet", "test", "--cache-dir", str(tmp_path / "kept")]
    counts = trainer_cache_flops("train.ldm", argv, tmp_path / "count")
    assert not (tmp_path / "count").exists() and not (tmp_path / "kept").exists()  # a kept cache would hide the build
    encoders_per_batch = counts["plain_step"] - counts["step"]
    assert 0 < counts["step"] < counts["plain_step"]
    assert 1.9 * encoders_per_batch <= counts["once"] <= 2.1 * encoders_per_batch, counts  # measured: 2.0


def test_first_stage_check_spreads_over_a_sorted_folder():
    """Regression: the check read the first 64 items only, so a folder sorted by kind (plain icons first,
    detailed ones last) was judged on its plain first kind, and a poor first stage went unwarned."""
    from t2i.diffusion.first_stage import load_vae
    from t2i.diffusion.training import reconstruction_psnr

    noise = torch.Generator().manual_seed(0)
    data = [{"image": torch.zeros(3, 32, 32)} for _ in range(64)]  # black first ...
    data += [{"image": torch.rand(3, 32, 32, generator=noise)} for _ in range(64)]  # ... then noise
    vae = load_vae("shapes-vae-kl").eval()
    with torch.no_grad():
        first = reconstruction_psnr(vae, data, "cpu", 16)
        spread = reconstruction_psnr(vae, data, "cpu", 16, spread=True)
        noise_only = reconstruction_psnr(vae, data[64:], "cpu", 16)
    assert spread < first - 5 and spread > noise_only  # half of the spread sample is noise
