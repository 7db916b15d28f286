"""The diffusion prior (t2i.prior, t2i train prior): loss by hand, diffusers-layout round trip, a 2-step run,
determinism under the seed, guidance, and the retrieval measure."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import PriorTransformer, UnCLIPScheduler

from t2i.prior import compare, load_prior, prior_loss, sample_prior, save_prior, set_clip_stats, to_prior_space
from t2i.prior.evaluate import gallery_ranks
from t2i.prior.model import predict_x0, random_conditions, tiny_prior, training_scheduler


def test_loss_matches_hand_computation():
    prior, scheduler = tiny_prior(), training_scheduler()
    cond = random_conditions(3)
    x0 = torch.randn(3, 8, generator=torch.Generator().manual_seed(5))
    loss = prior_loss(prior, scheduler, x0, cond, torch.Generator().manual_seed(7))

    g = torch.Generator().manual_seed(7)  # the same draws, in the same order: eps then t
    eps = torch.randn(3, 8, generator=g)
    t = torch.randint(0, 1000, (3,), generator=g)
    abar = scheduler.alphas_cumprod[t][:, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps  # Ho et al. 2020, Eq. 4
    pred = prior(x_t, timestep=t, proj_embedding=cond.pooled, encoder_hidden_states=cond.tokens,
                 attention_mask=cond.mask).predicted_image_embedding
    expected = ((pred - x0) ** 2).mean(1)  # x0 prediction, MSE per sample
    assert loss.shape == (3,)
    torch.testing.assert_close(loss, expected)


def test_padding_tokens_are_masked():
    prior, cond = tiny_prior(), random_conditions(2)
    x, t = torch.randn(2, 8), torch.tensor([10, 500])
    changed = cond[:]
    changed.tokens = cond.tokens.clone()
    changed.tokens[:, -1] += 5.0  # a padding position (mask False)
    torch.testing.assert_close(predict_x0(prior, x, t, cond), predict_x0(prior, x, t, changed))


def test_clip_stats_standardise_and_post_process_inverts():
    prior = tiny_prior()
    e = torch.randn(50, 8) * 3 + 1
    set_clip_stats(prior, e)
    x = to_prior_space(prior, e)
    torch.testing.assert_close(x.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(prior.post_process_latents(x), e, atol=1e-5, rtol=0)  # raw CLIP space (Kandinsky's)
    assert not prior.clip_mean.requires_grad and not prior.clip_std.requires_grad


def test_save_load_round_trip_in_diffusers_layout(tmp_path):
    prior, scheduler = tiny_prior(), training_scheduler()
    set_clip_stats(prior, torch.randn(20, 8))
    save_prior(tmp_path, prior, scheduler, {"clip": "shapes-clip", "guidance_scale": 4.0})
    loaded = PriorTransformer.from_pretrained(tmp_path / "prior").eval()  # plain diffusers, no t2i code
    sched = UnCLIPScheduler.from_pretrained(tmp_path / "scheduler")
    assert sched.config.prediction_type == "sample"
    cond, x, t = random_conditions(2), torch.randn(2, 8), torch.tensor([3, 900])
    with torch.no_grad():
        torch.testing.assert_close(predict_x0(loaded, x, t, cond), predict_x0(prior, x, t, cond))
        torch.testing.assert_close(loaded.post_process_latents(x), prior.post_process_latents(x))
    bundle = load_prior(tmp_path)
    assert bundle.info["clip"] == "shapes-clip" and bundle.info["family"] == "prior"
    assert not bundle.prior.clip_std.requires_grad


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_is_deterministic_in_the_seed(sampler):
    prior, scheduler = tiny_prior(), training_scheduler()
    cond, uncond = random_conditions(3), random_conditions(1, seed=1)
    a = sample_prior(prior, scheduler, cond, uncond, 5, 3.0, seed=0, sampler=sampler)
    b = sample_prior(prior, scheduler, cond, uncond, 5, 3.0, seed=0, sampler=sampler)
    c = sample_prior(prior, scheduler, cond, uncond, 5, 3.0, seed=1, sampler=sampler)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_guidance_changes_the_samples():
    prior, scheduler = tiny_prior(), training_scheduler()
    cond, uncond = random_conditions(3), random_conditions(1, seed=1)
    plain = sample_prior(prior, scheduler, cond, uncond, 5, 1.0, seed=0)
    guided = sample_prior(prior, scheduler, cond, uncond, 5, 4.0, seed=0)
    assert not torch.allclose(plain, guided, atol=1e-4)
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample_prior(prior, scheduler, cond, uncond, 5, 1.0, sampler="euler")


def test_retrieval_ranks_and_intervals():
    images = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    ranks = gallery_ranks(images, images, gallery=100)
    assert ranks.shape == (200,) and (ranks == 1).all()  # a perfect query finds its own image
    worst = gallery_ranks(-images, images, gallery=100)
    assert (worst == 100).all()
    res = compare(images, -images, images, gallery=100, n_boot=50)
    assert res["R@1"]["prior"]["mean"] == 1.0 and res["R@1"]["text"]["mean"] == 0.0
    assert res["R@1"]["margin"]["ci95"] == [1.0, 1.0]
    lo, hi = res["cosine"]["text"]["ci95"]
    assert lo <= res["cosine"]["text"]["mean"] <= hi


def test_two_step_cli_run(tmp_path):
    from train.prior import main

    out = tmp_path / "prior"
    assert main(["--steps", "2", "--n", "64", "--batch-size", "32", "--layers", "1", "--heads", "2", "--head-dim", "8",
                 "--eval-n", "40", "--gallery", "20", "--n-boot", "20", "--sample-steps", "2",
                 "--checkpoint-every", "0", "--out", str(out)]) == 0
    assert (out / "prior" / "config.json").exists() and (out / "scheduler" / "scheduler_config.json").exists()
    info = json.loads((out / "t2i_prior.json").read_text())
    assert info["clip"] == "shapes-clip" and info["num_inference_steps"] == 2
    metrics = json.loads((out / "prior_metrics.json").read_text())
    assert set(metrics["splits"]) == {"test", "novel"}
    assert metrics["splits"]["test"]["pairs"] == 40 and "margin" in metrics["splits"]["test"]["R@1"]
    bundle = load_prior(out)
    assert bundle.prior.config.num_layers == 1 and bundle.prior.clip_std.abs().sum() > 0


def test_held_out_sets_are_read_as_the_training_images(tmp_path):
    """Regression: the prior's held-out sets (--eval-data, --eval-splits) were read centre-cropped on black
    whatever the run's --resize / --background, so its retrieval scores measured other images than it learned."""
    from PIL import Image

    from train.prior import PriorConfig, eval_sets

    folder = tmp_path / "data" / "test"
    folder.mkdir(parents=True)
    Image.new("RGBA", (48, 16)).save(folder / "a.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "a wide drawing"}) + "\n")
    cfg = PriorConfig(data=str(tmp_path / "data"), eval_data=str(tmp_path / "data"), resize="random-crop",
                      background="white", eval_n=1)
    for split in ("eval-data", "test"):
        cfg.eval_data = str(tmp_path / "data") if split == "eval-data" else ""
        cfg.eval_splits = "test"
        augment = eval_sets(cfg)[split].augment
        assert (augment.resize, augment.background, augment.random_flip) == ("center-crop", "white", 0.0), split


def test_training_images_are_read_as_the_run_says(tmp_path):
    """Regression: the prior's training images were read centre-cropped on black whatever --resize /
    --background said, while its held-out sets honoured them; a random crop or flip is drawn once (the
    embeddings are cached), so it is refused."""
    from PIL import Image

    from train.prior import PriorConfig, training_set

    folder = tmp_path / "data" / "train"
    folder.mkdir(parents=True)
    Image.new("RGBA", (48, 16)).save(folder / "a.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "a wide drawing"}) + "\n")
    augment = training_set(PriorConfig(data=str(tmp_path / "data"), resize="pad", background="white")).augment
    assert (augment.resize, augment.background, augment.random_flip) == ("pad", "white", 0.0)
    for drawn in ({"resize": "random-crop"}, {"random_flip": 0.5}):
        with pytest.raises(ValueError, match="embeds each training image once"):
            training_set(PriorConfig(data=str(tmp_path / "data"), **drawn))


def test_auto_eval_splits_read_a_user_folders_test_split(tmp_path):
    """Regression: --eval-splits auto evaluated nothing on user data, even a folder with a test/ split."""
    from PIL import Image

    from train.prior import auto_splits

    assert auto_splits("shapes") == "test,novel" and auto_splits("digits") == "test"
    for split in ("train", "test"):
        (tmp_path / "data" / split).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / split / "a.png")
        row = json.dumps({"file_name": "a.png", "text": "a"})
        (tmp_path / "data" / split / "metadata.jsonl").write_text(row + "\n")
    assert auto_splits(str(tmp_path / "data")) == "test"
    assert auto_splits(str(tmp_path / "data" / "train")) == ""  # a single split: the training data itself


def test_a_held_out_split_smaller_than_the_gallery_ranks_among_its_own_pairs():
    """Regression: a user's 98-pair test split ended a finished run with "retrieval among 100 needs at least
    100 pairs"; now it ranks among 98, and a split too small to rank in is refused before training."""
    from train.prior import MIN_GALLERY, PriorConfig, galleries

    cfg = PriorConfig(data="mydata", gallery=100, eval_splits="test,novel")
    assert galleries(cfg, {"test": list(range(98)), "novel": list(range(500))}) == {"test": 98, "novel": 100}
    with pytest.raises(ValueError, match=f"needs at least {MIN_GALLERY} pairs.*--eval-splits ''"):
        galleries(cfg, {"test": list(range(MIN_GALLERY - 1))})  # asked for: refused
    said = []
    found = {"test": list(range(MIN_GALLERY - 1))}  # found by --eval-splits auto: left out, and said
    assert galleries(PriorConfig(data="mydata"), found, said.append) == {} and found == {}
    assert "fewer than the 10 retrieval needs: not evaluated" in said[0]
