"""The `shapes` dataset: captioned synthetic scenes whose captions can be checked.

This is the generator of ``shared/specs/shapes.md`` (the contract; read it first). One or
two coloured shapes on a black canvas, drawn anti-aliased (Pillow ``ImageDraw`` on a 4x
canvas, then ``Image.reduce(4)``, a box filter), with a caption produced from the scene
and the structured labels (colour, shape, size, centre, bounding box, relation) that an
evaluator needs so it never has to parse text.

Determinism: scene ``i`` of ``make_scenes(n, seed, size, split, p_two)`` is drawn from
its own ``random.Random`` seeded by a SHA-256 of ``(split, seed, i)``, so the same call
gives the same scenes on every machine, a longer ``n`` extends a shorter one, ``test`` and
``novel`` are separate seed streams, and PNGs are byte-identical for the same Pillow/zlib.
Centres are continuous but stored (and drawn) on the 1/4-pixel grid of the 4x canvas, so
the labels are exactly what was drawn.

    python -c "from t2i.data.shapes import demo; demo()"   # captions + /tmp/shapes_demo
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from tqdm.auto import tqdm

# --- vocabulary (spec: "Vocabulary") ---------------------------------------------------
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25),
    "green": (25, 200, 50),
    "blue": (40, 80, 255),
    "yellow": (255, 225, 25),
    "magenta": (230, 40, 230),
    "cyan": (25, 220, 230),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
SIZES: tuple[str, ...] = ("small", "large")
SIZE_FRACTIONS: dict[str, float] = {"small": 0.28, "large": 0.50}  # extent / S
POSITIONS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right", "center")
# position -> anchor (fx, fy) as fractions of S; x to the right, y downwards
ANCHORS: dict[str, tuple[float, float]] = {
    "top left": (0.25, 0.25),
    "top right": (0.75, 0.25),
    "bottom left": (0.25, 0.75),
    "bottom right": (0.75, 0.75),
    "center": (0.5, 0.5),
}
RELATIONS: tuple[str, ...] = ("above", "below", "to the left of", "to the right of")
# (colour, shape) pairs that train/test never contain and every novel scene does
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("green", "triangle"), ("yellow", "cross"), ("cyan", "circle"), ("magenta", "square"),
)
SPLITS: tuple[str, ...] = ("train", "test", "novel")
# every (colour, shape) pair in a fixed order: the class index used as a dataset label
PAIRS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOURS for s in SHAPES)

JITTER = 0.06  # max |offset| of a one-object centre from its anchor, in units of S
MIN_AXIS_GAP = 0.40  # two objects: min centre distance along the relation's axis (x S)
MAX_OFF_AXIS = 0.15  # two objects: max centre distance along the other axis (x S)
SUPERSAMPLE = 4  # draw on a canvas this many times larger, then box-filter down
MAX_TRIES = 100_000  # rejection-sampling guard (expected ~30 tries per two-object scene)


def extent(size_name: str, S: int) -> int:
    """Side in pixels of the bounding box of a `small` or `large` shape on an S x S canvas."""
    if size_name not in SIZE_FRACTIONS:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size_name!r}")
    return int(SIZE_FRACTIONS[size_name] * S + 0.5)


def _quarter(v: float) -> float:
    """Round a coordinate to the 1/4-pixel grid of the 4x drawing canvas (half up)."""
    return math.floor(v * SUPERSAMPLE + 0.5) / SUPERSAMPLE


def _scene_rng(seed: int, split: str, index: int) -> random.Random:
    key = hashlib.sha256(f"t2i-shapes|{split}|{seed}|{index}".encode()).digest()
    return random.Random(int.from_bytes(key[:16], "big"))


def _object(colour: str, shape: str, size: str, cx: float, cy: float, S: int,
            position: str | None) -> dict[str, Any]:
    e = extent(size, S)
    return {"colour": colour, "shape": shape, "size": size, "position": position,
            "centre": [cx, cy], "bbox": [cx - e / 2, cy - e / 2, cx + e / 2, cy + e / 2]}


def _draw_pair(rng: random.Random) -> tuple[str, str]:
    return rng.choice(list(COLOURS)), rng.choice(SHAPES)


def _one_object(rng: random.Random, S: int, split: str) -> dict[str, Any]:
    while True:  # train/test: redraw held-out pairs; novel: keep only held-out pairs
        pair = _draw_pair(rng)
        if (pair in HELD_OUT_PAIRS) == (split == "novel"):
            break
    size, position = rng.choice(SIZES), rng.choice(POSITIONS)
    e, (fx, fy), j = extent(size, S), ANCHORS[position], JITTER * S
    cx = _quarter(fx * S + rng.uniform(-j, j))
    cy = _quarter(fy * S + rng.uniform(-j, j))
    # clamp so the whole shape stays on the canvas (bounds are multiples of 1/2 px)
    cx, cy = (min(max(v, e / 2), S - e / 2) for v in (cx, cy))
    obj = _object(*pair, size, cx, cy, S, position)
    caption = f"a {size} {pair[0]} {pair[1]} in the {position}"
    return {"caption": caption, "objects": [obj], "relation": None, "image_size": S}


def _valid_pair_of_pairs(a: tuple[str, str], b: tuple[str, str], split: str) -> bool:
    held = (a in HELD_OUT_PAIRS) or (b in HELD_OUT_PAIRS)
    return a != b and (held if split == "novel" else not held)


def _relation_holds(relation: str, a: tuple[float, float], b: tuple[float, float], S: int) -> bool:
    """Subject a vs other b: >= 0.40 S apart along the relation's axis, <= 0.15 S across it."""
    dx, dy = b[0] - a[0], b[1] - a[1]  # from subject to other; y grows downwards
    along, across = {"above": (dy, dx), "below": (-dy, dx),
                     "to the left of": (dx, dy), "to the right of": (-dx, dy)}[relation]
    return along >= MIN_AXIS_GAP * S and abs(across) <= MAX_OFF_AXIS * S


