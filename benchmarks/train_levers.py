"""What each CPU lever does to a latent diffusion training step (issue 19, items 1 and 4).

The step ``t2i train ldm --cache`` spends its time in is the UNet's forward and backward on a
batch of cached latents and text states; the VAE and the text encoder are not run. This times
that step (forward, mean-squared loss, backward; median of ``--repeats``) on the built-in
pipeline's UNet at its training shapes, once per lever, in one process and interleaved over
``--rounds``, and prints the table with each lever's ratio to plain float32:

- ``float32``: eager, contiguous (what both ``t2i train ldm`` and diffusers' script run);
- ``channels-last``: the UNet and its input in ``torch.channels_last``;
- ``bf16 autocast``: ``torch.autocast("cpu", torch.bfloat16)`` around the forward, float32 weights
  (what ``--mixed-precision bf16`` and diffusers' ``--mixed_precision bf16`` do on a CPU);
- ``bf16 weights``: the whole UNet cast to bfloat16;
- ``--bf16-weights``: what ``t2i train ldm --bf16-weights`` runs (``t2i.diffusion.bf16.BF16Compute``: the
  bfloat16 copy with float32 attention modules, weights pulled from the float32 master every step);
- ``torch.compile`` (with ``--with-compile``: minutes of compilation first).

Beside it, the kernels alone: a 3x3 convolution and a matmul of the UNet's sizes in float32 and
bfloat16 (GFLOP/s, forward and forward + backward), which says what the CPU's bfloat16 units
(AMX / AVX-512 BF16, where present) could give; and, for bf16 weights, the operators that take
the time (``torch.profiler``), which says why the whole step does not get it.

    python -m benchmarks.train_levers                      # 1 torch thread, appends to RESULTS.md
    python -m benchmarks.train_levers --threads 2 --with-compile
    python -m benchmarks.train_levers --size 64          # a fine-tune at 64 px: 16x16 latents
    python -m benchmarks.train_levers compare RUN_A RUN_B  # two runs' logged losses, window by window

``compare`` reads two ``t2i train`` runs' ``metrics.jsonl`` (same recipe and seed, so the same batches, noise
and timesteps: a paired comparison) and prints their mean logged loss over windows of steps, e.g. a run
with ``--bf16-weights`` against the same run without it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from benchmarks.diffusion_speed import append_section


def unet_step(unet: torch.nn.Module, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, autocast: bool) -> None:
    """Forward, loss and backward of one training batch (the optimiser is the same in every lever)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = unet(z, t, encoder_hidden_states=cond).sample
    out.float().pow(2).mean().backward()
    unet.zero_grad(set_to_none=True)


def median_time(fn, repeats: int) -> float:
    fn()
    fn()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def levers(model: str, batch: int, size: int, with_compile: bool) -> dict[str, tuple]:
    """lever -> (module, latents, text states, autocast?) at the pipeline's training shapes (images of ``size``
    px, 0 = the pipeline's own)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    from t2i.builtin import resolve

    folder = resolve(model, what="pipeline")
    unet = UNet2DConditionModel.from_pretrained(f"{folder}/unet").train()
    tokens = CLIPTextConfig.from_pretrained(f"{folder}/text_encoder").max_position_embeddings
    factor = 2 ** (len(AutoencoderKL.load_config(f"{folder}/vae")["block_out_channels"]) - 1)
    side, channels = (size // factor if size else unet.config.sample_size), unet.config.in_channels
    z = torch.randn(batch, channels, side, side)  # (B, C, h, w)
    cond = torch.randn(batch, tokens, unet.config.cross_attention_dim)  # (B, T, D)
    channels_last = copy.deepcopy(unet).to(memory_format=torch.channels_last)
    bf16 = copy.deepcopy(unet).to(torch.bfloat16)
    from t2i.diffusion.bf16 import BF16Compute

    out = {"float32": (unet, z, cond, False),
           "channels-last": (channels_last, z.contiguous(memory_format=torch.channels_last), cond, False),
           "bf16 autocast": (unet, z, cond, True),
           "bf16 weights": (bf16, z.bfloat16(), cond.bfloat16(), False),
           "--bf16-weights (bf16 copy, attention float32)": (BF16Compute(unet), z, cond, False)}
    if with_compile:
        out["torch.compile"] = (torch.compile(copy.deepcopy(unet), dynamic=False), z, cond, False)
    return out


def kernels(batch: int, side: int, channels: int, repeats: int) -> list[str]:
    """GFLOP/s of a 3x3 convolution and of a matmul of the UNet's sizes, float32 against bfloat16."""
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(dtype)
        x = torch.randn(batch, channels, side, side, dtype=dtype, requires_grad=True)
        flops = 2 * batch * channels * channels * 9 * side * side

        def forward_backward():
            conv(x).float().sum().backward()

        with torch.no_grad():
            fwd = median_time(lambda: conv(x), repeats)
        both = median_time(forward_backward, repeats)
        a = torch.randn(batch * side * side, channels, dtype=dtype)  # (tokens, C), as in the attention blocks
        w = torch.randn(4 * channels, channels, dtype=dtype)
        mm = median_time(lambda: a @ w.t(), repeats)
        rows.append(f"| {str(dtype).removeprefix('torch.')} | {flops / fwd / 1e9:.0f} | {3 * flops / both / 1e9:.0f} | "
                    f"{2 * a.shape[0] * channels * w.shape[0] / mm / 1e9:.0f} |")
    return rows


