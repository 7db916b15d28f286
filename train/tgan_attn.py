"""Train the text GAN with cross-attention to CLIP tokens (t2i train tgan-attn).

G(z, text) attends to the CLIP token states and takes noise at every scale; D judges
realism and image-text match at several resolutions (``gan_baselines.tgan_attn``). Each
run step is:

1. **discriminator step** (matching-aware, GAN-CLS of Reed et al. 2016, Algorithm 1):
   (real image, its caption) is real; (G(z, caption), caption) and, with weight
   ``--mismatch-weight``, (real image, another item's caption) are fake. The real image's
   trunk features are computed once and scored against both captions. With
   ``--perturbed-negatives``, a share of the wrong captions are perturbations of the item's own
   caption (another colour or shape for one object, the objects swapped, the relation flipped;
   ``t2i.clip.negatives``), the hard negatives of NegCLIP (Yuksekgonul et al. 2023) used as D's
   mismatched pairs, so D has to check each object's words, not only the caption's gist. With
   ``--reworded-captions P`` (shapes) each caption, the item's own and its wrong one alike, is with probability P
   replaced by one of its rewordings, still true of it (``t2i.clip.negatives.reworded_captions``), so that prompts
   worded so are read alike and the wording says nothing about the match (one run of the built-in's recipe at 0.3
   learnt the one-object rewordings but lost two-object colours: ``benchmarks/RESULTS.md``); with
   ``--reworded-scenes one`` only one-object captions are reworded. With ``--partial-captions P`` (shapes) a
   one-object scene's own caption is with probability P one with its size, colour or position left out, still
   true ("a small circle in the top left"; ``t2i.clip.negatives.partial_captions``, shapes-ldm's remedy for held-out
   colour-shape pairs), so that each named attribute has to act on its own; a partial caption is not reworded
   and the wrong captions stay whole. With ``--full-stops P`` (any data) each caption, the item's own and its wrong
   one drawn apart, has with probability P its closing full stop toggled (added, or taken off where it has one:
   ``t2i.clip.negatives.toggled_full_stop``), after any rewording, so a prompt typed with one reads as without
   (one run of the built-in's recipe at 0.3 learnt the full stop but lost held-out colour-shape pairs). Every
   head's loss is averaged; with ``--augment`` real and generated images pass through the same kind of
   differentiable augmentation (DiffAugment, Zhao et al. 2020).
2. **R1 regulariser** every ``--r1-every`` steps (lazy, Karras et al. 2020):
   descend ``r1_every * gamma / 2 * ||grad_x D(x, caption)||^2`` on real pairs (Mescheder et al. 2018).
3. **pair critic step** with ``--pair-weight`` (``gan_baselines.pair_critic``, PacGAN of Lin et al. 2018 with two
   images per caption): a critic P sees two images for one caption together; two real items with the caption G is
   given (with ``--partial-captions``, any item it is true of) are real, G(z1, c) and G(z2, c) fake. Where a caption
   leaves an attribute out, real pairs differ in it, so a G that draws one value per caption is caught.
4. **generator step** every ``--d-steps`` steps: descend ``g(D(G(z, c), c))`` (``--loss``:
   ``non-saturating`` is ``softplus(-l)``, ``minimax`` is ``-softplus(l)``, ``hinge`` is ``-l``)
   plus ``--diversity-weight`` times the mode-seeking term of Mao et al. (2019) on pairs of
   samples of one caption with different z (against conditional mode collapse), plus
   optionally ``--clip-weight`` times 1 - cos(CLIP image embedding, caption embedding), plus ``--pair-weight`` times
   ``g(P(G(z1, c), G(z2, c), c))`` on two more images for each caption with real pairs.

The saved model is the EMA of G (``--ema-decay``). On shapes the run ends by judging one
image per ``--eval-n`` test prompts with the shapes evaluator (``OUT/eval.json``).

``--init BASE`` starts from another run instead of new networks: a tgan-attn run folder (its newest checkpoint: G,
D, their Adam states and G's EMA) or one of its checkpoint folders, or a saved model or built-in name (G, and D from
the ``discriminator.safetensors`` saved beside it; a model saved before that: D new). The base's architecture, image
size and text encoder are kept; every other option is this command's (give its training options again to change only
one), and the steps count from 0. So a run goes on under a changed option, or a GAN is fine-tuned on other captions.
On the base's own data the EMA goes on averaging (at this run's ``--ema-decay``); on other data it starts again from
G, as the base's average would hold the saved model at the old data for thousands of steps.

    t2i train tgan-attn --clip /tmp/tiny-clip --n 256 --steps 50 --out /tmp/tgan-attn
    t2i train tgan-attn --data shapes --clip shapes-clip --out runs/shapes-tgan-attn
    t2i train tgan-attn --preset px64 --data my_captions/ --clip my-clip --out runs/my-tgan-attn64   # 64 px networks
    t2i train tgan-attn --init runs/shapes-tgan-attn --full-stops 0.3 --steps 2000 --out runs/shapes-tgan-stops
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch

from gan_baselines import tgan_attn
from gan_baselines.caption_negatives import NearestCaptions
from gan_baselines.gan import load_net_config
from gan_baselines.gan_losses import game_stats, get_loss, mode_seeking
from gan_baselines.text_gan_losses import generator_loss, matching_aware_d_loss, r1_penalty
from gan_baselines.pair_critic import PairCritic, Partners
from gan_baselines.gan_training import (GANRunConfig, adam, d_augment, finish, millions, noise, save_samples,
                                         shown_network)
from gan_baselines.tgan import ClipSimilarity
from t2i.clip.negatives import (OBJECT_KINDS, RULE_KINDS, SHAPES_KINDS, object_replacements, partial_captions,
                                perturbations, REWORDED_SCENES, reworded_caption, toggled_full_stop)
from t2i.builtin import is_builtin, reference, resolve
from t2i.config import parse_config, presets_in
from t2i.data import all_captions, load_dataset, require_captions, shapes_options, training_options
from t2i.generator import generate_conditions
from t2i.io import load_weights, save_tensors_durably
from t2i.model_card import write_model_card
from t2i.provenance import write_record
from t2i.runtime import Run, RunConfig
from t2i.runtime import checkpoint as ckpt
from t2i.runtime.grids import grid_prompts
from t2i.text import TextEncoder, TextOutput

PRESETS = Path(__file__).resolve().parents[1] / "gan_baselines" / "presets" / "tgan_attn"  # px64, px128, px256
DISCRIMINATOR = "discriminator.safetensors"  # D's last weights beside the saved G (OUT/model), for --init fine-tunes


@dataclass
class AttnGANConfig(GANRunConfig):
    data: str = "shapes"  # captioned training data: shapes | a folder with metadata.jsonl | a .csv/.tsv | WebDataset shards
    clip: str = ""  # text encoder: a CLIP folder, a built-in name, or a transformers CLIP text model; "" = the --init base's, else shapes-clip
    init: str = ""  # start from this tgan-attn run (its newest checkpoint: G, D, their Adam states, G's EMA), checkpoint folder or saved model / built-in name (G and the D saved beside it); its architecture and size are kept; "" = new networks
    steps: int = 4000  # run steps (each one discriminator step; a generator step every d_steps of them)
    batch_size: int = 32  # real images per discriminator step (the generator step uses as many samples)
    loss: str = "hinge"  # objective: hinge | non-saturating | minimax | least-squares
    latent_dim: int = 64  # size of z ~ N(0, I), cut into one chunk per scale with noise_scales=all
    noise_scales: str = "all"  # where z enters G: all (the input and every up-sampling block) | input (the input only)
    text_width: int = 64  # width of the learned text transformer on top of the frozen CLIP states (G and D)
    text_layers: int = 1  # its layers (0 = a linear map of the CLIP states)
    g_channels: list[int] = field(default_factory=lambda: [128, 64, 32])  # G's channels at 4, 8, 16 px (32 px: RGB)
    g_attn: list[int] = field(default_factory=lambda: [4, 8])  # G resolutions that cross-attend to the tokens ("" = none)
    d_channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # D's channels at 16, 8, 4 px
    d_heads: list[int] = field(default_factory=lambda: [16, 8, 4])  # D resolutions with a realism + projection head (Miyato & Koyama 2018)
    d_words: list[int] = field(default_factory=lambda: [8, 4])  # d_heads that also score word -> region attention ("" = none)
    spectral_norm: bool = True  # spectral normalisation of D's layers (Miyato et al. 2018)
    g_full: int = 0  # channels of a G block at full resolution before a 3x3 RGB convolution (0 = the last up-sampling draws RGB)
    d_full: int = 0  # channels of a stride-1 3x3 convolution at full resolution at the start of D (0 = none)
    g_depth: int = 1  # convolutions per G resolution (1 = the up-sampling only; 2 adds a 3x3 one, as BigGAN / StyleGAN)
    d_depth: int = 1  # convolutions per D resolution (1 = the down-sampling only; 2 adds a stride-1 3x3 one)
    mismatch_weight: float = 0.5  # weight of (real image, wrong caption) in D's fake term (GAN-CLS: 1/2); 0 = off
    hard_negatives: float = 0.5  # share of wrong captions that are a nearest other caption (by CLIP embedding) instead of a random one
    hard_negatives_k: int = 6  # hard negatives are drawn among each caption's k nearest other captions
    perturbed_negatives: float = 0.0  # share of wrong captions that are a perturbation of the item's own caption (t2i.clip.negatives: shapes labels, else word-order rules); 0 = off
    perturbed_kinds: str = ""  # with --perturbed-negatives: comma-separated kinds to draw from ("" = every kind that applies)
    reworded_captions: float = 0.0  # shapes: probability that a caption G or D sees (its own, its wrong one: drawn apart) is one of its rewordings; 0 = off (0.3 lost two-object colours once)
    reworded_scenes: str = "all"  # with --reworded-captions: whose captions are reworded: all | one (one-object captions only)
    partial_captions: float = 0.0  # shapes: probability that a one-object scene's own caption is one with its size, colour or position left out (still true; G and D see it); 0 = off
    full_stops: float = 0.0  # probability that a caption G or D sees (its own, its wrong one: drawn apart) has its closing full stop toggled (added, or taken off where it has one); 0 = off (0.3 lost held-out pairs once)
    r1_gamma: float = 0.0  # R1 penalty weight gamma (Mescheder et al. 2018); 0 = off
    r1_every: int = 16  # apply R1 every N steps, scaled by N (lazy regularisation)
    diversity_weight: float = 0.05  # weight of the mode-seeking term (Mao et al. 2019); 0 = off
    clip_weight: float = 0.0  # weight of 1 - cos(CLIP(G(z, c)), CLIP(c)) in G's loss (needs the CLIP's image tower); 0 = off
    pair_weight: float = 0.0  # weight in G's loss of a critic judging two images drawn for one caption together (PacGAN-style: gan_baselines.pair_critic; needs items that share a caption, e.g. shapes); 0 = off
    ema_decay: float = 0.999  # EMA of the generator's weights (the saved model); 0 = off
    eval_n: int = 400  # shapes only: test-split prompts judged by the shapes evaluator at the end (eval.json); 0 = off
    p_two: float = 0.5  # shapes only: share of training scenes with two objects (the spec's default 0.5)

    # added after runs existed: at these values left out of the run identity, so older checkpoints stay resumable
    # (augment and augment_shift were tgan-attn options before every GAN had them: they stay in its identity)
    identity_defaults: ClassVar[dict[str, object]] = {**RunConfig.identity_defaults, "g_depth": 1, "d_depth": 1,
                                                      "reworded_captions": 0.0, "reworded_scenes": "all",
                                                      "partial_captions": 0.0, "full_stops": 0.0, "init": "",
                                                      "pair_weight": 0.0}

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.mismatch_weight <= 1.0:
            raise ValueError(f"mismatch_weight must be in [0, 1] (0 = a plain conditional D), got {self.mismatch_weight!r}")
        for key in ("r1_gamma", "diversity_weight", "clip_weight", "pair_weight"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0 (0 = off), got {getattr(self, key)!r}")
        if not 0.0 <= self.hard_negatives <= 1.0 or self.hard_negatives_k < 1:
            raise ValueError(f"hard_negatives must be in [0, 1] and hard_negatives_k >= 1, got {self.hard_negatives!r} "
                             f"and {self.hard_negatives_k!r}")
        if not 0.0 <= self.perturbed_negatives <= 1.0:
            raise ValueError(f"perturbed_negatives must be in [0, 1] (0 = off), got {self.perturbed_negatives!r}")
        if self.perturbed_negatives > 0 and self.mismatch_weight == 0:
            raise ValueError("perturbed_negatives replaces wrong captions, which mismatch_weight 0 leaves unused: "
                             "give --mismatch-weight > 0 or --perturbed-negatives 0")
        if not 0.0 <= self.reworded_captions <= 1.0:
            raise ValueError(f"reworded_captions must be in [0, 1] (0 = off), got {self.reworded_captions!r}")
        if self.reworded_scenes not in REWORDED_SCENES:
            raise ValueError(f"reworded_scenes must be one of {list(REWORDED_SCENES)}, got {self.reworded_scenes!r}")
        if self.reworded_captions > 0 and str(self.data) != "shapes":
            raise ValueError("reworded_captions rewords captions of the shapes grammar: use it with --data shapes")
        if not 0.0 <= self.partial_captions <= 1.0:
            raise ValueError(f"partial_captions must be in [0, 1] (0 = off), got {self.partial_captions!r}")
        if self.partial_captions > 0 and str(self.data) != "shapes":
            raise ValueError("partial_captions leaves words out of shapes scene labels: use it with --data shapes")
        if not 0.0 <= self.full_stops <= 1.0:
            raise ValueError(f"full_stops must be in [0, 1] (0 = off), got {self.full_stops!r}")
        allowed = SHAPES_KINDS + OBJECT_KINDS + RULE_KINDS
        unknown = [k for k in self.kinds() if k not in allowed]
        if unknown:
            raise ValueError(f"perturbed_kinds: unknown kind(s) {unknown}; choose from {list(allowed)}")
        if self.r1_every < 1:
            raise ValueError(f"r1_every must be >= 1, got {self.r1_every!r}")
        try:
            self.arch_for(token_dim=1, pooled_dim=1, max_tokens=1, channels=3).validate()  # resolutions, channels
        except ValueError as err:
            sized = sorted(presets_in(PRESETS))
            raise ValueError(f"{err} (the defaults are 32 px networks; --preset {' / '.join(sized)} sets the channel "
                             "lists and resolutions for those sizes)") from None

    def kinds(self) -> list[str]:
        return [k.strip() for k in self.perturbed_kinds.split(",") if k.strip()]

    def arch_for(self, token_dim: int, pooled_dim: int, max_tokens: int, channels: int) -> tgan_attn.AttnGANArch:
        """The networks' architecture for a text encoder of these sizes and images of ``channels``."""
        return tgan_attn.AttnGANArch(
            token_dim=token_dim, pooled_dim=pooled_dim, max_tokens=max_tokens, latent_dim=self.latent_dim,
            channels=channels, size=self.size, text_width=self.text_width, text_layers=self.text_layers,
            g_channels=list(self.g_channels), g_attn=list(self.g_attn), noise_scales=self.noise_scales,
            d_channels=list(self.d_channels), d_heads=list(self.d_heads), d_words=list(self.d_words),
            spectral_norm=self.spectral_norm, g_full=self.g_full, d_full=self.d_full, g_depth=self.g_depth,
            d_depth=self.d_depth)


