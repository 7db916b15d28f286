"""Issue 16, measures for any captioned data: R-precision (hand-computed cases, the real-image ceiling of
an oracle, seeded candidates), FID/KID on CLIP features beside the real-vs-real floor, and `t2i eval`
end to end on a tiny captioned folder with a tiny text GAN and a tiny evaluation CLIP; the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from t2i.data import READING_DEFAULTS
from t2i.metrics import compute
from t2i.metrics.captioned import HeldOut, check_held_out, halves
from t2i.metrics.intervals import bootstrap_mean
from t2i.metrics.r_precision import draw_candidates, r_precision, r_precision_hits
from train.cli import main as t2i

COLOURS = ["red", "green", "blue", "yellow", "white", "purple"]


def test_r_precision_matches_a_hand_computed_case():
    # three captions on the unit circle; every caption is a candidate (3 < 100)
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # a, b, c
    images = torch.tensor([[0.6, 0.8],  # for "a": cos(a) 0.6 < cos(b) 0.8: a miss
                           [0.0, 1.0],  # for "b": exactly b: a hit
                           [-1.0, 0.1]])  # for "c": cos(c) 0.995 > cos(b) 0.0995 > cos(a): a hit
    res = r_precision(images, ["a", "b", "c"], text, ["a", "b", "c"], n_boot=200)
    assert res["num_candidates"] == 3 and res["n_captions"] == 3
    assert res["r_precision"] == pytest.approx(2 / 3)
    # two candidates each: the hit depends on which distractor was drawn, read from the candidate ids
    ids = torch.tensor([0, 1, 2])
    cand = draw_candidates(ids, 3, num_candidates=2, seed=5)
    sims = torch.nn.functional.normalize(images, dim=-1) @ text.T  # (3, 3)
    expected = [float(sims[i, i] > sims[i, cand[i, 1]]) for i in range(3)]
    assert r_precision_hits(images, text, cand).tolist() == expected
    # a tie with a distractor is a miss: the own caption must score strictly higher
    assert r_precision_hits(torch.tensor([[1.0, 1.0]]), text[:2], torch.tensor([[0, 1]])).tolist() == [0.0]


def test_candidates_are_the_true_caption_and_distinct_others_drawn_by_the_seed():
    ids = torch.arange(150).repeat(2)  # 300 images, 150 distinct captions, each twice
    cand = draw_candidates(ids, 150, seed=0)
    assert cand.shape == (300, 100) and (cand[:, 0] == ids).all()
    assert all(len(set(row.tolist())) == 100 for row in cand)  # 99 distinct others, never the true one
    assert torch.equal(cand[:150], cand[150:])  # one candidate set per caption: images of a caption share it
    assert torch.equal(cand, draw_candidates(ids, 150, seed=0))  # seeded
    assert not torch.equal(cand, draw_candidates(ids, 150, seed=1))
    with pytest.raises(ValueError, match="at least 2 distinct captions"):
        draw_candidates(torch.zeros(3, dtype=torch.long), 1)


def test_an_oracle_evaluation_model_gives_the_real_images_a_ceiling_of_one():
    torch.manual_seed(0)
    captions = [f"caption {i}" for i in range(120)]
    text = torch.randn(120, 8)  # the oracle embeds each real image exactly as its caption
    generated = text + 2.0 * torch.randn(120, 8)  # a generator that follows its caption only in part
    res = r_precision(generated, captions, text, captions, real_features=text.clone(), real_captions=captions,
                      seed=3, n_boot=200)
    assert res["real"]["r_precision"] == 1.0 and res["real"]["ci95"] == [1.0, 1.0]
    assert 0.0 < res["r_precision"] < 1.0 and res["ci95"][0] <= res["r_precision"] <= res["ci95"][1]
    assert res["num_candidates"] == 100
    again = r_precision(generated, captions, text, captions, real_features=text, real_captions=captions, seed=3,
                        n_boot=200)
    assert again == res  # deterministic under the seed
    assert compute("r-precision", image_features=generated, captions=captions, caption_features=text,
                   unique_captions=captions, seed=3, n_boot=200)["r_precision"] == res["r_precision"]


def test_bootstrap_interval_holds_the_mean_and_is_seeded():
    values = torch.tensor([0.0, 1.0] * 50)
    mean, lo, hi = bootstrap_mean(values, seed=1)
    assert mean == 0.5 and lo < 0.5 < hi and (lo, hi) == bootstrap_mean(values, seed=1)[1:]


def test_clip_fid_floor_uses_two_disjoint_halves_of_equal_size():
    a, b = halves(11, seed=0)
    assert len(a) == len(b) == 5 and not set(a.tolist()) & set(b.tolist())
    with pytest.raises(ValueError, match="at least 4 held-out items"):
        halves(3, seed=0)
    with pytest.raises(ValueError, match="at least 2"):
        check_held_out(HeldOut(torch.zeros(3, 3, 8, 8), ["same"] * 3, "one-caption"))


def coloured(colour: str, size: int = 32, seed: int = 0) -> Image.Image:
    """A square of ``colour`` at half brightness with seeded noise."""
    rng = np.random.default_rng(seed)
    base = np.asarray(Image.new("RGB", (size, size), colour), dtype=np.int16) // 2
    return Image.fromarray((base + rng.integers(0, 40, (size, size, 3))).astype(np.uint8))


def write_captioned(folder, captions):
    folder.mkdir(parents=True)
    rows = []
    for i, caption in enumerate(captions):
        coloured(caption.split()[1], seed=i).save(folder / f"{i:03d}.png")
        rows.append({"file_name": f"{i:03d}.png", "text": caption})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A held-out folder of 12 captioned images (6 captions), a tiny evaluation CLIP, a tiny text GAN."""
    from gan_baselines import tgan
    from t2i.clip.testing import make_tiny_clip
    from t2i.io import save_model
    from t2i.text import TextEncoder

    root = tmp_path_factory.mktemp("anydata")
    held_out = write_captioned(root / "mydata" / "test", [f"a {c} square" for c in COLOURS] * 2)
    make_tiny_clip(root / "eval-clip" / "model", seed=1)  # a `t2i train clip` run folder's layout
    gen_clip = make_tiny_clip(root / "gen-clip", seed=2)
    torch.manual_seed(0)
    arch = {"text_dim": TextEncoder.from_pretrained(gen_clip).pooled_dim, "latent_dim": 8, "cond_dim": 16,
            "channels": 3, "size": 32, "g_base": 8, "d_base": 8}
    model = save_model(root / "tgan", tgan.build(arch)[0], {"family": "tgan", "arch": arch, "clip": str(gen_clip)})
    return {"data": held_out, "clip": root / "eval-clip", "model": model, "root": root}


