"""DiffAugment for a small class-labelled dataset of one's own: `t2i train cgan` with and without `--augment`.

The data: Tux Paint's stamps (Debian ``tuxpaint-stamps-default``, real drawings and photos, RGBA / LA /
palette PNGs of any size) of six categories, copied into torchvision's ``ImageFolder`` layout,
``train/<category>/`` and ``test/<category>/`` (every 8th of each category's shuffled stamps held out): 373
training images, which the loader labels and captions by folder. Each seed trains ``cgan`` at 32 px
(``--resize pad --background white``) once plain and once with ``--augment translation,brightness,cutout
--augment-shift 4`` (Zhao et al. 2020), and measures the **within-class diversity ratio**
(``t2i.metrics.diversity`` on pixels: mean pairwise distance among 16 samples of a class over that among
all samples; the real training images' own ratio is printed beside it: a collapsed class scores near 0).
Then, as ``t2i eval`` scores any model on captioned data, a judge CLIP (``t2i train clip --init shapes-clip``, 200
steps on the training split's class-name captions) scores each run on the held-out split's 50 images, 4 samples
each of its class: **r-precision** (the sample's class ranked first among the 6 class names; the real images' own
score beside it) and **clip-fid** (two halves of 25). A control on digits (``--augment translation,brightness``):
the share of samples the project's digits classifier reads as the requested digit.

Two runs at a time, one torch thread each, data and runs under ``--work`` (a finished run is kept: the
same command continues). Writes ``OUT/gan_augment.json`` and ``OUT/gan_augment.png`` (seed 0's last sample
grids, plain | augmented, one row per class).

    python -m benchmarks.gan_augment --out benchmarks/results --work /tmp/gan-augment
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

STAMPS = Path("/usr/share/tuxpaint/stamps")  # apt-get install tuxpaint-stamps-default
CATEGORIES = ("animals", "food", "plants", "seasonal", "town", "vehicles")
AUGMENT = ["--augment", "translation,brightness,cutout", "--augment-shift", "4"]


def build_class_folders(out: Path, stamps: Path = STAMPS) -> Path:
    """``out/train/<category>/`` and ``out/test/<category>/`` PNGs; mirrored duplicates left out."""
    rng = random.Random(0)
    for category in CATEGORIES:
        files = sorted(p for p in (stamps / category).rglob("*.png")
                       if "_mirror" not in p.name and "_flip" not in p.name)
        rng.shuffle(files)
        held = max(3, len(files) // 8)
        for split, group in (("test", files[:held]), ("train", files[held:])):
            (out / split / category).mkdir(parents=True, exist_ok=True)
            for path in group:
                shutil.copy(path, out / split / category / f"{path.parent.name}-{path.name}")
    return out


def t2i(args: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with log.open("w") as f:
        subprocess.run([sys.executable, "-m", "train.cli", *args], env=env, stdout=f, stderr=subprocess.STDOUT,
                       check=True)


def judged(work: Path, data: Path, run: Path) -> dict:
    """``t2i eval`` of a run on the held-out class folders by the judge CLIP: r-precision and clip-fid."""
    out = work / f"eval-{run.name}"
    if not (out / "metrics.json").is_file():
        t2i(["eval", f"--model={run / 'model'}", f"--prompts={data}", f"--clip={work / 'judge-clip'}", "--n=4",
             "--metrics=r-precision,clip-fid", f"--out={out}"], work / f"eval-{run.name}.log")
    report = json.loads((out / "metrics.json").read_text())
    scores, floor = report["metrics"], report["real_vs_real_floor"]
    return {"r_precision": scores["r-precision"]["r_precision"], "ci95": scores["r-precision"]["ci95"],
            "real_r_precision": scores["r-precision"]["real"]["r_precision"],
            "clip_fid": scores["clip-fid"]["clip_fid"], "clip_fid_floor": floor["clip-fid"]["clip_fid"]}


def within_class_diversity(model: Path, per_class: int = 16) -> float:
    from gan_baselines.registry import load_generator
    from t2i.generator import generate_conditions
    from t2i.metrics.diversity import diversity

    generator = load_generator(model)
    images = generate_conditions(generator, list(range(generator.num_classes)), seed=100, n=per_class)
    pixels = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).flatten() for im in images])
    return diversity(pixels, num_images_per_prompt=per_class)["diversity_ratio"]


def real_diversity(data: Path) -> float:
    from t2i.data import load_dataset
    from t2i.metrics.diversity import diversity

    real = load_dataset(data, split="train", size=32, resize="pad", background="white")
    items = [real[i] for i in range(len(real))]
    return diversity(torch.stack([it["image"].flatten() for it in items]), groups=[it["label"] for it in items])[
        "diversity_ratio"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results", help="where gan_augment.json and gan_augment.png go")
    p.add_argument("--work", default="/tmp/gan-augment", help="the class folders and the runs")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--digits-steps", type=int, default=2000)
    args = p.parse_args()
    out, work = Path(args.out), Path(args.work)
    if not STAMPS.is_dir():
        raise SystemExit(f"benchmarks.gan_augment: {STAMPS} is missing: apt-get install tuxpaint-stamps-default")
    data = work / "stamps"
    work.mkdir(parents=True, exist_ok=True)
    if not data.is_dir():
        build_class_folders(data)
    seeds = [int(s) for s in args.seeds.split(",")]
    stamp_runs = {(seed, arm): work / f"stamps-{arm}-seed{seed}" for seed in seeds for arm in ("plain", "augment")}
    digit_runs = {arm: work / f"digits-{arm}" for arm in ("plain", "augment")}
    jobs = [([f"--data={data}", "--resize=pad", "--background=white", f"--steps={args.steps}", f"--seed={seed}",
              f"--out={folder}", *(AUGMENT if arm == "augment" else [])], folder)
            for (seed, arm), folder in stamp_runs.items()]
    jobs += [(["--data=digits", f"--steps={args.digits_steps}", f"--out={folder}",
               *(["--augment", "translation,brightness"] if arm == "augment" else [])], folder)
             for arm, folder in digit_runs.items()]
    todo = [(a, f) for a, f in jobs if not (f / "model").is_dir()]  # finished runs are kept: rerun to resume
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: t2i(["train", "cgan", *job[0]], work / f"{job[1].name}.log"), todo))
    if not (work / "judge-clip" / "model").is_dir():
        t2i(["train", "clip", f"--data={data}", "--init=shapes-clip", "--resize=pad", "--background=white",
             "--steps=200", f"--out={work / 'judge-clip'}"], work / "judge-clip.log")

    results = {"real_within_class_diversity": real_diversity(data), "stamps": {}, "judged": {}, "digits": {}}
    for (seed, arm), folder in stamp_runs.items():
        results["stamps"][f"{arm}-seed{seed}"] = within_class_diversity(folder / "model")
        results["judged"][f"{arm}-seed{seed}"] = judged(work, data, folder)
    for arm, folder in digit_runs.items():
        results["digits"][arm] = json.loads((folder / "eval.json").read_text())["accuracy"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "gan_augment.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"within-class diversity ratio, cgan on {len(CATEGORIES)} stamp classes ({args.steps} steps; real images "
          f"{results['real_within_class_diversity']:.3f}):")
    for seed in seeds:
        plain, aug = (results["stamps"][f"{arm}-seed{seed}"] for arm in ("plain", "augment"))
        print(f"  seed {seed}: plain {plain:.3f}, --augment {aug:.3f}")
    real = next(iter(results["judged"].values()))
    print(f"judged on the held-out split (real images: r-precision {real['real_r_precision']:.3f}, clip-fid floor "
          f"{real['clip_fid_floor']:.3f}):")
    for name, j in results["judged"].items():
        print(f"  {name}: r-precision {j['r_precision']:.3f} [{j['ci95'][0]:.3f}, {j['ci95'][1]:.3f}], "
              f"clip-fid {j['clip_fid']:.3f}")
    print(f"digits accuracy ({args.digits_steps} steps): plain {results['digits']['plain']:.3f}, "
          f"--augment {results['digits']['augment']:.3f}")
    grids = [Image.open(stamp_runs[(seeds[0], arm)] / "samples" / f"samples_{args.steps:06d}.png") for arm in
             ("plain", "augment")]
    canvas = Image.new("RGB", (grids[0].width * 2 + 8, grids[0].height), "black")
    canvas.paste(grids[0], (0, 0))
    canvas.paste(grids[1], (grids[0].width + 8, 0))
    canvas.resize((canvas.width * 2, canvas.height * 2), Image.NEAREST).save(out / "gan_augment.png")
    print(f"wrote {out / 'gan_augment.json'} and {out / 'gan_augment.png'}")


if __name__ == "__main__":
    main()
