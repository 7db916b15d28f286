"""What a saved model was trained on and with: the words of its training captions and its CLIP.

Text-conditional trainers (``t2i train ldm|tgan|tgan-attn|cvae``) write ``t2i_training.json`` into
the run folder (for latent diffusion the run folder is the pipeline folder)::

    {"data": "shapes", "clip": "shapes-clip", "base": null, "captions": 20000, "words": ["a", "above", ...],
     "apart": [["above", "in"], ["above", "large"], ...], "never_next": [["above", "blue"], ...]}

``clip`` is the text encoder the model reads prompts with (a built-in name as it is, a path made
absolute); ``base`` the model a fine-tune (``--init``, a LoRA) started from, whose words and CLIP it
inherits; ``words`` the sorted set of words (``words_of``) of every training caption, or null when
the captions cannot be listed up front (streamed WebDataset shards); ``apart`` the pairs of those words
that no caption holds together although the captions would join them often were the words independent
(``apart_pairs``): a prompt that joins them (shapes' sizes with a relation: its two-object captions carry
no sizes) asks for a scene the model was never shown, though each word is known; ``never_next`` the
ordered pairs never adjacent although they would often be (``never_next_pairs``): a prompt worded
otherwise ("cyan cross above yellow triangle", articles left out) is drawn worse by a model that learnt one
way of writing. For ``shapes`` all three are the caption grammar's (``t2i.data.shapes.vocabulary``,
``grammar_captions``, with the partial captions of ``--partial-captions`` for ``never_next``).

``trained_on(model)`` reads that record; for models saved before it existed it falls back to the
model's own ``config.json`` (GANs and VAEs record ``data`` and ``clip``/``text_encoder``; a run's
config records ``init``), follows a LoRA's ``t2i_lora.json`` and a distilled model's
``t2i_distill.json`` to their base, and knows nothing of a hub id. Nothing known means no
warning: ``unknown_words``, ``joined_apart`` and ``unseen_next`` are only asked when they are recorded.

    python -c "from t2i.provenance import *; print(joined_apart('small dot above', trained_on('shapes-ldm').apart))"
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

RECORD = "t2i_training.json"
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, any script
_BASE_FILES = (("t2i_lora.json", "base"), ("t2i_distill.json", "teacher"))  # fine-tunes that name their base
EVIDENCE = 20.0  # a pair of words counts as never shown when chance would show it this many times and none does
MAX_PAIR_WORDS = 2000  # the most frequent words whose pairs are counted (a word-by-word table of this side)


def words_of(text: str) -> list[str]:
    """The words of ``text``, lower-cased, in order: runs of letters and digits ("Cat's" -> "cat", "s")."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class TrainedOn:
    """What is recorded about a model's training; None where nothing is."""

    data: str | None = None  # the training data source ("shapes", a folder, ...)
    clip: str | None = None  # the CLIP (open_clip folder or built-in name) whose text tower the model reads
    words: frozenset[str] | None = None  # every word of its training captions (None: unknown, so no warnings)
    apart: frozenset[tuple[str, str]] | None = None  # pairs of them no caption joins (apart_pairs; None: unknown)
    never_next: frozenset[tuple[str, str]] | None = None  # (u, v): v never right after u (never_next_pairs)
    reworded: bool = False  # shapes, trained with --reworded-captions (its own run or its base's)
    reworded_scenes: str = "all"  # which of its captions were reworded (t2i.clip.negatives.REWORDED_SCENES)

    def describe(self) -> str:
        parts = [f"trained on `{self.data}`" if self.data else "training data not recorded",
                 f"text encoder from `{self.clip}`" if self.clip else "text encoder not recorded"]
        return ", ".join(parts)


def captions_of(dataset: Any) -> list[str] | None:
    """Every caption of every image of a training ``dataset``; None when they cannot be listed (a streamed one)."""
    from t2i.data import all_captions

    captions = all_captions(dataset)
    return None if captions is None else [str(c) for c in captions]


