"""The held-out figure of the autoencoder families: how well a final model reconstructs images it never
trained on. ``t2i train ae|vae|cvae`` end with it.

``measure_reconstructions`` reconstructs up to ``n`` images evenly spread over the data's test split
(from a source without one, the training images, and says so) and writes
``OUT/reconstruction_metrics.json`` (mean PSNR in dB and SSIM per image, ``t2i.metrics.pixels``, as the
translators are measured; how many images, which split), ``OUT/reconstructions.png`` (top: eight of those
inputs, spread likewise, bottom: their reconstructions) and one line of the run's output. The model card
lists the figures.

    t2i train ae --variant conv --data digits --steps 200 --out /tmp/ae && cat /tmp/ae/reconstruction_metrics.json
"""

from __future__ import annotations

import json
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Subset

from t2i.data import end_of_run_data, spread_indices
from t2i.metrics.pixels import psnr, ssim
from t2i.runtime.grids import save_grid

METRICS_FILE = "reconstruction_metrics.json"
SSIM_MIN_SIZE = 11  # SSIM's Gaussian window


@torch.no_grad()
def measure_reconstructions(run: Any, cfg: Any, trained: Any, reconstruct: Callable[[dict[str, Any]], torch.Tensor],
                            n: int = 256) -> dict[str, Any]:
    """Reconstruct up to ``n`` held-out images with ``reconstruct`` (a batch of items -> images (B, C, S, S) in
    [0, 1]); write the figures and the grid into ``run.out`` and return the figures."""
    data, why = end_of_run_data(cfg, trained, n)
    shown = set(range(8))  # a streamed source: its first eight
    if hasattr(data, "__len__"):  # spread over the data: a folder sorted by kind is not judged on its first kind
        data = Subset(data, spread_indices(len(data), n))
        shown = set(spread_indices(len(data), 8))
    psnrs, ssims, inputs, outputs, seen = [], [], [], [], 0
    for batch in DataLoader(data, batch_size=128):
        x = batch["image"].to(run.device)
        x_hat = reconstruct(batch).float().clamp(0, 1)
        psnrs.append(psnr(x_hat, x))
        if min(x.shape[-2:]) >= SSIM_MIN_SIZE:
            ssims.append(ssim(x_hat, x))
        picked = [j for j in range(len(x)) if seen + j in shown]
        inputs, outputs, seen = inputs + [x[picked]], outputs + [x_hat[picked]], seen + len(x)
        if seen >= n:
            break
    if not seen:
        raise ValueError("cannot measure the reconstructions: the held-out data is empty")
    scores = torch.cat(psnrs)[:n]
    metrics = {"psnr_db": round(float(scores.mean()), 3),
               "ssim": round(float(torch.cat(ssims)[:n].mean()), 4) if ssims else None,
               "images": len(scores), "split": "train" if why else "test"}
    (run.out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    inputs, outputs = torch.cat(inputs), torch.cat(outputs)
    save_grid(torch.cat([inputs, outputs]), run.out / "reconstructions.png", nrow=len(inputs))
    where = f"training images (no test split: {why})" if why else "held-out test images"
    ssim_text = f", SSIM {metrics['ssim']:.3f}" if ssims else ""
    run.print(f"{run.name}: reconstructions of {len(scores)} {where}: PSNR {metrics['psnr_db']:.2f} dB{ssim_text} "
              f"-> {run.out / 'reconstructions.png'}")
    return metrics