def run_eval(setup, out, *extra):
    return t2i(["eval", "--model", str(setup["model"]), "--prompts", str(setup["data"]), "--clip",
                str(setup["clip"]), "--n", "1", "--out", str(out), *extra])


def test_eval_on_a_captioned_folder_end_to_end(setup, tmp_path, capsys):
    out = tmp_path / "e"
    assert run_eval(setup, out, "--metrics", "r_precision,clip_score,clip_fid,clip_kid") == 0
    printed = capsys.readouterr().out
    assert "6 candidates per caption" in printed and "real-vs-real floor" in printed
    report = json.loads((out / "metrics.json").read_text())
    m, floor = report["metrics"], report["real_vs_real_floor"]
    assert report["data"] == "captioned" and report["held_out"]["n_items"] == 12
    assert report["held_out"]["distinct_captions"] == 6
    rp = m["r-precision"]
    assert rp["num_candidates"] == 6 and rp["n_captions"] == 6 and 0 <= rp["r_precision"] <= 1
    assert rp["ci95"][0] <= rp["r_precision"] <= rp["ci95"][1] and "real" in rp
    assert m["clip-score"]["n"] == 12 and m["clip-score"]["real"]["n"] == 12
    for name in ("clip-fid", "clip-kid"):  # 12 items: halves of 6, generated and floor on the same count
        assert m[name]["n_fake"] == floor[name]["n_fake"] == m[name]["n_real"] == 6
        assert m[name]["features"].startswith("clip:")
    with Image.open(out / "grid.png") as grid:
        assert grid.size[0] > 2 * 96
    assert run_eval(setup, tmp_path / "again", "--metrics", "r_precision,clip_score,clip_fid,clip_kid") == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["metrics"] == m and again["real_vs_real_floor"] == floor  # deterministic under the seed


