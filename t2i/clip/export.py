"""Export an open_clip text tower + tokenizer to transformers ``CLIPTextModel`` + ``CLIPTokenizer`` files.

So Stable-Diffusion-layout pipelines (``text_encoder/`` + ``tokenizer/``) can use a text
encoder trained here. The exported model gives the same per-token states
(``last_hidden_state``) and pooled embedding (``text_embeds`` of
``CLIPTextModelWithProjection``, i.e. open_clip's ``encode_text``) to about 1e-6.

What has to line up between the two implementations (both are the CLIP text transformer of
Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision"):
- tokenizer: open_clip's ``bpe_simple_vocab_16e6.txt.gz`` is the same BPE as OpenAI CLIP's;
  ``vocab.json`` + ``merges.txt`` are rebuilt from it offline. Padding: ``t2i.text.TextEncoder``
  pads open_clip ids with the end token (as the SD 1.x ``CLIPTokenizer`` does) rather than
  open_clip's 0, which changes no real token (causal mask) nor the pooled output (the first
  end token), so both backends see the same ids everywhere. (Padding with "!" = id 0, as
  SD 2.x does, would make "!" a special token that the tokenizer splits out of prompts.);
- causal mask (both), pooling at the EOT token (open_clip: argmax of the ids, the first
  maximum; transformers: the first ``eos_token_id``: the same position);
- activation: open_clip's default ``nn.GELU`` -> ``hidden_act="gelu"``; ``quick_gelu``
  models -> ``"quick_gelu"``;
- attention: ``nn.MultiheadAttention.in_proj_weight`` (3D, D) is split into q/k/v;
- ``positional_embedding`` (T, D) -> ``position_embedding.weight``; ``ln_final`` ->
  ``final_layer_norm``; ``text_projection`` (D, P) parameter -> ``Linear(D, P).weight`` (P, D),
  its transpose.

    python -c "from t2i.clip.export import demo; demo()"
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import torch


def _bytes_to_unicode() -> dict[int, str]:
    from open_clip.tokenizer import bytes_to_unicode

    return bytes_to_unicode()


def clip_bpe_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """Rebuild OpenAI CLIP's ``vocab.json`` and ``merges.txt`` from open_clip's BPE file.

    Mirrors ``open_clip.tokenizer.SimpleTokenizer.__init__``: 256 byte symbols, the same with
    the end-of-word mark, one entry per merge, then the two special tokens (49408 in all).
    """
    from open_clip.tokenizer import default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]  # line 0 is a version header
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}, merges


def write_clip_tokenizer(folder: str | Path, max_length: int):
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer config; return the ``CLIPTokenizer``."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_bpe_vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=max_length)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _check_exportable(model: torch.nn.Module) -> dict:
    """The text tower must be the plain CLIP transformer that transformers' CLIPTextModel implements."""
    cfg = getattr(model, "t2i_model_cfg", None)
    if cfg is None:
        raise ValueError("export needs a model loaded with t2i.clip.load_clip (it carries its model_cfg)")
    text_cfg = dict(cfg.get("text_cfg", {}))
    if hasattr(model, "text"):
        raise ValueError("only open_clip CLIP models with the built-in text transformer can be exported; "
                         f"got {type(model).__name__} with a {type(model.text).__name__} text tower")
    unsupported = {k: text_cfg[k] for k in ("hf_model_name", "ls_init_value", "embed_cls", "no_causal_mask",
                                            "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner",
                                            "scale_attn", "scale_fc", "proj_bias", "act_kwargs", "norm_kwargs",
                                            "hf_tokenizer_name", "tokenizer_kwargs")
                   if text_cfg.get(k)}
    if text_cfg.get("pool_type", "argmax") != "argmax":
        unsupported["pool_type"] = text_cfg["pool_type"]
    if text_cfg.get("block_type") not in (None, "default"):
        unsupported["block_type"] = text_cfg["block_type"]
    if unsupported:
        raise ValueError(f"the text tower uses options transformers' CLIPTextModel does not have: {unsupported}; "
                         "allowed: a plain CLIP text transformer (causal, argmax pooling, linear projection without bias)")
    return text_cfg


