"""Autoencoders (MLP, convolutional; plain, denoising, sparse, contractive, overcomplete) and their losses.

An autoencoder is an encoder ``h = f(x)`` and a decoder ``r = g(h)`` trained to reconstruct
its input, ``L(x, g(f(x)))``. What it learns depends on what stops it from copying: a
narrow code (undercomplete), or a regulariser when the code is wide (overcomplete):

- denoising: ``L(x, g(f(x~)))`` with ``x~`` a corrupted copy (Vincent et al. 2008),
- sparse: ``L + lambda * ||h||_1`` (Goodfellow et al., Deep Learning, Sec. 14.2.1),
- contractive: ``L + lambda * ||J_f(x)||_F^2`` (Rifai et al. 2011, Eq. 3).

Images are ``(B, C, S, S)`` in ``[0, 1]``. ``model(x)`` is the training pass and returns
``(h, logits)``, so the losses call the model once and a DDP-wrapped model syncs its
gradients; ``reconstruct(x)`` gives images. ``decode_logits`` is the decoder's last linear
output and ``decode`` applies the output activation: ``sigmoid`` (default; the BCE loss is
then computed stably from the logits) or ``linear`` (no squashing: the decoder can
represent the identity map, which the ``overcomplete`` study needs). Each loss is a small
callable returning per-sample terms ``{"loss": (B,), ...}``; the training loop reduces them.

    python -c "from gan_baselines.autoencoders import demo; demo()"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gan_baselines.corruption import check_corruption, corrupt, random_levels
from t2i.generator import GenerationError, Generator, seeded_noise, to_pil, validate_request

CODE_ACTIVATIONS = {"none": nn.Identity, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
OUTPUTS = ("sigmoid", "linear")
RECONSTRUCTIONS = ("mse", "bce")


def _activation(name: str) -> nn.Module:
    if name not in CODE_ACTIVATIONS:
        raise ValueError(f"code_activation must be one of {sorted(CODE_ACTIVATIONS)}, got {name!r}")
    return CODE_ACTIVATIONS[name]()


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    return output


def activation_slope(h: torch.Tensor, name: str) -> torch.Tensor:
    """``s'(a)`` written in terms of ``h = s(a)`` for the code activations: (B, D) -> (B, D)."""
    if name == "sigmoid":
        return h * (1 - h)
    if name == "tanh":
        return 1 - h.pow(2)
    if name == "relu":
        return (h > 0).to(h.dtype)
    if name == "none":
        return torch.ones_like(h)
    raise ValueError(f"code_activation must be one of {sorted(CODE_ACTIVATIONS)}, got {name!r}")


class Autoencoder(nn.Module):
    """Shared plumbing: subclasses build ``self.encoder`` (x -> h) and ``self.decoder`` (h -> logits)."""

    latent_dim: int
    code_activation: str
    output: str = "sigmoid"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, C, S, S) -> (B, D)

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(h)  # (B, D) -> (B, C, S, S)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.decode_logits(h)
        return torch.sigmoid(logits) if self.output == "sigmoid" else logits  # images (in [0, 1] for sigmoid)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training pass: (code h (B, D), decoder logits (B, C, S, S))."""
        h = self.encode(x)
        return h, self.decode_logits(h)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))  # (B, C, S, S) -> (B, C, S, S)

    def single_layer(self) -> nn.Linear | None:
        """The encoder's only linear layer when the encoder is ``s(W x + b)`` (closed-form Jacobian), else None."""
        return None


