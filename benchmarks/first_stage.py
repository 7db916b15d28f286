"""The ceiling a first stage puts on every latent model: the shapes evaluator on its reconstructions.

Encodes (posterior mean) and decodes `--n` one-object and `--n` two-object scenes of the `test`
and `novel` splits and judges the reconstructions against their captions, as a generated
image would be judged; prints the accuracies and the PSNR per group.

    python -m benchmarks.first_stage t2i/builtin/shapes-vae-kl --n 200
"""

from __future__ import annotations

import argparse
import json
from typing import Sequence

import torch


@torch.no_grad()
def reconstruction_accuracy(vae_folder: str, n: int) -> dict[str, dict[str, float]]:
    from t2i.data import load_dataset
    from t2i.diffusion.first_stage import load_vae
    from t2i.evaluators.shapes import prompt_accuracy

    vae = load_vae(vae_folder).float().eval()
    found = {}
    for split in ("test", "novel"):
        for p_two, kind in ((0.0, "one"), (1.0, "two")):
            data = load_dataset("shapes", split=split, n=n, p_two=p_two)
            x = torch.stack([data[i]["image"] for i in range(len(data))])  # (n, 3, S, S) in [0, 1]
            rec = vae.decode(vae.encode(x * 2 - 1).latent_dist.mode()).sample.clamp(-1, 1) / 2 + 0.5
            acc = prompt_accuracy(rec, [data[i]["text"] for i in range(len(data))])[kind]
            psnr = (-10 * torch.log10(((rec - x) ** 2).mean(dim=(1, 2, 3)))).mean()
            keys = ("colour", "shape", "size", "position", "all_correct") if kind == "one" else \
                ("colour", "shape", "binding", "relation", "all_correct")
            found[f"{split}_{kind}"] = {**{k: round(acc[k], 3) for k in keys}, "psnr_db": round(float(psnr), 2)}
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("vae", help="an AutoencoderKL folder, a `t2i train vae-kl` run or a pipeline folder")
    parser.add_argument("--n", type=int, default=200, help="scenes per split and kind")
    args = parser.parse_args(argv)
    for group, row in reconstruction_accuracy(args.vae, args.n).items():
        print(group, json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