def text_tower_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """open_clip CLIP text weights -> ``CLIPTextModel`` keys (without the ``text_model.`` prefix)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {
        "embeddings.token_embedding.weight": sd["token_embedding.weight"],  # (V, D)
        "embeddings.position_embedding.weight": sd["positional_embedding"],  # (T, D)
        "final_layer_norm.weight": sd["ln_final.weight"],
        "final_layer_norm.bias": sd["ln_final.bias"],
    }
    for i in range(len(model.transformer.resblocks)):
        src, dst = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        q, k, v = sd[src + "attn.in_proj_weight"].chunk(3, dim=0)  # (3D, D) -> 3 x (D, D)
        qb, kb, vb = sd[src + "attn.in_proj_bias"].chunk(3, dim=0)
        out |= {
            dst + "self_attn.q_proj.weight": q, dst + "self_attn.q_proj.bias": qb,
            dst + "self_attn.k_proj.weight": k, dst + "self_attn.k_proj.bias": kb,
            dst + "self_attn.v_proj.weight": v, dst + "self_attn.v_proj.bias": vb,
            dst + "self_attn.out_proj.weight": sd[src + "attn.out_proj.weight"],
            dst + "self_attn.out_proj.bias": sd[src + "attn.out_proj.bias"],
            dst + "layer_norm1.weight": sd[src + "ln_1.weight"], dst + "layer_norm1.bias": sd[src + "ln_1.bias"],
            dst + "layer_norm2.weight": sd[src + "ln_2.weight"], dst + "layer_norm2.bias": sd[src + "ln_2.bias"],
            dst + "mlp.fc1.weight": sd[src + "mlp.c_fc.weight"], dst + "mlp.fc1.bias": sd[src + "mlp.c_fc.bias"],
            dst + "mlp.fc2.weight": sd[src + "mlp.c_proj.weight"], dst + "mlp.fc2.bias": sd[src + "mlp.c_proj.bias"],
        }
    return {k: v.contiguous() for k, v in out.items()}


def export_text_encoder(open_clip_folder: str | Path, out_dir: str | Path, with_projection: bool = True) -> Path:
    """Write ``out_dir`` as a transformers text encoder folder (model + tokenizer files together).

    With a text projection (our presets have one) and ``with_projection`` the model is a
    ``CLIPTextModelWithProjection`` whose ``text_embeds`` equal open_clip's ``encode_text``;
    ``CLIPTextModel.from_pretrained(out_dir)`` also loads it (the projection is then unused).
    """
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from t2i.clip.model import load_clip

    model = load_clip(open_clip_folder)
    text_cfg = _check_exportable(model)
    cfg = model.t2i_model_cfg
    width, layers = model.transformer.width, len(model.transformer.resblocks)
    heads = model.transformer.resblocks[0].attn.num_heads
    mlp = model.transformer.resblocks[0].mlp.c_fc.out_features
    proj = model.text_projection
    has_proj = proj is not None and with_projection
    context = int(model.context_length)

    out_dir = Path(out_dir)
    tokenizer = write_clip_tokenizer(out_dir, max_length=context)
    config = CLIPTextConfig(
        vocab_size=int(model.vocab_size), hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers,
        num_attention_heads=heads, max_position_embeddings=context,
        hidden_act="quick_gelu" if cfg.get("quick_gelu") else "gelu",
        layer_norm_eps=model.ln_final.eps, attention_dropout=0.0,
        projection_dim=int(proj.shape[1]) if proj is not None else width,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    state = text_tower_state_dict(model)
    if has_proj:
        hf = CLIPTextModelWithProjection(config)
        state = {"text_model." + k: v for k, v in state.items()}
        state["text_projection.weight"] = proj.detach().t().contiguous()  # (D, P) -> Linear weight (P, D)
    else:
        hf = CLIPTextModel(config)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"export mapping is incomplete: missing {missing}, unexpected {unexpected}")
    hf.save_pretrained(out_dir)
    (out_dir / "t2i_export.json").write_text(json.dumps(
        {"source": str(open_clip_folder), "text_cfg": text_cfg, "class": type(hf).__name__}, indent=2) + "\n")
    return out_dir


def demo() -> None:
    from t2i.clip.testing import make_tiny_clip
    from t2i.text import TextEncoder

    with tempfile.TemporaryDirectory() as tmp:
        src = make_tiny_clip(Path(tmp) / "clip")
        dst = export_text_encoder(src, Path(tmp) / "hf")
        a, b = TextEncoder.from_pretrained(src), TextEncoder.from_pretrained(dst)
        prompts = ["a red circle", "two blue squares above a green triangle"]
        oa, ob = a(prompts), b(prompts)
        print(f"max |tokens diff| {(oa.tokens - ob.tokens).abs().max():.2e}, "
              f"max |pooled diff| {(oa.pooled - ob.pooled).abs().max():.2e}")
