"""The shapes generator against its spec (shared/specs/shapes.md) and the data contract."""

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from t2i.data import load_dataset, shapes
from train.data import main as data_main

HELD = set(shapes.HELD_OUT_PAIRS)


def pairs(rec):
    return {(o["colour"], o["shape"]) for o in rec["objects"]}


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_vocabulary_and_extents():
    assert shapes.COLOURS["red"] == (230, 25, 25) and shapes.COLOURS["white"] == (245, 245, 245)
    assert len(shapes.COLOURS) == 7 and shapes.SHAPES == ("circle", "square", "triangle", "cross")
    assert shapes.ANCHORS["top right"] == (0.75, 0.25) and shapes.ANCHORS["center"] == (0.5, 0.5)
    assert [shapes.extent(s, 32) for s in ("small", "large")] == [9, 16]
    assert [shapes.extent(s, 64) for s in ("small", "large")] == [18, 32]
    with pytest.raises(ValueError, match="size must be one of"):
        shapes.extent("huge", 32)


def test_write_dataset_is_byte_identical(tmp_path):
    for name in ("a", "b"):
        assert data_main(["shapes", "--out", str(tmp_path / name), "--n", "40", "--seed", "3"]) == 0
    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b and len(a) == 41  # 40 PNGs + metadata.jsonl
    shapes.write_dataset(tmp_path / "c", 40, seed=4, progress=False)
    assert digest(tmp_path / "c") != a  # the seed matters
    shapes.write_dataset(tmp_path / "a", 5, seed=3, progress=False)  # rewriting replaces the old one
    again = digest(tmp_path / "a")
    assert len(again) == 6 and {k: again[k] for k in again if k.endswith(".png")}.items() <= a.items()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        shapes.write_dataset(tmp_path / "mine", 5, progress=False)


def test_scenes_are_a_stream_and_splits_differ():
    long = shapes.make_scenes(30, seed=1)
    assert shapes.make_scenes(10, seed=1) == long[:10]  # scene i depends on (seed, split, i) only
    test = shapes.make_scenes(30, seed=1, split="test")
    assert [r["caption"] for r in test] != [r["caption"] for r in long]


@pytest.mark.parametrize("S", [32, 64])
def test_one_object_geometry_and_rendering(S):
    records = shapes.make_scenes(150, seed=0, size=S, p_two=0.0)
    jitter = 0.06 * S + 1 / 8  # + rounding to the 1/4-pixel grid
    biggest = 0.0
    for rec in records:
        (obj,) = rec["objects"]
        e = shapes.extent(obj["size"], S)
        fx, fy = shapes.ANCHORS[obj["position"]]
        for c, anchor in zip(obj["centre"], (fx * S, fy * S)):
            clamped = math.isclose(c, e / 2) or math.isclose(c, S - e / 2)
            assert abs(c - anchor) <= jitter or clamped
            assert e / 2 <= c <= S - e / 2
            biggest = max(biggest, abs(c - anchor))
        x0, y0, x1, y1 = obj["bbox"]
        assert math.isclose(x1 - x0, e) and math.isclose(y1 - y0, e)
        assert rec["caption"] == f"a {obj['size']} {obj['colour']} {obj['shape']} in the {obj['position']}"
        img = shapes.render(rec, S)
        assert img.size == (S, S) and img.mode == "RGB"
        arr = np.asarray(img).astype(int)
        # the pixel at the centre is fully covered: exactly the palette colour
        assert tuple(arr[int(obj["centre"][1]), int(obj["centre"][0])]) == shapes.COLOURS[obj["colour"]]
        ys, xs = np.nonzero(arr.sum(-1))  # the drawn extent matches the nominal one
        assert abs((xs.max() - xs.min() + 1) - e) <= 1 and abs((ys.max() - ys.min() + 1) - e) <= 1
        assert xs.min() >= math.floor(x0) and xs.max() <= math.ceil(x1)
        assert arr[0, 0].sum() == 0 or (x0 < 1 and y0 < 1)  # black background
    assert biggest > 0.8 * 0.06 * S  # the jitter is really used


@pytest.mark.parametrize("shape, area", [("square", 1.0), ("circle", math.pi / 4),
                                         ("triangle", 0.5), ("cross", 5 / 9)])
