"""What a saved model was trained on and with: the words of its training captions and its CLIP.

Text-conditional trainers (``t2i train ldm|tgan|tgan-attn|cvae``) write ``t2i_training.json`` into
the run folder (for latent diffusion the run folder is the pipeline folder)::

    {"data": "shapes", "clip": "shapes-clip", "base": null, "captions": 20000, "words": ["a", "above", ...]}

``clip`` is the text encoder the model reads prompts with (a built-in name as it is, a path made
absolute); ``base`` the model a fine-tune (``--init``, a LoRA) started from, whose words and CLIP it
inherits; ``words`` the sorted set of words (``words_of``) of every training caption, or null when
the captions cannot be listed up front (streamed WebDataset shards). For ``shapes`` the words are
the caption grammar's (``t2i.data.shapes.vocabulary``).

``trained_on(model)`` reads that record; for models saved before it existed it falls back to the
model's own ``config.json`` (GANs and VAEs record ``data`` and ``clip``/``text_encoder``; a run's
config records ``init``), follows a LoRA's ``t2i_lora.json`` and a distilled model's
``t2i_distill.json`` to their base, and knows nothing of a hub id. Nothing known means no
off-vocabulary warning: ``unknown_words`` is only asked when the words are recorded.

    python -c "from t2i.provenance import trained_on, unknown_words; t = trained_on('shapes-ldm'); print(t, unknown_words('a photo of a cat', t.words))"
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

RECORD = "t2i_training.json"
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, any script
_BASE_FILES = (("t2i_lora.json", "base"), ("t2i_distill.json", "teacher"))  # fine-tunes that name their base


def words_of(text: str) -> list[str]:
    """The words of ``text``, lower-cased, in order: runs of letters and digits ("Cat's" -> "cat", "s")."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class TrainedOn:
    """What is recorded about a model's training; None where nothing is."""

    data: str | None = None  # the training data source ("shapes", a folder, ...)
    clip: str | None = None  # the CLIP (open_clip folder or built-in name) whose text tower the model reads
    words: frozenset[str] | None = None  # every word of its training captions (None: unknown, so no warnings)

    def describe(self) -> str:
        parts = [f"trained on `{self.data}`" if self.data else "training data not recorded",
                 f"text encoder from `{self.clip}`" if self.clip else "text encoder not recorded"]
        return ", ".join(parts)


def caption_words(source: str, dataset: Any) -> frozenset[str] | None:
    """The words of every caption of a training ``dataset`` loaded from ``source``; None when its captions
    cannot be listed (a streamed dataset). Shapes: the caption grammar's words."""
    if str(source) == "shapes":
        from t2i.data.shapes import vocabulary

        return vocabulary()
    lists = getattr(dataset, "caption_lists", None)  # user data: every caption of every image
    captions = [c for texts in lists for c in texts] if lists is not None else getattr(dataset, "captions", None)
    if captions is None:
        return None
    return frozenset(w for caption in captions for w in words_of(str(caption)))


def write_record(folder: str | Path, data: str, dataset: Any, clip: str | None = None,
                 base: str | None = None) -> Path:
    """Write ``folder/t2i_training.json`` for a model trained on ``dataset`` (from ``data``) with ``clip``
    (or fine-tuned from ``base``). Paths are written as ``t2i.builtin.reference`` gives them."""
    from t2i.builtin import reference

    words = caption_words(data, dataset)
    count = len(dataset) if hasattr(dataset, "__len__") else None
    record = {"data": str(data), "clip": reference(clip) if clip else None, "base": reference(base) if base else None,
              "captions": count, "words": sorted(words) if words is not None else None}
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
    inherited = trained_on(base, _depth + 1) if isinstance(base, str) else TrainedOn()
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
    if base and record:  # a fine-tune knows its base's words and its own
        words = own | inherited.words if own is not None and inherited.words is not None else None
    elif base:  # no record of its own (a distilled model, an older LoRA run): its base's, when on the base's data
        words = inherited.words if str(data) == str(inherited.data) else None  # other data: unknown, no false alarm
    else:
        words = own
    return TrainedOn(data=str(data) if data else None, clip=str(clip) if clip else None, words=words)


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


def off_vocabulary_warning(prompt: str, name: str, trained: TrainedOn) -> str | None:
    """One line for a prompt with words ``name``'s training captions never held; None when there are none."""
    unknown = unknown_words(prompt, trained.words)
    if not unknown:
        return None
    shown = ", ".join(repr(w) for w in unknown[:8]) + (", ..." if len(unknown) > 8 else "")
    data = f" ({trained.data})" if trained.data else ""
    return (f"{name} never saw {shown} in its training captions{data}: it will draw what it knows, "
            "not what these words mean")