def test_auto_metrics_on_captioned_data_are_the_data_agnostic_ones(setup, tmp_path):
    assert run_eval(setup, tmp_path / "auto", "--real-n", "8") == 0
    report = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert set(report["metrics"]) == {"r-precision", "clip-score", "clip-fid", "clip-kid", "clip-retrieval"}
    assert report["held_out"]["n_items"] == 8
    retrieval = report["metrics"]["clip-retrieval"]
    assert {"image_to_text_R@1", "text_to_image_R@10"} <= set(retrieval) and "image_to_text_R@5" in retrieval["real"]


def test_eval_clip_reads_a_single_split_folder_as_the_held_out_split(setup, tmp_path):
    out = tmp_path / "clip-eval"
    assert t2i(["eval", "clip", "--model", str(setup["clip"]), "--data", str(setup["data"]), "--out", str(out),
                "--order", "off"]) == 0
    split = json.loads((out / "eval.json").read_text())["splits"]["test"]  # the folder's one split, named as given
    assert split["retrieval"]["num_unique_captions"] == 6 and "image_to_text_R@10" in split["retrieval"]


def test_eval_clip_reads_a_csv_with_other_column_names(setup, tmp_path, capsys):
    rows = [json.loads(line) for line in (setup["data"] / "metadata.jsonl").read_text().splitlines()]
    table = tmp_path / "held_out.csv"
    table.write_text("path,description\n" + "".join(f"{setup['data'] / r['file_name']},{r['text']}\n" for r in rows))
    out = tmp_path / "clip-eval"
    assert t2i(["eval", "clip", "--model", str(setup["clip"]), "--data", str(table), "--image-column", "path",
                "--caption-column", "description", "--out", str(out), "--order", "off"]) == 0
    split = json.loads((out / "eval.json").read_text())["splits"]["held_out.csv"]
    assert split["retrieval"]["num_unique_captions"] == 6
    assert "held_out.csv" in capsys.readouterr().out


