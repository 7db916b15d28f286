"""A CLIP's image embeddings as metric features: FID and KID on any data ("CLIP FID", "CLIP KID").

FID's Inception-v3 judges images by ImageNet classes, which says little about drawings of
shapes, faces or a user's own photos, and its weights are not always at hand. Kynkaanniemi et
al. 2023, "The Role of ImageNet Classes in Frechet Inception Distance" (ICLR), Sec. 5, propose
the same Frechet distance on CLIP image embeddings (FID_CLIP), which follows human judgement
better. Here the CLIP is the user's **evaluation CLIP** (trained on the training split only),
so the numbers work on any captioned data but are on that CLIP's scale: compare them with the
real-vs-real floor measured with the same CLIP and the same count, never across CLIPs.

Features are the unit-normalised image embeddings ``(N, P)`` (the space the CLIP compares
images and captions in); Frechet distance: Heusel et al. 2017 eq. (6) (``t2i.metrics.frechet``);
KID: Binkowski et al. 2018 (``t2i.metrics.kid``).

    python -c "from t2i.metrics.clip_features import demo; demo()"
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from t2i.metrics.features import FeatureExtractor, as_features
from t2i.metrics.frechet import frechet_from_features
from t2i.metrics.kid import kid_from_features


def clip_extractor(model: Any, name: str = "", batch_size: int = 128) -> FeatureExtractor:
    """Unit-normalised CLIP image embeddings ``(N, P)`` of images ``(N, C, H, W)`` in [0, 1].

    ``model``: an open_clip CLIP built by ``t2i.clip`` (it carries its preprocessing: resize to its
    input size, its mean and std), e.g. ``t2i.clip.load_clip(folder_or_name)``.
    """
    from t2i.clip import preprocess_images

    if not hasattr(model, "encode_image") or not hasattr(model, "encode_text"):
        raise TypeError(f"model must have encode_image and encode_text (a CLIP), got {type(model).__name__}")
    model.eval()
    device = next(model.parameters()).device

    def fn(x: torch.Tensor) -> torch.Tensor:
        return model.encode_image(preprocess_images(model, x.to(device)), normalize=True)  # (B, P)

    return FeatureExtractor(name=f"clip:{name or type(model).__name__}", fn=fn, batch_size=batch_size)


@torch.no_grad()
def clip_text_features(model: Any, texts: Sequence[str], batch_size: int = 512) -> torch.Tensor:
    """Unit-normalised CLIP text embeddings ``(N, P)`` of ``texts``."""
    from t2i.clip.evaluate import encode_texts

    return encode_texts(model, list(texts), batch_size=batch_size, device=next(model.parameters()).device)


def clip_fid(real: Any, fake: Any, extractor: FeatureExtractor | None = None) -> dict[str, Any]:
    """Frechet distance on CLIP image embeddings (Kynkaanniemi et al. 2023's FID_CLIP), not FID.

    ``real``/``fake``: images with ``extractor`` (``clip_extractor(model)``), or CLIP features ``(N, D)``.
    """
    f_real, f_fake = as_features(real, extractor, "real"), as_features(fake, extractor, "fake")
    return {"clip_fid": frechet_from_features(f_real, f_fake), "n_real": len(f_real), "n_fake": len(f_fake),
            "features": extractor.name if extractor else "given"}


def clip_kid(real: Any, fake: Any, extractor: FeatureExtractor | None = None, subset_size: int = 1000,
             subsets: int = 100, seed: int = 0) -> dict[str, Any]:
    """KID (Binkowski et al. 2018) on CLIP image embeddings, not KID on Inception."""
    f_real, f_fake = as_features(real, extractor, "real"), as_features(fake, extractor, "fake")
    mean, std = kid_from_features(f_real, f_fake, subset_size, subsets, seed)
    return {"clip_kid": mean, "clip_kid_std": std, "n_real": len(f_real), "n_fake": len(f_fake),
            "features": extractor.name if extractor else "given"}


def demo() -> None:
    from t2i.clip.testing import tiny_clip

    extractor = clip_extractor(tiny_clip(), "tiny")
    a, b = torch.rand(40, 3, 32, 32), torch.rand(40, 3, 32, 32)
    print(clip_fid(a, b, extractor), clip_kid(a, b * 0.5, extractor))
