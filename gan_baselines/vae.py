"""Variational autoencoders (MLP and convolutional) and the conditional VAE, with the ELBO loss and a generator.

A VAE (Kingma & Welling 2014, "Auto-Encoding Variational Bayes") has a Gaussian encoder
``q(z|x) = N(mu(x), diag(exp(logvar(x))))``, a decoder ``p(x|z)`` and the prior
``p(z) = N(0, I)``. Training minimises the negative ELBO per sample,

    -ELBO = E_q[-log p(x|z)] + beta * KL(q(z|x) || p(z)),

with one reparameterised sample ``z = mu + sigma * eps`` (Eq. 10 of the paper) and the KL in
closed form (Appendix B). ``beta = 1`` is the ELBO; ``beta != 1`` is the beta-VAE weighting
(Higgins et al. 2017). A conditional VAE (Sohn et al. 2015) feeds a condition vector ``c``
to both encoder and decoder: a one-hot class label or the L2-normalised pooled CLIP text
embedding of the caption. Because ``p(z)`` is a real prior, decoding ``z ~ N(0, I)`` is
sampling from the model, which is what ``VAEGenerator`` does.

    python -c "from gan_baselines.vae import demo; demo()"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gan_baselines.autoencoders import RECONSTRUCTIONS, codes_from
from t2i.generator import GenerationError, Generator, seeded_noise, to_pil, validate_request

CONDITIONINGS = ("none", "label", "text")


class VAE(nn.Module):
    """Shared plumbing: subclasses build ``trunk`` (x -> features), ``body`` ([features, c] -> hidden),
    the ``mu`` and ``logvar`` heads and ``decoder`` ([z, c] -> logits)."""

    latent_dim: int
    cond_dim: int

    def _with_cond(self, h: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.cond_dim == 0:
            if cond is not None:
                raise ValueError("this VAE is unconditional (cond_dim=0) but a condition was given")
            return h
        if cond is None or cond.shape != (h.shape[0], self.cond_dim):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"this VAE needs a condition of shape ({h.shape[0]}, {self.cond_dim}), got {got}")
        return torch.cat([h, cond.to(h.dtype)], dim=1)  # (B, F + K)

    def encode(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, S, S) -> (mu (B, D), logvar (B, D))."""
        h = self.body(self._with_cond(self.trunk(x), cond))  # (B, H)
        return self.mu(h), self.logvar(h)

    def decode_logits(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self._with_cond(z, cond))  # (B, D) -> (B, C, S, S)

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z, cond))  # mean of p(x|z), in [0, 1]

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """The training pass: (mu, logvar, z, logits) with one reparameterised z ~ q(z|x).

        One call of the (possibly DDP-wrapped) model gives the loss everything it needs.
        """
        mu, logvar = self.encode(x, cond)  # (B, D) each
        z = reparameterize(mu, logvar)  # (B, D)
        return mu, logvar, z, self.decode_logits(z, cond)

    def reconstruct(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction through the posterior mean (no sampling): (B, C, S, S)."""
        mu, _ = self.encode(x, cond)
        return self.decode(mu, cond)


class MLPVAE(VAE):
    """Fully connected VAE: input (+ c) -> hidden... -> (mu, logvar); z (+ c) -> ...hidden -> input."""

    def __init__(self, channels: int = 1, size: int = 32, hidden: Sequence[int] = (512, 256), latent_dim: int = 2,
                 cond_dim: int = 0):
        super().__init__()
        self.channels, self.size, self.latent_dim, self.cond_dim = channels, size, latent_dim, cond_dim
        self.hidden = tuple(hidden)
        if not self.hidden:
            raise ValueError("an MLP VAE needs at least one hidden layer (hidden=[...])")
        n = channels * size * size
        self.trunk = nn.Flatten()  # (B, C*S*S); the condition joins before the first layer
        dims = [n + cond_dim, *self.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.mu, self.logvar = nn.Linear(dims[-1], latent_dim), nn.Linear(dims[-1], latent_dim)
        rev = [latent_dim + cond_dim, *reversed(self.hidden)]
        dec: list[nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec += [nn.Linear(rev[-1], n), nn.Unflatten(1, (channels, size, size))]
        self.decoder = nn.Sequential(*dec)

    def config(self) -> dict[str, Any]:
        return {"arch": "mlp", "channels": self.channels, "size": self.size, "hidden": list(self.hidden),
                "latent_dim": self.latent_dim, "cond_dim": self.cond_dim}


class ConvVAE(VAE):
    """Strided convolutions down to (W, s, s), the condition joins the flattened features; transposed convs up."""

    def __init__(self, channels: int = 1, size: int = 32, widths: Sequence[int] = (32, 64, 128), latent_dim: int = 16,
                 cond_dim: int = 0):
        super().__init__()
        levels = len(widths)
        if levels == 0 or size % (2 ** levels):
            raise ValueError(f"size {size} must be divisible by 2**len(widths) = {2 ** levels} (widths={list(widths)})")
        self.channels, self.size, self.latent_dim, self.cond_dim = channels, size, latent_dim, cond_dim
        self.widths = tuple(widths)
        s = size // 2 ** levels
        chans = [channels, *self.widths]
        trunk: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            trunk += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]  # (B, a, S, S) -> (B, b, S/2, S/2)
        self.trunk = nn.Sequential(*trunk, nn.Flatten())  # (B, W*s*s)
        self.body = nn.Identity()
        feat = chans[-1] * s * s + cond_dim
        self.mu, self.logvar = nn.Linear(feat, latent_dim), nn.Linear(feat, latent_dim)
        dec: list[nn.Module] = [nn.Linear(latent_dim + cond_dim, chans[-1] * s * s), nn.ReLU(),
                                nn.Unflatten(1, (chans[-1], s, s))]
        rev = list(reversed(chans))
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            dec.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))  # (B, a, s, s) -> (B, b, 2s, 2s)
            if i < levels - 1:
                dec.append(nn.ReLU())
        self.decoder = nn.Sequential(*dec)

    def config(self) -> dict[str, Any]:
        return {"arch": "conv", "channels": self.channels, "size": self.size, "widths": list(self.widths),
                "latent_dim": self.latent_dim, "cond_dim": self.cond_dim}


ARCHS = {"mlp": MLPVAE, "conv": ConvVAE}


def build_vae(config: dict[str, Any]) -> VAE:
    """Rebuild a VAE from the ``config()`` dict it was saved with (extra keys are ignored)."""
    arch = config.get("arch", "mlp")
    if arch not in ARCHS:
        raise ValueError(f"VAE arch must be one of {sorted(ARCHS)}, got {arch!r}")
    keys = ("channels", "size", "latent_dim", "cond_dim") + (("hidden",) if arch == "mlp" else ("widths",))
    return ARCHS[arch](**{k: config[k] for k in keys if k in config})


# ----------------------------------------------------------------------------- loss


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """``z = mu + sigma * eps``, ``sigma = exp(logvar / 2)``, ``eps ~ N(0, I)`` (Kingma & Welling 2014, Eq. 10)."""
    if eps is None:
        eps = torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps  # (B, D)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(sigma^2)) || N(0, I))`` per sample, in nats: (B, D) -> (B,).

    ``-KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)`` (Kingma & Welling 2014, Appendix B).
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def negative_log_likelihood(logits: torch.Tensor, x: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """``-log p(x|z)`` per sample, summed over pixels: (B, C, S, S) -> (B,).

    ``bce``: Bernoulli decoder with mean ``sigmoid(logits)`` (the paper's choice for
    binarised MNIST; used on [0, 1] intensities as is common). ``mse``: the sum of squared
    errors, i.e. a Gaussian decoder with fixed variance 1/2, up to a constant.
    """
    if kind == "bce":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif kind == "mse":
        nll = (torch.sigmoid(logits) - x).pow(2)
    else:
        raise ValueError(f"reconstruction loss must be one of {RECONSTRUCTIONS}, got {kind!r}")
    return nll.flatten(1).sum(1)


class VAELoss:
    """Negative ELBO with a beta weight: ``-log p(x|z) + beta * KL(q(z|x) || N(0, I))``, per sample."""

    def __init__(self, kind: str = "bce", beta: float = 1.0):
        if kind not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction loss must be one of {RECONSTRUCTIONS}, got {kind!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.kind, self.beta = kind, beta

    def __call__(self, model: VAE, x: torch.Tensor, cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mu, logvar, z, logits = model(x, cond)  # z: one Monte-Carlo sample of q(z|x)
        rec = negative_log_likelihood(logits, x, self.kind)  # (B,)
        kl = kl_to_standard_normal(mu, logvar)  # (B,)
        return {"loss": rec + self.beta * kl, "rec": rec, "kl": kl}


# ----------------------------------------------------------------------------- conditions


def label_condition(labels: torch.Tensor | Sequence[int], num_classes: int) -> torch.Tensor:
    """Class labels -> one-hot condition vectors (B, num_classes)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes - 1}], got {labels.tolist()}")
    return F.one_hot(labels, num_classes).float()