def _two_objects(rng: random.Random, S: int, split: str) -> dict[str, Any]:
    while True:
        a, b = _draw_pair(rng), _draw_pair(rng)
        if _valid_pair_of_pairs(a, b, split):
            break
    relation = rng.choice(RELATIONS)
    e = extent("small", S)
    lo, hi = e / 2, S - e / 2  # centre range that keeps a small shape on the canvas
    for _ in range(MAX_TRIES):  # rejection sampling: uniform over the valid placements
        ca = (_quarter(rng.uniform(lo, hi)), _quarter(rng.uniform(lo, hi)))
        cb = (_quarter(rng.uniform(lo, hi)), _quarter(rng.uniform(lo, hi)))
        overlap = abs(ca[0] - cb[0]) < e and abs(ca[1] - cb[1]) < e  # bounding boxes
        if not overlap and _relation_holds(relation, ca, cb, S):
            break
    else:  # unreachable for the spec's constants; guards custom ones
        raise RuntimeError(f"no valid two-object placement found in {MAX_TRIES} tries (S={S})")
    objects = [_object(*a, "small", *ca, S, None), _object(*b, "small", *cb, S, None)]
    caption = f"a {a[0]} {a[1]} {relation} a {b[0]} {b[1]}"
    return {"caption": caption, "objects": objects, "relation": relation, "image_size": S}


