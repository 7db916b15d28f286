"""The image-to-image recipe (examples/stamps_i2i): its dataset builder and its README commands, on 700 small
drawings made here in place of Tux Paint's stamps (any mode, size and aspect ratio, as the stamps are)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from t2i.data.translation import load_held_out, load_translation

ROOT = Path(__file__).resolve().parents[1]


def fake_stamps(folder: Path, n: int = 700) -> Path:
    """``n`` drawings in sub-folders as the stamps ship: RGBA, LA and palette PNGs of many shapes."""
    for i in range(n):
        mode, size = ("RGBA", "LA", "P")[i % 3], (12 + i % 29, 12 + (i * 7) % 41)
        image = Image.new("RGBA", size, (0, 0, 0, 0))
        ImageDraw.Draw(image).ellipse((2, 2, size[0] - 3, size[1] - 3), fill=(40 * (i % 6), 90, 200, 255))
        image = image.convert(mode) if mode != "P" else image.convert("P")
        (folder / f"kind{i % 5}").mkdir(parents=True, exist_ok=True)
        image.save(folder / f"kind{i % 5}" / f"stamp{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("stamps_i2i", ROOT / "examples" / "stamps_i2i" / "make_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("stamps-i2i")
    module.main(["--out", str(out), "--stamps", str(fake_stamps(tmp_path_factory.mktemp("stamps"))), "--size", "32"])
    return out


def test_builder_writes_both_papers_layouts_that_the_loaders_read(built):
    pairs = load_translation(built / "sketch2stamp", size=32)
    held_out, split = load_held_out(built / "sketch2stamp", size=32)
    assert (len(pairs), len(held_out), split, pairs.paired) == (600, 100, "test", True)
    assert float(((pairs.A < 40) | (pairs.A > 215)).float().mean()) > 0.9  # A: a sketch, black lines on white
    assert float(pairs.B[:, 2].float().mean()) > float(pairs.B[:, 1].float().mean())  # B: the blue drawing
    domains = load_translation(built / "stamp2grey", size=32, unpaired=True, resize="pad", background="white")
    assert (len(domains.A), len(domains.B), domains.paired) == (300, 300, False)
    assert bool((domains.B[:, 0] == domains.B[:, 2]).all())  # the B domain is greyscale
    assert sorted(p.name for p in (built / "my-sketches").iterdir()) == ["coin.jpg", "house.png", "lollipop.png"]


def readme_commands() -> str:
    text = (ROOT / "examples" / "stamps_i2i" / "README.md").read_text()
    section = text[text.index("## Commands"):]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start:section.index("\n```", start)]


@pytest.mark.recipe  # 20 s on 2 cores: `pytest -m recipe`
def test_the_readme_recipe_runs_end_to_end_at_two_steps(tmp_path):
    """Every command of the README in a clean folder, 2 training steps each, the drawings above for the stamps."""
    stamps = fake_stamps(tmp_path / "stamps")
    script = "\n".join(line for line in readme_commands().splitlines() if not line.startswith("apt-get"))
    script = script.replace("python examples/", f"{sys.executable} {ROOT}/examples/")
    script = script.replace("--out data/stamps-i2i\n", f"--out data/stamps-i2i --stamps {stamps}\n")
    script = re.sub(r"--steps \d+", "--steps 2 --eval-n 8", script)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "runs" / "stamps-i2i"
    for folder in ("p2p/eval.json", "cyclegan/eval.json", "my-sketches/house.png", "test-out"):
        assert (runs / folder).exists(), folder
    assert len(list((runs / "test-out").glob("*.png"))) == 100