def text_condition(pooled: torch.Tensor) -> torch.Tensor:
    """Pooled CLIP text embeddings (B, P) -> unit-norm condition vectors (B, P), the scale CLIP compares at."""
    return F.normalize(pooled.float(), dim=-1)


# ----------------------------------------------------------------------------- generator


@dataclass
class VAEOptions:
    temperature: float = 1.0  # scale of the prior codes: z ~ N(0, temperature^2 I); < 1 trades variety for sharpness
    latents: list[list[float]] | None = None  # codes to decode instead of drawing prior ones, one per image


class VAEGenerator(Generator):
    """Samples ``x = decoder(z, c)`` with ``z ~ N(0, I)`` (times ``temperature``), the VAE's prior.

    ``conditioning`` is "none" (family "vae": prompts/labels only set the count), "label"
    (family "cvae": one image set per label) or "text" (family "cvae": per prompt, through
    the text encoder named in the config). ``latents=`` decodes chosen codes instead; an
    unconditional VAE also answers the ``LatentCodes`` protocol (``encode``: the posterior mean).
    """

    Options = VAEOptions

    def __init__(self, model: VAE, config: dict[str, Any], text_encoder: Any = None):
        self.model = model  # in eval mode when loaded (load_vae); a trainer's grids switch it themselves
        self.config = dict(config)
        self.options = VAEOptions()
        self.family = config.get("family", "vae")
        self.conditioning = config.get("conditioning", "none")
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {self.conditioning!r}")
        self.num_classes = config.get("num_classes") if self.conditioning == "label" else None
        if self.num_classes:
            self.class_names = config.get("class_names") or [str(i) for i in range(self.num_classes)]
        self.text_encoder = text_encoder
        self.latent_dim = model.latent_dim
        self.image_shape = (model.channels, model.size, model.size)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model} | ({"text_encoder": self.text_encoder} if self.text_encoder is not None else {})

    @torch.no_grad()
    def conditions(self, prompts: Sequence[str] | None, labels: Sequence[int] | None) -> torch.Tensor | None:
        """One condition vector per prompt or label: (N, cond_dim), or None when unconditional."""
        if self.conditioning == "label":
            return label_condition(list(labels), self.num_classes)
        if self.conditioning == "text":
            return text_condition(self.text_encoder(list(prompts)).pooled).cpu()
        return None

    @torch.no_grad()
    def encode(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, S, S) in [0, 1] (and (N, K) conditions) -> the posterior means (N, D) on the CPU."""
        cond = None if cond is None else cond.to(self.device)
        return self.model.encode(images.to(self.device, torch.float32), cond)[0].cpu()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D) codes (and (N, K) conditions) -> (N, C, S, S) images in [0, 1] on the CPU."""
        cond = None if cond is None else cond.to(self.device)
        return self.model.decode(codes.to(self.device, torch.float32), cond).cpu()

    def generate(self, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None, seed: int = 0,
                 num_images_per_prompt: int = 1, **options: Any) -> list[Image.Image]:
        opts = self.resolve_options(**options)
        if not opts.temperature > 0:
            raise GenerationError(f"temperature must be > 0, got {opts.temperature!r}")
        count = validate_request(prompts, labels, num_images_per_prompt, num_classes=self.num_classes,
                                 needs=self.conditioning)
        cond = self.conditions(prompts, labels)
        if cond is not None:
            cond = cond.repeat_interleave(num_images_per_prompt, dim=0)  # [a0, a1, b0, b1] order
        if opts.latents is not None:
            codes = codes_from(opts.latents, self.latent_dim, count * num_images_per_prompt)
        else:  # condition i from seed + i
            codes = seeded_noise(seed, count, num_images_per_prompt, (self.latent_dim,)) * opts.temperature
        return to_pil(self.decode(codes, cond))


