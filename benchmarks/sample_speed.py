"""``t2i sample`` on many prompts: batched (this checkout) against one call per prompt (an older checkout).

Writes ``--n-prompts`` held-out shapes prompts (test split, one and two objects) to a file,
then times, in one run on this machine, the same command line

    t2i sample --model M --prompts FILE --seed 0 --n 1 --out OUT

run by this checkout (prompts batched, ``--batch-size`` images per call) and by
``--baseline`` (a checkout of the code before batching, e.g. ``git worktree add /tmp/t2i-base
cf059ae``, whose ``t2i sample`` made one call per prompt), each in a fresh process with the
same environment: wall-clock seconds and the process's CPU seconds (user + system, which a
machine shared with other jobs disturbs less), model loading included. Then it compares the images
pixel by pixel: same (prompt, seed) -> same image, up to the last bit of float arithmetic that
a different batch size may change. Appends a section to ``benchmarks/RESULTS.md``.

    git worktree add /tmp/t2i-base cf059ae
    OMP_NUM_THREADS=1 python -m benchmarks.sample_speed --baseline /tmp/t2i-base --n-prompts 250
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.diffusion_speed import append_section, machine

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sample(checkout: Path, model: str, prompts: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``python -m train.cli sample ...`` run from ``checkout`` (its code first on sys.path)."""
    command = [sys.executable, "-m", "train.cli", "sample", "--model", model, "--prompts", str(prompts), "--seed", "0",
               "--n", "1", "--out", str(out), *extra]
    env = dict(os.environ, PYTHONPATH=str(checkout))
    start, cpu = time.perf_counter(), cpu_seconds_of_children()
    subprocess.run(command, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, cpu_seconds_of_children() - cpu


def compare(a: Path, b: Path) -> dict[str, float]:
    """Pixel differences of two ``t2i sample`` outputs (same rows): images equal, values differing, largest step."""
    rows = [json.loads(line) for line in (a / "metadata.jsonl").read_text().splitlines()]
    equal, differing, total, largest = 0, 0, 0, 0
    for r in rows:
        x = np.asarray(Image.open(a / r["file_name"]), dtype=np.int16)
        y = np.asarray(Image.open(b / r["file_name"]), dtype=np.int16)
        d = np.abs(x - y)
        equal += int(d.max() == 0)
        differing += int((d > 0).sum())
        total += d.size
        largest = max(largest, int(d.max()))
    return {"images": len(rows), "identical_images": equal, "differing_values": differing, "values": total,
            "largest_difference": largest}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sample_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, help="a checkout of the code before batching (git worktree)")
    p.add_argument("--model", default="shapes-ldm", help="model of both runs (default: shapes-ldm)")
    p.add_argument("--n-prompts", type=int, default=250, help="held-out prompts (default: 250)")
    p.add_argument("--batch-size", type=int, default=64, help="images per call of the batched run (default: 64)")
    args = p.parse_args(argv)
    command = "python -m benchmarks.sample_speed " + " ".join(sys.argv[1:] if argv is None else argv)
    from t2i.data.shapes import prompts as shapes_prompts

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prompts = tmp / "prompts.txt"
        prompts.write_text("".join(c + "\n" for c, _ in shapes_prompts(args.n_prompts, seed=0, split="test")))
        before = machine()
        batched, batched_cpu = run_sample(ROOT, args.model, prompts, tmp / "batched",
                                          ["--batch-size", str(args.batch_size)])
        print(f"batched (this checkout): {batched:.1f} s, {batched_cpu:.1f} CPU s", flush=True)
        baseline, baseline_cpu = run_sample(Path(args.baseline).resolve(), args.model, prompts, tmp / "baseline", [])
        print(f"one call per prompt ({args.baseline}): {baseline:.1f} s, {baseline_cpu:.1f} CPU s", flush=True)
        diff = compare(tmp / "batched", tmp / "baseline")
    ratio, cpu_ratio = baseline / batched, baseline_cpu / batched_cpu
    lines = [f"`t2i sample --model {args.model} --prompts FILE --seed 0 --n 1` on {args.n_prompts} held-out shapes "
             f"prompts (test split), each command in a fresh process, model loading included. Machine at the start: "
             f"{before}; at the end: {machine()}.", "",
             "| run | wall time | per prompt | CPU time (user + system) |", "| --- | --- | --- | --- |",
             f"| before: one call per prompt (`{args.baseline}`) | {baseline:.1f} s | {baseline / args.n_prompts:.2f} s "
             f"| {baseline_cpu:.1f} s |",
             f"| batched, {args.batch_size} images per call (this checkout) | {batched:.1f} s | "
             f"{batched / args.n_prompts:.2f} s | {batched_cpu:.1f} s |", "",
             f"Speed-up: **{ratio:.1f}x** in wall time ({cpu_ratio:.1f}x in CPU time). Same (prompt, seed), same image: {diff['identical_images']} of "
             f"{diff['images']} images identical; {diff['differing_values']} of {diff['values']} pixel values differ, "
             f"by at most {diff['largest_difference']}/255 (float rounding that depends on the batch size)."]
    append_section("t2i sample: batched prompts vs one call per prompt (benchmarks/sample_speed.py)", command, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
