"""Resumable checkpoints as safetensors + JSON (never pickles), written atomically.

A checkpoint is a folder ``out/checkpoints/step_000050/`` holding, for every registered
object (``model_0``, ``optimizer_0``, ``scheduler_0``, ``ema``, ``rng_0``, ``trainer``, ...):

- ``NAME.safetensors``: every tensor of its ``state_dict()``, keyed by its path (``state/0/exp_avg``);
- ``NAME.json``: the rest of the state dict, with ``{"__tensor__": path}`` where a tensor was;
- ``checkpoint.json`` (written last): the step and the size of every file. A folder without
  it, or whose files do not match it or do not load, is partial or corrupt.

Writing goes to a hidden temp folder that is renamed into place once complete; old
checkpoints are removed only after that, keeping the newest ``keep``.

    python -c "from t2i.runtime.checkpoint import demo; demo()"
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safetensors.torch import load_file, save_file

from t2i.io import CheckpointError, unshared_cpu

MANIFEST = "checkpoint.json"
FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")


# ---------------------------------------------------------------- state dict <-> (JSON, tensors)
def split_state(obj: Any, path: str = "", tensors: dict[str, torch.Tensor] | None = None) -> tuple[Any, dict[str, torch.Tensor]]:
    """Replace every tensor in a nested state by ``{"__tensor__": key}``; return (JSON-able, tensors)."""
    tensors = {} if tensors is None else tensors
    if isinstance(obj, torch.Tensor):
        key = path or "tensor"
        tensors[key] = obj
        return {"__tensor__": key}, tensors
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: split_state(v, f"{path}/{k}" if path else k, tensors)[0] for k, v in obj.items()}, tensors
        # optimizer state is keyed by int parameter ids: keep the keys' types
        return {"__items__": [[k, split_state(v, f"{path}/{k}" if path else str(k), tensors)[0]] for k, v in obj.items()]}, tensors
    if isinstance(obj, tuple):
        return {"__tuple__": [split_state(v, f"{path}/{i}", tensors)[0] for i, v in enumerate(obj)]}, tensors
    if isinstance(obj, list):
        return [split_state(v, f"{path}/{i}", tensors)[0] for i, v in enumerate(obj)], tensors
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}, tensors
    if isinstance(obj, np.generic):
        return obj.item(), tensors
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj, tensors
    raise CheckpointError(f"cannot store a {type(obj).__name__} at {path!r} in a checkpoint: state_dict values must be "
                          "tensors, numbers, strings, None, lists, tuples or dicts (no pickles)")


def join_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of ``split_state``."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__items__" in obj:
            return {k: join_state(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(join_state(v, tensors) for v in obj["__tuple__"])
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: join_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [join_state(v, tensors) for v in obj]
    return obj


# ---------------------------------------------------------------- RNG state
def capture_rng(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Python, numpy, torch CPU (+ every CUDA device) and the run's own generator."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


# ---------------------------------------------------------------- folders
def step_dirs(root: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``step_N`` folder under ``root``, newest first (complete or not)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(found, reverse=True)


def write_checkpoint(root: Path, step: int, states: dict[str, Any], keep: int) -> Path:
    """Write ``root/step_{step:06d}`` atomically, then keep only the newest ``keep`` checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        files: dict[str, int] = {}
        for name, state in states.items():
            meta, tensors = split_state(state)
            if tensors:
                save_file(unshared_cpu(tensors), str(tmp / f"{name}.safetensors"))
            (tmp / f"{name}.json").write_text(json.dumps(meta) + "\n")
        for path in sorted(tmp.iterdir()):
            files[path.name] = path.stat().st_size
        manifest = {"format": FORMAT_VERSION, "step": step, "objects": sorted(states), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")  # the completion marker, last
        if final.exists():  # e.g. a fresh run writing over an old run's folder
            old = root / f".old-{final.name}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for _, old_dir in step_dirs(root)[keep:]:  # rotate only now that the new one is complete
        shutil.rmtree(old_dir, ignore_errors=True)
    return final


def read_checkpoint(folder: str | Path) -> tuple[int, dict[str, Any]]:
    """Load every object of a checkpoint into memory; CheckpointError if partial or corrupt."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{folder} is not a complete checkpoint: {MANIFEST} (written last) is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
        for fname, size in manifest["files"].items():
            path = folder / fname
            if not path.is_file() or path.stat().st_size != size:
                raise CheckpointError(f"{path} is missing or has the wrong size (partial copy?)")
        states = {}
        for name in manifest["objects"]:
            tpath = folder / f"{name}.safetensors"
            tensors = load_file(str(tpath)) if tpath.is_file() else {}
            states[name] = join_state(json.loads((folder / f"{name}.json").read_text()), tensors)
    except CheckpointError:
        raise
    except Exception as err:  # truncated safetensors header, bad JSON, missing key...
        raise CheckpointError(f"checkpoint {folder} is corrupt: {type(err).__name__}: {err}") from err
    return int(manifest["step"]), states


def read_latest(root: Path) -> tuple[int, dict[str, Any], Path] | None:
    """The newest checkpoint under ``root`` that loads, warning about each one passed over."""
    for _, folder in step_dirs(root):
        try:
            step, states = read_checkpoint(folder)
        except CheckpointError as err:
            warnings.warn(f"skipping checkpoint {folder}: {err}", RuntimeWarning, stacklevel=2)
            continue
        return step, states, folder
    return None


def remove_stale_temp(root: Path) -> None:
    """Temp folders left by a run that was killed mid-write are never complete: remove them."""
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and (p.name.startswith(".tmp-") or p.name.startswith(".old-")):
                shutil.rmtree(p, ignore_errors=True)


def demo() -> None:
    with tempfile.TemporaryDirectory() as d:
        opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
        for k in range(1, 4):
            write_checkpoint(Path(d), k, {"optimizer_0": opt.state_dict(), "rng_0": capture_rng()}, keep=2)
        print([p.name for _, p in step_dirs(Path(d))], sorted(read_checkpoint(Path(d) / "step_000003")[1]))
