"""The benchmark's record: ``results.json`` (everything measured) and ``report.md`` (the tables).

``results.json`` layout (what ``t2i bench`` fills in)::

    {"command", "machine", "config", "notes": [...], "wall_minutes", "earlier_invocations": [{"command",
     "wall_minutes", "date", "interrupted" (when stopped by Ctrl-C or SIGTERM)}], "budget": {"kind", "value"},
     "eval": {"conditions", "images_per_prompt", "images", "seed", "reference_images"},
     "floor": {metric: value},                       # real vs real, same sample count
     "prompt_blind": {metric: value},                # the floor's images judged against other prompts (not captioned)
     "families": {name: {"title", "batch_size", "step_flops", "steps", "train_flops", "first_stage_flops", "cache_flops",
                         "lr", "trials": [{"lr", "validation": {...}, "selected"}],
                         "seeds": {seed: {"stages": [{"steps", "flops", "metrics"}], "metrics", "model",
                                          "train_images_per_s"}},
                         "summary": {metric: {"mean", "std", "n"}},
                         "cost": {"parameters", "train_flops", "train_images_per_s", "ms_per_image",
                                  "images_per_s", "gflop_per_image"},
                         "first_stage": {"steps", "flops", "test_psnr_db", ..., "ceiling": {metric: value}},
                                                                     # latent diffusion: the floor set reconstructed
                         "sampling": {options used},
                         "rungs": [{"multiple", "budget", "steps", "flops", "cpu_hours",
                                    "guidance"}]}},   # --ladder only; guidance: diffusion's scale at that rung
     "diffusion": {"family", "guidance_sweep": [...], "chosen_guidance", "sampler_curves": {sampler: [...]},
                   "stage_guidance": [{"steps", "guidance_sweep", "chosen_guidance"}]},   # --guidance-at stage only
     "sweep": {"metric", "crossovers": [{"diffusion", "other", "metric", "status", "budget", "interval", "reached",
                                         "cpu_hours", "cpu_hours_interval"}],
               "sampling_points": [...], "pareto": {cost: [point index]}, "total_cost": [...]}}   # --ladder only

    python -c "from t2i.bench.report import demo; demo()"
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
from pathlib import Path
from typing import Any, Sequence

from t2i.bench.families import data_kind
from t2i.bench.scoring import CLOSER_TO_REAL, HEADLINE, measures
from t2i.bench.sweep import AHEAD, CROSSED, NOT_REACHED
from t2i.io import atomic_write

EVALUATOR_DISTANCES = ("Domain FID/KID are computed on the project evaluator's features: they are not comparable "
                       "with Inception FID.")
DISTANCE_NOTES = {  # data kind -> what its distances are, under the quality table
    "shapes": EVALUATOR_DISTANCES,
    "digits": EVALUATOR_DISTANCES,
    "captioned": "CLIP FID/KID are FID/KID on the evaluation CLIP's image embeddings (Kynkaanniemi et al. 2023): "
                 "compare them with the floor row and across models judged by this CLIP only, never with "
                 "Inception FID. The floor row's R-precision and CLIP score are the real held-out images' (what "
                 "pictures like the held-out ones score with this CLIP; a generator goes above them only by drawing "
                 "pictures more typical of each caption than real ones are).",
}


def mean_std(values: Sequence[float | None]) -> dict[str, float] | None:
    """Mean and sample std (0 for one value) of the values that are not None; None if there are none."""
    xs = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not xs:
        return None
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def summarize(per_seed: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per metric over seeds: ``{metric: {"mean", "std", "n"}}`` for every numeric key."""
    keys = sorted({k for m in per_seed for k, v in m.items() if isinstance(v, (int, float)) and k != "n"})
    out = {}
    for k in keys:
        ms = mean_std([m.get(k) for m in per_seed])
        if ms is not None:
            out[k] = ms
    return out


