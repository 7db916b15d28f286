"""Run identity: which run a checkpoint belongs to (config hash + seed).

Every checkpoint's ``checkpoint.json`` records the identity of the run that wrote it: the
trainer name, the seed and a hash of every config field that decides what the run learns
(all fields but ``RunConfig.resumable``, the ones that may change on resume). The runtime
uses it so that one run never touches another's work:

- rotation (``--checkpoints-keep``) deletes only checkpoints of its own run;
- a fresh run in a folder that holds an earlier run's checkpoints first moves them to
  ``checkpoints/earlier/<name>-seed<S>-<hash>/`` (they stay resumable with ``--resume PATH``);
- ``--resume latest`` takes the newest checkpoint of *this* run, and resuming another run's
  checkpoint is refused with a message naming both runs and the settings that differ.

    python -c "from t2i.runtime.identity import demo; demo()"
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from t2i.config import config_to_dict


@dataclass(frozen=True)
class RunIdentity:
    name: str  # trainer name ("dcgan", "clip", ...)
    seed: int  # the run's seed
    config_hash: str  # first 12 hex digits of the SHA-256 of `settings` as sorted JSON
    settings: dict[str, Any]  # the config fields that decide what the run learns (no seed, no resumable fields)

    def describe(self) -> str:
        return f"{self.name} run with seed {self.seed}, config {self.config_hash}"

    @property
    def label(self) -> str:
        """A folder name for this run's set-aside checkpoints."""
        return f"{self.name}-seed{self.seed}-{self.config_hash}"

    def same_run(self, other: "RunIdentity") -> bool:
        return (self.name, self.seed, self.config_hash) == (other.name, other.seed, other.config_hash)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "RunIdentity | None":
        """None for checkpoints written before identities existed (or a damaged entry)."""
        if not isinstance(data, dict) or not {"name", "seed", "config_hash"} <= set(data):
            return None
        return cls(str(data["name"]), int(data["seed"]), str(data["config_hash"]), dict(data.get("settings") or {}))


def identity_of(cfg: Any, name: str) -> RunIdentity:
    """The identity of a run of trainer ``name`` with config ``cfg`` (a ``RunConfig`` subclass)."""
    resumable = set(getattr(type(cfg), "resumable", ()))
    later = getattr(type(cfg), "identity_defaults", {})  # fields added later count only when set
    settings = {k: v for k, v in sorted(config_to_dict(cfg).items())
                if k not in resumable and k != "seed" and not (k in later and v == later[k])}
    digest = hashlib.sha256(json.dumps({"name": name, **settings}, sort_keys=True).encode()).hexdigest()[:12]
    return RunIdentity(name, int(cfg.seed), digest, settings)


def differences(ours: RunIdentity, theirs: RunIdentity) -> list[str]:
    """Human-readable ``key: theirs -> ours`` lines for every setting that differs."""
    diffs = []
    if ours.name != theirs.name:
        diffs.append(f"trainer: {theirs.name} -> {ours.name}")
    if ours.seed != theirs.seed:
        diffs.append(f"seed: {theirs.seed} -> {ours.seed}")
    for key in sorted(set(ours.settings) | set(theirs.settings)):
        a, b = theirs.settings.get(key, "(unset)"), ours.settings.get(key, "(unset)")
        if a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}")
    return diffs


def refusal(ours: RunIdentity, theirs: RunIdentity, where: str) -> str:
    """The message of a refused resume: both runs, what differs, and what to do instead."""
    diffs = differences(ours, theirs)
    return (f"{where} belongs to another run ({theirs.describe()}), not to this one ({ours.describe()}); "
            f"they differ in {'; '.join(diffs) if diffs else 'settings'}. To continue that run, resume it with "
            "its own settings; to start this one, drop --resume (the other run's checkpoints are then moved to "
            "checkpoints/earlier/) or give another --out.")


def demo() -> None:
    from t2i.runtime.config import RunConfig

    a, b = identity_of(RunConfig(seed=0), "demo"), identity_of(RunConfig(seed=1, steps=5, lr=0.1), "demo")
    print(a.describe(), "|", b.describe(), "|", differences(a, b), "|", a.config_hash == b.config_hash)
