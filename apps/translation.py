"""What the app's translation tab does, without the UI: pix2pix / CycleGAN runs, their examples, a translation.

``t2i app --translator RUN[,RUN2]`` loads each run of ``t2i train pix2pix|cyclegan``
(``gan_baselines.translation.load_translator``); a CycleGAN run gives two entries, A -> B and B -> A.
Examples come from what the run was trained on: a built-in task (``outline``, ``greyscale``,
``background``) rendered on the fly from held-out shapes scenes (the test split), or the run's own
data folder, else plain shapes scenes. An uploaded image of any mode or size is converted and its
centre square resized (``translator_input``), and the answer says what was changed; an upload that
is no image is a one-line error.

    python -c "from apps.translation import demo; demo()"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from apps.catalog import model_names
from apps.models import RequestError, upscaled
from gan_baselines.translation import load_translator
from gan_baselines.translation_eval import trained_reading, translate, translator_input
from t2i.generator import to_pil

MAX_UPLOAD_PIXELS = 4096 * 4096  # larger uploads are refused before decoding
EXAMPLES = 6  # example inputs per translator


@dataclass
class Translator:
    name: str  # shown in the tab, e.g. "p2p-grey (pix2pix)" or "cg (cyclegan, B -> A)"
    G: torch.nn.Module  # the U-Net generator, eval mode
    config: dict[str, Any]  # its saved config.json (family, arch, data, ...)
    direction: str = "ab"  # "ab" or, for a CycleGAN run, "ba"

    @property
    def size(self) -> int:
        return int(self.config["arch"]["size"])

    @property
    def channels(self) -> int:
        return int(self.config["arch"].get("channels", 3))

    @property
    def reading(self) -> tuple[str, str]:
        """(--resize, --background) of its training data: uploads are read alike."""
        return trained_reading(self.config)

    def about(self) -> str:
        data = self.config.get("data")
        side = "B -> A" if self.direction == "ba" else "A -> B"
        return (f"**{self.name}**: {self.config.get('family')} {side}, {self.size} px"
                + (f", trained on `{data}`" if data else ""))


@dataclass
class Translators:
    models: dict[str, Translator]  # name -> translator
    display_size: int = 128  # images are upscaled (nearest) to this many pixels
    _examples: dict[str, list[tuple[str, Image.Image]]] = field(default_factory=dict)

    @classmethod
    def load(cls, specs: list[str], display_size: int = 128) -> "Translators":
        models: dict[str, Translator] = {}
        for spec, name in zip(specs, model_names(specs)):
            G, config = load_translator(spec, "ab")
            family = config.get("family")
            if family == "cyclegan":
                models[f"{name} (cyclegan, A -> B)"] = Translator(f"{name} (cyclegan, A -> B)", G, config, "ab")
                G_ba, config_ba = load_translator(spec, "ba")
                models[f"{name} (cyclegan, B -> A)"] = Translator(f"{name} (cyclegan, B -> A)", G_ba, config_ba, "ba")
            else:
                models[f"{name} ({family})"] = Translator(f"{name} ({family})", G, config, "ab")
        return cls(models, display_size)

    def get(self, name: Any) -> Translator:
        if not isinstance(name, str) or name not in self.models:
            raise RequestError(f"The translator must be one of {list(self.models)}; got {str(name)[:60]!r}.")
        return self.models[name]

    def _display(self, image: Image.Image) -> Image.Image:
        return upscaled(image, self.display_size)

    # ---- examples -------------------------------------------------------------------
    def examples(self, name: str) -> list[tuple[str, Image.Image]]:
        """(label, input image) pairs for ``name``, from its training task or data (cached)."""
        model = self.get(name)
        if name not in self._examples:
            self._examples[name] = _examples_for(model)
        return self._examples[name]

    def example_labels(self, name: str) -> list[str]:
        return [label for label, _ in self.examples(name)]

    def example(self, name: Any, label: Any) -> Image.Image:
        examples = dict(self.examples(self.get(name).name))
        if label not in examples:
            raise RequestError(f"Pick one of the examples {list(examples)}; got {str(label)[:60]!r}.")
        return examples[label]

    # ---- translation ----------------------------------------------------------------
    def translate(self, name: Any, image: Any) -> tuple[Image.Image, Image.Image, str]:
        """(the input as the model sees it, its translation, a note); ``image``: a PIL image or a file path."""
        model = self.get(name)
        image = open_upload(image)
        try:
            x, note = translator_input(image, model.size, model.channels, *model.reading)
        except (ValueError, OSError) as err:  # a mode Pillow cannot convert (e.g. 16-bit greyscale to RGB)
            raise RequestError(f"Cannot use this {image.mode} image: {str(err).splitlines()[0][:120]}; "
                               "upload an 8-bit PNG or JPEG.") from None
        y = translate(model.G, x[None])  # (1, C, S, S) in [0, 1]
        shown_in = to_pil(x[None])[0]
        info = f"{model.about()}." + (f" The input was {note}." if note else "")
        return self._display(shown_in), self._display(to_pil(y)[0]), info

    def translate_example(self, name: Any, label: Any) -> tuple[Image.Image, Image.Image, str]:
        return self.translate(name, self.example(name, label))


def open_upload(image: Any) -> Image.Image:
    """A PIL image from an upload (a path) or an image; RequestError, one line, for anything else."""
    if isinstance(image, Image.Image):
        return image
    if image is None:
        raise RequestError("Upload an image or pick an example first.")
    if not isinstance(image, (str, Path)):
        raise RequestError(f"The image must be an uploaded file, not {type(image).__name__}.")
    try:
        with Image.open(image) as opened:
            if opened.width * opened.height > MAX_UPLOAD_PIXELS:
                raise RequestError(f"The image is {opened.width}x{opened.height} px; at most "
                                   f"{MAX_UPLOAD_PIXELS} pixels are taken.")
            opened.load()
            return opened.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise RequestError("The upload is not an image Pillow can read; upload a PNG or JPEG.") from None


def _examples_for(model: Translator) -> list[tuple[str, Image.Image]]:
    """Inputs of the side the model reads: held-out scenes of its task, its data folder, else shapes scenes."""
    from t2i.data.translation import TASKS, load_held_out

    data = str(model.config.get("data") or "")
    side = "B" if model.direction == "ba" else "A"
    try:
        pairs = load_held_out(data, model.size, EXAMPLES, 0, *model.reading)[0] \
            if data in TASKS or (data and Path(data).is_dir()) else None
    except (ValueError, OSError):  # the data folder moved or changed: fall back to shapes scenes
        pairs = None
    if pairs is not None:
        images = getattr(pairs, side)[:EXAMPLES].float() / 255  # (K, C, S, S)
        captions = [(r or {}).get("caption") or (r or {}).get("file_name") or f"example {i}"
                    for i, r in enumerate((pairs.records_b if side == "B" else pairs.records)[:EXAMPLES])]
        return [(f"{i}: {c}", im) for i, (c, im) in enumerate(zip(captions, to_pil(images)))]
    from t2i.data.shapes import make_scenes, render

    scenes = make_scenes(EXAMPLES, seed=0, size=model.size, split="test")
    return [(f"{i}: {r['caption']}", render(r, model.size)) for i, r in enumerate(scenes)]


def demo() -> None:
    import tempfile

    from t2i.data.translation import write_translation

    with tempfile.TemporaryDirectory() as d:
        write_translation(Path(d) / "data", "greyscale", 4)
        print("train one with `t2i train pix2pix --data greyscale --steps 2 --out RUN`, then "
              "`t2i app --translator RUN`; examples of its task:", sorted(Path(d, "data", "A").iterdir())[:2])
