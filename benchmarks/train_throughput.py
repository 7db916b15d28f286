"""Training throughput of latent diffusion: ``t2i train ldm --init`` against diffusers'
``examples/text_to_image/train_text_to_image.py`` on the same pipeline folder, data, resolution,
batch and torch thread count (issue 19, item 4).

Each program runs in its own process, one after another, interleaved over ``--rounds``, with
``--threads`` torch threads. A step is timed the same way in both: a global optimiser-step hook
(``torch.optim.optimizer.register_optimizer_step_post_hook``) stamps the end of every
optimiser step, and s/step is the median interval after the first ``--warmup`` steps (data
loading, VAE/text encoding when not cached, forward, backward, clipping and AdamW all included;
start-up, compilation of the first steps and the final save are not). diffusers' script runs as it
comes (float32) and with ``--mixed_precision bf16`` (accelerate's autocast). Our variants: ``plain``
(encode on the fly), ``--cache`` (VAE posteriors and text states once), ``--cache --fused-adamw``,
that plus ``--bf16-weights`` (the step in a bfloat16 copy of the UNet, float32 master weights) and,
with ``--with-compile``, ``--cache --compile`` and ``--cache --bf16-weights --compile`` (torch.compile of the
UNet step, or of its bfloat16 copy; its first steps compile, which the warm-up leaves out; inductor's cache
makes later runs compile faster). ``--only NAME...`` keeps a few rows (and diffusers' float32 run).

Efficiency: the UNet's forward + backward FLOPs per step (``torch.utils.flop_counter``) over
each row's s/step, as a fraction of this CPU's measured peak of a channels-last 3x3 convolution
(the best of a few sizes, same thread count).

``--device cuda`` runs both programs on the GPU (diffusers' script through accelerate, ours without
``--cpu``), adds ``--mixed-precision bf16`` (autocast, the GPU's lever) to our rows, synchronises the
device at every optimiser-step stamp, and takes GFLOP/s on the wall time against the GPU's own
float32 3x3 convolution peak.

The diffusers script is not part of this repository: fetch it from the diffusers repository
(the same version as the installed diffusers) and give its path. It needs ``datasets``.

    python -m benchmarks.train_throughput --diffusers-script /tmp/train_text_to_image.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.diffusion_speed import OUT, append_section, machine

REPO = Path(__file__).resolve().parents[1]
BEST = ["--cache", "--fused-adamw"]  # our fastest options that need no compilation
REFERENCE = "diffusers train_text_to_image.py"  # the row every ratio is against


# ----------------------------------------------------------------------------------- child processes
def child(argv: list[str]) -> int:
    """``child STAMPS THREADS (diffusers SCRIPT | ours) ARGS...``: run one training program and write
    the time of every optimiser step's end to STAMPS."""
    stamps_path, threads, program, *rest = argv
    torch.set_num_threads(int(threads))
    from torch.optim.optimizer import register_optimizer_step_post_hook

    stamps: list[float] = []
    sync = torch.cuda.synchronize if torch.cuda.is_available() and "--cpu" not in rest else (lambda: None)

    def stamp(opt: Any, args: Any, kwargs: Any) -> None:  # (wall, CPU time of this process) at each step's end
        sync()  # on a GPU: the step's kernels have run
        stamps.append((time.perf_counter(), time.process_time()))

    register_optimizer_step_post_hook(stamp)
    start = time.perf_counter()
    try:
        if program == "diffusers":
            import runpy

            sys.argv = rest
            runpy.run_path(rest[0], run_name="__main__")
        else:
            import train.ldm

            train.ldm.main(rest)
    finally:
        Path(stamps_path).write_text(json.dumps({"stamps": stamps, "start": start, "end": time.perf_counter()}))
    return 0


def run_program(name: str, program: list[str], threads: int, log: Path) -> dict[str, Any]:
    stamps = log.with_suffix(".json")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "benchmarks.train_throughput", "child", str(stamps), str(threads), *program]
    start = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {done.returncode}); its log: {log}\n" + log.read_text()[-3000:])
    t = json.loads(stamps.read_text())["stamps"]
    print(f"  {name}: {len(t)} steps, {wall:.1f} s wall", flush=True)
    return {"intervals": [b[0] - a[0] for a, b in zip(t, t[1:])], "cpu": [b[1] - a[1] for a, b in zip(t, t[1:])],
            "wall_s": wall}


