"""Hard-negative captions: perturbations that keep a caption's words but change what it says.

Contrastive image-text models trained on ordinary batches rarely need word order to tell
captions apart, so they learn bags of words: "a blue square above a yellow triangle" and
"a yellow triangle above a blue square" get the same score (Yuksekgonul et al., ICLR 2023,
"When and why vision-language models behave like bags-of-words, and what to do about it").
Their remedy, NegCLIP, adds to each batch word-order perturbations of its captions as extra
negative texts (``t2i.clip.loss.NegClipLoss``); the same perturbations measure order
sensitivity (``t2i.clip.order``). Two perturbers:

**Structured (``shapes``)**, exact because the scene's labels are known
(``shared/specs/shapes.md``). Two-object scenes ``a {A} {rel} a {B}``:
- ``swap_objects``: ``a {B} {rel} a {A}``;
- ``flip_relation``: ``a {A} {opposite rel} a {B}``;
- ``swap_colours`` / ``swap_shapes``: the two objects exchange colour / shape (only when they
  differ). Swapping the objects *and* flipping the relation gives a true caption again, so it
  is never produced.
One-object scenes ``a {size} {colour} {shape} in the {position}`` have no word order to get
wrong; ``replace_colour``, ``replace_shape``, ``replace_size`` and ``replace_position`` put
another value of one attribute in (drawn with the caller's ``random.Random``). A partial
caption (``partial_scene``: "a red circle") gets replacements of the attributes it names.
``object_replacements`` does the same to one object of a two-object scene
(``replace_object_colour``, ``replace_object_shape``, ``OBJECT_KINDS``), never introducing a held-out
colour-shape pair into a scene that has none, nor making the two objects alike.

**Hard-negative images (``shapes``).** ``swapped_scene(record)`` is the same two objects with
their places exchanged: the scene of the ``swap_objects`` caption, drawn, so a batch can hold
both an image and its mirror-role twin (NegCLIP's hard-negative images are nearest neighbours;
on synthetic data the exact counterpart is available).

**Rule-based (any caption)**. Words are split into noun phrases: a determiner (``a``, ``an``,
``the``, numbers, possessives, ...; ``DETERMINERS``) followed by the words up to the next
boundary (a relation, conjunction, verb-like word or punctuation; ``BOUNDARIES``). The last
word of a phrase is its noun, the words between determiner and noun its modifiers. Rules:
1. ``swap_noun_phrases``: the phrases right before and right after the first *asymmetric*
   relation (``RELATIONS``: above, below, on top of, to the left of, behind, on, in, ...)
   change places: "a cat on a mat" -> "a mat on a cat". Symmetric links (and, with, next to,
   near, beside) are left alone: swapping around them keeps the meaning.
2. ``swap_modifiers``: the first two phrases that both have modifiers, and different ones,
   exchange them: "a red car and a blue bus" -> "a blue car and a red bus".
3. ``swap_nouns``: the first two phrases with different nouns, at least one of them with
   modifiers, exchange their nouns: "a red car and a blue bus" -> "a red bus and a blue car".
   (Without modifiers this is rule 1, which around a symmetric link keeps the meaning:
   "a cat next to a dog".)
4. ``shuffle``: all words in a random order different from the original.
A rule that does not apply, or whose result equals the caption, gives no negative (``None``):
a one-phrase caption has no swaps, "a red cube and a red cube" none at all.

    python -c "from t2i.clip.negatives import demo; demo()"
"""

from __future__ import annotations

import copy
import random
import re
from typing import Any, Sequence

from t2i.data import shapes as vocab

SHAPES_KINDS: tuple[str, ...] = ("swap_objects", "flip_relation", "swap_colours", "swap_shapes",
                                 "replace_colour", "replace_shape", "replace_size", "replace_position")
