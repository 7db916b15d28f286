"""Re-count a bench sweep report's FLOPs with attention on the CPU counted, from its results.json alone.

Until 2026-12-04 the bench counted ``scaled_dot_product_attention`` on a CPU as 0 FLOPs (torch's counter has
formulas for the GPU kernels only; ``t2i.bench.cost.flop_counter`` now adds the CPU one). A report made
before then can be re-counted without its ``--work`` folder, since FLOPs do not depend on the weights:

1. every family's training step (and its first stage's) is counted again on the configuration the report
   records, once with the old counter and once with the new; the old count must equal the recorded one,
   which proves the configuration is the same, or the script stops;
2. sampling GFLOP per image likewise, on a model of the same architecture trained for one step, with the
   request the bench times (the first 16 eval conditions) and the sampler x steps curves' (2 conditions);
3. every rung's FLOPs become the steps it trained times the new step count, plus the first stage's;
   crossovers, plateaus, the Pareto front and total costs are re-computed (``t2i.bench.sweep``), and
   report.md, results.json and the plots that depend on FLOPs are re-written with a note. Nothing is
   trained beyond the one-step models, scored or timed; ``grid.png`` and the guidance and steps plots stay.

    python -m benchmarks.recount_flops benchmarks/digits

A first stage given with ``--load vae-kl=PATH`` must still be at PATH (a built-in name is); reports whose latent
diffusion trained with ``--cache`` are refused (the cached shapes sweep was re-made with the new count).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import t2i.bench.cost as cost
from gan_baselines.registry import load_generator
from t2i.bench import plots
from t2i.bench.config import parse_loads
from t2i.bench.evaluate import diffusion_options
from t2i.bench.families import FAMILIES, FIRST_STAGE, Family
from t2i.bench.report import write_report, write_results
from t2i.bench.scoring import HEADLINE
from t2i.bench.sweep import sweep_summary
from train.bench import FIRST_STAGE_COUNT_TAIL, trainer_argv

COST_CONDITIONS, CURVE_CONDITIONS = 16, 2  # as train/bench.py's cost() and t2i.bench.evaluate.sampler_curves
NOTE = ("FLOPs re-counted on {date} from this results.json by `python -m benchmarks.recount_flops` (nothing trained, "
        "scored or timed; the counts were made before the bench counted attention on a CPU, and the old counter "
        "reproduces each recorded count on the same configuration): {changes}; every rung's FLOPs are the steps it "
        "trained times the new count")


def old_and_new(count: Callable[[], Any]) -> tuple[Any, Any]:
    """``count()`` under the counter without CPU attention formulas (the bench's before the fix), then with."""
    formulas = cost.cpu_attention_formulas
    cost.cpu_attention_formulas = lambda: {}
    try:
        old = count()
    finally:
        cost.cpu_attention_formulas = formulas
    return old, count()


def argv_of(results: dict[str, Any], family: Family, lr: float, batch_size: int, options: list[str],
            vae: Path | str | None) -> list[str]:
    """The bench's argv for ``family`` as results.json records its run (seed 0), built by the bench's own
    ``trainer_argv``."""
    cfg = SimpleNamespace(**{k: results["config"].get(k, 0) for k in ("data", "size", "n", "cpu")})
    recipe = dataclasses.replace(family, batch_size=batch_size, options=options)
    return trainer_argv(cfg, recipe, lr, 0, results["config"].get("clip"), vae)


def sampling_gflop(gen: Any, request: dict[str, Any]) -> tuple[float, float]:
    """(old, new) GFLOP per image of one request to ``gen`` (prompts become as many labels for a label model)."""
    if gen.conditioning != "text":
        request = {**request, "labels": [0] * len(request["prompts"])}  # FLOPs do not depend on the label
        del request["prompts"]

    def count() -> float:
        images, flops = cost.count_flops(lambda: gen.generate(**request))
        return flops / len(images) / 1e9
    return old_and_new(count)


def check(name: str, what: str, old: float, recorded: float) -> None:
    if abs(old - recorded) > 1e-9 * abs(recorded):
        raise SystemExit(f"{name}: the old counter gives {old} for {what}, the report recorded {recorded}: "
                         "already re-counted, or not the report's configuration; nothing written")


def recount_family(results: dict[str, Any], name: str, prompts: list[str], root: Path) -> dict[str, Any]:
    """New step, first-stage step and sampling counts of one family, each checked against the record."""
    fam, family = results["families"][name], FAMILIES[name]
    if any(o.startswith("--cache") for o in fam.get("options", [])):
        raise SystemExit(f"{name} trained with --cache: its one-off build is not in this script; nothing written")
    vae, out = None, {}
    if family.first_stage:
        fs = fam.get("first_stage") or {}
        given = parse_loads(results["config"].get("load", ""))
        if "options" in fs:  # trained by the bench: count its step, and train it one step to stand in for it
            fs_argv = argv_of(results, FIRST_STAGE, FIRST_STAGE.lr, fs["batch_size"],
                              [o for o in fs["options"] if not o.startswith("--eval-images")], None)
            old, new = old_and_new(lambda: cost.trainer_step_flops(
                FIRST_STAGE.trainer, fs_argv + FIRST_STAGE_COUNT_TAIL, root / "count"))
            check(name, "its first stage's step", old, fs["step_flops"])
            out["first_stage_step"] = new
            cost.train_fresh(FIRST_STAGE.trainer, fs_argv + ["--eval-images=16"], root / "first-stage", 1)
            vae = root / "first-stage"  # the run folder, as the bench passes it
        elif "vae-kl" in given:  # given with --load vae-kl=PATH: its training cost was not counted
            vae = given["vae-kl"]
        else:
            raise SystemExit(f"{name}: its first stage is neither recorded nor given in results.json; nothing written")
    argv = argv_of(results, family, fam["lr"], fam["batch_size"], fam.get("options", []), vae)
    old, new = old_and_new(lambda: cost.trainer_step_flops(family.trainer, argv, root / "count"))
    check(name, "its step", old, fam["step_flops"])
    out["step"] = new
    cost.train_fresh(family.trainer, argv, root / name, 1)
    gen = load_generator(root / name / family.model_subdir, device="cpu")
    request: dict[str, Any] = {"prompts": prompts[:COST_CONDITIONS], "seed": results["config"]["eval_seed"],
                               "num_images_per_prompt": 1}
    study = results.get("diffusion") or {}
    if family.diffusion:
        s = fam["sampling"]
        request.update(diffusion_options(gen, s["sampler"], s["steps"], s["guidance"]))
    old, new = sampling_gflop(gen, request)
    check(name, "sampling GFLOP per image", old, fam["cost"]["gflop_per_image"])
    out["gflop_per_image"] = new
    if study.get("family") == name:
        out["curves"] = {}
        for sampler, points in study["sampler_curves"].items():
            for p in points:
                req = {"prompts": prompts[:CURVE_CONDITIONS], "seed": results["config"]["eval_seed"],
                       "num_images_per_prompt": 1, **diffusion_options(gen, sampler, p["steps"], study["chosen_guidance"])}
                old, new = sampling_gflop(gen, req)
                check(name, f"{sampler} at {p['steps']} steps", old, p["gflop_per_image"])
                out["curves"][(sampler, p["steps"])] = new
    return out


def apply(results: dict[str, Any], counts: dict[str, dict[str, Any]]) -> list[str]:
    """Re-write every FLOP figure of ``results`` from the new counts (in place); returns the changes, in words."""
    changes, unchanged = [], []
    for name, new in counts.items():
        fam = results["families"][name]
        old_step, old_fs = fam["step_flops"], float(fam.get("first_stage_flops") or 0)
        new_fs = old_fs
        if "first_stage_step" in new:
            fs = fam["first_stage"]
            changes.append(f"{name}'s first stage step {fs['step_flops']:.4g} -> {new['first_stage_step']:.4g}")
            fs["step_flops"] = new["first_stage_step"]
            fs["flops"] = new_fs = fs["steps"] * fs["step_flops"]
            fam["first_stage_flops"] = float(new_fs)

        def at(steps: int, flops: float) -> float:
            if abs(steps * old_step + old_fs - flops) > 1e-6 * flops:
                raise SystemExit(f"{name}: {flops} FLOPs at {steps} steps is not steps x step + first stage; nothing written")
            return float(steps * new["step"] + new_fs)
        for seed in fam["seeds"].values():
            for stage in seed["stages"]:
                stage["flops"] = at(stage["steps"], stage["flops"])
        for rung in fam.get("rungs", []):
            rung["flops"] = at(rung["steps"], rung["flops"])
        fam["cost"]["train_flops"] = at(fam["steps"], fam["cost"]["train_flops"])
        if new["step"] != old_step:
            changes.append(f"{name} step {old_step:.4g} -> {new['step']:.4g}")
        elif new_fs == old_fs and new["gflop_per_image"] == fam["cost"]["gflop_per_image"]:
            unchanged.append(name)
        fam["step_flops"] = new["step"]
        if new["gflop_per_image"] != fam["cost"]["gflop_per_image"]:
            changes.append(f"{name} sampling {fam['cost']['gflop_per_image']:.3f} -> {new['gflop_per_image']:.3f} "
                           "GFLOP per image")
        fam["cost"]["gflop_per_image"] = new["gflop_per_image"]
        if "curves" in new:
            for sampler, points in results["diffusion"]["sampler_curves"].items():
                for p in points:
                    p["gflop_per_image"] = new["curves"][(sampler, p["steps"])]
    return changes + ([f"{', '.join(unchanged)} unchanged (no attention)"] if unchanged else [])


def main(argv: list[str] | None = None) -> int:
    import datetime

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / "results.json").is_file():
        raise SystemExit("usage: python -m benchmarks.recount_flops REPORT_FOLDER (a folder with the bench's results.json)")
    folder = Path(args[0])
    results = json.loads((folder / "results.json").read_text())
    if not results.get("sweep"):
        raise SystemExit(f"{folder} is not a budget sweep (no 'sweep' in its results.json): nothing to re-count")
    prompts = [line.strip() for line in (folder / "eval_prompts.txt").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        counts = {name: recount_family(results, name, prompts, Path(tmp) / name) for name in results["families"]}
    changes = apply(results, counts)
    metrics = list(dict.fromkeys(p["metric"] for p in results["sweep"]["plateaus"]))
    chance = {k: v for k, v in (results.get("prompt_blind") or {}).items() if isinstance(v, float)}
    diffusion = (results.get("diffusion") or {}).get("family")
    results["sweep"] = sweep_summary(results["families"], diffusion, results.get("diffusion"), metrics,
                                     {k: v[1] for k, v in HEADLINE.items()}, results["config"]["bootstrap"],
                                     results["machine"]["threads"], chance=chance)
    results["notes"].append(NOTE.format(date=datetime.date.today().isoformat(), changes="; ".join(changes)))
    write_results(results, folder / "results.json")
    write_report(results, results["plots"], folder / "report.md")
    fams, floor = results["families"], results["floor"]
    plots.plot_quality_vs_budget(fams, floor, [m if m != "diversity_gap" else "diversity_ratio" for m in metrics],
                                 folder / "quality_vs_budget.png")
    plots.plot_cost_vs_quality(fams, floor, metrics[0], folder / "cost_vs_quality.png")
    plots.plot_pareto(results["sweep"], folder / "pareto.png")
    plots.plot_total_cost(results["sweep"]["total_cost"], folder / "total_cost.png")
    print(f"re-counted {folder}: " + "; ".join(changes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
