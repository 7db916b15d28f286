"""Few-step sampling study: latency and prompt accuracy of diffusion sampling configurations (issue 19).

Each configuration is ``MODEL@STEPS`` or ``MODEL@SAMPLER:STEPS`` (sampler and guidance otherwise the
model's own defaults from its ``t2i_sampling.json``), with ``+compile`` at the end for the UNet's forward under
``torch.compile`` (its first call, the compilation, is reported apart; the attention layers are then inside the
compiled graph and not timed on their own) and/or ``+bf16`` for the whole pipeline in bfloat16 (for GPUs;
CPUs without bfloat16 units emulate it slowly). ``--device cuda`` runs every configuration on the GPU
(the part timers then synchronise the device at each hook, so the parts add up to GPU time). For each one:
- **latency** of the app's default request, 4 images of one prompt, median of ``--repeats`` calls
  after a warm-up, with the time split by part (text encoder, UNet and the attention layers inside
  it, VAE decode; the rest is the scheduler, tensor-to-PIL and Python), measured by hooks around each part;
- **prompt accuracy** by the shapes evaluator on ``--n`` one-object and ``--n`` two-object prompts of
  ``test`` and of ``novel`` (held-out colour-shape pairs), one image per prompt, prompt i from seed i:
  the images of ``t2i sample --model MODEL --prompts FILE --seed 0 --sampler SAMPLER --num-inference-steps STEPS``.
A guidance-distilled model (``t2i train distill``) runs one UNet pass per step, its teacher two.

Appends a section to ``benchmarks/RESULTS.md`` and writes ``benchmarks/results/NAME.json`` and ``NAME.png``
(``--name``, default ``fast_sampling``; one row per configuration: the same 8 two-object test prompts and seeds).

    python -m benchmarks.fast_sampling --configs shapes-ldm@20 shapes-ldm@ddim:8 shapes-ldm-fast@8 shapes-ldm-fast@4 --n 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from benchmarks.diffusion_speed import OUT, append_section, machine
from benchmarks.relations import measure

LATENCY_PROMPT = "a small red circle in the center"
PARTS = ("text_encoder", "unet", "vae_decode")


class PartTimer:
    """Wall time spent inside the text encoder, the UNet (and its attention layers, unless ``attention`` is False)
    and the VAE decoder of a pipeline, by hooks."""

    def __init__(self, pipe: Any, attention: bool = True):
        from diffusers.models.attention_processor import Attention

        self.sync = pipe.unet.device.type == "cuda"  # kernels run asynchronously: wait for them at each hook
        self.seconds: dict[str, float] = defaultdict(float)
        self.unet_calls = 0
        self._start: dict[str, float] = {}
        parts = [("text_encoder", pipe.text_encoder), ("unet", pipe.unet)]
        if attention:
            parts += [(f"attention.{i}", m)
                      for i, m in enumerate(m for m in pipe.unet.modules() if isinstance(m, Attention))]
        for name, module in parts:
            module.register_forward_pre_hook(lambda m, a, name=name: self._begin(name))
            module.register_forward_hook(lambda m, a, o, name=name: self._end(name))
        decode = pipe.vae.decode

        def timed_decode(*args: Any, **kwargs: Any) -> Any:
            self._begin("vae_decode")
            try:
                return decode(*args, **kwargs)
            finally:
                self._end("vae_decode")

        pipe.vae.decode = timed_decode

    def _begin(self, name: str) -> None:
        if self.sync:
            torch.cuda.synchronize()
        self._start[name] = time.perf_counter()

    def _end(self, name: str) -> None:
        if self.sync:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - self._start.pop(name)
        self.seconds["unet_attention" if name.startswith("attention.") else name] += elapsed
        self.unet_calls += name == "unet"

    def reset(self) -> None:
        self.seconds.clear()
        self.unet_calls = 0


def latency(gen: Any, options: dict[str, Any], repeats: int, compiled: bool = False) -> dict[str, Any]:
    timer = PartTimer(gen.pipe, attention=not compiled)
    request = {"prompts": [LATENCY_PROMPT], "seed": 0, "num_images_per_prompt": 4, **options}
    if compiled:  # the hooks stay outside: Module.__call__ runs them around the compiled forward
        eager = gen.generate(**request)
        gen.pipe.unet.forward = torch.compile(gen.pipe.unet.forward, dynamic=False)
    start = time.perf_counter()
    first = gen.generate(**request)  # warm-up (for +compile: the compilation)
    first_call = time.perf_counter() - start
    # the same images? max abs difference in 0-255 pixel values, compiled against eager
    pixel_diff = max(int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
                     for a, b in zip(eager, first)) if compiled else 0
    totals, parts = [], []
    for seed in range(repeats):
        timer.reset()
        start = time.perf_counter()
        gen.generate(prompts=[LATENCY_PROMPT], seed=seed, num_images_per_prompt=4, **options)
        totals.append(time.perf_counter() - start)
        parts.append({**timer.seconds, "unet_calls": timer.unet_calls})
    median = statistics.median(totals)
    row = {"seconds_4_images": median, "slowest": max(totals), "unet_calls": parts[0]["unet_calls"],
           "first_call_s": first_call, "compiled": compiled, "max_pixel_diff_vs_eager": pixel_diff}
    for part in (*PARTS, "unet_attention"):
        row[part] = statistics.median(p.get(part, 0.0) for p in parts)
    row["rest"] = median - sum(row[p] for p in PARTS)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fast_sampling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["shapes-ldm@20", "shapes-ldm@ddim:8", "shapes-ldm-fast@8",
                                                         "shapes-ldm-fast@4"], help="MODEL@STEPS, in table order")
    parser.add_argument("--n", type=int, default=200, help="prompts per split and kind (one image each)")
    parser.add_argument("--repeats", type=int, default=7, help="timed 4-image requests per configuration")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    parser.add_argument("--no-accuracy", action="store_true", help="latency only (accuracy does not depend on threads)")
    parser.add_argument("--name", default="fast_sampling",
                        help="file stem under benchmarks/results/ (NAME.json, NAME.png; NAME_latency.json with "
                             "--no-accuracy), so a new study does not overwrite the figures an earlier one published")
    args = parser.parse_args(argv)
    from gan_baselines.registry import load_generator
    from t2i.runtime.grids import save_grid

    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"machine": machine(), "n": args.n, "configs": {}}
    strips = []
    for spec in args.configs:
        base, *suffixes = spec.split("+")
        compiled, bf16 = "compile" in suffixes, "bf16" in suffixes
        model, _, setting = base.rpartition("@")
        sampler, _, steps_text = setting.rpartition(":")
        if not model or not steps_text.isdigit() or set(suffixes) - {"compile", "bf16"}:
            parser.error("--configs: expected MODEL@STEPS or MODEL@SAMPLER:STEPS, optionally +compile and/or +bf16, "
                         f"e.g. shapes-ldm@ddim:8+compile; got {spec!r}")
        gen = load_generator(model, device=args.device)
        if bf16:
            gen.pipe.to(dtype=torch.bfloat16)
        options = {"num_inference_steps": int(steps_text), "sampler": sampler or gen.options.sampler}
        row = {"model": model, "steps": int(steps_text), "sampler": options["sampler"],
               "guidance": gen.options.guidance_scale, **latency(gen, options, args.repeats, compiled)}
        if not args.no_accuracy:
            row["accuracy"], kept = measure(gen, args.n, **options)
            strips += kept["test_two"][1][:8]
        key = spec if spec not in results["configs"] else f"{spec} (run {len(results['configs']) + 1})"
        results["configs"][key] = row  # a configuration given twice (A, B, A) keeps both rows
        print(key, json.dumps(row), flush=True)
    OUT.mkdir(exist_ok=True)
    name = f"{args.name}_latency" if args.no_accuracy else args.name
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    if strips:
        save_grid(strips, OUT / f"{args.name}.png", nrow=8)
    lines = [f"Latency: 4 images of one prompt (the app's default request), median of {args.repeats} "
             "after a warm-up; parts measured by hooks (rest = scheduler, PIL, Python). Accuracy: shapes evaluator, "
             f"{args.n} prompts per split and kind, one image each, prompt i from seed i. Rows of "
             f"`results/{args.name}.png`: the configurations in order, on the first 8 two-object test prompts.", "",
             "| configuration | sampler, guidance | UNet passes | 4 images (s) | first call (s) | text / UNet (its "
             "attention) / VAE / rest (s) | test one | test two (relation) | novel one | novel two |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for spec, r in results["configs"].items():
        a = r.get("accuracy")
        scores = "not measured (--no-accuracy) | | | " if a is None else (
            f"{a['test_one']['all_correct']:.3f} | {a['test_two']['all_correct']:.3f} ({a['test_two']['relation']:.3f}) | "
            f"{a['novel_one']['all_correct']:.3f} | {a['novel_two']['all_correct']:.3f} |")
        attention = "in the graph" if r["compiled"] else f"{r['unet_attention']:.3f}"
        label = f"`{spec}`" + (f" (max pixel difference from eager {r['max_pixel_diff_vs_eager']}/255)"
                               if r["compiled"] else "")
        lines.append(f"| {label} | {r['sampler']}, {r['guidance']:g} | {r['unet_calls']} | {r['seconds_4_images']:.3f} | "
                     f"{r['first_call_s']:.1f} | {r['text_encoder']:.3f} / {r['unet']:.3f} ({attention}) / "
                     f"{r['vae_decode']:.3f} / "
                     f"{r['rest']:.3f} | {scores}")
    command = "python -m benchmarks.fast_sampling " + " ".join(sys.argv[1:] if argv is None else argv)
    append_section("Few-step sampling: latency and accuracy (benchmarks/fast_sampling.py)", command, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