# two-object scenes: one object (drawn) gets another colour / shape. Kept out of SHAPES_KINDS (the CLIP recipes draw
# among those); the text GAN's discriminator takes them as wrong captions (train/tgan_attn.py --perturbed-negatives)
OBJECT_KINDS: tuple[str, ...] = ("replace_object_colour", "replace_object_shape")
RULE_KINDS: tuple[str, ...] = ("swap_noun_phrases", "swap_modifiers", "swap_nouns", "shuffle")
PARTIAL_DROPS: tuple[str, ...] = ("size", "colour", "position")  # what a partial caption leaves out (one of them)
ARTICLE = re.compile(r"\b(a|the) ")  # what a reworded caption leaves out (reworded_captions)
# reworded_captions, in words (the wording hint of a model trained on them)
REWORDINGS = "without the articles, with 'small' before each of two objects, 'right of' for 'to the right of'"
REWORDED_SCENES = {"all": 2, "one": 1}  # which captions a --reworded-captions run rewords: the most objects they name
REWORDINGS_OF = {"all": REWORDINGS, "one": "one object without the articles"}  # what each choice rewords, for hints
PERTURBERS: tuple[str, ...] = ("off", "shapes", "rules", "auto")  # what `t2i train clip --hard-negatives` takes
OPPOSITE: dict[str, str] = {"above": "below", "below": "above",
                            "to the left of": "to the right of", "to the right of": "to the left of"}

DETERMINERS = frozenset(
    "a an the one two three four five six seven eight nine ten some several many this that these those "
    "his her its their my your our another each every".split())
# asymmetric relations, longest first when matched: "A rel B" and "B rel A" say different things
RELATIONS: tuple[str, ...] = tuple(sorted((
    "above", "below", "under", "underneath", "beneath", "over", "on top of", "on", "in", "inside", "behind",
    "in front of", "to the left of", "to the right of", "on the left of", "on the right of", "left of",
    "right of", "holding", "wearing", "riding", "carrying", "chasing", "eating", "pulling", "pushing",
), key=lambda r: -len(r.split())))
# words that end a noun phrase besides relations and determiners: symmetric links, verbs, other prepositions
BOUNDARIES = frozenset(
    "and or but with next to near beside by at of from for into onto towards toward against between among "
    "around along across through while is are was were be being been has have had sits sitting stands "
    "standing lies lying looks looking that which who".split())
_TOKEN = re.compile(r"\w+(?:['-]\w+)*|[^\w\s]")


# --- structured: shapes ------------------------------------------------------------------
def _two(a: tuple[str, str], relation: str, b: tuple[str, str]) -> str:
    return f"a {a[0]} {a[1]} {relation} a {b[0]} {b[1]}"


def _other(rng: random.Random, values: Sequence[str], current: str) -> str:
    return rng.choice([v for v in values if v != current])


def shapes_negatives(record: dict[str, Any], rng: random.Random | None = None) -> dict[str, str | None]:
    """Every ``SHAPES_KINDS`` perturbation of a shapes scene record (``None`` where it does not apply).

    ``record``: ``{"objects": [...], "relation": ...}`` as written by ``t2i.data.shapes`` (or
    returned by ``parse_caption``). ``rng`` draws the replacement values of one-object scenes.
    """
    rng = rng or random.Random(0)
    objects, relation = record["objects"], record.get("relation")
    out: dict[str, str | None] = dict.fromkeys(SHAPES_KINDS)
    if len(objects) == 2:
        a, b = ((o["colour"], o["shape"]) for o in objects)
        out["swap_objects"] = _two(b, relation, a)
        out["flip_relation"] = _two(a, OPPOSITE[relation], b)
        if a[0] != b[0]:
            out["swap_colours"] = _two((b[0], a[1]), relation, (a[0], b[1]))
        if a[1] != b[1]:
            out["swap_shapes"] = _two((a[0], b[1]), relation, (b[0], a[1]))
        return out
    o = dict(objects[0])
    for kind, key, values in (("replace_colour", "colour", list(vocab.COLOURS)), ("replace_shape", "shape", vocab.SHAPES),
                              ("replace_size", "size", vocab.SIZES), ("replace_position", "position", vocab.POSITIONS)):
        if o.get(key) is not None:  # a partial caption (``partial_scene``) leaves some attributes out
            out[kind] = one_object_caption(**{**o, key: _other(rng, values, o[key])})
    return out


