"""Images -> feature vectors: the one place metrics turn pictures into points.

Every distribution metric (FID, KID, precision/recall, density/coverage, diversity) works
on feature vectors ``(N, D)``. They come from a ``FeatureExtractor``:

- ``inception_extractor(weights)``: Inception-v3 as used by FID (the TF 2015-12-05 graph
  ported by torch-fidelity), **only** from a weights file the user already has locally,
  given as a path or in ``$T2I_INCEPTION_WEIGHTS``, and only when its SHA-256 matches the
  published file. Nothing is ever downloaded. Numbers on it are reported as ``fid``/``kid``.
- the project's own evaluators (``t2i.evaluators``), whose penultimate-layer features
  give numbers reported as ``domain_fid``/``domain_kid``, never as FID.

Images are a list of PIL images or a float tensor ``(N, C, H, W)`` in ``[0, 1]``.

    python -c "from t2i.metrics.features import to_batch; from PIL import Image; print(to_batch([Image.new('RGB', (8, 8))]).shape)"
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

# The FID Inception weights (TF "inception-2015-12-05" ported to PyTorch), the file that
# torch-fidelity publishes as weights-inception-2015-12-05-6726825d.pth and pytorch-fid as
# pt_inception-2015-12-05-6726825d.pth (95,628,359 bytes). The name's suffix is the hash prefix.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_ENV = "T2I_INCEPTION_WEIGHTS"

class InceptionUnavailable(RuntimeError):
    """The FID Inception network cannot be used here (no local weights, wrong file, no torch-fidelity)."""


def to_batch(images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
    """A list of PIL images or an ``(N, C, H, W)`` tensor -> float tensor ``(N, C, H, W)`` in [0, 1]."""
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ValueError(f"an image tensor must be (N, C, H, W), got shape {tuple(images.shape)}")
        x = images.detach().float().cpu()
        if x.numel() and (x.min() < -1e-4 or x.max() > 1 + 1e-4):
            raise ValueError(f"image tensors must hold values in [0, 1], got [{x.min():.3f}, {x.max():.3f}]")
        return x.clamp(0, 1)
    if len(images) == 0:
        raise ValueError("got no images")
    arrays = []
    for im in images:
        if not isinstance(im, Image.Image):
            raise TypeError(f"images must be PIL images or one (N, C, H, W) tensor, got {type(im).__name__}")
        mode = "L" if im.mode in ("L", "1", "I", "F") else "RGB"
        a = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))  # (C, H, W)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"all images must have the same size and channels, got {sorted(shapes)}")
    return torch.from_numpy(np.stack(arrays))  # (N, C, H, W)


def is_features(x: object) -> bool:
    """A 2-D tensor or array is read as precomputed features ``(N, D)``; anything else as images."""
    return (isinstance(x, torch.Tensor) and x.dim() == 2) or (isinstance(x, np.ndarray) and x.ndim == 2)


@dataclass
class FeatureExtractor:
    """A named map from image batches ``(N, C, H, W)`` in [0, 1] to features ``(N, D)``."""

    name: str  # reported next to every number computed on these features
    fn: Callable[[torch.Tensor], torch.Tensor]  # one batch of images -> (B, D)
    batch_size: int = 256  # images per forward pass

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        x = to_batch(images)
        out = [self.fn(x[i:i + self.batch_size]).float().cpu() for i in range(0, len(x), self.batch_size)]
        return torch.cat(out).flatten(1)  # (N, D)


def as_features(x: object, extractor: FeatureExtractor | None, what: str = "images") -> torch.Tensor:
    """Features ``(N, D)`` float64 from precomputed features or from images through ``extractor``."""
    if is_features(x):
        feats = torch.as_tensor(x)
    elif extractor is None:
        raise ValueError(f"{what} are images but no feature extractor was given: pass extractor= "
                         "(an evaluator's .feature_extractor() or inception_extractor(path)) or (N, D) features")
    else:
        feats = extractor(x)
    if feats.dim() != 2 or len(feats) == 0:
        raise ValueError(f"{what}: features must be a non-empty (N, D) matrix, got shape {tuple(feats.shape)}")
    if not torch.isfinite(feats).all():
        raise ValueError(f"{what}: features contain NaN or inf")
    return feats.double()


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_inception_weights(path: str | Path | None = None) -> Path | None:
    """The user's local Inception weights file (argument, else ``$T2I_INCEPTION_WEIGHTS``), or None."""
    text = str(path) if path else os.environ.get(INCEPTION_ENV, "")
    return Path(text).expanduser() if text else None


def check_inception_weights(path: str | Path | None = None) -> Path:
    """Return the verified weights path, or raise InceptionUnavailable saying what to do."""
    found = find_inception_weights(path)
    if found is None:
        raise InceptionUnavailable(
            f"FID/KID/IS need the Inception-v3 weights file locally (never downloaded): pass its path or set "
            f"${INCEPTION_ENV} (file weights-inception-2015-12-05-6726825d.pth, sha256 {INCEPTION_SHA256}); "
            "or use domain-fid / domain-kid on the project's evaluator features")
    if not found.is_file():
        raise InceptionUnavailable(f"Inception weights file not found: {found}")
    digest = sha256_of(found)
    if digest != INCEPTION_SHA256:
        raise InceptionUnavailable(
            f"{found} has sha256 {digest}, not the FID Inception weights ({INCEPTION_SHA256}); "
            "numbers on other weights are not FID")
    return found


def inception_available(path: str | Path | None = None) -> bool:
    try:
        check_inception_weights(path)
    except InceptionUnavailable:
        return False
    return True


@functools.lru_cache(maxsize=2)
def _inception_net(path: str) -> torch.nn.Module:
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as err:
        raise InceptionUnavailable("the FID Inception network needs torch-fidelity: "
                                   "pip install torch-fidelity") from err
    # features "2048" (pool3, FID/KID) and "logits_unbiased" (IS, as in torch-fidelity and torchmetrics)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=path)
    return net.eval()


def inception_extractor(weights: str | Path | None = None, output: str = "pool",
                        batch_size: int = 64) -> FeatureExtractor:
    """Inception-v3 features: ``output="pool"`` (2048-d, FID/KID) or ``"logits"`` (1008-d, Inception Score)."""
    if output not in ("pool", "logits"):
        raise ValueError(f"output must be 'pool' or 'logits', got {output!r}")
    net = _inception_net(str(check_inception_weights(weights)))
    index = 0 if output == "pool" else 1

    def fn(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey -> RGB
        # torch-fidelity takes uint8 (B, 3, H, W) and resizes to 299 itself
        return net((x * 255).round().to(torch.uint8))[index]

    name = "inception-v3" if output == "pool" else "inception-v3-logits"
    return FeatureExtractor(name=name, fn=fn, batch_size=batch_size)