def caption_words(source: str, dataset: Any) -> frozenset[str] | None:
    """The words of every caption of a training ``dataset`` loaded from ``source``; None when its captions
    cannot be listed (a streamed dataset). Shapes: the caption grammar's words."""
    if str(source) == "shapes":
        from t2i.data.shapes import vocabulary

        return vocabulary()
    captions = captions_of(dataset)
    return None if captions is None else frozenset(w for caption in captions for w in words_of(caption))


def apart_pairs(captions: Sequence[str], evidence: float = EVIDENCE) -> frozenset[tuple[str, str]]:
    """The pairs of words (each pair in sorted order) that no caption holds together although, were the two
    independent, ``count(u) * count(v) / len(captions) >= evidence`` captions would: combinations the data never
    shows, not pairs too rare to have met (with 20 expected and none seen, chance is ruled out: e^-20). Counts are
    of captions holding a word. ``evidence=0``: every pair never joined (the captions of a grammar, enumerated)."""
    held = [frozenset(words_of(caption)) for caption in captions]
    counts = Counter(word for words in held for word in words)
    # count(u) * count(v) / n >= evidence needs count(u) >= evidence, as count(v) <= n
    frequent = [w for w, c in counts.most_common(MAX_PAIR_WORDS) if c >= evidence]
    if not held or len(frequent) < 2:
        return frozenset()
    from scipy import sparse

    column = {word: i for i, word in enumerate(frequent)}
    rows = [r for r, words in enumerate(held) for w in words if w in column]
    cols = [column[w] for words in held for w in words if w in column]
    has = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(held), len(frequent)))
    joined = (has.T @ has).toarray()  # captions holding both words
    count = np.array([counts[w] for w in frequent], np.float64)
    never = (joined == 0) & (np.outer(count, count) / len(held) >= evidence)
    return frozenset(tuple(sorted((frequent[i], frequent[j]))) for i, j in zip(*np.nonzero(never)) if i < j)


def never_next_pairs(captions: Sequence[str], evidence: float = EVIDENCE) -> frozenset[tuple[str, str]]:
    """The ordered pairs (u, v) such that v never comes right after u in a caption although, were the word after u
    drawn from all the captions' words, ``followed(u) * count(v) / words >= evidence`` would: how the captions are
    worded (shapes' "above a yellow ...", never "above yellow"), not pairs too rare to have met (the n-gram view of
    a language model; counts are of word occurrences). ``evidence=0``: every pair never adjacent (a grammar)."""
    texts = [words_of(caption) for caption in captions]
    count = Counter(word for words in texts for word in words)
    followed = Counter(word for words in texts for word in words[:-1])
    if not followed:
        return frozenset()
    total, most = sum(count.values()), followed.most_common(1)[0][1]
    firsts = [w for w, c in followed.most_common(MAX_PAIR_WORDS) if c >= evidence]
    seconds = [w for w, c in count.most_common(MAX_PAIR_WORDS) if c * most / total >= evidence]
    expected = np.outer([followed[w] for w in firsts], [count[w] for w in seconds]) / total
    often = {(firsts[i], seconds[j]) for i, j in zip(*np.nonzero(expected >= evidence))}
    for words in texts:
        often.difference_update(zip(words, words[1:]))  # seen side by side
    return frozenset(often)


# the pair statistics a record keeps (TrainedOn's fields): never in one caption, never one right after the other
PAIR_STATISTICS = {"apart": apart_pairs, "never_next": never_next_pairs}