def test_silhouettes(shape, area):
    """Covered area / extent^2 of each shape (cross arms e/3 thick: 1 - 4/9), apex-up triangle."""
    S, e = 64, 32

    def coverage(cx, cy):  # (S, S) in [0, 1]
        obj = {"colour": "white", "shape": shape, "size": "large", "centre": [cx, cy],
               "bbox": [cx - e / 2, cy - e / 2, cx + e / 2, cy + e / 2]}
        return np.asarray(shapes.render({"objects": [obj], "image_size": S}))[..., 0] / 245.0

    assert coverage(30.25, 33.5).sum() / e**2 == pytest.approx(area, rel=0.04)
    cover = coverage(32.0, 32.0)  # pixel-aligned: the shape covers exactly e x e pixels
    assert cover.sum() / e**2 == pytest.approx(area, rel=0.04)
    rows, cols = cover.sum(1)[16:48], cover.sum(0)[16:48]
    assert cover.sum() == pytest.approx(rows.sum())  # nothing outside the bounding box
    assert rows.min() > 0 and cols.min() > 0
    np.testing.assert_allclose(cols, cols[::-1], atol=1e-6)  # left-right symmetric about the centre
    if shape == "triangle":
        assert rows[0] < 2 and rows[-1] > e - 2  # apex at the top, base at the bottom
        assert np.all(np.diff(rows) >= 0)
    else:  # the others are also top-bottom symmetric
        np.testing.assert_allclose(rows, rows[::-1], atol=1e-6)
    if shape == "cross":
        assert rows[0] == pytest.approx(e / 3, abs=0.3) and rows[16] == pytest.approx(e, abs=1e-6)


def test_rendered_colours_are_the_palette():
    seen = set()
    for rec in shapes.make_scenes(200, seed=5):
        arr = np.asarray(shapes.render(rec)).reshape(-1, 3)
        seen |= {tuple(int(v) for v in px) for px in arr}
    palette = set(shapes.COLOURS.values())
    assert palette <= seen and (0, 0, 0) in seen
    # anti-aliased edges are blends of a palette colour with black (or another colour)
    assert len(seen - palette - {(0, 0, 0)}) > 50


@pytest.mark.parametrize("S", [32, 64])
def test_two_object_constraints(S):
    records = shapes.make_scenes(150, seed=2, size=S, p_two=1.0)
    relations = set()
    for rec in records:
        a, b = rec["objects"]
        assert a["size"] == b["size"] == "small" and (a["colour"], a["shape"]) != (b["colour"], b["shape"])
        (ax, ay), (bx, by) = a["centre"], b["centre"]
        along, across = {"above": (by - ay, bx - ax), "below": (ay - by, bx - ax),
                         "to the left of": (bx - ax, by - ay), "to the right of": (ax - bx, by - ay)}[rec["relation"]]
        assert along >= 0.40 * S and abs(across) <= 0.15 * S
        e = shapes.extent("small", S)
        assert abs(ax - bx) >= e or abs(ay - by) >= e  # bounding boxes do not overlap
        for o in (a, b):
            assert 0 <= o["bbox"][0] and o["bbox"][2] <= S and 0 <= o["bbox"][1] and o["bbox"][3] <= S
        assert rec["caption"] == f"a {a['colour']} {a['shape']} {rec['relation']} a {b['colour']} {b['shape']}"
        arr = np.asarray(shapes.render(rec))
        for o in (a, b):
            assert tuple(arr[int(o["centre"][1]), int(o["centre"][0])]) == shapes.COLOURS[o["colour"]]
        relations.add(rec["relation"])
    assert relations == set(shapes.RELATIONS)


def test_held_out_pairs_and_novel_split():
    for split in ("train", "test"):
        assert not any(pairs(r) & HELD for r in shapes.make_scenes(400, seed=0, split=split))
    novel = shapes.make_scenes(200, seed=0, split="novel")
    assert all(pairs(r) & HELD for r in novel)
    assert {r["relation"] is None for r in novel} == {True, False}  # one- and two-object scenes
    seen = {p for r in novel for p in pairs(r) & HELD}
    assert seen == HELD


