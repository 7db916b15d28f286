"""Write the model card (README.md) of finished training runs, e.g. ones trained before runs wrote it.

Every `t2i train ...` run writes its card when it ends; this rewrites it from the folder as it is now
(a run of an older t2i, or a folder whose files changed since). The trainer is read
from what the folder holds (`t2i.model_card.trainer_of`). A README.md the toolkit did not write is kept
(the card goes to README.t2i.md) unless --force.

    t2i card runs/my-lora
    t2i card runs/* --print
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2i card", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders written by `t2i train ...` (the --out of each)")
    parser.add_argument("--print", action="store_true", help="print each card instead of writing it")
    parser.add_argument("--force", action="store_true", help="overwrite a README.md that t2i did not write")
    args = parser.parse_args(argv)

    from t2i.model_card import model_card, write_model_card

    for run in map(Path, args.runs):
        if not run.is_dir():
            raise FileNotFoundError(f"{run} is not a folder: give the --out folder of a finished `t2i train` run")
        if args.print:
            print(model_card(run))
        else:
            print(f"wrote {write_model_card(run, force=args.force)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
