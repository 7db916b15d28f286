"""Train a conditional VAE on class labels or on the pooled CLIP text embedding.

Same model, loss and loop as ``t2i train vae`` (``gan_baselines.vae_training``); only the defaults
differ: text conditioning on shapes with the built-in ``shapes-clip`` text encoder, so the
VAE family takes part in text-to-image comparisons. ``--conditioning label`` conditions on
the dataset's class (digits: the digit; shapes: the subject's colour and shape). The saved
model (family "cvae") answers ``t2i sample`` with prompts or with labels.

    t2i train cvae --conditioning label --data digits --steps 50 --out /tmp/cvae-label
    t2i train cvae --data shapes --n 2000 --text-encoder shapes-clip --steps 50 --out /tmp/cvae-text
"""

from __future__ import annotations

from gan_baselines.vae_training import CVAEConfig, train_vae
from t2i.config import parse_config


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(CVAEConfig, argv, prog="t2i train cvae", description=__doc__)
    if cfg.conditioning == "none":
        raise SystemExit("t2i train cvae: --conditioning must be 'label' or 'text' (use `t2i train vae` for none)")
    print(f"saved {train_vae(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
