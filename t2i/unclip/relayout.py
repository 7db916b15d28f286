"""Re-laid-out copies of an image: its content moved to a random place on its own background.

unCLIP variations (Ramesh et al. 2022, Sec. 3.1) keep what the CLIP image embedding encodes and redraw
the rest. A CLIP trained on captions that name positions (as the order-aware `shapes-clip` is) encodes
the layout too, so plain variations repeat it. To vary the layout while keeping what the content is,
each variation is decoded from the embedding of its own re-laid-out copy of the input: the content
(the pixels that differ from the background) cut out as one box, so several objects keep their
relation, and pasted at a position drawn uniformly among those that keep it whole on the canvas.
The content is moved, not resized: resized copies of `shapes` scenes are read by shapes-clip as other
shapes (an ad-hoc trial in `benchmarks/RESULTS.md`, "unCLIP variations that move the layout").

The background is the most common colour of the border pixels; an image with no such background
(a photo whose content reaches every edge) or with no content is returned unchanged, so its
variations keep its layout.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

LAYOUTS = ("move", "keep")  # unCLIP variations: each one's content moved to a random place first / the image as it is
TOLERANCE = 24  # a pixel is content when some channel differs from the background by more than this (0..255)


def centre_square(image: Image.Image) -> Image.Image:
    """The centred square region of ``image``, the part CLIP's image processor keeps (shortest side resized, centre
    cropped), so that moved content stays in view."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def background_colour(image: Image.Image) -> tuple[int, int, int]:
    """The most common RGB colour among the border pixels."""
    a = np.asarray(image.convert("RGB"))
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    colours, counts = np.unique(border, axis=0, return_counts=True)
    return tuple(int(c) for c in colours[counts.argmax()])


def content_box(image: Image.Image, background: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    """``(left, top, right, bottom)`` (right/bottom exclusive) around the pixels unlike ``background``; None if
    there are none, or if the content touches all four edges (no background to move it on)."""
    a = np.asarray(image.convert("RGB")).astype(np.int16)
    content = np.abs(a - np.array(background, dtype=np.int16)).max(axis=-1) > TOLERANCE
    if not content.any():
        return None
    ys, xs = np.nonzero(content)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    if box == (0, 0, a.shape[1], a.shape[0]):
        return None
    return box


def relayout(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A copy of ``image`` (RGB) with its content box pasted at a place drawn uniformly from ``rng`` where it stays whole."""
    image = image.convert("RGB")
    background = background_colour(image)
    box = content_box(image, background)
    u = rng.random(2)  # x, y: drawn whatever the image, so later draws do not depend on it
    if box is None:
        return image.copy()
    patch = image.crop(box)
    out = Image.new("RGB", image.size, background)
    out.paste(patch, (round(u[0] * (image.width - patch.width)), round(u[1] * (image.height - patch.height))))
    return out
