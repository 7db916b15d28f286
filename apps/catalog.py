"""What the app's models are: their names, what they were trained on, and the CLIP that scores them.

- ``model_names``: a model is called by what it is: a built-in by its name, a folder by its name (a
  run's ``model/`` folder by the run's), never by a fixed label.
- ``describe``: one Markdown line per model: name, family (``gan_baselines.registry.FAMILIES``), its
  model card's title or the built-in's one-line description, and what ``t2i.provenance`` recorded of
  its training (data, text encoder).
- ``choose_scorers``: ``--clip`` scores every model's images when given; otherwise each model is
  scored by the CLIP it was trained with (its recorded text encoder), and a model that records none,
  or one that is no open_clip model with an image tower, by ``shapes-clip`` with a note saying the
  scores may not fit it. Scores are raw ``100 x cosine`` (never clamped at 0, so an unrelated image
  shows as a negative score rather than a silent 0.0).

    python -c "from apps.catalog import describe; print(describe('shapes-ldm', 'shapes-ldm', 'ldm'))"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from t2i.provenance import TrainedOn, trained_on

FALLBACK_CLIP = "shapes-clip"


def model_names(specs: list[str]) -> list[str]:
    """Short, distinct names: a built-in name as is, a folder by its name (a run's ``model/`` folder by
    the run's), a repeated name with ``-2``, ``-3``, ..."""
    names: list[str] = []
    for spec in specs:
        path = Path(spec)
        name = path.parent.name if path.name == "model" and path.parent.name else (path.name or spec)
        base, k = name, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def card_title(spec: str) -> str:
    """A built-in's one-line description, else the title of the folder's model card (``README.md``), else ""."""
    from t2i.builtin import BUILTIN

    if spec in BUILTIN:
        return BUILTIN[spec]
    for folder in (Path(spec), Path(spec) / "model", Path(spec).parent):
        card = folder / "README.md"
        if card.is_file():
            for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            return ""
    return ""


def describe(spec: str, name: str, family: str, trained: TrainedOn | None = None) -> str:
    """One Markdown line: what the model is and what it was trained on."""
    from gan_baselines.registry import FAMILIES

    about = FAMILIES[family].about if family in FAMILIES else ""
    title = card_title(spec)
    trained = trained if trained is not None else trained_on(spec)
    return (f"**{name}** (family `{family}`{': ' + about if about else ''})"
            + (f": {title}" if title else "") + f"; {trained.describe()}.")


class ClipScorer:
    """CLIP score (Hessel et al. 2021, eq. 1 with w = 100, unclamped) of each image with its prompt."""

    def __init__(self, clip: str):
        from t2i.clip import get_tokenizer, load_clip

        self.name = clip
        self.model = load_clip(clip).eval()
        self.tokenizer = get_tokenizer(self.model)

    def score(self, images: list[Image.Image], prompts: list[str]) -> list[float]:
        """``100 x cosine(image, prompt)`` in [-100, 100]; a negative score: the CLIP finds them unrelated."""
        from t2i.metrics.clip_score import clip_cosines

        cosines = clip_cosines(images, prompts, self.model, self.tokenizer)
        return [100 * float(c) for c in cosines]


def same_clip(a: str, b: str) -> bool:
    """Whether two CLIP references (built-in names, folders or run folders, relative or absolute) name one model."""
    from t2i.clip.model import _resolve_folder
    folders = [_resolve_folder(x) for x in (a, b)]
    return a == b or (None not in folders and Path(folders[0]).resolve() == Path(folders[1]).resolve())


@dataclass
class Scoring:
    """Which CLIP scores each of the app's models, and what the user should know about it."""

    scorers: dict[str, Any]  # model name -> scorer (``score(images, prompts) -> list[float]``, ``name``)
    notes: list[str] = field(default_factory=list)  # shown under the scores


def choose_scorers(clip: str, models: dict[str, TrainedOn], load: Any = ClipScorer) -> Scoring:
    """``clip`` ("" = each model's own) -> a scorer per model name, loaded once per CLIP, with notes."""
    loaded: dict[str, Any] = {}
    notes: list[str] = []

    def get(reference: str) -> Any:
        if reference not in loaded:
            loaded[reference] = load(reference)
        return loaded[reference]

    scorers: dict[str, Any] = {}
    for name, trained in models.items():
        if clip:
            scorers[name] = get(clip)
            if trained.clip and not same_clip(trained.clip, clip):
                notes.append(f"{name} was trained with the text encoder of `{trained.clip}`; its images are "
                             f"scored by `{clip}` (--clip), which may not fit it.")
            continue
        if trained.clip:
            try:
                scorers[name] = get(trained.clip)
                continue
            except (FileNotFoundError, ValueError, OSError, KeyError) as err:
                why = str(err).splitlines()[0][:160]
                notes.append(f"{name} was trained with `{trained.clip}`, which cannot score images ({why}); "
                             f"scored by `{FALLBACK_CLIP}` instead, which may not fit it: give --clip.")
        else:
            notes.append(f"{name} records no CLIP it was trained with; scored by `{FALLBACK_CLIP}`, which may not "
                         "fit it: give --clip.")
        scorers[name] = get(FALLBACK_CLIP)
    if len({id(s) for s in scorers.values()}) > 1:
        notes.append("The models are scored by different CLIPs, so their scores do not compare across models.")
    return Scoring(scorers, notes)
