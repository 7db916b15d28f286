"""Hard negative captions for a matching-aware discriminator: each caption's nearest other captions.

GAN-CLS (Reed et al. 2016) shows D a real image with a *random* other caption as a fake
pair. Random captions usually differ in everything, so D can reject them on the easiest
cue (colour) and never learns to check the rest (position, size, which object is on top).
A nearest neighbour in the text encoder's embedding space differs in little: on `shapes`
typically one word ("top left" -> "top right") or, with a bag-of-words CLIP, only the word
order ("a red circle above a blue square" <-> "a blue square above a red circle"). This is
hard-negative mining in the spirit of NegCLIP's nearest-neighbour negatives (Yuksekgonul et
al. 2023) and of XMC-GAN's contrastive pairs (Zhang et al. 2021), without rules about the
language: it works on any captioned data whose captions are known up front.

``NearestCaptions(encoder, captions, k)`` embeds the distinct captions once (pooled
embedding, cosine similarity) and keeps each one's ``k`` nearest *different* captions;
``sample(texts, generator)`` draws one of them per caption (None for a caption it has not
seen).

    python -c "from gan_baselines.caption_negatives import demo; demo()"
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

MAX_CAPTIONS = 20_000  # distinct captions kept (a seeded subset beyond this)


class NearestCaptions:
    """The ``k`` nearest other captions of every distinct caption, by cosine of pooled text embeddings."""

    def __init__(self, encoder, captions: Sequence[str], k: int = 4, chunk: int = 1024, seed: int = 0):
        distinct = sorted(set(captions))
        if len(distinct) < 2:
            raise ValueError(f"hard negatives need at least 2 distinct captions, got {len(distinct)}")
        if len(distinct) > MAX_CAPTIONS:
            keep = torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed))[:MAX_CAPTIONS]
            distinct = [distinct[i] for i in sorted(keep.tolist())]
        self.captions = distinct
        self.index = {c: i for i, c in enumerate(distinct)}
        with torch.no_grad():
            emb = torch.cat([encoder(distinct[i:i + chunk]).pooled.float().cpu() for i in range(0, len(distinct), chunk)])
        emb = F.normalize(emb, dim=-1)  # (N, P)
        self.k = min(k, len(distinct) - 1)
        rows = []
        for i in range(0, len(distinct), chunk):
            sim = emb[i:i + chunk] @ emb.T  # (c, N) cosine similarities
            sim[torch.arange(sim.shape[0]), torch.arange(i, i + sim.shape[0])] = -float("inf")  # never itself
            rows.append(sim.topk(self.k, dim=1).indices)  # (c, k)
        self.neighbours = torch.cat(rows)  # (N, k) indices into self.captions

    def sample(self, texts: Sequence[str], generator: torch.Generator | None = None) -> list[str | None]:
        """One of the ``k`` nearest other captions of each text (None where the text is not in the pool)."""
        picks = torch.randint(0, self.k, (len(texts),), generator=generator).tolist()
        out: list[str | None] = []
        for text, pick in zip(texts, picks):
            i = self.index.get(text)
            out.append(None if i is None else self.captions[int(self.neighbours[i, pick])])
        return out


def demo() -> None:
    from t2i.text import TextEncoder

    from t2i.data.shapes import make_scenes

    captions = [r["caption"] for r in make_scenes(2000, seed=0)]
    pool = NearestCaptions(TextEncoder.from_pretrained("shapes-clip"), captions, k=4)
    for text in captions[:6]:
        print(f"{text!r:45} -> {[pool.captions[int(j)] for j in pool.neighbours[pool.index[text]]]}")
