"""Captions in a table of one row per caption (Flickr8k's ``captions.txt`` beside ``Images/``, COCO-style
``metadata.jsonl`` rows): one item per image with all its captions, the images found in their subfolder, other
separators, and retrieval that counts every caption of an image as right.

Regressions: ``captions.txt`` was "not a recognised dataset"; its bare file names were all missing (the images
are in ``Images/``); the folder itself was read as one class captioned "Images"; each row was an item, so a CLIP
batch could hold one picture twice as two pairs, and retrieval counted an image's other captions as wrong."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from t2i.clip.evaluate import retrieval_metrics
from t2i.data import describe_source, load_dataset, require_captions
from train.cli import main as t2i

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}
TINY = ["--steps", "2", "--batch-size", "4", "--log-every", "1", "--checkpoint-every", "0"]


def captions_of(colour: str) -> list[str]:
    return [f"a {colour} square", f"a square painted {colour}", f"{colour}"]


@pytest.fixture()
def flickr(tmp_path):
    """``flickr/Images/<colour>.png`` and ``flickr/captions.txt`` (``image,caption``, three rows per image)."""
    root = tmp_path / "flickr"
    (root / "Images").mkdir(parents=True)
    lines = ["image,caption"]
    for colour, rgb in COLOURS.items():
        Image.new("RGB", (12, 10), rgb).save(root / "Images" / f"{colour}.png")
        lines += [f"{colour}.png,{c}" for c in captions_of(colour)]
    (root / "captions.txt").write_text("\n".join(lines) + "\n")
    return root


def read(source, **options):
    return load_dataset(source, size=8, image_column="image", caption_column="caption", **options)


def test_flickr_captions_txt_is_one_item_per_image_with_every_caption(flickr):
    assert describe_source(flickr / "captions.txt") == "csv"
    ds = read(flickr / "captions.txt")
    assert len(ds) == len(COLOURS)
    assert ds.caption_lists == [captions_of(c) for c in COLOURS]
    assert [ds[i]["text"] for i in range(len(ds))] == [f"a {c} square" for c in COLOURS]  # evaluation: the first
    notes = " ".join(ds.report.notes)
    assert "image paths read in Images/" in notes and "12 rows name 4 images" in notes and "(3 rows each" in notes
    drawn = read(flickr / "captions.txt", draw_caption=True, seed=0)
    seen = set()
    for epoch in range(12):
        drawn.set_epoch(epoch)
        seen.add(drawn[0]["text"])
    assert seen == set(captions_of("red"))  # training draws among the image's captions


def test_a_table_whose_files_are_beside_it_is_read_there(flickr):
    (flickr / "Images" / "captions.csv").write_text("image,caption\nred.png,a red square\n")
    ds = read(flickr / "Images" / "captions.csv")
    assert len(ds) == 1 and not ds.report.notes  # found beside the table: nothing inferred


def test_a_txt_without_separators_is_not_a_table(tmp_path):
    (tmp_path / "prompts.txt").write_text("a red circle\n")
    with pytest.raises(ValueError, match=r"not a recognised dataset.*\.csv/\.tsv \(or \.txt\) table"):
        describe_source(tmp_path / "prompts.txt")


def test_pipe_separated_results_csv_with_spaced_column_names(flickr):
    """Flickr30k's results.csv: ``image_name| comment_number| comment``."""
    rows = ["image_name| comment_number| comment"]
    rows += [f"{colour}.png| {k}| {c}" for colour in COLOURS for k, c in enumerate(captions_of(colour))]
    (flickr / "results.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(flickr / "results.csv", size=8, image_column="image_name", caption_column="comment")
    assert len(ds) == 4 and ds.caption_lists[1] == captions_of("green")


def test_each_row_of_an_image_is_checked_on_its_own(tmp_path):
    for colour, rgb in COLOURS.items():
        Image.new("RGB", (8, 8), rgb).save(tmp_path / f"{colour}.png")
    rows = [{"file_name": "red.png", "text": "a red square", "label": 0},
            {"file_name": "red.png", "text": "  ", "label": 0},  # empty: this caption goes, the image stays
            {"file_name": "red.png", "text": "a square painted red", "label": 2},  # another label: a bad row
            {"file_name": "blue.png", "text": "", "label": 1},  # blue's only row is bad: no blue item
            {"file_name": "green.png", "text": ["green", "a green square"], "label": 1},
            {"file_name": "green.png", "text": "a square painted green", "label": 1}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_dataset(tmp_path, size=8)
    assert ds.caption_lists == [["a red square"], ["green", "a green square", "a square painted green"]]
    assert ds.labels == [0, 1]
    assert ds.report.counts == {"empty_caption": 2, "bad_row": 1}
    assert ds.report.summary().splitlines()[0].endswith(": 6 rows (3 images) checked, 3 skipped")  # not "6 items"
    assert "label 2, while an earlier row of this image has 0" in ds.report.summary()
    assert len(load_dataset(tmp_path, size=8, n=1)) == 1  # n counts images


def test_one_class_folder_beside_a_table_is_not_a_class(flickr, capsys):
    ds = load_dataset(flickr, size=8)
    assert not ds.captioned and ds.class_names == [] and set(ds.labels) == {-1}
    notes = " ".join(ds.report.notes)
    assert "one class folder (Images/)" in notes and f"--data {flickr / 'captions.txt'}" in notes
    with pytest.raises(ValueError, match="give the table beside them as --data"):
        require_captions(ds, "clip")
    assert t2i(["train", "clip", "--preset", "t2i-tiny", "--data", str(flickr), *TINY,
                "--out", str(flickr.parent / "refused")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(flickr / "captions.txt") in err


def test_retrieval_counts_every_caption_of_an_image():
    """Image 0 is nearest its second caption: right at R@1 with its captions, wrong with only its first."""
    unique = ["a", "a2", "b"]
    text = torch.eye(3)  # (U, P): one direction per caption
    images = torch.tensor([[0.2, 1.0, 0.0], [0.0, 0.0, 1.0]])  # (N, P)
    with_all = retrieval_metrics(images, [["a", "a2"], "b"], text, unique)
    first_only = retrieval_metrics(images, ["a", "b"], text, unique)
    assert with_all["image_to_text_R@1"] == 1.0 and first_only["image_to_text_R@1"] == 0.5
    assert with_all["text_to_image_R@1"] == 1.0  # every caption ranks its image first


def test_clip_trains_and_is_evaluated_on_a_captions_txt(flickr, tmp_path, capsys):
    out = tmp_path / "clip"
    table = str(flickr / "captions.txt")
    assert t2i(["train", "clip", "--preset", "t2i-tiny", "--data", table, "--image-column", "image",
                "--caption-column", "caption", "--size", "16", *TINY, "--out", str(out)]) == 0
    assert "12 rows name 4 images" in capsys.readouterr().out
    assert t2i(["eval", "clip", "--model", str(out / "model"), "--data", table, "--out", str(tmp_path / "ev")]) == 0
    retrieval = json.loads((tmp_path / "ev" / "eval.json").read_text())["splits"]["captions.txt"]["retrieval"]
    assert retrieval["num_images"] == 4 and retrieval["num_unique_captions"] == 12


def test_a_table_without_either_default_column_names_both_options_at_once(flickr):
    with pytest.raises(ValueError, match=r"no 'filepath' or 'title' column \(set --image-column and --caption-column"):
        load_dataset(flickr / "captions.txt")


def test_captions_in_several_columns_are_one_images_captions(flickr, tmp_path):
    """Some hub copies of Flickr8k keep an image's five captions in five columns (``caption_0`` ... ``caption_4``):
    ``--caption-column caption_0,caption_1,caption_2`` reads them as one list, in a table and in ``datasets``."""
    import datasets

    rows = ["image,caption_0,caption_1,caption_2"]
    rows += [f"{c}.png,{','.join(captions_of(c))}" for c in COLOURS]
    (flickr / "wide.csv").write_text("\n".join(rows) + "\n")
    columns = "caption_0, caption_1,caption_2"
    ds = load_dataset(flickr / "wide.csv", size=8, image_column="image", caption_column=columns)
    assert ds.caption_lists == [captions_of(c) for c in COLOURS]
    table = datasets.Dataset.from_dict(
        {"image": [str(flickr / "Images" / f"{c}.png") for c in COLOURS],
         **{f"caption_{k}": [captions_of(c)[k] if k or c != "red" else "" for c in COLOURS] for k in range(3)}},
        features=datasets.Features({"image": datasets.Image(), **{f"caption_{k}": datasets.Value("string")
                                                                   for k in range(3)}}))
    table.save_to_disk(str(tmp_path / "hub"))
    hub = load_dataset(tmp_path / "hub", size=8, caption_column=columns)
    assert hub.caption_lists[0] == captions_of("red")[1:]  # a blank caption drops, the others stay
    assert hub.caption_lists[1:] == [captions_of(c) for c in list(COLOURS)[1:]]
    with pytest.raises(ValueError, match="no 'caption_9' column"):
        load_dataset(tmp_path / "hub", size=8, caption_column="caption_0,caption_9")


def test_a_datasets_table_of_one_row_per_caption_gives_one_item_per_image(tmp_path):
    """Regression: a ``datasets`` table with an ``Image`` feature and a row per caption (COCO-style hub copies)
    gave one item per row. Rows are grouped by the image's file name and bytes: ``save_to_disk`` keeps only the
    name, and two different images may share one (``0.png`` in two class folders)."""
    datasets = pytest.importorskip("datasets")
    files = {}
    for colour, rgb in COLOURS.items():
        (tmp_path / colour).mkdir()
        Image.new("RGB", (12, 10), rgb).save(tmp_path / colour / "0.png")  # one name, four images
        files[colour] = str(tmp_path / colour / "0.png")
    rows = [(colour, caption) for colour in COLOURS for caption in captions_of(colour)]
    rows.insert(2, ("yellow", "a yellow square, listed early"))  # an image's rows need not be adjacent
    table = datasets.Dataset.from_dict({"image": [files[c] for c, _ in rows], "caption": [t for _, t in rows]},
                                       features=datasets.Features({"image": datasets.Image(),
                                                                   "caption": datasets.Value("string")}))
    table.save_to_disk(str(tmp_path / "saved"))
    ds = load_dataset(tmp_path / "saved", size=8, caption_column="caption")
    assert len(ds) == 4 and ds.caption_lists[0] == captions_of("red")
    assert ds.caption_lists[1] == ["a yellow square, listed early", *captions_of("yellow")]
    for i, colour in enumerate(["red", "yellow", "green", "blue"]):  # each item is its own colour's picture
        mean = ds[i]["image"].mean(dim=(1, 2)) * 255
        assert torch.allclose(mean, torch.tensor(COLOURS[colour], dtype=torch.float), atol=2)
    assert ds.report.summary().splitlines()[0].endswith(": 13 rows (4 images) checked, 0 skipped")
    assert "13 rows name 4 images" in " ".join(ds.report.notes)
    first_two = load_dataset(tmp_path / "saved", size=8, caption_column="caption", n=2)  # n counts images
    assert first_two.caption_lists == ds.caption_lists[:2] and first_two[1]["image"].equal(ds[1]["image"])


def test_shards_keep_every_caption_of_an_image_from_any_source(flickr, tmp_path):
    """Regression: `t2i data shards` took no columns, wrote an image's first caption only, crashed on a `datasets`
    table, and copied a GIF the shard reader then skipped; now one caption per line of key.txt, read back as a list."""
    import tarfile

    datasets = pytest.importorskip("datasets")
    from t2i.data.shards import ShardDataset
    from t2i.data.transforms import Augment
    from train.data import main as data_main

    Image.new("P", (12, 10), 3).save(flickr / "Images" / "grey.gif")
    with (flickr / "captions.txt").open("a") as f:
        f.write('grey.gif,"a grey\nsquare"\n')  # a line break inside a quoted caption
    out = tmp_path / "from-table"
    assert data_main(["shards", str(flickr / "captions.txt"), "--image-column", "image", "--caption-column", "caption",
                      "--out", str(out)]) == 0
    with tarfile.open(out / "shard-00000.tar") as tar:
        names = tar.getnames()
        assert tar.extractfile("000000.txt").read().decode() == "\n".join(captions_of("red"))
        assert tar.extractfile("000004.txt").read().decode() == "a grey square"
    assert "000004.png" in names and len(names) == 10  # the GIF as PNG, which the reader takes
    drawn = ShardDataset(out, size=8, augment=Augment(draw=True))

    def first_caption(epoch: int) -> str:
        drawn.set_epoch(epoch)
        return next(iter(drawn))["text"]

    assert {first_caption(epoch) for epoch in range(8)} == set(captions_of("red"))  # one drawn per epoch
    assert [item["text"] for item in ShardDataset(out, size=8)][:4] == [captions_of(c)[0] for c in COLOURS]
    from t2i.clip.evaluate import encode_dataset
    from t2i.clip.testing import tiny_clip

    _, every = encode_dataset(tiny_clip(), ShardDataset(out, size=8), progress=False, every_caption=True)
    assert every[:4] == [captions_of(c) for c in COLOURS]  # retrieval counts each of them, as on the table

    table = datasets.Dataset.from_dict(
        {"image": [str(flickr / "Images" / f"{c}.png") for c in COLOURS for _ in range(3)],
         "caption": [t for c in COLOURS for t in captions_of(c)]},
        features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}))
    table.save_to_disk(str(tmp_path / "saved"))
    assert data_main(["shards", str(tmp_path / "saved"), "--caption-column", "caption",
                      "--out", str(tmp_path / "from-hf")]) == 0
    with tarfile.open(tmp_path / "from-hf" / "shard-00000.tar") as tar, tarfile.open(out / "shard-00000.tar") as ref:
        for name in ("000000.png", "000000.txt", "000003.png", "000003.txt"):  # the same bytes from either source
            assert tar.extractfile(name).read() == ref.extractfile(name).read()
