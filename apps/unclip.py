"""What the app's unCLIP tab does, without the UI: image variations and text-guided edits of an image.

``t2i app --unclip PATH_OR_NAME`` loads a ``t2i train unclip --prior`` output (``t2i.unclip.pipeline``;
default: the built-in ``shapes-unclip`` when this checkout has it, else the tab says how to train one).
The input is an upload (any mode or size: converted and its centre square resized to the model's size,
and the answer says what was changed; a file that is no image is a one-line error) or, with no upload,
an example: a held-out shapes scene (the test split). Two actions, both decoding CLIP image embeddings
with the model's decoder (issue 17):
- **variations** (DALL-E 2 Sec. 3.1): the image's CLIP embedding, decoded with new noise; by default each
  variation embeds a copy with the content moved to a random place (``t2i.unclip.relayout``: shapes-clip
  pins the layout in the embedding), or the image as it is ("keep the layout"); with a strength > 0 the
  embeddings are first re-sampled that far through the prior;
- **edit**: ``(1 - weight) e(image) + weight e_prior(prompt)`` decoded (0 = the image, 1 = the prompt).

    HF_HUB_OFFLINE=1 python -c "from apps.unclip import demo; demo()"
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from apps.catalog import describe, model_names
from apps.models import RequestError, check_prompt, number_in, upscaled, whole_number
from apps.translation import open_upload
from gan_baselines.registry import load_generator
from t2i.builtin import is_installed
from t2i.data.bad_data import ALPHA_MODES, to_rgb
from t2i.data.transforms import BACKGROUNDS, fit
from t2i.generator import GenerationError
from t2i.provenance import TrainedOn, outside_captions_warning, trained_on
from t2i.unclip.pipeline import UnCLIPGenerator
from t2i.unclip.relayout import background_colour, content_box

DEFAULT_UNCLIP = "shapes-unclip"  # the built-in the tab uses when --unclip is not given (once it is installed)
EXAMPLES = 6  # example inputs: held-out shapes scenes
TRAIN_HINT = ("`t2i train prior --preset shapes-prior --out runs/shapes-prior`, then "
              "`t2i train unclip --preset shapes-unclip --prior runs/shapes-prior --out runs/shapes-unclip`, "
              "then `t2i app --unclip runs/shapes-unclip`")


def unclip_spec(unclip: str) -> str:
    """The model the tab loads for ``--unclip``: "" (the tab explains how to train one) for "" or for the
    default built-in while this checkout does not have it; any other value as given (errors are the loader's)."""
    if unclip == DEFAULT_UNCLIP and not is_installed(DEFAULT_UNCLIP):
        return ""
    return unclip


def model_input(image: Image.Image, size: int, reading: tuple[str, str] = ("center-crop", "black")
                ) -> tuple[Image.Image, str]:
    """``image`` as the model takes it: RGB, ``size x size``, read like the decoder's training images (``reading``:
    their --resize and --background); and a note of what was changed ("" if nothing).

    The CLIP image processor would resize and centre-crop too; doing it here shows the user what the model sees."""
    resize, background = reading
    notes = []
    if image.mode != "RGB":
        notes.append(f"converted from {image.mode} to RGB" + (f" on {background}" if image.mode in ALPHA_MODES else ""))
        image = to_rgb(image, BACKGROUNDS[background])
    if image.size != (size, size):
        how = "its centre square" if resize == "center-crop" else f"--resize {resize}, as the model was trained"
        notes.append(f"resized from {image.width}x{image.height} to {size}x{size} ({how})")
        image = fit(image, size, resize, background=BACKGROUNDS[background])
    return image, "; ".join(notes)


@dataclass
class UnCLIPTab:
    generator: UnCLIPGenerator  # prior + decoder (variations, edit)
    name: str  # what the model is called (apps.catalog.model_names)
    about: str = ""  # one Markdown line (apps.catalog.describe)
    trained: TrainedOn = field(default_factory=TrainedOn)  # for the off-vocabulary warning of edit prompts
    display_size: int = 128  # images are upscaled (nearest) to this many pixels
    max_images: int = 8  # images per request, at most
    _examples: list[tuple[str, Image.Image]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.generator, UnCLIPGenerator):
            raise ValueError(f"the app's --unclip must be an unCLIP model (`t2i train unclip --prior`); "
                             f"{self.generator.family!r} is not")

    @classmethod
    def load(cls, spec: str, display_size: int = 128, max_images: int = 8) -> "UnCLIPTab":
        generator = load_generator(spec)
        name = model_names([spec])[0]
        trained = trained_on(spec)
        return cls(generator, name, describe(spec, name, generator.family, trained), trained, display_size, max_images)

    @property
    def size(self) -> int:
        return self.generator.size

    def _display(self, images: list[Image.Image]) -> list[Image.Image]:
        return [upscaled(im, self.display_size) for im in images]

    # ---- examples -------------------------------------------------------------------
    def examples(self) -> list[tuple[str, Image.Image]]:
        """(label, image) pairs: held-out shapes scenes (the test split) at the model's size (cached)."""
        if self._examples is None:
            from t2i.data.shapes import make_scenes, render

            scenes = make_scenes(EXAMPLES, seed=0, size=self.size, split="test")
            self._examples = [(f"{i}: {r['caption']}", render(r, self.size)) for i, r in enumerate(scenes)]
        return self._examples

    def example_labels(self) -> list[str]:
        return [label for label, _ in self.examples()]

    def _input(self, image: Any, example: Any) -> tuple[Image.Image, str]:
        """The upload if there is one, else the example: (the image at the model's size, what it is)."""
        if image is None:
            examples = dict(self.examples())
            if example not in examples:
                raise RequestError(f"Upload an image or pick one of the examples {list(examples)}; "
                                   f"got {str(example)[:60]!r}.")
            return examples[example], f"example {example}"
        upload = open_upload(image)  # a one-line RequestError for anything that is no image
        try:
            shown, note = model_input(upload, self.size, self.generator.reading)
        except (ValueError, OSError) as err:  # a mode Pillow cannot convert (e.g. 16-bit greyscale to RGB)
            raise RequestError(f"Cannot use this image: {str(err).splitlines()[0][:120]}; "
                               "upload an 8-bit PNG or JPEG.") from None
        return shown, "your image" + (f" ({note})" if note else "")

    def _check(self, n: Any, seed: Any) -> tuple[int, int]:
        return whole_number("number of images", n, 1, self.max_images), whole_number("seed", seed, 0, 2**31 - 1)

    # ---- variations and edits ---------------------------------------------------------
    def variations(self, image: Any, example: Any, n: Any, seed: Any, strength: Any = 0.0,
                   keep_layout: Any = False) -> tuple[Image.Image, list[Image.Image], str]:
        """(the input as the model sees it, ``n`` variations, a note); ``image``: an upload (path or PIL) or None;
        ``strength`` 0..1: how far the embedding is first re-sampled through the prior (0 = not at all);
        ``keep_layout``: embed the image as it is instead of copies with the content moved."""
        n, seed = self._check(n, seed)
        s = number_in("strength (0 = the image's own embedding)", strength, 0.0, 1.0)
        if not isinstance(keep_layout, bool):
            raise RequestError(f"Keep the layout must be true or false, got {keep_layout!r}.")
        shown, source = self._input(image, example)
        start = time.perf_counter()
        try:
            images = self.generator.variations(shown, n=n, seed=seed, strength=s,
                                               layout="keep" if keep_layout else "move")
        except GenerationError as err:
            raise RequestError(str(err)) from None
        seconds = time.perf_counter() - start
        how = ("the image's CLIP image embedding" if keep_layout else
               "CLIP image embeddings of copies with the content moved"
               if content_box(shown, background_colour(shown)) is not None else  # what relayout found to move
               "the image's CLIP image embedding (its content reaches every edge: no plain background to move it on)")
        how += ", decoded with new noise" if s == 0 else f", re-sampled through the prior (strength {s:g}), decoded"
        note = f"{n} variation(s) of {source} by **{self.name}**: {how}; {seconds:.2f} s, seed {seed}."
        return self._display([shown])[0], self._display(images), note

    def edit(self, image: Any, example: Any, prompt: Any, weight: Any, n: Any,
             seed: Any) -> tuple[Image.Image, list[Image.Image], str]:
        """(the input as the model sees it, ``n`` edits toward ``prompt``, a note); ``weight`` 0 = the image, 1 = the prompt."""
        check_prompt(prompt, empty="Type a prompt for the edit: it is empty.")
        w = number_in("weight (0 = the image, 1 = the prompt)", weight, 0.0, 1.0)
        n, seed = self._check(n, seed)
        prompt = " ".join(prompt.split())
        shown, source = self._input(image, example)
        start = time.perf_counter()
        try:
            images = self.generator.edit(shown, prompt, weight=w, n=n, seed=seed)
        except GenerationError as err:
            raise RequestError(str(err)) from None
        seconds = time.perf_counter() - start
        note = (f"{n} edit(s) of {source} toward \"{prompt}\" by **{self.name}**: (1 - {w:g}) x the image's CLIP "
                f"embedding + {w:g} x the prior's embedding of the prompt, decoded; {seconds:.2f} s, seed {seed}.")
        warning = outside_captions_warning(prompt, self.name, self.trained)
        if warning:
            note += f"\n\n**Outside the training captions:** {warning}."
        return self._display([shown])[0], self._display(images), note


def demo() -> None:
    import tempfile
    from pathlib import Path

    from t2i.unclip.testing import make_tiny_unclip

    with tempfile.TemporaryDirectory() as d:
        tab = UnCLIPTab.load(str(make_tiny_unclip(Path(d) / "unclip")), display_size=64)
        label = tab.example_labels()[0]
        print(tab.variations(None, label, 2, 0)[2])
        print(tab.edit(None, label, "a large blue square in the center", 0.5, 2, 0)[2])
