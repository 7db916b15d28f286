"""The glyphs recipe's dataset builder (examples/glyphs/make_dataset.py), on the DejaVu faces matplotlib ships."""

import importlib.util
import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from t2i.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
MPL_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansDisplay.ttf")  # the last lacks letters


def load_builder():
    spec = importlib.util.spec_from_file_location("glyphs_make_dataset", ROOT / "examples" / "glyphs" / "make_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