def programs(args: argparse.Namespace, data: Path, tmp: Path) -> dict[str, list[str]]:
    steps = str(args.warmup + args.steps + 1)  # intervals after the warm-up: args.steps
    diffusers = ["diffusers", str(args.diffusers_script), "--pretrained_model_name_or_path", str(args.model_dir),
                 "--train_data_dir", str(data), "--image_column", "image", "--caption_column", "text",
                 "--resolution", str(args.resolution), "--train_batch_size", str(args.batch_size),
                 "--max_train_steps", steps, "--dataloader_num_workers", "0", "--learning_rate", "2e-4",
                 "--max_grad_norm", "1", "--checkpointing_steps", "1000000", "--seed", "0",
                 "--output_dir", str(tmp / "diffusers-out")]
    ours = ["ours", "--init", args.model, "--data", str(data), "--size", str(args.resolution),
            "--batch-size", str(args.batch_size), "--steps", steps, "--checkpoint-every", "0", "--log-every", steps,
            "--sample-steps", "1", "--sample-prompts", "a red circle", "--out", str(tmp / "ours-out")]
    ours += ["--cpu"] if args.device == "cpu" else []
    runs = {REFERENCE: diffusers,
            "diffusers train_text_to_image.py --mixed_precision bf16": diffusers + ["--mixed_precision", "bf16"],
            "t2i train ldm": ours, "t2i train ldm --cache": ours + ["--cache"],
            "t2i train ldm --cache --fused-adamw": ours + BEST,
            "t2i train ldm --cache --fused-adamw --bf16-weights": ours + BEST + ["--bf16-weights"]}
    if args.device != "cpu":  # autocast: the GPU's bfloat16 lever
        runs["t2i train ldm --cache --fused-adamw --mixed-precision bf16"] = ours + BEST + ["--mixed-precision", "bf16"]
    if args.with_compile:
        runs["t2i train ldm --cache --compile"] = ours + ["--cache", "--compile"]
        runs["t2i train ldm --cache --bf16-weights --compile"] = ours + ["--cache", "--bf16-weights", "--compile"]
    if args.only:  # diffusers' float32 run stays: it is what every ratio is against
        unknown = [name for name in args.only if name not in runs]
        if unknown:
            raise SystemExit(f"--only: no program {unknown}; choose among {list(runs)}")
        runs = {name: program for name, program in runs.items() if name == REFERENCE or name in args.only}
    return runs


