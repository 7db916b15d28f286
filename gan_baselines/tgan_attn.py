"""Text GAN with cross-attention to the CLIP token states: G(z, text), D(x, text) (``tgan-attn``).

The stronger sibling of ``gan_baselines.tgan`` (which reads only the pooled embedding).
The ideas are those of the text-to-image GANs that follow their prompts:

- **G attends to the text tokens** (AttnGAN, Xu et al. 2018; GigaGAN, Kang et al. 2023;
  StyleGAN-T, Sauer et al. 2023): the frozen CLIP token states ``(B, T, D)`` pass through a
  small learned text transformer (GigaGAN's "learned text encoder" on top of frozen CLIP),
  then every spatial location of G queries them by cross-attention at the resolutions in
  ``g_attn``. The pooled embedding and the masked mean of the learned states form a global
  text code that, with the noise, modulates every block (FiLM on a conditional batch norm,
  as in BigGAN, Brock et al. 2019).
- **Noise at several scales**: z is cut into chunks; the first enters the 4x4 input through
  the mapping network, each further chunk joins the modulation of one up-sampling block
  (``noise_scales="all"``; StyleGAN's per-layer styles, Karras et al. 2019), so no block can
  make its output independent of z. ``"input"`` feeds all of z to the input only (DCGAN).
- **D judges image-text match at several resolutions** (``d_heads``; multi-scale text-aware
  D of GigaGAN / StyleGAN-T): a shared convolutional trunk; at each head resolution an
  unconditional realism term plus a text term, either a *spatial projection*
  ``<phi(x), W c>`` over channels and locations (the projection discriminator of Miyato &
  Koyama 2018, Eq. 3, with a per-location embedding so D can tell *where* an object is), or
  *word-region attention* (each of D's learned token states attends over the locations and
  is scored against the region it finds, averaged over the words: AttnGAN's DAMSM matching,
  Xu et al. 2018, inside D) on top, at the resolutions in ``d_words``. A sum over locations, as the projection
  is, can pay for a missing object with a second copy of the other; a mean over words
  cannot, which is what binds colours to objects in two-object prompts.

Only G ships; D's trunk and heads are separate calls (``features``, ``heads``) so the
trainer scores a real image with its own and a mismatched caption from one trunk pass.

    python -c "from gan_baselines.tgan_attn import demo; demo()"
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_baselines.dcgan import num_doublings
from gan_baselines.gan import load_net_config
from t2i.generator import Generator, seeded_noise, to_pil, validate_request
from t2i.io import load_weights

NOISE_SCALES = ("all", "input")


@dataclass
class AttnGANArch:
    """The architecture of a ``tgan-attn`` model (saved as ``config.json["arch"]``)."""

    token_dim: int  # D of the text encoder's token states (B, T, D)
    pooled_dim: int  # P of its pooled embedding (B, P)
    max_tokens: int  # T: the text encoder's context length
    latent_dim: int = 64  # size of z ~ N(0, I) (all chunks together)
    channels: int = 3  # image channels
    size: int = 32  # image side (16, 32, 64, 128 or 256: gan_baselines.dcgan.SIZES)
    text_width: int = 64  # width of the learned text transformer in G and in D
    text_layers: int = 1  # its layers (0 = a linear map of the CLIP states only)
    heads: int = 4  # attention heads everywhere
    g_channels: list[int] = field(default_factory=lambda: [128, 64, 32])  # G's channels at 4, 8, ... S/2 px
    g_attn: list[int] = field(default_factory=lambda: [4, 8])  # G resolutions with cross-attention to tokens
    noise_scales: str = "all"  # where z enters G: all (input + every block) | input (the 4x4 input only)
    d_channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # D's channels at S/2, S/4, ... 4 px
    d_heads: list[int] = field(default_factory=lambda: [16, 8, 4])  # D resolutions with a realism + projection head
    d_words: list[int] = field(default_factory=lambda: [8, 4])  # d_heads that also score word -> region attention
    spectral_norm: bool = True  # spectral normalisation of D's layers (Miyato et al. 2018)
    g_full: int = 0  # channels of a G block at full resolution before a 3x3 RGB convolution (0 = the last up-sampling draws RGB)
    d_full: int = 0  # channels of a stride-1 3x3 convolution at full resolution before D's first down-sampling (0 = none)
    g_depth: int = 1  # convolutions per G resolution: 1 = the up-sampling only (DCGAN); each more adds a 3x3 one
    d_depth: int = 1  # convolutions per D resolution: 1 = the down-sampling only (DCGAN); each more adds a 3x3 one

    def validate(self) -> None:
        n = num_doublings(self.size)  # raises for unsupported sizes
        if len(self.g_channels) != n or len(self.d_channels) != n:
            raise ValueError(f"at {self.size} px g_channels and d_channels need {n} entries each (4 px up to "
                             f"{self.size // 2}), got {self.g_channels} and {self.d_channels}")
        sides = [4 * 2**k for k in range(n)]  # 4 ... S/2
        for name, res, allowed in (("g_attn", self.g_attn, sides), ("d_heads", self.d_heads, sides)):
            bad = [r for r in res if r not in allowed]
            if bad:
                raise ValueError(f"{name} resolutions must be among {allowed}, got {bad}")
        if not self.d_heads:
            raise ValueError("d_heads needs at least one resolution")
        if not set(self.d_words) <= set(self.d_heads):
            raise ValueError(f"d_words must be among d_heads {self.d_heads}, got {self.d_words}")
        if self.noise_scales not in NOISE_SCALES:
            raise ValueError(f"noise_scales must be one of {list(NOISE_SCALES)}, got {self.noise_scales!r}")
        if self.noise_scales == "all" and self.latent_dim < n:
            raise ValueError(f"noise_scales=all cuts z into {n} chunks: latent_dim must be >= {n}")
        if self.g_full < 0 or self.d_full < 0:
            raise ValueError(f"g_full and d_full are channel counts (0 = off), got {self.g_full} and {self.d_full}")
        if self.g_depth < 1 or self.d_depth < 1:
            raise ValueError(f"g_depth and d_depth count convolutions per resolution (1 = one), got {self.g_depth} and "
                             f"{self.d_depth}")
        if self.text_width % self.heads:
            raise ValueError(f"text_width {self.text_width} must be a multiple of heads {self.heads}")

    def z_chunks(self) -> list[int]:
        """Sizes of the chunks of z: the 4x4 input's first, then one per up-sampling block below S."""
        blocks = num_doublings(self.size) - 1
        if self.noise_scales == "input":
            return [self.latent_dim]
        per = self.latent_dim // (blocks + 1)
        return [self.latent_dim - per * blocks] + [per] * blocks


