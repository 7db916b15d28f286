"""Export open_clip towers to transformers files: text -> ``CLIPTextModel`` + ``CLIPTokenizer``,
image -> ``CLIPVisionModelWithProjection`` + ``CLIPImageProcessor``.

So Stable-Diffusion-layout pipelines (``text_encoder/`` + ``tokenizer/``) can use a text
encoder trained here. The exported model gives the same per-token states
(``last_hidden_state``) and pooled embedding (``text_embeds`` of
``CLIPTextModelWithProjection``, i.e. open_clip's ``encode_text``) to about 1e-6.
The image tower goes to the ``image_encoder/`` + ``image_processor/`` components of
diffusers' ``KandinskyV22PriorPipeline``: ``image_embeds`` equal open_clip's
``encode_image`` (not normalised) to about 1e-6 on the same normalised pixels.

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

What has to line up for the image tower (the ViT of Dosovitskiy et al. 2021, "An Image is
Worth 16x16 Words", as CLIP uses it):
- patch embedding: ``conv1`` (no bias) -> ``patch_embedding``; ``class_embedding`` and
  ``positional_embedding`` (1 + grid**2, D) as they are (a fixed ``sin_cos_2d`` table is a
  parameter too); ``ln_pre`` -> ``pre_layrnorm`` (transformers' spelling);
- the residual blocks map exactly as the text tower's (no causal mask in either);
- pooling: the class token (open_clip ``pool_type="tok"``) through ``ln_post`` ->
  ``post_layernorm``. LayerNorm acts per token, so ``final_ln_after_pool`` (LN after
  taking the token rather than before) gives the same result. Average pooling, attentional
  poolers, layer scale, no ``ln_pre``, timm or ResNet towers have no transformers
  counterpart and are refused; patch dropout is the identity at eval and is fine;
- ``proj`` (D, P) parameter -> ``visual_projection`` ``Linear(D, P).weight``, its transpose;
- preprocessing: open_clip's eval transform (resize the shortest edge, centre crop,
  bicubic, ``preprocess_cfg`` mean/std) is ``CLIPImageProcessor``'s own pipeline; a
  ``squash`` resize is a resize to (H, W) without crop; ``longest`` (pad) is refused.

    python -c "from t2i.clip.export import demo; demo()"
    export_image_encoder("shapes-clip", "out/image_encoder")  # + preprocessor_config.json
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


# per-block options of open_clip's transformers (text and image) that transformers' CLIP encoder
# layers do not have: any of them set means the weights cannot be mapped exactly
_BLOCK_OPTIONS = ("ls_init_value", "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner",
                  "scale_attn", "scale_fc", "act_kwargs", "norm_kwargs")


def _model_cfg(model: torch.nn.Module) -> dict:
    cfg = getattr(model, "t2i_model_cfg", None)
    if cfg is None:
        raise ValueError("export needs a model loaded with t2i.clip.load_clip (it carries its model_cfg)")
    return cfg


def _set_options(tower_cfg: dict, keys: tuple[str, ...]) -> dict:
    """The options among ``keys`` that a tower config sets, plus a non-default ``block_type``."""
    found = {k: tower_cfg[k] for k in keys if tower_cfg.get(k)}
    if tower_cfg.get("block_type") not in (None, "default"):
        found["block_type"] = tower_cfg["block_type"]
    return found


def _hidden_act(cfg: dict) -> str:
    # open_clip builds both towers with QuickGELU when the model cfg says so, else nn.GELU (exact)
    return "quick_gelu" if cfg.get("quick_gelu") else "gelu"


def _check_exportable(model: torch.nn.Module) -> dict:
    """The text tower must be the plain CLIP transformer that transformers' CLIPTextModel implements."""
    cfg = _model_cfg(model)
    text_cfg = dict(cfg.get("text_cfg", {}))
    if hasattr(model, "text"):
        raise ValueError("only open_clip CLIP models with the built-in text transformer can be exported; "
                         f"got {type(model).__name__} with a {type(model.text).__name__} text tower")
    unsupported = _set_options(text_cfg, ("hf_model_name", "embed_cls", "no_causal_mask", "proj_bias",
                                          "hf_tokenizer_name", "tokenizer_kwargs") + _BLOCK_OPTIONS)
    if text_cfg.get("pool_type", "argmax") != "argmax":
        unsupported["pool_type"] = text_cfg["pool_type"]
    if unsupported:
        raise ValueError(f"the text tower uses options transformers' CLIPTextModel does not have: {unsupported}; "
                         "allowed: a plain CLIP text transformer (causal, argmax pooling, linear projection without bias)")
    return text_cfg


