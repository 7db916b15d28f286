"""Sampling options of the latent diffusion family, and the one list of its samplers.

``DiffusionOptions`` is the family's ``Generator.Options`` (diffusers' argument names:
``num_inference_steps``, ``guidance_scale``, ``negative_prompt``); its saved form is the
``t2i_sampling.json`` next to a pipeline (the defaults ``t2i train ldm`` chose). ``SAMPLERS``
names every sampler once: the pipeline builds its diffusers scheduler from it, and every
list of choices (``t2i train ldm --sampler``, ``t2i sample``, the app's dropdown, the bench)
is derived from it. Kept free of diffusers imports so that help texts and the app's controls
stay cheap.

    python -c "from t2i.diffusion.options import DiffusionOptions; print(DiffusionOptions())"
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

# sampler name -> (diffusers scheduler class, overrides of the training schedule's config)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpm-solver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),  # Lu et al. 2022, 2nd order multistep
    "ddim": ("DDIMScheduler", {}),  # deterministic (eta = 0), Song et al. 2021, Eq. 12
    "ddpm": ("DDPMScheduler", {}),  # ancestral sampling, Ho et al. 2020, Algorithm 2
    "euler": ("EulerDiscreteScheduler", {}),  # Euler steps of Karras et al. 2022, Algorithm 2 (no churn), k-diffusion's sample_euler
    "euler-ancestral": ("EulerAncestralDiscreteScheduler", {}),  # Euler with ancestral noise (k-diffusion's sample_euler_ancestral)
    "unipc": ("UniPCMultistepScheduler", {}),  # Zhao et al. 2023, predictor-corrector
    "lcm": ("LCMScheduler", {}),  # consistency sampling (Luo et al. 2023, Alg. 3): for consistency-distilled models only
}
# the samplers of any noise-prediction model (lcm needs one trained by `t2i train distill --method consistency`)
SOLVERS = tuple(name for name in SAMPLERS if name != "lcm")
SamplerName = Literal[tuple(SAMPLERS)]  # type: ignore[valid-type]  # the names above, for configs and CLI choices
SAMPLING_FILE = "t2i_sampling.json"
# keys of t2i_sampling.json files written before the options took diffusers' names (the shipped shapes-ldm)
LEGACY_KEYS = {"steps": "num_inference_steps", "guidance": "guidance_scale"}


@dataclass
class DiffusionOptions:
    sampler: SamplerName = "dpm-solver++"  # sampler (a diffusers scheduler on the training noise schedule)
    num_inference_steps: int = 20  # denoising steps, 1 to 1000
    guidance_scale: float = 3.0  # classifier-free guidance scale w (Ho & Salimans 2022); 1 = no guidance
    negative_prompt: str = ""  # what guidance steers away from ("" = the unconditional prompt)


def load_sampling_options(folder: str | Path) -> DiffusionOptions:
    """The defaults saved in ``folder/t2i_sampling.json`` (missing file: the dataclass defaults).

    An unknown key or a bad value is an error naming the file and the valid keys.
    """
    from t2i.config import config_from_dict

    path = Path(folder) / SAMPLING_FILE
    if not path.is_file():
        return DiffusionOptions()
    values = {LEGACY_KEYS.get(k, k): v for k, v in json.loads(path.read_text()).items()}
    return config_from_dict(DiffusionOptions, values, source=str(path))


def save_sampling_options(options: DiffusionOptions, folder: str | Path) -> Path:
    """Write ``folder/t2i_sampling.json`` (every field, diffusers' names)."""
    path = Path(folder) / SAMPLING_FILE
    path.write_text(json.dumps(asdict(options), indent=2) + "\n")
    return path
