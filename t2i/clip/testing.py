"""Tiny CLIP models for tests: built locally in about a second, no network.

``make_tiny_clip(folder)`` writes a random open_clip model in our open_clip layout (the
same layout as ``t2i/builtin/shapes-clip``), so any test can condition on text:

    from t2i.clip.testing import make_tiny_clip
    from t2i.text import TextEncoder
    enc = TextEncoder.from_pretrained(make_tiny_clip(tmp_path / "clip"))
    out = enc(["a red circle"])   # out.tokens (1, 16, 16), out.pooled (1, 16), out.mask (1, 16)

``make_tiny_hf_text_encoder(folder)`` writes a tiny transformers ``CLIPTextModel`` +
``CLIPTokenizer`` folder (the other backend of ``TextEncoder``).

    python -c "from t2i.clip.testing import demo; demo()"
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch

# a 32 px ViT and a 1-layer text transformer; the token embedding (49408 x 16, open_clip's
# BPE vocabulary) is most of its 0.8 M parameters
TINY_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "head_width": 8, "mlp_ratio": 2.0, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1, "mlp_ratio": 2.0},
}


def tiny_clip(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A random tiny open_clip ``CLIP`` (not saved); ``overrides`` replace top-level cfg keys."""
    import open_clip

    from t2i.clip.model import _attach_cfg

    cfg = copy.deepcopy(TINY_MODEL_CFG)
    cfg.update(overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**cfg)
    open_clip.set_model_preprocess_cfg(model, {"size": cfg["vision_cfg"]["image_size"], "mode": "RGB",
                                               "mean": list(open_clip.OPENAI_DATASET_MEAN),
                                               "std": list(open_clip.OPENAI_DATASET_STD),
                                               "interpolation": "bicubic", "resize_mode": "shortest",
                                               "fill_color": 0})
    return _attach_cfg(model.eval(), cfg, source="")


def make_tiny_clip(folder: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Write a random tiny open_clip model to ``folder`` (open_clip layout) and return the path."""
    from t2i.clip.model import save_clip

    return save_clip(tiny_clip(seed, **overrides), folder)


def make_tiny_hf_text_encoder(folder: str | Path, seed: int = 0, with_projection: bool = False,
                              max_length: int = 16) -> Path:
    """Write a random tiny transformers ``CLIPTextModel`` (+ ``CLIPTokenizer``) folder."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from t2i.clip.export import write_clip_tokenizer

    folder = Path(folder)
    tokenizer = write_clip_tokenizer(folder, max_length=max_length)
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=max_length, projection_dim=8,
                            hidden_act="gelu", bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    model.save_pretrained(folder)
    return folder


def demo() -> None:
    from t2i.text import TextEncoder

    with tempfile.TemporaryDirectory() as tmp:
        enc = TextEncoder.from_pretrained(make_tiny_clip(Path(tmp) / "clip"))
        out = enc(["a red circle", "a blue square left of a green triangle"])
        print(f"tokens {tuple(out.tokens.shape)} pooled {tuple(out.pooled.shape)} mask {out.mask.sum(1).tolist()}")