def machine() -> dict[str, Any]:
    """Where the numbers were measured: CPU model, cores, torch and its device."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
        info["nice"] = os.nice(0)  # a niced process on a busy machine gets a fraction of a core: wall times stretch
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        info["memory_gb"] = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return info


def write_results(results: dict[str, Any], path: str | Path) -> Path:
    return atomic_write(Path(path), lambda tmp: tmp.write_text(json.dumps(results, indent=2, default=str) + "\n"))


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict) and "mean" in v:
        return f"{_fmt(v['mean'], digits)} +/- {_fmt(v['std'], digits)}" if v.get("n", 1) > 1 else _fmt(v["mean"], digits)
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 1e6:
        return f"{v:.3g}"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return lines + [""]


def wall_time(results: dict[str, Any]) -> str:
    """The report's wall-time sentence; a run that reused stored work also says what the earlier runs took."""
    this, earlier = results.get("wall_minutes", 0), results.get("earlier_invocations") or []
    workers = (results.get("config") or {}).get("workers", 1)
    training = (f" (training {results['training_minutes']:.1f} min of it" + (f", in {workers} worker processes)"
                                                                                if workers > 1 else ")")
                if results.get("training_minutes") is not None else "")
    if not earlier:
        return f"Wall time {this:.1f} min{training}."
    total = this + sum(e["wall_minutes"] for e in earlier)
    stopped = sum(bool(e.get("interrupted")) for e in earlier)
    kinds = (f"{len(earlier) - stopped} finished and {stopped} interrupted invocation(s)" if stopped
             else f"{len(earlier)} earlier finished invocation(s)")
    return (f"Wall time {this:.1f} min for this invocation{training}, which reused the stored work of {kinds} on its "
            f"--work folder ({total:.1f} min in all; invocations killed with kill -9 not counted; results.json lists "
            "their commands).")


