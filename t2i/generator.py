"""The generator contract every model family answers: prompts and/or labels + seed in, images out.

The app, the benchmark and ``t2i sample`` use nothing but this, so a new model is one new
entry in ``gan_baselines.registry``, not a new code path.

Ordering: for ``prompts=[a, b]`` and ``num_images_per_prompt=2`` the result is
``[a0, a1, b0, b1]`` (as in diffusers). The same arguments and seed give the same images.

    python -c "from t2i.generator import validate_request; print(validate_request(['a red circle'], None, 2))"
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

MAX_IMAGES_PER_PROMPT = 64
MAX_PROMPT_CHARS = 1000


class GenerationError(ValueError):
    """A request a generator cannot serve (empty prompt, unknown label, bad count)."""


def validate_request(prompts: Sequence[str] | None, labels: Sequence[int] | None, num_images_per_prompt: int,
                     num_classes: int | None = None, needs: str = "any") -> int:
    """Check a request and return the number of conditions; raise GenerationError on bad input.

    ``needs`` is "text", "label", "none" or "any": what the generator is conditioned on.
    """
    if not isinstance(num_images_per_prompt, int) or not 1 <= num_images_per_prompt <= MAX_IMAGES_PER_PROMPT:
        raise GenerationError(f"num_images_per_prompt must be an integer in [1, {MAX_IMAGES_PER_PROMPT}], got {num_images_per_prompt!r}")
    if prompts is not None and isinstance(prompts, str):
        raise GenerationError("prompts must be a list of strings, got a single string; wrap it in a list")
    if needs == "text" and not prompts:
        raise GenerationError("this generator is text-conditional: give at least one prompt")
    if needs == "label" and labels is None:
        raise GenerationError("this generator is class-conditional: give labels")
    if prompts:
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise GenerationError(f"prompts must be non-empty strings, got {p!r}")
            if len(p) > MAX_PROMPT_CHARS:
                raise GenerationError(f"prompt is {len(p)} characters; at most {MAX_PROMPT_CHARS} are allowed")
    if labels is not None:
        for label in labels:
            if not isinstance(label, int) or label < 0 or (num_classes is not None and label >= num_classes):
                allowed = f"[0, {num_classes - 1}]" if num_classes else ">= 0"
                raise GenerationError(f"labels must be integers in {allowed}, got {label!r}")
        if prompts and len(labels) != len(prompts):
            raise GenerationError(f"got {len(prompts)} prompts but {len(labels)} labels; give one label per prompt")
    count = len(prompts) if prompts else (len(labels) if labels is not None else 1)
    return count


class Generator(ABC):
    """Base class of every generator (GAN, VAE, diffusion) the toolkit can sample from."""

    family: str = "generator"  # short family name, e.g. "tgan", "cvae", "ldm"
    conditioning: str = "none"  # "text", "label" or "none"
    num_classes: int | None = None  # for label-conditional generators
    path: Path | None = None  # folder the model was loaded from

    @abstractmethod
    def generate(self, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None, seed: int = 0,
                 num_images_per_prompt: int = 1, **options: Any) -> list[Image.Image]:
        """Return ``len(conditions) * num_images_per_prompt`` PIL images, deterministic in ``seed``."""

    def to(self, device: Any) -> "Generator":
        return self

    def describe(self) -> dict[str, Any]:
        """A few facts for UIs and reports (family, parameters, conditioning)."""
        return {"family": self.family, "conditioning": self.conditioning, "path": str(self.path) if self.path else None}
