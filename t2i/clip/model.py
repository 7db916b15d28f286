"""Create, load and save CLIP models in open_clip's own folder layout.

A saved CLIP is a folder that stock open_clip loads with
``open_clip.create_model_and_transforms("local-dir:" + folder)``:

    folder/
      open_clip_config.json        {"model_cfg": {...}, "preprocess_cfg": {"mean", "std", ...}}
      open_clip_model.safetensors  the model's state dict

Models come from an open_clip architecture name (``ViT-B-32``), one of our presets
(``t2i-tiny`` for 32 px, ``t2i-small`` for 64 px; JSON model configs in
``model_configs/`` registered with ``open_clip.add_model_config``), a saved folder, or a
built-in short name (``shapes-clip``). Weights come from ``pretrained``: an open_clip tag,
a checkpoint file or a folder.

    python -c "from t2i.clip.model import demo; demo()"
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from t2i.io import save_model

logger = logging.getLogger(__name__)

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
PRESET_DIR = Path(__file__).resolve().parent / "model_configs"
# weight files open_clip itself looks for in a folder, in its order of preference
CHECKPOINT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                    "open_clip_pytorch_model.bin", "model.safetensors")


def register_presets() -> list[str]:
    """Register our JSON model configs with open_clip (idempotent) and return their names."""
    import open_clip

    names = sorted(p.stem for p in PRESET_DIR.glob("*.json"))
    if not all(n in open_clip.list_models() for n in names):
        open_clip.add_model_config(PRESET_DIR)
    return names


def list_architectures() -> list[str]:
    """Every architecture name ``create_clip`` accepts: open_clip's and our presets."""
    import open_clip

    register_presets()
    return open_clip.list_models()


def clip_model_folder(path: str | Path) -> Path:
    """The folder holding ``open_clip_config.json``: ``path`` itself, or the ``model/`` folder of a
    ``t2i train clip`` run (so a run folder works wherever a CLIP folder does)."""
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() and (path / "model" / CONFIG_NAME).is_file():
        return path / "model"
    return path


def is_clip_folder(path: str | Path) -> bool:
    """A saved CLIP (open_clip layout) or a `t2i train clip` run folder holding one."""
    return (clip_model_folder(path) / CONFIG_NAME).is_file()


def _resolve_folder(path_or_name: str | Path) -> Path | None:
    """A built-in short name, a folder holding ``open_clip_config.json``, a run folder or a hub id of a run
    uploaded as its folder (``t2i.hub``) -> that folder; None when it is none of them."""
    from t2i.builtin import is_builtin, looks_like_hub_id, resolve

    if is_builtin(path_or_name) or looks_like_hub_id(path_or_name):  # a hub id: a `t2i train clip` run uploaded
        found = resolve(path_or_name, hub=True)
        return clip_model_folder(found) if isinstance(found, Path) else None
    path = Path(str(path_or_name)).expanduser()
    return clip_model_folder(path) if path.is_dir() else None


def _attach_cfg(model: torch.nn.Module, model_cfg: dict[str, Any], source: str) -> torch.nn.Module:
    # open_clip keeps the preprocess cfg on the model but not the model cfg nor the name its
    # tokenizer is looked up by: keep both for saving and tokenising
    model.t2i_model_cfg = copy.deepcopy(model_cfg)
    model.t2i_source = source
    return model


