"""Per-item preprocessing of user images and captions: resize mode, random flip, caption draw.

Every user-data loader (folders, CSV, shards, ``datasets``) applies the same rules, the options
of diffusers' ``train_text_to_image.py`` (``--resolution``, ``--center_crop``, ``--random_flip``):

- ``resize`` (``RESIZE_MODES``) turns an image of any shape into ``size x size``:
  ``center-crop`` (default) resizes the shorter side to ``size`` and keeps the centre;
  ``random-crop`` resizes the same way and keeps a random window along the longer side;
  ``pad`` resizes the longer side to ``size`` and letterboxes on the background (nothing is cut off);
  ``stretch`` resizes both sides to ``size`` (the aspect ratio changes).
- ``random_flip``: probability of a horizontal flip. A flip turns "left of" into "right of", so
  data whose captions name positions (shapes) refuses it.
- several captions per image: one is drawn per access; without ``draw`` (evaluation) the first.
- ``background`` (``BACKGROUNDS``): the colour under transparent pixels and around a padded image;
  black (the default, the background of shapes), or white for dark drawings on transparency (icons, line art).

Random choices come from ``item_rng(seed, epoch, index)``, a ``random.Random`` seeded by those
three numbers alone: the same run draws the same crops, flips and captions in any process or
DataLoader worker, and a resumed run (same epoch, same indices) continues bit-identically.
``Run.dataloader`` calls ``dataset.set_epoch(epoch)`` before each epoch.

    python -c "from t2i.data.transforms import demo; demo()"
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from PIL import Image, ImageOps

RESIZE_MODES = ("center-crop", "random-crop", "pad", "stretch")
BACKGROUNDS = {"black": (0, 0, 0), "white": (255, 255, 255)}  # --background: name -> RGB
CUT_NOTED = 0.1  # ImageShapes counts images a crop cuts by more than this fraction of their long side
EXIF_ORIENTATION = 0x0112  # the EXIF tag that ImageOps.exif_transpose applies when an image is loaded
EXIF_IN_HEADER = ("JPEG", "MPO", "TIFF", "WEBP")  # formats whose EXIF is read with the header (PNG's needs a decode)
_RESAMPLE = Image.Resampling.BICUBIC


@dataclass
class Augment:
    """How a user-data loader prepares each item (see the module docstring)."""

    resize: str = "center-crop"  # one of RESIZE_MODES
    random_flip: float = 0.0  # probability of a horizontal flip
    draw: bool = False  # several captions: draw one per access (training); False = the first (evaluation)
    seed: int = 0  # with the epoch and the item index, seeds every random choice
    epoch: int = 0  # set by set_epoch before each epoch
    background: str = "black"  # one of BACKGROUNDS: under transparent pixels and around a padded image

    def __post_init__(self):
        check_resize(self.resize)
        check_background(self.background)
        if not 0.0 <= self.random_flip <= 1.0:
            raise ValueError(f"random_flip is a probability in [0, 1], got {self.random_flip!r}")

    @property
    def random(self) -> bool:
        """True when items differ between accesses (so a cache of prepared images would be wrong)."""
        return self.resize == "random-crop" or self.random_flip > 0 or self.draw

    def rng(self, index: int) -> random.Random:
        return item_rng(self.seed, self.epoch, index)

    def caption(self, captions: Sequence[str], rng: random.Random) -> str:
        """The first caption, or (``draw``) one drawn from ``rng``."""
        if self.draw and len(captions) > 1:
            return captions[rng.randrange(len(captions))]
        return captions[0]

    def image(self, img: Image.Image, size: int, rng: random.Random) -> Image.Image:
        img = fit(img, size, self.resize, rng, BACKGROUNDS[self.background])
        if self.random_flip > 0 and rng.random() < self.random_flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img


def evaluation_resize(mode: str) -> str:
    """The resize mode evaluation reads with: a random crop's centre (evaluation takes no random choices)."""
    return "center-crop" if mode == "random-crop" else mode


def check_resize(mode: str) -> str:
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {list(RESIZE_MODES)}, got {mode!r}")
    return mode


def check_background(name: str) -> str:
    if name not in BACKGROUNDS:
        raise ValueError(f"background must be one of {list(BACKGROUNDS)}, got {name!r}")
    return name


