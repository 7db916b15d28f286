"""The generator contract, the same checks for every family of the registry: ordering, the seeding rule,
determinism, count, bad input, options round trip, modules, protocols; and a toy family added by one
registry entry is served by ``t2i sample`` and ``t2i eval`` with nothing else changed.

Tiny random models saved in each family's own layout (no training, no network).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_baselines import cgan, dcgan, gan, tgan, tgan_attn
from gan_baselines.autoencoders import MLPAutoencoder
from gan_baselines.registry import FAMILIES, Family, load_generator, options_type
from gan_baselines.vae import MLPVAE
from t2i.config import config_from_dict
from t2i.generator import (Denoising, GenerationError, Generator, LatentCodes, conditions_for, generate_conditions,
                           options_with)
from t2i.io import save_model

PROMPTS = ["a red circle", "a blue square", "a green cross"]  # within the tiny tokenizer's 16 characters
LABELS = [3, 7, 0]


def _clip(root):
    from t2i.clip.testing import make_tiny_clip

    return make_tiny_clip(root / "clip") if not (root / "clip").exists() else root / "clip"


def _text_dim(clip) -> int:
    from t2i.text import TextEncoder

    return TextEncoder.from_pretrained(clip).pooled_dim


def build(family: str, root) -> object:
    """A tiny saved model of ``family`` under ``root``; returns its folder."""
    torch.manual_seed(0)
    folder = root / family
    if family == "ae":
        model = MLPAutoencoder(1, 8, (16,), 2)
        return save_model(folder, model, {"family": "ae", **model.config()})
    if family == "vae":
        model = MLPVAE(1, 8, (16,), 2)
        return save_model(folder, model, {"family": "vae", "conditioning": "none", **model.config()})
    if family == "cvae":
        model = MLPVAE(1, 8, (16,), 2, cond_dim=10)
        return save_model(folder, model, {"family": "cvae", "conditioning": "label", "num_classes": 10,
                                          **model.config()})
    if family == "gan":
        arch = {"latent_dim": 8, "channels": 1, "size": 32, "hidden": 16, "layers": 2}
        return save_model(folder, gan.build(arch)[0], {"family": "gan", "arch": arch})
    if family == "dcgan":
        arch = {"latent_dim": 8, "channels": 3, "size": 32, "g_base": 8, "d_base": 8}
        return save_model(folder, dcgan.build(arch)[0], {"family": "dcgan", "arch": arch})
    if family == "cgan":
        arch = {"num_classes": 10, "latent_dim": 8, "embed_dim": 8, "channels": 1, "size": 32, "g_base": 8,
                "d_base": 8, "disc": "concat"}
        return save_model(folder, cgan.build(arch)[0], {"family": "cgan", "arch": arch})
    if family == "tgan":
        clip = _clip(root)
        arch = {"text_dim": _text_dim(clip), "latent_dim": 8, "cond_dim": 16, "channels": 3, "size": 32, "g_base": 8,
                "d_base": 8}
        return save_model(folder, tgan.build(arch)[0], {"family": "tgan", "arch": arch, "clip": str(clip)})
    if family == "tgan-attn":
        from t2i.text import TextEncoder

        clip = _clip(root)
        enc = TextEncoder.from_pretrained(clip)
        arch = tgan_attn.AttnGANArch(token_dim=enc.token_dim, pooled_dim=enc.pooled_dim, max_tokens=enc.max_length,
                                     latent_dim=8, g_channels=[16, 8, 8], d_channels=[8, 8, 8], text_width=8)
        return save_model(folder, tgan_attn.build(arch)[0], {"family": "tgan-attn", "arch": tgan_attn.arch_dict(arch),
                                                              "clip": str(clip)})
    if family == "ldm":
        from t2i.diffusion.testing import make_tiny_pipeline

        make_tiny_pipeline(seed=0).save_pretrained(folder)
        (folder / "t2i_sampling.json").write_text(json.dumps({"sampler": "ddim", "num_inference_steps": 2,
                                                              "guidance_scale": 2.0}))
        return folder
    if family == "unclip":
        from t2i.unclip.testing import make_tiny_unclip

        return make_tiny_unclip(folder)
    raise KeyError(f"no tiny {family!r} model here: a new family adds its builder to this test")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def generator(request, root) -> Generator:
    return load_generator(build(request.param, root))


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


def conditions(gen: Generator, k: int = 2) -> list:
    return conditions_for(gen, PROMPTS[:k], LABELS[:k])


def request(conds: list) -> dict:
    if conds[0] is None:
        return {"prompts": ["ignored"] * len(conds)}  # an unconditional model only counts them
    return {"prompts": conds} if isinstance(conds[0], str) else {"labels": conds}


def test_count_ordering_and_the_seeding_rule(generator):
    """[a0, a1, b0, b1]; condition i from seed + i alone: a request equals its conditions asked one by one."""
    conds = conditions(generator)
    both = generator.generate(**request(conds), seed=5, num_images_per_prompt=2)
    assert len(both) == 4
    first = generator.generate(**request(conds[:1]), seed=5, num_images_per_prompt=2)
    second = generator.generate(**request(conds[1:]), seed=6, num_images_per_prompt=2)
    np.testing.assert_allclose(pixels(both), pixels(first + second), atol=1)  # batch size: at most the last bit
    assert np.abs(pixels(both[:1]) - pixels(both[1:2])).max() > 0  # two images of one condition differ


def test_determinism_and_seeds(generator):
    conds = conditions(generator, 1)
    a = generator.generate(**request(conds), seed=3, num_images_per_prompt=2)
    np.testing.assert_array_equal(pixels(a), pixels(generator.generate(**request(conds), seed=3,
                                                                        num_images_per_prompt=2)))
    assert np.abs(pixels(a) - pixels(generator.generate(**request(conds), seed=4, num_images_per_prompt=2))).max() > 0


def test_generate_conditions_batches_without_changing_images(generator):
    conds = conditions(generator, 3)
    batched = generate_conditions(generator, conds, seed=10, n=2, batch_images=64)
    small = generate_conditions(generator, conds, seed=10, n=2, batch_images=2)  # one condition per call
    assert len(batched) == len(small) == 6
    np.testing.assert_allclose(pixels(batched), pixels(small), atol=1)
    alone = generator.generate(**request(conds[2:]), seed=12, num_images_per_prompt=2)  # = t2i sample row 2
    np.testing.assert_allclose(pixels(batched[4:]), pixels(alone), atol=1)


def test_bad_input_is_a_clear_error(generator):
    conds = conditions(generator, 1)
    with pytest.raises(GenerationError, match="num_images_per_prompt"):
        generator.generate(**request(conds), num_images_per_prompt=0)
    with pytest.raises(GenerationError, match="unknown option.*'steps'"):
        generator.generate(**request(conds), steps=3)
    with pytest.raises(GenerationError, match="prompts must be a list"):
        generator.generate(prompts="a red circle")
    if generator.conditioning == "text":
        with pytest.raises(GenerationError, match="text-conditional"):
            generator.generate(labels=[1])
    if generator.conditioning == "label":
        with pytest.raises(GenerationError, match=r"\[0, 9\]"):
            generator.generate(labels=[10])
        assert generator.class_names is not None and len(generator.class_names) == generator.num_classes
    with pytest.raises(GenerationError, match="one kind only"):
        generate_conditions(generator, ["a", 1])


def test_options_round_trip(generator):
    """Typed options: the registry names the family's dataclass, the defaults survive a dict round trip."""
    assert generator.Options is options_type(generator.family)
    assert isinstance(generator.options, generator.Options)
    assert generator.resolve_options() == generator.options
    as_dict = dataclasses.asdict(generator.options)
    assert config_from_dict(generator.Options, json.loads(json.dumps(as_dict))) == generator.options
    for f in dataclasses.fields(generator.Options):  # every field says what it is (the config style)
        from t2i.config import field_comments

        assert field_comments(generator.Options).get(f.name), f"{generator.Options.__name__}.{f.name} has no comment"
    if generator.family == "ldm":
        from t2i.diffusion.options import load_sampling_options, save_sampling_options

        changed = options_with(generator.options, {"num_inference_steps": "3", "guidance_scale": 4})
        assert changed.num_inference_steps == 3 and changed.guidance_scale == 4.0
        assert load_sampling_options(save_sampling_options(changed, generator.path).parent) == changed
        save_sampling_options(generator.options, generator.path)