def test_evaluation_reads_user_images_as_the_model_was_trained(setup, tmp_path, capsys):
    """Regression: eval and eval clip read held-out images centre-cropped on black with the source's default
    columns whatever the model was trained with (--resize pad, --background white, other columns): the reals
    scored against it were not the images it learned. ``auto`` (the default) now reads its run's config.json."""
    import shutil

    from t2i.data import as_trained

    run = tmp_path / "run"
    shutil.copytree(setup["clip"] / "model", run / "model")
    trained = {"resize": "pad", "background": "white", "image_column": "path", "caption_column": "description"}
    (run / "config.json").write_text(json.dumps({"steps": 1, **trained}))
    rows = [json.loads(line) for line in (setup["data"] / "metadata.jsonl").read_text().splitlines()]
    table = tmp_path / "held_out.csv"
    table.write_text("path,description\n" + "".join(f"{setup['data'] / r['file_name']},{r['text']}\n" for r in rows))
    assert t2i(["eval", "clip", "--model", str(run / "model"), "--data", str(table), "--out", str(tmp_path / "e"),
                "--order", "off"]) == 0  # the columns came from the run: no --image-column needed
    assert ("reading the images as the model was trained: --image-column path --caption-column description "
            f"--resize pad --background white (from {run / 'config.json'})") in capsys.readouterr().out
    given = {"resize": "stretch", "background": "auto", "image_column": "", "caption_column": ""}
    assert as_trained(str(table), given, str(run))[0] == {**trained, "resize": "stretch"}  # what is given wins
    # a table's columns are no shard's members: a run trained on a table reads shards with the shards' own
    from train.data import main as data_main

    (run / "config.json").write_text(json.dumps({"steps": 1, "data": str(table), **trained}))
    assert data_main(["shards", str(setup["data"]), "--out", str(tmp_path / "shards")]) == 0
    assert as_trained(str(tmp_path / "shards"), {}, str(run))[0] == {**READING_DEFAULTS, "resize": "pad",
                                                                      "background": "white"}
    assert as_trained(str(table), {}, str(run))[0] == trained  # another table: its columns as trained
    assert t2i(["eval", "clip", "--model", str(run / "model"), "--data", str(tmp_path / "shards"), "--out",
                str(tmp_path / "e2"), "--order", "off"]) == 0
    (run / "config.json").write_text(json.dumps({"resize": "random-crop"}))
    assert as_trained(str(table), {}, str(run / "model"))[0]["resize"] == "center-crop"  # no random crops
    assert as_trained("shapes", {}, str(run))[1] == ""  # shapes is drawn one way: nothing taken from a run
    assert as_trained(str(table), {}, "shapes-clip", "") == (dict(READING_DEFAULTS), "")  # not a run folder
    with pytest.raises(ValueError, match=r"--resize must be auto \(as the model was trained\) or one of"):
        as_trained(str(table), {"resize": "foo"}, str(run))


def test_bad_input_is_one_line_naming_the_fix(setup, tmp_path, capsys):
    no_text = setup["root"] / "no-text"
    no_text.mkdir()
    coloured("red").save(no_text / "0.png")
    (no_text / "metadata.jsonl").write_text(json.dumps({"file_name": "0.png", "caption": "a red square"}) + "\n")
    one = write_captioned(setup["root"] / "one-caption", ["a red square"] * 4)
    cases = [
        (["--prompts", str(no_text)], "--caption-column"),
        (["--prompts", str(one)], "at least 2"),
        (["--clip", str(setup["model"])], "is not a CLIP folder"),
        (["--clip", ""], "need --clip"),
        (["--metrics", "prompt-accuracy"], "are not measures for a captioned source"),
    ]
    for extra, message in cases:
        argv = ["eval", "--model", str(setup["model"]), "--prompts", str(setup["data"]), "--clip", str(setup["clip"]),
                "--out", str(tmp_path / "x"), *extra]
        assert t2i(argv) == 2, extra
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (extra, err)
    assert t2i(["eval", "--images", str(setup["data"]), "--metrics", "r-precision", "--out", str(tmp_path / "y")]) == 2
    assert "held-out captioned split" in capsys.readouterr().err


def test_held_out_split_of_a_csv_and_a_saved_dataset_dict(setup, tmp_path):
    from t2i.metrics.captioned import load_held_out

    rows = [json.loads(line) for line in (setup["data"] / "metadata.jsonl").read_text().splitlines()]
    csv = tmp_path / "held_out.csv"  # open_clip's columns, paths relative to the CSV
    csv.write_text("filepath,title\n" + "".join(f"{setup['data'] / r['file_name']},{r['text']}\n" for r in rows))
    held_out, _ = load_held_out(str(csv), size=16)
    assert held_out.source == str(csv) and len(held_out.captions) == 12 and held_out.images.shape == (12, 3, 16, 16)
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_dict({"image": [str(setup["data"] / r["file_name"]) for r in rows],
                                        "text": [r["text"] for r in rows]}).cast_column("image", datasets.Image())
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": table.select(range(8)), "test": table.select(range(8, 12))}).save_to_disk(saved)
    held_out, _ = load_held_out(str(saved), size=16)  # a DatasetDict: its test split
    assert held_out.source.endswith(":test") and held_out.captions == [r["text"] for r in rows[8:]]