def test_p_two_and_uniform_vocabulary():
    recs = shapes.make_scenes(400, seed=7)
    share = np.mean([len(r["objects"]) == 2 for r in recs])
    assert 0.4 < share < 0.6
    assert all(len(r["objects"]) == 1 for r in shapes.make_scenes(50, p_two=0.0))
    ones = [r["objects"][0] for r in recs if len(r["objects"]) == 1]
    assert {o["position"] for o in ones} == set(shapes.POSITIONS) and {o["size"] for o in ones} == {"small", "large"}
    assert {o["colour"] for r in recs for o in r["objects"]} == set(shapes.COLOURS)
    with pytest.raises(ValueError, match="p_two"):
        shapes.make_scenes(3, p_two=1.5)
    with pytest.raises(ValueError, match="split must be one of"):
        shapes.make_scenes(3, split="val")


def test_captions_grammar_and_parse_round_trip():
    for rec in shapes.make_scenes(200, seed=9, split="novel") + shapes.make_scenes(200, seed=9):
        text = rec["caption"]
        assert text == text.lower() and "  " not in text and not text.endswith(".") and text == text.strip()
        parsed = shapes.parse_caption(text)
        assert parsed["relation"] == rec["relation"]
        keys = ("colour", "shape", "size", "position")
        assert [{k: o[k] for k in keys} for o in parsed["objects"]] == [{k: o[k] for k in keys} for o in rec["objects"]]
    for bad in ("a big red circle in the top left", "A small red circle in the top left",
                "a small red circle in the top left.", "a red circle near a blue square", ""):
        with pytest.raises(ValueError, match="not a shapes caption"):
            shapes.parse_caption(bad)


def test_prompts_kinds():
    one = shapes.prompts(20, seed=0, split="novel", kind="one")
    two = shapes.prompts(20, seed=0, split="novel", kind="two")
    assert all(rec["relation"] is None and re.fullmatch(r"a \w+ \w+ \w+ in the .+", text) for text, rec in one)
    assert all(rec["relation"] in shapes.RELATIONS for _, rec in two)
    assert all(pairs(rec) & HELD for _, rec in one + two)
    with pytest.raises(ValueError, match="kind must be one of"):
        shapes.prompts(2, kind="three")


def test_load_dataset_shapes_contract():
    ds = load_dataset("shapes", split="test", n=64, seed=1)
    assert len(ds) == 64 and ds.channels == 3 and ds.size == 32 and ds.num_classes == 28
    item = ds[5]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 32, 32)
    assert 0 <= item["image"].min() and item["image"].max() <= 1 and item["index"] == 5
    rec = ds.records[5]
    assert item["text"] == rec["caption"]
    first = rec["objects"][0]
    assert ds.class_names[item["label"]] == f"{first['colour']} {first['shape']}"
    expected = torch.from_numpy(np.array(shapes.render(rec))).permute(2, 0, 1).float() / 255
    assert torch.equal(item["image"], expected)
    batch = next(iter(DataLoader(ds, batch_size=8)))
    assert batch["image"].shape == (8, 3, 32, 32) and len(batch["text"]) == 8 and batch["label"].shape == (8,)
    grey = load_dataset("shapes", split="test", n=64, seed=1, size=64, channels=1)
    assert grey[0]["image"].shape == (1, 64, 64)
    with pytest.raises(ValueError, match="unknown option"):
        load_dataset("shapes", n=4, colour="red")


def test_written_folder_loads_with_records_and_hf_datasets(tmp_path):
    out = shapes.write_dataset(tmp_path / "s", 24, seed=0, progress=False)
    mine = load_dataset(out)
    gen = shapes.make_scenes(24, seed=0)
    assert mine.captions == [r["caption"] for r in gen] and mine.records[3]["objects"] == gen[3]["objects"]
    assert torch.equal(mine[3]["image"], load_dataset("shapes", n=24)[3]["image"])
    datasets = pytest.importorskip("datasets")
    hf = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "cache"))["train"]
    assert hf["text"] == [r["caption"] for r in gen]
    assert hf[0]["objects"][0]["centre"] == gen[0]["objects"][0]["centre"]
    assert np.array_equal(np.asarray(hf[0]["image"].convert("RGB")), np.asarray(shapes.render(gen[0])))


def test_data_command_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        data_main(["shapes", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert done.value.code == 0 and "--p-two" in out and "(default: 0.5)" in out and "(default: 32)" in out
    with pytest.raises(SystemExit):
        data_main(["shapes", "--out", "x", "--split", "val"])  # argparse lists the valid splits
    assert "invalid choice: 'val'" in capsys.readouterr().err
