"""Text GAN benchmark on shapes: prompt accuracy by kind, within-prompt diversity against real
renders, and sampling speed (any text generator works; made for ``tgan`` and ``tgan-attn``).

``quality``: the shapes evaluator's prompt accuracy on held-out prompts, one image each,
for four prompt sets: one-object and two-object prompts of the ``test`` split (seen
colour-shape pairs) and of the ``novel`` split (held-out pairs), ``--n`` prompts per set
(``t2i.data.shapes.prompts(n, seed, split, kind)``; prompt i is drawn from seed ``seed + i``,
the contract's seeding rule, as ``train.defaults.prompt_accuracy_metrics`` draws them). Then
within-prompt diversity on ``--n-diversity`` one-object test prompts, 4 images each: the
mean pairwise pixel distance (L2 over the image in [0, 1]) among a prompt's images,
divided by the same distance among 4 real renders of the same caption (the spec's jitter
of the centre, drawn afresh); also the bench's ratio (shapes-evaluator features, within
a prompt / over all images) for the generated and for the real images. Writes
``benchmarks/results/text_gan_<name>.json`` and a PNG of sample grids (4 images per prompt
for 8 one-object, 8 two-object and 8 novel prompts), and with ``--record`` appends a section
to ``benchmarks/RESULTS.md``.

``speed``: milliseconds per image of ``generate`` (text encoding included) for requests of
``--batch`` prompts x 4 images, median of ``--repeats`` after a warm-up, with the torch
threads given (2 = the target machine's cores).

``critic``: what a ``tgan-attn`` run's discriminator checks. For ``--n`` real two-object test
scenes it scores the true caption and each perturbation of it (``t2i.clip.negatives``: swapped
objects, flipped relation, swapped colours / shapes, one object's colour / shape replaced, and
another scene's caption), D's logit averaged over its heads, and prints the share of scenes
where the true caption scores higher and the mean gap, per kind. A kind near 0.5 is one the
generator gets no pressure to draw right.

``unnamed``: the variety of what a prompt leaves out. For ``--n`` one-object test scenes, each partial caption (its
size, colour or position left out: ``t2i.clip.negatives.partial_captions``, "a small triangle in the top right") is
drawn ``--per-prompt`` times; per prompt, the evaluator's values of the attribute left out give the number of
distinct ones and their entropy (bits), and the share of the images that show one object with the named attributes
right. The same for real renders with the attribute left out drawn at random among those the train split pairs with
the rest (the variety a model of the data would show). Any text generator (a diffusion pipeline too).

``pairs``: what a ``tgan-attn --pair-weight`` run's pair critic (``gan_baselines.pair_critic``, its newest
checkpoint) believes. For ``--n`` one-object test scenes and each partial caption: its mean P(real) of two real renders
with other values of the attribute left out (what the data shows), of two with one value (what a G that ignores z
draws), and of two images of the run's saved model; and for the whole caption, of two real renders and of two images
of the model. A critic that scores the first above the second can tell G so.

    python -m benchmarks.text_gan quality --model shapes-tgan --n 200
    python -m benchmarks.text_gan unnamed --models shapes-tgan,shapes-ldm-6 --n 48
    python -m benchmarks.text_gan pairs --run runs/tgpair/w1 --n 48
    python -m benchmarks.text_gan speed --model shapes-tgan --threads 2
    python -m benchmarks.text_gan critic --checkpoint runs/gan/PN/checkpoints/step_007500 --n 300
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.diffusion_speed import OUT, append_section, machine

SETS = (("test", "one"), ("test", "two"), ("novel", "one"), ("novel", "two"))
PER_PROMPT = 4  # images per prompt for diversity and the grids


def real_renders(caption: str, n: int, seed: int, size: int = 32) -> list:
    """``n`` real renders of a one-object caption, each with its own jitter of the centre (spec: "One object")."""
    from t2i.data.shapes import ANCHORS, JITTER, extent, parse_caption, render

    parsed = parse_caption(caption)
    if len(parsed["objects"]) != 1:
        raise ValueError(f"real_renders draws one-object captions, got {caption!r}")
    obj = parsed["objects"][0]
    rng = random.Random(seed)
    e, (fx, fy), j = extent(obj["size"], size), ANCHORS[obj["position"]], JITTER * size
    images = []
    for _ in range(n):
        # jitter, snapped to the 1/4-pixel drawing grid, then clamped so the shape stays on the canvas
        cx, cy = (min(max(round((f * size + rng.uniform(-j, j)) * 4) / 4, e / 2), size - e / 2) for f in (fx, fy))
        record = {"objects": [{**obj, "centre": [cx, cy], "bbox": [cx - e / 2, cy - e / 2, cx + e / 2, cy + e / 2]}],
                  "relation": None, "image_size": size}
        images.append(render(record))
    return images


def pixels(images: list) -> torch.Tensor:
    from t2i.metrics import to_batch

    return to_batch(images).flatten(1)  # (N, C*S*S) in [0, 1]


def within_prompt_distance(x: torch.Tensor, per_prompt: int) -> float:
    """Mean over prompts of the mean pairwise L2 distance among a prompt's rows (rows [a0..a3, b0..b3, ...])."""
    from t2i.metrics.diversity import mean_pairwise_distance

    return statistics.fmean(mean_pairwise_distance(x[i:i + per_prompt]) for i in range(0, len(x), per_prompt))


