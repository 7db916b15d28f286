"""The diffusion prior of unCLIP (Ramesh et al. 2022, Sec. 2.1): text -> CLIP image embedding.

A diffusers ``PriorTransformer`` (the model of unCLIP/Karlo and Kandinsky 2.x's prior) denoises
an image embedding ``x_t`` given the timestep, the pooled text embedding (``proj_embedding``)
and the text token states (``encoder_hidden_states`` with the padding ``attention_mask``). It
predicts the clean embedding ``x_0`` directly ("we find it better to predict the unnoised z_i
directly", Sec. 2.1) under a squared-cosine DDPM schedule, with an MSE loss.

Embedding space (one rule, everywhere; Kandinsky 2.2's, so that its stock prior pipeline runs this prior):
the CLIP embeddings as they leave the towers, not normalised (``CLIPVisionModelWithProjection``'s
``image_embeds``, ``CLIPTextModelWithProjection``'s ``text_embeds``, i.e. open_clip's ``encode_image`` /
``encode_text``). The image embedding is standardised per dimension by the training set's mean and std,
``x = (e - clip_mean) / clip_std``; the stats are stored in the model itself
(``PriorTransformer(clip_embed_dim=D)``'s ``clip_mean`` / ``clip_std``, frozen), so
``prior.post_process_latents(x)`` returns to CLIP space exactly as Kandinsky's prior pipeline does, and
the decoder (``t2i.unclip``) is trained on the same unnormalised image embeddings. Comparisons
(cosine, retrieval) normalise where they compare. The text conditions are CLIP's pooled text embedding
and its final-LayerNorm token states (``t2i.clip.text_states``).
Classifier-free guidance: the conditions of the empty caption
"" replace the caption's with probability ``cond_dropout`` in training (Kandinsky's negative prompt
is "" too); sampling mixes ``x0_uncond + w (x0_cond - x0_uncond)``.

    HF_HUB_OFFLINE=1 python -c "from t2i.prior.model import demo; demo()"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch
from diffusers import DDIMScheduler, PriorTransformer, UnCLIPScheduler
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

SAMPLERS = ("ddpm", "ddim")  # ddpm = UnCLIPScheduler (the saved scheduler; Kandinsky's prior sampler)
PriorSampler = Literal["ddpm", "ddim"]


def build_prior(embed_dim: int, num_tokens: int, layers: int = 4, heads: int = 4, head_dim: int = 32) -> PriorTransformer:
    """A ``PriorTransformer`` for CLIP embeddings of ``embed_dim`` and ``num_tokens`` text tokens of the same width.

    Sequence: ``num_tokens`` text states, the pooled text embedding, the timestep embedding, ``x_t`` and
    the learned "prd" query whose output is the prediction (``additional_embeddings=4``).
    """
    prior = PriorTransformer(num_attention_heads=heads, attention_head_dim=head_dim, num_layers=layers,
                             embedding_dim=embed_dim, num_embeddings=num_tokens, additional_embeddings=4,
                             clip_embed_dim=embed_dim)
    prior.clip_mean.data.zero_()
    prior.clip_std.data.fill_(1.0)  # identity until set_clip_stats
    freeze_stats(prior)
    return prior


def freeze_stats(prior: PriorTransformer) -> None:
    """``clip_mean``/``clip_std`` are nn.Parameters in diffusers; they are data statistics, never trained."""
    prior.clip_mean.requires_grad_(False)
    prior.clip_std.requires_grad_(False)


def set_clip_stats(prior: PriorTransformer, image_embeds: torch.Tensor) -> None:
    """Store the per-dimension mean and std of the training image embeddings ``(N, D)``."""
    e = image_embeds.float()
    prior.clip_mean.data.copy_(e.mean(0, keepdim=True))
    prior.clip_std.data.copy_(e.std(0, keepdim=True).clamp_min(1e-6))


def to_prior_space(prior: PriorTransformer, image_embeds: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings ``(B, D)`` -> the prior's standardised space ``(e - mean) / std``."""
    e = image_embeds.float()
    return (e - prior.clip_mean.to(e.device)) / prior.clip_std.to(e.device)


def training_scheduler(num_train_timesteps: int = 1000) -> UnCLIPScheduler:
    """The noise schedule (squared cosine, as unCLIP's prior) with x0 ("sample") prediction; clipping the x0
    estimate to +-10 standard deviations while sampling (Kandinsky 2.2's prior uses 10)."""
    return UnCLIPScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                           prediction_type="sample", clip_sample=True, clip_sample_range=10.0,
                           variance_type="fixed_small_log")


