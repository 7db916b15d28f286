"""CLIP on open_clip: presets, save/load in open_clip's layout, stock-open_clip loading, export parity."""

import copy

import open_clip
import pytest
import torch

from t2i.clip import create_clip, get_tokenizer, load_clip, preprocess_images, save_clip, text_states
from t2i.clip.export import export_text_encoder
from t2i.clip.testing import TINY_MODEL_CFG, make_tiny_clip, tiny_clip
from t2i.text import TextEncoder

PROMPTS = ["a red circle", "Two BLUE squares!! above a green triangle?", "",
           "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny", seed=1)


def _embeddings(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 3, 32, 32, generator=g)
    ids = open_clip.SimpleTokenizer(context_length=model.context_length)(PROMPTS)
    with torch.no_grad():
        return model.encode_image(preprocess_images(model, images)), model.encode_text(ids)


def test_presets_are_open_clip_model_configs():
    model = create_clip("t2i-tiny")
    assert "t2i-tiny" in open_clip.list_models() and "t2i-small" in open_clip.list_models()
    assert model.context_length == 32 and model.visual.image_size == (32, 32)
    image, text = _embeddings(model)
    assert image.shape == (4, 64) and text.shape == (4, 64)
    with pytest.raises(ValueError, match="unknown CLIP architecture 'no-such-arch'"):
        create_clip("no-such-arch")


def test_save_load_round_trip_is_bit_identical(tmp_path):
    model = tiny_clip(seed=4)
    before = _embeddings(model)
    folder = save_clip(model, tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    after = _embeddings(load_clip(folder))
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    # saving a loaded model again gives the same file contents
    again = save_clip(load_clip(folder), tmp_path / "m2")
    assert (again / "open_clip_model.safetensors").read_bytes() == (folder / "open_clip_model.safetensors").read_bytes()


def test_stock_open_clip_loads_our_folder(tiny_folder):
    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + str(tiny_folder))
    tokenizer = open_clip.get_tokenizer("local-dir:" + str(tiny_folder))
    assert tokenizer.context_length == 16
    loaded = load_clip(tiny_folder)
    assert torch.equal(get_tokenizer(loaded)(PROMPTS), tokenizer(PROMPTS))  # open_clip's own choice of tokenizer
    assert get_tokenizer(loaded) is get_tokenizer(loaded)  # built once per model (open_clip reads its vocabulary)
    ours = _embeddings(loaded)
    theirs = _embeddings(model.eval())
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    normalize = [t for t in preprocess.transforms if type(t).__name__ == "Normalize"][0]
    assert list(normalize.mean) == list(open_clip.OPENAI_DATASET_MEAN)


def test_pretrained_file_and_folder(tmp_path):
    source = create_clip("t2i-tiny")
    folder = save_clip(source, tmp_path / "m")
    for pretrained in (folder, folder / "open_clip_model.safetensors"):
        model = create_clip("t2i-tiny", pretrained=pretrained)
        for (k, a), b in zip(source.state_dict().items(), model.state_dict().values()):
            assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="different architecture"):
        create_clip("t2i-small", pretrained=folder)


def test_pretrained_loads_without_the_random_init_warning_and_says_where(tmp_path, caplog):
    """Issue 16: open_clip logged "No pretrained weights loaded ... initialized randomly" before we loaded them."""
    import logging

    from t2i.builtin import ROOT

    folder = save_clip(create_clip("t2i-tiny"), tmp_path / "m")
    for pretrained, expected in ((folder, folder / "open_clip_model.safetensors"),
                                 ("shapes-clip", ROOT / "shapes-clip" / "open_clip_model.safetensors")):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            create_clip("t2i-tiny", pretrained=pretrained)
        assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]
        ours = [r.getMessage() for r in caplog.records if r.name == "t2i.clip.model"]
        assert ours == [f"CLIP t2i-tiny: weights loaded from {expected}"]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_clip("shapes-clip")
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    assert [r.getMessage() for r in caplog.records if r.name == "t2i.clip.model"] == [
        f"CLIP shapes-clip: weights loaded from {ROOT / 'shapes-clip' / 'open_clip_model.safetensors'}"]


