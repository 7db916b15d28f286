"""Runs shared on the Hugging Face hub as their folders, loaded back by hub id wherever a model is accepted.

A run folder uploaded as the model card says (``hf upload NAME RUN --exclude 'checkpoints/*'``) is not
always a layout the stock ``from_pretrained`` of its family reads from a hub id: a LoRA run names its base in
``t2i_lora.json``, a GAN keeps its weights in ``model/``, a CLIP run in ``model/`` too, and a pipeline's
sampling defaults live in ``t2i_sampling.json``. ``hub_run(repo_id)`` recognises such a repo by the files
its trainer writes (``t2i.model_card.LAYOUTS``, a pipeline's ``t2i_sampling.json``) and gives the local
snapshot of it (downloaded once, checkpoints left out; offline, from the cache), which every loader then
reads as the folder it was; any other repo (a diffusers pipeline, a transformers text model) is left to the
stock loaders, which fetch only the files they need. ``t2i.builtin.resolve`` calls it for every hub id.

    hf upload alice/stamp-lora runs/lora8 --exclude 'checkpoints/*'
    t2i sample --model alice/stamp-lora --prompt "A frog." --out /tmp/frog
"""

from __future__ import annotations

from pathlib import Path

from t2i.diffusion.options import SAMPLING_FILE

LEFT_OUT = ["checkpoints/*"]  # a run's resumable state: never needed to load its model


def run_markers() -> list[str]:
    """The files that mark a repo as a t2i run folder: every layout's, but a bare ``model_index.json`` (any
    diffusers pipeline has one; diffusers loads those file by file)."""
    from t2i.model_card import LAYOUTS

    return [marker for marker, _, _ in LAYOUTS if marker != "model_index.json"] + [SAMPLING_FILE]


def hub_file(repo_id: str, filename: str) -> Path | None:
    """The local copy of one file of a hub model repo, or None when the repo has no such file, is not there,
    or (offline: ``HF_HUB_OFFLINE=1``) was never downloaded."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename))
    except (EntryNotFoundError, OSError, ValueError):  # missing entry or repo, offline and uncached, a bad id
        return None


def hub_run(repo_id: str) -> Path | None:
    """The local snapshot of a t2i run uploaded as its folder, or None for any other repo (module docstring)."""
    if not any(hub_file(repo_id, marker) is not None for marker in run_markers()):
        return None
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, ignore_patterns=LEFT_OUT))
