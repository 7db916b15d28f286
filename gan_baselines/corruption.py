"""Input corruption for denoising autoencoders: Gaussian, masking (dropout) and salt-and-pepper noise.

A denoising autoencoder is trained on ``L(x, g(f(x~)))`` where ``x~ ~ q(x~ | x)`` is a
corrupted copy of the clean image ``x`` (Vincent et al. 2008, "Extracting and composing
robust features with denoising autoencoders", Sec. 2.3; the three corruptions below are
the ones of Vincent et al. 2010, Sec. 4.1). Images live in ``[0, 1]`` and stay there.

    python -c "from gan_baselines.corruption import demo; demo()"
"""

from __future__ import annotations

import torch

KINDS = ("gaussian", "masking", "salt_pepper")


def check_corruption(kind: str, level: float) -> None:
    """Raise ValueError unless ``kind`` is known and ``level`` is valid for it."""
    if kind not in KINDS:
        raise ValueError(f"corruption kind must be one of {KINDS}, got {kind!r}")
    if kind == "gaussian":
        if level < 0:
            raise ValueError(f"gaussian noise level is a standard deviation >= 0, got {level}")
    elif not 0.0 <= level <= 1.0:
        raise ValueError(f"{kind} noise level is a probability in [0, 1], got {level}")


def corrupt(x: torch.Tensor, kind: str = "gaussian", level: float | torch.Tensor = 0.3,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Return a corrupted copy of ``x`` (any shape, values in [0, 1]).

    ``level`` is a number, or a tensor broadcastable to ``x`` (e.g. (B, 1, 1, 1): one level
    per image, as ``random_levels`` draws them).

    - ``gaussian``: ``x + level * eps``, ``eps ~ N(0, I)``, clipped to [0, 1]; ``level`` is the std.
    - ``masking``: each value is set to 0 with probability ``level`` (dropout noise, not rescaled).
    - ``salt_pepper``: each value is, with probability ``level``, replaced by 0 or 1 (a fair coin).
    """
    if isinstance(level, torch.Tensor):
        check_corruption(kind, float(level.min()))
        check_corruption(kind, float(level.max()))
    else:
        check_corruption(kind, level)
    if kind == "gaussian":
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + level * eps).clamp(0.0, 1.0)
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    hit = u < level  # which values get destroyed
    if kind == "masking":
        return x.masked_fill(hit, 0.0)
    # salt_pepper: reuse the uniform draw, so given a hit, u / level ~ U(0, 1) picks salt or pepper
    salt = (u < level / 2).to(x.dtype)
    return torch.where(hit, salt, x)


def random_levels(batch: int, max_level: float, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """One level per image, uniform in [0, max_level]: (B, 1, 1, 1).

    Training on a range of levels gives a blind denoiser that is good at every level up to
    ``max_level``, not only at one (Zhang et al. 2017, DnCNN-B, trained on sigma in [0, 55]).
    """
    u = torch.rand(batch, 1, 1, 1, generator=generator)
    return (u * max_level).to(device)


def demo() -> None:
    x = torch.full((1, 1, 4, 4), 0.5)
    g = torch.Generator().manual_seed(0)
    for kind in KINDS:
        print(kind, corrupt(x, kind, 0.5, generator=g).flatten().tolist())
