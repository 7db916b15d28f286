"""Where one latent-diffusion training step's CPU time goes, by operator (issue 19, item 4).

The step ``t2i train ldm --cache --fused-adamw`` takes once latents and text states are cached: the
pipeline's UNet in train mode, forward on random latents of the training shape (the VAE's latent
channels at resolution / the VAE's factor) with random text states (the tokenizer's length x the
cross-attention width), an MSE loss, backward, fused AdamW. Prints the median step and torch's
profiler table of the top operators by self CPU time over a few profiled steps. Data, encoders and
EMA are left out: this is the UNet's share, the part both ``benchmarks/train_throughput.py`` programs run.

    python -m benchmarks.unet_step_profile                       # shapes-ldm, 32 px, batch 32, 1 thread
    python -m benchmarks.unet_step_profile --resolution 64 --rows 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="shapes-ldm", help="pipeline folder or built-in name (default: shapes-ldm)")
    p.add_argument("--resolution", type=int, default=32, help="image side in pixels (default: 32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--steps", type=int, default=7, help="timed steps after 3 warm-up steps (default: 7)")
    p.add_argument("--profiled-steps", type=int, default=3)
    p.add_argument("--rows", type=int, default=12, help="operators in the table (default: 12)")
    args = p.parse_args()

    from diffusers import UNet2DConditionModel

    from t2i.builtin import resolve

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    folder = Path(resolve(args.model, what="pipeline"))
    unet = UNet2DConditionModel.from_pretrained(folder / "unet").train()
    vae = json.loads((folder / "vae" / "config.json").read_text())
    factor = 2 ** (len(vae["block_out_channels"]) - 1)
    text_length = json.loads((folder / "tokenizer" / "tokenizer_config.json").read_text())["model_max_length"]
    side = args.resolution // factor
    latents = torch.randn(args.batch_size, unet.config.in_channels, side, side)
    timesteps = torch.randint(0, 1000, (args.batch_size,))
    text_states = torch.randn(args.batch_size, text_length, unet.config.cross_attention_dim)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        loss = torch.nn.functional.mse_loss(unet(latents, timesteps, text_states).sample, latents)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.profiled_steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.model}: UNet step at {args.resolution} px (latents {tuple(latents.shape)}, text states "
          f"{tuple(text_states.shape)}), batch {args.batch_size}, {args.threads} torch thread(s): median "
          f"{statistics.median(times):.3f} s over {args.steps} steps\n")
    print("| operator | share of self CPU time | calls per step |\n| --- | --- | --- |")
    for e in events[:args.rows]:
        print(f"| `{e.key}` | {100 * e.self_cpu_time_total / total:.1f}% | {e.count // args.profiled_steps} |")


if __name__ == "__main__":
    main()