def render_report(results: dict[str, Any], plots: dict[str, str]) -> str:
    """``report.md`` text from ``results`` (see the module docstring) and the plot file names."""
    fams, floor = results["families"], results.get("floor", {})
    present = [k for k in HEADLINE if floor.get(k) is not None or any(k in f.get("summary", {}) for f in fams.values())]
    ev, budget, m = results["eval"], results["budget"], results["machine"]
    lines = [f"# t2i bench: {results['config']['data']} at {results['config']['size']} px", ""]
    lines += [f"Command: `{results['command']}`", "",
              f"Machine: {m['cpu']}, {m['cores']} cores ({m['threads']} torch threads), device {m['device']}, "
              f"{m.get('memory_gb', '-')} GB RAM, torch {m['torch']}, Python {m['python']}; load average at the end "
              f"{m.get('load_average', '-')}, process niceness {m.get('nice', '-')}; "
              f"{m['date']}. {wall_time(results)}", ""]
    unit = "FLOPs" if budget["kind"] == "flops" else "images"
    if all("given" in f for f in fams.values()):  # every model passed with --load: nothing trained here
        trained = "Every model was given (--load) and evaluated as it is: no training budget, seeds or trials apply. "
    else:
        trained = (f"Budget per family run: {_fmt(float(budget['value']))} training {unit} (FlopCounterMode on one real "
                   f"step x steps; latent diffusion's first stage included). Seeds: {results['config']['seeds']}; "
                   f"tuning trials per family: {results['config']['trials']}. ")
    lines += [trained + f"Evaluation: {ev['conditions']} held-out conditions "
              f"x {ev['images_per_prompt']} images = {ev['images']} images per model, seed {ev['seed']}, against "
              f"{ev['reference_images']} real reference images.", ""]
    lines += summary_lines(results)
    if results.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in results["notes"]] + [""]
    lines += ["## Quality (mean +/- std over seeds)", ""]
    header = ["model"] + [HEADLINE[k][0] + (" ~" if k in CLOSER_TO_REAL else " ^" if HEADLINE[k][1] else " v")
                          for k in present]
    rows = [["real vs real (floor)"] + [floor.get(k) for k in present]]
    blind = results.get("prompt_blind")
    if blind:
        rows.append(["real, judged against other prompts (prompt-blind)"] + [blind.get(k) for k in present])
    ceilings = {name: f["first_stage"]["ceiling"] for name, f in fams.items() if f.get("first_stage", {}).get("ceiling")}
    rows += [[f"{name}'s first stage (floor reconstructed)"] + [c.get(k) for k in present] for name, c in ceilings.items()]
    rows += [[name] + [f.get("summary", {}).get(k) for k in present] for name, f in fams.items()]
    lines += _table(header, rows)
    lines += ["^ higher is better, v lower is better, ~ best at the real floor's value. " + DISTANCE_NOTES[data_kind(results["config"]["data"])]
              + (" The prompt-blind row judges the floor's real images against the prompts of other images (on "
                 "shapes, naming as many objects): a model that draws perfect scenes but ignores its prompt scores "
                 "this, the chance level of each prompt-following column." if blind else "")
              + (" A first stage's row scores the floor images after encoding and decoding them: what a perfect latent "
                 "model on that first stage would score (its FID and recall cannot get much better than these; its "
                 "precision can, by drawing only typical images)." if ceilings else ""), ""]
    lines += above_real(results)
    lines += ["## Cost", ""]
    rows, cached = [], any(f.get("cache_flops") for f in fams.values())  # a --cache recipe's one-off encoding
    for name, f in fams.items():
        c = f.get("cost", {})
        params = c.get("parameters", {})
        rows.append([name, params.get("total") if isinstance(params, dict) else params, f.get("lr"), f.get("batch_size"),
                     f.get("steps"), f.get("step_flops"), c.get("train_flops"), f.get("first_stage_flops"),
                     *([f.get("cache_flops")] if cached else []),
                     c.get("train_images_per_s"), c.get("ms_per_image"), c.get("images_per_s"), c.get("gflop_per_image")])
    lines += _table(["model", "parameters", "lr", "batch", "steps", "FLOPs / step", "training FLOPs",
                     "of which first stage", *(["of which --cache build"] if cached else []), "train images/s",
                     "sampling ms/image", "sampling images/s", "sampling GFLOP/image"], rows)
    lines += ["Parameters exclude the frozen conditioning text encoder (shared by every text family); sampling "
              "FLOPs include it. Images/s and ms are wall-clock on the machine above (noisy on a shared machine); "
              "the budget is not.", ""]
    trials = [(name, t) for name, f in fams.items() for t in f.get("trials", [])]
    if any(len(f.get("trials", [])) > 1 for f in fams.values()):
        lines += ["## Tuning trials (seed 0, scored on the validation prompts)", ""]
        judged = measures(results["config"]["data"])
        lines += _table(["model", "lr", HEADLINE[judged.metric][0], HEADLINE[judged.fid][0], "selected"],
                        [[n, t["lr"], t["validation"].get(judged.metric), t["validation"].get(judged.fid),
                          "yes" if t.get("selected") else ""] for n, t in trials])
    diff = results.get("diffusion")
    if diff:
        lines += [f"## Diffusion sampling ({diff['family']}, seed 0, validation prompts)", ""]
        if diff.get("guidance_sweep"):
            used = ("used at the top stage; every lower stage was scored at its own best (--guidance-at stage, "
                    "below)" if diff.get("stage_guidance") else "used for every seed's evaluation")
            lines += [f"Guidance sweep ({diff['sweep_sampler']}, {diff['sweep_steps']} steps); chosen: "
                      f"{diff.get('chosen_guidance')} (best {diff['select_metric']}), {used}.", ""]
            keys = [k for k in present if any(k in p["metrics"] for p in diff["guidance_sweep"])][:6]
            lines += _table(["guidance"] + [HEADLINE[k][0] for k in keys] + ["ms/image"],
                            [[p["guidance"]] + [p["metrics"].get(k) for k in keys] + [p.get("ms_per_image")]
                             for p in diff["guidance_sweep"]])
            lines += stage_guidance_lines(diff)
        if diff.get("sampler_curves"):
            metric = diff["select_metric"]
            steps = sorted({p["steps"] for pts in diff["sampler_curves"].values() for p in pts})
            lines += [f"{HEADLINE[metric][0]} by sampler and number of steps (guidance {diff.get('chosen_guidance')}):", ""]
            rows = [[s] + [next((p["metrics"].get(metric) for p in pts if p["steps"] == st), None) for st in steps]
                    for s, pts in diff["sampler_curves"].items()]
            lines += _table(["sampler"] + [f"{st} steps" for st in steps], rows)
    if results.get("sweep"):
        lines += sweep_lines(results)
    lines += ["## Plots", ""] + [f"![{name}]({file})" for name, file in plots.items()] + [""]
    return "\n".join(lines)


