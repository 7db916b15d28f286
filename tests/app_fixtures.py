"""Tiny real models for the app tests: a CLIP, a text GAN, a diffusion pipeline, a 2-D AE and VAE.

Each is built or trained for two steps locally in a few seconds; nothing is downloaded.
"""

from __future__ import annotations

import socket
from pathlib import Path

from apps.app import AppConfig

TINY = ["--steps", "2", "--batch-size", "8", "--log-every", "1", "--checkpoint-every", "0"]


def build_tiny_models(root: Path) -> AppConfig:
    from t2i.clip.testing import make_tiny_clip
    from t2i.diffusion.testing import make_tiny_pipeline
    from train import ae, tgan, vae

    clip = make_tiny_clip(root / "clip")
    tgan.main(TINY + ["--n", "32", "--data", "shapes", "--clip", str(clip), "--g-base", "8", "--d-base", "8",
                      "--out", str(root / "tgan")])
    pipe = make_tiny_pipeline()
    pipe.save_pretrained(str(root / "ldm"))
    ae.main(TINY + ["--n", "64", "--latent-dim", "2", "--hidden", "32", "--out", str(root / "ae")])
    vae.main(TINY + ["--n", "64", "--latent-dim", "2", "--hidden", "32", "--out", str(root / "vae")])
    return AppConfig(gan=str(root / "tgan" / "model"), diffusion=str(root / "ldm"), clip=str(clip),
                     ae=str(root / "ae" / "model"), vae=str(root / "vae" / "model"), port=free_port(),
                     outputs=str(root / "outputs"), unclip="")  # the unCLIP tab: tests/test_app_unclip.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