ARCH_OPTIONS = ("size", "latent_dim", "noise_scales", "text_width", "text_layers", "g_channels", "g_attn", "d_channels",
                "d_heads", "d_words", "spectral_norm", "g_full", "d_full", "g_depth", "d_depth")  # what --init keeps


@dataclass
class Base:
    """The networks ``--init`` starts from."""

    source: Path  # the checkpoint or saved model folder they were read from
    trained: str  # the run or model folder (or built-in name) with its training record (t2i.provenance: its words)
    options: dict[str, Any]  # the base's ARCH_OPTIONS, its text encoder ("clip") and training data ("data")
    states: dict[str, Any]  # "model_0" (G), "model_1" (D) if saved; from a run also "optimizer_0" / "_1", "ema"


def load_base(init: str) -> Base:
    """``--init``: a tgan-attn run folder (its newest checkpoint, else its saved model), one of its checkpoint
    folders, or a saved tgan-attn model folder or built-in name (G is its weights, the EMA's; D the one saved
    beside it, else new)."""
    path = Path(resolve(init, what="--init base (a tgan-attn run, checkpoint or model)", hub=False))
    found = ckpt.read_latest(path / "checkpoints") if ckpt.step_dirs(path / "checkpoints") else None
    if found is None and ckpt.read_manifest(path) is not None:
        found = (*ckpt.read_checkpoint(path), path)
    if found is not None:
        _, states, folder = found
        identity = ckpt.identity_of_checkpoint(folder)
        if identity is None or identity.name != "tgan-attn":
            raise ValueError(f"--init {init}: {folder} is a checkpoint of a "
                             f"{identity.name if identity else 'unknown'} run; give a `t2i train tgan-attn` run")
        defaults = AttnGANConfig()  # options at their defaults are left out of a run's identity
        options = {k: identity.settings.get(k, getattr(defaults, k)) for k in (*ARCH_OPTIONS, "clip", "data")}
        run = next((p for p in folder.parents if (p / "checkpoints").is_dir()), folder)  # RUN/checkpoints/[earlier/]
        return Base(folder, str(run), {**options, "clip": options["clip"] or "shapes-clip"}, states)
    model = path / "model" if (path / "model" / "config.json").is_file() else path  # a finished run without checkpoints
    config = load_net_config(model, "tgan-attn")
    options = {**{k: config["arch"][k] for k in ARCH_OPTIONS}, "clip": config["clip"], "data": config.get("data", "")}
    states = {"model_0": load_weights(model)}
    if (model / DISCRIMINATOR).is_file():  # saved beside G since --init existed
        states["model_1"] = load_weights(model / DISCRIMINATOR)
    return Base(model, init if is_builtin(init) else str(model), options, states)


