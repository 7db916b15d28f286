"""Train an autoencoder: plain, conv, denoising, sparse, contractive or overcomplete.

Each variant is an architecture plus a loss from ``gan_baselines.autoencoders``; the
defaults a variant fills in (code size, hidden layers, code activation) are in
``VARIANTS`` and any of them can be set on the command line (the config and the loop are
``gan_baselines.ae_training``, which the AE studies share). The final model is saved under
``OUT/model`` (``config.json`` with family "ae" + ``model.safetensors``); ``t2i sample``
decodes random codes with it.

    t2i train ae --variant plain --data digits --latent-dim 2 --steps 50 --out /tmp/ae
    t2i train ae --variant denoising --noise masking --noise-level 0.5 --steps 50 --out /tmp/dae
"""

from __future__ import annotations

from gan_baselines.ae_training import AEConfig, train_autoencoder
from t2i.config import parse_config


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(AEConfig, argv, prog="t2i train ae", description=__doc__)
    folder = train_autoencoder(cfg)
    print(f"saved {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
