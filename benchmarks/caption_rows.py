"""One item per image, or one per caption row: CLIP fine-tuned and judged on a Flickr8k-style table of one's own.

The data: Tux Paint's stamps (Debian ``tuxpaint-stamps-default``: 785 drawings and photos, each with an English
description), laid out as Kaggle's Flickr8k is: ``Images/`` and a table of ``image,caption`` with one row per
caption, three per image (the stamp's description, "a drawing of <name>", "<name>, from the <category> stamps");
every 8th image (shuffled) is held out with all its rows: ``train.csv`` (686 images, 2058 rows) and ``test.csv``
(99 images, 297 rows).

Two arms, the same rows in the same order: **per image** reads ``train.csv`` (rows naming one image are one item
with its three captions, one drawn per epoch; ``t2i.data.folder``), **per row** reads ``train-rows.csv``, whose
rows name hard links of the image, one per row, so each row is its own item, as the loader read such a table
before (a batch may hold one picture twice, paired with two captions, each the other's negative). Each seed
fine-tunes ``shapes-clip`` for ``--steps`` at 32 px (``--resize pad --background white``) in each arm, and
``t2i eval clip`` scores it on ``test.csv`` (99 images, each right at k when any of its captions ranks in the
first k, each caption ranking its one image) and on ``test-rows.csv`` (297 items, one caption each: an image's
other captions count as wrong, and the caption's right image ties with its own copies).

Two runs at a time, one torch thread each, under ``--work`` (a finished run is kept: the same command
continues). Writes ``OUT/caption_rows.json`` and ``OUT/caption_rows.png`` (R@1 and R@5 both ways: each arm's
mean over the seeds, and each seed).

    python -m benchmarks.caption_rows --out benchmarks/results --work /tmp/caption-rows --seeds 0,1,2,3,4,5
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.gan_augment import STAMPS, t2i

ARMS = ("per-image", "per-row")
COLUMNS = ["--image-column=image", "--caption-column=caption"]


def build_table(out: Path, stamps: Path = STAMPS) -> Path:
    """``out/Images/`` with ``out/{captions.txt, train.csv, test.csv}`` (one row per caption) and
    ``out/{train,test}-rows.csv`` naming one hard link per row (``out/Rows/``)."""
    (out / "Images").mkdir(parents=True, exist_ok=True)
    rows = []
    for described in sorted(stamps.rglob("*.txt")):
        png = described.with_suffix(".png")
        description = described.read_text(encoding="utf-8").splitlines()[0].strip() if png.is_file() else ""
        if not description:
            continue
        relative = png.relative_to(stamps)
        name = "_".join(relative.with_suffix("").parts) + ".png"
        shutil.copy(png, out / "Images" / name)
        words = " ".join(png.stem.replace("_", " ").replace("-", " ").split())
        rows += [(name, caption) for caption in (description, f"a drawing of {words}",
                                                 f"{words}, from the {' '.join(relative.parts[:-1])} stamps")]
    images = sorted({name for name, _ in rows})
    random.Random(0).shuffle(images)
    held_out = set(images[::8])
    write_table(out / "captions.txt", rows)
    (out / "Rows").mkdir(exist_ok=True)
    for split, keep in (("train", lambda n: n not in held_out), ("test", lambda n: n in held_out)):
        table = [(name, caption) for name, caption in rows if keep(name)]
        write_table(out / f"{split}.csv", table)
        linked = []
        for k, (name, caption) in enumerate(table):
            link = out / "Rows" / f"{split}{k:04d}-{name}"
            if not link.exists():
                os.link(out / "Images" / name, link)
            linked.append((f"Rows/{link.name}", caption))
        write_table(out / f"{split}-rows.csv", linked)
    return out


def write_table(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("image", "caption"), *rows])


def scored(work: Path, run: Path, table: Path) -> dict:
    """``t2i eval clip`` of a run on a held-out table: its retrieval figures."""
    out = work / f"eval-{run.name}-{table.stem}"
    if not (out / "eval.json").is_file():
        t2i(["eval", "clip", f"--model={run / 'model'}", f"--data={table}", f"--out={out}"], out.with_suffix(".log"))
    return json.loads((out / "eval.json").read_text())["splits"][table.name]["retrieval"]


KEYS = (("image_to_text_R@1", "i2t R@1"), ("image_to_text_R@5", "i2t R@5"), ("text_to_image_R@1", "t2i R@1"),
        ("text_to_image_R@5", "t2i R@5"))


def arm_means(results: dict) -> dict:
    """{arm: {table: {key: mean over seeds}}}."""
    means = {}
    for arm in ARMS:
        runs = [tables for name, tables in results["runs"].items() if name.startswith(arm)]
        means[arm] = {table: {key: sum(r[table][key] for r in runs) / len(runs) for key, _ in KEYS}
                      for table in runs[0]}
    return means


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = arm_means(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (table, title) in zip(axes, (("test.csv", "judged per image (any of its captions right)"),
                                         ("test-rows.csv", "judged per row (one caption each)"))):
        for a, (arm, colour) in enumerate(zip(ARMS, ("tab:blue", "tab:orange"))):
            xs = [k + (a - 0.5) * 0.38 for k in range(len(KEYS))]
            ax.bar(xs, [means[arm][table][key] for key, _ in KEYS], 0.38, color=colour, alpha=0.6,
                   label=f"trained {arm} (mean)")
            for name, tables in results["runs"].items():
                if name.startswith(arm):
                    ax.scatter(xs, [tables[table][key] for key, _ in KEYS], s=10, color=colour, zorder=3)
        ax.set_xticks(range(len(KEYS)), [label for _, label in KEYS])
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("recall, 99 held-out stamps (dots: seeds)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results", help="where caption_rows.json and caption_rows.png go")
    p.add_argument("--work", default="/tmp/caption-rows", help="the table, the runs and their evaluations")
    p.add_argument("--seeds", default="0,1,2,3,4,5")
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args()
    out, work = Path(args.out), Path(args.work)
    if not STAMPS.is_dir():
        raise SystemExit(f"benchmarks.caption_rows: {STAMPS} is missing: apt-get install tuxpaint-stamps-default")
    data = work / "stamps8k"
    if not (data / "test-rows.csv").is_file():
        build_table(data)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {(arm, seed): work / f"clip-{arm}-seed{seed}" for seed in seeds for arm in ARMS}
    jobs = [(["train", "clip", f"--data={data / ('train.csv' if arm == 'per-image' else 'train-rows.csv')}",
              *COLUMNS, "--init=shapes-clip", "--resize=pad", "--background=white", f"--steps={args.steps}",
              f"--seed={seed}", f"--out={folder}"], folder) for (arm, seed), folder in runs.items()
            if not (folder / "model").is_dir()]  # finished runs are kept: rerun to resume
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: t2i(job[0], work / f"{job[1].name}.log"), jobs))
    results = {"steps": args.steps, "runs": {f"{arm}-seed{seed}": {table: scored(work, folder, data / table)
                                                                    for table in ("test.csv", "test-rows.csv")}
                                             for (arm, seed), folder in runs.items()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "caption_rows.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"CLIP fine-tuned from shapes-clip, {args.steps} steps, on 686 stamps x 3 captions; R@1/R@5 on the 99 "
          "held-out stamps (judged per image | per row):")
    for name, tables in [*results["runs"].items(), *((f"{arm} mean", m) for arm, m in arm_means(results).items())]:
        print(f"  {name}: " + " | ".join(
            f"i2t {100 * r['image_to_text_R@1']:.1f}/{100 * r['image_to_text_R@5']:.1f} "
            f"t2i {100 * r['text_to_image_R@1']:.1f}/{100 * r['text_to_image_R@5']:.1f}" for r in tables.values()))
    plot(results, out / "caption_rows.png")
    print(f"wrote {out / 'caption_rows.json'} and {out / 'caption_rows.png'}")


if __name__ == "__main__":
    main()