def load_clip(folder_or_name: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a saved CLIP folder (or built-in name) with stock open_clip; eval mode."""
    import open_clip

    from t2i.runtime.checkpoint import stopped_run

    folder = _resolve_folder(folder_or_name)
    if folder is None or not is_clip_folder(folder):
        if folder is not None and (stopped := stopped_run(folder)):
            raise stopped
        raise FileNotFoundError(
            f"{folder_or_name!s} is not a CLIP folder: expected {CONFIG_NAME} + {WEIGHTS_NAME} "
            "(written by `t2i train clip`, in OUT/model, t2i.clip.save_clip or open_clip's push_to_hf_hub) "
            "or a built-in name (shapes-clip)")
    if not any((folder / n).is_file() for n in CHECKPOINT_NAMES):
        raise FileNotFoundError(f"{folder} has {CONFIG_NAME} but no weights; looked for {list(CHECKPOINT_NAMES)}")
    register_presets()
    model = open_clip.create_model("local-dir:" + str(folder), device=device)
    logger.info("CLIP %s: weights loaded from %s", folder_or_name, _checkpoint_in(folder))
    model_cfg = json.loads((folder / CONFIG_NAME).read_text())["model_cfg"]
    return _attach_cfg(model, model_cfg, "local-dir:" + str(folder)).eval()


def _checkpoint_in(folder: Path) -> Path:
    from t2i.runtime.checkpoint import stopped_run

    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    if stopped := stopped_run(folder):
        raise stopped
    raise FileNotFoundError(f"no CLIP weights in {folder}: looked for {list(CHECKPOINT_NAMES)}")


def create_clip(name: str | Path, pretrained: str | Path | None = None, device: str | torch.device = "cpu",
                **model_overrides: Any) -> torch.nn.Module:
    """Build a CLIP by architecture name / preset / folder, with optional pretrained weights.

    ``pretrained`` is an open_clip tag (``laion2b_s34b_b79k``: needs the network or a warm
    cache), a checkpoint file, a folder (an open_clip folder or one holding a weight file) or a
    built-in name (``shapes-clip``). A file or folder is handed to open_clip as its ``pretrained``
    file, so it loads the weights itself (strictly) and logs no "initialized randomly"; one INFO
    line of logger ``t2i.clip.model`` says which weights were loaded from where.
    ``model_overrides`` change top-level model_cfg keys, e.g. ``init_logit_bias=-10.0`` for SigLIP.
    """
    import open_clip

    register_presets()
    folder = _resolve_folder(name)
    if folder is not None:
        if pretrained is not None:
            raise ValueError(f"{name} is a saved folder that carries its own weights; do not also pass pretrained={pretrained!r}")
        if model_overrides:
            raise ValueError(f"model overrides {sorted(model_overrides)} cannot be applied to a saved folder ({name})")
        return load_clip(folder, device=device)
    name = str(name)
    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise ValueError(f"unknown CLIP architecture {name!r}: give a saved folder, a built-in name or one of "
                         f"{list_architectures()}")
    model_cfg.update(model_overrides)
    checkpoint, tag = None, None
    if pretrained is not None:
        from t2i.builtin import is_builtin, resolve

        path = resolve(pretrained) if is_builtin(pretrained) else Path(str(pretrained)).expanduser()
        path = clip_model_folder(path) if path.is_dir() else path
        if path.is_dir():
            if is_clip_folder(path):  # a saved model of the same architecture
                saved = json.loads((path / CONFIG_NAME).read_text())["model_cfg"]
                if saved != open_clip.get_model_config(name):
                    raise ValueError(f"pretrained folder {path} holds a different architecture than {name!r}; "
                                     f"load the folder itself as the model instead")
            checkpoint = _checkpoint_in(path)
        elif path.is_file():
            checkpoint = path
        else:
            tag = _check_tag(name, str(pretrained))
    if checkpoint is not None:  # open_clip loads the file itself (strict), so it does not warn "initialized randomly"
        model = open_clip.create_model(name, pretrained=str(checkpoint), device=device, **model_overrides)
        logger.info("CLIP %s: weights loaded from %s", name, checkpoint)
    elif tag is None:  # an architecture with random weights: open_clip's own warning says so, truly
        model = open_clip.create_model(name, pretrained=None, device=device, **model_overrides)
    else:  # open_clip downloads (or finds in its cache) the tag's file and applies its preprocess cfg
        try:
            model = open_clip.create_model(name, pretrained=tag, device=device, **model_overrides)
        except RuntimeError as err:
            raise FileNotFoundError(_missing_tag_message(name, tag, err)) from err
    return _attach_cfg(model, model_cfg, name)


def _check_tag(name: str, tag: str) -> str:
    import open_clip

    if not open_clip.get_pretrained_cfg(name, tag):
        raise FileNotFoundError(
            f"pretrained={tag!r} is neither a file, a folder, nor an open_clip tag of {name!r}; "
            f"tags of {name!r}: {open_clip.list_pretrained_tags_by_model(name) or 'none'}")
    return tag


def _missing_tag_message(name: str, tag: str, err: Exception) -> str:
    """Say which file was looked for, where, and what to do instead."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    where = cfg.get("hf_hub") or cfg.get("url") or cfg.get("file")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false")
    hint = " (HF_HUB_OFFLINE is set, so only the local cache was searched)" if offline else ""
    return (f"could not load open_clip weights {name}/{tag}: looked for {where!r} in the Hugging Face cache and "
            f"~/.cache/clip{hint}; download them once online, or pass a local checkpoint file or folder as "
            f"pretrained. Cause: {err}")