def make_scenes(n: int, seed: int = 0, size: int = 32, split: str = "train",
                p_two: float = 0.5) -> list[dict[str, Any]]:
    """Draw ``n`` scene records: ``{"caption", "objects", "relation", "image_size"}``.

    Each object: colour, shape, size, position (one-object scenes; ``None`` for two),
    centre ``[cx, cy]`` and bbox ``[x0, y0, x1, y1]`` in pixels. ``relation`` is ``None``
    for one-object scenes. ``p_two`` is the probability that a scene holds two objects.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not 0.0 <= p_two <= 1.0:
        raise ValueError(f"p_two must be a probability in [0, 1], got {p_two!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    scenes = []
    for i in range(n):
        rng = _scene_rng(seed, split, i)
        two = rng.random() < p_two
        scenes.append(_two_objects(rng, size, split) if two else _one_object(rng, size, split))
    return scenes


def _draw_object(draw: ImageDraw.ImageDraw, obj: dict[str, Any]) -> None:
    k = SUPERSAMPLE

    def px(v: float) -> int:  # a continuous coordinate -> the 4x canvas, rounded half up
        return math.floor(v * k + 0.5)

    fill = COLOURS[obj["colour"]]
    x0, y0, x1, y1 = obj["bbox"]
    cx, cy = obj["centre"]
    # Pillow's box coordinates are inclusive, so [X0, X1) pixels are [X0, X1 - 1]
    X0, Y0, X1, Y1 = px(x0), px(y0), px(x1), px(y1)
    shape = obj["shape"]
    if shape == "circle":
        draw.ellipse([X0, Y0, X1 - 1, Y1 - 1], fill=fill)
    elif shape == "square":
        draw.rectangle([X0, Y0, X1 - 1, Y1 - 1], fill=fill)
    elif shape == "triangle":
        # isosceles, apex up, base along the bottom; the apex is two sub-pixels wide so the
        # triangle is mirror-symmetric about the centre (an even number of columns wide)
        C = px(cx)
        draw.polygon([(X0, Y1 - 1), (X1 - 1, Y1 - 1), (C, Y0), (C - 1, Y0)], fill=fill)
    elif shape == "cross":
        t = (x1 - x0) / 3  # arm thickness: one third of the extent
        draw.rectangle([X0, px(cy - t / 2), X1 - 1, px(cy + t / 2) - 1], fill=fill)
        draw.rectangle([px(cx - t / 2), Y0, px(cx + t / 2) - 1, Y1 - 1], fill=fill)
    else:
        raise ValueError(f"shape must be one of {list(SHAPES)}, got {shape!r}")


def render(record: dict[str, Any], size: int | None = None) -> Image.Image:
    """Draw a scene record as an RGB ``size x size`` PIL image (black background)."""
    S = int(record.get("image_size", size or 0))
    if size is not None and S != size:
        raise ValueError(f"record was drawn for a {S}px canvas, got size={size}; "
                         f"make the scenes with make_scenes(..., size={size})")
    if S <= 0:
        raise ValueError("render needs a size (the record has no 'image_size')")
    big = Image.new("RGB", (S * SUPERSAMPLE, S * SUPERSAMPLE), (0, 0, 0))
    draw = ImageDraw.Draw(big)
    for obj in record["objects"]:
        _draw_object(draw, obj)
    return big.reduce(SUPERSAMPLE)  # box (area-average) filter


def label_of(record: dict[str, Any]) -> int:
    """Class index of the subject's (colour, shape) pair in ``PAIRS`` (28 classes)."""
    first = record["objects"][0]
    return PAIRS.index((first["colour"], first["shape"]))


def class_names() -> list[str]:
    return [f"{c} {s}" for c, s in PAIRS]


