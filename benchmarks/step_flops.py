"""FLOPs of one optimiser step of a ``t2i train`` command, counted as ``t2i bench`` counts its budgets.

Runs the trainer for 1 and 2 steps under ``FlopCounterMode`` in a temporary folder and prints the
difference (``t2i.bench.cost.trainer_step_flops``): matmuls, convolutions and attention, forward and
backward, including frozen encoders the trainer runs every step. Give the trainer's own flags, ``--steps``
and ``--out`` excepted. Use it to price a configuration before putting it in a sweep.

    python -m benchmarks.step_flops vae-kl --data=shapes --size=32 --batch-size=64 --arch=f4-tiny --latent-channels=8
    python -m benchmarks.step_flops ldm --data=shapes --size=32 --batch-size=64 --unet=test --vae=runs/my-vae-kl
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from t2i.bench.cost import trainer_step_flops
    from train.cli import COMMANDS

    argv = list(sys.argv[1:] if argv is None else argv)
    trainers = COMMANDS["train"]
    if not argv or argv[0] not in trainers:
        raise SystemExit(f"usage: python -m benchmarks.step_flops TRAINER [FLAGS...]; TRAINER one of {sorted(trainers)}")
    given = [a for a in argv[1:] if a.split("=")[0] in ("--steps", "--out")]
    if given:
        raise SystemExit(f"leave out {given}: the count sets the steps and the output folder itself")
    with tempfile.TemporaryDirectory() as tmp:
        flops = trainer_step_flops(trainers[argv[0]], argv[1:], Path(tmp) / "runs")
    print(f"{argv[0]}: {flops:.4g} FLOPs per optimiser step ({flops})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
