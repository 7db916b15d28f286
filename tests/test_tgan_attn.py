"""The attention text GAN (tgan-attn): loss terms by hand, networks, determinism, a 2-step run."""

import json
import math
import random

import pytest
import torch

from gan_baselines import tgan_attn
from gan_baselines.diffaugment import brightness, cutout, diff_augment, translate
from gan_baselines.gan_losses import get_loss, mode_seeking
from gan_baselines.registry import load_generator
from gan_baselines.text_gan_losses import generator_loss, matching_aware_d_loss, r1_penalty
from t2i.generator import GenerationError
from t2i.io import load_weights

SP = lambda v: math.log1p(math.exp(v))  # noqa: E731  softplus


# ------------------------------------------------------------------ loss terms by hand
def test_matching_aware_d_loss_by_hand():
    # two samples, two heads; the second sample's "wrong" caption equals its own: no negative
    real = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    fake = torch.tensor([[-1.0, 0.0], [0.0, 0.0]])
    wrong = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    differs = torch.tensor([True, False])
    ns = matching_aware_d_loss(get_loss("non-saturating"), real, fake, wrong, differs, 0.5)
    # sample 0: mean(sp(-0), sp(-2)) + 0.5 mean(sp(-1), sp(0)) + 0.5 * sp(0) * (2 / 1)
    s0 = (SP(0) + SP(-2)) / 2 + 0.5 * (SP(-1) + SP(0)) / 2 + 0.5 * SP(0) * 2
    s1 = SP(-1) + 0.5 * SP(0)  # its wrong term is masked out
    torch.testing.assert_close(ns, torch.tensor([s0, s1]))
    hinge = matching_aware_d_loss(get_loss("hinge"), real, fake, wrong, differs, 0.5)
    # relu(1 - l) on real, relu(1 + l) on fake and wrong
    torch.testing.assert_close(hinge, torch.tensor([(1 + 0) / 2 + 0.5 * (0 + 1) / 2 + 0.5 * 1 * 2, 0 + 0.5 * 1]))
    # m = 0: a plain conditional discriminator, the wrong pairs do not count
    plain = matching_aware_d_loss(get_loss("hinge"), real, fake, None, None, 0.0)
    torch.testing.assert_close(plain, torch.tensor([0.5 + 0.5, 0.0 + 1.0]))


def test_generator_loss_by_hand_for_minimax_and_non_saturating():
    logits = torch.tensor([[0.0, 2.0]])
    torch.testing.assert_close(generator_loss(get_loss("non-saturating"), logits), torch.tensor([(SP(0) + SP(-2)) / 2]))
    torch.testing.assert_close(generator_loss(get_loss("minimax"), logits), torch.tensor([-(SP(0) + SP(2)) / 2]))


def test_r1_penalty_by_hand():
    # D(x) = sum_j w_j x_j^2 has gradient 2 w x; with w = 3 and x = [1, 2, 0, -1]: ||6x||^2 = 36 * 6
    x = torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 1.0]]).view(2, 1, 2, 2).requires_grad_(True)
    logits = 3 * (x**2).flatten(1).sum(1)
    penalty = r1_penalty(torch.stack([logits, torch.zeros_like(logits)], dim=1), x)  # two heads, one constant
    torch.testing.assert_close(penalty, torch.tensor([36.0 * 6, 36.0]))
    penalty.sum().backward()  # the penalty is differentiable (create_graph)
    torch.testing.assert_close(x.grad.flatten(1)[0], 2 * 36 * torch.tensor([1.0, 2.0, 0.0, -1.0]))


def test_mode_seeking_by_hand():
    a, b = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)  # mean |a - b| = 0.5
    za, zb = torch.zeros(1, 4), torch.full((1, 4), 2.0)  # mean |za - zb| = 2
    torch.testing.assert_close(mode_seeking(a, b, za, zb), torch.tensor([1 / (0.25 + 1e-5)]))


def test_diff_augment_keeps_content_and_is_differentiable():
    g = torch.Generator().manual_seed(0)
    x = -torch.ones(3, 3, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    moved = translate(x, 2, g)
    assert moved.shape == x.shape and (moved == 1).flatten(1).sum(1).eq(12).all()  # the square stays whole
    assert translate(x, 0, g).equal(x)
    shifted = brightness(x, 0.1, g)
    assert ((shifted - x).std(dim=(1, 2, 3)) < 1e-6).all() and (shifted - x).abs().max() <= 0.1
    cut = cutout(x, 0.25, g)  # a 2 x 2 square of mid grey
    assert cut.eq(0).flatten(1).sum(1).eq(3 * 4).all() and torch.where(cut.eq(0), x, cut).equal(x)
    y = x.clone().requires_grad_(True)
    diff_augment(y, ["translation", "brightness"], g).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="translation"):
        diff_augment(x, ["flip"])


def test_translation_continues_the_background_black_or_white():
    """Regression: the gap a shift opens was filled with black, framing every white-background image."""
    g = torch.Generator().manual_seed(0)
    for background in (-1.0, 1.0):
        x = torch.full((8, 3, 8, 8), background)
        x[:, :, 3:5, 3:5] = 0.3  # an object in the middle
        moved = translate(x, 2, g)
        assert moved.eq(background).flatten(1).sum(1).eq(x.eq(background).flatten(1).sum(1)).all()
        assert moved.eq(0.3).flatten(1).sum(1).eq(12).all()


# ------------------------------------------------------------------ networks
ARCH = dict(token_dim=16, pooled_dim=16, max_tokens=12, latent_dim=16, g_channels=[32, 16, 16],
            d_channels=[8, 16, 16], text_width=16)