def test_missing_pretrained_weight_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="laion/CLIP-ViT-B-32-laion2B-s34B-b79K") as info:
        create_clip("ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert "HF_HUB_OFFLINE" in str(info.value) and "local checkpoint file or folder" in str(info.value)
    with pytest.raises(FileNotFoundError, match="tags of 'RN50'"):
        create_clip("RN50", pretrained="/no/such/file.pt")


def test_preprocess_images_repeats_grey_and_normalises():
    model = tiny_clip()
    grey = torch.rand(2, 1, 32, 32)
    x = preprocess_images(model, grey)
    assert x.shape == (2, 3, 32, 32)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (grey.expand(-1, 3, -1, -1) - mean) / std)
    assert preprocess_images(model, torch.rand(1, 3, 64, 64)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="images must be"):
        preprocess_images(model, torch.rand(3, 32, 32))


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_export_matches_open_clip_text_tower(tmp_path, quick_gelu):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = make_tiny_clip(tmp_path / "clip", seed=2, quick_gelu=quick_gelu)
    out = export_text_encoder(folder, tmp_path / "hf")
    model = load_clip(folder)
    ids = open_clip.SimpleTokenizer(context_length=16)(PROMPTS)
    hf_ids = CLIPTokenizer.from_pretrained(out)(PROMPTS, padding="max_length", max_length=16, truncation=True,
                                                 return_tensors="pt")["input_ids"]
    first_pad = ids == 0
    assert torch.equal(hf_ids[~first_pad], ids[~first_pad])  # same BPE ids on every real token
    hf = CLIPTextModelWithProjection.from_pretrained(out).eval()
    assert hf.config.hidden_act == ("quick_gelu" if quick_gelu else "gelu")
    with torch.no_grad():
        tokens, pooled = text_states(model, hf_ids)  # the same (end-token padded) ids in both
        ref = hf(input_ids=hf_ids)
        assert torch.equal(pooled, model.encode_text(ids))  # padding does not change open_clip's pooled
    torch.testing.assert_close(ref.last_hidden_state, tokens, rtol=0, atol=1e-5)
    torch.testing.assert_close(ref.text_embeds, pooled, rtol=0, atol=1e-5)
    # the TextEncoder gives the same outputs from either folder; SD pipelines load CLIPTextModel
    a, b = TextEncoder.from_pretrained(folder), TextEncoder.from_pretrained(out)
    with pytest.warns(UserWarning, match="truncated, e.g. .* lost '.+'"):  # what the cut took, in either tokenizer
        oa = a(PROMPTS)
    with pytest.warns(UserWarning, match="truncated, e.g. .* lost '.+'"):
        ob = b(PROMPTS)
    torch.testing.assert_close(oa.tokens, ob.tokens, rtol=0, atol=1e-5)
    torch.testing.assert_close(oa.pooled, ob.pooled, rtol=0, atol=1e-5)
    assert torch.equal(oa.mask, ob.mask)
    plain = CLIPTextModel.from_pretrained(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=hf_ids).last_hidden_state, tokens, rtol=0, atol=1e-5)


def test_export_refuses_unsupported_text_towers(tmp_path):
    text_cfg = copy.deepcopy(TINY_MODEL_CFG["text_cfg"]) | {"no_causal_mask": True}
    folder = make_tiny_clip(tmp_path / "clip", text_cfg=text_cfg)
    with pytest.raises(ValueError, match="no_causal_mask"):
        export_text_encoder(folder, tmp_path / "hf")


def _shapes_images(n: int = 4, size: int = 32):
    """Rendered shapes scenes: the PIL images and the same as a (N, 3, S, S) tensor in [0, 1]."""
    from t2i.data import shapes
    from t2i.data.bad_data import to_tensor

    images = [shapes.render(r) for r in shapes.make_scenes(n, seed=5, size=size, split="test")]
    return images, torch.stack([to_tensor(im) for im in images])


