"""Finished results on disk, so a killed ``t2i bench`` run again with the same command skips them.

One record per finished piece of work (a rung of one run scored on the eval set, the diffusion
study), a JSON file named ``<name>-<hash>.json`` where the hash is of its *fingerprint*:
everything the result depends on (the trainer's argv, the step, the evaluation settings). A
changed setting therefore looks up another file instead of finding a stale result, and nothing
is ever overwritten with something else. Files are written to a temporary name and moved into
place with ``os.replace`` (``t2i.io.atomic_write``), so after ``kill -9`` a record is complete or absent.
Tensors that go with a record (the grid's images) are written first; the JSON marks completion.

    python -c "from t2i.bench.store import demo; demo()"
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from t2i.io import atomic_write


MODEL_FILES = (".safetensors", ".bin", ".pt", ".json", ".txt", ".model")  # weights, configs, vocabularies


def folder_digest(path: str | Path) -> str:
    """SHA-256 over a model folder's weight and config files (relative names and bytes, links followed; a built-in
    name is its folder), so that a model retrained in place, under the same name or path, is another fingerprint;
    "" for a hub id or a single file (kept as its name)."""
    from t2i.builtin import resolve

    try:
        root = resolve(path, hub=True)
    except FileNotFoundError:
        return ""
    if not isinstance(root, Path) or not root.is_dir():
        return ""
    digest = hashlib.sha256()
    files = sorted(Path(d, f) for d, _, names in os.walk(root, followlinks=True) for f in names if f.endswith(MODEL_FILES))
    for f in files:
        digest.update(str(f.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()


class ResultStore:
    """Records keyed by ``(name, fingerprint)`` under one folder (``--work``/results)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, name: str, fingerprint: dict[str, Any], suffix: str = ".json") -> Path:
        digest = hashlib.sha1(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return self.root / f"{name}-{digest}{suffix}"

    def get(self, name: str, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
        """The stored record, or None when this exact work has not finished."""
        path = self.path(name, fingerprint)
        return json.loads(path.read_text())["record"] if path.is_file() else None

    def put(self, name: str, fingerprint: dict[str, Any], record: dict[str, Any]) -> Path:
        path = self.path(name, fingerprint)
        text = json.dumps({"fingerprint": fingerprint, "record": record}, indent=1, default=str) + "\n"
        return atomic_write(path, lambda tmp: tmp.write_text(text))

    def get_tensor(self, name: str, fingerprint: dict[str, Any]) -> torch.Tensor | None:
        path = self.path(name, fingerprint, ".pt")
        return torch.load(path) if path.is_file() else None

    def put_tensor(self, name: str, fingerprint: dict[str, Any], tensor: torch.Tensor) -> Path:
        return atomic_write(self.path(name, fingerprint, ".pt"), lambda tmp: torch.save(tensor.clone(), tmp))


def continued_plan(kept: dict[str, Any] | None, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The plan a run folder keeps when a bench asks for ``plan`` and the folder was trained for ``kept``: ``kept``
    or ``plan`` unchanged when they are equal, the longer of the two when they differ only in their stages and one's
    stages begin with all of the other's (a ladder with rungs added on top, or taken off: its run goes on from the
    last trained stage, or reads back the stages it has), else None (the folder must be trained again from scratch).

    Continuing is exact because a run's stages resume it exactly and no trainer's schedule depends on its last
    step (constant learning rates after a fixed warm-up)."""
    if kept is None:
        return None
    if kept == plan:
        return kept
    rest = lambda p: {k: v for k, v in p.items() if k != "stages"}  # noqa: E731
    short, long = sorted((kept["stages"], plan["stages"]), key=len)
    if rest(kept) != rest(plan) or long[:len(short)] != short:
        return None
    return {**plan, "stages": long}


def log_invocation(path: str | Path, command: str, wall_minutes: float, date: str,
                   interrupted: bool = False) -> list[dict[str, Any]]:
    """Add a bench invocation to ``path`` (a JSON list in ``--work``, written atomically) and return the earlier
    ones on that ``--work``, whose stored work this one may have reused: a report re-made from stored results then
    still says what the whole sweep took. An invocation stopped by Ctrl-C or SIGTERM is logged ``interrupted``
    (its finished stages and segments are kept, so its time counts); one killed with ``kill -9`` cannot log."""
    path = Path(path)
    earlier = json.loads(path.read_text()) if path.is_file() else []
    entry = {"command": command, "wall_minutes": wall_minutes, "date": date, **({"interrupted": True} if interrupted
                                                                               else {})}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(earlier + [entry], indent=1) + "\n"))
    return earlier


def demo() -> None:
    store = ResultStore("/tmp/bench_store_demo")
    fp = {"argv": ["--lr=2e-4"], "steps": 100}
    store.put("tgan-seed0-step000100", fp, {"metrics": {"acc_all": 0.5}})
    print(store.get("tgan-seed0-step000100", fp), store.get("tgan-seed0-step000100", {**fp, "steps": 200}))