def compare(a: str, b: str, windows: int = 4) -> list[str]:
    """Mean logged loss of runs ``a`` and ``b`` over ``windows`` equal spans of their common steps."""
    import json
    from pathlib import Path

    def losses(run: str) -> dict[int, float]:
        rows = (json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines())
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    la, lb = losses(a), losses(b)
    steps = sorted(set(la) & set(lb))
    if not steps:
        raise SystemExit(f"{a} and {b} logged no loss at the same steps")
    lines = [f"| steps | {a} | {b} | difference |", "| --- | --- | --- | --- |"]
    size = -(-len(steps) // windows)
    for i in range(0, len(steps), size):
        span = steps[i:i + size]
        ma, mb = statistics.mean(la[k] for k in span), statistics.mean(lb[k] for k in span)
        lines.append(f"| {span[0]}-{span[-1]} | {ma:.4f} | {mb:.4f} | {(mb - ma) / ma:+.2%} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        if len(argv) != 3:
            raise SystemExit("usage: python -m benchmarks.train_levers compare RUN_A RUN_B")
        print("\n".join(compare(argv[1], argv[2])))
        return 0
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_levers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes-ldm", help="pipeline folder or built-in name (default: shapes-ldm)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--size", type=int, default=0, help="image side in px, as `t2i train ldm --size` (0 = the model's)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, as benchmarks.train_throughput)")
    p.add_argument("--repeats", type=int, default=7, help="timed steps per lever and round (default: 7)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the levers (default: 2)")
    p.add_argument("--with-compile", action="store_true", help="also time torch.compile (minutes of compilation)")
    p.add_argument("--no-append", action="store_true", help="print only; leave benchmarks/RESULTS.md alone")
    args = p.parse_args(argv)
    command = "python -m benchmarks.train_levers " + " ".join(argv)
    torch.set_num_threads(args.threads)
    runs = levers(args.model, args.batch_size, args.size, args.with_compile)
    times: dict[str, list[float]] = {name: [] for name in runs}
    t = torch.randint(0, 1000, (args.batch_size,))
    for r in range(args.rounds):
        for name, (unet, z, cond, autocast) in runs.items():
            times[name].append(median_time(lambda: unet_step(unet, z, t, cond, autocast), args.repeats))
            print(f"round {r + 1}: {name} {times[name][-1]:.3f} s", flush=True)
    base = statistics.median(times["float32"])
    unet, z, cond, _ = runs["float32"]
    lines = [f"`{args.model}` UNet, training batch {args.batch_size} (latents {tuple(z.shape[1:])}, text states "
             f"{tuple(cond.shape[1:])}), {args.threads} torch thread(s); forward + loss + backward, median of "
             f"{args.repeats} steps per round, median over {args.rounds} interleaved rounds.", "",
             "| lever | s per step | vs float32 |", "| --- | --- | --- |"]
    for name, got in times.items():
        s = statistics.median(got)
        lines.append(f"| {name} | {s:.3f} | {base / s:.2f}x |")
    lines += ["", f"The kernels alone, at the UNet's sizes (3x3 convolution, {unet.config.block_out_channels[-1]} "
              f"channels on {z.shape[-1]}x{z.shape[-1]}, batch {args.batch_size}; matmul of its attention tokens "
              "by a 4x feed-forward weight), GFLOP/s:", "",
              "| dtype | conv forward | conv forward + backward | matmul |", "| --- | --- | --- | --- |"]
    lines += kernels(args.batch_size, z.shape[-1], unet.config.block_out_channels[-1], args.repeats)
    bf16, zb, cb, _ = runs["bf16 weights"]
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(3):
            unet_step(bf16, zb, t, cb, False)
    top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:5]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    lines += ["", "Where the step of the UNet cast whole to bfloat16 (lever 'bf16 weights') spends its time "
              "(torch.profiler, self CPU time, top 5): " + "; ".join(
        f"`{e.key}` {e.self_cpu_time_total / total:.0%}" for e in top) + "."]
    print("\n".join(lines))
    if not args.no_append:
        append_section("Latent diffusion training step: what each CPU lever does (benchmarks/train_levers.py)",
                       command, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