def save_rows(rows: list[tuple[str, list]], path: Path, scale: int = 2) -> Path:
    """One row per prompt: its caption, then its images (nearest-neighbour enlarged ``scale`` times)."""
    from PIL import Image, ImageDraw

    side = rows[0][1][0].size[0] * scale
    label, gap = 300, 4
    sheet = Image.new("RGB", (label + len(rows[0][1]) * (side + gap), len(rows) * (side + gap)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for r, (caption, images) in enumerate(rows):
        y = r * (side + gap)
        draw.text((4, y + side // 2 - 6), caption, fill=(230, 230, 230))
        for c, im in enumerate(images):
            sheet.paste(im.convert("RGB").resize((side, side), Image.NEAREST), (label + c * (side + gap), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def generate(gen: Any, prompts: list[str], seed: int, per_prompt: int = 1) -> list:
    from t2i.generator import generate_conditions

    return generate_conditions(gen, prompts, seed=seed, n=per_prompt)  # prompt i from seed + i


def run_quality(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from gan_baselines.registry import load_generator
    from t2i.data.shapes import prompts
    from t2i.evaluators.shapes import _builtin, prompt_accuracy
    from t2i.metrics.diversity import diversity

    gen = load_generator(args.model)
    results: dict[str, Any] = {"model": str(args.model), "n": args.n, "seed": args.seed, "machine": machine()}
    grids = []
    for split, kind in SETS:
        captions = [c for c, _ in prompts(args.n, seed=args.seed, split=split, kind=kind)]
        acc = prompt_accuracy(generate(gen, captions, args.seed), captions)[kind]
        results[f"{split}/{kind}"] = {k: round(float(v), 4) for k, v in acc.items()}
        print(f"{split} {kind}-object: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items() if k != "n"), flush=True)
        grids.append((f"{split} {kind}-object", captions[:8]))
    # diversity: one-object test prompts, 4 images each, against 4 real renders of each caption
    captions = [c for c, _ in prompts(args.n_diversity, seed=args.seed + 1, split="test", kind="one")]
    fake = pixels(generate(gen, captions, args.seed, PER_PROMPT))
    real = pixels([im for i, c in enumerate(captions) for im in real_renders(c, PER_PROMPT, args.seed + i)])
    d_fake, d_real = within_prompt_distance(fake, PER_PROMPT), within_prompt_distance(real, PER_PROMPT)
    extractor = _builtin("shapes-evaluator").feature_extractor()
    size = int(fake.shape[1] // 3) ** 0.5
    as_images = [x.view(-1, 3, int(size), int(size)) for x in (fake, real)]
    results["diversity"] = {
        "prompts": len(captions), "images_per_prompt": PER_PROMPT,
        "pixel_distance_generated": round(d_fake, 4), "pixel_distance_real": round(d_real, 4),
        "pixel_ratio_to_real": round(d_fake / d_real, 4),
        "feature_ratio_generated": round(diversity(as_images[0], num_images_per_prompt=PER_PROMPT,
                                                   extractor=extractor)["diversity_ratio"], 4),
        "feature_ratio_real": round(diversity(as_images[1], num_images_per_prompt=PER_PROMPT,
                                              extractor=extractor)["diversity_ratio"], 4)}
    print("diversity:", results["diversity"], flush=True)
    name = Path(str(args.model)).name if args.name is None else args.name
    OUT.mkdir(exist_ok=True)
    rows = []
    for title, caps in grids[:1] + grids[1:3]:  # one-object, two-object (test) and novel one-object
        rows += [(f"{title}: {c}", generate(gen, [c], args.seed, PER_PROMPT)) for c in caps]
    png = save_rows(rows, OUT / f"text_gan_{name}_samples.png")
    results["samples_png"] = f"benchmarks/results/{png.name}"
    (OUT / f"text_gan_{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.record:
        lines = ["| prompts | n | colour | shape | size | position | relation | count | all correct |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for split, kind in SETS:
            r = results[f"{split}/{kind}"]
            cells = [f"{r[k]:.3f}" if k in r else "-" for k in ("colour", "shape", "size", "position", "relation",
                                                                 "count", "all_correct")]
            lines.append(f"| {split}, {kind} object | {r['n']} | " + " | ".join(cells) + " |")
        d = results["diversity"]
        lines += ["", f"Within-prompt diversity ({d['prompts']} one-object test prompts x {PER_PROMPT} images): pixel "
                      f"distance {d['pixel_distance_generated']:.3f} generated vs {d['pixel_distance_real']:.3f} real "
                      f"renders of the same captions, ratio **{d['pixel_ratio_to_real']:.2f}**; evaluator-feature "
                      f"diversity ratio {d['feature_ratio_generated']:.3f} (real {d['feature_ratio_real']:.3f}). "
                      f"Samples: `benchmarks/results/{png.name}`."]
        append_section(f"Text GAN quality: {name} (benchmarks/text_gan.py quality)", command, lines)
    return results


def run_speed(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from gan_baselines.registry import load_generator

    torch.set_num_threads(args.threads)
    gen = load_generator(args.model)
    prompts = ["a large red circle in the center", "a blue square above a yellow triangle"] * (args.batch // 2)
    gen.generate(prompts, seed=0, num_images_per_prompt=PER_PROMPT)  # warm-up
    times = []
    for r in range(args.repeats):
        start = time.perf_counter()
        gen.generate(prompts, seed=r, num_images_per_prompt=PER_PROMPT)
        times.append(time.perf_counter() - start)
    n = len(prompts) * PER_PROMPT
    ms = 1000 * statistics.median(times) / n
    params = sum(n for name, n in gen.describe()["parameters"].items() if name != "text_encoder")
    result = {"model": str(args.model), "threads": args.threads, "images_per_request": n,
              "ms_per_image_median": round(ms, 3), "ms_per_image_min": round(1000 * min(times) / n, 3),
              "parameters": params, "machine": machine()}
    print(result)
    if args.record:
        append_section(f"Text GAN sampling speed: {args.model} (benchmarks/text_gan.py speed)", command,
                       [f"{ms:.2f} ms per image (median of {args.repeats} requests of {len(prompts)} prompts x "
                        f"{PER_PROMPT} images, text encoding included; fastest {result['ms_per_image_min']:.2f} ms), "
                        f"one forward pass of a {params / 1e6:.2f} M-parameter generator."])
    return result


@torch.no_grad()
def run_critic(args: argparse.Namespace, command: str) -> dict[str, Any]:
    import torchvision.transforms.functional as TF

    from gan_baselines import tgan_attn
    from t2i.clip.negatives import object_replacements, shapes_negatives
    from t2i.data.shapes import make_scenes, render
    from t2i.runtime.checkpoint import read_checkpoint
    from t2i.text import TextEncoder
    from train.tgan_attn import AttnGANConfig

    folder = Path(args.checkpoint)
    run_config = json.loads((folder.parents[1] / "config.json").read_text())  # RUN/checkpoints/step_N -> RUN
    cfg = AttnGANConfig(**{k: v for k, v in run_config.items() if k in AttnGANConfig.__dataclass_fields__})
    encoder = TextEncoder.from_pretrained(cfg.clip)
    _, D = tgan_attn.build(cfg.arch_for(encoder.token_dim, encoder.pooled_dim, encoder.max_length, 3))
    step, states = read_checkpoint(folder)
    D.load_state_dict(states["model_1"])  # the run prepares (G, D): model_1 is the discriminator
    D.eval()
    scenes = make_scenes(args.n, seed=args.seed, split="test", p_two=1.0)
    images = torch.stack([TF.to_tensor(render(scene)) for scene in scenes]) * 2 - 1  # (n, 3, S, S) in [-1, 1]

    def score(rows: list[int], captions: list[str]) -> torch.Tensor:
        text = encoder(captions)
        return D(images[rows], text.tokens.float(), text.mask, text.pooled.float()).mean(1)  # (len(rows),)

    rng = random.Random(args.seed)
    kinds: dict[str, list[str | None]] = {}
    for i, scene in enumerate(scenes):
        found = {k: v for k, v in shapes_negatives(scene).items() if k in
                 ("swap_objects", "flip_relation", "swap_colours", "swap_shapes")}
        found.update(object_replacements(scene, rng))
        found["another_caption"] = scenes[(i + 1) % len(scenes)]["caption"]
        for kind, caption in found.items():
            kinds.setdefault(kind, []).append(caption)
    true = score(list(range(len(scenes))), [scene["caption"] for scene in scenes])
    result: dict[str, Any] = {"checkpoint": str(folder), "step": step, "scenes": len(scenes), "kinds": {}}
    print(f"| kind ({folder}, step {step}) | n | true caption scores higher | mean logit gap |")
    print("| --- | --- | --- | --- |")
    for kind, captions in kinds.items():
        rows = [i for i, c in enumerate(captions) if c is not None]
        gap = true[rows] - score(rows, [captions[i] for i in rows])
        result["kinds"][kind] = {"n": len(rows), "true_higher": round(float((gap > 0).float().mean()), 3),
                                 "mean_gap": round(float(gap.mean()), 3)}
        print(f"| {kind} | {len(rows)} | {result['kinds'][kind]['true_higher']:.3f} | "
              f"{result['kinds'][kind]['mean_gap']:.3f} |")
    return result


def unnamed_variety(values: list[list[str]], right: list[list[bool]]) -> dict[str, float]:
    """Per prompt, ``values`` (the attribute left out, one per image that shows one object) and ``right`` (per image:
    one object, named attributes right): distinct values and entropy in bits averaged over prompts, and the share
    right."""
    def entropy(seen: list[str]) -> float:
        counts = [seen.count(v) / len(seen) for v in set(seen)]
        return -sum(c * math.log2(c) for c in counts) if seen else 0.0

    return {"distinct": round(statistics.fmean(len(set(v)) for v in values), 3),
            "entropy_bits": round(statistics.fmean(entropy(v) for v in values), 3),
            "named_right": round(sum(map(sum, right)) / max(1, sum(map(len, right))), 3)}


def left_out_values(obj: dict[str, Any], dropped: str) -> list[str]:
    """The values a one-object scene's attribute ``dropped`` can take with the rest kept, as the train split draws
    them (a colour held out with the object's shape excluded)."""
    from t2i.data.shapes import COLOURS, HELD_OUT_PAIRS, POSITIONS, SIZES

    choices = {"size": SIZES, "position": POSITIONS, "colour": list(COLOURS)}[dropped]
    return [v for v in choices if dropped != "colour" or (v, obj["shape"]) not in HELD_OUT_PAIRS]


def run_unnamed(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from gan_baselines.registry import load_generator
    from t2i.clip.negatives import PARTIAL_DROPS, one_object_caption, partial_captions
    from t2i.data.shapes import make_scenes
    from t2i.evaluators.shapes import ShapesEvaluator

    evaluator = ShapesEvaluator.from_pretrained("shapes-evaluator")
    scenes = make_scenes(args.n, seed=args.seed, split="test", p_two=0.0)
    objects = [scene["objects"][0] for scene in scenes]

    def judged(images: list, dropped: str) -> dict[str, float]:
        found = [p["objects"] for p in evaluator.predict(images)]
        values, right = [], []
        for i, obj in enumerate(objects):
            drawn = [o[0] for o in found[i * args.per_prompt:(i + 1) * args.per_prompt] if len(o) == 1]
            values.append([o[dropped] for o in drawn])
            right.append([all(o[k] == obj[k] for k in ("colour", "shape", "size", "position") if k != dropped)
                          for o in drawn] + [False] * (args.per_prompt - len(drawn)))  # no object, or several
        return unnamed_variety(values, right)

    def real(dropped: str) -> list:  # per scene, --per-prompt renders with the attribute left out drawn at random
        images = []
        for i, obj in enumerate(objects):
            rng = random.Random(args.seed + i)
            allowed = left_out_values(obj, dropped)
            for j in range(args.per_prompt):
                caption = one_object_caption(**{**obj, dropped: rng.choice(allowed)})
                images += real_renders(caption, 1, seed=args.seed + 1000 * i + j)
        return images

    result: dict[str, Any] = {"command": command, "scenes": len(scenes), "per_prompt": args.per_prompt, "rows": {}}
    rows = {"real renders": {d: judged(real(d), d) for d in PARTIAL_DROPS}}
    for model in [m for m in args.models.split(",") if m]:
        gen = load_generator(model)
        rows[model] = {}
        for k, dropped in enumerate(PARTIAL_DROPS):
            prompts = [partial_captions(scene)[k] for scene in scenes]
            rows[model][dropped] = judged(generate(gen, prompts, args.seed, args.per_prompt), dropped)
    print(f"{len(scenes)} one-object test scenes, each partial caption x {args.per_prompt} images: distinct values of "
          "the attribute left out per prompt / entropy (bits) / named attributes right")
    print("| | " + " | ".join(f"{d} left out" for d in PARTIAL_DROPS) + " |")
    print("| --- |" + " --- |" * len(PARTIAL_DROPS))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[d]['distinct']:.2f} / {row[d]['entropy_bits']:.2f} / "
                                          f"{row[d]['named_right']:.3f}" for d in PARTIAL_DROPS) + " |")
    result["rows"] = rows
    return result


@torch.no_grad()
def run_pairs(args: argparse.Namespace, command: str) -> dict[str, Any]:
    import torchvision.transforms.functional as TF

    from gan_baselines.pair_critic import PairCritic
    from gan_baselines.registry import load_generator
    from t2i.clip.negatives import PARTIAL_DROPS, one_object_caption, partial_captions
    from t2i.data.shapes import make_scenes
    from t2i.runtime.checkpoint import read_latest

    found = read_latest(Path(args.run) / "checkpoints")
    if found is None or "model_2" not in found[1]:
        raise SystemExit(f"{args.run}: no checkpoint with a pair critic (model_2): give a tgan-attn --pair-weight run")
    gen = load_generator(str(Path(args.run) / "model"))
    critic = PairCritic(3, gen.encoder.pooled_dim)
    critic.load_state_dict(found[1]["model_2"])  # the run prepares (G, D) then (P): model_2 is the pair critic
    critic.eval()

    def belief(first: list, second: list, caption: str) -> float:  # mean P(real) of the pairs (first[i], second[i])
        pooled = gen.encoder([caption] * len(first)).pooled.float()
        batch = [torch.stack([TF.to_tensor(im) for im in ims]) * 2 - 1 for ims in (first, second)]
        return float(torch.sigmoid(critic(*batch, pooled)).mean())

    scenes = make_scenes(args.n, seed=args.seed, split="test", p_two=0.0)
    columns = ("other values (real)", "one value (real)", "the model's pair")
    sums: dict[str, list[float]] = {d: [0.0, 0.0, 0.0] for d in (*PARTIAL_DROPS, "nothing (whole caption)")}
    for i, scene in enumerate(scenes):
        obj, rng = scene["objects"][0], random.Random(args.seed + i)
        for k, dropped in enumerate(PARTIAL_DROPS):
            a, b = rng.sample(left_out_values(obj, dropped), 2)
            first = real_renders(one_object_caption(**{**obj, dropped: a}), 1, seed=args.seed + 3 * i)
            other = real_renders(one_object_caption(**{**obj, dropped: b}), 1, seed=args.seed + 3 * i + 1)
            same = real_renders(one_object_caption(**{**obj, dropped: a}), 1, seed=args.seed + 3 * i + 1)
            caption = partial_captions(scene)[k]
            drawn = gen.generate([caption], seed=args.seed + i, num_images_per_prompt=2)
            for c, (x, y) in enumerate(((first, other), (first, same), (drawn[:1], drawn[1:]))):
                sums[dropped][c] += belief(x, y, caption) / len(scenes)
        twins = real_renders(scene["caption"], 2, seed=args.seed + i)
        drawn = gen.generate([scene["caption"]], seed=args.seed + i, num_images_per_prompt=2)
        sums["nothing (whole caption)"][1] += belief(twins[:1], twins[1:], scene["caption"]) / len(scenes)
        sums["nothing (whole caption)"][2] += belief(drawn[:1], drawn[1:], scene["caption"]) / len(scenes)
    print(f"{args.run}, step {found[0]}: the pair critic's mean P(real) over {len(scenes)} one-object test scenes")
    print("| left out | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for dropped, row in sums.items():
        cells = [f"{v:.3f}" for v in row]
        if dropped.startswith("nothing"):
            cells[0] = "-"  # a whole caption has one value of everything
        print(f"| {dropped} | " + " | ".join(cells) + " |")
    return {"command": command, "run": args.run, "step": found[0], "rows": {d: dict(zip(columns, r))
                                                                             for d, r in sums.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.text_gan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", help="prompt accuracy by kind, diversity against real renders, sample grids")
    q.add_argument("--model", default="shapes-tgan", help="generator folder, run folder or built-in name")
    q.add_argument("--n", type=int, default=200, help="prompts per set (test/novel x one/two objects; default: 200)")
    q.add_argument("--n-diversity", type=int, default=100, help="one-object prompts for diversity (default: 100)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--name", default=None, help="name of the result files (default: the model folder's name)")
    q.add_argument("--record", action="store_true", help="append a section to benchmarks/RESULTS.md")
    s = sub.add_parser("speed", help="milliseconds per image of generate()")
    s.add_argument("--model", default="shapes-tgan")
    s.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    s.add_argument("--batch", type=int, default=64, help="prompts per request (default: 64; 4 images each)")
    s.add_argument("--repeats", type=int, default=10)
    s.add_argument("--record", action="store_true", help="append a section to benchmarks/RESULTS.md")
    c = sub.add_parser("critic", help="which caption perturbations a tgan-attn run's discriminator tells apart")
    c.add_argument("--checkpoint", required=True, help="a run's checkpoint folder (RUN/checkpoints/step_N)")
    c.add_argument("--n", type=int, default=300, help="real two-object test scenes (default: 300)")
    c.add_argument("--seed", type=int, default=5, help="seed of the scenes and of the replaced values (default: 5)")
    u = sub.add_parser("unnamed", help="variety of the attribute a one-object prompt leaves out")
    u.add_argument("--models", default="shapes-tgan", help="comma list of text generators (default: shapes-tgan)")
    u.add_argument("--n", type=int, default=48, help="one-object test scenes (default: 48)")
    u.add_argument("--per-prompt", type=int, default=8, help="images per partial caption (default: 8)")
    u.add_argument("--seed", type=int, default=5)
    r = sub.add_parser("pairs", help="what a tgan-attn --pair-weight run's pair critic believes")
    r.add_argument("--run", required=True, help="a tgan-attn run folder trained with --pair-weight")
    r.add_argument("--n", type=int, default=48, help="one-object test scenes (default: 48)")
    r.add_argument("--seed", type=int, default=5)
    args = p.parse_args(argv)
    command = "python -m benchmarks.text_gan " + " ".join(argv if argv is not None else sys.argv[1:])
    run = {"quality": run_quality, "speed": run_speed, "critic": run_critic, "unnamed": run_unnamed,
           "pairs": run_pairs}[args.command]
    run(args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
