"""TextEncoder over both backends: open_clip folders and transformers CLIP text models (tiny, local)."""

import open_clip
import pytest
import torch

from t2i.clip import load_clip
from t2i.clip.testing import make_tiny_clip, make_tiny_hf_text_encoder
from t2i.text import TextEncoder, TextOutput

PROMPTS = ["a red circle", "a small blue square to the left of a green triangle"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    return make_tiny_hf_text_encoder(tmp_path_factory.mktemp("hf") / "tiny", with_projection=True)


def test_open_clip_backend_shapes_and_pooled_is_encode_text(clip_folder):
    enc = TextEncoder.from_pretrained(clip_folder)
    out = enc(PROMPTS)
    assert isinstance(out, TextOutput)
    assert (enc.max_length, enc.token_dim, enc.pooled_dim) == (16, 16, 16)
    assert out.tokens.shape == (2, 16, 16) and out.pooled.shape == (2, 16) and out.mask.shape == (2, 16)
    # mask covers start + prompt tokens + end token
    ids = open_clip.SimpleTokenizer(context_length=16)(PROMPTS)
    assert out.mask.sum(1).tolist() == [int((ids[i] != 0).sum()) for i in range(2)]
    # pooled is exactly what stock open_clip's encode_text gives on its own zero-padded ids
    model = load_clip(clip_folder)
    with torch.no_grad():
        reference = model.encode_text(ids)
    torch.testing.assert_close(out.pooled, reference, rtol=0, atol=1e-6)
    # different prompts give different states
    assert not torch.allclose(out.pooled[0], out.pooled[1])


def test_frozen_by_default(clip_folder):
    enc = TextEncoder.from_pretrained(clip_folder)
    assert not any(p.requires_grad for p in enc.parameters())
    wrapper = torch.nn.Sequential(enc).train()
    assert not enc.training  # a frozen encoder stays in eval mode
    assert not enc(PROMPTS).tokens.requires_grad
    trainable = TextEncoder.from_pretrained(clip_folder, trainable=True)
    trainable(PROMPTS).pooled.sum().backward()
    assert trainable.model.token_embedding.weight.grad is not None
    del wrapper


def test_empty_prompt_is_cached_and_expanded(clip_folder):
    enc = TextEncoder.from_pretrained(clip_folder)
    first = enc.empty(3)
    assert first.tokens.shape == (3, 16, 16) and first.pooled.shape == (3, 16)
    assert first.mask.sum(1).tolist() == [2, 2, 2]  # start + end tokens
    torch.testing.assert_close(first.pooled[0], enc([""]).pooled[0])
    second = enc.empty(1)
    assert second.tokens.data_ptr() == first.tokens.data_ptr()  # the same cached tensor


def test_truncation_warns_and_keeps_end_token(clip_folder):
    enc = TextEncoder.from_pretrained(clip_folder)
    with pytest.warns(UserWarning, match="truncated"):
        out = enc(["one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"])
    assert out.mask.all()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc(PROMPTS)  # short prompts: no warning


def test_a_trainer_is_warned_once_for_all_its_long_captions(clip_folder):
    """Regression: a trainer encoding its captions batch by batch warned for every batch with a long caption,
    each from torch's module.py (printed with a source line); now one warning for all, from the caller."""
    import warnings

    enc = TextEncoder.from_pretrained(clip_folder)
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    with pytest.warns(UserWarning) as seen:
        enc([long])
    assert seen[0].filename.endswith("text.py")  # forward, ours: the t2i command prints it as one line
    with pytest.warns(UserWarning, match="^2 training caption") as seen:
        enc.warn_truncated_captions([long, long + " more", long, "short"])
    assert seen[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for batch in ([long], [long + " again"]):
            enc(batch)  # the batches: no more warnings


def test_transformers_backend(hf_folder):
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    enc = TextEncoder.from_pretrained(hf_folder)
    assert enc.backend == "transformers"
    assert (enc.max_length, enc.token_dim, enc.pooled_dim) == (16, 16, 8)
    out = enc(PROMPTS)
    assert out.tokens.shape == (2, 16, 16) and out.pooled.shape == (2, 8)
    model = CLIPTextModelWithProjection.from_pretrained(hf_folder).eval()
    ids = CLIPTokenizer.from_pretrained(hf_folder)(PROMPTS, padding="max_length", max_length=16,
                                                    return_tensors="pt")["input_ids"]
    with torch.no_grad():
        reference = model(input_ids=ids)
    torch.testing.assert_close(out.pooled, reference.text_embeds)
    torch.testing.assert_close(out.tokens, reference.last_hidden_state)
    assert enc.empty(2).tokens.shape == (2, 16, 16)
    with pytest.warns(UserWarning, match="truncated"):
        enc([" ".join(["word"] * 40)])


def test_stable_diffusion_layout(tmp_path):
    make_tiny_hf_text_encoder(tmp_path / "pipe" / "text_encoder")
    make_tiny_hf_text_encoder(tmp_path / "pipe" / "tokenizer")
    enc = TextEncoder.from_pretrained(tmp_path / "pipe")
    out = enc(PROMPTS)
    assert enc.pooled_dim == 16  # CLIPTextModel: the pooler output (no projection)
    assert out.pooled.shape == (2, 16)


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a text encoder folder"):
        TextEncoder.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no text encoder at"):
        TextEncoder.from_pretrained("no-such-model-anywhere")


def test_missing_hub_model_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1"):
        TextEncoder.from_pretrained("openai/clip-vit-no-such-model")
