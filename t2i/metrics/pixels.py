"""Full-reference pixel metrics of an output against its target: PSNR and SSIM, per image.

SSIM is Wang et al. (2004): an 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, on
each channel, averaged over the valid (unpadded) windows and the channels, as
``skimage.metrics.structural_similarity(..., gaussian_weights=True, use_sample_covariance=False)``.

    python -c "import torch; from t2i.metrics.pixels import psnr, ssim; x = torch.rand(2, 3, 32, 32); print(psnr(x, x.clamp(0.1, 0.9)), ssim(x, x))"
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"give two image batches (N, C, H, W) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image ``(N,)``: 10 log10(range^2 / MSE), capped at 100 dB (an
    identical image would be inf and make any mean inf)."""
    _check(x, y)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1).clamp_min(1e-10 * data_range ** 2)
    return (10 * torch.log10(data_range ** 2 / mse)).float()


def _window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The 1-D Gaussian whose outer product with itself is the 2-D window: ``(size,)``."""
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image ``(N,)`` (module docstring), images at least 11 x 11."""
    _check(x, y)
    c = x.shape[1]
    g = _window().to(x.device)
    rows, cols = g[None, None, None, :].expand(c, 1, 1, -1), g[None, None, :, None].expand(c, 1, -1, 1)  # depthwise
    x, y = x.double(), y.double()

    def blur(t: torch.Tensor) -> torch.Tensor:  # the separable 11 x 11 window: 22 products a pixel, not 121
        return F.conv2d(F.conv2d(t, rows, groups=c), cols, groups=c)  # (N, C, H - 10, W - 10)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1).float()
