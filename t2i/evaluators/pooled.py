"""The feature head shared by the project's evaluator networks (``DigitsNet``, ``SceneNet``).

Their domain-FID features are the global average of every conv layer's activations (low-level
statistics: edges, blur, colour; like Inception's pool3, but at every depth) concatenated with
the hidden layer, each dimension standardised by its mean and std on the training images
(buffers saved with the weights), so that no group dominates and KID's polynomial kernel sees
values of order 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class PooledFeatureNet(nn.Module):
    """Base of a classifier ``body`` (conv blocks, then Flatten/Linear/ReLU to the hidden layer) + ``head``.

    Subclasses build ``self.body`` and ``self.head`` and call ``self.register_feature_stats(dim)``.
    """

    body: nn.Sequential
    head: nn.Module
    stats_batch: int = 0  # images per forward pass of set_feature_stats (0 = all at once)

    def register_feature_stats(self, dim: int) -> None:
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> hidden ``(B, F)`` and the raw feature vector ``(B, sum of conv widths + F)``."""
        h, pooled = x * 2 - 1, []
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, nn.ReLU) and h.dim() == 4:
                pooled.append(h.mean((2, 3)))  # (B, C) global average of a conv layer
        return h, torch.cat(pooled + [h], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._run(x)[0])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (self._run(x)[1] - self.feature_mean) / self.feature_std

    @torch.no_grad()
    def set_feature_stats(self, x: torch.Tensor) -> None:
        """Standardise features by their mean/std over images ``x`` (the training images)."""
        step = self.stats_batch or len(x)
        raw = torch.cat([self._run(x[i:i + step])[1] for i in range(0, len(x), step)])
        std = raw.std(0)
        self.feature_mean.copy_(raw.mean(0))
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))  # dead units: leave as is