class MLPAutoencoder(Autoencoder):
    """Fully connected autoencoder: input -> hidden... -> code -> ...hidden -> input, ReLU between layers.

    With ``hidden=()`` the encoder is a single layer ``h = s(W x + b)`` (with ``s`` = sigmoid,
    the contractive autoencoder of Rifai et al. 2011), whose contractive penalty has a
    closed form (see ``contractive_penalty``).
    """

    arch = "mlp"

    def __init__(self, channels: int = 1, size: int = 32, hidden: Sequence[int] = (512, 256), latent_dim: int = 2,
                 code_activation: str = "none", output: str = "sigmoid"):
        super().__init__()
        self.channels, self.size, self.latent_dim = channels, size, latent_dim
        self.hidden, self.code_activation, self.output = tuple(hidden), code_activation, _check_output(output)
        dims = [channels * size * size, *self.hidden]
        enc: list[nn.Module] = [nn.Flatten()]  # (B, C*S*S)
        for a, b in zip(dims[:-1], dims[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        enc += [nn.Linear(dims[-1], latent_dim), _activation(code_activation)]
        self.encoder = nn.Sequential(*enc)
        rev = [latent_dim, *reversed(self.hidden)]
        dec: list[nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec += [nn.Linear(rev[-1], dims[0]), nn.Unflatten(1, (channels, size, size))]
        self.decoder = nn.Sequential(*dec)

    def single_layer(self) -> nn.Linear | None:
        return None if self.hidden else self.encoder[1]

    def config(self) -> dict[str, Any]:
        return {"arch": "mlp", "channels": self.channels, "size": self.size, "hidden": list(self.hidden),
                "latent_dim": self.latent_dim, "code_activation": self.code_activation, "output": self.output}


class ConvAutoencoder(Autoencoder):
    """Strided 4x4 convolutions halve the image per level; transposed convolutions double it back."""

    arch = "conv"

    def __init__(self, channels: int = 1, size: int = 32, widths: Sequence[int] = (32, 64, 128), latent_dim: int = 16,
                 code_activation: str = "none", output: str = "sigmoid"):
        super().__init__()
        levels = len(widths)
        if levels == 0 or size % (2 ** levels):
            raise ValueError(f"size {size} must be divisible by 2**len(widths) = {2 ** levels} (widths={list(widths)})")
        self.channels, self.size, self.latent_dim = channels, size, latent_dim
        self.widths, self.code_activation, self.output = tuple(widths), code_activation, _check_output(output)
        s = size // 2 ** levels  # spatial size at the bottom
        chans = [channels, *self.widths]
        enc: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            enc += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]  # (B, a, S, S) -> (B, b, S/2, S/2)
        enc += [nn.Flatten(), nn.Linear(chans[-1] * s * s, latent_dim), _activation(code_activation)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Linear(latent_dim, chans[-1] * s * s), nn.ReLU(), nn.Unflatten(1, (chans[-1], s, s))]
        rev = list(reversed(chans))
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            dec.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))  # (B, a, s, s) -> (B, b, 2s, 2s)
            if i < levels - 1:
                dec.append(nn.ReLU())
        self.decoder = nn.Sequential(*dec)

    def config(self) -> dict[str, Any]:
        return {"arch": "conv", "channels": self.channels, "size": self.size, "widths": list(self.widths),
                "latent_dim": self.latent_dim, "code_activation": self.code_activation, "output": self.output}


ARCHS = {"mlp": MLPAutoencoder, "conv": ConvAutoencoder}


def build_autoencoder(config: dict[str, Any]) -> Autoencoder:
    """Rebuild an autoencoder from the ``config()`` dict it was saved with (extra keys are ignored)."""
    arch = config.get("arch", "mlp")
    if arch not in ARCHS:
        raise ValueError(f"autoencoder arch must be one of {sorted(ARCHS)}, got {arch!r}")
    keys = ("channels", "size", "latent_dim", "code_activation", "output") + (("hidden",) if arch == "mlp" else ("widths",))
    return ARCHS[arch](**{k: config[k] for k in keys if k in config})


# ----------------------------------------------------------------------------- losses


def reconstruction_error(logits: torch.Tensor, x: torch.Tensor, kind: str = "mse", output: str = "sigmoid") -> torch.Tensor:
    """Per-sample reconstruction error, averaged over pixels: (B, C, S, S) x 2 -> (B,).

    ``mse``: mean of ``(r - x)^2`` with ``r = sigmoid(logits)`` (or ``r = logits`` for the
    linear output); ``bce``: mean binary cross-entropy of ``x`` under
    Bernoulli(sigmoid(logits)), computed from the logits (sigmoid output only).
    """
    if kind == "mse":
        err = ((torch.sigmoid(logits) if _check_output(output) == "sigmoid" else logits) - x).pow(2)
    elif kind == "bce":
        if output != "sigmoid":
            raise ValueError("the bce loss needs the sigmoid output (a Bernoulli mean); use mse with output='linear'")
        err = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        raise ValueError(f"reconstruction loss must be one of {RECONSTRUCTIONS}, got {kind!r}")
    return err.flatten(1).mean(1)


