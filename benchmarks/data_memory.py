"""Training speed on one's own image files with and without keeping prepared images in memory.

User images are decoded, converted and resized once per process and kept (``t2i.data.folder.MEMORY_BYTES``)
unless crops are random. This times ``t2i train cgan`` on the stamp class folders of ``benchmarks.gan_augment``
(373 PNGs of up to 1226 px, ``--resize pad --background white``, 32 px, batch 64) with the memory as shipped and
with it set to 0 (every file read on every access, as before), alternating, ``--repeats`` times each, in one process
on ``--threads`` torch threads; prints the median seconds per step of each and their ratio.

    python -m benchmarks.data_memory --work /tmp/gan-augment
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def seconds_per_step(data: Path, out: Path, steps: int) -> float:
    from train.cli import main as t2i

    start = time.perf_counter()
    assert t2i(["train", "cgan", f"--data={data}", "--resize=pad", "--background=white", f"--steps={steps}",
                "--sample-every=0", "--checkpoint-every=0", f"--out={out}"]) == 0
    return (time.perf_counter() - start) / steps


def main() -> None:
    import t2i.data.folder as folder
    from benchmarks.gan_augment import build_class_folders

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/gan-augment", help="holds (or gets) the stamp class folders")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.work) / "stamps"
    if not data.is_dir():
        build_class_folders(data)
    shipped = folder.MEMORY_BYTES
    times: dict[str, list[float]] = {"kept in memory": [], "read every access": []}
    for r in range(args.repeats):
        for name, limit in (("read every access", 0), ("kept in memory", shipped)):
            folder.MEMORY_BYTES = limit
            out = Path(args.work) / f"memory-{name.replace(' ', '-')}-{r}"
            times[name].append(seconds_per_step(data, out, args.steps))
    folder.MEMORY_BYTES = shipped
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name}: median {medians[name]:.3f} s/step over {len(t)} runs of {args.steps} steps "
              f"({', '.join(f'{x:.3f}' for x in t)})")
    print(f"speed-up {medians['read every access'] / medians['kept in memory']:.2f}x")


if __name__ == "__main__":
    main()