def save_clip(model: torch.nn.Module, folder: str | Path, model_cfg: dict[str, Any] | None = None,
              dtype: torch.dtype | None = None) -> Path:
    """Write ``open_clip_config.json`` + ``open_clip_model.safetensors`` atomically.

    ``dtype`` (e.g. ``torch.float16``) stores floating weights in a smaller type; by default
    they are saved as they are, so a reload gives bit-identical embeddings.
    """
    from open_clip import get_model_preprocess_cfg

    model_cfg = model_cfg if model_cfg is not None else getattr(model, "t2i_model_cfg", None)
    if model_cfg is None:
        raise ValueError("save_clip needs the model_cfg: build the model with t2i.clip.create_clip/load_clip "
                         "or pass model_cfg=open_clip.get_model_config(name)")
    model = getattr(model, "module", model)  # unwrap DDP
    preprocess = get_model_preprocess_cfg(model)
    preprocess_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in preprocess.items()}
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        state[key] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    return save_model(folder, state, config, weights_name=WEIGHTS_NAME, config_name=CONFIG_NAME)


def get_tokenizer(model: torch.nn.Module):
    """open_clip's own tokenizer choice for a model built here (``open_clip.get_tokenizer``), built once per
    model and kept on it: open_clip reads its BPE vocabulary at every build (about a second on a CPU), and the
    measures on captioned data ask for it at every scoring call."""
    import open_clip

    source = getattr(model, "t2i_source", None)
    if source is None:
        raise ValueError("get_tokenizer needs a model built with t2i.clip.create_clip/load_clip")
    if getattr(model, "t2i_tokenizer", None) is None:
        model.t2i_tokenizer = open_clip.get_tokenizer(source, context_length=context_length(model))
    return model.t2i_tokenizer


def context_length(model: torch.nn.Module) -> int:
    text = getattr(model, "text", model)
    return int(text.context_length)


def image_size(model: torch.nn.Module) -> int:
    size = model.visual.preprocess_cfg.get("size", model.visual.image_size)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def preprocess_images(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Our data's images ``(B, C, S, S)`` in [0, 1] -> the model's normalised input ``(B, 3, S', S')``.

    1-channel images (digits) are repeated to 3 channels; a size other than the model's is
    resized (bicubic, antialiased) like open_clip's own transform would.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 1|3, H, W) in [0, 1], got shape {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)  # (B, 3, H, W)
    size = image_size(model)
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    cfg = model.visual.preprocess_cfg
    mean = torch.tensor(cfg["mean"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def text_states(model: torch.nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token states and pooled embedding of an open_clip text tower.

    ids ``(B, T)`` -> tokens ``(B, T, D)`` (the final-LayerNorm output, as Stable Diffusion
    uses ``last_hidden_state``) and pooled ``(B, P)`` (exactly ``model.encode_text(ids)``:
    the state at the EOT token, i.e. the argmax id, through ``text_projection``).
    """
    from open_clip.transformer import TextTransformer, text_global_pool

    text = getattr(model, "text", None)
    if text is not None:  # CustomTextCLIP: the tower is a module of its own
        if not isinstance(text, TextTransformer) or text.cls_emb is not None:
            raise ValueError(f"per-token states are supported for open_clip TextTransformer towers, got {type(text).__name__}")
        x, attn_mask = text._embeds(ids)
        x = text.transformer(x, attn_mask=attn_mask)
        tower, pool_type, eos_id = text, text.pool_type, text.eos_id
    else:  # CLIP: the tower's parts live on the model (see open_clip CLIP.encode_text)
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(ids).to(cast_dtype)  # (B, T, D)
        x = x + model.positional_embedding.to(cast_dtype)
        x = model.transformer(x, attn_mask=model.attn_mask)
        tower, pool_type, eos_id = model, model.text_pool_type, getattr(model, "text_eos_id", None)
    tokens = tower.ln_final(x)  # (B, T, D)
    pooled = text_global_pool(tokens, ids, pool_type, eos_token_id=eos_id)  # (B, D)
    proj = tower.text_projection
    if proj is not None:
        pooled = proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj  # (B, P)
    return tokens, pooled


def demo() -> None:
    model = create_clip("t2i-tiny")
    tokenizer = get_tokenizer(model)
    with torch.no_grad():
        tokens, pooled = text_states(model, tokenizer(["a red circle"]))
        image = model.encode_image(preprocess_images(model, torch.rand(1, 3, 32, 32)))
    print(f"tokens {tuple(tokens.shape)} pooled {tuple(pooled.shape)} image {tuple(image.shape)} "
          f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M")
