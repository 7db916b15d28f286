"""Train the text-conditional GAN on pooled CLIP text embeddings (t2i train tgan).

G(z, e) and D(x, e) with e the pooled embedding of ``--clip`` (``t2i.text.TextEncoder``:
our open_clip folders, the built-in ``shapes-clip``, or a transformers CLIP text model).
The discriminator is matching-aware (GAN-CLS, Reed et al. 2016, Algorithm 1): besides
(real image, its caption) as real and (generated image, caption) as fake, it sees (real
image, another item's caption) as fake, so it must judge whether image and text agree.
``--clip-weight`` > 0 adds the auxiliary term 1 - cos(CLIP image embedding of G(z, e), e)
to the generator loss (needs an open_clip model with its image tower); ``--diversity-weight``
> 0 adds the mode-seeking term of Mao et al. (2019) against conditional mode collapse (G
ignoring z and drawing one image per caption).

Captions are encoded once each and cached (the encoder is frozen). Logs D(x), D(G(z)),
both losses and V(G, D) (``OUT/game.png``), one grid row per fixed prompt in
``OUT/samples/`` (prompts in ``OUT/samples/prompts.txt``; the last grid is
``t2i sample --model OUT/model --prompts OUT/samples/prompts.txt --n 8 --seed SEED+1``), and saves the generator under
``OUT/model`` (family "tgan"; its config names the text encoder). On shapes it ends by
judging one image per ``--eval-n`` test-split prompts with the project's shapes evaluator
(``OUT/eval.json``: colour, shape, size, position and relation accuracies).

    t2i train tgan --clip /tmp/tiny-clip --n 256 --steps 50 --g-base 16 --d-base 16 --out /tmp/tgan
    t2i train tgan --data shapes --clip shapes-clip --steps 6000 --out runs/shapes-tgan
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from gan_baselines import tgan
from gan_baselines.gan_losses import game_stats, get_loss, mode_seeking
from gan_baselines.gan_training import (GANRunConfig, adam, d_augment, finish, millions, noise, save_samples,
                                         shown_network)
from t2i.builtin import reference
from t2i.config import parse_config
from t2i.data import all_captions, load_dataset, require_captions, training_options
from t2i.generator import generate_conditions
from t2i.model_card import write_model_card
from t2i.provenance import write_record
from t2i.runtime import Run
from t2i.runtime.grids import grid_prompts
from t2i.text import TextEncoder


@dataclass
class TGANConfig(GANRunConfig):
    data: str = "shapes"  # captioned training data: shapes | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards
    clip: str = "shapes-clip"  # text encoder: a CLIP folder, a built-in name, or a transformers CLIP text model
    steps: int = 6000  # run steps (each one discriminator step; a generator step every d_steps of them)
    batch_size: int = 64  # real images per discriminator step (the generator step uses as many samples)
    latent_dim: int = 64  # size of the noise z ~ N(0, I)
    cond_dim: int = 128  # size the text embedding is compressed to in G and D (Reed et al. 2016: 128)
    disc: str = "projection"  # discriminator conditioning: projection (Miyato & Koyama 2018) | concat (Reed et al. 2016)
    g_base: int = 32  # generator channels at the last up-sampling (doubled per layer towards 4x4)
    d_base: int = 32  # discriminator channels after the first convolution (doubled per layer)
    mismatch_weight: float = 0.5  # weight of (real image, wrong caption) in D's fake term (GAN-CLS: 1/2)
    clip_weight: float = 0.0  # weight of the auxiliary 1 - cos(CLIP(G(z, e)), e) generator term; 0 = off
    diversity_weight: float = 0.0  # weight of the mode-seeking term (Mao et al. 2019); 0 = off
    ema_decay: float = 0.999  # EMA of the generator's weights (the saved model); 0 = off
    eval_n: int = 400  # shapes only: test-split prompts judged by the shapes evaluator at the end (eval.json); 0 = off

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.mismatch_weight <= 1.0:
            raise ValueError(f"mismatch_weight must be in [0, 1] (0 = a plain conditional D), got {self.mismatch_weight!r}")
        if self.disc not in tgan.DISCRIMINATORS:
            raise ValueError(f"disc must be one of {list(tgan.DISCRIMINATORS)}, got {self.disc!r}")
        if self.clip_weight < 0 or self.diversity_weight < 0:
            raise ValueError(f"clip_weight and diversity_weight must be >= 0 (0 = off), got "
                             f"{self.clip_weight!r} and {self.diversity_weight!r}")


class CaptionCache:
    """Pooled embeddings of captions, computed once per distinct caption (the encoder is frozen).

    Bounded: past ``max_items`` distinct captions (large user datasets) the cache starts over.
    """

    def __init__(self, encoder: TextEncoder, max_items: int = 100_000):
        self.encoder, self.max_items = encoder, max_items
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        new = sorted({t for t in texts if t not in self.cache})
        if new:
            if len(self.cache) + len(new) > self.max_items:
                self.cache.clear()
                new = sorted(set(texts))
            for t, e in zip(new, self.encoder(new).pooled.float()):
                self.cache[t] = e
        return torch.stack([self.cache[t] for t in texts])  # (B, P)


def mismatched(texts: Sequence[str], e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each item paired with the next item's caption: (e_wrong (B, P), mask (B,) true where the captions differ)."""
    order = torch.roll(torch.arange(len(texts)), 1)
    mask = torch.tensor([texts[i] != texts[j] for i, j in enumerate(order.tolist())], device=e.device)
    return e[order.to(e.device)], mask


