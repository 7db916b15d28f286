"""The digits classifier: scores class-conditional samples of 32 px digits.

A small CNN trained by ``t2i train evaluators --which digits`` on the digits train split
(``t2i.data``: scikit-learn's 8x8 digits upsampled to 32 px, 1 channel, [0, 1]) with
shift/rotation/scale jitter; its test accuracy is in its model card. ``score_samples`` turns
its predictions into the numbers a class-conditional generator is judged by: accuracy
against the requested digit, class coverage, confidence and the class-histogram entropy
(a mode-collapse signal, log 10 = 2.303 nats when every class is equally frequent). Its
conv-layer averages and hidden layer give the features of domain FID/KID on digits.

    python -c "from t2i.evaluators.digits import demo; demo()"
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from t2i.builtin import resolve
from t2i.evaluators.pooled import PooledFeatureNet
from t2i.io import load_config_json, load_weights, save_model
from t2i.metrics.features import FeatureExtractor, to_batch

FAMILY = "digits-classifier"
NUM_CLASSES = 10
IMAGE_SIZE = 32  # the classifier's input side; other sizes are resized to it


class DigitsNet(PooledFeatureNet):
    """``(B, 1, 32, 32)`` in [0, 1] -> hidden ``(B, F)`` -> class logits ``(B, 10)``; and features.

    Features (domain FID on digits): the global average of each conv layer's activations and
    the hidden layer, standardised per dimension on the training digits (saved buffers).
    """

    def __init__(self, width: int = 32, feature_dim: int = 128):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 16, 16)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 8, 8)
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 4, 4)
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(2 * w * 16, feature_dim), nn.ReLU(),  # (B, F)
        )
        self.head = nn.Linear(feature_dim, NUM_CLASSES)
        self.register_feature_stats(5 * w + feature_dim)  # GAP of the three conv layers + hidden


def _prepare(images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
    """Images -> ``(N, 1, 32, 32)`` in [0, 1]; RGB is averaged to grey, other sizes resized."""
    x = to_batch(images)
    if x.shape[1] == 3:
        x = x.mean(1, keepdim=True)
    elif x.shape[1] != 1:
        raise ValueError(f"digits images must have 1 or 3 channels, got {x.shape[1]}")
    if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


class DigitsClassifier:
    """Class probabilities and features of 32 px digit images."""

    def __init__(self, net: DigitsNet, config: dict[str, Any], path: Path | None = None):
        self.net = net.eval()
        self.config = config
        self.path = path

    @classmethod
    def build(cls, config: dict[str, Any]) -> "DigitsClassifier":
        return cls(DigitsNet(config["width"], config["feature_dim"]), config)

    @classmethod
    def from_pretrained(cls, path_or_builtin: str | Path = "digits-classifier") -> "DigitsClassifier":
        folder = resolve(path_or_builtin)
        config = load_config_json(folder)
        if config.get("family") != FAMILY:
            raise ValueError(f"{folder} holds family {config.get('family')!r}, not a {FAMILY!r}")
        clf = cls.build(config)
        clf.net.load_state_dict(load_weights(folder))
        clf.path = folder
        return clf

    def save(self, folder: str | Path) -> Path:
        return save_model(folder, self.net, self.config)

    @torch.no_grad()
    def predict_proba(self, images: Sequence[Image.Image] | torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities ``(N, 10)``."""
        x = _prepare(images)
        return torch.cat([self.net(x[i:i + batch_size]).softmax(-1) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(_prepare(images))  # (B, 5w + 128)

    def feature_extractor(self) -> FeatureExtractor:
        """Features for domain FID/KID, precision/recall, density/coverage and diversity on digits."""
        return FeatureExtractor(name=FAMILY, fn=self.features)


@functools.lru_cache(maxsize=2)
def _builtin(name: str) -> DigitsClassifier:
    return DigitsClassifier.from_pretrained(name)


def score_samples(images: Sequence[Image.Image] | torch.Tensor, requested_labels: Sequence[int] | None = None,
                  classifier: DigitsClassifier | str | None = None) -> dict[str, Any]:
    """Score generated digits: accuracy vs requested labels (if given), coverage, confidence, entropy.

    - ``accuracy``: share classified as the requested digit;
    - ``class_coverage``: share of the 10 classes predicted at least once;
    - ``mean_top_probability``: mean of the top class probability (confidence);
    - ``histogram_entropy``: entropy (nats) of the predicted-class histogram, with
      ``histogram_entropy_max`` = log 10 for reference; ``histogram``: counts per class.
    """
    if classifier is None or isinstance(classifier, (str, Path)):
        classifier = _builtin(str(classifier or FAMILY))
    probs = classifier.predict_proba(images)  # (N, 10)
    predicted = probs.argmax(1)
    counts = torch.bincount(predicted, minlength=NUM_CLASSES)
    freq = counts.double() / counts.sum()
    entropy = float(-(freq[freq > 0] * freq[freq > 0].log()).sum())
    out: dict[str, Any] = {"n": len(probs), "class_coverage": float((counts > 0).double().mean()),
                           "mean_top_probability": float(probs.max(1).values.mean()),
                           "histogram_entropy": entropy, "histogram_entropy_max": math.log(NUM_CLASSES),
                           "histogram": counts.tolist()}
    if requested_labels is not None:
        requested = torch.as_tensor(list(requested_labels))
        if len(requested) != len(probs):
            raise ValueError(f"got {len(requested)} requested labels for {len(probs)} images")
        if requested.min() < 0 or requested.max() >= NUM_CLASSES:
            raise ValueError(f"requested labels must be digits in [0, 9], got {requested.unique().tolist()}")
        out["accuracy"] = float((predicted == requested).double().mean())
    return out


def demo() -> None:
    from t2i.data import load_dataset

    ds = load_dataset("digits", split="test", size=32)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    labels = [ds[i]["label"] for i in range(len(ds))]
    print(score_samples(images, labels))
