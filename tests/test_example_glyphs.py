"""The glyphs recipe (examples/glyphs): its dataset builder, its read-back measure and its README commands, on the
DejaVu faces matplotlib ships."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from t2i.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
MPL_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansDisplay.ttf")  # the last lacks letters


def load_script(name: str):
    """examples/glyphs/NAME.py as a module (the recipe's scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"glyphs_{name}", ROOT / "examples" / "glyphs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_builder():
    return load_script("make_dataset")


@pytest.fixture(scope="module")
def glyphs(tmp_path_factory) -> Path:
    fonts = tmp_path_factory.mktemp("fonts")
    for name in FACES:
        shutil.copy(MPL_FONTS / name, fonts / name)
    out = tmp_path_factory.mktemp("glyphs")
    load_builder().main(["--out", str(out), "--size", "32", "--fonts", str(fonts)])
    return out


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def test_every_character_of_every_text_face_once_split_by_caption(glyphs):
    train, test = rows(glyphs / "train"), rows(glyphs / "test")
    assert len(train) + len(test) == 3 * 62  # the display face draws no letter or digit: nothing of it is kept
    assert 0 < len(test) < len(train)
    firsts = [r["text"][0] for r in train + test]
    assert len(set(firsts)) == len(firsts)  # one caption names one image
    builder = load_builder()
    assert all(builder.split_of(r["text"][0]) == "test" for r in test)
    faces_in_train = {r["text"][0].split(", ", 1)[1] for r in train}
    assert {r["text"][0].split(", ", 1)[1] for r in test} <= faces_in_train  # held-out pairs: faces seen in training


def test_captions_name_case_face_and_style():
    builder = load_builder()
    assert builder.captions("K", "DejaVu Serif", "bold italic") == [
        "capital letter K, DejaVu Serif bold italic", "a bold italic capital K in DejaVu Serif",
        "the capital letter K set in DejaVu Serif, bold italic"]
    assert builder.captions("k", "DejaVu Sans", "italic")[1] == "an italic small k in DejaVu Sans"
    assert builder.captions("7", "Liberation Mono", "regular")[0] == "digit 7, Liberation Mono regular"


def test_glyphs_sit_on_one_baseline_so_case_shows(glyphs):
    """A small o is shorter than a capital O of the same face, and both end on the same row (the baseline)."""
    def ink_rows(name: str) -> tuple[int, int]:
        for split in ("train", "test"):
            path = glyphs / split / name
            if path.exists():
                rows_with_ink = np.flatnonzero(np.asarray(Image.open(path).convert("L")).max(axis=1) > 128)
                return int(rows_with_ink[0]), int(rows_with_ink[-1])
        raise AssertionError(f"{name} not written")

    (cap_top, cap_bottom), (small_top, small_bottom) = ink_rows("DejaVuSans-uO.png"), ink_rows("DejaVuSans-lo.png")
    assert small_top > cap_top + 2 and abs(small_bottom - cap_bottom) <= 1


def test_the_trainers_read_it_with_every_caption(glyphs):
    data = load_dataset(glyphs, split="train", size=32, draw_caption=True)
    drawn = set()
    for epoch in range(8):
        data.set_epoch(epoch)
        drawn.add(data[0]["text"])
    assert drawn <= set(rows(glyphs / "train")[0]["text"]) and len(drawn) >= 2
    assert tuple(data[0]["image"].shape) == (3, 32, 32)


def load_reader():
    return load_script("read_back")


def test_read_back_tells_a_wrong_letter_in_the_right_face_from_a_right_one():
    """A judge whose caption embedding is character + face: a picture that shows another letter of the
    requested face is a character miss and a face hit (R-precision among random captions would half count it)."""
    reader = load_reader()
    characters, faces = ["capital letter A", "digit 7", "small letter q"], ["DejaVu Sans bold", "Liberation Serif italic"]
    basis = torch.eye(len(characters) + len(faces))
    table = torch.stack([torch.stack([basis[c] + basis[len(characters) + f] for f in range(len(faces))])
                         for c in range(len(characters))])  # (C, F, P)
    captions = ["capital letter A, DejaVu Sans bold", "digit 7, Liberation Serif italic", "small letter q, DejaVu Sans bold"]
    images = torch.stack([table[0, 0], table[2, 1], table[2, 1]])  # right; q drawn for 7 (right face); q in the wrong face
    hits = reader.read_back(images, captions, table, characters, faces)
    assert hits["character"].tolist() == [1.0, 0.0, 1.0]
    assert hits["face"].tolist() == [1.0, 1.0, 0.0]
    assert hits["both"].tolist() == [1.0, 0.0, 0.0]
    res = reader.summary(hits, captions, characters)
    assert res["character"]["accuracy"] == pytest.approx(2 / 3)
    assert res["top_misreadings"] == [("digit 7 -> small letter q", 1)]
    with pytest.raises(ValueError, match="not a glyphs caption"):
        reader.split_caption("a photo of a cat")


def test_read_back_command_reads_real_and_generated_images(glyphs, tmp_path, capsys):
    out = tmp_path / "read_back.json"
    load_reader().main(["--data", str(glyphs), "--judge", "shapes-clip", "--models", "shapes-ldm=shapes-ldm",
                        "--n", "3", "--out", str(out)])
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"real", "shapes-ldm"} and report["characters"] == 62 and report["faces"] == 3
    for res in report["results"].values():
        assert res["n_images"] == 3
        assert all(0.0 <= res[q]["accuracy"] <= 1.0 for q in ("character", "face", "both"))
    assert "| shapes-ldm |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="NAME=FOLDER"):
        load_reader().main(["--data", str(glyphs), "--judge", "shapes-clip", "--models", "runs/ldm"])