def text_batch(b=4, t=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(t)[None, :] < torch.tensor([5, 7, 9, 12][:b])[:, None]
    return torch.randn(b, t, 16, generator=g), mask, torch.randn(b, 16, generator=g)


def test_generator_reads_tokens_and_every_noise_chunk():
    torch.manual_seed(0)
    G, _ = tgan_attn.build(tgan_attn.AttnGANArch(**ARCH))
    G.eval()
    tokens, mask, pooled = text_batch()
    z = torch.randn(4, 16)
    x = G(z, tokens, mask, pooled)
    assert x.shape == (4, 3, 32, 32) and x.abs().max() <= 1
    # padding never matters; a real token does (cross-attention to the states, not only the pooled vector)
    padded = tokens.clone()
    padded[0, 5:] = 100.0
    torch.testing.assert_close(G(z, padded, mask, pooled)[0], x[0])
    # randomise the untrained FiLM layers (zero-initialised) so every chunk can act
    for block in G.blocks:
        torch.nn.init.normal_(block.film.weight, std=0.5)
    x = G(z, tokens, mask, pooled)
    changed = tokens.clone()
    changed[0, 2] += 1.0
    assert not torch.allclose(G(z, changed, mask, pooled)[0], x[0])
    start = 0
    for size in G.chunks:  # noise at several scales: each chunk of z changes the image
        z2 = z.clone()
        z2[:, start:start + size] += 1.0
        assert not torch.allclose(G(z2, tokens, mask, pooled), x), size
        start += size
    assert len(G.chunks) == 3  # the 4x4 input, 8 px and 16 px


def test_discriminator_heads_depend_on_the_text_and_d_is_spectrally_normalised():
    torch.manual_seed(0)
    for words in ([], [8], [16, 8, 4]):
        _, D = tgan_attn.build(tgan_attn.AttnGANArch(**ARCH, d_words=words, d_heads=[16, 8, 4]))
        tokens, mask, pooled = text_batch()
        x = torch.rand(4, 3, 32, 32) * 2 - 1
        logits = D(x, tokens, mask, pooled)
        assert logits.shape == (4, 3)
        other = D.heads(D.features(x), D.encode_text(tokens.flip(0), mask.flip(0), pooled.flip(0)))
        assert (other - logits).abs().min() > 0, words  # every head reads the caption
    assert any("parametrizations" in name for name, _ in D.named_parameters())


def test_full_resolution_layers_of_g_and_d():
    """g_full: a G block at full resolution + a 3x3 RGB conv; d_full: a stride-1 conv before D's first down-sampling."""
    torch.manual_seed(0)
    plain_g, plain_d = tgan_attn.build(tgan_attn.AttnGANArch(**ARCH))
    G, D = tgan_attn.build(tgan_attn.AttnGANArch(**ARCH, g_full=8, d_full=4))
    assert plain_g.full is None and plain_d.stem is None  # off by default: saved models keep their weights' names
    assert isinstance(G.to_rgb, torch.nn.Conv2d) and G.to_rgb.in_channels == 8 and G.full.conv.out_channels == 8
    G.eval()
    tokens, mask, pooled = text_batch()
    x = G(torch.randn(4, 16), tokens, mask, pooled)
    assert x.shape == (4, 3, 32, 32) and x.abs().max() <= 1
    torch.nn.init.normal_(G.full.film.weight, std=0.5)  # the full-resolution block reads the style (text and noise)
    z = torch.randn(4, 16)
    a = G(z, tokens, mask, pooled)
    style_only = G(z, tokens, mask, pooled.flip(0))
    assert not torch.allclose(a, style_only)
    assert D.stem.weight.shape == (4, 3, 3, 3)
    assert D.from_rgb.in_channels == 4 and D(x, tokens, mask, pooled).shape == (4, 3)
    extra = sum(p.numel() for p in D.parameters()) - sum(p.numel() for p in plain_d.parameters())
    assert extra == 4 * 3 * 9 + 4 + (4 - 3) * 8 * 16  # the stem's weights and biases, from_rgb's extra input channel
    with pytest.raises(ValueError, match="g_full and d_full are channel counts"):
        tgan_attn.AttnGANArch(**ARCH, g_full=-1).validate()


def test_depth_adds_convolutions_per_resolution():
    """g_depth / d_depth: 3x3 convolutions per resolution after G's up-sampling and D's down-sampling."""
    torch.manual_seed(0)
    plain_g, plain_d = tgan_attn.build(tgan_attn.AttnGANArch(**ARCH))
    G, D = tgan_attn.build(tgan_attn.AttnGANArch(**ARCH, g_depth=2, d_depth=2))
    # off by default: no new weights, so saved models keep loading
    assert not any("extra" in k for k in [*plain_g.state_dict(), *plain_d.state_dict()])
    # G: per block, a bias-free 3x3 conv c -> c and a FiLM map style -> (gamma, beta); the styles are 2W = 32 at
    # 4 px and 2W + 5 (its noise chunk of z = 6 + 5 + 5) at 8 and 16 px; channels 32, 16, 16
    by_hand_g = sum(c * c * 9 + s * 2 * c + 2 * c for c, s in ((32, 32), (16, 37), (16, 37)))
    assert sum(p.numel() for p in G.parameters()) - sum(p.numel() for p in plain_g.parameters()) == by_hand_g == 18368
    # D: a 3x3 conv c -> c with bias at each trunk level (8, 16, 16 channels)
    by_hand_d = sum(c * c * 9 + c for c in (8, 16, 16))
    assert sum(p.numel() for p in D.parameters()) - sum(p.numel() for p in plain_d.parameters()) == by_hand_d == 5224
    assert all(torch.nn.utils.parametrize.is_parametrized(conv, "weight")  # spectral norm on them too
               for level in D.extra for conv in level)
    G.eval()
    tokens, mask, pooled = text_batch()
    z = torch.randn(4, 16)
    x = G(z, tokens, mask, pooled)
    assert x.shape == (4, 3, 32, 32) and x.abs().max() <= 1
    for block in G.blocks:  # the extra layers read the style (text and noise) through their FiLM
        torch.nn.init.normal_(block.extra[0].film.weight, std=0.5)
    assert not torch.allclose(G(z, tokens, mask, pooled), G(z, tokens, mask, pooled.flip(0)))
    assert D(x, tokens, mask, pooled).shape == (4, 3)
    with pytest.raises(ValueError, match="g_depth and d_depth count convolutions"):
        tgan_attn.AttnGANArch(**ARCH, d_depth=0).validate()


def test_runs_from_before_the_depth_options_stay_resumable():
    from t2i.runtime.identity import identity_of
    from train.tgan_attn import AttnGANConfig

    older = identity_of(AttnGANConfig(), "tgan-attn")  # the identity of a run from before the options existed
    assert "g_depth" not in older.settings and "d_depth" not in older.settings
    assert identity_of(AttnGANConfig(g_depth=2), "tgan-attn").config_hash != older.config_hash


def test_arch_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match="d_words must be among d_heads"):
        tgan_attn.AttnGANArch(**ARCH, d_heads=[8], d_words=[4]).validate()
    with pytest.raises(ValueError, match="d_heads resolutions must be among"):
        tgan_attn.AttnGANArch(**ARCH, d_heads=[32]).validate()
    with pytest.raises(ValueError, match="g_channels and d_channels need 3 entries"):
        tgan_attn.AttnGANArch(**{**ARCH, "g_channels": [8, 8]}).validate()


