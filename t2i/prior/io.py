"""A prior's folder, in diffusers' layout (as Kandinsky's prior repository is loadable on its own):

- ``prior/``: ``PriorTransformer.save_pretrained`` (config.json + safetensors; ``clip_mean``/``clip_std``
  hold the embedding statistics, see ``t2i.prior.model``);
- ``scheduler/``: ``UnCLIPScheduler`` (x0 prediction, squared-cosine schedule);
- ``t2i_prior.json``: the frozen CLIP it was trained on (``t2i.builtin.reference``: a built-in name as it
  is, a path made absolute) and the sampling defaults.

A later decoder pipeline loads ``PriorTransformer.from_pretrained(OUT, subfolder="prior")`` and
``UnCLIPScheduler.from_pretrained(OUT, subfolder="scheduler")``, or ``load_prior(OUT)`` for all of it.

    HF_HUB_OFFLINE=1 python -c "from t2i.prior.io import demo; demo()"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusers import PriorTransformer, UnCLIPScheduler

from t2i.prior.model import freeze_stats

INFO_NAME = "t2i_prior.json"


@dataclass
class PriorBundle:
    prior: PriorTransformer
    scheduler: UnCLIPScheduler
    info: dict[str, Any]  # clip (reference), num_inference_steps, guidance_scale, sampler


def save_prior(folder: str | Path, prior: PriorTransformer, scheduler: UnCLIPScheduler, info: dict[str, Any]) -> Path:
    folder = Path(folder)
    prior.save_pretrained(folder / "prior")
    scheduler.save_pretrained(folder / "scheduler")
    (folder / INFO_NAME).write_text(json.dumps({"family": "prior", **info}, indent=2) + "\n")
    return folder


def load_prior(folder: str | Path) -> PriorBundle:
    folder = Path(folder)
    if not (folder / "prior" / "config.json").exists():
        raise FileNotFoundError(f"{folder} is not a prior folder (no prior/config.json): give a `t2i train prior` output")
    prior = PriorTransformer.from_pretrained(folder / "prior")
    freeze_stats(prior)
    info = json.loads((folder / INFO_NAME).read_text()) if (folder / INFO_NAME).exists() else {}
    return PriorBundle(prior.eval(), UnCLIPScheduler.from_pretrained(folder / "scheduler"), info)


def demo() -> None:
    import tempfile

    from t2i.prior.model import tiny_prior, training_scheduler

    with tempfile.TemporaryDirectory() as d:
        save_prior(d, tiny_prior(), training_scheduler(), {"clip": "shapes-clip"})
        print(sorted(p.name for p in Path(d).iterdir()), load_prior(d).info)
