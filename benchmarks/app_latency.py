"""App latency on the built-in models: start-up (models loaded) and a 4-image request for both models.

    python -m benchmarks.app_latency            # prints a table; append it to benchmarks/RESULTS.md by hand
"""

from __future__ import annotations

import os
import statistics
import time

import torch


def main() -> None:
    start = time.perf_counter()
    from apps.app import AppConfig, build_app
    from apps.models import AppModels

    models = AppModels.load(AppConfig())
    build_app(AppConfig(), models=models)
    ready = time.perf_counter() - start
    rows = []
    for seed in range(5):
        t0 = time.perf_counter()
        result = models.generate("a small red circle in the center", "", seed, 4, "dpm-solver++", 20, 3.0, False)
        rows.append((time.perf_counter() - t0, result["gan_seconds"], result["diffusion_seconds"]))
    total, gan, diffusion = (statistics.median(col) for col in zip(*rows))
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print("| ready (imports + models + UI) | 4-image request, both models + CLIP scores (median of 5) | GAN | diffusion (20 dpm-solver++ steps) |")
    print("| --- | --- | --- | --- |")
    print(f"| {ready:.1f} s | {total:.2f} s | {gan:.3f} s | {diffusion:.2f} s |")


if __name__ == "__main__":
    main()