def object_replacements(record: dict[str, Any], rng: random.Random) -> dict[str, str | None]:
    """Every ``OBJECT_KINDS`` perturbation of a two-object scene record (all ``None`` for one object).

    One of the two objects, drawn by ``rng``, takes another colour (or shape) among those that keep
    the two objects different and add no held-out pair (``vocab.HELD_OUT_PAIRS``) to a scene without one.
    """
    out: dict[str, str | None] = dict.fromkeys(OBJECT_KINDS)
    if len(record["objects"]) != 2:
        return out
    pairs = [(o["colour"], o["shape"]) for o in record["objects"]]
    seen_only = not any(p in vocab.HELD_OUT_PAIRS for p in pairs)
    for kind, slot, values in (("replace_object_colour", 0, vocab.COLOURS), ("replace_object_shape", 1, vocab.SHAPES)):
        which = rng.randrange(2)
        other = pairs[1 - which]
        options = []
        for v in values:
            new = tuple(v if k == slot else pairs[which][k] for k in range(2))
            if v != pairs[which][slot] and new != other and not (seen_only and new in vocab.HELD_OUT_PAIRS):
                options.append(new)
        if options:
            changed = list(pairs)
            changed[which] = rng.choice(options)
            out[kind] = _two(changed[0], record["relation"], changed[1])
    return out


def one_object_caption(colour: str | None, shape: str, size: str | None = None, position: str | None = None,
                       **_: Any) -> str:
    """``a {size} {colour} {shape} in the {position}``, leaving out the attributes given as None."""
    words = " ".join(w for w in ("a", size, colour, shape) if w)
    return words + (f" in the {position}" if position else "")