def _resblocks_state_dict(sd: dict[str, torch.Tensor], src_prefix: str, layers: int) -> dict[str, torch.Tensor]:
    """open_clip ``{src_prefix}resblocks.i`` -> ``encoder.layers.i`` (the same for both towers)."""
    out = {}
    for i in range(layers):
        src, dst = f"{src_prefix}resblocks.{i}.", f"encoder.layers.{i}."
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
    return out


def text_tower_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """open_clip CLIP text weights -> ``CLIPTextModel`` keys (without the ``text_model.`` prefix)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {
        "embeddings.token_embedding.weight": sd["token_embedding.weight"],  # (V, D)
        "embeddings.position_embedding.weight": sd["positional_embedding"],  # (T, D)
        "final_layer_norm.weight": sd["ln_final.weight"],
        "final_layer_norm.bias": sd["ln_final.bias"],
    }
    out |= _resblocks_state_dict(sd, "transformer.", len(model.transformer.resblocks))
    return {k: v.contiguous() for k, v in out.items()}


def _load_and_save(hf: torch.nn.Module, state: dict[str, torch.Tensor], out_dir: Path, record: dict) -> None:
    """Load ``state`` into ``hf`` (every weight must be covered), save it and a ``t2i_export.json`` record."""
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"export mapping is incomplete: missing {missing}, unexpected {unexpected}")
    hf.save_pretrained(out_dir)
    (out_dir / "t2i_export.json").write_text(json.dumps(record | {"class": type(hf).__name__}, indent=2) + "\n")


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
        num_attention_heads=heads, max_position_embeddings=context, hidden_act=_hidden_act(cfg),
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
    _load_and_save(hf, state, out_dir, {"source": str(open_clip_folder), "text_cfg": text_cfg})
    return out_dir


def _check_image_exportable(model: torch.nn.Module) -> dict:
    """The image tower must be the plain CLIP ViT that transformers' CLIPVisionModel implements."""
    from open_clip.transformer import VisionTransformer

    vision_cfg = dict(_model_cfg(model).get("vision_cfg", {}))
    visual = getattr(model, "visual", None)
    if not isinstance(visual, VisionTransformer):
        raise ValueError("only open_clip ViT image towers can be exported to CLIPVisionModelWithProjection; "
                         f"got a {type(visual).__name__} image tower")
    unsupported = _set_options(vision_cfg, ("attentional_pool", "no_ln_pre") + _BLOCK_OPTIONS)
    if visual.pool_type != "tok":  # 'avg' (mean of patch tokens) or 'none'
        unsupported["pool_type"] = visual.pool_type
    if visual.proj is None:
        unsupported["proj"] = None
    if visual.image_size[0] != visual.image_size[1] or visual.patch_size[0] != visual.patch_size[1]:
        unsupported["image_size/patch_size"] = (visual.image_size, visual.patch_size)  # transformers: square only
    if unsupported:
        raise ValueError(f"the image tower uses options transformers' CLIPVisionModel does not have: {unsupported}; "
                         "allowed: a plain CLIP ViT (class-token pooling, ln_pre, linear projection without bias)")
    return vision_cfg


def image_tower_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """open_clip ViT weights -> ``CLIPVisionModelWithProjection`` keys."""
    visual = model.visual
    sd = {k: v.detach().clone() for k, v in visual.state_dict().items()}
    out = {
        "embeddings.patch_embedding.weight": sd["conv1.weight"],  # (D, 3, p, p), no bias in either
        "embeddings.class_embedding": sd["class_embedding"],  # (D,)
        "embeddings.position_embedding.weight": sd["positional_embedding"],  # (1 + grid**2, D)
        "pre_layrnorm.weight": sd["ln_pre.weight"], "pre_layrnorm.bias": sd["ln_pre.bias"],
        "post_layernorm.weight": sd["ln_post.weight"], "post_layernorm.bias": sd["ln_post.bias"],
    }
    out |= _resblocks_state_dict(sd, "transformer.", len(visual.transformer.resblocks))
    out = {"vision_model." + k: v for k, v in out.items()}
    out["visual_projection.weight"] = sd["proj"].t()  # (D, P) -> Linear weight (P, D)
    return {k: v.contiguous() for k, v in out.items()}


