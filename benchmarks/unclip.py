"""unCLIP variations and edits on `shapes`: what the CLIP image embedding keeps, and what the decoder redraws.

Variations (Ramesh et al. 2022, Sec. 3.1): for each of ``--n`` one-object scenes of the `test` split,
``--k`` variations (``UnCLIPGenerator.variations``, scene i from seed i; ``--layout move``, the default:
each decodes the CLIP image embedding of a copy with the object moved to a random place; ``keep``: of
the scene as it is),
each read by the shapes evaluator and compared with the scene's own labels (the renderer's record,
not a prediction): **kept** = the variation shows one object of the scene's colour and shape;
**layout differs** = its size or position cell differs from the scene's; and the mean pixel
distance to the source. Rates with 95% bootstrap intervals over scenes.

Two-object variations (``--two``): for each of ``--two`` two-object `test` scenes, ``--k`` variations judged
by the evaluator against the scene's own caption (both objects' colour, shape and binding, and the relation:
``t2i.evaluators.shapes.prompt_accuracy``), i.e. whether a variation still shows what the scene shows.

Edits (Kandinsky's ``interpolate``, ``(1 - w) e(image) + w e_prior(prompt)``): a figure of
``--edits`` scenes, each decoded at the weights 0, 0.25, 0.5, 0.75, 1 towards a prompt that changes
its colour and shape; with the evaluator's reading of which the image shows at each weight.

Sampling settings (``--sweep``): prompt accuracy (all correct, shapes evaluator) of one- and two-object
`test` prompts at each decoder guidance x prior guidance, on prompts drawn with ``--sweep-seed`` (not the
seed-0 prompts that ``benchmarks.relations`` and the model card report), so the defaults are chosen on
prompts the reported figures do not use.

    python -m benchmarks.unclip --model shapes-unclip --n 200 --k 4 --out benchmarks/unclip
    python -m benchmarks.unclip --model RUN --sweep 1,2,4,7 --prior-sweep 1,2 --sweep-n 100 --n 0 --edits 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from t2i.unclip.relayout import LAYOUTS

EDIT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
CELL = 64  # pixels of one upscaled image in the figures


def upscale(image: Image.Image) -> Image.Image:
    return image.resize((CELL, CELL), Image.NEAREST)


def strip(rows: list[list[Image.Image]], gap: int = 4) -> Image.Image:
    """Rows of images as one picture (each cell ``CELL`` px, ``gap`` px apart)."""
    width = max(len(r) for r in rows) * (CELL + gap) + gap
    canvas = Image.new("RGB", (width, len(rows) * (CELL + gap) + gap), (128, 128, 128))
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            canvas.paste(upscale(image), (gap + x * (CELL + gap), gap + y * (CELL + gap)))
    return canvas


def judge_variation(pred: dict[str, Any], source: dict[str, Any]) -> dict[str, bool]:
    """Kept (one object, the source's colour and shape) and layout-differs for one predicted variation."""
    want = source["objects"][0]
    objects = pred["objects"]
    kept = len(objects) == 1 and objects[0]["colour"] == want["colour"] and objects[0]["shape"] == want["shape"]
    moved = len(objects) != 1 or objects[0]["position"] != want["position"] or objects[0]["size"] != want["size"]
    return {"kept": kept, "colour": any(o["colour"] == want["colour"] for o in objects),
            "shape": any(o["shape"] == want["shape"] for o in objects), "layout_differs": moved}


def variations(gen: Any, evaluator: Any, n: int, k: int, seed: int = 0,
               **options: Any) -> tuple[dict[str, Any], list[list[Image.Image]]]:
    from t2i.data.shapes import prompts, render
    from t2i.metrics.intervals import bootstrap_mean

    scenes = [record for _, record in prompts(n, seed=seed, split="test", kind="one")]
    per_scene: dict[str, list[float]] = {"kept": [], "colour": [], "shape": [], "layout_differs": [], "pixel_distance": []}
    rows = []
    for i, record in enumerate(scenes):
        source = render(record)
        images = gen.variations(source, n=k, seed=seed + i, **options)
        judged = [judge_variation(p, record) for p in evaluator.predict(images)]
        for key in ("kept", "colour", "shape", "layout_differs"):
            per_scene[key].append(float(np.mean([j[key] for j in judged])))
        src = np.asarray(source, dtype=np.float32) / 255
        per_scene["pixel_distance"].append(float(np.mean([np.abs(np.asarray(im, dtype=np.float32) / 255 - src).mean()
                                                          for im in images])))
        if i < 8:
            rows.append([source] + images)
    table = {}
    for key, values in per_scene.items():
        mean, lo, hi = bootstrap_mean(torch.tensor(values), 1000, seed)
        table[key] = {"mean": round(mean, 3), "ci95": [round(lo, 3), round(hi, 3)]}
    return {"scenes": n, "variations_per_scene": k, "options": options, **table}, rows


def two_object_variations(gen: Any, n: int, k: int, seed: int = 0, **options: Any) -> dict[str, float]:
    """Prompt accuracy of ``k`` variations of each of ``n`` two-object `test` scenes against the scene's caption."""
    from t2i.data.shapes import prompts, render
    from t2i.evaluators.shapes import prompt_accuracy

    images, captions = [], []
    for i, (caption, record) in enumerate(prompts(n, seed=seed, split="test", kind="two")):
        images += gen.variations(render(record), n=k, seed=seed + i, **options)
        captions += [caption] * k
    return {key: round(float(v), 3) for key, v in prompt_accuracy(images, captions)["two"].items()}


def edits(gen: Any, evaluator: Any, count: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[list[Image.Image]]]:
    """``count`` test scenes, each edited towards a prompt naming another colour and shape at every weight."""
    from t2i.data.shapes import prompts, render

    scenes = [record for _, record in prompts(count, seed=seed, split="test", kind="one")]
    targets = [caption for caption, record in prompts(4 * count, seed=seed + 1, split="test", kind="one")]
    found, rows = [], []
    for i, record in enumerate(scenes):
        source, obj = render(record), record["objects"][0]
        prompt = next(c for c in targets if obj["colour"] not in c and obj["shape"] not in c)
        images = [gen.edit(source, prompt, weight=w, n=1, seed=seed)[0] for w in EDIT_WEIGHTS]
        read = [[(o["colour"], o["shape"]) for o in p["objects"]] for p in evaluator.predict(images)]
        found.append({"source": record["caption"], "prompt": prompt, "weights": list(EDIT_WEIGHTS), "evaluator_reads": read})
        rows.append([source] + images)
    return found, rows


def sweep(gen: Any, guidance: list[float], prior_guidance: list[float], n: int, seed: int) -> list[dict[str, Any]]:
    """All-correct rates of ``n`` one- and ``n`` two-object `test` prompts (prompt i from seed ``seed + i``) per setting."""
    from t2i.data.shapes import prompts
    from t2i.evaluators.shapes import prompt_accuracy
    from t2i.generator import generate_conditions

    rows = []
    for pg in prior_guidance:
        for g in guidance:
            row: dict[str, Any] = {"guidance_scale": g, "prior_guidance": pg}
            for kind in ("one", "two"):
                captions = [c for c, _ in prompts(n, seed=seed, split="test", kind=kind)]
                images = generate_conditions(gen, captions, seed=seed, n=1, guidance_scale=g, prior_guidance=pg)
                row[f"{kind}_all_correct"] = round(float(prompt_accuracy(images, captions)[kind]["all_correct"]), 3)
            print(row, flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.unclip", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shapes-unclip", help="an unCLIP model folder or built-in name")
    parser.add_argument("--n", type=int, default=200, help="one-object test scenes for the variations")
    parser.add_argument("--k", type=int, default=4, help="variations per scene")
    parser.add_argument("--sampler", default=None, help="decoder sampler of the variations (default: the model's)")
    parser.add_argument("--guidance-scale", type=float, default=None, help="decoder guidance of the variations (default: the model's)")
    parser.add_argument("--strength", type=float, default=0.0, help="variations re-sampled through the prior this far (0..1)")
    parser.add_argument("--layout", choices=LAYOUTS, default="move",
                        help="variations of copies with the object moved (move) or of the scene as it is (keep)")
    parser.add_argument("--two", type=int, default=0, help="two-object test scenes whose variations are judged against their caption")
    parser.add_argument("--edits", type=int, default=4, help="scenes in the edit figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", default="", help="decoder guidance values to compare, e.g. 1,2,4,7 (\"\" = no sweep)")
    parser.add_argument("--prior-sweep", default="1", help="prior guidance values of the sweep")
    parser.add_argument("--sweep-n", type=int, default=100, help="prompts per kind in the sweep")
    parser.add_argument("--sweep-seed", type=int, default=1000, help="seed of the sweep's prompts (not the reported seed 0)")
    parser.add_argument("--out", default="benchmarks/unclip", help="folder for variations.json/.png, edits.png")
    args = parser.parse_args(argv)
    from gan_baselines.registry import load_generator

    gen = load_generator(args.model)
    if not hasattr(gen, "variations"):
        raise SystemExit(f"{args.model} is a {gen.family} model: variations need an unCLIP model (`t2i train unclip`)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        found = sweep(gen, [float(x) for x in args.sweep.split(",")], [float(x) for x in args.prior_sweep.split(",")],
                      args.sweep_n, args.sweep_seed)
        (out / "sweep.json").write_text(json.dumps({"command": "python -m benchmarks.unclip " + " ".join(
            argv if argv is not None else sys.argv[1:]), "rows": found}, indent=2) + "\n")
    if not args.n:
        return 0
    start = time.perf_counter()
    given = {"sampler": args.sampler, "guidance_scale": args.guidance_scale, "strength": args.strength or None,
             "layout": args.layout}
    from t2i.evaluators.shapes import ShapesEvaluator

    evaluator = ShapesEvaluator.from_pretrained()  # one load for the variations and the edits
    table, rows = variations(gen, evaluator, args.n, args.k, args.seed, **{k: v for k, v in given.items() if v is not None})
    if args.two:
        table["two_object"] = {"scenes": args.two, **two_object_variations(
            gen, args.two, args.k, args.seed, **{k: v for k, v in given.items() if v is not None})}
    table["seconds"] = round(time.perf_counter() - start, 1)
    strip(rows).save(out / "variations.png")
    edit_rows = []
    if args.edits:
        found, edit_rows = edits(gen, evaluator, args.edits, args.seed)
        table["edits"] = found
        strip(edit_rows).save(out / "edits.png")
    table["command"] = "python -m benchmarks.unclip " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "variations.json").write_text(json.dumps(table, indent=2) + "\n")
    print(json.dumps({k: v for k, v in table.items() if k != "edits"}, indent=2))
    for e in table.get("edits", []):
        print(f"{e['source']!r} -> {e['prompt']!r}: " + ", ".join(f"w={w}: {r}" for w, r in zip(e["weights"], e["evaluator_reads"])))
    print(f"wrote {out / 'variations.png'}" + (f", {out / 'edits.png'}" if args.edits else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