def partial_scene(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A one-object scene captioned with one of size, colour or position left out ("a red circle
    in the center", "a small circle in the top left", "a large red circle"); the shape is always
    named. Training on such true-but-partial captions asks each attribute to contribute on its
    own to the embedding, so that averaging caption embeddings over the other attributes (prompt
    ensembling) keeps the one asked about. One attribute only: a caption that leaves out more
    would also be true of other images in the batch, which the loss counts as negatives."""
    if len(record["objects"]) != 1:
        raise ValueError("partial_scene needs a one-object scene")
    return _without(record, rng.choice(PARTIAL_DROPS))


def partial_captions(record: dict[str, Any]) -> list[str]:
    """Every partial caption of a one-object scene (``partial_scene``'s three, in ``PARTIAL_DROPS``
    order); none for a two-object scene (leaving one object's colour out was measured for the
    diffusion model and lost accuracy everywhere: ``benchmarks/RESULTS.md``, "Partial captions")."""
    if len(record["objects"]) != 1:
        return []
    return [_without(record, dropped)["caption"] for dropped in PARTIAL_DROPS]


def reworded_captions(record: dict[str, Any], scenes: str = "all") -> list[str]:
    """A shapes scene's caption as people also word it, every one still true: the articles left out ("small red
    triangle in top left") and, for two objects, with the size they have (the spec's two-object scenes are both
    small: "a small red circle above a small blue square"), with and without the articles, and "left of" / "right
    of" without "to the" ("a red circle right of a blue square"), with and without the articles. Nothing for a scene
    outside ``scenes`` (``REWORDED_SCENES``: "one" rewords one-object scenes only)."""
    if len(record["objects"]) > REWORDED_SCENES[scenes]:
        return []
    caption = record["caption"]
    if len(record["objects"]) == 1:
        return [ARTICLE.sub("", caption)]
    (first, second), relation = record["objects"], record["relation"]
    sized = f"a small {first['colour']} {first['shape']} {relation} a small {second['colour']} {second['shape']}"
    forms = [ARTICLE.sub("", caption), sized, ARTICLE.sub("", sized)]
    if relation.startswith("to the "):
        short = caption.replace(f" {relation} ", f" {relation.removeprefix('to the ')} ")
        forms += [short, ARTICLE.sub("", short)]
    return forms


def toggled_full_stop(text: str) -> str:
    """A caption with its closing full stop toggled: added where it has none ("a red circle above a blue square."),
    taken off where it has one. People type prompts both ways; a CLIP tokenizer lower-cases, so capitals already
    read alike and the full stop is the part of "as typed" left to learn. Any caption, in the grammar or not."""
    text = text.rstrip()
    return text[:-1].rstrip() if text.endswith(".") else text + "."


def reworded_caption(text: str, rng: random.Random, scenes: str = "all") -> str:
    """One of ``reworded_captions`` of a shapes caption given as text (the item's own or a wrong one), drawn by ``rng``;
    the text itself when it is outside the grammar (a user's caption, a partial one) or outside ``scenes``
    (``REWORDED_SCENES``: "one" rewords one-object captions only)."""
    from t2i.data.shapes import parse_caption

    try:
        scene = parse_caption(text)
    except ValueError:
        return text
    forms = reworded_captions({**scene, "caption": text}, scenes)
    return rng.choice(forms) if forms else text


def _without(record: dict[str, Any], dropped: str) -> dict[str, Any]:
    obj = {k: (None if k == dropped else v) for k, v in record["objects"][0].items()}
    return {**record, "objects": [obj], "caption": one_object_caption(**obj)}


def swapped_scene(record: dict[str, Any]) -> dict[str, Any]:
    """A two-object scene record with the objects' places exchanged, captioned accordingly.

    Both objects are small, so exchanging centres (and boxes) keeps the scene valid: the
    relation still holds, now with the other object as its subject.
    """
    if len(record["objects"]) != 2:
        raise ValueError("swapped_scene needs a two-object scene")
    out = copy.deepcopy(record)
    a, b = out["objects"]
    a["centre"], b["centre"] = b["centre"], a["centre"]
    a["bbox"], b["bbox"] = b["bbox"], a["bbox"]
    out["objects"] = [b, a]  # the subject (first named) is the one now in the subject's place
    out["caption"] = _two((b["colour"], b["shape"]), out["relation"], (a["colour"], a["shape"]))
    return out


# --- rule-based: any caption ----------------------------------------------------------------
def _words(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _join(tokens: Sequence[str]) -> str:
    out = ""
    for tok in tokens:
        glue = "" if not out or re.fullmatch(r"[^\w\s(\[\"']", tok) else " "
        out += glue + tok
    return out


def _relation_spans(low: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) token spans of asymmetric relations, left to right, not overlapping."""
    spans, i = [], 0
    while i < len(low):
        for rel in RELATIONS:
            words = rel.split()
            if low[i:i + len(words)] == words:
                spans.append((i, i + len(words)))
                i += len(words)
                break
        else:
            i += 1
    return spans


def _noun_phrases(low: Sequence[str], blocked: set[int]) -> list[tuple[int, int]]:
    """(start, end) spans: a determiner, then words up to a boundary; at least one word after it."""
    phrases, i = [], 0
    while i < len(low):
        if low[i] in DETERMINERS and i not in blocked:
            j = i + 1
            while (j < len(low) and j not in blocked and low[j] not in BOUNDARIES and low[j] not in DETERMINERS
                   and re.fullmatch(r"\w+(?:['-]\w+)*", low[j])):
                j += 1
            if j > i + 1:
                phrases.append((i, j))
                i = j
                continue
        i += 1
    return phrases


def _swap_spans(tokens: list[str], a: tuple[int, int], b: tuple[int, int]) -> list[str]:
    return tokens[:a[0]] + tokens[b[0]:b[1]] + tokens[a[1]:b[0]] + tokens[a[0]:a[1]] + tokens[b[1]:]


def rule_negatives(text: str, rng: random.Random | None = None) -> dict[str, str | None]:
    """Every ``RULE_KINDS`` perturbation of a caption (``None`` where a rule does not apply)."""
    rng = rng or random.Random(0)
    tokens = _words(text)
    low = [t.lower() for t in tokens]
    relations = _relation_spans(low)
    blocked = {k for s, e in relations for k in range(s, e)}
    phrases = _noun_phrases(low, blocked)
    out: dict[str, str | None] = dict.fromkeys(RULE_KINDS)
    for start, end in relations:  # 1. the phrases around the first relation that has one on each side
        before = [p for p in phrases if p[1] <= start]
        after = [p for p in phrases if p[0] >= end]
        if before and after:
            out["swap_noun_phrases"] = _join(_swap_spans(tokens, before[-1], after[0]))
            break
    with_mods = [p for p in phrases if p[1] - p[0] > 2]  # determiner + modifier(s) + noun
    for i, p in enumerate(with_mods):  # 2. modifiers of the first two phrases that differ in them
        q = next((q for q in with_mods[i + 1:] if low[q[0] + 1:q[1] - 1] != low[p[0] + 1:p[1] - 1]), None)
        if q is not None:
            swapped = (tokens[:p[0] + 1] + tokens[q[0] + 1:q[1] - 1] + tokens[p[1] - 1:q[0] + 1]
                       + tokens[p[0] + 1:p[1] - 1] + tokens[q[1] - 1:])
            out["swap_modifiers"] = _join(swapped)
            break
    for i, p in enumerate(phrases):  # 3. nouns of the first two phrases that differ in them, one with modifiers
        q = next((q for q in phrases[i + 1:] if low[q[1] - 1] != low[p[1] - 1]
                  and (q[1] - q[0] > 2 or p[1] - p[0] > 2)), None)
        if q is not None:
            swapped = list(tokens)
            swapped[p[1] - 1], swapped[q[1] - 1] = tokens[q[1] - 1], tokens[p[1] - 1]
            out["swap_nouns"] = _join(swapped)
            break
    words = [t for t in tokens if re.fullmatch(r"\w+(?:['-]\w+)*", t)]
    if len(set(w.lower() for w in words)) > 1:  # 4. a word order that differs from the caption's
        for _ in range(20):
            shuffled = rng.sample(words, len(words))
            if [w.lower() for w in shuffled] != [w.lower() for w in words]:
                out["shuffle"] = " ".join(shuffled)
                break
    original = _join(tokens).lower()
    return {k: (v if v is not None and v.lower() != original else None) for k, v in out.items()}


# --- per batch --------------------------------------------------------------------------------
def perturbations(text: str, record: dict[str, Any] | None, perturber: str,
                  rng: random.Random | None = None) -> dict[str, str | None]:
    """The perturbations of one caption: from its shapes record, or by the rules.

    ``perturber``: ``shapes`` (needs ``record``), ``rules``, or ``auto`` (shapes when a record
    with objects is given, else rules).
    """
    if perturber not in PERTURBERS or perturber == "off":
        raise ValueError(f"perturber must be one of {[p for p in PERTURBERS if p != 'off']}, got {perturber!r}")
    use_shapes = perturber == "shapes" or (perturber == "auto" and record is not None and record.get("objects"))
    if use_shapes:
        if record is None or not record.get("objects"):
            raise ValueError("the shapes perturber needs each caption's scene labels (objects, relation); "
                             "this data has none: use --hard-negatives rules (or auto)")
        return shapes_negatives(record, rng)
    return rule_negatives(text, rng)


def check_kinds(kinds: Sequence[str], perturber: str) -> list[str]:
    """The allowed kinds of a perturber, or the subset asked for (ValueError naming the valid ones)."""
    allowed = {"shapes": SHAPES_KINDS, "rules": RULE_KINDS, "auto": SHAPES_KINDS + RULE_KINDS}[perturber]
    unknown = [k for k in kinds if k not in allowed]
    if unknown:
        raise ValueError(f"unknown negative kind(s) {unknown} for the {perturber} perturber; choose from {list(allowed)}")
    return list(kinds) or list(allowed)


def sample_negatives(texts: Sequence[str], records: Sequence[dict[str, Any] | None], perturber: str, per_caption: int,
                     kinds: Sequence[str], keys: Sequence[Any]) -> tuple[list[str], list[bool]]:
    """``per_caption`` negatives per caption, drawn without replacement from its applicable kinds.

    Each caption's draws come from ``random.Random(str(key))`` of its own ``key`` (the trainer
    uses seed, step and the item's index), so they do not depend on how a batch is split over
    processes. Returns ``len(texts) * per_caption`` strings (caption-major) and a validity mask:
    slots a caption has no negative for hold "" and ``False``, and the loss leaves them out.
    """
    negatives, valid = [], []
    for text, record, key in zip(texts, records, keys, strict=True):
        rng = random.Random(str(key))
        options = [v for k, v in perturbations(text, record, perturber, rng).items() if k in kinds and v is not None]
        drawn = rng.sample(options, min(per_caption, len(options)))
        negatives += drawn + [""] * (per_caption - len(drawn))
        valid += [True] * len(drawn) + [False] * (per_caption - len(drawn))
    return negatives, valid


def demo() -> None:
    rec = vocab.make_scenes(1, seed=0, split="test", p_two=1.0)[0]
    print(rec["caption"], shapes_negatives(rec))
    for text in ("a cat on a mat", "a red car and a blue bus", "a photo of a dog next to a cat", "a dog"):
        print(text, "->", rule_negatives(text))
