"""Training pieces of latent diffusion: the per-sample loss and the latent/text caches.

The objective (Ho et al. 2020, Eq. 14; in latent space, Rombach et al. 2022, Eq. 2):
``x_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps`` for a uniform ``t``, and the UNet predicts
``eps`` ("epsilon") or ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) z_0`` ("v_prediction",
Salimans & Ho 2022, Sec. 4). Min-SNR-gamma (Hang et al. 2023, Eq. 9) weights each sample's
MSE by ``min(SNR(t), gamma) / SNR(t)`` for epsilon and ``min(SNR(t), gamma) / (SNR(t) + 1)``
for v, where ``SNR(t) = abar_t / (1 - abar_t)``.

Caches (an opt-in speed-up; ``benchmarks/diffusion_speed.py`` measures it): the VAE posterior
``(mean, std)`` of every image, so a fresh ``z_0 = mean + std * n`` is still drawn each time
(same objective as encoding on the fly), and the text states of every distinct caption. In memory, or
on disk (``--cache-dir``: memory-mapped, resumable, fingerprinted; ``t2i.diffusion.disk_cache``).

    HF_HUB_OFFLINE=1 python -c "from t2i.diffusion.training import demo; demo()"
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from diffusers import DDPMScheduler
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from t2i.data import spread_indices
from t2i.diffusion.disk_cache import build_latents, build_text_states, cache_fingerprint, open_cache_dir
from t2i.diffusion.pipeline import encode_text, warn_truncated


def snr(scheduler: DDPMScheduler, t: torch.Tensor) -> torch.Tensor:
    """SNR(t) = abar_t / (1 - abar_t), ``(B,)``."""
    abar = scheduler.alphas_cumprod.to(t.device)[t].float()
    return abar / (1 - abar)


def diffusion_loss(unet: Any, scheduler: DDPMScheduler, z0: torch.Tensor, cond: torch.Tensor | dict[str, Any],
                   generator: torch.Generator, snr_gamma: float = 0.0) -> torch.Tensor:
    """Per-sample denoising loss ``(B,)`` for scaled latents ``z0`` (B, C, h, w) and text states ``cond`` (B, T, D),
    or ``cond`` the UNet's conditioning keyword arguments (the unCLIP decoder's ``added_cond_kwargs``).

    Noise and timesteps come from ``generator`` (a CPU generator: reproducible and resumable). A UNet with
    more output channels than ``C`` (Kandinsky's layout: prediction, then variance) is scored on its first ``C``.
    """
    b = z0.shape[0]
    eps = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)  # (B, C, h, w)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator).to(z0.device)
    zt = scheduler.add_noise(z0, eps, t)  # sqrt(abar_t) z0 + sqrt(1 - abar_t) eps
    if scheduler.config.prediction_type == "epsilon":
        target = eps
    elif scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(z0, eps, t)  # v = sqrt(abar_t) eps - sqrt(1 - abar_t) z0
    else:
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {scheduler.config.prediction_type!r}")
    kwargs = cond if isinstance(cond, dict) else {"encoder_hidden_states": cond}
    pred = unet(zt, t, **kwargs).sample[:, :z0.shape[1]]  # (B, C, h, w)
    mse = (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))  # (B,)
    if snr_gamma > 0:  # Min-SNR-gamma weighting, Hang et al. 2023, Eq. 9
        s = snr(scheduler, t)
        weight = torch.clamp(s, max=snr_gamma) / (s if scheduler.config.prediction_type == "epsilon" else s + 1)
        mse = mse * weight
    return mse


def drop_captions(texts: Sequence[str], p: float, generator: torch.Generator) -> list[str]:
    """Replace each caption by "" with probability ``p`` (classifier-free guidance training, Ho & Salimans 2022)."""
    keep = torch.rand(len(texts), generator=generator) >= p
    return [t if k else "" for t, k in zip(texts, keep.tolist())]


def to_vae_input(images: torch.Tensor) -> torch.Tensor:
    """Dataset images (B, C, S, S) in [0, 1] -> (B, 3, S, S) in [-1, 1] (1-channel data repeated to RGB)."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images * 2 - 1


@torch.no_grad()
def reconstruct(vae: Any, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Posterior-mean reconstructions (B, 3, S, S) in [0, 1], rounded to 8 bits like a saved image, of ``images``
    (B, C, S, S) in [0, 1]: what a perfect latent model on this first stage would draw (Rombach et al. 2022, Sec. 3.1)."""
    device = next(vae.parameters()).device
    out = []
    for x in images.split(batch_size):
        x = to_vae_input(x.to(device))
        x_hat = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        out.append(((x_hat + 1) / 2 * 255).round().div(255).cpu())
    return torch.cat(out)


@torch.no_grad()
def reconstruction_psnr(vae: Any, dataset: Dataset, device: torch.device | str, n: int, spread: bool = False) -> float:
    """Mean PSNR (dB, images in [0, 1]) of posterior-mean reconstructions of the first ``n`` items (map-style or
    streamed datasets), or with ``spread`` of ``n`` items evenly spaced over a map-style dataset (a folder sorted
    by kind would otherwise be judged on its first kind alone)."""
    if hasattr(dataset, "__len__"):
        count = min(n, len(dataset))
        indices = spread_indices(len(dataset), count) if spread else range(count)
        items = torch.utils.data.Subset(dataset, indices)
    else:
        items = dataset
    psnrs: list[torch.Tensor] = []
    for batch in DataLoader(items, batch_size=min(n, 128)):
        x = to_vae_input(batch["image"][:n - sum(len(p) for p in psnrs)].to(device))
        x_hat = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        mse = ((x_hat - x) / 2).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)  # in [0, 1] units
        psnrs.append(-10 * torch.log10(mse))
        if sum(len(p) for p in psnrs) >= n:
            break
    if not psnrs:
        raise ValueError("cannot measure the first stage's reconstructions: the dataset is empty")
    return float(torch.cat(psnrs).mean())


def first_stage_warning(psnr: float, min_psnr: float, data: str) -> str | None:
    """The warning for a first stage that reconstructs the training data poorly (None when it is fine):
    a latent diffusion model cannot draw finer than its first stage reconstructs."""
    if psnr >= min_psnr:
        return None
    return (f"warning: the first stage reconstructs this data at {psnr:.1f} dB PSNR (< {min_psnr:g} dB): samples "
            f"cannot be sharper than its reconstructions. Train a first stage on it (`t2i train vae-kl --data {data}`) "
            f"and a diffusion model on that (`t2i train ldm --vae RUN --data {data}`)")


class CachedLatents(Dataset):
    """Items ``{"moments": (2C, h, w) posterior mean and std, "text_id": int}`` over a text table.

    With several captions per image (``caption_ids[i]`` lists them), each access draws one by the
    loader's own rule (``t2i.data.transforms.item_rng``: seed, epoch, index), so a cached run sees the
    same captions as an uncached one and resumes exactly."""

    def __init__(self, moments: torch.Tensor, text_ids: torch.Tensor, texts: list[str],
                 caption_ids: list[list[int]] | None = None, seed: int = 0):
        from t2i.data.transforms import item_rng  # the loaders' draw rule (imported once, not per item)

        self.moments, self.text_ids, self.texts = moments, text_ids, texts
        self.caption_ids, self.seed, self.epoch, self._item_rng = caption_ids, seed, 0, item_rng
        self.partial_ids: torch.Tensor | None = None  # (N, K) ids of true partial captions, -1 = none (add_partial_captions)
        self.reworded_ids: torch.Tensor | None = None  # (N, K) ids of the captions reworded (add_reworded_captions)
        self.extras: dict[str, torch.Tensor] = {}  # other per-item arrays (build_latent_cache's), not in the items

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.moments)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"moments": self.moments[i], "text_id": int(self.text_ids[i])}
        if self.caption_ids is not None and len(self.caption_ids[i]) > 1:
            choices = self.caption_ids[i]
            item["text_id"] = choices[self._item_rng(self.seed, self.epoch, i).randrange(len(choices))]
        if self.partial_ids is not None:
            item["partial_ids"] = self.partial_ids[i]
        if self.reworded_ids is not None:
            item["reworded_ids"] = self.reworded_ids[i]
        return item


def add_partial_captions(cached: CachedLatents, records: Sequence[dict[str, Any]]) -> int:
    """Give each one-object ``shapes`` scene of ``cached`` its partial captions (one of size,
    colour or position left out: ``t2i.clip.negatives.partial_captions``), appended to its text
    table; ``draw_partial`` then captions the scene by one of them. Returns how many scenes have them.

    Why: trained on full captions only, a model draws a held-out colour-shape pair as a seen pair
    of the same colour ("a small cyan circle" gave no circle in 30 images, small cyan squares; "a
    large cyan circle" 29 circles); with true captions that leave a word out, each named attribute has to
    act on its own, the same remedy as the CLIP's partial captions (``train/clip.py``). Measured in
    ``benchmarks/RESULTS.md``, "Partial captions"."""
    from t2i.clip.negatives import PARTIAL_DROPS, partial_captions

    table = {t: i for i, t in enumerate(cached.texts)}
    rows = []
    for record in records:
        ids = [table.setdefault(c, len(table)) for c in partial_captions(record)]
        rows.append(ids + [-1] * (len(PARTIAL_DROPS) - len(ids)))  # two-object scenes have none
    cached.texts = list(table)
    cached.partial_ids = torch.tensor(rows, dtype=torch.long)  # (N, 3)
    return int((cached.partial_ids[:, 0] >= 0).sum())


def add_reworded_captions(cached: CachedLatents, records: Sequence[dict[str, Any]]) -> int:
    """Give each ``shapes`` scene of ``cached`` its rewordings (``t2i.clip.negatives.reworded_captions``), appended to
    its text table; ``draw_captions`` then captions the scene by one of them. Returns how many captions were added to
    the table.

    Why: trained on one wording, the built-ins drew "cyan cross above yellow triangle" (articles left out) and
    two-object prompts with sizes about as well as a coin flip on the relation (``benchmarks/caption_form.py``)."""
    from t2i.clip.negatives import reworded_captions

    table = {t: i for i, t in enumerate(cached.texts)}
    before, rows = len(table), []
    for record in records:
        ids = [table.setdefault(c, len(table)) for c in reworded_captions(record)]
        rows.append(ids)
    width = max(map(len, rows))  # one-object scenes have one, two objects 3 (above, below) or 5 (left, right)
    cached.texts = list(table)
    cached.reworded_ids = torch.tensor([ids + [-1] * (width - len(ids)) for ids in rows], dtype=torch.long)  # (N, K)
    return len(table) - before


def caption_edits(dataset: Any, partial: float, reworded: float,
                  log: Callable[[str], None]) -> Callable[[CachedLatents], None] | None:
    """``build_caches``' ``edit`` for a trainer's ``--partial-captions P`` and ``--reworded-captions P`` on ``shapes``
    (``dataset.records``: its scene labels): ``add_partial_captions`` and ``add_reworded_captions``, each said in one
    line; None when both are 0."""
    if not partial and not reworded:
        return None

    def edit(cached: CachedLatents) -> None:
        if partial:
            log(f"partial captions: {add_partial_captions(cached, dataset.records)} one-object scenes, "
                f"each captioned by one with probability {partial}")
        if reworded:
            from t2i.clip.negatives import REWORDINGS

            log(f"reworded captions: {add_reworded_captions(cached, dataset.records)} captions ({REWORDINGS}), a scene "
                f"without a partial caption captioned by one with probability {reworded}")
    return edit


def draw_captions(batch: dict[str, torch.Tensor], partial: float, reworded: float,
                  generator: torch.Generator) -> torch.Tensor:
    """A cached batch's text ids ``(B,)`` as a trainer captions it: with probability ``partial`` by a partial caption
    (one-object shapes scenes), else with ``reworded`` by a rewording of the caption, else by the caption
    (``draw_partial`` for each; nothing drawn for an option at 0, so runs without them draw as before). A partial
    caption wins, so that a run sees as many as ``--partial-captions`` asks."""
    ids = batch["text_id"]
    if partial:
        ids = draw_partial(ids, batch["partial_ids"], partial, generator)
    if reworded:
        other = draw_partial(batch["text_id"], batch["reworded_ids"], reworded, generator)
        ids = torch.where(ids == batch["text_id"], other, ids)  # a scene still captioned by its caption
    return ids


def draw_partial(text_ids: torch.Tensor, partial_ids: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each text id, with probability ``p``, by one of the item's partial captions drawn
    uniformly (``partial_ids (B, K)``: the first ones >= 0, then -1 padding); ``text_ids (B,)``."""
    take = (torch.rand(len(text_ids), generator=generator) < p).to(text_ids.device)
    counts = (partial_ids >= 0).sum(1)  # (B,)
    pick = (torch.rand(len(text_ids), generator=generator).to(text_ids.device) * counts).long()
    chosen = partial_ids.gather(1, pick.clamp_max(partial_ids.shape[1] - 1)[:, None])[:, 0]
    return torch.where(take & (counts > 0), chosen, text_ids)


@torch.no_grad()
def encode_moments(vae: Any, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Posterior (mean, std) of dataset images ``(B, C, S, S)`` in [0, 1] -> float32 ``(B, 2C, h, w)`` on the CPU."""
    posterior = vae.encode(to_vae_input(images.to(device))).latent_dist
    return torch.cat([posterior.mean, posterior.std], dim=1).float().cpu()


def latents_in_memory(dataset: Dataset, encoders: dict[str, Callable[[torch.Tensor], torch.Tensor]],
                      batch_size: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[str]]:
    """Each encoder's array ``{name: (N, ...)}`` (``moments`` ``(N, 2C, h, w)``), caption ids ``(N,)`` (by first
    appearance) and the caption table, in memory (``t2i.diffusion.disk_cache.build_latents`` on disk)."""
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in encoders}
    texts, table = [], {}
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size, shuffle=False), desc="caching latents", unit="batch"):
        for name, encode in encoders.items():
            chunks[name].append(encode(batch["image"]))  # (B, ...)
        texts.extend(batch["text"])
    ids = torch.tensor([table.setdefault(t, len(table)) for t in texts])
    return {name: torch.cat(c) for name, c in chunks.items()}, ids, list(table)


@torch.no_grad()
def build_latent_cache(dataset: Dataset, vae: Any, device: torch.device, batch_size: int = 256,
                       folder: Path | None = None, log: Callable[[str], None] = print,
                       extras: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> CachedLatents:
    """Encode every image once: posterior (mean, std) as float32 ``(N, 2C, h, w)``; captions as ids
    (every caption of an image when it has several: one is drawn per access, as the loader would).
    In memory, or with ``folder`` (``t2i.diffusion.disk_cache.open_cache_dir``) in memory-mapped files there,
    resumed where an interrupted build stopped and reused once finished (``log`` says which).
    ``extras`` (name -> images ``(B, C, S, S)`` in [0, 1] -> float32 ``(B, ...)`` on the CPU) are encoded in the
    same pass and chunks, into ``cached.extras[name]`` (the unCLIP decoder's CLIP image embeddings).
    Refuses data whose images differ per access (random crops, flips): one copy would freeze them."""
    from t2i.data import random_choices

    choices = random_choices(dataset)
    varying = [v for v in choices if v != "several captions per image"]
    if varying:
        raise ValueError(f"a latent cache keeps one prepared copy of each image, but {' and '.join(varying)} change "
                         "it at every access; train without the cache (ldm: --cache false; distill always caches) "
                         "or without them")
    extras = dict(extras or {})
    if "moments" in extras:
        raise ValueError("'moments' is the VAE posterior's array: give the extra array another name")
    encoders = {"moments": functools.partial(encode_moments, vae, device=device), **extras}
    if folder is None:
        arrays, ids, texts = latents_in_memory(dataset, encoders, batch_size)
    else:
        arrays, ids, texts = build_latents(folder, dataset, encoders, batch_size, log)
    table = {t: i for i, t in enumerate(texts)}
    caption_ids = None
    augment = getattr(dataset, "augment", None)
    if "several captions per image" in choices:  # every caption of item i, in its list's order
        caption_ids = [[table.setdefault(c, len(table)) for c in captions] for captions in dataset.caption_lists]
    moments = arrays.pop("moments")  # (N, 2C, h, w); the extras are left
    cached = CachedLatents(moments, ids, list(table), caption_ids, seed=augment.seed if augment else 0)
    cached.extras = arrays
    cached.report = getattr(dataset, "report", None)  # the bad-data report travels with the data (run.dataloader prints it)
    return cached


@torch.no_grad()
def build_text_cache(texts: Sequence[str], tokenizer: Any, text_encoder: Any, device: torch.device,
                     batch_size: int = 256, folder: Path | None = None,
                     log: Callable[[str], None] = print) -> torch.Tensor:
    """Text states of each distinct caption, ``(U, T, D)``; row ``U`` (appended) is the empty prompt. In memory,
    or with ``folder`` (as ``build_latent_cache``) a float32 array mapped from disk: index it per batch."""
    rows = list(texts) + [""]
    warn_truncated(tokenizer, rows)  # once for all the captions, not per batch
    encode = functools.partial(encode_text, tokenizer, text_encoder, device=device, warn=False)
    if folder is not None:
        return build_text_states(folder, rows, encode, batch_size, log)
    chunks = [encode(rows[i:i + batch_size]).cpu()
              for i in tqdm(range(0, len(rows), batch_size), desc="caching text states", unit="batch")]
    return torch.cat(chunks)


@torch.no_grad()
def build_caches(run: Any, dataset: Dataset, source: str, data_options: dict[str, Any], vae: Any, text_encoder: Any,
                 tokenizer: Any, cache_dir: str = "",
                 edit: Callable[[CachedLatents], None] | None = None) -> tuple[CachedLatents, torch.Tensor]:
    """The latent cache and the text states ``(U+1, T, D)`` of a trainer's data (``ldm --cache``, ``distill``):
    in memory (the text states moved to ``run.device``), or with ``cache_dir`` in that folder (refused when it
    holds the cache of other data or models, ``t2i.diffusion.disk_cache``; the text states stay mapped on the CPU:
    index them per batch), built by the main process first. ``edit(cached)`` may add captions to the table
    before its text states are encoded (``add_partial_captions``)."""
    folder = None
    with run.main_process_first() if cache_dir else nullcontext():  # one process writes the folder
        if cache_dir:
            folder = open_cache_dir(cache_dir, cache_fingerprint(dataset, source, data_options, vae, text_encoder,
                                                                 tokenizer))
        cached = build_latent_cache(dataset, vae, run.device, folder=folder, log=run.print)
        if edit is not None:
            edit(cached)
        text_table = build_text_cache(cached.texts, tokenizer, text_encoder, run.device, folder=folder, log=run.print)
    return cached, text_table if folder is not None else text_table.to(run.device)


def sample_cached(moments: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """z ~ N(mean, std^2) from cached moments ``(B, 2C, h, w)`` -> ``(B, C, h, w)``."""
    mean, std = moments.chunk(2, dim=1)
    return mean + std * torch.randn(mean.shape, generator=generator).to(mean.device, mean.dtype)


def demo() -> None:
    from t2i.diffusion.testing import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    z0 = torch.randn(2, 4, 4, 4)
    cond = encode_text(pipe.tokenizer, pipe.text_encoder, ["a red circle", ""], "cpu")
    print(diffusion_loss(pipe.unet, pipe.scheduler, z0, cond, torch.Generator().manual_seed(0), snr_gamma=5.0))
