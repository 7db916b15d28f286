"""The generator contract every model family answers: conditions + seed in, images out.

The app, the benchmark, ``t2i sample``, ``t2i eval`` and the trainers' sample grids use
nothing but what is here, so a new model family is one entry in ``gan_baselines.registry``
plus its module, never a new code path.

A ``Generator`` carries what its consumers need:
- ``generate(prompts, labels, seed, num_images_per_prompt, **options) -> list[PIL.Image]``;
- ``conditioning`` ("text", "label" or "none"), ``num_classes`` and ``class_names``;
- ``Options``, the family's typed sampling options (a dataclass with a comment on every
  field; ``t2i sample`` derives its flags from it), and ``options``, this model's defaults
  (latent diffusion: its ``t2i_sampling.json``); ``resolve_options(**given)`` checks a request's;
- ``modules()``, its named torch networks (for ``.to()``, parameter counts and cost; a frozen
  text encoder is always named ``"text_encoder"``).
Two optional protocols: ``LatentCodes`` (encode images to codes and decode them: autoencoders,
VAEs) and ``Denoising`` (decode latents, and a per-step ``callback`` that receives the x0
estimate, as k-diffusion's samplers do: latent diffusion).

Ordering: for ``prompts=[a, b]`` and ``num_images_per_prompt=2`` the result is
``[a0, a1, b0, b1]`` (as in diffusers).

Seeding, the one rule of the toolkit: in a request for k conditions with seed s, the images of
condition i are drawn from seed ``s + i`` alone, whatever else the request holds. So
``generate([a, b], seed=s) == generate([a], seed=s) + generate([b], seed=s + 1)``, and
``generate_conditions`` can batch any list of conditions while every image it returns is
re-made by one ``t2i sample --prompt c_i --seed s+i --n N`` (up to the last bit of float
arithmetic, which a different batch size may change).

    python -c "from t2i.generator import validate_request; print(validate_request(['a red circle'], None, 2))"
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, Sequence, runtime_checkable

import torch
from PIL import Image

MAX_IMAGES_PER_PROMPT = 64
MAX_PROMPT_CHARS = 1000
CONDITIONINGS = ("text", "label", "none")


class GenerationError(ValueError):
    """A request a generator cannot serve (empty prompt, unknown label, bad count, unknown option)."""


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
            if not isinstance(label, int) or isinstance(label, bool) or label < 0 or (
                    num_classes is not None and label >= num_classes):
                allowed = f"[0, {num_classes - 1}]" if num_classes else ">= 0"
                raise GenerationError(f"labels must be integers in {allowed}, got {label!r}")
        if prompts and len(labels) != len(prompts):
            raise GenerationError(f"got {len(prompts)} prompts but {len(labels)} labels; give one label per prompt")
    count = len(prompts) if prompts else (len(labels) if labels is not None else 1)
    return count


# ----------------------------------------------------------------------------- seeds, noise and pictures


def seeded_noise(seed: int, count: int, n: int, shape: Sequence[int]) -> torch.Tensor:
    """Noise of a request: ``count`` conditions x ``n`` images, condition i from a CPU generator seeded ``seed + i``.

    Returns ``(count * n, *shape)`` in ``[c0 x n, c1 x n, ...]`` order, the same on every device.
    """
    return torch.cat([torch.randn(n, *shape, generator=torch.Generator().manual_seed(int(seed) + i))
                      for i in range(count)])


def rngs_per_image(seed: int, count: int, n: int) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per image, condition i's ``n`` images sharing the one seeded ``seed + i``.

    Passed as diffusers' ``generator=[...]``, each image draws from its condition's stream in order, so
    a condition's images do not depend on the rest of the batch (``randn`` of n rows equals n draws of one).
    """
    return [g for i in range(count) for g in [torch.Generator().manual_seed(int(seed) + i)] * n]


def to_pil(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> list[Image.Image]:
    """(N, C, H, W) with values in ``value_range`` -> N PIL images ("L" for one channel, "RGB" for three)."""
    lo, hi = value_range
    x = images.detach().float().cpu().clamp(lo, hi)
    arr = ((x - lo) * (255.0 / (hi - lo))).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    return [Image.fromarray(a[..., 0], "L") if a.shape[-1] == 1 else Image.fromarray(a, "RGB") for a in arr]


# ----------------------------------------------------------------------------- options


@dataclasses.dataclass
class NoOptions:
    """The options of a family that takes none (the GANs)."""


def option_choices(options_type: type, name: str) -> tuple[Any, ...] | None:
    """The allowed values of an option typed ``Literal[...]`` (e.g. latent diffusion's samplers), else None."""
    hint = typing.get_type_hints(options_type).get(name)
    return typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None


def options_with(defaults: Any, given: dict[str, Any], family: str = "this") -> Any:
    """``defaults`` (an options dataclass) with ``given`` values, converted to the field types.

    An unknown name or a value of the wrong type is a GenerationError saying what is allowed.
    """
    from t2i.config import ConfigError, config_from_dict

    valid = [f.name for f in dataclasses.fields(defaults)]
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise GenerationError(f"unknown option(s) {unknown} for family {family!r}; it takes "
                              f"{valid if valid else 'no options'}")
    values = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)} | dict(given)
    try:
        return config_from_dict(type(defaults), values, source=f"{family} options")
    except ConfigError as err:
        raise GenerationError(str(err)) from None


# ----------------------------------------------------------------------------- the contract