@dataclass
class TextConditions:
    """What the prior reads of a caption: pooled ``(B, D)`` (``encode_text``, not normalised), tokens ``(B, T, D)``, mask ``(B, T)`` bool."""

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor

    def __getitem__(self, index: Any) -> "TextConditions":
        return TextConditions(self.pooled[index], self.tokens[index], self.mask[index])

    def to(self, device: torch.device | str) -> "TextConditions":
        return TextConditions(self.pooled.to(device), self.tokens.to(device), self.mask.to(device))

    def __len__(self) -> int:
        return len(self.pooled)


@torch.no_grad()
def encode_captions(clip: Any, tokenizer: Any, texts: Sequence[str], device: torch.device | str = "cpu",
                    batch_size: int = 512) -> TextConditions:
    """The frozen CLIP's conditions for ``texts``; the mask marks tokens up to and including the end token."""
    from t2i.clip import text_states

    pooled, tokens, masks = [], [], []
    for i in range(0, len(texts), batch_size):
        ids = tokenizer(list(texts[i:i + batch_size])).to(device)  # (B, T)
        states, p = text_states(clip, ids)  # (B, T, D), (B, D)
        pooled.append(p.float().cpu())
        tokens.append(states.float().cpu())
        masks.append((ids != 0).cpu())  # open_clip pads with 0 after the end token
    return TextConditions(torch.cat(pooled), torch.cat(tokens), torch.cat(masks))


