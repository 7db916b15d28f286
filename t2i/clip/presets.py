"""Our CLIP presets: open_clip model configs (architectures) and training recipes of the same names.

- ``model_configs/<name>.json``: an open_clip model config (``embed_dim``, ``vision_cfg``,
  ``text_cfg``), registered with ``open_clip.add_model_config`` so that
  ``open_clip.create_model("t2i-tiny")`` works once ``register_presets()`` has run;
- ``train_presets/<name>.json``: the ``t2i train clip --preset <name>`` recipe (model, image
  size, steps, batch, learning rate) that trains that architecture.

| name | image | towers | recipe (``train_presets/``) |
| --- | --- | --- | --- |
| ``t2i-tiny`` | 32 px | ViT 4 x 128 (patch 4), text 3 x 64, 32 tokens, embed 64; 3.8 M parameters | 600 steps x 128 on shapes: 11.8 min on a shared 2-core CPU (7.6 CPU-minutes); zero-shot colour/shape 100%/100% on test; the built-in before NegCLIP (bag of words: word order at chance) |
| ``t2i-tiny-negclip`` | 32 px | ``t2i-tiny`` | the first of the built-in ``shapes-clip``'s four runs: 600 steps x 128 with NegCLIP hard negatives (K = 4) |
| ``t2i-tiny-relations`` | 32 px | ``t2i-tiny`` | its second run (``--pretrained`` the first's model): 800 x 64, lr 5e-4, K = 3, 75% two-object scenes, swapped-places twins; runs 3-4 vary it (``t2i/builtin/shapes-clip/README.md``) |
| ``t2i-small`` | 64 px | ViT 6 x 192 (patch 8), text 4 x 128, 32 tokens, embed 128 | 5000 steps x 256, not tuned: a GPU or patience |

Tuning notes for ``t2i-tiny`` (600 steps x 128 on shapes, test split, marginal zero-shot
colour/shape): text width 64 beat 32 (100/100 vs 100/98.6; novel shape 93.5 vs 81.3); an
open_clip ``ModifiedResNet`` image tower (width 16) was 3x cheaper per step with better
retrieval but weaker shape recognition (92.8, novel 46.8); lr 3e-3 trained slower early.

The vocabulary is open_clip's default BPE (49408 tokens), so the exported tokenizer is the
standard ``CLIPTokenizer``.

    python -c "from t2i.clip.presets import demo; demo()"
"""

from __future__ import annotations

import json
from pathlib import Path

from t2i.clip.model import PRESET_DIR, register_presets

TRAIN_PRESET_DIR = Path(__file__).resolve().parent / "train_presets"


def model_presets() -> dict[str, Path]:
    """Architecture name -> its open_clip JSON model config."""
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.json"))}


def train_presets() -> dict[str, Path]:
    """Recipe name -> JSON of ``t2i train clip`` options (for ``parse_config(presets=...)``)."""
    return {p.stem: p for p in sorted(TRAIN_PRESET_DIR.glob("*.json"))}


def demo() -> None:
    import open_clip

    register_presets()
    for name, path in model_presets().items():
        model = open_clip.create_model(name)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        recipe = json.loads(train_presets()[name].read_text()) if name in train_presets() else {}
        print(f"{name}: {params:.2f} M parameters, recipe {recipe}")