def stage_guidance_lines(diff: dict[str, Any]) -> list[str]:
    """--guidance-at stage: the sweep of every stage of seed 0 (headline metric per scale) and the scale chosen."""
    stages = diff.get("stage_guidance")
    if not stages:
        return []
    metric = diff["select_metric"]
    scales = [p["guidance"] for p in stages[-1]["guidance_sweep"]]
    rows = [[st["steps"], f"{st['chosen_guidance']:g}"]
            + [next((p["metrics"].get(metric) for p in st["guidance_sweep"] if p["guidance"] == g), None) for g in scales]
            for st in stages]
    return [f"{HEADLINE[metric][0]} by guidance at every stage of seed 0 (validation prompts); each stage's scores, "
            "every seed's, use its own chosen scale:", ""] + _table(
        ["steps", "chosen"] + [f"guidance {g:g}" for g in scales], rows)


def above_real(results: dict[str, Any]) -> list[str]:
    """A paragraph naming each family whose mean R-precision or CLIP score is above the real held-out images' own
    (the floor row), with its diversity ratio and CLIP FID beside the floor's: such a score comes from drawing
    pictures more typical of each caption than real ones (often one per caption), not pictures like the held-out
    ones, so the prompt-following measure must not be read alone; [] when no family is above."""
    floor, found = results.get("floor", {}), []
    for name, fam in results["families"].items():
        summary = fam.get("summary", {})
        over = [k for k in ("r_precision", "clip_score") if floor.get(k) is not None
                and (summary.get(k) or {}).get("mean", float("-inf")) > floor[k]]
        if not over:
            continue
        scores = ", ".join(f"{HEADLINE[k][0]} {_fmt(summary[k]['mean'])} against {_fmt(floor[k])}" for k in over)
        beside = [f"{HEADLINE[k][0]} {_fmt(summary[k]['mean'])}" + (f" (real {_fmt(floor[k])})" if floor.get(k) else "")
                  for k in ("diversity_ratio", "clip_fid") if summary.get(k)]
        found.append(f"{name} ({scores}" + (f"; {', '.join(beside)}" if beside else "") + ")")
    if not found:
        return []
    return [f"**Above the real images:** {'; '.join(found)}. A generator scores above real pictures of the same "
            "captions only by drawing pictures more typical of each caption than real ones are, often one picture "
            "per caption (a low diversity ratio): read its prompt-following score beside "
            "the diversity ratio and CLIP FID, which measure how far its pictures are from the held-out ones.", ""]


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A sweep's answer before its details: on the headline metric, where diffusion overtakes each family (with the
    interval over seeds), every family's top rung, and who still improves over its last doubling (a sweep of one
    family: its top rung and that verdict alone)."""
    sweep = results.get("sweep") or {}
    metric = sweep.get("metric")
    crossings = [c for c in sweep.get("crossovers") or [] if c["metric"] == metric]
    verdicts = {p["family"]: p["status"] for p in sweep.get("plateaus") or [] if p["metric"] == metric}
    if not crossings and not verdicts:
        return []
    name, fams = HEADLINE[metric][0], results["families"]

    def crossed(c: dict[str, Any]) -> str:
        interval = f"; 90% interval {_fmt(c['interval'][0])} - {_fmt(c['interval'][1])}" if c["interval"] else ""
        hours = f"; {_fmt(c['cpu_hours'])} CPU-hours" if c.get("cpu_hours") is not None else ""
        return f"{c['other']} at {_fmt(c['budget'])} FLOPs ({c['reached']:.0%} of seed resamples cross{interval}{hours})"

    def top(fam: str) -> str:
        f, rung = fams[fam], (fams[fam].get("rungs") or [{}])[-1]
        at = f" at x{rung['multiple']:g} ({_fmt(rung['flops'])} FLOPs)" if rung else ""
        return f"{fam} {_fmt(f.get('summary', {}).get(metric))}{at}"

    def listed(items: list[str]) -> str:
        return ", ".join(items[:-1]) + " and " * (len(items) > 1) + items[-1]

    clauses, diffusion = [], crossings[0]["diffusion"] if crossings else None
    if won := [crossed(c) for c in crossings if c["status"] == CROSSED]:
        clauses.append(f"{diffusion} overtakes {listed(won)}")
    if ahead := [c["other"] for c in crossings if c["status"] == AHEAD]:
        clauses.append(f"{diffusion} is ahead of {listed(ahead)} from their smallest common budget")
    if behind := [f"{c['other']} ({c['status']})" for c in crossings if c["status"] not in (CROSSED, AHEAD)]:
        clauses.append(f"{diffusion} has not overtaken {listed(behind)}")
    text = f"**In short**, on {name}: " + ("; ".join(clauses) + ". " if clauses else "")
    text += f"Top rung{'s' * (len(fams) > 1)} (mean over seeds): " + ", ".join(top(f) for f in fams) + "."
    if verdicts:
        text += " Over the last doubling: " + ", ".join(f"{f} {v}" for f, v in verdicts.items()) + "."
    if above_real(results):
        text += " Some families score above the real images on it (see **Above the real images** under Quality)."
    return [text, ""]


def _crossing_text(c: dict[str, Any]) -> str:
    if c["budget"] is None:
        return c["status"]
    at = "at or below" if c["status"] == AHEAD else "at"
    return f"{c['status']}: {at} {_fmt(c['budget'])} FLOPs"


def _common_top_text(c: dict[str, Any]) -> str:
    """Both seed means at the common top budget, for a crossing not reached: a top rung that cost more FLOPs than
    the other's can read ahead on its own while the curves at equal FLOPs do not cross."""
    top = c.get("common_top")
    if c["status"] != NOT_REACHED or not top:
        return ""
    return (f" (at equal FLOPs, {_fmt(top['flops'])}: {c['diffusion']} {_fmt(top['diffusion'])}, "
            f"{c['other']} {_fmt(top['other'])})")


