"""Model files: safetensors weights plus a JSON config, never pickles.

A saved model is a folder holding ``config.json`` (how to rebuild it, including a
``"family"`` key naming the model family) and ``model.safetensors`` (its weights).
Loading a pickle checkpoint (``.pt``, ``.pth``, ``.ckpt``, ``.bin``) is refused unless the
caller passes ``allow_pickle=True``, because unpickling runs arbitrary code.

    python -c "from t2i.io import demo; demo()"
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint or model folder that is missing, partial or unsafe to load."""


def unshared_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies; safetensors refuses tensors that share memory
    (tied weights, views of one buffer), so every tensor after the first on a storage is cloned."""
    out, seen = {}, set()
    for key, t in tensors.items():
        t = t.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[key] = t
    return out


def save_model(folder: str | Path, module: torch.nn.Module | dict[str, torch.Tensor], config: dict[str, Any],
               weights_name: str = WEIGHTS_NAME, config_name: str = CONFIG_NAME) -> Path:
    """Write the JSON config and safetensors weights atomically (temp folder, then rename); other
    files already in ``folder`` are kept. The names default to ``config.json`` / ``model.safetensors``."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    state = module.state_dict() if isinstance(module, torch.nn.Module) else module
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; a saved model is an ordinary folder
    try:
        if folder.exists():  # keep other files of the folder (model cards, samples)
            shutil.copytree(folder, tmp, dirs_exist_ok=True)
        save_file(unshared_cpu(state), str(tmp / weights_name))
        (tmp / config_name).write_text(json.dumps(config, indent=2, default=str) + "\n")
        if folder.exists():
            old = folder.with_name(folder.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_config_json(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"no {CONFIG_NAME} in {folder}: expected a folder written by save_model")
    return json.loads(path.read_text())


def load_weights(path: str | Path, allow_pickle: bool = False, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a state dict from a safetensors file or a model folder; pickles only on request."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.exists():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path), device=map_location)
    if path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise CheckpointError(
                f"refusing to load pickle checkpoint {path}: unpickling can run arbitrary code. "
                "Convert it to .safetensors, or pass allow_pickle=True (--allow-pickle) if you trust it.")
        obj = torch.load(path, map_location=map_location, weights_only=False)
        return obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    raise CheckpointError(f"unknown weights format {path.suffix!r}: expected .safetensors (or, opted in, {PICKLE_SUFFIXES})")


def demo() -> None:
    net = torch.nn.Linear(2, 2)
    with tempfile.TemporaryDirectory() as d:
        save_model(Path(d) / "m", net, {"family": "demo"})
        print(load_config_json(Path(d) / "m"), list(load_weights(Path(d) / "m")))
