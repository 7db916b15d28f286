"""Latent diffusion benchmark: training and sampling images/s (with and without caching), and
the guidance sweep + sampler comparison behind the shipped sampling defaults.

``speed``: runs the real ``t2i train ldm`` loop for a few steps on 32 px shapes with the tiny
recipe's architecture (random weights: speed does not depend on them), once encoding images
and captions on the fly and once from the latent/text caches, and reads the images/s the
runtime logs; the one-off cost of building the caches is timed apart. Then sampling
images/s of the saved pipeline per sampler. On CPU, and on CUDA too when there is a GPU.

``quality``: for a trained pipeline, the shapes evaluator's prompt accuracy on single-object
prompts (novel = held-out compositions, and test) for a sweep of guidance scales with
20-step DPM-Solver++, then 100-step DDIM at the chosen guidance; ``--write-defaults``
stores the chosen guidance in the model's ``t2i_sampling.json``.

Both append a section (with the command) to ``benchmarks/RESULTS.md`` and write JSON + PNG
next to it under ``benchmarks/results/``.

    python -m benchmarks.diffusion_speed speed --steps 6 --images 256        # about 2 minutes on 2 CPU cores
    python -m benchmarks.diffusion_speed quality --model shapes-ldm --n 200 --write-defaults
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "RESULTS.md"
OUT = ROOT / "results"


def machine() -> str:
    cpu = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch threads {torch.get_num_threads()}"
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return cpu + load + gpu


def append_section(title: str, command: str, lines: list[str]) -> None:
    header = "# Benchmark results\n\nEach section is appended by the script named in it, with its command.\n"
    text = RESULTS.read_text() if RESULTS.is_file() else header
    stamp = time.strftime("%Y-%m-%d %H:%M")
    text += f"\n## {title} ({stamp})\n\n`{command}`\n\n{machine()}\n\n" + "\n".join(lines) + "\n"
    RESULTS.write_text(text)


# ----------------------------------------------------------------------------------- speed
def make_components(folder: Path, clip: str) -> tuple[Path, str]:
    """A random f4-tiny VAE run folder and a text encoder (shapes-clip if present, else random t2i-tiny)."""
    from t2i.builtin import BUILTIN, ROOT as BUILTIN_ROOT
    from t2i.diffusion.first_stage import build_vae

    vae = build_vae("f4-tiny", sample_size=32)
    vae.register_to_config(scaling_factor=1.0)
    vae.save_pretrained(str(folder / "vae" / "vae"))
    if clip == "shapes-clip" and not (BUILTIN_ROOT / "shapes-clip").is_dir() and "shapes-clip" in BUILTIN:
        from t2i.clip.model import create_clip, save_clip

        print("shapes-clip is not built yet: timing a random t2i-tiny CLIP (same architecture)", file=sys.stderr)
        clip = str(save_clip(create_clip("t2i-tiny"), folder / "clip"))
    return folder / "vae", clip


def train_speed(vae: Path, clip: str, out: Path, cache: bool, args: argparse.Namespace, device: str) -> dict[str, Any]:
    import train.ldm

    argv = ["--data", "shapes", "--n", str(args.images), "--vae", str(vae), "--clip", clip, "--unet", args.unet,
            "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--log-every", str(max(1, args.steps // 3)),
            "--checkpoint-every", "0", "--sample-prompts", "a red circle", "--sample-steps", "1", "--out", str(out)]
    if cache:
        argv.append("--cache")
    if device == "cpu":
        argv.append("--cpu")
    start = time.perf_counter()
    train.ldm.main(argv)
    total = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steady = rows[1:] or rows  # the first log window holds the warm-up
    return {"images_per_s": sum(r["images_per_s"] for r in steady) / len(steady), "wall_s": total}


def cache_cost(vae_dir: Path, clip: str, n: int, device: str) -> dict[str, float]:
    from diffusers import AutoencoderKL

    from t2i.data import load_dataset
    from t2i.diffusion.interop import load_text_components
    from t2i.diffusion.training import build_latent_cache, build_text_cache

    vae = AutoencoderKL.from_pretrained(str(vae_dir / "vae")).to(device).eval()
    text_encoder, tokenizer = load_text_components(clip)
    dataset = load_dataset("shapes", n=n)
    start = time.perf_counter()
    cached = build_latent_cache(dataset, vae, torch.device(device))
    latent_s = time.perf_counter() - start
    start = time.perf_counter()
    build_text_cache(cached.texts, tokenizer, text_encoder.to(device), torch.device(device))
    text_s = time.perf_counter() - start
    return {"latent_images_per_s": n / latent_s, "captions_per_s": len(cached.texts) / max(text_s, 1e-9),
            "distinct_captions": len(cached.texts)}


def sample_speed(folder: Path, device: str, batch: int) -> dict[str, float]:
    from t2i.diffusion.pipeline import LatentDiffusionPipeline

    pipe = LatentDiffusionPipeline.from_pretrained(str(folder)).to(device)
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a large red circle in the center"] * batch
    out = {}
    for sampler, steps in (("dpm-solver++", 20), ("ddim", 100), ("euler-ancestral", 20)):
        pipe(prompts[:1], seed=0, sampler=sampler, num_inference_steps=2)  # warm-up
        start = time.perf_counter()
        pipe(prompts, seed=0, sampler=sampler, num_inference_steps=steps, guidance_scale=3.0)
        out[f"{sampler} x{steps}"] = batch / (time.perf_counter() - start)
    return out


def run_speed(args: argparse.Namespace, command: str) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results: dict[str, Any] = {"config": vars(args), "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vae, clip = make_components(tmp, args.clip)
        for device in devices:
            r: dict[str, Any] = {}
            for cache in (False, True):
                key = "train_cached" if cache else "train_uncached"
                r[key] = train_speed(vae, clip, tmp / f"{device}-{key}", cache, args, device)
            r["cache_build"] = cache_cost(vae, clip, args.images, device)
            r["sample_images_per_s"] = sample_speed(tmp / f"{device}-train_cached", device, args.sample_batch)
            results[device] = r
    OUT.mkdir(exist_ok=True)
    (OUT / "diffusion_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"UNet preset `{args.unet}`, f4-tiny VAE, 32 px shapes, batch {args.batch_size}, {args.steps} steps per "
             "setting (images/s of the logged windows after the first). On a machine shared with other jobs (see the "
             "load average) the figures are lower bounds; compare rows of one section only.", "",
             "| device | train, encode on the fly | train, cached latents + text | cache build (images/s) | "
             + " | ".join(f"sample {k} (images/s)" for k in results["cpu"]["sample_images_per_s"]) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in results["cpu"]["sample_images_per_s"]) + " |"]
    for device in devices:
        r = results[device]
        lines.append(f"| {device} | {r['train_uncached']['images_per_s']:.1f} | {r['train_cached']['images_per_s']:.1f} | "
                     f"{r['cache_build']['latent_images_per_s']:.0f} | "
                     + " | ".join(f"{v:.1f}" for v in r["sample_images_per_s"].values()) + " |")
    append_section("Latent diffusion speed (benchmarks/diffusion_speed.py speed)", command, lines)
    print("\n".join(lines))


# ----------------------------------------------------------------------------------- quality
def single_object_prompts(n: int, split: str, seed: int) -> list[str]:
    from t2i.data.shapes import prompts

    return [caption for caption, _ in prompts(n, seed=seed, split=split, kind="one")]


def accuracy(gen: Any, prompts: list[str], sampler: str, steps: int, guidance: float,
             seed: int) -> tuple[dict[str, Any], list]:
    """Prompt accuracy of one image per prompt, prompt i from seed + i: the images of
    ``t2i sample --model M --prompts FILE --seed SEED --sampler S --num-inference-steps N --guidance-scale G``."""
    from t2i.evaluators.shapes import prompt_accuracy
    from t2i.generator import generate_conditions

    images = generate_conditions(gen, prompts, seed=seed, n=1, sampler=sampler, num_inference_steps=steps,
                                 guidance_scale=guidance)
    acc = prompt_accuracy(images, prompts)["one"]
    return {k: acc[k] for k in ("n", "colour", "shape", "size", "position", "all_correct")}, images


def run_quality(args: argparse.Namespace, command: str) -> None:
    from gan_baselines.registry import load_generator
    from t2i.runtime.grids import save_grid

    gen = load_generator(args.model)
    splits = {"novel": single_object_prompts(args.n, "novel", args.seed), "test": single_object_prompts(args.n, "test", args.seed)}
    sweep: dict[str, Any] = {}
    strips = []
    name = Path(str(args.model)).name
    if args.reuse_sweep:  # keep the recorded DPM-Solver++ sweep, rerun only the DDIM comparison
        sweep = json.loads((OUT / f"quality_{name}.json").read_text())["sweep_dpm_solver_20"]
        args.guidances = [float(g) for g in sweep]
    for g in args.guidances if not args.reuse_sweep else []:
        sweep[str(g)] = {}
        for split, prompts in splits.items():
            sweep[str(g)][split], images = accuracy(gen, prompts, "dpm-solver++", 20, g, args.seed)
            if split == "novel":
                strips += images[:8]
        print(f"guidance {g}: {sweep[str(g)]}")
    # chosen by colour + shape accuracy on the novel single-object prompts (the Done-when figures)
    best = max(args.guidances, key=lambda g: (sweep[str(g)]["novel"]["colour"] + sweep[str(g)]["novel"]["shape"],
                                              sweep[str(g)]["novel"]["all_correct"]))
    ddim = {split: accuracy(gen, prompts, "ddim", 100, best, args.seed)[0] for split, prompts in splits.items()}
    result = {"model": str(args.model), "n": args.n, "sweep_dpm_solver_20": sweep, "chosen_guidance": best,
              "ddim_100": ddim, "machine": machine()}
    OUT.mkdir(exist_ok=True)
    (OUT / f"quality_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    if strips:
        save_grid(strips, OUT / f"quality_{name}_guidance.png", nrow=8)  # one row per guidance scale, novel prompts
    lines = [f"Model `{args.model}`, {args.n} single-object prompts per split (shapes evaluator; novel = held-out "
             "colour-shape pairs). Rows of `results/quality_" + name + "_guidance.png`: guidance scales in order.", "",
             "| sampler | guidance | novel colour | novel shape | novel all | test colour | test shape | test all |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for g in args.guidances:
        nv, ts = sweep[str(g)]["novel"], sweep[str(g)]["test"]
        mark = " (chosen)" if g == best else ""
        lines.append(f"| DPM-Solver++ x20 | {g}{mark} | {nv['colour']:.3f} | {nv['shape']:.3f} | {nv['all_correct']:.3f} "
                     f"| {ts['colour']:.3f} | {ts['shape']:.3f} | {ts['all_correct']:.3f} |")
    nv, ts = ddim["novel"], ddim["test"]
    lines.append(f"| DDIM x100 | {best} | {nv['colour']:.3f} | {nv['shape']:.3f} | {nv['all_correct']:.3f} "
                 f"| {ts['colour']:.3f} | {ts['shape']:.3f} | {ts['all_correct']:.3f} |")
    append_section("Latent diffusion guidance sweep (benchmarks/diffusion_speed.py quality)", command, lines)
    print("\n".join(lines))
    if args.write_defaults:
        from t2i.builtin import resolve
        from t2i.diffusion.options import DiffusionOptions, save_sampling_options

        path = save_sampling_options(DiffusionOptions("dpm-solver++", 20, best), resolve(args.model))
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.diffusion_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("speed", help="training and sampling images/s, with and without caching")
    s.add_argument("--unet", default="tiny", help="UNet preset (default: tiny)")
    s.add_argument("--clip", default="shapes-clip", help="text encoder (default: shapes-clip, or a random t2i-tiny)")
    s.add_argument("--steps", type=int, default=6, help="training steps per setting (default: 6)")
    s.add_argument("--batch-size", type=int, default=64, help="training batch (default: 64)")
    s.add_argument("--images", type=int, default=512, help="shapes images in the training set (default: 512)")
    s.add_argument("--sample-batch", type=int, default=8, help="images per sampling call (default: 8)")
    q = sub.add_parser("quality", help="guidance sweep and DPM-Solver++ x20 vs DDIM x100 prompt accuracy")
    q.add_argument("--model", default="shapes-ldm", help="pipeline folder or built-in name (default: shapes-ldm)")
    q.add_argument("--n", type=int, default=200, help="single-object prompts per split (default: 200)")
    q.add_argument("--guidances", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0, 5.0, 7.0])
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--reuse-sweep", action="store_true", help="take the guidance sweep from the last results file")
    q.add_argument("--write-defaults", action="store_true", help="store the chosen guidance in t2i_sampling.json")
    args = p.parse_args(argv)
    command = "python -m benchmarks.diffusion_speed " + " ".join(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    (run_speed if args.mode == "speed" else run_quality)(args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
