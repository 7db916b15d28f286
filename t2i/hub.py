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


STOCK_LAYOUTS = ("model_index.json", "vae/config.json")  # every diffusers pipeline repo has them; loaded file by file


def run_markers() -> list[str]:
    """The files that mark a repo as a t2i run folder: every layout's but those of any diffusers pipeline (a
    `t2i train vae-kl` run uploaded loads by the stock ``AutoencoderKL`` path, ``subfolder="vae"``), which
    would otherwise download a whole Stable Diffusion repo."""
    from t2i.model_card import LAYOUTS

    return [marker for marker, _, _ in LAYOUTS if marker not in STOCK_LAYOUTS] + [SAMPLING_FILE]


def hub_run(repo_id: str) -> Path | None:
    """The local snapshot of a t2i run uploaded as its folder, or None for any other repo, a repo that is not
    there, or no network and nothing cached (the caller's stock loader then says what failed). A marker in the
    cache answers at once; else one request lists the repo's files (no retries: a machine without network and
    without ``HF_HUB_OFFLINE=1`` is not kept waiting)."""
    from huggingface_hub import model_info, snapshot_download, try_to_load_from_cache

    markers = run_markers()
    try:
        if not any(isinstance(try_to_load_from_cache(repo_id, marker), str) for marker in markers):
            files = {sibling.rfilename for sibling in model_info(repo_id).siblings or []}  # offline: raises
            if not files & set(markers):
                return None
        return Path(snapshot_download(repo_id, ignore_patterns=LEFT_OUT))
    except Exception:  # noqa: BLE001 - no such repo, gated, offline, no network (the HTTP client's own error
        return None  # types differ between huggingface_hub versions), a bad id: the stock loader then reports it