def plateau_lines(plateaus: list[dict[str, Any]], keys: Sequence[str]) -> list[str]:
    """The plateau table (``t2i.bench.sweep.plateau``): one row per family, one cell per metric, and who has
    stopped improving on every metric."""
    if not plateaus:
        return []
    by = {(p["family"], p["metric"]): p for p in plateaus}
    names = list(dict.fromkeys(p["family"] for p in plateaus))
    shown = [k for k in keys if any((n, k) in by for n in names)]

    def cell(p: dict[str, Any] | None) -> str:
        if p is None:
            return "-"
        if p["change"] is None:
            return p["status"]
        spread = f" +/- {_fmt(p['stderr'])}" if p["stderr"] is not None else ""
        return f"{'+' if p['change'] >= 0 else ''}{_fmt(p['change'])}{spread}: {p['status']}"

    lines = ["## Plateau: has each family stopped improving?", "",
             "Change of the seed mean over the last doubling of the budget (from the rung at half the top rung's "
             "multiple, or the nearest below it, to the top rung; one-off costs such as a first stage or a latent "
             "cache's build are not doubled), paired by seed, +/- its standard error; "
             "'still improving' / 'getting worse' when a one-sided paired t-test at 95% says so, 'plateau' "
             "(within noise) otherwise, or 'no better than at the first rung' when the same test finds no gain "
             "since the first rung either (flat from the start: not learning yet). Few seeds make the test weak: "
             "read the change beside the verdict.", ""]
    lines += _table(["model"] + [HEADLINE[k][0] for k in shown], [[n] + [cell(by.get((n, k))) for k in shown]
                                                                   for n in names])
    flat = [n for n in names if all(by[(n, k)]["status"] == "plateau" for k in shown if (n, k) in by)]
    rising = {n: [HEADLINE[k][0] for k in shown if (n, k) in by and by[(n, k)]["status"] == "still improving"]
              for n in names}
    stopped = [n for n in names if n not in flat  # flat or getting worse on each metric: no gain left
               and all(by[(n, k)]["status"] in ("plateau", "getting worse") for k in shown if (n, k) in by)]
    lines += ["", "Within noise on every metric at the top of the ladder: " + (", ".join(flat) or "none") + "."
              + (f" Stopped improving (within noise, or getting worse) on every metric: {', '.join(stopped)}."
                 if stopped else "")
              + "".join(f" {n} still improving on: {', '.join(m)}." for n, m in rising.items() if m), ""]
    return lines