# ----------------------------------------------------------------------------------- FLOPs and peak
def unet_flops(model_dir: Path, batch: int, resolution: int) -> float:  # counted on the CPU, whatever --device
    """FLOPs of one UNet forward + backward on a training batch (latents and text states of its shapes)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    from t2i.bench.cost import flop_counter

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet").train()
    vae = AutoencoderKL.load_config(model_dir / "vae")
    side = resolution // 2 ** (len(vae["block_out_channels"]) - 1)
    tokens = CLIPTextConfig.from_pretrained(model_dir / "text_encoder").max_position_embeddings
    z = torch.randn(batch, unet.config.in_channels, side, side)  # (B, C, h, w)
    cond = torch.randn(batch, tokens, unet.config.cross_attention_dim)  # (B, T, D)
    t = torch.randint(0, 1000, (batch,))
    with flop_counter() as counter:  # attention counted on the CPU too
        unet(z, t, encoder_hidden_states=cond).sample.pow(2).mean().backward()
    return float(counter.get_total_flops())


def conv_peak(repeats: int = 5, device: str = "cpu") -> dict[str, Any]:
    """GFLOP/s of a float32 channels-last 3x3 convolution (forward), the best of a few sizes (GPU: larger ones,
    each timed over 20 calls, since one small call is launch-bound)."""
    best: dict[str, Any] = {"gflops": 0.0}
    gpu = device != "cpu"
    sizes = ((256, 256, 32), (128, 512, 16), (64, 256, 64)) if gpu else ((32, 128, 32), (32, 256, 16), (16, 256, 32))
    calls = 20 if gpu else 1
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    for n, c, s in sizes:
        conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(device, memory_format=torch.channels_last)
        x = torch.randn(n, c, s, s, device=device).contiguous(memory_format=torch.channels_last)
        flops = 2 * n * c * c * 9 * s * s * calls
        with torch.no_grad():
            conv(x)
            times = []
            for _ in range(repeats):
                sync()
                start = time.perf_counter()
                for _ in range(calls):
                    conv(x)
                sync()
                times.append(time.perf_counter() - start)
        gflops = flops / min(times) / 1e9
        if gflops > best["gflops"]:
            best = {"gflops": gflops, "shape": f"N={n} C={c}->{c} {s}x{s}"}
    return best


# ----------------------------------------------------------------------------------- the benchmark
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return child(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--diffusers-script", type=Path, required=True, help="path to diffusers' train_text_to_image.py")
    p.add_argument("--device", default="cpu", help="cpu | cuda: where both programs train (default: cpu)")
    p.add_argument("--model", default="shapes-ldm", help="pipeline folder or built-in name (default: shapes-ldm)")
    p.add_argument("--images", type=int, default=512, help="shapes scenes in the imagefolder (default: 512)")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed steps per run, after the warm-up (default: 10)")
    p.add_argument("--warmup", type=int, default=3, help="steps left out at the start of each run (default: 3)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the programs (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every process (default: 1)")
    p.add_argument("--with-compile", action="store_true",
                   help="also time --cache --compile and --cache --bf16-weights --compile")
    p.add_argument("--only", nargs="+", metavar="PROGRAM",
                   help="time only these rows (their names as in the table, without backquotes) and diffusers' own")
    args = p.parse_args(argv)
    command = "python -m benchmarks.train_throughput " + shlex.join(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from t2i.builtin import resolve
    from t2i.data.shapes import write_dataset

    if not args.diffusers_script.is_file():
        raise SystemExit(f"--diffusers-script {args.diffusers_script}: no such file (fetch it from the diffusers "
                         "repository: examples/text_to_image/train_text_to_image.py)")
    args.model_dir = resolve(args.model, what="pipeline")
    results: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}, "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_dataset(tmp / "shapes", args.images, 0, args.resolution, "train", 0.5)
        runs = programs(args, Path(data), tmp)
        timings: dict[str, dict[str, list[float]]] = {name: {"intervals": [], "cpu": [], "wall_s": []} for name in runs}
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", flush=True)
            for i, (name, program) in enumerate(runs.items()):
                got = run_program(name, program, args.threads, tmp / f"log-{r}-{i}.txt")
                timings[name]["intervals"] += got["intervals"][args.warmup:]
                timings[name]["cpu"] += got["cpu"][args.warmup:]
                timings[name]["wall_s"].append(got["wall_s"])
    flops = unet_flops(Path(args.model_dir), args.batch_size, args.resolution)
    peak = conv_peak(device=args.device)
    gpu = args.device != "cpu"  # GFLOP/s on the wall time (a GPU step's CPU time is the host's launching)
    reference = timings[REFERENCE]
    ref_wall, ref_cpu = statistics.median(reference["intervals"]), statistics.median(reference["cpu"])
    rows = []
    for name, t in timings.items():
        s, c = statistics.median(t["intervals"]), statistics.median(t["cpu"])
        rows.append({"program": name, "s_per_step": s, "cpu_s_per_step": c, "images_per_s": args.batch_size / s,
                     "images_per_cpu_s": args.batch_size / c, "ratio": ref_wall / s, "ratio_cpu": ref_cpu / c,
                     "unet_gflops_per_cpu_s": flops / c / 1e9, "unet_gflops_per_s": flops / s / 1e9,
                     "steps_timed": len(t["intervals"]),
                     "wall_s": t["wall_s"]})
    results.update({"rows": rows, "unet_fwd_bwd_gflop_per_step": flops / 1e9, "conv_peak": peak})
    OUT.mkdir(exist_ok=True)
    (OUT / ("train_throughput.json" if not gpu else f"train_throughput_{args.device}.json")).write_text(
        json.dumps(results, indent=2) + "\n")
    lines = [f"`{args.model}` (UNet forward + backward {flops / 1e9:.1f} GFLOP per step), {args.images} shapes scenes "
             f"as an imagefolder, {args.resolution} px, batch {args.batch_size}, {args.threads} torch thread(s) per "
             f"process, {args.rounds} interleaved round(s) of {args.steps} timed steps after {args.warmup} warm-up "
             "steps; s/step = median interval between optimiser steps (same hook in both programs), in wall time "
             "and in the process's CPU time (one thread: the CPU time is the step's own work, which other jobs on a "
             "shared machine and pauses slow down less than the wall time). UNet GFLOP/s on the "
             f"{'wall' if gpu else 'CPU'} time. Conv peak on the {args.device}: "
             f"{peak['gflops']:.1f} GFLOP/s (float32 channels-last 3x3 conv forward, {peak['shape']}, best of 5).", "",
             "| program | wall s/step | CPU s/step | images/s (wall) | images per CPU-s | vs diffusers (wall) | "
             "vs diffusers (CPU) | UNet GFLOP/s | fraction of conv peak |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        gflops = row["unet_gflops_per_s" if gpu else "unet_gflops_per_cpu_s"]
        lines.append(f"| `{row['program']}` | {row['s_per_step']:.3f} | {row['cpu_s_per_step']:.3f} | "
                     f"{row['images_per_s']:.1f} | {row['images_per_cpu_s']:.1f} | {row['ratio']:.2f}x | "
                     f"{row['ratio_cpu']:.2f}x | {gflops:.1f} | {gflops / peak['gflops']:.2g} |")
    append_section("Latent diffusion training throughput vs diffusers' train_text_to_image.py "
                   "(benchmarks/train_throughput.py)", command, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
