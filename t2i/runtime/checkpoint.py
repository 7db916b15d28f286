"""Resumable checkpoints as safetensors + JSON (never pickles), written crash-consistently.

A checkpoint is a folder ``out/checkpoints/step_000050/`` holding, for every registered
object (``model_0``, ``optimizer_0``, ``scheduler_0``, ``ema``, ``rng_0``, ``trainer``, ...):

- ``NAME.safetensors``: every tensor of its ``state_dict()``, keyed by its path (``state/0/exp_avg``);
- ``NAME.json``: the rest of the state dict, with ``{"__tensor__": path}`` where a tensor was;
- ``checkpoint.json`` (written last): the step, the identity of the run that wrote it
  (``t2i.runtime.identity``: trainer, seed, config hash) and the size of every file. A folder
  without it, or whose files do not match it or do not load, is partial or corrupt.

Writing goes to a hidden temp folder (every file fsync'ed) that is swapped into place
atomically (``t2i.io.swap_in``); only then are old checkpoints rotated out, keeping the
newest ``keep`` *of the same run*: another run's checkpoints are never deleted here.

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

from safetensors.torch import load_file

from t2i.io import CheckpointError, fsync_path, save_tensors_durably, swap_in, write_text_durably
from t2i.runtime.identity import RunIdentity

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


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The ``checkpoint.json`` of a folder, or None when it is missing or unreadable (partial/corrupt)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def identity_of_checkpoint(folder: Path) -> RunIdentity | None:
    """The run that wrote a checkpoint; None if unknown (older format, or partial/corrupt)."""
    manifest = read_manifest(folder)
    return RunIdentity.from_json(manifest.get("run")) if manifest else None


RUN_CONFIG_KEYS = {"out", "steps", "resume"}  # a training run's own config.json (``RunConfig``), not a model's


def resume_command(trainer: str, out: str | Path) -> str:
    """The command that continues the run of ``trainer`` (its ``Run`` name: an ``ae-conv`` run is ``t2i train ae``)
    in ``out`` from its newest checkpoint."""
    command = trainer.split("-")[0] if trainer.startswith(("ae-", "cvae-")) else trainer
    return f"t2i train {command} --config {out}/config.json --resume latest"


def stopped_run(folder: str | Path) -> FileNotFoundError | None:
    """The error for a training run's folder that holds no model (the run stopped before saving it), naming
    the command that finishes it, its trainer read from its newest checkpoint; None for any other folder.
    Loaders call it where they find no model in a folder, before their own message."""
    folder = Path(folder)
    try:
        settings = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(settings, dict) or not RUN_CONFIG_KEYS <= set(settings) or "family" in settings:
        return None
    from t2i.model_card import LAYOUTS  # here: the card's module imports this one

    if any((folder / marker).is_file() for marker, _, _ in LAYOUTS):
        return None  # a finished run (a CLIP, a first stage, ...): what it saved is there
    for _, checkpoint in step_dirs(folder / "checkpoints"):
        if (identity := identity_of_checkpoint(checkpoint)) is not None:
            return FileNotFoundError(f"{folder} is a training run that stopped before saving its model (its newest "
                                     f"checkpoint: {checkpoint.name}); finish it with "
                                     f"`{resume_command(identity.name, folder)}`")
    return FileNotFoundError(f"{folder} is a training run that stopped before saving its model or a checkpoint; "
                             f"train it again with `t2i train ... --config {folder}/config.json`")


def write_checkpoint(root: Path, step: int, states: dict[str, Any], keep: int,
                     identity: RunIdentity | None = None) -> Path:
    """Write ``root/step_{step:06d}`` crash-consistently, then keep only the newest ``keep``
    checkpoints of the same run (``identity``; without one, those that record no identity)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    try:
        files: dict[str, int] = {}
        for name, state in states.items():
            meta, tensors = split_state(state)
            if tensors:
                save_tensors_durably(tensors, tmp / f"{name}.safetensors")
            write_text_durably(tmp / f"{name}.json", json.dumps(meta) + "\n")
        for path in sorted(tmp.iterdir()):
            files[path.name] = path.stat().st_size
        manifest = {"format": FORMAT_VERSION, "step": step, "objects": sorted(states), "files": files,
                    "run": identity.to_json() if identity is not None else None}
        write_text_durably(tmp / MANIFEST, json.dumps(manifest, indent=1) + "\n")  # the completion marker, last
        fsync_path(tmp)
        swap_in(tmp, final)  # atomic, also over a folder of the same name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rotate(root, keep, identity)
    return final