@lru_cache(maxsize=3 * len(PAIR_STATISTICS))
def shapes_pairs(kind: str, reworded: bool = False, reworded_scenes: str = "all") -> frozenset[tuple[str, str]]:
    """``kind``'s pairs of the shapes captions: every caption of the grammar, enumerated (for ``never_next`` with
    their partial captions, which ``--partial-captions`` trains on, so that their wording is not warned of);
    ``reworded``: with their rewordings too (of ``reworded_scenes``' captions), for a model trained with
    ``--reworded-captions``."""
    from t2i.clip.negatives import partial_captions, reworded_captions
    from t2i.data.shapes import grammar_captions, parse_caption

    captions = grammar_captions()
    scenes = [{**parse_caption(caption), "caption": caption} for caption in captions]
    if kind == "never_next":
        captions += [partial for scene in scenes for partial in partial_captions(scene)]
    if reworded:
        captions += [text for scene in scenes for text in reworded_captions(scene, reworded_scenes)]
    return PAIR_STATISTICS[kind](captions, evidence=0)


def caption_pairs(kind: str, source: str, dataset: Any, base: str | None = None, reworded: bool = False,
                  reworded_scenes: str = "all") -> frozenset[tuple[str, str]] | None:
    """``kind``'s pairs (``PAIR_STATISTICS``) of a training ``dataset``'s captions (from ``source``; ``reworded``:
    shapes trained with ``--reworded-captions`` of ``reworded_scenes``); None when they cannot be listed. A fine-tune
    of ``base``: the base's pairs its own captions never show, and its own pairs with a word the base never saw (None
    when the base's are unknown)."""
    own = shapes_pairs(kind, reworded, reworded_scenes) if str(source) == "shapes" else None
    captions = None if own is not None else captions_of(dataset)
    if own is None and captions is None:
        return None
    own = own if own is not None else PAIR_STATISTICS[kind](captions)
    if not base:
        return own
    inherited = trained_on(base)
    base_pairs = getattr(inherited, kind)
    if base_pairs is None or inherited.words is None:
        return None
    if captions is None:  # shapes on a shapes base: the grammar's pairs are the base's
        return base_pairs & own
    in_pairs, shown = {w for pair in base_pairs for w in pair}, set()
    for caption in captions:
        words = words_of(caption)
        pairs = combinations(sorted(set(words) & in_pairs), 2) if kind == "apart" else zip(words, words[1:])
        shown.update(pair for pair in pairs if pair in base_pairs)
    return (base_pairs - shown) | {pair for pair in own if not set(pair) <= inherited.words}


def write_record(folder: str | Path, data: str, dataset: Any, clip: str | None = None,
                 base: str | None = None, reworded: bool = False, reworded_scenes: str = "all") -> Path:
    """Write ``folder/t2i_training.json`` for a model trained on ``dataset`` (from ``data``) with ``clip``
    (or fine-tuned from ``base``; ``reworded``: shapes with ``--reworded-captions`` of ``reworded_scenes``). Paths
    are written as ``t2i.builtin.reference`` gives them."""
    from t2i.builtin import reference

    words = caption_words(data, dataset)
    count = len(dataset) if hasattr(dataset, "__len__") else None
    record = {"data": str(data), "clip": reference(clip) if clip else None, "base": reference(base) if base else None,
              "captions": count, "words": sorted(words) if words is not None else None, "reworded": reworded,
              "reworded_scenes": reworded_scenes}
    for kind in PAIR_STATISTICS:
        pairs = caption_pairs(kind, data, dataset, base, reworded, reworded_scenes)
        record[kind] = sorted(list(pair) for pair in pairs) if pairs is not None else None
    path = Path(folder) / RECORD
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def record_places(path_or_name: str | Path) -> list[Path]:
    """The folders that may hold a model's records: the model folder, and the run folder above a ``model/``."""
    from t2i.builtin import resolve

    try:
        source = resolve(path_or_name, hub=True, what="model")
    except FileNotFoundError:
        return []
    if isinstance(source, str) or not source.is_dir():  # a hub id: nothing recorded here
        return []
    if (source / "model" / "config.json").is_file() and not (source / "model_index.json").is_file():
        source = source / "model"  # a training run folder
    return [source, source.parent] if source.name in ("model", "model_ba") else [source]