def evaluate(generator: tgan.TextGANGenerator, n: int, size: int, seed: int) -> dict:
    """Shapes: prompt accuracy (colour, shape, size, position, relation) of one image per test-split prompt
    (prompt i from seed + i, as ``t2i sample --prompts FILE --seed SEED`` draws them)."""
    from t2i.data.shapes import prompts as shapes_prompts
    from t2i.evaluators.shapes import prompt_accuracy

    captions = [caption for caption, _ in shapes_prompts(n, seed=seed, split="test", kind="any", size=size)]
    return prompt_accuracy(generate_conditions(generator, captions, seed=seed, n=1), captions)


def train(cfg: TGANConfig) -> Path:
    """Train the text-conditional GAN; returns the saved generator folder (``OUT/model``)."""
    run = Run(cfg, name="tgan")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg))
    require_captions(dataset, "tgan")
    encoder = TextEncoder.from_pretrained(cfg.clip, device=run.device)
    encoder.warn_truncated_captions(all_captions(dataset))
    embed = CaptionCache(encoder)
    arch = {"text_dim": encoder.pooled_dim, "latent_dim": cfg.latent_dim, "cond_dim": cfg.cond_dim,
            "channels": dataset.channels, "size": cfg.size, "g_base": cfg.g_base, "d_base": cfg.d_base,
            "disc": cfg.disc}
    G, D = tgan.build(arch)
    clip_sim = tgan.ClipSimilarity(cfg.clip).to(run.device) if cfg.clip_weight > 0 else None
    loss_fn = get_loss(cfg.loss)
    opt_g, opt_d = adam(G.parameters(), cfg), adam(D.parameters(), cfg)
    G, D, opt_g, opt_d = run.prepare(G, D, opt_g, opt_d)
    ema = run.ema(G)
    config = {"family": "tgan", "arch": arch, "clip": reference(cfg.clip), "loss": cfg.loss,
              "d_steps": cfg.d_steps, "mismatch_weight": cfg.mismatch_weight, "clip_weight": cfg.clip_weight,
              "data": cfg.data}
    shown = tgan.TextGANGenerator(shown_network(run, G, ema), encoder, config).to(run.device)
    prompts = grid_prompts("", cfg.data, dataset)  # fixed grid prompts, one row each
    if run.is_main:
        (run.out / "samples").mkdir(parents=True, exist_ok=True)
        (run.out / "samples" / "prompts.txt").write_text("\n".join(prompts) + "\n")
    run.print(f"tgan: {arch} | text encoder {cfg.clip} | loss {cfg.loss} | clip_weight {cfg.clip_weight} | "
              f"G {millions(G)}, D {millions(D)}")
    augment = d_augment(run, cfg)  # DiffAugment of D's inputs (--augment), else the identity
    for step, batch in run.loop(run.dataloader(dataset)):
        x = batch["image"] * 2 - 1  # (b, C, S, S) in [-1, 1]
        texts = list(batch["text"])
        e = embed(texts)  # (b, P)
        e_wrong, differs = mismatched(texts, e)  # (b, P), (b,)
        b = x.shape[0]
        # discriminator step (GAN-CLS): real+right caption is real; fake+right caption and real+wrong caption are fake
        with run.accumulate(D):
            with torch.no_grad():
                fake = G(noise(run, b, cfg.latent_dim), e)  # (b, C, S, S)
            real = augment(x)  # one draw for both of the real image's terms
            real_logits, fake_logits = D(real, e), D(augment(fake), e)  # (b,), (b,)
            wrong_logits = D(real, e_wrong)  # (b,)
            wrong = (loss_fn.d_fake(wrong_logits) * differs).sum() / differs.sum().clamp_min(1)
            loss_d = (loss_fn.d_real(real_logits).mean() + (1 - cfg.mismatch_weight) * loss_fn.d_fake(fake_logits).mean()
                      + cfg.mismatch_weight * wrong)
            run.backward(loss_d)
            opt_d.step()
            opt_d.zero_grad()
        run.log(loss_d=loss_d, d_wrong=torch.sigmoid(wrong_logits[differs]).mean() if differs.any() else 0.0,
                **game_stats(real_logits, fake_logits))
        # generator step, after every d_steps discriminator steps: descend g(D(G(z, e), e)) [+ CLIP, mode-seeking terms]
        if (step + 1) % cfg.d_steps == 0:
            D.requires_grad_(False)  # the generator loss must not leave gradients in D
            with run.accumulate(G):
                z, e_gen = noise(run, b, cfg.latent_dim), e
                h = b // 2
                if cfg.diversity_weight > 0:  # items h..2h-1 repeat the captions of 0..h-1 with other noise
                    e_gen = torch.cat([e[:h], e[:h], e[2 * h:]])
                gen = G(z, e_gen)  # (b, C, S, S)
                per_sample = loss_fn.g(D(augment(gen), e_gen))  # (b,)
                if cfg.diversity_weight > 0:
                    ms = mode_seeking(gen[:h], gen[h:2 * h], z[:h], z[h:2 * h])  # (h,)
                    per_sample = per_sample + cfg.diversity_weight * torch.cat([ms, ms, ms.new_zeros(b - 2 * h)])
                    run.log(mode_seeking=ms.mean())
                if clip_sim is not None:
                    clip_term = clip_sim(gen, e_gen)  # (b,) 1 - cos
                    per_sample = per_sample + cfg.clip_weight * clip_term
                    run.log(clip_term=clip_term.mean())
                loss_g = per_sample.mean()
                run.backward(loss_g)
                opt_g.step()
                opt_g.zero_grad()
            D.requires_grad_(True)
            run.log(loss_g=loss_g)
        if run.should_sample() and step + 1 < cfg.steps:  # one row of 8 per prompt
            save_samples(run, shown, prompts, seed=cfg.seed + 1, n=8)
    save_samples(run, shown, prompts, seed=cfg.seed + 1, n=8)  # the saved model's grid
    final, model_dir = finish(run, G, ema, config, title=f"tgan, {cfg.loss} loss (GAN-CLS)")
    if run.is_main:  # the words of its captions and its CLIP, for off-vocabulary warnings (t2i.provenance)
        write_record(run.out, cfg.data, dataset, clip=cfg.clip)
    if run.is_main and cfg.data == "shapes" and cfg.eval_n > 0:
        generator = tgan.TextGANGenerator(final.eval(), encoder, config).to(run.device)
        scores = evaluate(generator, cfg.eval_n, cfg.size, cfg.seed)
        (run.out / "eval.json").write_text(json.dumps(scores, indent=2) + "\n")
        one = scores.get("one", {})
        run.print(f"tgan: one-object prompts: colour {one.get('colour', float('nan')):.3f}, shape "
                  f"{one.get('shape', float('nan')):.3f}, all correct {one.get('all_correct', float('nan')):.3f}; "
                  f"all prompts correct {scores['all_correct']:.3f} (eval.json)")
    if run.is_main:
        write_model_card(run.out)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(TGANConfig, argv, prog="t2i train tgan", description=__doc__)
    print(f"saved {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
