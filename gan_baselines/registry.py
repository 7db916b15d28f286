"""One entry per model family: ``load_generator(path_or_name)`` for sampling, eval, bench and app.

A saved model folder's ``config.json`` names its ``"family"``; a diffusers pipeline folder
(``model_index.json``) is the latent diffusion family. Each loader returns a
``t2i.generator.Generator``.

    python -c "from gan_baselines.registry import FAMILIES; print(sorted(FAMILIES))"
"""

from __future__ import annotations

import importlib
from pathlib import Path

from t2i.builtin import hub_error, looks_like_hub_id, missing, resolve
from t2i.io import CheckpointError, load_config_json
from t2i.generator import Generator

# family -> "module:function(path) -> Generator"; modules are imported only when used
FAMILIES: dict[str, str] = {
    "ae": "gan_baselines.autoencoders:load_generator",
    "vae": "gan_baselines.vae:load_generator",
    "cvae": "gan_baselines.vae:load_generator",
    "gan": "gan_baselines.gan:load_generator",
    "dcgan": "gan_baselines.dcgan:load_generator",
    "cgan": "gan_baselines.cgan:load_generator",
    "tgan": "gan_baselines.tgan:load_generator",
    "ldm": "t2i.diffusion.pipeline:load_generator",
}


def family_of(folder: Path) -> str:
    if (folder / "model_index.json").is_file():
        return "ldm"
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{folder} is not a saved model: it has neither config.json nor model_index.json; "
                                "give a folder written by `t2i train ...` (its model/ folder), a diffusers pipeline "
                                "folder or a built-in name")
    family = load_config_json(folder).get("family")
    if family not in FAMILIES:
        raise ValueError(f"{folder}/config.json names family {family!r}; known families: {sorted(FAMILIES)}")
    return family


def load_generator(path_or_name: str | Path, device: str = "cpu") -> Generator:
    """Load any saved generator (a folder, a built-in short name, or a diffusers hub id)."""
    try:
        folder = resolve(path_or_name)
    except FileNotFoundError:
        text = str(path_or_name)
        if not looks_like_hub_id(text):
            raise missing(text, "model") from None
        from t2i.diffusion.pipeline import load_generator as load_ldm
        try:
            return load_ldm(text).to(device)
        except OSError as err:
            raise hub_error(text, "model", err) from None
    if folder.is_dir() and not (folder / "model_index.json").is_file() and (folder / "model" / "config.json").is_file():
        folder = folder / "model"  # a training run folder: its final model lives in RUN/model
    module_name, func = FAMILIES[family_of(folder)].split(":")
    loader = getattr(importlib.import_module(module_name), func)
    try:
        generator = loader(folder)
    except KeyError as err:  # a config.json without a key its family needs (e.g. "arch")
        raise CheckpointError(f"{folder}/config.json lacks the key {err.args[0]!r} that a {family_of(folder)!r} "
                              "model needs; re-save the model with its trainer (`t2i train ...`)") from None
    generator.path = folder
    return generator.to(device)