def jacobian_frobenius_sq(h: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Exact ``||dh/dx||_F^2`` per sample by autograd, one backward pass per code unit: (B,).

    ``h`` (B, D) must have been computed from ``x`` (which requires grad). Summing
    ``h[:, j]`` over the batch before differentiating is exact because each code row
    depends on its own input only (the encoders here have no batch normalisation).
    """
    total = x.new_zeros(x.shape[0])
    for j in range(h.shape[1]):
        (grad,) = torch.autograd.grad(h[:, j].sum(), x, create_graph=create_graph, retain_graph=True)  # (B, C, S, S)
        total = total + grad.flatten(1).pow(2).sum(1)  # += ||grad_x h_j||^2
    return total


def unwrap(model: nn.Module) -> nn.Module:
    """The autoencoder inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def contractive_penalty(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``||J_f(x)||_F^2 = sum_ij (dh_j / dx_i)^2`` per sample, exactly.

    For a single layer ``h = s(W x + b)``, ``dh_j/dx_i = s'(a_j) W_ji``, so
    ``||J||_F^2 = sum_j s'(a_j)^2 sum_i W_ji^2``: one forward pass. For the sigmoid,
    ``s'(a_j) = h_j (1 - h_j)`` (Rifai et al. 2011, Sec. 5). Any deeper encoder goes through
    autograd, one backward pass per code unit (see ``jacobian_frobenius_sq``).
    Returns ``(penalty (B,), h (B, D), logits (B, C, S, S))`` from one call of ``model``.
    """
    net = unwrap(model)
    layer = net.single_layer()
    if layer is None:
        x = x.detach().requires_grad_(True)
    h, logits = model(x)  # (B, D), (B, C, S, S)
    if layer is None:
        return jacobian_frobenius_sq(h, x), h, logits
    row_norms = layer.weight.pow(2).sum(1)  # (D,) = sum_i W_ji^2
    return (activation_slope(h, net.code_activation).pow(2) * row_norms).sum(1), h, logits


class ReconstructionLoss:
    """Plain autoencoder: ``L(x, g(f(x)))``."""

    def __init__(self, kind: str = "mse"):
        if kind not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction loss must be one of {RECONSTRUCTIONS}, got {kind!r}")
        self.kind = kind

    def __call__(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        _, logits = model(x)
        rec = reconstruction_error(logits, x, self.kind, unwrap(model).output)
        return {"loss": rec, "rec": rec}


class DenoisingLoss(ReconstructionLoss):
    """Denoising autoencoder: ``L(x, g(f(x~)))``, ``x~ = corrupt(x)``; the target is the clean image.

    ``random_level=True`` draws each image's level uniformly from [0, level] (a blind denoiser).
    """

    def __init__(self, kind: str = "mse", noise: str = "gaussian", level: float = 0.3, random_level: bool = False):
        super().__init__(kind)
        check_corruption(noise, level)  # fail now, not at step 1
        self.noise, self.level, self.random_level = noise, level, random_level

    def __call__(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        level = random_levels(len(x), self.level, device=x.device) if self.random_level else self.level
        x_tilde = corrupt(x, self.noise, level)
        _, logits = model(x_tilde)
        rec = reconstruction_error(logits, x, self.kind, unwrap(model).output)  # against the clean x
        return {"loss": rec, "rec": rec}


class SparseLoss(ReconstructionLoss):
    """Sparse autoencoder: ``L(x, g(h)) + weight * ||h||_1``, ``h = f(x)``."""

    def __init__(self, kind: str = "mse", weight: float = 1e-3):
        super().__init__(kind)
        self.weight = weight

    def __call__(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, logits = model(x)  # (B, D), (B, C, S, S)
        rec = reconstruction_error(logits, x, self.kind, unwrap(model).output)
        l1 = h.abs().sum(1)  # (B,)
        return {"loss": rec + self.weight * l1, "rec": rec, "l1": l1}


class ContractiveLoss(ReconstructionLoss):
    """Contractive autoencoder: ``L(x, g(h)) + weight * ||J_f(x)||_F^2`` (Rifai et al. 2011, Eq. 3)."""

    def __init__(self, kind: str = "mse", weight: float = 1e-2):
        super().__init__(kind)
        self.weight = weight

    def __call__(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        jac, _, logits = contractive_penalty(model, x)
        rec = reconstruction_error(logits, x, self.kind, unwrap(model).output)
        return {"loss": rec + self.weight * jac, "rec": rec, "jacobian": jac}


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image for values in [0, 1]: ``10 log10(1 / MSE)`` dB, (B, ...) -> (B,)."""
    mse = (x_hat - x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


# ----------------------------------------------------------------------------- generator


@dataclass
class AutoencoderOptions:
    latents: list[list[float]] | None = None  # codes to decode instead of drawing N(0, I) ones, one per image


def codes_from(latents: Any, dim: int, total: int) -> torch.Tensor:
    """Chosen codes (nested lists or an array) -> (total, dim); a wrong count is a GenerationError."""
    codes = torch.as_tensor(latents, dtype=torch.float32).reshape(-1, dim)
    if codes.shape[0] != total:
        raise GenerationError(f"latents holds {codes.shape[0]} codes of size {dim} but the request asks for {total} "
                              f"images (conditions x num_images_per_prompt); ask for {codes.shape[0]} images")
    return codes


class AutoencoderGenerator(Generator):
    """An autoencoder's decoder driven by random codes ``z ~ N(0, I)`` (and the ``LatentCodes`` protocol).

    An autoencoder has no prior, so this is the naive generator the ``generation`` study
    shows to be poor; ``latents=`` decodes chosen codes instead, and ``encode``/``decode``
    map images to codes and back (the app's latent tab). Prompts and labels only set how
    many images come back: the model is unconditional.
    """

    family = "ae"
    conditioning = "none"
    Options = AutoencoderOptions

    def __init__(self, model: nn.Module, config: dict[str, Any] | None = None):
        self.model = model.eval()
        self.config = dict(config or {})
        self.options = AutoencoderOptions()
        self.latent_dim = model.latent_dim
        self.image_shape = (model.channels, model.size, model.size)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) in [0, 1] -> codes (N, D) on the CPU."""
        return self.model.encode(images.to(self.device, torch.float32)).cpu()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, D) codes -> (N, C, S, S) images in [0, 1] on the CPU."""
        return self.model.decode(codes.to(self.device, torch.float32)).cpu()

    def generate(self, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None, seed: int = 0,
                 num_images_per_prompt: int = 1, **options: Any) -> list[Image.Image]:
        opts = self.resolve_options(**options)
        count = validate_request(prompts, labels, num_images_per_prompt, needs="none")
        if opts.latents is not None:
            codes = codes_from(opts.latents, self.latent_dim, count * num_images_per_prompt)
        else:
            codes = seeded_noise(seed, count, num_images_per_prompt, (self.latent_dim,))  # condition i from seed + i
        return to_pil(self.decode(codes))


def load_autoencoder(folder: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A folder written by ``t2i train ae`` -> (model in eval mode, its config dict)."""
    from t2i.io import load_config_json, load_weights

    config = load_config_json(folder)
    if config.get("family") != "ae":
        raise ValueError(f"{folder} holds family {config.get('family')!r}, not an autoencoder ('ae')")
    model = build_autoencoder(config)
    model.load_state_dict(load_weights(folder))
    return model.eval(), config


def load_generator(folder: str | Path) -> AutoencoderGenerator:
    """Registry entry for the "ae" family."""
    model, config = load_autoencoder(folder)
    return AutoencoderGenerator(model, config)


def demo() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8)
    for loss, model in [(ReconstructionLoss("bce"), MLPAutoencoder(1, 8, (32,), 2)),
                        (DenoisingLoss(noise="masking", level=0.5), ConvAutoencoder(1, 8, (8, 16), 4)),
                        (SparseLoss(weight=0.1), MLPAutoencoder(1, 8, (), 128, "relu")),
                        (ContractiveLoss(weight=0.1), MLPAutoencoder(1, 8, (), 16, "sigmoid"))]:
        terms = loss(model, x)
        print(type(loss).__name__, {k: v.shape for k, v in terms.items()}, float(terms["loss"].detach().mean()))