@pytest.fixture(scope="module")
def shapes_image_encoder(tmp_path_factory):
    from t2i.clip.export import export_image_encoder

    return export_image_encoder("shapes-clip", tmp_path_factory.mktemp("hf") / "image_encoder")


def test_export_image_encoder_matches_open_clip_on_shapes_clip(shapes_image_encoder):
    from transformers import CLIPVisionModelWithProjection

    model = load_clip("shapes-clip")
    hf = CLIPVisionModelWithProjection.from_pretrained(shapes_image_encoder).eval()
    assert (hf.config.hidden_size, hf.config.num_attention_heads, hf.config.projection_dim) == (128, 4, 64)
    _, scenes = _shapes_images()
    random = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # normalised-scale pixels
    for x in (random, preprocess_images(model, scenes)):
        with torch.no_grad():
            ref, out = model.encode_image(x), hf(pixel_values=x).image_embeds
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_image_processor_matches_preprocess_images(shapes_image_encoder, tmp_path):
    from transformers import CLIPImageProcessor

    from t2i.clip.export import write_image_processor

    model = load_clip("shapes-clip")
    processor = CLIPImageProcessor.from_pretrained(shapes_image_encoder)
    pil, scenes = _shapes_images()
    pixels = processor(pil, return_tensors="pt").pixel_values
    torch.testing.assert_close(pixels, preprocess_images(model, scenes), rtol=0, atol=1e-6)  # no resize at 32 px
    # larger images are resized (bicubic, antialiased) by both, on uint8 vs float pixels: close, not equal
    pil64, scenes64 = _shapes_images(2, size=64)
    diff = (processor(pil64, return_tensors="pt").pixel_values - preprocess_images(model, scenes64)).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.3
    # a cfg dict works as well as the model; open_clip's padded 'longest' resize is refused
    cfg = dict(model.visual.preprocess_cfg)
    assert write_image_processor(tmp_path / "p", {"preprocess_cfg": cfg}).to_dict() == processor.to_dict()
    with pytest.raises(ValueError, match="longest"):
        write_image_processor(tmp_path / "q", cfg | {"resize_mode": "longest"})


@pytest.mark.parametrize("options", [{"quick_gelu": True},
                                     {"vision_cfg": {"final_ln_after_pool": True, "patch_dropout": 0.5,
                                                     "pos_embed_type": "sin_cos_2d"}}])
def test_export_image_encoder_tiny_vit_round_trips(tmp_path, options):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from t2i.clip.export import export_image_encoder

    overrides = {k: v for k, v in options.items() if k != "vision_cfg"}
    if "vision_cfg" in options:
        overrides["vision_cfg"] = copy.deepcopy(TINY_MODEL_CFG["vision_cfg"]) | options["vision_cfg"]
    folder = make_tiny_clip(tmp_path / "clip", seed=3, **overrides)
    out = export_image_encoder(folder, tmp_path / "hf")
    model = load_clip(folder)
    hf = CLIPVisionModelWithProjection.from_pretrained(out).eval()
    assert hf.config.hidden_act == ("quick_gelu" if options.get("quick_gelu") else "gelu")
    pil, _ = _shapes_images(2)
    x = CLIPImageProcessor.from_pretrained(out)(pil, return_tensors="pt").pixel_values
    x = torch.cat([x, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))])
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=x).image_embeds, model.encode_image(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("vision_cfg, match", [
    ({"pool_type": "avg"}, "pool_type"),
    ({"attentional_pool": True}, "attentional_pool"),
    ({"ls_init_value": 0.1}, "ls_init_value"),
    ({"no_ln_pre": True}, "no_ln_pre"),
    ({"layers": [1, 1, 1, 1], "width": 8, "head_width": 8}, "ModifiedResNet"),
])
def test_export_image_encoder_refuses_unsupported_towers(tmp_path, vision_cfg, match):
    from t2i.clip.export import export_image_encoder

    folder = make_tiny_clip(tmp_path / "clip", vision_cfg=copy.deepcopy(TINY_MODEL_CFG["vision_cfg"]) | vision_cfg)
    with pytest.raises(ValueError, match=match):
        export_image_encoder(folder, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