def trained_on(path_or_name: str | Path, _depth: int = 0) -> TrainedOn:
    """What is recorded about the training of the model at ``path_or_name`` (a folder, a run folder or a
    built-in name); ``TrainedOn()`` (all None) when nothing is."""
    places = record_places(path_or_name)
    if not places or _depth > 4:
        return TrainedOn()
    record = next((r for r in (read_json_object(p / RECORD) for p in places) if r), {})
    config: dict[str, Any] = {}
    for place in reversed(places):  # the model's own config over its run's
        config.update(read_json_object(place / "config.json"))
    base = record.get("base") if record else None
    if not record:  # older runs: a LoRA's or distilled model's base file, or the run's --init
        base = next((v for name, key in _BASE_FILES if (v := read_json_object(places[0] / name).get(key))), None)
        base = base or config.get("init") or None
    if isinstance(base, str):  # a built-in's name, read beside the model when installed together (--builtin-root)
        from t2i.builtin import BUILTIN

        beside = places[0].parent / base
        inherited = trained_on(beside if base in BUILTIN and beside.is_dir() else base, _depth + 1)
    else:
        inherited = TrainedOn()
    data = record.get("data") or config.get("data") or inherited.data
    # an older fine-tune's own --clip (a text encoder that replaced its base's) wins over the base's
    own_clip = config.get("clip") or config.get("text_encoder")
    clip = record.get("clip") or (own_clip if base and not record and config.get("init") else None) or inherited.clip \
        or (None if base else own_clip)
    if record:
        own = frozenset(record["words"]) if isinstance(record.get("words"), list) else None
    elif data == "shapes" and not base:
        from t2i.data.shapes import vocabulary

        own = vocabulary()
    else:
        own = None
    same = str(data) == str(inherited.data)  # a base's words on other data: unknown, no false alarm
    pairs: dict[str, frozenset[tuple[str, str]] | None] = {}
    for kind in PAIR_STATISTICS:
        if isinstance(record.get(kind), list):  # a fine-tune's record holds its base's pairs too (caption_pairs)
            pairs[kind] = frozenset(tuple(pair) for pair in record[kind])
        elif record or not base:  # a record from before pairs were recorded, or none: the grammar's, for shapes
            pairs[kind] = shapes_pairs(kind) if data == "shapes" and not base else None
        else:  # no record of its own (a distilled model, an older LoRA run): its base's, when on the base's data
            pairs[kind] = getattr(inherited, kind) if same else None
    if base and record:  # a fine-tune knows its base's words and its own
        words = own | inherited.words if own is not None and inherited.words is not None else None
    elif base:
        words = inherited.words if same else None
    else:
        words = own
    reworded = bool(record.get("reworded")) or (inherited.reworded and same)
    scenes = record.get("reworded_scenes", "all") if record.get("reworded") else inherited.reworded_scenes
    return TrainedOn(data=str(data) if data else None, clip=str(clip) if clip else None, words=words, **pairs,
                     reworded=reworded, reworded_scenes=scenes)


def unknown_words(prompt: str, words: Iterable[str] | None) -> list[str]:
    """The words of ``prompt`` (in order, once each) that none of the training captions held; [] when the
    training words are unknown (None): no record, no warning."""
    if words is None:
        return []
    known = set(words)
    found: list[str] = []
    for word in words_of(prompt):
        if word not in known and word not in found:
            found.append(word)
    return found