def start_from(base: Base, G: torch.nn.Module, D: torch.nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, cfg: AttnGANConfig) -> str:
    """Load the base into the new networks and optimisers (the run's own lr and betas kept); says what was loaded."""
    loaded = []
    for key, obj, what in (("model_0", G, "G"), ("model_1", D, "D"), ("optimizer_0", opt_g, "G's Adam"),
                           ("optimizer_1", opt_d, "D's Adam")):
        if key in base.states:
            try:
                obj.load_state_dict(base.states[key])
            except (RuntimeError, ValueError) as err:  # torch's first line names the module; a later one the tensor
                lines = [line.strip() for line in str(err).splitlines() if line.strip()]
                why = next((line for line in lines if line.startswith(("size mismatch", "Missing", "Unexpected"))),
                           lines[0])[:160]
                raise ValueError(f"--init {base.source}: its {what} does not fit this run's ({why}"
                                 f"); give its text encoder ({base.options['clip']}: leave --clip out) and data with "
                                 "as many image channels as its") from None
            loaded.append(what)
    for opt in (opt_g, opt_d):
        for group in opt.param_groups:
            group.update(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    return ", ".join(loaded)


class TokenCache:
    """Token states, masks and pooled embeddings of captions, computed once per caption (the encoder is frozen).

    Bounded: past ``max_items`` distinct captions (large user datasets) the cache starts over.
    """

    def __init__(self, encoder: TextEncoder, max_items: int = 50_000):
        self.encoder, self.max_items = encoder, max_items
        self.cache: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> TextOutput:
        new = sorted({t for t in texts if t not in self.cache})
        if new:
            if len(self.cache) + len(new) > self.max_items:
                self.cache.clear()
                new = sorted(set(texts))
            out = self.encoder(new)
            for i, t in enumerate(new):
                self.cache[t] = (out.tokens[i].float(), out.mask[i], out.pooled[i].float())
        tokens, mask, pooled = (torch.stack(parts) for parts in zip(*(self.cache[t] for t in texts)))
        return TextOutput(tokens, pooled, mask)  # (B, T, D), (B, P), (B, T)


def select(text: TextOutput, index: torch.Tensor) -> TextOutput:
    """Rows ``index`` of a batch of encoded text."""
    return TextOutput(text.tokens[index], text.pooled[index], text.mask[index])


def wrong_captions(texts: Sequence[str], pool: NearestCaptions | None, share: float,
                   generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """A wrong caption per item: the previous item's caption (GAN-CLS), or with probability ``share`` one of
    its nearest other captions (``pool``). Returns the captions and a mask (B,) true where they differ."""
    wrong = [texts[i - 1] for i in range(len(texts))]  # torch.roll by one
    if pool is not None and share > 0:
        hard = torch.rand(len(texts), generator=generator) < share
        wrong = [n if use and n is not None else w for w, n, use in zip(wrong, pool.sample(texts, generator), hard.tolist())]
    return wrong, torch.tensor([a != b for a, b in zip(texts, wrong)])


def perturbed_captions(texts: Sequence[str], records: Sequence[dict | None], share: float, kinds: Sequence[str],
                       keys: Sequence[str]) -> list[str | None]:
    """For each caption, with probability ``share``, one of its perturbations (among ``kinds``, all when empty), else
    None. A shapes scene record gives the structured kinds (``SHAPES_KINDS`` and ``OBJECT_KINDS``), a caption without
    one the word-order rules (``RULE_KINDS``). Drawn from ``random.Random(key)`` per item, so a resumed run or another
    split of the batch over processes draws the same."""
    out: list[str | None] = []
    for text, record, key in zip(texts, records, keys, strict=True):
        rng = random.Random(key)
        if rng.random() >= share:
            out.append(None)
            continue
        options = perturbations(text, record, "auto", rng)
        if record is not None and record.get("objects"):
            options.update(object_replacements(record, rng))
        choices = [v for k, v in options.items() if v is not None and (not kinds or k in kinds)]
        out.append(rng.choice(choices) if choices else None)
    return out


def reworded(texts: Sequence[str], share: float, keys: Sequence[str], scenes: str = "all") -> list[str]:
    """Each caption, with probability ``share``, replaced by one of its rewordings (``reworded_caption``; with
    ``scenes="one"`` one-object captions only), drawn from ``random.Random(key)`` per item like
    ``perturbed_captions``."""
    out = []
    for text, key in zip(texts, keys, strict=True):
        rng = random.Random(key)
        out.append(reworded_caption(text, rng, scenes) if rng.random() < share else text)
    return out


def full_stops(texts: Sequence[str], share: float, keys: Sequence[str]) -> list[str]:
    """Each caption, with probability ``share``, with its closing full stop toggled (``toggled_full_stop``), drawn
    from ``random.Random(key)`` per item like ``perturbed_captions``."""
    return [toggled_full_stop(text) if random.Random(key).random() < share else text
            for text, key in zip(texts, keys, strict=True)]


def partial(texts: Sequence[str], records: Sequence[dict], share: float, keys: Sequence[str]) -> list[str]:
    """Each one-object scene's caption, with probability ``share``, replaced by one of its partial captions (one of
    size, colour or position left out: ``t2i.clip.negatives.partial_captions``), drawn from ``random.Random(key)``
    per item like ``perturbed_captions``; two-object captions stay (leaving words out of them cost shapes-ldm
    accuracy everywhere: ``benchmarks/RESULTS.md``, "Partial captions")."""
    out = []
    for text, record, key in zip(texts, records, keys, strict=True):
        rng = random.Random(key)
        options = partial_captions(record) if rng.random() < share else []
        out.append(rng.choice(options) if options else text)
    return out


def pair_partners(dataset, records: Sequence[dict] | None, data: str) -> Partners:
    """``--pair-weight``: the items that share each caption (with ``records``, shapes scenes, also each partial
    caption); a ValueError naming the fix where none do (a user folder of one caption per image)."""
    captions = getattr(dataset, "captions", None)
    if captions is None:
        raise ValueError(f"--pair-weight needs the captions up front (shapes, a folder or a CSV); {data} is "
                         "streamed: use --pair-weight 0")
    partners = Partners(captions, (lambda i: partial_captions(records[i])) if records is not None else None)
    if partners.share() == 0:
        raise ValueError(f"--pair-weight: no two items of {data} share a caption, so the pair critic has no real "
                         "pairs to learn from: use --pair-weight 0")
    return partners


def pair_rows(partners: Partners, texts: Sequence[str], index: Sequence[int], keys: Sequence[str]) -> dict[int, int]:
    """Batch row -> another item with the caption the row is given (drawn from ``random.Random(key)``), for the rows
    whose caption has one."""
    drawn = (partners.draw(text, i, key) for text, i, key in zip(texts, index, keys, strict=True))
    return {row: j for row, j in enumerate(drawn) if j is not None}


def evaluate(generator: tgan_attn.AttnTextGANGenerator, n: int, size: int, seed: int) -> dict:
    """Shapes: prompt accuracy (colour, shape, size, position, relation) of one image per test-split prompt
    (prompt i from seed + i, as ``t2i sample --prompts FILE --seed SEED`` draws them)."""
    # Copied from train.tgan.evaluate (entry points do not import each other)
    from t2i.data.shapes import prompts as shapes_prompts
    from t2i.evaluators.shapes import prompt_accuracy

    captions = [caption for caption, _ in shapes_prompts(n, seed=seed, split="test", kind="any", size=size)]
    return prompt_accuracy(generate_conditions(generator, captions, seed=seed, n=1), captions)


def train(cfg: AttnGANConfig) -> Path:
    """Train the attention text GAN; returns the saved generator folder (``OUT/model``)."""
    base = load_base(cfg.init) if cfg.init else None
    if base is not None:  # the base's architecture and size; its text encoder unless --clip names another
        defaults = AttnGANConfig()
        given = [k for k in ARCH_OPTIONS if getattr(cfg, k) not in (getattr(defaults, k), base.options[k])]
        if given:
            raise ValueError(f"--init {cfg.init} keeps its architecture and size ("
                             f"{', '.join(f'{k} {base.options[k]}' for k in given)}): leave out "
                             f"{', '.join('--' + k.replace('_', '-') for k in given)} (or a --preset that sets them)")
        cfg = replace(cfg, **{k: base.options[k] for k in ARCH_OPTIONS}, clip=cfg.clip or base.options["clip"])
        cfg.validate()
    cfg = replace(cfg, clip=cfg.clip or "shapes-clip")
    run = Run(cfg, name="tgan-attn")
    dataset = load_dataset(cfg.data, split="train", size=cfg.size, n=cfg.n or None, seed=cfg.seed, strict=cfg.strict,
                           **training_options(cfg), **shapes_options(cfg.data, cfg.p_two))
    require_captions(dataset, "tgan-attn")
    encoder = TextEncoder.from_pretrained(cfg.clip, device=run.device)
    encoder.warn_truncated_captions(all_captions(dataset))
    embed = TokenCache(encoder)
    pool = None
    if cfg.hard_negatives > 0:
        if getattr(dataset, "captions", None) is None:
            raise ValueError(f"hard_negatives needs the captions up front (shapes, a folder or a CSV); {cfg.data} is "
                             "streamed: use --hard-negatives 0")
        pool = NearestCaptions(encoder, dataset.captions, cfg.hard_negatives_k, seed=cfg.seed)
    records = getattr(dataset, "records", None)  # shapes: scene labels, for the structured perturbations
    perturbed_kinds = cfg.kinds()
    arch = cfg.arch_for(encoder.token_dim, encoder.pooled_dim, encoder.max_length, dataset.channels)
    G, D = tgan_attn.build(arch)
    clip_sim = ClipSimilarity(cfg.clip).to(run.device) if cfg.clip_weight > 0 else None
    loss_fn = get_loss(cfg.loss)
    opt_g, opt_d = adam(G.parameters(), cfg), adam(D.parameters(), cfg)
    other_data = base is not None and base.options["data"] != cfg.data  # a fine-tune, not a continuation
    loaded = start_from(base, G, D, opt_g, opt_d, cfg) if base is not None else ""  # a resume loads its own over these
    G, D, opt_g, opt_d = run.prepare(G, D, opt_g, opt_d)
    ema = run.ema(G)
    if ema is not None and base is not None and "ema" in base.states and not other_data:
        ema.load_state_dict(base.states["ema"])  # goes on averaging; on other data it starts again from G
        ema.decay = cfg.ema_decay
        loaded += ", G's EMA"
    if base is not None:
        run.print(f"tgan-attn: --init {base.source}: {loaded}" + ("" if "model_1" in base.states else "; D new"))
    d_net = run.unwrap(D)  # features / encode_text / heads are called on the module itself
    partners, P, opt_p, critics = None, None, None, [D]  # critics: what G's loss must leave no gradients in
    if cfg.pair_weight > 0:  # the pair critic (new in every run, --init or not) and who can be its real pairs
        partners = pair_partners(dataset, records if cfg.partial_captions > 0 else None, cfg.data)
        P = PairCritic(dataset.channels, encoder.pooled_dim)
        P, opt_p = run.prepare(P, adam(P.parameters(), cfg))
        critics.append(P)
        run.print(f"tgan-attn: pair critic {millions(P)}; {partners.share():.0%} of the items share their caption")

    augment = d_augment(run, cfg)  # DiffAugment of D's inputs (--augment), else the identity
    config = {"family": "tgan-attn", "arch": tgan_attn.arch_dict(arch), "clip": reference(cfg.clip),
              "loss": cfg.loss, "d_steps": cfg.d_steps, "mismatch_weight": cfg.mismatch_weight, "r1_gamma": cfg.r1_gamma,
              "augment": list(cfg.augment), "diversity_weight": cfg.diversity_weight, "clip_weight": cfg.clip_weight,
              "data": cfg.data}
    shown = tgan_attn.AttnTextGANGenerator(shown_network(run, G, ema), encoder, config).to(run.device)
    prompts = grid_prompts("", cfg.data, dataset)  # fixed grid prompts, one row each
    if run.is_main:
        (run.out / "samples").mkdir(parents=True, exist_ok=True)
        (run.out / "samples" / "prompts.txt").write_text("\n".join(prompts) + "\n")
    run.print(f"tgan-attn: {tgan_attn.arch_dict(arch)} | text encoder {cfg.clip} | loss {cfg.loss} | "
              f"G {millions(G)}, D {millions(D)}")
    for step, batch in run.loop(run.dataloader(dataset)):
        x = batch["image"] * 2 - 1  # (b, C, S, S) in [-1, 1]
        texts = list(batch["text"])
        index = [int(i) for i in batch["index"]]
        wrong_texts, differs = wrong_captions(texts, pool, cfg.hard_negatives, run.generator)
        perturbed = None
        if cfg.perturbed_negatives > 0:  # drawn per (seed, step, item): the same after a resume
            perturbed = perturbed_captions(texts, [records[i] if records is not None else None for i in index],
                                           cfg.perturbed_negatives, perturbed_kinds, [f"{cfg.seed}|{step}|{i}" for i in index])
            wrong_texts = [p if p is not None else w for w, p in zip(wrong_texts, perturbed)]
            differs = torch.tensor([a != b for a, b in zip(texts, wrong_texts)])
        differs = differs.to(run.device)  # told apart on the captions as written, before any rewording
        if cfg.partial_captions > 0:  # the item's own caption only, drawn per (seed, step, item); not reworded below
            texts = partial(texts, [records[i] for i in index], cfg.partial_captions,
                            [f"{cfg.seed}|{step}|{i}|partial" for i in index])
        pairs = pair_rows(partners, texts, index, [f"{cfg.seed}|{step}|{i}|partner" for i in index]) if partners \
            else {}  # row -> an item with the caption G is given (before any rewording)
        if cfg.reworded_captions > 0:  # drawn per (seed, step, item) too, apart for the right and the wrong caption
            texts = reworded(texts, cfg.reworded_captions, [f"{cfg.seed}|{step}|{i}|right" for i in index],
                             cfg.reworded_scenes)
            wrong_texts = reworded(wrong_texts, cfg.reworded_captions, [f"{cfg.seed}|{step}|{i}|wrong" for i in index],
                                   cfg.reworded_scenes)
        if cfg.full_stops > 0:  # after the rewording; drawn apart for the right and the wrong caption, like it
            texts = full_stops(texts, cfg.full_stops, [f"{cfg.seed}|{step}|{i}|stop-right" for i in index])
            wrong_texts = full_stops(wrong_texts, cfg.full_stops, [f"{cfg.seed}|{step}|{i}|stop-wrong" for i in index])
        text = embed(texts).to(run.device)  # tokens (b, T, D), pooled (b, P), mask (b, T)
        b = x.shape[0]
        # discriminator step (GAN-CLS): real+caption is real; G(z, caption)+caption and real+wrong caption are fake
        with run.accumulate(D):
            with torch.no_grad():
                fake = G(noise(run, b, cfg.latent_dim), text.tokens, text.mask, text.pooled)  # (b, C, S, S)
            right = d_net.encode_text(text.tokens, text.mask, text.pooled)
            real_feats = d_net.features(augment(x))
            real_logits = d_net.heads(real_feats, right)  # (b, R)
            fake_logits = d_net.heads(d_net.features(augment(fake)), right)  # (b, R)
            wrong_logits = None
            if cfg.mismatch_weight > 0:
                wrong = embed(wrong_texts).to(run.device)
                wrong_logits = d_net.heads(real_feats, d_net.encode_text(wrong.tokens, wrong.mask, wrong.pooled))
                run.log(d_wrong=torch.sigmoid(wrong_logits[differs].mean(1)).mean() if differs.any() else 0.0)
                if perturbed is not None and any(p is not None for p in perturbed):  # D's belief in perturbed pairs
                    rows = torch.tensor([p is not None for p in perturbed], device=run.device)
                    run.log(d_perturbed=torch.sigmoid(wrong_logits[rows].mean(1)).mean())
            loss_d = matching_aware_d_loss(loss_fn, real_logits, fake_logits, wrong_logits, differs,
                                           cfg.mismatch_weight).mean()
            run.backward(loss_d)
            opt_d.step()
            opt_d.zero_grad()
        run.log(loss_d=loss_d, **game_stats(real_logits.mean(1), fake_logits.mean(1)))
        # R1 regulariser (lazy): descend r1_every * gamma / 2 * ||grad_x D(x, c)||^2 on real pairs
        if cfg.r1_gamma > 0 and step % cfg.r1_every == 0:
            with run.accumulate(D):
                real = augment(x).detach().requires_grad_(True)
                penalty = r1_penalty(D(real, text.tokens, text.mask, text.pooled), real)  # (b,)
                loss_r1 = (cfg.r1_every * cfg.r1_gamma / 2) * penalty.mean()
                run.backward(loss_r1)
                opt_d.step()
                opt_d.zero_grad()
            run.log(r1=penalty.mean())
        # pair critic step (PacGAN, Lin et al. 2018, m = 2): two real images with caption c are real, G(z1, c) and
        # G(z2, c) fake; descends d_real(P(x_i, x_j, c)) + d_fake(P(G(z1, c), G(z2, c), c))
        if pairs:
            rows = torch.tensor(list(pairs), device=run.device)
            partner = torch.stack([dataset[j]["image"] for j in pairs.values()]).to(run.device) * 2 - 1
            given = select(text, rows)  # the captions of the pairs' rows, (m, ...)
            with torch.no_grad():
                other = G(noise(run, len(rows), cfg.latent_dim), given.tokens, given.mask, given.pooled)  # (m, C, S, S)
            with run.accumulate(P):
                pair_real = P(x[rows], partner, given.pooled)  # (m, 1)
                pair_fake = P(fake[rows], other, given.pooled)  # (m, 1)
                loss_p = (loss_fn.d_real(pair_real) + loss_fn.d_fake(pair_fake)).mean()
                run.backward(loss_p)
                opt_p.step()
                opt_p.zero_grad()
            run.log(loss_pair=loss_p, pair_real=torch.sigmoid(pair_real).mean(),
                    pair_fake=torch.sigmoid(pair_fake).mean())
        # generator step, after every d_steps discriminator steps: descend g(D(G(z, c), c)) [+ mode seeking, CLIP,
        # + pair_weight * g(P(G(z1, c), G(z2, c), c))]
        # Copied from train.tgan's generator step, with token states for the pooled embedding and augmented D inputs
        if (step + 1) % cfg.d_steps == 0:
            for critic in critics:  # the generator loss must not leave gradients in D (or P)
                critic.requires_grad_(False)
            with run.accumulate(G):
                z, gen_text, h = noise(run, b, cfg.latent_dim), text, b // 2
                if cfg.diversity_weight > 0:  # items h..2h-1 repeat the captions of 0..h-1 with other noise
                    gen_text = select(text, torch.cat([torch.arange(h), torch.arange(h), torch.arange(2 * h, b)])
                                      .to(run.device))
                gen = G(z, gen_text.tokens, gen_text.mask, gen_text.pooled)  # (b, C, S, S)
                per_sample = generator_loss(loss_fn, D(augment(gen), gen_text.tokens, gen_text.mask, gen_text.pooled))
                if cfg.diversity_weight > 0:
                    ms = mode_seeking(gen[:h], gen[h:2 * h], z[:h], z[h:2 * h])  # (h,)
                    per_sample = per_sample + cfg.diversity_weight * torch.cat([ms, ms, ms.new_zeros(b - 2 * h)])
                    run.log(mode_seeking=ms.mean())
                if clip_sim is not None:
                    clip_term = clip_sim(gen, gen_text.pooled)  # (b,) 1 - cos
                    per_sample = per_sample + cfg.clip_weight * clip_term
                    run.log(clip_term=clip_term.mean())
                loss_g = per_sample.mean()
                if pairs:  # two more images for each caption with real pairs, judged together
                    given = select(text, torch.tensor(list(pairs), device=run.device))
                    first, second = (G(noise(run, len(pairs), cfg.latent_dim), given.tokens, given.mask, given.pooled)
                                     for _ in range(2))  # (m, C, S, S) each
                    pair_term = generator_loss(loss_fn, P(first, second, given.pooled))  # (m,)
                    loss_g = loss_g + cfg.pair_weight * pair_term.mean()
                    run.log(pair_g=pair_term.mean())
                run.backward(loss_g)
                opt_g.step()
                opt_g.zero_grad()
            for critic in critics:
                critic.requires_grad_(True)
            run.log(loss_g=loss_g)
        if run.should_sample() and step + 1 < cfg.steps:  # one row of 8 per prompt
            save_samples(run, shown, prompts, seed=cfg.seed + 1, n=8)
    save_samples(run, shown, prompts, seed=cfg.seed + 1, n=8)  # the saved model's grid
    final, model_dir = finish(run, G, ema, config, title=f"tgan-attn, {cfg.loss} loss (GAN-CLS)")
    if run.is_main:  # a fine-tune from this model starts with the D that judged it (a new D undoes G at first)
        save_tensors_durably(run.unwrap(D).state_dict(), model_dir / DISCRIMINATOR)
    if run.is_main:  # the words of its captions and its CLIP, for off-vocabulary warnings (t2i.provenance)
        write_record(run.out, cfg.data, dataset, clip=cfg.clip, base=base.trained if other_data else None,
                     reworded=bool(cfg.reworded_captions), reworded_scenes=cfg.reworded_scenes)
    if run.is_main and cfg.data == "shapes" and cfg.eval_n > 0:
        generator = tgan_attn.AttnTextGANGenerator(final.eval(), encoder, config).to(run.device)
        scores = evaluate(generator, cfg.eval_n, cfg.size, cfg.seed)
        (run.out / "eval.json").write_text(json.dumps(scores, indent=2) + "\n")
        one, two = scores.get("one", {}), scores.get("two", {})
        run.print(f"tgan-attn: one-object all correct {one.get('all_correct', float('nan')):.3f} (position "
                  f"{one.get('position', float('nan')):.3f}); two-object all correct "
                  f"{two.get('all_correct', float('nan')):.3f}; all prompts {scores['all_correct']:.3f} (eval.json)")
    if run.is_main:
        write_model_card(run.out)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(AttnGANConfig, argv, prog="t2i train tgan-attn", description=__doc__,
                       presets=presets_in(PRESETS))
    print(f"saved {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
