"""Bad data: image loading with conversion rules, and the report of what was skipped.

A training run must never die mid-epoch on one bad file. Every user-data loader reads
images through ``load_image`` and records problems in a ``BadDataReport``; with
``strict=True`` the loaders call ``report.raise_if_problems()`` before training starts.

Conversion rules (applied, counted under ``converted``, not problems):
- grayscale ``L`` / bilevel ``1``: replicated to RGB;
- palette ``P``: expanded to its colours (RGBA first if it has transparency);
- alpha (``RGBA``, ``LA``, ``PA``): composited on black, the background of ``shapes`` (or on white:
  ``--background white``, ``Augment.background``);
- 16/32-bit integer grayscale (``I;16*``, ``I``): scaled by 255/65535 (assumed 16-bit);
- ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's conversion to RGB;
- EXIF orientation is applied; animated images use their first frame.
Problems (the item is skipped): ``missing`` file, ``corrupt`` (not an image Pillow can
open, or not a regular file: a folder, a device, a pipe), ``truncated`` (opens but fails to
decode), ``too_large`` (more than ``MAX_PIXELS`` pixels: a decompression bomb or a scan far
beyond any training size, refused before decoding), ``unsupported`` mode (e.g. float ``F``,
whose range is ambiguous), ``empty_caption`` (missing or whitespace-only text), ``bad_row``
(a metadata line that is not UTF-8 or not JSON, has more fields than the CSV header, no file
name, a path leaving the dataset folder, or a non-integer label).

    python -c "from t2i.data.bad_data import demo; demo()"
"""

from __future__ import annotations

import io
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .transforms import BACKGROUNDS, Augment, ImageShapes

ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")  # modes with transparency, composited on the background
PROBLEMS = ("missing", "corrupt", "truncated", "too_large", "unsupported", "empty_caption", "bad_row")
MAX_PIXELS = 64_000_000  # width x height above which an image is refused unread (Pillow warns at 89 M, refuses at 179 M)
CONVERTIBLE = {"RGB", "L", "1", "P", "RGBA", "LA", "PA", "I;16", "I;16B", "I;16L", "I;16N", "I",
               "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"}
MAX_EXAMPLES = 5  # how many paths per kind a summary shows by default (trainers print this)
CONVERTED_EXAMPLES = 3  # how many paths per conversion a summary shows (conversions are not problems)
MAX_KEPT = 1000  # how many paths per kind the report keeps (``t2i data validate`` shows them all)


class BadDataError(ValueError):
    """Raised under ``strict=True`` when a dataset has problems."""


class BadItemWarning(UserWarning):
    """An item skipped while iterating (found only when decoded, e.g. a truncated file); the ``t2i`` command
    prints it as one ``warning: ...`` line, without Python's source location."""


