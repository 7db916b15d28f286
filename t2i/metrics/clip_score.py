"""CLIP score: how well each image matches its prompt, by a CLIP model.

Hessel et al. 2021, "CLIPScore: A Reference-free Evaluation Metric for Image Captioning",
eq. (1): CLIP-S(c, v) = w * max(cos(c, v), 0). We use w = 100, as torchmetrics'
``CLIPScore`` does, so the number reads as a percentage of perfect alignment.

Any model with ``encode_image`` and ``encode_text`` works (an open_clip ``CLIP``, ours from
``t2i.clip.load_clip`` or a pretrained one), with its tokenizer (``list[str] -> ids``) and
its preprocessing: either ``preprocess`` on an image batch ``(B, C, H, W)`` in [0, 1] (default
for our models: ``t2i.clip.preprocess_images``) or ``image_transform`` on each PIL image
(open_clip's ``create_model_and_transforms`` transform). For a fair benchmark, score with a
CLIP the generators were *not* conditioned on.

    python -c "from t2i.metrics.clip_score import demo; demo()"
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms.functional import to_pil_image

from t2i.metrics.features import to_batch


@torch.no_grad()
def clip_cosines(images: Sequence[Image.Image] | torch.Tensor, prompts: Sequence[str], model: Any, tokenizer: Callable,
                 preprocess: Callable | None = None, image_transform: Callable | None = None,
                 batch_size: int = 64) -> torch.Tensor:
    """Cosine similarity of each image with its own prompt -> ``(N,)``."""
    if isinstance(prompts, str) or len(prompts) != len(images):
        raise ValueError(f"give one prompt per image: {len(images)} images, "
                         f"{1 if isinstance(prompts, str) else len(prompts)} prompts")
    if not hasattr(model, "encode_image") or not hasattr(model, "encode_text"):
        raise TypeError(f"model must have encode_image and encode_text (a CLIP), got {type(model).__name__}")
    if preprocess is not None and image_transform is not None:
        raise ValueError("give preprocess (batch of tensors) or image_transform (each PIL image), not both")
    if preprocess is None and image_transform is None:
        from t2i.clip import preprocess_images  # our open_clip models carry their preprocessing config

        def preprocess(x: torch.Tensor) -> torch.Tensor:
            return preprocess_images(model, x)

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    cosines = []
    for i in range(0, len(prompts), batch_size):
        chunk = images[i:i + batch_size]
        if image_transform is not None:  # open_clip style: PIL -> (3, S, S) each
            pils = [im if isinstance(im, Image.Image) else to_pil_image(im) for im in chunk]
            pixels = torch.stack([image_transform(im) for im in pils])
        else:
            pixels = preprocess(to_batch(chunk))  # (B, 3, S, S)
        img = model.encode_image(pixels.to(device)).float()  # (B, P)
        txt = model.encode_text(tokenizer(list(prompts[i:i + batch_size])).to(device)).float()  # (B, P)
        cosines.append(torch.nn.functional.cosine_similarity(img, txt, dim=-1).cpu())
    model.train(was_training)
    return torch.cat(cosines)


def clip_score(images: Sequence[Image.Image] | torch.Tensor, prompts: Sequence[str], model: Any, tokenizer: Callable,
               preprocess: Callable | None = None, image_transform: Callable | None = None,
               batch_size: int = 64, model_name: str = "") -> dict[str, Any]:
    """Hessel et al. 2021 eq. (1) with w = 100: mean and std of 100 * max(cos(image, prompt), 0)."""
    scores = 100 * clip_cosines(images, prompts, model, tokenizer, preprocess, image_transform, batch_size).clamp_min(0)
    return {"clip_score": float(scores.mean()), "clip_score_std": float(scores.std()) if len(scores) > 1 else 0.0,
            "n": len(scores), "clip_model": model_name or type(model).__name__}


def demo() -> None:
    import open_clip

    from t2i.clip.testing import tiny_clip

    model = tiny_clip()
    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=16)
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    print(clip_score(images, ["a red square", "a blue square"], model, tokenizer))