def load_vae(folder: str | Path) -> tuple[VAE, dict[str, Any]]:
    """A folder written by ``t2i train vae`` or ``t2i train cvae`` -> (model in eval mode, config dict)."""
    from t2i.io import load_config_json, load_weights

    config = load_config_json(folder)
    if config.get("family") not in ("vae", "cvae"):
        raise ValueError(f"{folder} holds family {config.get('family')!r}, not a VAE ('vae' or 'cvae')")
    model = build_vae(config)
    model.load_state_dict(load_weights(folder))
    return model.eval(), config


def resolve_text_encoder(folder: str | Path, name: str) -> str:
    """The text encoder named in a config: a folder inside the model folder, a path, or a built-in name."""
    inside = Path(folder) / name
    return str(inside) if inside.exists() else name


def load_generator(folder: str | Path) -> VAEGenerator:
    """Registry entry for the "vae" and "cvae" families."""
    model, config = load_vae(folder)
    text_encoder = None
    if config.get("conditioning") == "text":
        from t2i.text import TextEncoder

        text_encoder = TextEncoder.from_pretrained(resolve_text_encoder(folder, config["text_encoder"]))
    return VAEGenerator(model, config, text_encoder)


def demo() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8)
    for model, cond in [(MLPVAE(1, 8, (32,), 2), None), (ConvVAE(1, 8, (8, 16), 4, cond_dim=10),
                                                          label_condition([0, 1, 2, 3], 10))]:
        terms = VAELoss("bce", beta=1.0)(model, x, cond)
        print(type(model).__name__, {k: round(float(v.detach().mean()), 3) for k, v in terms.items()})
    gen = VAEGenerator(MLPVAE(1, 8, (32,), 2, cond_dim=10), {"family": "cvae", "conditioning": "label", "num_classes": 10})
    print([im.size for im in gen.generate(labels=[3, 7], num_images_per_prompt=2, seed=1)])