class CrossAttention(nn.Module):
    """Queries ``x (B, N, C)`` attend to ``context (B, T, W)`` where ``mask (B, T)`` is True -> (B, N, C)."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h = self.heads
        q = self.q(self.norm(x)).view(B, N, h, C // h).transpose(1, 2)  # (B, h, N, C/h)
        k, v = self.kv(context).view(B, -1, 2, h, C // h).permute(2, 0, 3, 1, 4)  # 2 x (B, h, T, C/h)
        # softmax(q k^T / sqrt(d)) v over the real tokens (Vaswani et al. 2017, Eq. 1), written out rather than
        # F.scaled_dot_product_attention: the R1 penalty differentiates twice, which the CPU flash kernel cannot
        scores = (q @ k.transpose(-1, -2)) * (C // h) ** -0.5  # (B, h, N, T)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        out = scores.softmax(-1) @ v  # (B, h, N, C/h)
        return self.out(out.transpose(1, 2).reshape(B, N, C))  # (B, N, C)


class TextTransformer(nn.Module):
    """Frozen CLIP states -> learned states ``(B, T, W)`` and a global code ``(B, W)``.

    A pre-norm transformer (self-attention over the real tokens, an MLP) with learned
    positions on top of a linear map of the CLIP states; the global code mixes the
    L2-normalised pooled embedding with the masked mean of the learned states.
    """

    def __init__(self, token_dim: int, pooled_dim: int, max_tokens: int, width: int, layers: int, heads: int):
        super().__init__()
        self.inp = nn.Sequential(nn.LayerNorm(token_dim), nn.Linear(token_dim, width))
        self.pos = nn.Parameter(torch.zeros(max_tokens, width))
        self.attn = nn.ModuleList(CrossAttention(width, width, heads) for _ in range(layers))
        self.mlp = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(),
                                               nn.Linear(2 * width, width)) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.pooled = nn.Linear(pooled_dim, width)
        self.code = nn.Sequential(nn.Linear(2 * width, width), nn.LeakyReLU(0.2))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.inp(tokens) + self.pos[: tokens.shape[1]]  # (B, T, W)
        for attn, mlp in zip(self.attn, self.mlp):
            s = s + attn(s, s, mask)  # self-attention over the real tokens
            s = s + mlp(s)
        s = self.norm(s)  # (B, T, W)
        m = mask[..., None].to(s.dtype)  # (B, T, 1)
        mean = (s * m).sum(1) / m.sum(1).clamp_min(1)  # (B, W)
        code = self.code(torch.cat([self.pooled(F.normalize(pooled, dim=-1)), mean], dim=-1))  # (B, W)
        return s, code


def trim(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the padding columns no prompt of the batch uses: (B, T, D), (B, T) -> (B, T', D), (B, T')."""
    used = int(mask.any(0).nonzero().max()) + 1 if mask.any() else 1
    return tokens[:, :used], mask[:, :used]


