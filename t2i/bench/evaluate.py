"""Evaluating saved models the same way: sample an eval set, score it, and the diffusion studies.

Generators are loaded by a ``load(path) -> Generator`` callable that the caller passes in
(``gan_baselines.registry.load_generator`` in ``t2i bench``), so this library does not
depend on the model families.

- ``sample_and_score``: one model, one eval set -> metrics (and the images, for grids).
- ``guidance_sweep``: classifier-free guidance scales at a fixed sampler and step count;
  the best scale on the validation prompts is the one every seed is evaluated with.
- ``sampler_curves``: quality, time and FLOPs per image per sampler and number of steps (the
  points of the sampling-cost Pareto front).
- ``select``: the best of several runs on a validation metric (ties: lower domain FID, or CLIP FID).

    python -c "from t2i.bench.evaluate import demo; demo()"
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from t2i.bench.cost import count_flops
from t2i.bench.scoring import HEADLINE, EvalSet, Scorer, generate_images
from t2i.generator import Denoising, Generator

TIE_BREAKERS = ("domain_fid", "clip_fid")  # lower is better: the first both candidates carry breaks a tie


def diffusion_options(generator: Generator, sampler: str, steps: int, guidance: float) -> dict[str, Any]:
    """The sampling options of a request to a denoising generator, under diffusers' names (checked by the
    generator against its typed options)."""
    if not isinstance(generator, Denoising):
        raise TypeError(f"{generator.family} is not a denoising generator: it takes no sampler, steps or guidance")
    return {"sampler": sampler, "num_inference_steps": steps, "guidance_scale": guidance}


def sample_and_score(generator: Any, eval_set: EvalSet, scorer: Scorer, options: dict[str, Any] | None = None,
                     distribution: bool = True, desc: str = "sampling") -> tuple[dict[str, Any], torch.Tensor]:
    """Generate ``eval_set`` with ``generator`` (family ``options`` passed through) and score it.

    ``ms_per_image`` in the metrics is the wall time of generation per image (scoring excluded).
    """
    start = time.perf_counter()
    images = generate_images(generator, eval_set, options, desc=desc)
    seconds = time.perf_counter() - start
    metrics = scorer.score(images, eval_set, distribution=distribution)
    metrics["ms_per_image"] = 1000 * seconds / len(images)
    return metrics, images


def better(a: dict[str, Any], b: dict[str, Any] | None, metric: str) -> bool:
    """Is ``a`` better than ``b`` on ``metric`` (ties broken by the lower FID both carry: domain, else CLIP)?"""
    if b is None:
        return True
    higher = HEADLINE.get(metric, (metric, True))[1]
    va, vb = a.get(metric), b.get(metric)
    if va is not None and vb is not None and va != vb:
        return va > vb if higher else va < vb
    fid = next((k for k in TIE_BREAKERS if a.get(k) is not None and b.get(k) is not None), None)
    return fid is not None and a[fid] < b[fid]


def select(candidates: Sequence[dict[str, Any]], metric: str) -> int:
    """Index of the best candidate (each a metrics dict) on ``metric``."""
    best, best_i = None, 0
    for i, c in enumerate(candidates):
        if better(c, best, metric):
            best, best_i = c, i
    return best_i


def guidance_sweep(generator: Any, eval_set: EvalSet, scorer: Scorer, scales: Sequence[float], sampler: str,
                   steps: int, metric: str) -> tuple[list[dict[str, Any]], float]:
    """Score every guidance scale; return the points and the best scale on ``metric``.

    One untimed image first, so the first scale's ``ms_per_image`` does not carry the model's first-call costs."""
    one = dataclasses.replace(eval_set, prompts=eval_set.prompts[:1], labels=(eval_set.labels or [])[:1] or None,
                              novel=eval_set.novel[:1], images_per_prompt=1, records=None, real=None)
    generate_images(generator, one, diffusion_options(generator, sampler, steps, scales[0]), desc="warm-up")
    points = []
    for g in scales:
        metrics, _ = sample_and_score(generator, eval_set, scorer, diffusion_options(generator, sampler, steps, g),
                                      desc=f"guidance {g:g}")
        points.append({"guidance": g, "metrics": _flat(metrics), "ms_per_image": metrics["ms_per_image"]})
    best = select([p["metrics"] for p in points], metric)
    return points, points[best]["guidance"]


def sampler_curves(generator: Any, eval_set: EvalSet, scorer: Scorer, samplers: Sequence[str],
                   steps_list: Sequence[int], guidance: float) -> dict[str, list[dict[str, Any]]]:
    """Quality, time and FLOPs per image per sampler and step count, at one guidance scale.

    FLOPs are counted on one request for the first two conditions, one image each (text encoder included).
    """
    curves: dict[str, list[dict[str, Any]]] = {}
    request = {"prompts": eval_set.prompts[:2], "seed": eval_set.seed, "num_images_per_prompt": 1}
    for sampler in samplers:
        curves[sampler] = []
        for steps in steps_list:
            options = diffusion_options(generator, sampler, steps, guidance)
            metrics, _ = sample_and_score(generator, eval_set, scorer, options, desc=f"{sampler} {steps} steps")
            images, flops = count_flops(lambda: generator.generate(**request, **options))
            curves[sampler].append({"steps": steps, "metrics": _flat(metrics), "ms_per_image": metrics["ms_per_image"],
                                    "gflop_per_image": flops / len(images) / 1e9})
    return curves


def _flat(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numeric metrics only (the nested details stay out of curves and tables)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def evaluate_stages(load: Callable[[Path], Any], stages: Sequence[tuple[int, float, Path]], eval_set: EvalSet,
                    scorer: Scorer, options: Callable[[Any], dict[str, Any]] | None = None,
                    desc: str = "") -> tuple[list[dict[str, Any]], torch.Tensor, Any]:
    """Score the model saved after each training stage ``(steps, flops, folder)``.

    Returns the stage records, the images of the last stage and its generator (for grids and cost).
    """
    records, images, gen = [], None, None
    for steps, flops, folder in stages:
        gen = load(folder)
        opts = options(gen) if options is not None else {}
        metrics, images = sample_and_score(gen, eval_set, scorer, opts, desc=f"{desc} step {steps}")
        records.append({"steps": steps, "flops": flops, "metrics": _flat(metrics), "details": metrics["details"]})
    return records, images, gen


def demo() -> None:
    a, b = {"acc_all": 0.5, "domain_fid": 3.0}, {"acc_all": 0.5, "domain_fid": 2.0}
    print("select:", select([a, b], "acc_all"), "(ties go to the lower domain FID)")
