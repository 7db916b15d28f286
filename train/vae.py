"""Train a VAE (MLP or convolutional) on the negative ELBO with a beta weight.

The loop (``gan_baselines.vae_training``) also trains the conditional VAE (``t2i train cvae``
sets ``conditioning`` to ``label`` or ``text``): the condition vector is a one-hot class label or the pooled
CLIP embedding of the caption from a frozen ``t2i.text.TextEncoder``. The final model is
saved under ``OUT/model`` (family "vae" or "cvae"); ``t2i sample`` draws from its prior.

    t2i train vae --data digits --latent-dim 2 --steps 50 --out /tmp/vae
    t2i train vae --arch conv --latent-dim 16 --beta 0.5 --steps 50 --out /tmp/conv-vae
"""

from __future__ import annotations

from gan_baselines.vae_training import VAEConfig, train_vae
from t2i.config import parse_config


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(VAEConfig, argv, prog="t2i train vae", description=__doc__)
    print(f"saved {train_vae(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
