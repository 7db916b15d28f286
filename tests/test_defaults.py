"""`t2i train defaults`: every recipe runs (2 steps each) and installs loadable models with cards."""

import json

import pytest

from gan_baselines.registry import load_generator
from t2i.builtin import ROOT


@pytest.mark.slow
def test_quick_defaults_train_and_install_every_model(tmp_path):
    from train.defaults import RECIPES, main

    root = tmp_path / "builtin"
    assert main(["--quick", "--out", str(tmp_path / "runs"), "--builtin-root", str(root)]) == 0
    for recipe in RECIPES:
        folder = root / recipe.name
        assert (folder / "README.md").is_file() and json.loads((folder / "metrics.json").read_text()) is not None
    assert "shapes-clip" in (root / "shapes-tgan" / "config.json").read_text()  # points at the built-in name
    assert "/runs/" not in (root / "shapes-tgan" / "config.json").read_text()
    images = load_generator(root / "shapes-ldm").generate(prompts=["a small red circle in the center"], seed=0)
    assert images[0].size == (32, 32)
    assert len(load_generator(root / "digits-vae").generate(seed=0, num_images_per_prompt=3)) == 3
    assert not (ROOT / ".shapes-ldm.tmp").exists()


def test_unknown_name_is_refused(tmp_path):
    from train.defaults import main

    with pytest.raises(SystemExit, match="unknown name"):
        main(["--only", "shapes-nope", "--out", str(tmp_path)])


def test_registry_loads_a_run_folder_through_its_model(tmp_path):
    """Regression: `t2i sample --model RUN` failed on a run folder (RUN/config.json has no family)."""
    from train import vae

    vae.main(["--steps", "1", "--batch-size", "8", "--n", "16", "--latent-dim", "2", "--hidden", "16",
              "--checkpoint-every", "0", "--out", str(tmp_path / "run")])
    assert len(load_generator(tmp_path / "run").generate(seed=0, num_images_per_prompt=2)) == 2