def write_dataset(out: str | Path, n: int, seed: int = 0, size: int = 32, split: str = "train",
                  p_two: float = 0.5, progress: bool = True) -> Path:
    """Write ``n`` scenes as an imagefolder: ``images/00000.png ...`` + ``metadata.jsonl``.

    Each metadata line holds ``file_name``, ``text`` (the caption), ``objects`` and
    ``relation``; ``datasets.load_dataset("imagefolder", data_dir=out)`` reads it. An earlier
    dataset in ``out`` is replaced; a folder holding anything else is refused.
    """
    from .base import prepare_out

    out = prepare_out(Path(out))
    width = max(5, len(str(max(n - 1, 0))))
    lines = []
    for i, rec in enumerate(tqdm(make_scenes(n, seed, size, split, p_two), desc=f"shapes {split}",
                                 unit="img", disable=not progress)):
        name = f"images/{i:0{width}d}.png"
        render(rec, size).save(out / name, format="PNG")
        lines.append(json.dumps({"file_name": name, "text": rec["caption"],
                                 "objects": rec["objects"], "relation": rec["relation"]}))
    (out / "metadata.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    return out


# --- captions -> structured prompts ---------------------------------------------------
def _alt(words) -> str:
    """A regex alternation, longest words first."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_ONE = re.compile(rf"a ({_alt(SIZES)}) ({_alt(COLOURS)}) ({_alt(SHAPES)}) in the ({_alt(POSITIONS)})")
_TWO = re.compile(rf"a ({_alt(COLOURS)}) ({_alt(SHAPES)}) ({_alt(RELATIONS)}) a ({_alt(COLOURS)}) ({_alt(SHAPES)})")
GRAMMAR = ("'a {size} {colour} {shape} in the {position}' or "
           "'a {colour} {shape} {relation} a {colour} {shape}'")


def vocabulary() -> frozenset[str]:
    """Every word a shapes caption can hold: the grammar's fixed words and each slot's values."""
    fixed = GRAMMAR.replace("'", " ").replace(" or ", " ")
    for slot in ("size", "colour", "shape", "position", "relation"):
        fixed = fixed.replace("{" + slot + "}", " ")
    values = [*SIZES, *COLOURS, *SHAPES, *POSITIONS, *RELATIONS]
    return frozenset(" ".join([fixed, *values]).split())


def grammar_captions() -> list[str]:
    """Every caption the grammar can write: each form with every slot value (a two-object caption's (colour, shape)
    pairs differ). Which words a shapes caption ever holds together is read from these (``t2i.provenance``)."""
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    one = [f"a {size} {c} {s} in the {position}" for size in SIZES for c, s in pairs for position in POSITIONS]
    two = [f"a {a[0]} {a[1]} {relation} a {b[0]} {b[1]}" for a in pairs for relation in RELATIONS for b in pairs
           if a != b]
    return one + two


def parse_caption(text: str) -> dict[str, Any]:
    """Parse a shapes caption into ``{"objects": [...], "relation": ...}`` (no geometry).

    Objects carry colour, shape, size and position (``None`` in two-object captions,
    whose objects are both small). Raises ``ValueError`` for text outside the grammar.
    """
    one = _ONE.fullmatch(text)
    if one:
        size, colour, shape, position = one.groups()
        return {"objects": [{"colour": colour, "shape": shape, "size": size, "position": position}],
                "relation": None}
    two = _TWO.fullmatch(text)
    if two:
        c1, s1, relation, c2, s2 = two.groups()
        objs = [{"colour": c, "shape": s, "size": "small", "position": None} for c, s in ((c1, s1), (c2, s2))]
        return {"objects": objs, "relation": relation}
    raise ValueError(f"not a shapes caption: {text!r}; expected {GRAMMAR} with colour in "
                     f"{list(COLOURS)}, shape in {list(SHAPES)}, size in {list(SIZES)}, "
                     f"position in {list(POSITIONS)}, relation in {list(RELATIONS)} "
                     "(lower case, single spaces, no full stop)")


def prompts(n: int, seed: int = 0, split: str = "novel", kind: str = "any",
            size: int = 32) -> list[tuple[str, dict[str, Any]]]:
    """``n`` evaluation prompts ``(caption, record)`` from ``split``; ``kind``: one, two or any."""
    p_two = {"one": 0.0, "two": 1.0, "any": 0.5}
    if kind not in p_two:
        raise ValueError(f"kind must be one of {list(p_two)}, got {kind!r}")
    return [(r["caption"], r) for r in make_scenes(n, seed, size, split, p_two[kind])]


def demo() -> None:
    for rec in make_scenes(6, seed=0):
        print(rec["caption"])
    print("wrote", write_dataset("/tmp/shapes_demo", 64, seed=0))