class BadImage(Exception):
    """An image that cannot be used; ``kind`` is one of ``PROBLEMS``."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass
class BadDataReport:
    """Counts per kind and the first few ``(path, detail)`` examples of each; conversions counted per rule;
    the images' aspect ratios (``shapes``: how many a crop cuts)."""

    source: str = ""  # what was checked (a folder, a CSV, shards)
    counts: dict[str, int] = field(default_factory=dict)  # kind -> how many items
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # kind -> first few
    checked: int = 0  # items looked at (a table's rows)
    images: int | None = None  # how many images those rows name, when several rows name one (one per caption)
    conversions: dict[str, int] = field(default_factory=dict)  # conversion rule (the detail) -> how many items
    shapes: ImageShapes = field(default_factory=ImageShapes)  # aspect ratios of the images checked
    notes: list[str] = field(default_factory=list)  # what the loader inferred (labels from class folders, ...)

    def add(self, kind: str, path: str, detail: str = "") -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "converted":
            self.conversions[detail] = self.conversions.get(detail, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < MAX_KEPT and (path, detail) not in shown:
            shown.append((str(path), detail))

    @property
    def problems(self) -> int:
        """Items skipped (conversions are not problems)."""
        return sum(v for k, v in self.counts.items() if k in PROBLEMS)

    @property
    def converted(self) -> int:
        return self.counts.get("converted", 0)

    def __bool__(self) -> bool:  # truthy when something was skipped
        return self.problems > 0

    @property
    def noteworthy(self) -> bool:
        """Something to tell before training: items skipped, converted, cut by a crop, or labels inferred."""
        return bool(self.problems or self.converted or self.notes or self.shapes.summary())

    def summary(self, max_examples: int | None = MAX_EXAMPLES,
                converted_examples: int | None = CONVERTED_EXAMPLES) -> str:
        """Counts per problem kind with the first ``max_examples`` paths of each (None: all kept); conversions
        per rule with ``converted_examples`` paths each; the aspect-ratio line when a crop cuts images."""
        looked_at = f"{self.checked} items" if self.images is None else f"{self.checked} rows ({self.images} images)"
        head = f"{self.source or 'data'}: {looked_at} checked, {self.problems} skipped"
        if self.converted:
            head += f", {self.converted} converted"
        lines = [head, *(f"  {note}" for note in self.notes)]
        for kind in PROBLEMS:
            if self.counts.get(kind):
                lines.append(f"  {kind}: {self.counts[kind]}")
                shown = self.examples.get(kind, [])[:max_examples]
                lines += [f"    {p}" + (f"  ({d})" if d else "") for p, d in shown]
                if self.counts[kind] > len(shown):
                    lines.append(f"    ... and {self.counts[kind] - len(shown)} more")
        if self.converted:
            lines.append(f"  converted: {self.converted}")
            for rule, count in sorted(self.conversions.items(), key=lambda kv: -kv[1]):
                paths = [p for p, d in self.examples.get("converted", []) if d == rule][:converted_examples]
                more = f", ... and {count - len(paths)} more" if count > len(paths) else ""
                lines.append(f"    {rule}: {count}" + (f" ({', '.join(paths)}{more})" if paths else ""))
        return "\n".join(filter(None, [*lines, self.shapes.summary()]))

    __str__ = summary

    def raise_if_problems(self) -> None:
        if self:
            raise BadDataError(f"strict mode: bad data found, refusing to train.\n{self.summary()}\n"
                               "Fix or remove these items, or run without --strict to skip them.")

    def warn(self, kind: str, path: str, detail: str) -> None:
        """Record a problem found while iterating (possibly in a DataLoader worker) and warn."""
        self.add(kind, path, detail)
        warnings.warn(f"skipping bad item {path}: {kind} ({detail})", BadItemWarning, stacklevel=3)


def open_image(src: str | Path | bytes, name: str = "") -> Image.Image:
    """Open (header only) a path or bytes; raise ``BadImage`` (missing/corrupt/too_large)."""
    if not isinstance(src, (bytes, bytearray)):
        path = Path(src)
        if not path.exists():
            raise BadImage("missing", f"no such file {name or src}")
        if not path.is_file():  # a folder, a device (/dev/zero), a pipe: reading it could block or never end
            raise BadImage("corrupt", f"{name or src} is not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src)
    except FileNotFoundError as err:
        raise BadImage("missing", f"no such file {name or src}") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImage("too_large", f"{err}") from err
    except Exception as err:  # UnidentifiedImageError, broken headers (Pillow raises many kinds)
        raise BadImage("corrupt", f"{type(err).__name__}: {err}") from err
    width, height = img.size
    if width * height > MAX_PIXELS:
        img.close()
        raise BadImage("too_large", f"{width} x {height} pixels, more than MAX_PIXELS = {MAX_PIXELS:,}")
    if width == 0 or height == 0:
        img.close()
        raise BadImage("corrupt", f"image of size {width} x {height}")
    return img


def check_mode(img: Image.Image, background: str = "black") -> str:
    """The conversion the image needs, for the report ("" for RGB: none); ``BadImage`` when it cannot be converted."""
    if img.mode not in CONVERTIBLE:
        raise BadImage("unsupported", f"image mode {img.mode!r} has no meaningful RGB conversion")
    if img.mode == "RGB":
        return ""
    if img.mode in ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        return f"{img.mode} -> RGB, transparent pixels onto {background} (--background)"
    return f"{img.mode} -> RGB"


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Apply the conversion rules of the module docstring, alpha onto ``background``; ``img`` must be decoded."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode.startswith("I"):  # 16-bit (or 32-bit int) grayscale: scale 0..65535 -> 0..255
        arr = np.asarray(img, dtype=np.float64) * (255.0 / 65535.0)
        img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode in ALPHA_MODES:  # composite on the background
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def to_tensor(img: Image.Image, channels: int = 3) -> torch.Tensor:
    """RGB PIL image -> FloatTensor (C, H, W) in [0, 1]; channels=1 uses ITU-R 601 luma."""
    if channels == 1:
        img = img.convert("L")
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[:, :, None] if arr.ndim == 2 else arr  # (H, W, C)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)  # (C, H, W)


def decode_image(src: str | Path | bytes | Image.Image, name: str = "", background: str = "black"
                 ) -> tuple[Image.Image, str]:
    """Fully decode (first frame, EXIF rotation applied) and convert to RGB, alpha onto ``background``.
    Returns ``(the RGB image, the conversion applied or "")``; raises ``BadImage``."""
    img = src if isinstance(src, Image.Image) else open_image(src, name)
    converted = check_mode(img, background)
    try:
        img.seek(0)  # first frame of animated images
        img = ImageOps.exif_transpose(img)
        img.load()
    except (OSError, ValueError, SyntaxError, EOFError) as err:  # truncated / broken data
        raise BadImage("truncated", f"{type(err).__name__}: {err}") from err
    except Exception as err:  # malformed files make Pillow raise odd errors (struct.error, IndexError, ...)
        raise BadImage("corrupt", f"cannot decode: {type(err).__name__}: {err}") from err
    try:
        return to_rgb(img, BACKGROUNDS[background]), converted
    except Exception as err:
        raise BadImage("unsupported", f"cannot convert {img.mode} {img.size}: {type(err).__name__}: {err}") from err


def load_image(src: str | Path | bytes | Image.Image, size: int, channels: int = 3, name: str = "",
               augment: Augment | None = None, rng: random.Random | None = None) -> tuple[torch.Tensor, str]:
    """Fully decode, convert, resize by ``augment`` (default: centre crop) and maybe flip.
    Returns ``(tensor (C, size, size), the conversion applied or "")``; raises ``BadImage``."""
    augment = augment or Augment()
    rgb, converted = decode_image(src, name, augment.background)
    return to_tensor(augment.image(rgb, size, rng or random.Random(0)), channels), converted


def check_caption(text: object) -> str:
    """The caption stripped; ``BadImage('empty_caption')`` when missing, not text, or blank."""
    if not isinstance(text, str):
        raise BadImage("empty_caption", f"caption is {type(text).__name__}, not text")
    if not text.strip():
        raise BadImage("empty_caption", "caption is empty")
    return text.strip()


def demo() -> None:
    report = BadDataReport(source="demo")
    for src in (b"not an image", "/nonexistent.png"):
        try:
            load_image(src, 32)
        except BadImage as bad:
            report.add(bad.kind, str(src)[:20], bad.detail)
    report.checked = 2
    print(report)