def test_modules_devices_and_protocols(generator):
    modules = generator.modules()
    assert modules and all(isinstance(m, torch.nn.Module) for m in modules.values())
    assert generator.to("cpu") is generator and generator.device == torch.device("cpu")
    params = generator.describe()["parameters"]
    assert set(params) == set(modules) and all(n > 0 for n in params.values())
    if generator.conditioning == "text" and generator.family != "ldm":
        assert "text_encoder" in modules  # counted apart by the bench
    assert isinstance(generator, Denoising) == (generator.family == "ldm")
    assert isinstance(generator, LatentCodes) == (generator.family in ("ae", "vae", "cvae"))
    if generator.family in ("ae", "vae"):
        images = torch.rand(3, *generator.image_shape)
        codes = generator.encode(images)
        assert tuple(codes.shape) == (3, generator.latent_dim)
        assert tuple(generator.decode(codes).shape) == (3, *generator.image_shape)
        chosen = generator.generate(num_images_per_prompt=3, latents=codes.tolist())
        np.testing.assert_allclose(pixels(chosen)[:, None] if pixels(chosen).ndim == 3 else pixels(chosen),
                                   (generator.decode(codes) * 255).round().numpy().astype(np.int16), atol=1)


# ----------------------------------------------------------------------------- a new family is one entry