# ------------------------------------------------------------------ training and the contract
TINY = ["--steps", "2", "--batch-size", "8", "--n", "32", "--log-every", "1", "--checkpoint-every", "0",
        "--g-channels", "16,16,8", "--d-channels", "8,8,16", "--text-width", "16"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from t2i.clip.testing import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def test_train_tgan_attn_two_steps_and_sample(tiny_clip, tmp_path):
    from train import sample, tgan_attn as trainer

    out = tmp_path / "run"
    assert trainer.main(TINY + ["--clip", str(tiny_clip), "--loss", "non-saturating", "--r1-gamma", "1",
                                "--r1-every", "1", "--augment", "translation,brightness", "--d-words", "16,8", "--clip-weight", "0.5",
                                "--perturbed-negatives", "1", "--eval-n", "4", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert {"d_real", "d_fake", "d_wrong", "d_perturbed", "loss_d", "loss_g", "r1", "mode_seeking", "clip_term",
            "value"} <= set(rows[-1])
    assert 0 <= rows[-1]["clip_term"] <= 2  # 1 - cos
    assert (out / "game.png").is_file() and list((out / "samples").glob("samples_*.png"))
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["family"] == "tgan-attn" and config["loss"] == "non-saturating"
    assert config["clip"] == str(tiny_clip.resolve())
    scores = json.loads((out / "eval.json").read_text())  # judged by the shapes evaluator
    assert scores["all"]["n"] == 4
    gen = load_generator(out)  # a run folder resolves to RUN/model
    assert gen.family == "tgan-attn" and gen.describe()["text_encoder"] == str(tiny_clip.resolve())
    images = gen.generate(["a large red circle in the center", "a blue square above a yellow triangle"], seed=3,
                          num_images_per_prompt=2)
    assert len(images) == 4 and images[0].size == (32, 32)
    assert sample.main(["--model", str(out / "model"), "--prompt", "a small blue cross in the top left", "--n", "2",
                        "--out", str(tmp_path / "samples")]) in (0, None)
    assert len(list((tmp_path / "samples").rglob("*.png"))) >= 2


def test_seed_determinism_of_training_and_sampling(tiny_clip, tmp_path):
    from train import tgan_attn as trainer

    for name in ("a", "b"):
        trainer.main(TINY + ["--clip", str(tiny_clip), "--eval-n", "0", "--out", str(tmp_path / name)])
    a, b = load_weights(tmp_path / "a" / "model"), load_weights(tmp_path / "b" / "model")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    gen = load_generator(tmp_path / "a" / "model")
    prompts = ["a large red circle in the center", "a small green square in the top right"]
    first, again = gen.generate(prompts, seed=5, num_images_per_prompt=2), gen.generate(prompts, seed=5,
                                                                                          num_images_per_prompt=2)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(first, again))
    other = gen.generate(prompts, seed=6, num_images_per_prompt=2)
    assert any(x.tobytes() != y.tobytes() for x, y in zip(first, other))
    with pytest.raises(GenerationError, match="no options"):
        gen.generate(prompts, seed=0, guidance_scale=3.0)
    # the seeding rule: prompt i is drawn from seed + i alone
    pairs = gen.generate(prompts[1:], seed=6, num_images_per_prompt=2)
    assert [x.tobytes() for x in first[2:]] == [x.tobytes() for x in pairs]


def test_p_two_sets_the_share_of_two_object_training_scenes(tiny_clip, tmp_path, monkeypatch):
    from train import tgan_attn as trainer

    loaded = []
    real_load = trainer.load_dataset
    monkeypatch.setattr(trainer, "load_dataset", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1])
    for p_two in ("1.0", "0.0"):
        trainer.main(TINY + ["--clip", str(tiny_clip), "--eval-n", "0", "--p-two", p_two, "--out", str(tmp_path / p_two)])
    two_object = [[" in the " not in caption for caption in dataset.captions] for dataset in loaded]
    assert all(two_object[0]) and not any(two_object[1]) and len(two_object[0]) == 32


def test_bad_options_are_errors(tiny_clip, tmp_path):
    from train import tgan_attn as trainer

    for argv, match in ((["--augment", "flip"], "augment must list"), (["--r1-gamma", "-1"], "r1_gamma"),
                        (["--mismatch-weight", "2"], "mismatch_weight"), (["--loss", "wasserstein"], "hinge"),
                        (["--data", "digits", "--p-two", "0.7"], "p-two is a shapes option"),
                        (["--perturbed-negatives", "1.5"], "perturbed_negatives"),
                        (["--perturbed-negatives", "0.5", "--mismatch-weight", "0"], "give --mismatch-weight > 0"),
                        (["--perturbed-negatives", "0.5", "--perturbed-kinds", "swap_shapes,recolour"],
                         r"unknown kind\(s\) \['recolour'\]"),
                        (["--reworded-captions", "-0.1"], "reworded_captions must be in"),
                        (["--data", "digits", "--reworded-captions", "0.3"], "use it with --data shapes"),
                        (["--reworded-scenes", "two"], "reworded_scenes must be one of"),
                        (["--partial-captions", "1.5"], "partial_captions must be in"),
                        (["--data", "digits", "--partial-captions", "0.5"], "use it with --data shapes")):
        with pytest.raises(ValueError, match=match):
            trainer.main(argv + ["--clip", str(tiny_clip), "--out", str(tmp_path / "bad")])


# ------------------------------------------------------------------ hard negatives, token cache, contract details
class HandEncoder:
    """A text encoder whose pooled embeddings are written by hand (the nearest-caption logic, not CLIP, is tested)."""

    vectors = {"a": [1.0, 0.0], "b": [0.9, 0.1], "c": [0.0, 1.0], "d": [-1.0, 0.05]}

    def __call__(self, texts):
        from t2i.text import TextOutput

        pooled = torch.tensor([self.vectors[t] for t in texts])
        return TextOutput(pooled[:, None, :].repeat(1, 3, 1), pooled, torch.ones(len(texts), 3, dtype=torch.bool))


def test_nearest_captions_by_hand():
    from gan_baselines.caption_negatives import NearestCaptions

    pool = NearestCaptions(HandEncoder(), ["a", "b", "c", "d", "a"], k=1)  # duplicates count once
    assert pool.captions == ["a", "b", "c", "d"]
    # cosines: a~b 0.99, b~c 0.11, c~d 0.05, d~c beats d~a (-1) and d~b
    assert pool.sample(["a", "b", "c", "d", "unseen"]) == ["b", "a", "b", "c", None]
    two = NearestCaptions(HandEncoder(), ["a", "b", "c"], k=5)  # k is clamped to the other captions
    assert two.k == 2 and set(two.sample(["a"] * 50, torch.Generator().manual_seed(0))) == {"b", "c"}
    with pytest.raises(ValueError, match="at least 2 distinct"):
        NearestCaptions(HandEncoder(), ["a", "a"])


def test_wrong_captions_roll_by_one_or_take_a_neighbour():
    from gan_baselines.caption_negatives import NearestCaptions
    from train.tgan_attn import wrong_captions

    g = torch.Generator().manual_seed(0)
    wrong, differs = wrong_captions(["a", "b", "b"], None, 0.0, g)
    assert wrong == ["b", "a", "b"] and differs.tolist() == [True, True, False]  # b's neighbour is b: no negative
    pool = NearestCaptions(HandEncoder(), ["a", "b", "c", "d"], k=1)
    wrong, differs = wrong_captions(["a", "c", "d"], pool, 1.0, g)  # share 1: always the nearest other caption
    assert wrong == ["b", "b", "c"] and differs.all()


def test_perturbed_captions_draw_per_item_from_the_labels_or_the_rules():
    from t2i.clip.negatives import object_replacements, shapes_negatives
    from t2i.data.shapes import parse_caption
    from train.tgan_attn import perturbed_captions

    texts = ["a blue square above a yellow triangle", "a large red circle in the top left", "a cat on a mat"]
    records = [parse_caption(texts[0]), parse_caption(texts[1]), None]
    keys = [f"0|7|{i}" for i in range(3)]
    assert perturbed_captions(texts, records, 0.0, [], keys) == [None, None, None]
    drawn = perturbed_captions(texts, records, 1.0, [], keys)
    assert drawn == perturbed_captions(texts, records, 1.0, [], keys)  # keyed per item: the same again
    assert sorted(drawn[2].split()) == sorted(texts[2].split()) and drawn[2] != texts[2]  # the rules: same words, new order
    only = perturbed_captions(texts[:2], records[:2], 1.0, ["replace_object_shape"], keys[:2])
    assert only[1] is None  # a one-object scene has no object replacement
    assert only[0] in {object_replacements(records[0], random.Random(s))["replace_object_shape"]
                       for s in range(100)}
    swapped = perturbed_captions(texts[:1], records[:1], 1.0, ["swap_shapes"], keys[:1])
    assert swapped == [shapes_negatives(records[0])["swap_shapes"]] == ["a blue triangle above a yellow square"]
    shares = perturbed_captions(texts[:1] * 400, records[:1] * 400, 0.25, [], [f"1|{i}" for i in range(400)])
    assert 0.18 < sum(p is not None for p in shares) / 400 < 0.32


def test_reworded_captions_draw_per_item_true_rewordings():
    from t2i.clip.negatives import reworded_captions
    from t2i.data.shapes import parse_caption
    from train.tgan_attn import reworded

    texts = ["a blue square to the left of a yellow triangle", "a large red circle in the top left", "a cat on a mat"]
    keys = [f"0|7|{i}" for i in range(3)]
    assert reworded(texts, 0.0, keys) == texts
    drawn = reworded(texts, 1.0, keys)
    assert drawn == reworded(texts, 1.0, keys)  # keyed per item: the same again
    for text, new in zip(texts[:2], drawn):  # each one of the caption's own rewordings, so still true of its scene
        assert new in reworded_captions({**parse_caption(text), "caption": text})
    assert drawn[1] == "large red circle in top left" and drawn[2] == texts[2]  # outside the grammar: as written
    forms = {reworded(texts[:1], 1.0, [f"1|{i}"])[0] for i in range(200)}
    assert forms == set(reworded_captions({**parse_caption(texts[0]), "caption": texts[0]}))  # every form drawn
    shares = reworded(texts[:1] * 400, 0.25, [f"2|{i}" for i in range(400)])
    assert 0.18 < sum(t != texts[0] for t in shares) / 400 < 0.32
    one = reworded(texts, 1.0, keys, scenes="one")  # --reworded-scenes one: two-object captions as written
    assert one == [texts[0], "large red circle in top left", texts[2]]


@pytest.fixture
def captions_given(monkeypatch) -> list[list[str]]:
    """The captions the text GAN trainer encodes, one list per call (its own captions, then the wrong ones, per
    step; then the grids'), recorded through ``train.tgan_attn.TokenCache``."""
    from train import tgan_attn as trainer

    seen: list[list[str]] = []
    real_cache = trainer.TokenCache

    class Recording(real_cache):
        def __call__(self, texts):
            seen.append(list(texts))
            return super().__call__(texts)

    monkeypatch.setattr(trainer, "TokenCache", Recording)
    return seen


def test_reworded_captions_reach_g_and_d_and_the_record(tiny_clip, tmp_path, captions_given):
    """--reworded-captions 1: every caption G and D are given (the item's own and its wrong one) is a rewording; the
    record says so, for the app's wording advice (t2i.provenance)."""
    from t2i.data.shapes import parse_caption
    from train import tgan_attn as trainer

    out = tmp_path / "run"
    assert trainer.main(TINY + ["--clip", str(tiny_clip), "--reworded-captions", "1", "--perturbed-negatives", "0.5",
                                "--eval-n", "0", "--out", str(out)]) == 0
    # 2 steps, 8 captions each for G and D's right pairs and 8 wrong ones; then the grids
    trained = [text for call in captions_given for text in call][:2 * 2 * 8]
    assert len(trained) == 32
    for text in trained:  # every rewording leaves the grammar's wording (articles, sizes or "to the")
        with pytest.raises(ValueError, match="not a shapes caption"):
            parse_caption(text)
    assert json.loads((out / "t2i_training.json").read_text())["reworded"] is True
    assert json.loads((out / "config.json").read_text())["reworded_captions"] == 1.0


def test_partial_captions_leave_one_attribute_out_of_one_object_captions():
    from t2i.clip.negatives import partial_captions
    from t2i.data.shapes import parse_caption
    from train.tgan_attn import partial

    texts = ["a large red circle in the top left", "a blue square to the left of a yellow triangle"]
    records = [{**parse_caption(t), "caption": t} for t in texts]
    keys = [f"0|7|{i}|partial" for i in range(2)]
    assert partial(texts, records, 0.0, keys) == texts
    drawn = partial(texts, records, 1.0, keys)
    assert drawn == partial(texts, records, 1.0, keys)  # keyed per item: the same again (a resumed run draws alike)
    assert drawn[0] in partial_captions(records[0]) and drawn[1] == texts[1]  # two objects: as written
    forms = {partial(texts[:1], records[:1], 1.0, [f"1|{i}"])[0] for i in range(100)}
    assert forms == {"a red circle in the top left", "a large circle in the top left", "a large red circle"}
    shares = partial(texts[:1] * 400, records[:1] * 400, 0.25, [f"2|{i}" for i in range(400)])
    assert 0.18 < sum(t != texts[0] for t in shares) / 400 < 0.32


def test_partial_captions_reach_g_and_d_as_the_items_own_caption_only(tiny_clip, tmp_path, captions_given):
    """--partial-captions 1 on one-object scenes: every caption G and D's real pairs are given is partial (and not
    reworded on top), every wrong caption D is given is whole."""
    from t2i.data.shapes import parse_caption
    from train import tgan_attn as trainer

    seen = captions_given
    out = tmp_path / "run"
    assert trainer.main(TINY + ["--clip", str(tiny_clip), "--p-two", "0", "--partial-captions", "1",
                                "--reworded-captions", "1", "--reworded-scenes", "one", "--eval-n", "0",
                                "--out", str(out)]) == 0
    for right, wrong in (seen[0:2], seen[2:4]):  # per step: the own captions, then the wrong ones
        assert len(right) == len(wrong) == 8
        for text in right:  # "a small circle in the top left": out of the grammar, three of the four attributes
            with pytest.raises(ValueError, match="not a shapes caption"):
                parse_caption(text)
            assert text.startswith("a ") and len(text.split(" in the ")[0].split()) in (3, 4)
        for text in wrong:  # whole captions, reworded (articles left out) by --reworded-captions 1
            assert not text.startswith("a ") and len(text.split()) >= 5  # size colour shape in position
    assert json.loads((out / "config.json").read_text())["partial_captions"] == 1.0


def test_full_stops_toggle_the_closing_full_stop_per_item():
    from t2i.clip.negatives import toggled_full_stop
    from train.tgan_attn import full_stops

    assert toggled_full_stop("a red circle above a blue square") == "a red circle above a blue square."
    assert toggled_full_stop("A cat on a mat. ") == "A cat on a mat"  # any caption; taken off where it has one
    assert toggled_full_stop(toggled_full_stop("a large red circle")) == "a large red circle"
    texts = ["a blue square to the left of a yellow triangle", "a cat on a mat."]
    keys = [f"0|7|{i}|stop-right" for i in range(2)]
    assert full_stops(texts, 0.0, keys) == texts
    assert full_stops(texts, 1.0, keys) == ["a blue square to the left of a yellow triangle.", "a cat on a mat"]
    shares = full_stops(texts[:1] * 400, 0.25, [f"2|{i}" for i in range(400)])
    assert shares == full_stops(texts[:1] * 400, 0.25, [f"2|{i}" for i in range(400)])  # keyed: a resume draws alike
    assert 0.18 < sum(t.endswith(".") for t in shares) / 400 < 0.32


def test_full_stops_reach_g_and_d_drawn_apart_for_the_right_and_the_wrong_caption(tiny_clip, tmp_path,
                                                                                  captions_given):
    """--full-stops 0.5: captions G and D are given end in a full stop about half the time, the item's own and its
    wrong one drawn apart (so the full stop says nothing of the match); --full-stops 1 gives every one a full stop,
    after the rewording (which would not parse one); out of [0, 1] is refused."""
    from t2i.data.shapes import parse_caption
    from train import tgan_attn as trainer

    seen = captions_given
    assert trainer.main(TINY + ["--clip", str(tiny_clip), "--full-stops", "1", "--reworded-captions", "1",
                                "--eval-n", "0", "--out", str(tmp_path / "all")]) == 0
    for text in [t for call in seen[:4] for t in call]:  # 2 steps: own captions, then wrong ones
        assert text.endswith(".")
        with pytest.raises(ValueError, match="not a shapes caption"):  # reworded first, then the full stop added
            parse_caption(text[:-1])
    seen.clear()
    assert trainer.main(TINY + ["--clip", str(tiny_clip), "--full-stops", "0.5", "--steps", "6", "--eval-n", "0",
                                "--out", str(tmp_path / "half")]) == 0
    rights = [t.endswith(".") for call in seen[0:12:2] for t in call]
    wrongs = [t.endswith(".") for call in seen[1:12:2] for t in call]
    assert len(rights) == len(wrongs) == 48 and 0.25 < sum(rights) / 48 < 0.75 and 0.25 < sum(wrongs) / 48 < 0.75
    assert rights != wrongs  # drawn apart
    assert json.loads((tmp_path / "half" / "config.json").read_text())["full_stops"] == 0.5
    with pytest.raises(ValueError, match=r"full_stops must be in \[0, 1\]"):
        trainer.main(TINY + ["--clip", str(tiny_clip), "--full-stops", "1.5", "--out", str(tmp_path / "bad")])


# ------------------------------------------------------------------ --init: continue a run, fine-tune a model
@pytest.fixture(scope="module")
def base_run(tiny_clip, tmp_path_factory):
    """A 2-step run with an architecture the command's defaults do not have (two convolutions per G resolution,
    attention at 8 px only), checkpointed at its end."""
    from train import tgan_attn as trainer

    out = tmp_path_factory.mktemp("base") / "run"
    trainer.main(TINY + ["--clip", str(tiny_clip), "--g-depth", "2", "--g-attn", "8", "--eval-n", "0",
                         "--out", str(out)])
    return out


def test_init_starts_from_a_runs_networks_adam_and_ema_keeping_its_architecture(tiny_clip, base_run, tmp_path,
                                                                                 capsys):
    """--init RUN: the new run starts from the run's newest checkpoint (G, D, both Adam states, G's EMA), keeps its
    architecture, size and text encoder whatever the command's defaults are, and uses its own lr and EMA decay;
    resumed, it continues from its own checkpoint, not from the base again."""
    from t2i.runtime import checkpoint as ckpt
    from train import tgan_attn as trainer

    base = trainer.load_base(str(base_run))
    assert base.source == base_run / "checkpoints" / "step_000002"
    assert {"model_0", "model_1", "optimizer_0", "optimizer_1", "ema"} <= set(base.states)
    assert (base.options["g_depth"], base.options["g_attn"], base.options["g_channels"]) == (2, [8], [16, 16, 8])
    assert base.options["clip"] == str(tiny_clip) and base.options["d_depth"] == 1  # a default: not in the identity
    arch = tgan_attn.AttnGANArch(**json.loads((base_run / "model" / "config.json").read_text())["arch"])
    G, D = tgan_attn.build(arch)
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    cfg = trainer.AttnGANConfig(lr=1e-3, beta1=0.0)
    assert trainer.start_from(base, G, D, opt_g, opt_d, cfg) == "G, D, G's Adam, D's Adam"
    for net, key in ((G, "model_0"), (D, "model_1")):
        for name, tensor in net.state_dict().items():
            torch.testing.assert_close(tensor, base.states[key][name], rtol=0, atol=0, msg=name)
    first = next(iter(opt_d.state.values()))["exp_avg"]
    torch.testing.assert_close(first, next(iter(base.states["optimizer_1"]["state"].values()))["exp_avg"])
    assert all(g["lr"] == 1e-3 and g["betas"] == (0.0, 0.999) for g in opt_g.param_groups + opt_d.param_groups)

    out = tmp_path / "tuned"
    command = ["--steps", "2", "--batch-size", "8", "--n", "32", "--log-every", "1", "--checkpoint-every", "0",
               "--init", str(base_run), "--full-stops", "1", "--ema-decay", "0.99", "--eval-n", "0", "--out", str(out)]
    assert trainer.main(command) == 0
    assert f"--init {base.source}: G, D, G's Adam, D's Adam, G's EMA\n" in capsys.readouterr().out
    config = json.loads((out / "model" / "config.json").read_text())
    assert (config["arch"]["g_depth"], config["arch"]["g_attn"], config["clip"]) == (2, [8], str(tiny_clip.resolve()))
    run_config = json.loads((out / "config.json").read_text())
    assert run_config["init"] == str(base_run) and run_config["full_stops"] == 1.0
    ema_updates = base.states["ema"]["num_updates"]
    ema = ckpt.read_checkpoint(out / "checkpoints" / "step_000002")[1]["ema"]
    assert ema["num_updates"] == ema_updates + 2 and ema["decay"] == 0.99  # goes on averaging, at this run's decay
    assert len(load_generator(out).generate(["a small red circle in the top left."], seed=0)) == 1
    command[command.index("--steps") + 1] = "3"
    assert trainer.main(command + ["--resume", "latest"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert ckpt.read_checkpoint(out / "checkpoints" / "step_000003")[1]["ema"]["num_updates"] == ema_updates + 3


def test_init_from_a_saved_model_loads_g_and_the_d_beside_it_and_bad_bases_are_named(tiny_clip, base_run, tmp_path):
    """--init MODEL (a run's model folder, a built-in name): G's weights are the model's (its EMA), D's those saved
    beside it (the run's last: its checkpoint's), else D starts new; a missing path, another family's model or run,
    and a base on another text encoder are one-line errors."""
    import shutil

    from t2i.runtime import checkpoint as ckpt
    from train import tgan_attn as trainer

    model = trainer.load_base(str(base_run / "model"))
    assert model.source == base_run / "model" and set(model.states) == {"model_0", "model_1"}
    for name, tensor in load_weights(base_run / "model").items():
        torch.testing.assert_close(model.states["model_0"][name], tensor, rtol=0, atol=0)
    last = ckpt.read_checkpoint(base_run / "checkpoints" / "step_000002")[1]["model_1"]
    assert model.states["model_1"].keys() == last.keys()
    for name, tensor in last.items():
        torch.testing.assert_close(model.states["model_1"][name], tensor, rtol=0, atol=0)
    older = tmp_path / "older"  # a model saved before D was saved beside it
    shutil.copytree(base_run / "model", older)
    (older / trainer.DISCRIMINATOR).unlink()
    assert set(trainer.load_base(str(older)).states) == {"model_0"}
    builtin = trainer.load_base("shapes-tgan")
    assert (builtin.options["clip"], builtin.options["g_depth"], builtin.options["size"]) == ("shapes-clip", 2, 32)
    with pytest.raises(FileNotFoundError, match="no --init base"):
        trainer.load_base(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="holds a 'cvae' model, not a 'tgan-attn' one"):
        trainer.load_base("shapes-cvae")
    other = tmp_path / "other" / "step_000002"  # a checkpoint written by another trainer
    shutil.copytree(base_run / "checkpoints" / "step_000002", other)
    manifest = json.loads((other / "checkpoint.json").read_text())
    manifest["run"]["name"] = "tgan"
    (other / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="checkpoint of a tgan run; give a `t2i train tgan-attn` run"):
        trainer.load_base(str(other))
    with pytest.raises(ValueError, match=f"its G does not fit .*give its text encoder \\({tiny_clip}: leave --clip"):
        trainer.main(TINY + ["--clip", "shapes-clip", "--init", str(base_run / "model"), "--out", str(tmp_path / "x")])


def test_init_fine_tunes_on_a_users_captions_at_the_bases_size_keeping_its_words(base_run, tmp_path, capsys):
    """--init BASE --data FOLDER: the user's images are read at the base's size whatever their own (another size or
    architecture given is refused), and the training record names the base, so its words count as seen
    (t2i.provenance) beside the folder's."""
    from PIL import Image

    from t2i.provenance import trained_on
    from t2i.runtime import checkpoint as ckpt
    from train import tgan_attn as trainer

    folder = tmp_path / "teapots"
    folder.mkdir()
    rows = []
    for i in range(8):
        Image.new("RGB", (48, 40), (40 * i, 90, 200)).save(folder / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": f"a blue teapot number {i}"}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    out = tmp_path / "tuned"
    assert trainer.main(["--init", str(base_run / "model"), "--data", str(folder), "--steps", "2", "--batch-size", "4",
                         "--hard-negatives", "0", "--checkpoint-every", "0", "--out", str(out)]) == 0
    assert json.loads((out / "model" / "config.json").read_text())["arch"]["size"] == 32
    with pytest.raises(ValueError, match=r"keeps its architecture and size \(size 32, g_depth 2\): leave out --size, "
                                         "--g-depth"):
        trainer.main(["--init", str(base_run), "--data", str(folder), "--size", "64", "--g-depth", "3",
                      "--out", str(tmp_path / "bigger")])
    assert load_generator(out).generate(["a blue teapot"], seed=0)[0].size == (32, 32)
    record = json.loads((out / "t2i_training.json").read_text())
    assert record["base"] == str((base_run / "model").resolve())
    words = trained_on(out).words
    assert {"teapot", "circle", "above"} <= words  # its own captions' and the base's (shapes) words
    # from a run on other data: G, D and Adam are the run's, but the EMA starts again from G (the base's average
    # would hold the saved model at the shapes for thousands of steps)
    assert trainer.main(["--init", str(base_run), "--data", str(folder), "--steps", "2", "--batch-size", "4",
                         "--hard-negatives", "0", "--checkpoint-every", "0", "--out", str(tmp_path / "from-run")]) == 0
    assert "G, D, G's Adam, D's Adam\n" in capsys.readouterr().out
    ema = ckpt.read_checkpoint(tmp_path / "from-run" / "checkpoints" / "step_000002")[1]["ema"]
    assert ema["num_updates"] == 2
    assert json.loads((tmp_path / "from-run" / "t2i_training.json").read_text())["base"] == str(base_run.resolve())
    # from the built-in: its G and D, and the record names it by its name (it loads from any checkout)
    assert trainer.main(["--init", "shapes-tgan", "--data", str(folder), "--steps", "1", "--batch-size", "4",
                         "--hard-negatives", "0", "--checkpoint-every", "0",
                         "--out", str(tmp_path / "from-builtin")]) == 0
    from t2i.builtin import ROOT

    assert f"--init {ROOT / 'shapes-tgan'}: G, D\n" in capsys.readouterr().out  # no Adam or EMA in a saved model
    assert json.loads((tmp_path / "from-builtin" / "t2i_training.json").read_text())["base"] == "shapes-tgan"


def test_critic_benchmark_reads_a_run_checkpoint(tiny_clip, tmp_path):
    from benchmarks import text_gan
    from train import tgan_attn as trainer

    out = tmp_path / "run"
    trainer.main(TINY + ["--clip", str(tiny_clip), "--eval-n", "0", "--checkpoint-every", "2", "--out", str(out)])
    result = text_gan.run_critic(text_gan.argparse.Namespace(checkpoint=str(out / "checkpoints" / "step_000002"),
                                                             n=6, seed=5), "")
    assert result["step"] == 2 and result["scenes"] == 6
    assert set(result["kinds"]) == {"swap_objects", "flip_relation", "swap_colours", "swap_shapes",
                                    "replace_object_colour", "replace_object_shape", "another_caption"}
    for kind, row in result["kinds"].items():
        assert 1 <= row["n"] <= 6 and 0 <= row["true_higher"] <= 1, kind


def test_unnamed_benchmark_measures_the_variety_of_what_a_prompt_leaves_out(base_run):
    """benchmarks.text_gan unnamed: distinct values and entropy of the attribute a prompt leaves out, by hand; real
    renders vary it and are judged right; any generator gets a row per attribute left out."""
    from benchmarks import text_gan

    got = text_gan.unnamed_variety([["red", "red", "blue"], ["large"]], [[True, False, True], [True, False]])
    two_to_one = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))  # 0.918 bits; one value: 0
    assert got == {"distinct": 1.5, "entropy_bits": round(two_to_one / 2, 3), "named_right": 0.6}
    model = str(base_run / "model")
    result = text_gan.run_unnamed(text_gan.argparse.Namespace(models=model, n=3, per_prompt=4, seed=5), "")
    real = result["rows"]["real renders"]
    assert set(real) == set(result["rows"][model]) == {"size", "colour", "position"}
    assert all(row["named_right"] == 1.0 for row in real.values()) and real["colour"]["distinct"] > 1


def test_token_cache_matches_the_encoder_and_stays_bounded(tiny_clip):
    from t2i.text import TextEncoder
    from train.tgan_attn import TokenCache

    encoder = TextEncoder.from_pretrained(tiny_clip)
    cache = TokenCache(encoder, max_items=3)
    texts = ["a red circle", "a blue square above a red circle", "a red circle"]
    got, direct = cache(texts), encoder(texts)
    torch.testing.assert_close(got.pooled, direct.pooled.float())
    assert got.mask.equal(direct.mask)
    torch.testing.assert_close(got.tokens[got.mask], direct.tokens[direct.mask].float())
    assert len(cache.cache) == 2
    cache(["x", "y"])  # 2 + 2 > 3: starts over with this batch
    assert sorted(cache.cache) == ["x", "y"]


def test_images_do_not_depend_on_the_chunking_and_follow_the_contract_order(tiny_clip, tmp_path):
    """generate() draws in chunks of `chunk` images; the chunk size must not change a single pixel."""
    from t2i.io import save_model
    from t2i.text import TextEncoder

    encoder = TextEncoder.from_pretrained(tiny_clip)
    arch = tgan_attn.AttnGANArch(**{**ARCH, "token_dim": encoder.token_dim, "pooled_dim": encoder.pooled_dim,
                                    "max_tokens": encoder.max_length})
    torch.manual_seed(0)
    G, _ = tgan_attn.build(arch)
    save_model(tmp_path / "m", G.state_dict(), {"family": "tgan-attn", "arch": tgan_attn.arch_dict(arch),
                                                 "clip": str(tiny_clip)})
    gen = load_generator(tmp_path / "m")
    prompts = ["a small red circle in the center", "a large blue square in the top left", "a white cross"]
    whole = gen.generate(prompts, seed=1, num_images_per_prompt=3)
    gen.chunk = 2
    parts = gen.generate(prompts, seed=1, num_images_per_prompt=3)
    assert len(whole) == 9 and all(a.tobytes() == b.tobytes() for a, b in zip(whole, parts))
    assert len({im.tobytes() for im in whole[3:6]}) == 3  # one prompt's images differ (its own noise rows)
    assert gen.describe()["parameters"]["net"] == sum(p.numel() for p in G.parameters())
    # a model trained on another text encoder is refused with the fix, not run on the wrong states
    wide = {**tgan_attn.arch_dict(arch), "token_dim": 32}
    save_model(tmp_path / "wide", tgan_attn.build(wide)[0].state_dict(),
               {"family": "tgan-attn", "arch": wide, "clip": str(tiny_clip)})
    with pytest.raises(ValueError, match="give it the CLIP it was trained on"):
        load_generator(tmp_path / "wide")


# ------------------------------------------------------------------ the benchmark's real renders and distances
def test_benchmark_real_renders_follow_the_spec_and_distances_by_hand():
    from benchmarks.text_gan import real_renders, within_prompt_distance
    from t2i.data.shapes import parse_caption
    from t2i.evaluators.shapes import prompt_accuracy

    caption = "a small red circle in the center"
    images = real_renders(caption, 4, seed=0)
    assert len(images) == 4 and len({im.tobytes() for im in images}) == 4  # the jitter is drawn afresh
    assert prompt_accuracy(images, [caption] * 4)["one"]["all_correct"] == 1.0
    assert parse_caption(caption)["objects"][0]["colour"] == "red"
    with pytest.raises(ValueError, match="one-object"):
        real_renders("a red circle above a blue square", 2, seed=0)
    # two prompts x 2 rows: distances 5 (3-4-5) and 0
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0]])
    assert within_prompt_distance(x, 2) == pytest.approx(2.5)


