"""One entry per model family: ``load_generator(path_or_name)`` for sampling, eval, bench, app and grids.

A saved model folder's ``config.json`` names its ``"family"``; a diffusers pipeline folder
(``model_index.json``) or a hub id is the latent diffusion family. Each entry names, as
``"module:attribute"`` strings imported only when used, the family's loader (``folder ->
t2i.generator.Generator``) and its typed sampling options (the ``Generator.Options`` dataclass,
from which ``t2i sample`` derives its flags). A new family is one entry here plus its module;
nothing else in the toolkit names a family.

    python -c "from gan_baselines.registry import FAMILIES; print(sorted(FAMILIES))"
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2i.builtin import hub_error, resolve
from t2i.io import CheckpointError, load_config_json
from t2i.runtime.checkpoint import stopped_run
from t2i.generator import Generator


@dataclass(frozen=True)
class Family:
    loader: str  # "module:function", function(folder) -> Generator
    options: str = "t2i.generator:NoOptions"  # "module:Class" of the family's sampling options
    about: str = ""  # one line for help texts


FAMILIES: dict[str, Family] = {
    "ae": Family("gan_baselines.autoencoders:load_generator", "gan_baselines.autoencoders:AutoencoderOptions",
                 "autoencoder: decodes N(0, I) codes (or chosen latents)"),
    "vae": Family("gan_baselines.vae:load_generator", "gan_baselines.vae:VAEOptions", "VAE: prior samples"),
    "cvae": Family("gan_baselines.vae:load_generator", "gan_baselines.vae:VAEOptions",
                   "conditional VAE on labels or text"),
    "gan": Family("gan_baselines.gan:load_generator", about="MLP GAN (unconditional)"),
    "dcgan": Family("gan_baselines.dcgan:load_generator", about="DCGAN (unconditional)"),
    "cgan": Family("gan_baselines.cgan:load_generator", about="class-conditional GAN"),
    "tgan": Family("gan_baselines.tgan:load_generator", about="text-conditional GAN"),
    "tgan-attn": Family("gan_baselines.tgan_attn:load_generator",
                        about="text-conditional GAN with cross-attention to the CLIP token states"),
    "ldm": Family("t2i.diffusion.pipeline:load_generator", "t2i.diffusion.options:DiffusionOptions",
                  "latent diffusion pipeline (diffusers)"),
    "unclip": Family("t2i.unclip.pipeline:load_generator", "t2i.unclip.pipeline:UnCLIPOptions",
                     "unCLIP (DALL-E 2 style): CLIP prior + image-embedding decoder (diffusers Kandinsky 2.2 layout)"),
}


def _attribute(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def options_type(family: str) -> type:
    """The sampling-options dataclass of ``family``."""
    return _attribute(FAMILIES[family].options)


def family_of(folder: Path) -> str:
    if (folder / "model_index.json").is_file() or (folder / "t2i_lora.json").is_file():
        return "ldm"  # a pipeline folder, or a LoRA run of `t2i train ldm --lora-rank` (its config.json is the run's)
    if (folder / "t2i_unclip.json").is_file() or (folder / "decoder" / "model_index.json").is_file():
        return "unclip"  # `t2i train unclip` (its config.json is the run's); without --prior its loader says what is missing
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{folder} is not a saved model: it has neither config.json nor model_index.json; "
                                "give a folder written by `t2i train ...` (its model/ folder), a diffusers pipeline "
                                "folder or a built-in name")
    family = load_config_json(folder).get("family")
    if family is None and (stopped := stopped_run(folder)):  # a run's own config.json: no model yet
        raise stopped
    if family is None and (kind := finished_run(folder)):
        raise ValueError(f"{folder} is a `t2i train {kind}` run, not an image generator: give it where that kind of "
                         "model is taken (--clip, --vae, --prior, ...), or give a generator here")
    if family not in FAMILIES:
        raise ValueError(f"{folder}/config.json names family {family!r}; known families: {sorted(FAMILIES)}")
    return family


def finished_run(folder: Path) -> str:
    """The trainer of a finished run folder that is not a generator's (a CLIP, a first stage, a prior), or ""."""
    from t2i.model_card import trainer_of

    try:
        return trainer_of(folder)
    except (FileNotFoundError, ValueError):
        return ""


def load_generator(path_or_name: str | Path, device: str = "cpu") -> Generator:
    """Load any saved generator: a folder, a training run folder (its ``model/``), a built-in short name,
    or a diffusers hub id. A missing local path is ``missing(...)``; a hub id that does not load, ``hub_error``."""
    source = resolve(path_or_name, hub=True, what="model")
    if isinstance(source, str):  # a hub id: diffusers pipelines are the only generators on the hub
        try:
            generator = _attribute(FAMILIES["ldm"].loader)(source)
        except OSError as err:
            raise hub_error(source, "model", err) from None
        generator.path = None
        return generator.to(device)
    folder = source
    if folder.is_dir() and not (folder / "model_index.json").is_file() and (folder / "model" / "config.json").is_file():
        folder = folder / "model"  # a training run folder: its final model lives in RUN/model
    family = family_of(folder)
    try:
        generator = _attribute(FAMILIES[family].loader)(folder)
    except KeyError as err:  # a config.json without a key its family needs (e.g. "arch")
        raise CheckpointError(f"{folder}/config.json lacks the key {err.args[0]!r} that a {family!r} "
                              "model needs; re-save the model with its trainer (`t2i train ...`)") from None
    generator.path = folder
    return generator.to(device)