class Generator(ABC):
    """Base class of every generator (GAN, VAE, diffusion) the toolkit can sample from."""

    family: str = "generator"  # short family name, a key of gan_baselines.registry.FAMILIES
    conditioning: str = "none"  # "text", "label" or "none"
    num_classes: int | None = None  # for label-conditional generators
    class_names: list[str] | None = None  # a name per class (label-conditional generators), e.g. "a handwritten digit 7"
    path: Path | None = None  # folder the model was loaded from
    Options: ClassVar[type] = NoOptions  # the family's sampling options (a dataclass)
    options: Any = NoOptions()  # this model's default options, an instance of Options
    device: torch.device = torch.device("cpu")  # where its modules are

    @abstractmethod
    def generate(self, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None, seed: int = 0,
                 num_images_per_prompt: int = 1, **options: Any) -> list[Image.Image]:
        """Return ``conditions * num_images_per_prompt`` PIL images; condition i is drawn from ``seed + i``."""

    @abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """The named torch networks of the model (a frozen text encoder is named "text_encoder")."""

    def resolve_options(self, **given: Any) -> Any:
        """This model's default options with the ``given`` ones; unknown names are errors listing the valid ones."""
        return options_with(self.options, given, self.family)

    def to(self, device: Any) -> "Generator":
        self.device = torch.device(device)
        for module in self.modules().values():
            module.to(self.device)
        return self

    def describe(self) -> dict[str, Any]:
        """A few facts for UIs and reports: family, conditioning, parameters per network, default options."""
        params = {name: sum(p.numel() for p in m.parameters()) for name, m in self.modules().items()}
        return {"family": self.family, "conditioning": self.conditioning, "path": str(self.path) if self.path else None,
                "num_classes": self.num_classes, "parameters": params, "options": dataclasses.asdict(self.options)}


@runtime_checkable
class LatentCodes(Protocol):
    """Generators with a code space (autoencoders, VAEs): images <-> codes, for interpolation and latent maps."""

    latent_dim: int  # D, the size of a code
    image_shape: tuple[int, int, int]  # (C, S, S) of the images encode takes and decode returns

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) in [0, 1] -> codes (N, D) (a VAE: the posterior mean)."""

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, D) codes -> images (N, C, S, S) in [0, 1] on the CPU."""


@dataclasses.dataclass
class DenoisingStep:
    """What a denoising generator's ``callback`` receives after each step (k-diffusion's callback dict, typed)."""

    step: int  # index of the step just taken, 0-based
    num_steps: int  # steps of this request
    timestep: int  # the training timestep t the model was evaluated at
    latents: torch.Tensor  # x_{t-1}, the sample after the step, (B, C, h, w)
    denoised: torch.Tensor  # the model's estimate of x_0 at this step, (B, C, h, w) (decode_latents shows it)


@runtime_checkable
class Denoising(Protocol):
    """Iterative generators (latent diffusion): ``generate(..., callback=fn)`` calls ``fn(DenoisingStep)``."""

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, h, w) -> images (B, 3, H, W) in [0, 1]."""

    def generate(self, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None, seed: int = 0,
                 num_images_per_prompt: int = 1, callback: Callable[[DenoisingStep], None] | None = None,
                 **options: Any) -> list[Image.Image]:
        """As ``Generator.generate``, reporting each denoising step to ``callback``."""


# ----------------------------------------------------------------------------- many conditions


Condition = str | int | None  # a prompt, a class label, or None (an unconditional draw)


def conditions_for(generator: Generator, prompts: Sequence[str] | None = None,
                   labels: Sequence[int] | None = None) -> list[Condition]:
    """What to ask ``generator`` for, given prompts and/or labels (one per condition): the kind it takes.

    An unconditional generator gets one ``None`` per given condition (at least one).
    """
    if generator.conditioning == "text":
        if not prompts:
            raise GenerationError(f"{generator.family} is text-conditional: give prompts")
        return list(prompts)
    if generator.conditioning == "label":
        if labels is None:
            raise GenerationError(f"{generator.family} is class-conditional: give labels")
        return list(labels)
    return [None] * max(1, len(prompts or labels or []))


def generate_conditions(generator: Generator, conditions: Sequence[Condition], seed: int = 0, n: int = 1,
                        batch_images: int = 64, progress: str | None = None, **options: Any) -> list[Image.Image]:
    """Every image of ``conditions``, ``n`` each, in order ``[c0 x n, c1 x n, ...]``; condition i from ``seed + i``.

    Conditions are prompts (str), class labels (int) or None (unconditional draws), all of one kind.
    They go to the generator about ``batch_images`` images per call; by the seeding rule the
    images do not depend on the batching. ``progress``: a progress-bar label (None: no bar).
    """
    conditions = list(conditions)
    kinds = {type(c) for c in conditions}
    if not conditions or len(kinds) != 1 or not kinds <= {str, int, type(None)}:
        raise GenerationError(f"conditions must be a non-empty list of prompts, of labels or of None, "
                              f"one kind only; got kinds {sorted(k.__name__ for k in kinds)}")
    if not isinstance(n, int) or n < 1:
        raise GenerationError(f"n (images per condition) must be an integer >= 1, got {n!r}")
    from tqdm.auto import tqdm

    per_call = max(1, batch_images // n)
    images: list[Image.Image] = []
    with tqdm(total=len(conditions), desc=progress, unit="condition", disable=progress is None) as bar:
        for start in range(0, len(conditions), per_call):
            chunk = conditions[start:start + per_call]
            if chunk[0] is None:  # an unconditional request is one condition
                for i in range(len(chunk)):
                    images += generator.generate(seed=seed + start + i, num_images_per_prompt=n, **options)
            else:
                key = "prompts" if isinstance(chunk[0], str) else "labels"
                images += generator.generate(**{key: chunk}, seed=seed + start, num_images_per_prompt=n, **options)
            bar.update(len(chunk))
    return images