def sweep_lines(results: dict[str, Any]) -> list[str]:
    """The budget sweep's sections: the ladder per rung, the crossovers, sampling cost (Pareto) and total cost."""
    sweep, fams = results["sweep"], results["families"]
    keys = [c for c in dict.fromkeys(c["metric"] for c in sweep["crossovers"])] or [sweep["metric"]]
    lines = ["## Budget ladder (one run per seed, scored at every rung; mean +/- std over seeds)", ""]
    rows = []
    for name, f in fams.items():
        seeds = [s["stages"] for s in f.get("seeds", {}).values() if s.get("stages")]
        for i, rung in enumerate(f.get("rungs", [])):
            rows.append([name, f"x{rung['multiple']:g}", rung["steps"], rung["flops"], rung["cpu_hours"]]
                        + [mean_std([st[i]["metrics"].get(k) for st in seeds]) for k in keys])
    lines += _table(["model", "rung", "steps", "training FLOPs", "CPU-hours"] + [HEADLINE[k][0] for k in keys], rows)
    lines += plateau_lines(sweep.get("plateaus") or [], keys)
    if sweep["crossovers"]:
        lines += ["## Crossover: where diffusion overtakes", ""]
        lines += [f"- {c['diffusion']} vs {c['other']}, {HEADLINE[c['metric']][0]}: {_crossing_text(c)}"
                  + _common_top_text(c)
                  + (f" ({_fmt(c['cpu_hours'])} CPU-hours)" if c.get("cpu_hours") is not None else "")
                  + (f"; {c['other']} held at its top rung's value beyond {_fmt(c['held_from'])} FLOPs (a plateau)"
                     if c.get("held_from") else "")
                  + (f"; 90% bootstrap interval {_fmt(c['interval'][0])} - {_fmt(c['interval'][1])} FLOPs"
                     if c["interval"] else "") + f"; {c['reached']:.0%} of resamples cross"
                  + (f"; at chance: {c['diffusion']}'s top rung is no better than the prompt-blind level "
                     f"{_fmt(c['at_chance'])}, so this is no prompt following" if c.get("at_chance") is not None else "")
                  for c in sweep["crossovers"]]
        lines += ["", "'crossed' = diffusion is behind at a lower rung and ahead from the given budget to the top of "
                  "the ladder; 'not reached within the ladder' = still behind (or tied) at the top rung.", ""]
    metric = HEADLINE[sweep["metric"]][0]
    lines += [f"## Sampling cost: {metric} vs cost per image (the Pareto front)", ""]
    pts, front = sweep["sampling_points"], sweep["pareto"]
    lines += _table(["model / sampler steps", "prompts", "GFLOP / image", "ms / image", metric, "front (GFLOP)",
                     "front (ms)"],
                    [[p["label"], p["prompts"], p.get("gflop_per_image"), p.get("ms_per_image"), p.get("quality"),
                      "yes" if i in front.get("gflop_per_image", []) else "", "yes" if i in front.get("ms_per_image", [])
                      else ""] for i, p in enumerate(pts)])
    lines += ["Families at their top rung on the eval prompts (mean over seeds); the diffusion sampler x steps "
              "points on the validation prompts (seed 0, top rung), as the quality-vs-steps curve measures them.", ""]
    if sweep["total_cost"]:
        ns = sweep["total_cost"][0]["images"]
        lines += ["## Total cost: training (top rung) + N images", ""]
        lines += _table(["model", "unit"] + [f"N = {n:.0e}" for n in ns],
                        [[t["family"], unit] + list(t[key] or [None] * len(ns)) for t in sweep["total_cost"]
                         for key, unit in (("flops", "FLOPs"), ("cpu_hours", "CPU-hours"))])
    return lines


def write_report(results: dict[str, Any], plots: dict[str, str], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(results, plots))
    return path


def demo() -> None:
    print(mean_std([0.5, 0.7, None]), summarize([{"acc_all": 0.5, "n": 10}, {"acc_all": 0.7, "n": 10}]))