def joined_apart(prompt: str, apart: frozenset[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The pairs of ``prompt``'s words that no training caption joins (``apart_pairs``), in the prompt's order;
    [] when the pairs are unknown (None)."""
    if not apart:
        return []
    words = list(dict.fromkeys(words_of(prompt)))
    return [(u, v) for i, u in enumerate(words) for v in words[i + 1:] if tuple(sorted((u, v))) in apart]


def unseen_next(prompt: str, never_next: frozenset[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The pairs of adjacent words of ``prompt`` that no training caption has one right after the other
    (``never_next_pairs``), in the prompt's order, once each; [] when unknown (None)."""
    words = words_of(prompt)
    return list(dict.fromkeys(pair for pair in zip(words, words[1:]) if pair in never_next)) if never_next else []


def new_words_warning(base: str, source: str, dataset: Any, data: str | None = None) -> str | None:
    """For a fine-tune of ``base`` on ``dataset`` (from ``source``; ``data`` as the user gave it) that keeps the base's
    text encoder: one line when more than a quarter of its captions' words never occur in the base's training
    captions (the text encoder never learnt to tell them apart), naming the remedy; None otherwise, or when either
    side's words are not recorded."""
    trained = trained_on(base)
    words = caption_words(source, dataset)
    if trained.words is None or not words:
        return None
    new = sorted(words - trained.words, key=lambda w: (not w.isalpha(), w))  # words before numbers
    if len(new) <= len(words) / 4:
        return None
    shown = ", ".join(repr(w) for w in new[:6]) + (", ..." if len(new) > 6 else "")
    clip = f"--init {trained.clip} " if trained.clip else ""
    return (f"warning: {len(new)} of the {len(words)} words of these captions ({shown}) never occur in {base}'s "
            "training captions, so its text encoder was never trained to tell them apart and they will steer the "
            f"model little. Fine-tune a CLIP on them (`t2i train clip {clip}--data {data or source}`) and give it "
            "as --clip")


def outside_captions_warning(prompt: str, name: str, trained: TrainedOn, plural: bool = False) -> str | None:
    """One line for a prompt with words ``name``'s training captions never held, else with words they never join,
    else worded as they never are; None when none of these. ``plural``: ``name`` names several models ("a and b")."""
    data = f" ({trained.data})" if trained.data else ""
    it, its, was, knows = ("they", "their", "were", "know") if plural else ("it", "its", "was", "knows")
    unknown = unknown_words(prompt, trained.words)
    if unknown:
        shown = ", ".join(repr(w) for w in unknown[:8]) + (", ..." if len(unknown) > 8 else "")
        return (f"{name} never saw {shown} in {its} training captions{data}: {it} will draw what {it} {knows}, "
                "not what these words mean")
    pairs = joined_apart(prompt, trained.apart)
    if pairs:
        return (f"{name}'s training captions{data} never join {grouped(pairs)}: {it} {was} never shown such a scene "
                "and will likely draw it wrong; leave out one word of each pair")
    nexts = unseen_next(prompt, trained.never_next)
    if not nexts:
        return None
    shown = ", ".join(f"{v!r} right after {u!r}" for u, v in nexts[:3]) + (", ..." if len(nexts) > 3 else "")
    if trained.data == "shapes":
        from t2i.clip.negatives import REWORDINGS_OF
        from t2i.data.shapes import GRAMMAR

        shown += f" (they read {GRAMMAR}" + (f"; also {REWORDINGS_OF[trained.reworded_scenes]})" if trained.reworded
                                             else ")")
    return (f"{name}'s training captions{data} never put {shown}: {it} learnt their wording and will likely draw "
            "others wrong; word the prompt as they are")


def grouped(pairs: list[tuple[str, str]], most: int = 3) -> str:
    """Word pairs as "'a' with 'b' or 'c', nor 'd' with 'e'": the word in the most pairs first (the earlier on a tie),
    with all its partners, then the same for the pairs left; after ``most`` groups, "...". """
    order = {word: i for i, word in enumerate(dict.fromkeys(word for pair in pairs for word in pair))}
    left, groups = list(pairs), []
    while left:
        degree = Counter(word for pair in left for word in pair)
        head = min(degree, key=lambda word: (-degree[word], order[word]))
        partners = [repr(v if u == head else u) for u, v in left if head in (u, v)]
        left = [pair for pair in left if head not in pair]
        listed = ", ".join(partners[:-1]) + " or " + partners[-1] if len(partners) > 1 else partners[0]
        groups.append(f"{head!r} with {listed}")
    return ", nor ".join(groups[:most]) + (", ..." if len(groups) > most else "")