# ------------------------------------------------------------------ --pair-weight: two images for one caption together
def test_partners_share_a_caption_other_than_the_item_and_draw_by_key():
    from gan_baselines.pair_critic import Partners

    captions = ["a red circle", "a red circle", "a blue square", "a red circle"]
    partners = Partners(captions, extra=lambda i: ["a circle"] if "circle" in captions[i] else [])
    assert partners.draw("a blue square", 2, "k") is None  # no other item has it
    assert {partners.draw("a red circle", 0, f"k{n}") for n in range(40)} == {1, 3}  # never the item itself
    assert partners.draw("a circle", 3, "k7") == partners.draw("a circle", 3, "k7")  # keyed: a resume draws alike
    assert partners.draw("a circle", 2, "k") in (0, 1, 3)  # an extra caption finds the items it is true of
    assert partners.share() == 0.75  # 3 of 4 items have their own caption shared


def test_pair_critic_judges_both_images_and_the_caption():
    from gan_baselines.pair_critic import PairCritic

    critic = PairCritic(channels=3, pooled_dim=8, widths=(8, 16))
    a, b = torch.randn(2, 3, 32, 32, requires_grad=True), torch.randn(2, 3, 32, 32, requires_grad=True)
    pooled = torch.randn(2, 8)
    logits = critic(a, b, pooled)
    assert logits.shape == (2, 1)
    logits.sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0  # G gets a gradient through both of its images
    assert not torch.allclose(critic(a, b, pooled), critic(a, b, -pooled))  # conditioned on the caption
    assert not torch.allclose(critic(a, b, pooled), critic(a, a, pooled))  # sees the second image, not one twice