@dataclasses.dataclass
class ToyOptions:
    brightness: float = 1.0  # scale of the grey level of every image


class ToyGenerator(Generator):
    """Flat grey images whose level depends on the prompt's length and the seed: a family in a dozen lines."""

    family = "toy"
    conditioning = "text"
    Options = ToyOptions

    def __init__(self):
        self.options = ToyOptions()
        self.net = torch.nn.Linear(1, 1)

    def modules(self):
        return {"net": self.net}

    def generate(self, prompts=None, labels=None, seed=0, num_images_per_prompt=1, **options):
        from t2i.generator import seeded_noise, to_pil, validate_request

        opts = self.resolve_options(**options)
        count = validate_request(prompts, labels, num_images_per_prompt, needs="text")
        level = seeded_noise(seed, count, num_images_per_prompt, (1,)).sigmoid()  # (N, 1)
        level = level * torch.tensor([len(p) for p in prompts]).repeat_interleave(num_images_per_prompt)[:, None] / 40
        return to_pil((level * opts.brightness).clamp(0, 1)[:, :, None, None].expand(-1, 3, 8, 8))


def load_toy(folder):
    return ToyGenerator()


def test_a_new_family_is_one_registry_entry(tmp_path, monkeypatch, capsys):
    import train.eval
    import train.sample

    monkeypatch.setitem(FAMILIES, "toy", Family(f"{__name__}:load_toy", f"{__name__}:ToyOptions", "a toy"))
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "config.json").write_text('{"family": "toy"}')
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na large blue square in the top left\n")
    out = tmp_path / "out"
    assert train.sample.main(["--model", str(folder), "--prompts", str(prompts), "--n", "2", "--brightness", "0.5",
                              "--guidance-scale", "3", "--out", str(out)]) == 0
    assert "--guidance-scale ignored: family 'toy'" in capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [0, 0, 1, 1] and len(list((out / "images").glob("*.png"))) == 4
    dimmer = pixels([Image.open(out / r["file_name"]) for r in rows])
    plain = tmp_path / "plain"
    train.sample.main(["--model", str(folder), "--prompts", str(prompts), "--n", "2", "--out", str(plain)])
    plain_images = pixels([Image.open(plain / r["file_name"]) for r in rows])
    assert dimmer.sum() < plain_images.sum()  # the option reached the family
    # t2i eval draws the very same images (the one seeding rule)
    images, texts, _ = train.eval.generate(load_generator(folder), prompts.read_text().splitlines(), None, 2, 0)
    assert texts[2] == "a large blue square in the top left"
    np.testing.assert_array_equal(pixels(images), plain_images)