class ConvFiLM(nn.Module):
    """3x3 convolution -> batch norm with FiLM from the style -> LeakyReLU, at a constant side (B, C, H, W)."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.film = nn.Linear(style_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(style)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return F.leaky_relu(self.norm(self.conv(h)) * (1 + gamma) + beta, 0.2)


class GBlock(nn.Module):
    """[2x up-sampling] -> batch norm with FiLM from the style -> LeakyReLU, then ``depth - 1`` times a 3x3
    convolution -> batch norm with FiLM -> LeakyReLU [-> cross-attention to the text]."""

    def __init__(self, c_in: int, c_out: int, style_dim: int, side: int, up: bool, attn: bool, text_width: int,
                 heads: int, depth: int = 1):
        super().__init__()
        # a 4x4 transposed convolution doubles the side (DCGAN, Radford et al. 2015); the 4x4 input has none
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False) if up else None
        self.norm = nn.BatchNorm2d(c_out, affine=False)
        self.film = nn.Linear(style_dim, 2 * c_out)  # conditional batch norm: gamma, beta from the style
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        # more convolutions at this resolution (two per resolution as in BigGAN and StyleGAN): a 9 px cross is drawn
        # by layers that see its neighbourhood at this side, not by one up-sampling step alone
        self.extra = nn.ModuleList(ConvFiLM(c_out, style_dim) for _ in range(depth - 1))
        self.attn = CrossAttention(c_out, text_width, heads if c_out % heads == 0 else 1) if attn else None
        self.pos = nn.Parameter(torch.randn(side * side, c_out) * 0.02) if attn else None

    def forward(self, h: torch.Tensor, style: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            h = self.conv(h)  # (B, C_out, 2H, 2W)
        h = self.norm(h)
        gamma, beta = self.film(style)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = F.leaky_relu(h * (1 + gamma) + beta, 0.2)
        for layer in self.extra:
            h = layer(h, style)
        if self.attn is not None:
            B, C, H, W = h.shape
            q = h.flatten(2).transpose(1, 2) + self.pos  # (B, HW, C) with learned positions
            h = h + self.attn(q, states, mask).transpose(1, 2).reshape(B, C, H, W)
        return h


class AttnGenerator(nn.Module):
    """(z (B, Z), tokens (B, T, D), mask (B, T), pooled (B, P)) -> image (B, C, S, S) in [-1, 1]."""

    def __init__(self, arch: AttnGANArch):
        super().__init__()
        arch.validate()
        self.arch = arch
        self.chunks = arch.z_chunks()
        W = arch.text_width
        self.text = TextTransformer(arch.token_dim, arch.pooled_dim, arch.max_tokens, W, arch.text_layers, arch.heads)
        self.mapping = nn.Sequential(nn.Linear(self.chunks[0] + W, 2 * W), nn.LeakyReLU(0.2),
                                     nn.Linear(2 * W, 2 * W), nn.LeakyReLU(0.2))  # [z_0, text code] -> w
        c0 = arch.g_channels[0]
        self.input = nn.Linear(2 * W, c0 * 16)  # w -> the 4x4 map (position-specific, as DCGAN's first layer)
        blocks, style_extra = [], self.chunks[1:] if len(self.chunks) > 1 else []
        for k, c_out in enumerate(arch.g_channels):
            c_in = arch.g_channels[max(k - 1, 0)]
            z_k = style_extra[k - 1] if k >= 1 and style_extra else 0  # the noise chunk of this block
            side = 4 * 2**k
            blocks.append(GBlock(c_in, c_out, 2 * W + z_k, side, up=k > 0, attn=side in arch.g_attn,
                                 text_width=W, heads=arch.heads, depth=arch.g_depth))
        self.blocks = nn.ModuleList(blocks)
        if arch.g_full:  # one more block at full resolution, then a 3x3 convolution draws the image (edges of small
            # objects are drawn by a layer that sees its neighbours at full resolution, not by one up-sampling step)
            self.full = GBlock(arch.g_channels[-1], arch.g_full, 2 * W, arch.size, up=True, attn=False, text_width=W,
                               heads=arch.heads, depth=arch.g_depth)
            self.to_rgb = nn.Conv2d(arch.g_full, arch.channels, 3, 1, 1)
        else:  # the last up-sampling draws the image itself, without normalisation (DCGAN's output layer)
            self.full = None
            self.to_rgb = nn.ConvTranspose2d(arch.g_channels[-1], arch.channels, 4, 2, 1)

    def forward(self, z: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        tokens, mask = trim(tokens, mask)
        states, code = self.text(tokens, mask, pooled)  # (B, T', W), (B, W)
        zs = z.split(self.chunks, dim=1)
        w = self.mapping(torch.cat([zs[0], code], dim=1))  # (B, 2W)
        h = self.input(w).view(z.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
        for k, block in enumerate(self.blocks):
            style = torch.cat([w, zs[k]], dim=1) if k >= 1 and len(zs) > 1 else w  # block k's noise joins its style
            h = block(h, style, states, mask)  # (B, C_k, 4 * 2^k, 4 * 2^k)
        if self.full is not None:
            h = self.full(h, w, states, mask)  # (B, g_full, S, S)
        return torch.tanh(self.to_rgb(h))  # (B, C, S, S)


class DHead(nn.Module):
    """At one resolution: realism ``psi(phi)`` + text match (spatial projection and/or word-region attention)."""

    def __init__(self, channels: int, side: int, text_width: int, heads: int, words: bool):
        super().__init__()
        n = channels * side * side
        self.realism = nn.Linear(n, 1)  # psi over the whole map (position-aware, as DCGAN's last layer)
        self.project = nn.Linear(text_width, n, bias=False)
        # word -> region attention: every text token looks for its region of the image (AttnGAN's DAMSM, Xu et al.
        # 2018, Sec. 3.3); a word with no matching region scores low, so a named object cannot be left out
        self.words = CrossAttention(text_width, channels, heads) if words else None
        self.pos = nn.Parameter(torch.randn(side * side, channels) * 0.02) if self.words is not None else None

    def forward(self, h: torch.Tensor, states: torch.Tensor, mask: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        flat = h.flatten(1)  # (B, C*H*W)
        logit = self.realism(flat).squeeze(1)  # (B,)
        logit = logit + (self.project(code) * flat).sum(1)  # Miyato & Koyama (2018), Eq. 3: + <W c, phi(x)>
        if self.words is not None:  # + mean over the real tokens of <s_t, region context of word t>
            regions = h.flatten(2).transpose(1, 2) + self.pos  # (B, HW, C)
            everywhere = torch.ones(regions.shape[:2], dtype=torch.bool, device=h.device)  # (B, HW)
            context = self.words(states, regions, everywhere)  # (B, T, W)
            per_word = (states * context).sum(-1) * states.shape[-1] ** -0.5  # (B, T)
            m = mask.to(per_word.dtype)
            logit = logit + (per_word * m).sum(1) / m.sum(1).clamp_min(1)
        return logit


class AttnDiscriminator(nn.Module):
    """(x (B, C, S, S), text) -> logits (B, R), one per head resolution; ``features`` + ``heads`` separately."""

    def __init__(self, arch: AttnGANArch):
        super().__init__()
        arch.validate()
        self.arch = arch
        W = arch.text_width
        chans = arch.d_channels  # at S/2, S/4, ..., 4 px
        self.text = TextTransformer(arch.token_dim, arch.pooled_dim, arch.max_tokens, W, arch.text_layers, arch.heads)
        # strided 4x4 convolutions halve the side (DCGAN); no normalisation layers (R1 / spectral norm instead)
        # an optional stride-1 3x3 convolution first, so the first down-sampling sees edges, not raw pixels
        self.stem = nn.Conv2d(arch.channels, arch.d_full, 3, 1, 1) if arch.d_full else None
        self.from_rgb = nn.Conv2d(arch.d_full or arch.channels, chans[0], 4, 2, 1)
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1) for a, b in zip(chans[:-1], chans[1:]))
        # d_depth > 1: stride-1 3x3 convolutions after each down-sampling (empty lists otherwise: no new weights)
        self.extra = nn.ModuleList(nn.ModuleList(nn.Conv2d(c, c, 3, 1, 1) for _ in range(arch.d_depth - 1))
                                   for c in chans)
        sides = [arch.size // 2 ** (k + 1) for k in range(len(chans))]
        self.head_at = {s: k for k, s in enumerate(sides) if s in arch.d_heads}  # side -> trunk level
        self.heads_ = nn.ModuleDict({str(s): DHead(chans[k], s, W, arch.heads, s in arch.d_words)
                                     for s, k in self.head_at.items()})
        if arch.spectral_norm:
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear)) and not _in_text(self, m):
                    nn.utils.parametrizations.spectral_norm(m)

    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Trunk feature maps at the head resolutions: {side: (B, C_side, side, side)}."""
        if self.stem is not None:
            x = F.leaky_relu(self.stem(x), 0.2)  # (B, d_full, S, S)
        h = F.leaky_relu(self.from_rgb(x), 0.2)  # (B, C_0, S/2, S/2)
        out = {}
        for k, down in enumerate([None, *self.downs]):
            if down is not None:
                h = F.leaky_relu(down(h), 0.2)  # (B, C_k, S / 2^(k+1), S / 2^(k+1))
            for conv in self.extra[k]:
                h = F.leaky_relu(conv(h), 0.2)
            side = h.shape[-1]
            if side in self.head_at:
                out[side] = h
        return out

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """D's learned text states (B, T', W), their mask (B, T') and code (B, W)."""
        tokens, mask = trim(tokens, mask)
        states, code = self.text(tokens, mask, pooled)
        return states, mask, code

    def heads(self, feats: dict[int, torch.Tensor], text: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Logits (B, R) of the trunk features against encoded text (``encode_text``)."""
        states, mask, code = text
        return torch.stack([self.heads_[str(s)](h, states, mask, code) for s, h in feats.items()], dim=1)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        return self.heads(self.features(x), self.encode_text(tokens, mask, pooled))  # (B, R)


def _in_text(d: AttnDiscriminator, m: nn.Module) -> bool:
    return any(m is t for t in d.text.modules())


def build(arch: dict[str, Any] | AttnGANArch) -> tuple[AttnGenerator, AttnDiscriminator]:
    """G and D from a saved ``arch`` dict (or an ``AttnGANArch``)."""
    a = arch if isinstance(arch, AttnGANArch) else AttnGANArch(**arch)
    return AttnGenerator(a), AttnDiscriminator(a)


def arch_dict(arch: AttnGANArch) -> dict[str, Any]:
    return asdict(arch)


class AttnTextGANGenerator(Generator):
    """A ``tgan-attn`` model behind the generator contract: prompts + seed in, images out (one forward pass)."""

    family = "tgan-attn"
    conditioning = "text"
    chunk = 256  # images per forward pass (bounds memory; the images do not depend on it: G is in eval mode)

    # Copied from gan_baselines.tgan.TextGANGenerator, with token states (and the device) for the pooled embedding
    def __init__(self, net: AttnGenerator, encoder, config: dict[str, Any]):
        self.net, self.encoder, self.config = net, encoder, config
        self.latent_dim = config["arch"]["latent_dim"]

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net, "text_encoder": self.encoder}

    @torch.no_grad()
    def generate(self, prompts=None, labels=None, seed: int = 0, num_images_per_prompt: int = 1, **options: Any):
        self.resolve_options(**options)  # takes none: a clear error for any
        count = validate_request(prompts, labels, num_images_per_prompt, needs="text")
        text = self.encoder(list(prompts)).repeat_interleave(num_images_per_prompt).to(self.device)  # [a0, a1, b0, b1]
        z = seeded_noise(seed, count, num_images_per_prompt, (self.latent_dim,)).to(self.device)  # prompt i: seed + i
        images = []
        for i in range(0, len(z), self.chunk):
            part = slice(i, i + self.chunk)
            images += to_pil(self.net(z[part], text.tokens[part], text.mask[part], text.pooled[part]),
                             value_range=(-1.0, 1.0))
        return images

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "text_encoder": self.config["clip"], "size": self.config["arch"]["size"]}


def load_generator(folder: str | Path) -> AttnTextGANGenerator:
    """The registry's loader for ``family: tgan-attn`` folders (loads the text encoder its config names)."""
    from t2i.text import TextEncoder

    cfg = load_net_config(folder, "tgan-attn")
    net = AttnGenerator(AttnGANArch(**cfg["arch"]))
    net.load_state_dict(load_weights(folder))
    encoder = TextEncoder.from_pretrained(cfg["clip"])
    arch = cfg["arch"]
    if (encoder.token_dim, encoder.pooled_dim) != (arch["token_dim"], arch["pooled_dim"]):
        raise ValueError(f"{folder} was trained on a text encoder with {arch['token_dim']}-d token states and "
                         f"{arch['pooled_dim']}-d pooled embeddings, but {cfg['clip']!r} gives "
                         f"{encoder.token_dim}-d and {encoder.pooled_dim}-d ones: give it the CLIP it was trained on")
    return AttnTextGANGenerator(net.eval(), encoder, cfg)


def demo() -> None:
    arch = AttnGANArch(token_dim=16, pooled_dim=8, max_tokens=12)
    g, d = build(arch)
    tokens, pooled = torch.randn(4, 12, 16), torch.randn(4, 8)
    mask = torch.arange(12)[None, :] < torch.tensor([5, 7, 9, 12])[:, None]
    x = g(torch.randn(4, arch.latent_dim), tokens, mask, pooled)
    print(tuple(x.shape), tuple(d(x, tokens, mask, pooled).shape),
          sum(p.numel() for p in g.parameters()), "G params", sum(p.numel() for p in d.parameters()), "D params")