def test_pair_weight_trains_a_critic_on_real_pairs_of_the_caption_g_is_given(tiny_clip, base_run, tmp_path,
                                                                              monkeypatch):
    """--pair-weight with --partial-captions: each real pair is the row's image and another item that the row's
    (partial) caption is true of; the critic is trained on them (D step, images without gradients) and G descends
    its judgement of its own pairs (G step, images with gradients); the critic is checkpointed as model_2."""
    from t2i.clip.negatives import partial_captions
    from t2i.runtime import checkpoint as ckpt
    from train import tgan_attn as trainer

    drawn, calls = [], []
    real_rows = trainer.pair_rows

    def spy_rows(partners, texts, index, keys):
        rows = real_rows(partners, texts, index, keys)
        drawn.append((list(texts), list(index), rows))
        return rows

    class SpyCritic(trainer.PairCritic):
        def forward(self, a, b, pooled):
            calls.append(a.requires_grad or b.requires_grad)
            return super().forward(a, b, pooled)

    monkeypatch.setattr(trainer, "pair_rows", spy_rows)
    monkeypatch.setattr(trainer, "PairCritic", SpyCritic)
    out = tmp_path / "run"
    assert trainer.main(TINY + ["--clip", str(tiny_clip), "--n", "256", "--p-two", "0", "--partial-captions", "1",
                                "--pair-weight", "1", "--eval-n", "0", "--checkpoint-every", "2",
                                "--out", str(out)]) == 0
    from t2i.data import load_dataset

    records = load_dataset("shapes", split="train", size=32, n=256, p_two=0.0).records
    pairs = [(texts[row], index[row], j) for texts, index, rows in drawn for row, j in rows.items()]
    assert len(pairs) >= 4
    for text, item, j in pairs:
        assert j != item and text in partial_captions(records[j]) and text in partial_captions(records[item])
    assert False in calls and True in calls  # the critic's own step, then G's
    states = ckpt.read_checkpoint(out / "checkpoints" / "step_000002")[1]
    assert {"model_2", "optimizer_2"} <= set(states)
    assert json.loads((out / "config.json").read_text())["pair_weight"] == 1.0
    # the benchmark that reads the critic back: a belief in (0, 1) per attribute left out, one row for whole captions
    from argparse import Namespace

    from benchmarks import text_gan

    rows = text_gan.run_pairs(Namespace(run=str(out), n=2, seed=5), "python -m benchmarks.text_gan pairs")["rows"]
    assert set(rows) == {"size", "colour", "position", "nothing (whole caption)"}
    assert all(0 < v < 1 for d, row in rows.items() for c, v in row.items() if not (d.startswith("nothing")
                                                                                     and c.startswith("other")))
    with pytest.raises(SystemExit, match="no checkpoint with a pair critic"):
        text_gan.main(["pairs", "--run", str(base_run), "--n", "2"])


def test_pair_weight_without_shared_captions_is_refused_naming_the_fix(tiny_clip, tmp_path):
    from PIL import Image

    from train import tgan_attn as trainer

    folder = tmp_path / "unique"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (60 * i, 90, 200)).save(folder / f"{i}.png")
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": f"a teapot {i}"}) + "\n"
                                                   for i in range(4)))
    with pytest.raises(ValueError, match="no two items of .* share a caption.*use --pair-weight 0"):
        trainer.main(TINY + ["--clip", str(tiny_clip), "--data", str(folder), "--hard-negatives", "0",
                             "--pair-weight", "1", "--out", str(tmp_path / "bad")])
    with pytest.raises(ValueError, match="pair_weight must be >= 0"):
        trainer.main(TINY + ["--clip", str(tiny_clip), "--pair-weight", "-1", "--out", str(tmp_path / "bad")])
