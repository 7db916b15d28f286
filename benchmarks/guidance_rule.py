"""How the bench's guidance rule moves a sweep's diffusion scores and crossovers: two reports of the same runs side by
side, one scored with ``--guidance-at top`` (one scale, chosen on the top rung, for every rung) and one with
``--guidance-at stage`` (each rung at its own best).

Prints, per rung the two share, the scale each rule used and the seed means of the headline metrics under each, and
marks the rungs where every seed's scores agree to 1e-4 (relative): where both rules chose the same scale, such a rung
checks that the two reports' runs were trained alike (re-trained runs: the judged counts match exactly, FID and KID
to float rounding). Then the crossover of diffusion over every other family of the
``--top`` report on the ladder cut at the last common rung, under each rule (``t2i.bench.sweep.crossovers``, the
bench's own: its bootstrap over seeds, and a family whose ladder ended early held at its top rung beyond it where
that rung is a plateau).

    python -m benchmarks.guidance_rule --top benchmarks/shapes --stage benchmarks/shapes-guidance-per-rung
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from t2i.bench.scoring import HEADLINE
from t2i.bench.sweep import crossovers, seed_curves

METRICS = ("acc_all", "acc_two", "relation_two", "domain_fid", "precision", "recall")


def cut_at(family: dict, multiple: float) -> dict:
    """A report's family as a ladder ending at ``multiple`` would have left it: its rungs and every seed's stages up
    to that rung (one stage per rung), and its ``--ladder-top`` only where that lies within the cut ladder."""
    n = sum(1 for r in family["rungs"] if r["multiple"] <= multiple)
    seeds = {k: {**s, "stages": s["stages"][:n]} for k, s in family["seeds"].items()}
    top = family.get("ladder_top")
    return {**family, "rungs": family["rungs"][:n], "seeds": seeds,
            "ladder_top": top if top is not None and top <= multiple else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", required=True, help="report folder scored with --guidance-at top")
    parser.add_argument("--stage", required=True, help="report folder of the same runs scored with --guidance-at stage")
    parser.add_argument("--family", default="ldm", help="the diffusion family")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the crossover interval")
    args = parser.parse_args(argv)
    top, stage = (json.loads((Path(p) / "results.json").read_text()) for p in (args.top, args.stage))
    a, b = top["families"][args.family], stage["families"][args.family]
    n = min(len(a["rungs"]), len(b["rungs"]))
    if [r["steps"] for r in a["rungs"][:n]] != [r["steps"] for r in b["rungs"][:n]]:
        raise SystemExit("guidance_rule: the two reports' rungs train different steps: not the same runs")
    chosen_top, last = top["diffusion"]["chosen_guidance"], b["rungs"][n - 1]["multiple"]
    a, b = cut_at(a, last), cut_at(b, last)  # the same n rungs each (their steps match)
    curves = {m: (seed_curves(a, m)[1], seed_curves(b, m)[1]) for m in METRICS}  # per seed, top and stage
    header = ["rung", "steps", "guidance top / stage"] + [f"{HEADLINE[m][0]} top / stage" for m in METRICS]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for i in range(n):
        cells = [f"x{b['rungs'][i]['multiple']:g}", str(b["rungs"][i]["steps"]),
                 f"{a['rungs'][i].get('guidance', chosen_top):g} / {b['rungs'][i]['guidance']:g}"]
        same = True
        for m in METRICS:
            ya, yb = curves[m]
            same &= all(math.isclose(u[i], v[i], rel_tol=1e-4, abs_tol=1e-9) for u, v in zip(ya, yb))
            cells.append(f"{statistics.mean(s[i] for s in ya):.3f} / {statistics.mean(s[i] for s in yb):.3f}")
        print("| " + " | ".join(cells) + " |" + (" the same on every seed (to 1e-4)" if same else ""))
    print(f"\ncrossovers of {args.family} on the ladder cut at x{last:g} "
          "(budget, 90% bootstrap interval, share of resamples that cross):")
    others = {name: cut_at(f, last) for name, f in top["families"].items() if name != args.family and f.get("rungs")}
    metrics, higher = ("acc_all", "relation_two"), {k: v[1] for k, v in HEADLINE.items()}
    found = {rule: {(c["other"], c["metric"]): c for c in crossovers({args.family: f, **others},
                                                                     args.family, metrics, higher, args.bootstrap)}
             for rule, f in (("top", a), ("stage", b))}
    for other in others:
        for metric in metrics:
            line = []
            for rule in ("top", "stage"):
                c = found[rule][other, metric]
                where = f"{c['budget']:.3g}" if c["budget"] else c["status"]
                interval = "-".join(f"{v:.2g}" for v in c["interval"]) if c["interval"] else "-"
                held = f", {other} held at its top rung beyond {c['held_from']:.2g}" if c.get("held_from") else ""
                line.append(f"{rule}: {where} ({interval}; {c['reached']:.0%}{held})")
            print(f"- {args.family} vs {other}, {HEADLINE[metric][0]}: " + "; ".join(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