def item_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random choices for one access of item ``index`` in ``epoch`` (string seeds hash with
    SHA-512 in ``random``, independent of PYTHONHASHSEED)."""
    return random.Random(f"t2i-item|{int(seed)}|{int(epoch)}|{int(index)}")


def fit(img: Image.Image, size: int, mode: str = "center-crop", rng: random.Random | None = None,
        background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """``img`` (any W x H) -> ``size x size`` by ``mode`` (``RESIZE_MODES``; ``pad`` on ``background``); bicubic,
    antialiased."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    if mode == "center-crop":  # the pre-existing rule: crop the centred square region, then resize
        return ImageOps.fit(img, (size, size), method=_RESAMPLE, centering=(0.5, 0.5))
    if mode == "stretch":
        return img.resize((size, size), _RESAMPLE)
    if mode == "pad":
        scale = size / max(w, h)
        inner = (max(1, round(w * scale)), max(1, round(h * scale)))
        canvas = Image.new("RGB", (size, size), background)  # the colour alpha is composited on
        canvas.paste(img if img.size == inner else img.resize(inner, _RESAMPLE),
                     ((size - inner[0]) // 2, (size - inner[1]) // 2))
        return canvas
    if mode == "random-crop":
        scale = size / min(w, h)
        rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
        if (rw, rh) != (w, h):
            img = img.resize((rw, rh), _RESAMPLE)
        rng = rng or random.Random(0)
        left, top = rng.randint(0, rw - size), rng.randint(0, rh - size)
        return img.crop((left, top, left + size, top + size))
    raise ValueError(f"resize must be one of {list(RESIZE_MODES)}, got {mode!r}")


@dataclass
class ImageShapes:
    """How many images a crop cuts, counted as they are checked (``BadDataReport.shapes``): a user folder of
    drawings or photos of many aspect ratios loses their ends to the default ``center-crop``, silently."""

    resize: str = "center-crop"  # the resize mode the images are read with (one of RESIZE_MODES)
    checked: int = 0  # images counted
    sampled: bool = False  # the images counted are a sample of the data (the report says so)
    cut: int = 0  # images a crop cuts by more than CUT_NOTED of their long side
    widest: float = 0.0  # the largest width / height seen
    tallest: float = float("inf")  # the smallest width / height seen

    def add(self, image: Image.Image) -> None:
        """Count an opened image (its header is enough) as it will be seen: EXIF rotations by 90 degrees applied."""
        width, height = image.size
        if image.format in EXIF_IN_HEADER and image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
            width, height = height, width
        aspect = width / height
        self.checked += 1
        self.widest, self.tallest = max(self.widest, aspect), min(self.tallest, aspect)
        if 1 - min(aspect, 1 / aspect) > CUT_NOTED:
            self.cut += 1

    @property
    def crops(self) -> bool:
        return self.resize in ("center-crop", "random-crop")

    def summary(self) -> str:
        """One line when a crop cuts off more than ``CUT_NOTED`` of some images, naming the fix; else ""."""
        if not (self.crops and self.cut):
            return ""
        most = 1 - 1 / max(self.widest, 1 / self.tallest)
        images = "sampled images" if self.sampled else "images"
        return (f"  not square: {self.cut} of {self.checked} {images} (width / height {self.tallest:.2f} to "
                f"{self.widest:.2f}) lose more than {CUT_NOTED:.0%} of their long side to --resize {self.resize} "
                f"(up to {most:.0%}); --resize pad keeps whole images")


def caption_columns(caption_column: str) -> list[str]:
    """``--caption-column``'s names: one column, or several joined by commas (``caption_0,caption_1,...``: some hub
    copies of Flickr8k keep an image's five captions in five columns), whose values are one image's captions."""
    return [name.strip() for name in caption_column.split(",") if name.strip()]


def require_columns(source: str, found: Sequence[str], image_column: str, caption_column: str) -> None:
    """ValueError naming every absent image or caption column (``caption_columns``) and the options that set them,
    with the columns ``found``: one error for a table whose defaults are all wrong."""
    wanted = ((image_column, "image_column"), *((name, "caption_column") for name in caption_columns(caption_column)))
    missing = [(needed, option) for needed, option in wanted if needed and needed not in found]
    if missing:
        options = list(dict.fromkeys(option for _, option in missing))
        raise ValueError(f"{source}: no {' or '.join(repr(needed) for needed, _ in missing)} column (set "
                         f"{' and '.join('--' + option.replace('_', '-') for option in options)}, or "
                         f"{', '.join(option + '=...' for option in options)} in load_dataset, to columns found: "
                         f"{sorted(found)})")


def joined_captions(values: list[Any]) -> Any:
    """One row's caption value read from ``caption_columns``: a single column's value as it is, several columns'
    as one list (lists among them flattened); ``check_captions`` then drops the blank ones."""
    if len(values) == 1:
        return values[0]
    return [c for value in values for c in (value if isinstance(value, (list, tuple)) else [value])]


def check_captions(value: Any) -> list[str]:
    """A caption or a list of captions -> the non-blank ones, stripped; ``BadImage`` if none."""
    from .bad_data import BadImage, check_caption

    if isinstance(value, (list, tuple)):
        captions = [c.strip() for c in value if isinstance(c, str) and c.strip()]
        if not captions:
            raise BadImage("empty_caption", f"no non-empty caption in a list of {len(value)}")
        return captions
    return [check_caption(value)]


def demo() -> None:
    img = Image.new("RGB", (8, 4), (255, 0, 0))
    aug = Augment(resize="random-crop", random_flip=0.5, draw=True, seed=1)
    for mode in RESIZE_MODES:
        print(mode, fit(img, 4, mode, aug.rng(0)).size)
    print([aug.caption(["a", "b", "c"], aug.rng(i)) for i in range(6)])