def rotate(root: Path, keep: int, identity: RunIdentity | None) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints of the run ``identity``; return them."""
    own = []
    for _, folder in step_dirs(root):
        manifest = read_manifest(folder)
        if manifest is None:
            continue  # partial or corrupt: not known to be ours
        theirs = RunIdentity.from_json(manifest.get("run"))
        if (identity is None and theirs is None) or (identity is not None and theirs is not None
                                                     and identity.same_run(theirs)):
            own.append(folder)
    removed = own[keep:]
    for folder in removed:  # renamed first (atomic), so a kill mid-delete leaves only a temp folder
        doomed = root / f".{folder.name}.tmp-deleting-{os.getpid()}"
        shutil.rmtree(doomed, ignore_errors=True)
        os.rename(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    if removed:
        fsync_path(root)
    return removed


def set_aside(root: Path, folders: list[Path]) -> list[Path]:
    """Move checkpoint folders of other runs (or an abandoned line of this one) to
    ``root/earlier/<name>-seed<S>-<hash>/`` (a new numbered folder if that one is taken); nothing is deleted."""
    moved, targets = [], set()
    for folder in folders:
        identity = identity_of_checkpoint(folder)
        label = identity.label if identity is not None else "unknown-run"
        target, k = root / "earlier" / label, 1
        while (target / folder.name).exists():  # the same step set aside before: a new numbered folder
            k += 1
            target = root / "earlier" / f"{label}-{k}"
        target.mkdir(parents=True, exist_ok=True)
        os.rename(folder, target / folder.name)
        moved.append(target / folder.name)
        targets.add(target)
    if moved:
        fsync_path(root)
        for target in targets:
            fsync_path(target)
    return moved


def read_checkpoint(folder: str | Path) -> tuple[int, dict[str, Any]]:
    """Load every object of a checkpoint into memory; CheckpointError if partial or corrupt."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}: give a step_N folder under OUT/checkpoints")
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


def read_latest(root: Path, identity: RunIdentity | None = None) -> tuple[int, dict[str, Any], Path] | None:
    """The newest checkpoint under ``root`` that loads (of the run ``identity`` when given, or one that
    records no identity), warning about each one passed over."""
    for _, folder in step_dirs(root):
        theirs = identity_of_checkpoint(folder)
        if identity is not None and theirs is not None and not identity.same_run(theirs):
            continue
        try:
            step, states = read_checkpoint(folder)
        except CheckpointError as err:
            warnings.warn(f"skipping checkpoint {folder}: {err}", RuntimeWarning, stacklevel=2)
            continue
        return step, states, folder
    return None


def remove_stale_temp(root: Path) -> None:
    """Clean up after a run killed mid-write: temp folders are never complete (the manifest is
    written last and they are swapped in only after it): remove them; a folder set aside by the
    non-atomic fallback of ``swap_in`` is moved back if its checkpoint is missing."""
    if not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if not p.is_dir() or not p.name.startswith("."):
            continue
        if ".tmp-" in p.name:  # ".step_000012.tmp-x" (also old runs' ".tmp-step_000012-x")
            shutil.rmtree(p, ignore_errors=True)
        elif ".old-" in p.name:  # ".step_000012.old-x" (also old runs' ".old-step_000012")
            name = p.name[len(".old-"):] if p.name.startswith(".old-") else p.name[1:p.name.index(".old-")]
            if _STEP_DIR.match(name) and not (root / name).exists():
                os.rename(p, root / name)  # killed inside the swap: the old checkpoint is the good one
            else:
                shutil.rmtree(p, ignore_errors=True)
    fsync_path(root)


def demo() -> None:
    with tempfile.TemporaryDirectory() as d:
        opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
        for k in range(1, 4):
            write_checkpoint(Path(d), k, {"optimizer_0": opt.state_dict(), "rng_0": capture_rng()}, keep=2)
        print([p.name for _, p in step_dirs(Path(d))], sorted(read_checkpoint(Path(d) / "step_000003")[1]))