def readme_commands() -> str:
    """The bash block of examples/glyphs/README.md's "Commands" section, as a user would paste it."""
    text = (ROOT / "examples" / "glyphs" / "README.md").read_text()
    section = text[text.index("## Commands"):]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start:section.index("\n```", start)]


@pytest.mark.recipe  # 6 min on 2 cores, most of it the start-up of 15 commands: `pytest -m recipe`
def test_the_readme_recipe_runs_end_to_end_at_two_steps(tmp_path):
    """Every command of the recipe's README, pasted into a shell in a clean folder, with 2 training steps each,
    matplotlib's DejaVu faces for the system's, and no `apt-get` or `t2i app` (a server): each writes its output."""
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for name in FACES:
        shutil.copy(MPL_FONTS / name, fonts / name)
    script = readme_commands()
    assert "t2i train ldm" in script and "--lora-rank" in script and "t2i train tgan-attn" in script
    lines = [line for line in script.splitlines() if not line.startswith(("apt-get", "t2i app"))]
    script = "\n".join(lines).replace("python examples/", f"{sys.executable} {ROOT}/examples/")
    build = "make_dataset.py --out data/glyphs --size 64\n"
    assert build in script
    script = script.replace(build, f"{build[:-1]} --fonts {fonts}\n")
    script = re.sub(r"--steps \d+", "--steps 2", script)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "runs" / "glyphs"
    for folder in ("clip", "judge-clip", "ldm", "ldm-lora", "tgan", "eval-ldm-test", "eval-tgan-test"):
        assert (runs / folder).is_dir(), folder
    assert json.loads((runs / "eval-ldm-lora-test" / "metrics.json").read_text())["metrics"]["r-precision"]
    assert set(json.loads((runs / "read_back.json").read_text())["results"]) == {"real", "shapes-ldm", "ldm", "lora", "tgan"}
    assert Image.open(runs / "compare_test.png").size[0] > 8 * 64
    assert len(list((runs / "look" / "images").glob("*.png"))) == 4
