"""Few-step sampling study: latency and prompt accuracy of diffusion sampling configurations (issue 19).

Each configuration is ``MODEL@STEPS`` or ``MODEL@SAMPLER:STEPS`` (sampler and guidance otherwise the
model's own defaults from its ``t2i_sampling.json``). For each one:
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

import torch

from benchmarks.diffusion_speed import OUT, append_section, machine
from benchmarks.relations import measure

LATENCY_PROMPT = "a small red circle in the center"
PARTS = ("text_encoder", "unet", "vae_decode")


class PartTimer:
    """Wall time spent inside the text encoder, the UNet (and its attention layers) and the VAE decoder of a
    pipeline, by hooks."""

    def __init__(self, pipe: Any):
        from diffusers.models.attention_processor import Attention

        self.seconds: dict[str, float] = defaultdict(float)
        self.unet_calls = 0
        self._start: dict[str, float] = {}
        parts = [("text_encoder", pipe.text_encoder), ("unet", pipe.unet)]
        parts += [(f"attention.{i}", m) for i, m in enumerate(m for m in pipe.unet.modules() if isinstance(m, Attention))]
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
        self._start[name] = time.perf_counter()

    def _end(self, name: str) -> None:
        elapsed = time.perf_counter() - self._start.pop(name)
        self.seconds["unet_attention" if name.startswith("attention.") else name] += elapsed
        self.unet_calls += name == "unet"

    def reset(self) -> None:
        self.seconds.clear()
        self.unet_calls = 0


def latency(gen: Any, options: dict[str, Any], repeats: int) -> dict[str, Any]:
    timer = PartTimer(gen.pipe)
    gen.generate(prompts=[LATENCY_PROMPT], seed=0, num_images_per_prompt=4, **options)  # warm-up
    totals, parts = [], []
    for seed in range(repeats):
        timer.reset()
        start = time.perf_counter()
        gen.generate(prompts=[LATENCY_PROMPT], seed=seed, num_images_per_prompt=4, **options)
        totals.append(time.perf_counter() - start)
        parts.append({**timer.seconds, "unet_calls": timer.unet_calls})
    median = statistics.median(totals)
    row = {"seconds_4_images": median, "slowest": max(totals), "unet_calls": parts[0]["unet_calls"]}
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
        model, _, setting = spec.rpartition("@")
        sampler, _, steps_text = setting.rpartition(":")
        if not model or not steps_text.isdigit():
            parser.error(f"--configs: expected MODEL@STEPS or MODEL@SAMPLER:STEPS, e.g. shapes-ldm@ddim:8; got {spec!r}")
        gen = load_generator(model)
        options = {"num_inference_steps": int(steps_text), "sampler": sampler or gen.options.sampler}
        row = {"model": model, "steps": int(steps_text), "sampler": options["sampler"],
               "guidance": gen.options.guidance_scale, **latency(gen, options, args.repeats)}
        if not args.no_accuracy:
            row["accuracy"], kept = measure(gen, args.n, **options)
            strips += kept["test_two"][1][:8]
        results["configs"][spec] = row
        print(spec, json.dumps(row), flush=True)
    OUT.mkdir(exist_ok=True)
    name = f"{args.name}_latency" if args.no_accuracy else args.name
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    if strips:
        save_grid(strips, OUT / f"{args.name}.png", nrow=8)
    lines = [f"Latency: 4 images of one prompt (the app's default request), median of {args.repeats} "
             "after a warm-up; parts measured by hooks (rest = scheduler, PIL, Python). Accuracy: shapes evaluator, "
             f"{args.n} prompts per split and kind, one image each, prompt i from seed i. Rows of "
             f"`results/{args.name}.png`: the configurations in order, on the first 8 two-object test prompts.", "",
             "| configuration | sampler, guidance | UNet passes | 4 images (s) | text / UNet (its attention) / VAE / rest (s) | test one | "
             "test two (relation) | novel one | novel two |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for spec, r in results["configs"].items():
        a = r.get("accuracy")
        scores = "not measured (--no-accuracy) | | | " if a is None else (
            f"{a['test_one']['all_correct']:.3f} | {a['test_two']['all_correct']:.3f} ({a['test_two']['relation']:.3f}) | "
            f"{a['novel_one']['all_correct']:.3f} | {a['novel_two']['all_correct']:.3f} |")
        lines.append(f"| `{spec}` | {r['sampler']}, {r['guidance']:g} | {r['unet_calls']} | {r['seconds_4_images']:.3f} | "
                     f"{r['text_encoder']:.3f} / {r['unet']:.3f} ({r['unet_attention']:.3f}) / {r['vae_decode']:.3f} / "
                     f"{r['rest']:.3f} | {scores}")
    command = "python -m benchmarks.fast_sampling " + " ".join(sys.argv[1:] if argv is None else argv)
    append_section("Few-step sampling: latency and accuracy (benchmarks/fast_sampling.py)", command, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