@torch.no_grad()
def embed_images(clip: Any, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """CLIP image embeddings ``(B, D)`` float32 on the CPU (``encode_image``, not normalised) of dataset images
    ``(B, C, S, S)`` in [0, 1]."""
    from t2i.clip import preprocess_images

    x = preprocess_images(clip, images.to(device))  # (B, 3, S', S')
    return clip.encode_image(x).float().cpu()  # (B, D)


@torch.no_grad()
def encode_images(clip: Any, images: Dataset | torch.Tensor, device: torch.device | str = "cpu",
                  batch_size: int = 256, progress: bool = True) -> tuple[torch.Tensor, list[str]]:
    """CLIP image embeddings ``(N, D)`` (``embed_images``; and the captions) of a dataset of ``{"image", "text"}`` items."""
    feats, texts = [], []
    for batch in tqdm(DataLoader(images, batch_size=batch_size, shuffle=False), desc="CLIP image embeddings",
                      disable=not progress, leave=False):
        feats.append(embed_images(clip, batch["image"], device))  # (B, D)
        texts.extend(batch["text"])
    return torch.cat(feats), texts


class EmbeddingCache(Dataset):
    """Items ``{"image_embed": (D,), "text_id": int}`` over a table of caption conditions whose last row is ""."""

    def __init__(self, image_embeds: torch.Tensor, text_ids: torch.Tensor, texts: list[str], conditions: TextConditions):
        self.image_embeds, self.text_ids, self.texts, self.conditions = image_embeds, text_ids, texts, conditions

    def __len__(self) -> int:
        return len(self.image_embeds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image_embed": self.image_embeds[i], "text_id": int(self.text_ids[i])}


@torch.no_grad()
def build_cache(clip: Any, tokenizer: Any, dataset: Dataset, device: torch.device | str = "cpu") -> EmbeddingCache:
    """Encode every image and every distinct caption (plus "") with the frozen CLIP, once."""
    embeds, texts = encode_images(clip, dataset, device)
    table: dict[str, int] = {}
    ids = torch.tensor([table.setdefault(t, len(table)) for t in texts])
    unique = list(table)
    cache = EmbeddingCache(embeds, ids, unique, encode_captions(clip, tokenizer, unique + [""], device))
    cache.report = getattr(dataset, "report", None)  # the bad-data report travels with the data
    return cache


def predict_x0(prior: PriorTransformer, x_t: torch.Tensor, t: torch.Tensor, cond: TextConditions) -> torch.Tensor:
    """The prior's clean-embedding estimate ``(B, D)`` for noisy ``x_t`` ``(B, D)`` at timesteps ``t`` ``(B,)``."""
    return prior(x_t, timestep=t, proj_embedding=cond.pooled, encoder_hidden_states=cond.tokens,
                 attention_mask=cond.mask).predicted_image_embedding


def prior_loss(prior: PriorTransformer, scheduler: UnCLIPScheduler, x0: torch.Tensor, cond: TextConditions,
               generator: torch.Generator) -> torch.Tensor:
    """Per-sample loss ``(B,)``: ``|| f(x_t, t, y) - x_0 ||^2`` averaged over dimensions (Ramesh et al. 2022, Sec. 2.1).

    ``x0`` ``(B, D)`` is in the prior's space (``to_prior_space``); ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``
    (Ho et al. 2020, Eq. 4) for ``t`` uniform; noise and ``t`` come from ``generator`` (CPU: reproducible, resumable).
    """
    b = x0.shape[0]
    eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)  # (B, D)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator).to(x0.device)
    x_t = scheduler.add_noise(x0, eps, t)  # (B, D)
    pred = predict_x0(prior, x_t, t, cond)  # (B, D)
    return (pred.float() - x0.float()).pow(2).mean(dim=1)


def drop_conditions(ids: torch.Tensor, p: float, empty_id: int, generator: torch.Generator) -> torch.Tensor:
    """Replace each caption id by ``empty_id`` (the "" row) with probability ``p`` (Ho & Salimans 2022)."""
    drop = torch.rand(len(ids), generator=generator) < p
    return torch.where(drop.to(ids.device), empty_id, ids)


@torch.no_grad()
def sample_prior(prior: PriorTransformer, scheduler: UnCLIPScheduler, cond: TextConditions, uncond: TextConditions,
                 num_inference_steps: int = 25, guidance_scale: float = 1.0, seed: int = 0,
                 sampler: PriorSampler = "ddpm") -> torch.Tensor:
    """CLIP image embeddings ``(B, D)`` (CLIP space, not normalised) for the captions of ``cond``; ``uncond`` is "" (one row).

    The same (conditions, seed, settings) give the same embeddings: all noise comes from one CPU
    generator seeded with ``seed``. Loop (Kandinsky's prior pipeline, made explicit):
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    if guidance_scale < 1:
        raise ValueError(f"guidance_scale must be >= 1 (1 = no guidance), got {guidance_scale}")
    device = prior.clip_mean.device
    b = len(cond)
    generator = torch.Generator().manual_seed(seed)
    if sampler == "ddim":
        scheduler = DDIMScheduler.from_config(scheduler.config, clip_sample=False, set_alpha_to_one=True)
    else:
        scheduler = UnCLIPScheduler.from_config(scheduler.config)  # a copy: set_timesteps mutates it
    scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps = scheduler.timesteps
    guided = guidance_scale > 1
    both = cond.to(device)
    if guided:  # classifier-free guidance by batch concatenation: [uncond; cond]
        u = uncond.to(device)
        both = TextConditions(torch.cat([u.pooled.expand(b, -1), both.pooled]),
                              torch.cat([u.tokens.expand(b, -1, -1), both.tokens]),
                              torch.cat([u.mask.expand(b, -1), both.mask]))
    # 1. x_T ~ N(0, I) in the prior's space
    x = torch.randn((b, prior.config.embedding_dim), generator=generator).to(device) * scheduler.init_noise_sigma
    for i, t in enumerate(timesteps):
        x_in = torch.cat([x, x]) if guided else x  # (2B or B, D)
        # 2. x0 estimate; guided: x0_u + w (x0_c - x0_u)
        x0 = predict_x0(prior, x_in, t.expand(len(x_in)), both)
        if guided:
            x0_u, x0_c = x0.chunk(2)
            x0 = x0_u + guidance_scale * (x0_c - x0_u)
        # 3. x_{t-1} from the posterior q(x_{t-1} | x_t, x0) (DDPM, Ho et al. 2020 Eq. 7) or DDIM (Song et al. 2021 Eq. 12)
        if sampler == "ddpm":
            prev = None if i + 1 == len(timesteps) else timesteps[i + 1]
            x = scheduler.step(x0, t, x, prev_timestep=prev, generator=generator).prev_sample
        else:
            x = scheduler.step(x0, t, x, eta=0.0).prev_sample
    # 4. back to CLIP space
    return prior.post_process_latents(x).float()


def tiny_prior(embed_dim: int = 8, num_tokens: int = 5, seed: int = 0) -> PriorTransformer:
    """A randomly initialised 1-layer prior for tests and demos."""
    torch.manual_seed(seed)
    prior = build_prior(embed_dim, num_tokens, layers=1, heads=2, head_dim=4)
    for p in prior.parameters():  # diffusers zero-initialises the prd/positional embeddings: make them count
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    return prior.eval()


def random_conditions(b: int, embed_dim: int = 8, num_tokens: int = 5, seed: int = 0) -> TextConditions:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, num_tokens, dtype=torch.bool)
    mask[:, -2:] = False  # two padding tokens
    return TextConditions(torch.randn(b, embed_dim, generator=g),
                          torch.randn(b, num_tokens, embed_dim, generator=g), mask)


def demo() -> None:
    prior, scheduler = tiny_prior(), training_scheduler()
    cond = random_conditions(3)
    loss = prior_loss(prior, scheduler, torch.randn(3, 8), cond, torch.Generator().manual_seed(0))
    e = sample_prior(prior, scheduler, cond, random_conditions(1, seed=1), num_inference_steps=4, guidance_scale=3)
    print(f"loss {loss.tolist()} sampled {tuple(e.shape)} norms {e.norm(dim=-1).tolist()}")
