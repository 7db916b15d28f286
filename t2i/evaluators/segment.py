"""Find the objects of a shapes image: palette colour per pixel, connected components, geometry.

The measuring half of the shapes evaluator (``t2i.evaluators.shapes``), analytic and
resolution-free, following the spec's "Judging a generated image against its prompt"
(``shared/specs/shapes.md``):

1. each pixel p is given the palette colour c whose direction is closest to p's
   (largest cosine), and a coverage ``alpha = p.c / |c|^2``: anti-aliasing only scales a
   colour towards the black background, so the direction survives it;
2. pixels with ``alpha >= 0.5`` are foreground; 8-connected components are taken per
   colour, and components smaller than a tenth of a small shape's box are specks (ignored);
3. each object's colour is the palette colour nearest (Euclidean) to the mean of its
   pixels, its box is the component's bounding box, its extent the box's longer side and
   its centre the box's centre (the spec's definition, for the triangle too);
4. ``silhouette_crop`` cuts the object's coverage map, centred and scaled by its extent,
   to a fixed grid for the shape classifier.

    python -c "from t2i.evaluators.segment import demo; demo()"
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from t2i.data.shapes import ANCHORS, COLOURS, extent

PALETTE = np.array(list(COLOURS.values()), dtype=np.float64)  # (7, 3)
PALETTE_DIRS = PALETTE / np.linalg.norm(PALETTE, axis=1, keepdims=True)  # (7, 3) unit vectors
COLOUR_NAMES = list(COLOURS)
FOREGROUND_ALPHA = 0.5  # coverage above which a pixel belongs to an object
SPECK_FRACTION = 0.1  # components smaller than this share of a small shape's box are noise
CROP = 24  # side of the silhouette grid fed to the shape classifier
CROP_MARGIN = 1.3  # the crop window is this many extents wide
EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity


@dataclass
class Blob:
    """One object found in an image (pixel units, x to the right, y downwards)."""

    colour: str  # nearest palette colour to the mean pixel
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 of the covered pixels (x1, y1 exclusive)
    area: int  # foreground pixels
    mask: np.ndarray = field(repr=False)  # (S, S) bool: the component
    alpha: np.ndarray = field(repr=False)  # (S, S) float: coverage by this object's palette colour

    @property
    def extent(self) -> float:
        return max(self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1])

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2)


def size_threshold(S: int) -> float:
    """Spec: small if the extent is below the geometric mean of the small and large extents."""
    return float(np.sqrt(extent("small", S) * extent("large", S)))


def size_of(blob_extent: float, S: int) -> str:
    return "small" if blob_extent < size_threshold(S) else "large"


def position_of(centre: tuple[float, float], S: int) -> str:
    """Spec: the nearest anchor to the object's centre."""
    cx, cy = centre[0] / S, centre[1] / S
    return min(ANCHORS, key=lambda p: (ANCHORS[p][0] - cx) ** 2 + (ANCHORS[p][1] - cy) ** 2)


def relation_of(subject: tuple[float, float], other: tuple[float, float]) -> str:
    """Spec: the subject's displacement from the other, in the direction of its dominant axis."""
    dx, dy = subject[0] - other[0], subject[1] - other[1]  # y grows downwards
    if abs(dy) > abs(dx):
        return "above" if dy < 0 else "below"
    return "to the left of" if dx < 0 else "to the right of"


def find_blobs(image: np.ndarray) -> list[Blob]:
    """Objects of one image ``(S, S, 3)`` with values in [0, 255], largest first."""
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"a shapes image must be square RGB (S, S, 3), got shape {image.shape}")
    S = image.shape[0]
    p = image.astype(np.float64)  # (S, S, 3)
    norm = np.linalg.norm(p, axis=2)  # (S, S)
    label = (p @ PALETTE_DIRS.T).argmax(axis=2)  # (S, S): palette index of the closest direction
    alpha_all = (p @ PALETTE.T) / (PALETTE ** 2).sum(1)  # (S, S, 7): coverage by each colour
    alpha = np.take_along_axis(alpha_all, label[..., None], axis=2)[..., 0]
    foreground = (alpha >= FOREGROUND_ALPHA) & (norm > 0)
    min_area = max(3, int(SPECK_FRACTION * extent("small", S) ** 2))
    blobs = []
    for k in range(len(PALETTE)):
        components, count = ndimage.label(foreground & (label == k), structure=EIGHT)
        for idx, sl in enumerate(ndimage.find_objects(components), start=1):
            mask = components == idx
            area = int(mask.sum())
            if area < min_area:
                continue
            mean = p[mask].mean(0)  # (3,)
            colour = COLOUR_NAMES[int(((PALETTE - mean) ** 2).sum(1).argmin())]
            bbox = (float(sl[1].start), float(sl[0].start), float(sl[1].stop), float(sl[0].stop))
            own = alpha_all[..., COLOUR_NAMES.index(colour)].clip(0, 1)
            near = ndimage.binary_dilation(mask, structure=EIGHT)  # keep the anti-aliased rim
            others = foreground & ~mask  # pixels of other objects never count as this one's rim
            blobs.append(Blob(colour, bbox, area, mask, np.where(near & ~others, own, 0.0)))
    return sorted(blobs, key=lambda b: -b.area)


def silhouette_crop(blob: Blob) -> torch.Tensor:
    """The blob's coverage map resampled to ``(1, CROP, CROP)``: centred, CROP_MARGIN extents wide."""
    S = blob.alpha.shape[0]
    cx, cy = blob.centre
    half = CROP_MARGIN * max(blob.extent, 1.0) / 2
    # output pixel centres in image coordinates, mapped to grid_sample's [-1, 1] (align_corners=False)
    steps = (torch.arange(CROP, dtype=torch.float64) + 0.5) / CROP * 2 - 1  # (CROP,)
    xs = (cx + steps * half) / S * 2 - 1
    ys = (cy + steps * half) / S * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].float()  # (1, CROP, CROP, 2)
    src = torch.from_numpy(blob.alpha).float()[None, None]  # (1, 1, S, S)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def demo() -> None:
    from t2i.data.shapes import make_scenes, render

    for rec in make_scenes(3, seed=1, size=32, split="test"):
        blobs = find_blobs(np.asarray(render(rec)))
        print(rec["caption"], "->", [(b.colour, size_of(b.extent, 32), position_of(b.centre, 32)) for b in blobs])
