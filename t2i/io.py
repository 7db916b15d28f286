"""Model files: safetensors weights plus a JSON config, never pickles; crash-consistent writes.

A saved model is a folder holding ``config.json`` (how to rebuild it, including a
``"family"`` key naming the model family) and ``model.safetensors`` (its weights).
Loading a pickle file (``.pt``, ``.pth``, ``.ckpt``, ``.bin``) is refused: unpickling runs
arbitrary code. No command of the ``t2i`` tool loads pickles; in Python,
``load_weights(path, allow_pickle=True)`` opts in for a file you trust.

Writes are crash-consistent (what safetensors/accelerate users expect of a save): the new
folder is written next to the old one under a hidden temp name, every file and the folder
are fsync'ed, then the two are swapped in one atomic step (Linux ``renameat2`` with
``RENAME_EXCHANGE``), so a reader, or a process killed at any moment, sees either the old
complete folder or the new complete one, never a missing or half-written ``model/``. Where
the exchange is not available (other systems, some file systems) the old folder is moved
aside for the instant of the swap; ``recover_folder`` (called by every save) moves it back
if a crash hit that instant.
Single files that must never be read half written (records, progress) go through ``atomic_write``:
a temporary name beside the file, then ``os.replace``.

    python -c "from t2i.io import demo; demo()"
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_RENAME_EXCHANGE = 2  # linux/fs.h: atomically exchange two paths
_AT_FDCWD = -100


class CheckpointError(RuntimeError):
    """A checkpoint or model folder that is missing, partial or unsafe to load."""


# ---------------------------------------------------------------- durable files and folders
def fsync_path(path: str | Path) -> None:
    """Flush a file's or folder's data and metadata to disk (a folder: its entries, e.g. a rename)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # e.g. folders cannot be opened on Windows: nothing to flush there
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some file systems refuse fsync on folders
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def write_text_durably(path: str | Path, text: str) -> None:
    """Write ``text`` and fsync the file (the folder is fsync'ed by whoever renames it into place)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write(path: Path, write) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, then ``os.replace`` it into place: after a kill the
    file is the old one or the new one, never half written (not fsync'ed: a power cut is not covered; the bench's
    records, costs and results, the latent cache's files on disk, ``t2i.diffusion.disk_cache``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)
    return path


def save_tensors_durably(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    save_file(unshared_cpu(tensors), str(path))
    fsync_path(path)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # no libc symbol (old glibc, musl)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):  # file system without the flag
        return False
    raise OSError(code, f"cannot swap {a} and {b}: {os.strerror(code)}")


def _aside_name(final: Path) -> str:
    return f".{final.name}.old-"


def swap_in(new: Path, final: Path) -> None:
    """Make the complete folder ``new`` appear at ``final`` atomically; the old ``final`` is deleted.

    ``new`` must be in the same folder as ``final`` and already fsync'ed."""
    parent = final.parent
    if not final.exists():
        os.rename(new, final)
    elif _exchange(new, final):
        shutil.rmtree(new)  # it now holds the old content
    else:  # fallback: a short window in which final is missing; recover_folder() repairs a crash there
        aside = Path(tempfile.mkdtemp(prefix=_aside_name(final), dir=parent))
        os.rmdir(aside)
        os.rename(final, aside)
        os.rename(new, final)
        fsync_path(parent)
        shutil.rmtree(aside, ignore_errors=True)
    fsync_path(parent)


def recover_folder(final: Path) -> None:
    """After a crash in ``swap_in``'s fallback window: move the set-aside old folder back, or drop it."""
    asides = sorted(final.parent.glob(_aside_name(final) + "*")) if final.parent.is_dir() else []
    for k, aside in enumerate(asides):
        if k == 0 and not final.exists():
            os.rename(aside, final)
            fsync_path(final.parent)
        else:
            shutil.rmtree(aside, ignore_errors=True)


def remove_stale_temps(final: Path) -> None:
    """Drop ``.NAME.tmp-PID-*`` folders that a killed save of ``final`` left behind (their writer is
    gone); a live process's temp folder is left alone. Names without a PID are from older versions."""
    for tmp in final.parent.glob(f".{final.name}.tmp-*") if final.parent.is_dir() else []:
        pid = tmp.name.removeprefix(f".{final.name}.tmp-").split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


# ---------------------------------------------------------------- models
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
    """Write the JSON config and safetensors weights crash-consistently (module docstring); other
    files already in ``folder`` are kept. The names default to ``config.json`` / ``model.safetensors``."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(folder)
    remove_stale_temps(folder)
    state = module.state_dict() if isinstance(module, torch.nn.Module) else module
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-{os.getpid()}-", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; a saved model is an ordinary folder
    try:
        if folder.is_dir():  # keep other files of the folder (model cards, samples)
            shutil.copytree(folder, tmp, dirs_exist_ok=True,
                            ignore=lambda _, names: [n for n in names if n in (weights_name, config_name)])
        save_tensors_durably(state, tmp / weights_name)
        write_text_durably(tmp / config_name, json.dumps(config, indent=2, default=str) + "\n")
        fsync_path(tmp)
        swap_in(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_config_json(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"no {CONFIG_NAME} in {folder}: expected a folder written by save_model")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); re-save the model with its trainer") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds a {type(config).__name__}, not a JSON object; re-save the model")
    return config


def load_weights(path: str | Path, allow_pickle: bool = False, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a state dict from a safetensors file or a model folder; pickles only on request (Python API)."""
    path = Path(path)
    if path.is_dir():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        path = path / WEIGHTS_NAME
        if not path.exists() and pickles:
            raise CheckpointError(f"{path.parent} has no {WEIGHTS_NAME}, only {pickles}: pickles are refused "
                                  "(unpickling can run arbitrary code); convert the state dict to safetensors "
                                  f"(safetensors.torch.save_file(state_dict, '{path}'))")
    if not path.exists():
        raise CheckpointError(f"weights file not found: {path}; re-save the model with its trainer")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device=map_location)
        except Exception as err:  # truncated or garbage file: safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file ({type(err).__name__}: {err}); "
                                  "re-save the model with its trainer") from None
    if path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise CheckpointError(
                f"refusing to load pickle file {path}: unpickling can run arbitrary code. Convert it to "
                ".safetensors (safetensors.torch.save_file(state_dict, 'model.safetensors')) or, in Python and "
                "only for a file you trust, call t2i.io.load_weights(path, allow_pickle=True).")
        obj = torch.load(path, map_location=map_location, weights_only=False)
        return obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    raise CheckpointError(f"unknown weights format {path.suffix!r}: expected .safetensors")


def demo() -> None:
    net = torch.nn.Linear(2, 2)
    with tempfile.TemporaryDirectory() as d:
        save_model(Path(d) / "m", net, {"family": "demo"})
        save_model(Path(d) / "m", net, {"family": "demo", "again": True})  # swapped in atomically
        print(load_config_json(Path(d) / "m"), list(load_weights(Path(d) / "m")), sorted(os.listdir(d)))
