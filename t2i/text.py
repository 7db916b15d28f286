"""The text encoder every generator conditions on: prompts -> per-token states + pooled embedding.

One interface over two backends:
- open_clip: our saved CLIP folders (``open_clip_config.json``), built-in short names
  (``shapes-clip``) and open_clip architecture names (``ViT-B-32`` + ``pretrained=`` tag);
  ``tokens`` are the text transformer's final-LayerNorm output and ``pooled`` is
  ``encode_text`` (the projected EOT state, not normalised);
- transformers: a ``CLIPTextModel`` / ``CLIPTextModelWithProjection`` folder or hub id with
  its ``CLIPTokenizer`` (tokenizer files in the same folder or in ``tokenizer/``), or a
  Stable-Diffusion-layout folder holding ``text_encoder/`` + ``tokenizer/``; ``tokens`` is
  ``last_hidden_state`` and ``pooled`` is ``text_embeds`` (with projection) or
  ``pooler_output``.

``enc(prompts)`` returns ``TextOutput(tokens (B, T, D), pooled (B, P), mask (B, T))`` where
``T = enc.max_length`` (prompts are padded to the full context with the end token, as
Stable Diffusion 1.x does, for both backends, so an exported encoder sees the same ids) and
``mask`` is True on the start token, the prompt's tokens and the end token. A prompt longer
than the context is truncated to ``max_length`` tokens (the last one kept as the end token)
with a ``UserWarning``. ``enc.empty(B)`` is the cached output for the empty prompt "", the
unconditional input of classifier-free guidance.

The encoder is frozen by default (``requires_grad=False``, eval mode, no autograd graph);
generators store its path in their config rather than its weights in theirs.

    python -c "from t2i.clip.testing import demo; demo()"
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn


def cut_prompts(tokenizer: Any, prompts: Sequence[str], max_length: int) -> list[tuple[str, str]]:
    """Each prompt a Hugging Face tokenizer's ``max_length`` context cuts, with the text it loses (the end token
    stays: truncation drops the tokens before it)."""
    unpadded = tokenizer(list(prompts), truncation=False).input_ids  # start + tokens + end, any length
    return [(p, tokenizer.decode(x[max_length - 1:-1])) for p, x in zip(prompts, unpadded) if len(x) > max_length]


def warn_cut(cut: Sequence[tuple[str, str]], what: str, max_length: int, stacklevel: int = 2) -> None:
    """One warning for all the ``(prompt, lost text)`` pairs of ``cut``: how many, and the first with what it lost;
    ``stacklevel`` counts from the caller, as if it called ``warnings.warn``."""
    if cut:
        prompt, lost = cut[0]
        shown = prompt if len(prompt) <= 100 else prompt[:97] + "..."
        warnings.warn(f"{len(cut)} {what} longer than the text encoder's {max_length} tokens were truncated, "
                      f"e.g. {shown!r} lost {lost!r}", UserWarning, stacklevel=stacklevel + 1)


@dataclass
class TextOutput:
    tokens: torch.Tensor  # (B, T, D) per-token states, for cross-attention
    pooled: torch.Tensor  # (B, P) one embedding per prompt, for GANs / VAEs / FiLM
    mask: torch.Tensor  # (B, T) bool, True on real tokens (start, prompt, end), False on padding

    def to(self, device: str | torch.device) -> "TextOutput":
        return TextOutput(self.tokens.to(device), self.pooled.to(device), self.mask.to(device))

    def repeat_interleave(self, n: int) -> "TextOutput":
        """Each prompt ``n`` times in a row (``num_images_per_prompt`` ordering)."""
        return TextOutput(self.tokens.repeat_interleave(n, 0), self.pooled.repeat_interleave(n, 0),
                          self.mask.repeat_interleave(n, 0))


def _looks_like_hf_text_model(folder: Path) -> bool:
    config = folder / "config.json"
    if not config.is_file():
        return False
    model_type = json.loads(config.read_text()).get("model_type", "")
    return model_type in ("clip_text_model", "clip")


class TextEncoder(nn.Module):
    """Frozen (by default) CLIP text encoder; build it with ``TextEncoder.from_pretrained``."""

    def __init__(self, backend: str, model: nn.Module, tokenizer, max_length: int, token_dim: int, pooled_dim: int,
                 source: str, trainable: bool = False):
        super().__init__()
        if backend not in ("open_clip", "transformers"):
            raise ValueError(f"backend must be 'open_clip' or 'transformers', got {backend!r}")
        self.backend = backend
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)  # T: every output is padded to this many tokens
        self.token_dim = int(token_dim)  # D of tokens (B, T, D)
        self.pooled_dim = int(pooled_dim)  # P of pooled (B, P)
        self.source = source  # what it was loaded from; generators store this in their config
        self.trainable = trainable
        self.warn_each_call = True  # warn when a call truncates a prompt (off after ``warn_truncated_captions``)
        self._empty: dict[tuple, TextOutput] = {}
        self.model.requires_grad_(trainable)
        self.train(False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path_or_name: str | Path, pretrained: str | None = None, trainable: bool = False,
                        device: str | torch.device = "cpu") -> "TextEncoder":
        """Load from an open_clip folder / built-in name / open_clip architecture, or a transformers CLIP text model.

        ``pretrained`` is only for open_clip architecture names (an open_clip tag, file or folder).
        """
        from t2i.builtin import resolve
        from t2i.clip.model import is_clip_folder, list_architectures
        from t2i.runtime.checkpoint import stopped_run

        text = str(path_or_name)
        try:
            source: Path | str | None = resolve(text, hub=True)
        except FileNotFoundError:
            source = None
        if isinstance(source, Path) and source.is_dir():
            path = source
            if is_clip_folder(path):
                return cls._from_open_clip(path, None, trainable, device, source=text)
            if (path / "text_encoder").is_dir() and (path / "tokenizer").is_dir():
                return cls._from_transformers(str(path / "text_encoder"), str(path / "tokenizer"), trainable, device,
                                              source=text)
            if stopped := stopped_run(path):
                raise stopped
            if _looks_like_hf_text_model(path):
                tok = path / "tokenizer" if (path / "tokenizer").is_dir() else path
                return cls._from_transformers(str(path), str(tok), trainable, device, source=text)
            raise FileNotFoundError(
                f"{path} is not a text encoder folder: looked for open_clip_config.json (open_clip), "
                "text_encoder/ + tokenizer/ (Stable Diffusion layout) and config.json of a CLIP text model (transformers)")
        if text in list_architectures():
            return cls._from_open_clip(text, pretrained, trainable, device, source=text)
        if pretrained is not None:
            raise ValueError(f"pretrained={pretrained!r} is only for open_clip architecture names; {text!r} is not one")
        if isinstance(source, str):  # a hub id: a text model, or a pipeline's text_encoder/
            errors = []
            for model_sub, tok_sub in (("", ""), ("text_encoder", "tokenizer")):
                try:
                    return cls._from_transformers(text, text, trainable, device, source=text,
                                                  subfolders=(model_sub, tok_sub))
                except OSError as err:
                    errors.append(f"{model_sub or '(root)'}: {err}")
            raise FileNotFoundError(
                f"could not load a transformers CLIP text model from the hub id {text!r} (looked at its root and at "
                f"text_encoder/ + tokenizer/); with HF_HUB_OFFLINE=1 only the local cache is searched: download it "
                f"once online or give a local folder. Causes: {' | '.join(errors)}")
        if source is None:  # not a built-in name, an existing path or a hub id
            from t2i.builtin import missing

            raise FileNotFoundError(f"{missing(text, 'text encoder')}, or an open_clip architecture name "
                                    "(`python -c 'import open_clip; print(open_clip.list_models())'`)")
        raise FileNotFoundError(
            f"no text encoder at {text!r}: give an open_clip folder, a built-in name, an open_clip architecture "
            "name, a transformers CLIP text model folder / hub id, or a folder with text_encoder/ + tokenizer/")

    @classmethod
    def _from_open_clip(cls, name_or_folder, pretrained, trainable, device, source) -> "TextEncoder":
        from open_clip import SimpleTokenizer

        from t2i.clip.model import context_length, create_clip, get_tokenizer

        model = create_clip(name_or_folder, pretrained=pretrained, device=device)
        model.visual = None  # the image tower is not needed to encode text
        tokenizer = get_tokenizer(model)
        if not isinstance(tokenizer, SimpleTokenizer):
            raise ValueError(f"TextEncoder supports open_clip models with CLIP's BPE tokenizer (SimpleTokenizer); "
                             f"{source} uses {type(tokenizer).__name__}")
        width = model.text.width if hasattr(model, "text") else model.transformer.width
        proj = model.text.text_projection if hasattr(model, "text") else model.text_projection
        pooled_dim = width if proj is None else (proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1])
        return cls("open_clip", model, tokenizer, context_length(model), width, pooled_dim, source, trainable)

    @classmethod
    def _from_transformers(cls, model_path: str, tokenizer_path: str, trainable, device, source,
                           subfolders: tuple[str, str] = ("", "")) -> "TextEncoder":
        from transformers import AutoConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

        config = AutoConfig.from_pretrained(model_path, subfolder=subfolders[0])
        with_projection = "CLIPTextModelWithProjection" in (config.architectures or [])
        model_cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
        model = model_cls.from_pretrained(model_path, subfolder=subfolders[0]).to(device)
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_path, subfolder=subfolders[1])
        text_config = model.config
        max_length = min(tokenizer.model_max_length, text_config.max_position_embeddings)
        pooled_dim = text_config.projection_dim if with_projection else text_config.hidden_size
        return cls("transformers", model, tokenizer, max_length, text_config.hidden_size, pooled_dim, source, trainable)

    # ------------------------------------------------------------------ encoding
    def train(self, mode: bool = True) -> "TextEncoder":
        # a frozen encoder stays in eval mode even inside a module put in train mode
        return super().train(mode and self.trainable)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts -> ids (B, T) and mask (B, T); warns when a prompt is truncated."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"prompts must be a list of strings, got {type(prompts).__name__}")
        if self.backend == "open_clip":
            ids = self.tokenizer(list(prompts))  # (B, T), zero-padded, truncated with the end token kept
            eot = ids.argmax(dim=-1)  # the end token has the largest id
            # pad with the end token like the SD 1.x CLIPTokenizer (see t2i.clip.export): real tokens
            # (causal mask) and the pooled state (first end token) are unchanged
            ids = torch.where(torch.arange(ids.shape[1])[None, :] > eot[:, None], self.tokenizer.eot_token_id, ids)
        else:
            batch = self.tokenizer(list(prompts), padding="max_length", max_length=self.max_length, truncation=True,
                                   return_tensors="pt")
            ids = batch["input_ids"]  # (B, T)
            eot = (batch["attention_mask"].sum(dim=-1) - 1).long()
        if self.warn_each_call:
            self._warn_long(prompts, "prompt(s)", stacklevel=3)  # at forward (or the caller of tokenize)
        mask = torch.arange(ids.shape[1])[None, :] <= eot[:, None]  # (B, T)
        return ids, mask

    def warn_truncated_captions(self, captions: Sequence[str] | None) -> None:
        """One warning for all the training ``captions`` the context cuts, then none per call (a trainer encodes
        them batch by batch, which warned again for every batch); ``None`` (streamed data) keeps the per-call ones."""
        if captions is not None:
            self.warn_each_call = False
            self._warn_long(sorted(set(captions)), "training caption(s)", stacklevel=3)

    def _warn_long(self, prompts: Sequence[str], what: str, stacklevel: int) -> None:
        if self.backend == "open_clip":
            words = [self.tokenizer.encode(p) for p in prompts]  # without the start and end tokens
            keep = self.max_length - 2
            cut = [(p, self.tokenizer.decode(w[keep:]).strip()) for p, w in zip(prompts, words) if len(w) > keep]
        else:
            cut = cut_prompts(self.tokenizer, prompts, self.max_length)
        warn_cut(cut, what, self.max_length, stacklevel=stacklevel)

    def forward(self, prompts: Sequence[str]) -> TextOutput:
        ids, mask = self.tokenize(prompts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            if self.backend == "open_clip":
                from t2i.clip.model import text_states

                tokens, pooled = text_states(self.model, ids)  # (B, T, D), (B, P)
            else:
                # no attention_mask, as Stable Diffusion calls it: the causal mask already keeps
                # every real token from seeing the padding
                out = self.model(input_ids=ids)
                tokens = out.last_hidden_state  # (B, T, D)
                pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output  # (B, P)
        return TextOutput(tokens, pooled, mask)

    def empty(self, batch: int = 1) -> TextOutput:
        """The output for the empty prompt "", repeated ``batch`` times (classifier-free guidance).

        Cached per device and dtype for a frozen encoder; recomputed each call for a trainable one.
        """
        if self.trainable:
            one = self([""])
        else:
            key = (self.device, next(self.model.parameters()).dtype)
            if key not in self._empty:
                with torch.no_grad():
                    self._empty[key] = self([""])
            one = self._empty[key]
        return TextOutput(one.tokens.expand(batch, -1, -1), one.pooled.expand(batch, -1), one.mask.expand(batch, -1))

    def extra_repr(self) -> str:
        return (f"backend={self.backend}, source={self.source!r}, max_length={self.max_length}, "
                f"token_dim={self.token_dim}, pooled_dim={self.pooled_dim}")