def export_image_encoder(open_clip_folder: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir`` as a ``CLIPVisionModelWithProjection`` folder (+ its ``preprocessor_config.json``).

    ``image_embeds`` equal open_clip's ``model.encode_image(x)`` (not normalised) for the same
    normalised pixels ``x``; ``CLIPImageProcessor.from_pretrained(out_dir)`` gives those pixels.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from t2i.clip.model import load_clip

    model = load_clip(open_clip_folder)
    vision_cfg = _check_image_exportable(model)
    visual = model.visual
    block = visual.transformer.resblocks[0]
    config = CLIPVisionConfig(
        hidden_size=visual.transformer.width, intermediate_size=block.mlp.c_fc.out_features,
        num_hidden_layers=len(visual.transformer.resblocks), num_attention_heads=block.attn.num_heads,
        projection_dim=int(visual.proj.shape[1]), image_size=visual.image_size[0], patch_size=visual.patch_size[0],
        num_channels=3, hidden_act=_hidden_act(model.t2i_model_cfg), layer_norm_eps=visual.ln_post.eps,
        attention_dropout=0.0)
    out_dir = Path(out_dir)
    _load_and_save(CLIPVisionModelWithProjection(config), image_tower_state_dict(model), out_dir,
                   {"source": str(open_clip_folder), "vision_cfg": vision_cfg})
    write_image_processor(out_dir, model)
    return out_dir


def _preprocess_cfg(model_or_cfg) -> dict:
    if isinstance(model_or_cfg, torch.nn.Module):
        return dict(model_or_cfg.visual.preprocess_cfg)
    return dict(model_or_cfg.get("preprocess_cfg", model_or_cfg))  # an open_clip_config.json dict or the cfg itself


def write_image_processor(folder: str | Path, open_clip_model_or_cfg):
    """Write ``preprocessor_config.json`` for open_clip's eval transform; return the ``CLIPImageProcessor``.

    ``open_clip_model_or_cfg``: an open_clip model (its ``visual.preprocess_cfg``), a
    ``preprocess_cfg`` dict, or a whole ``open_clip_config.json`` dict. PIL images in are
    converted to RGB, scaled to [0, 1] and normalised like open_clip's ``preprocess`` (and
    like ``t2i.clip.preprocess_images`` for tensors); at the model's own size nothing is resized.
    """
    from transformers import CLIPImageProcessor

    cfg = _preprocess_cfg(open_clip_model_or_cfg)
    size = cfg["size"]
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))
    resize_mode, interpolation = cfg.get("resize_mode", "shortest"), cfg.get("interpolation", "bicubic")
    if resize_mode == "longest" or (resize_mode == "shortest" and h != w):
        raise ValueError(f"open_clip resize_mode={resize_mode!r} at size {(h, w)} has no CLIPImageProcessor "
                         "counterpart; allowed: 'shortest' with a square size, or 'squash'")
    if cfg.get("mode", "RGB") != "RGB":
        raise ValueError(f"only RGB preprocessing can be exported, got mode={cfg['mode']!r}")
    # open_clip evaluates 'random' (a training-time choice) as bicubic; PIL resample codes: 2 bilinear, 3 bicubic
    resample = 2 if interpolation == "bilinear" else 3
    if resize_mode == "shortest":  # Resize(shortest edge) then CenterCrop, as CLIPImageProcessor does by default
        resize = {"size": {"shortest_edge": h}, "do_center_crop": True, "crop_size": {"height": h, "width": w}}
    else:  # 'squash': Resize((H, W)), no crop
        resize = {"size": {"height": h, "width": w}, "do_center_crop": False}
    processor = CLIPImageProcessor(do_resize=True, resample=resample, do_rescale=True, rescale_factor=1 / 255,
                                   do_normalize=True, image_mean=[float(m) for m in cfg["mean"]],
                                   image_std=[float(s) for s in cfg["std"]], do_convert_rgb=True, **resize)
    processor.save_pretrained(folder)
    return processor


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
