"""Folders of images without metadata: torchvision's ImageFolder layout (class subfolders, labels and
captions from their names), loose images (unconditional only), train/ test/ splits, and the same data as
`datasets`' imagefolder writes it (image + ClassLabel, no text)."""

import json

import pytest
from PIL import Image

from t2i.data import describe_source, has_test_split, held_out_split, load_dataset, require_captions
from train.cli import main as t2i

COLOURS = {"red_apples": (200, 30, 30), "green-leaves": (30, 160, 40), "sky": (40, 60, 200)}
TINY = ["--steps", "2", "--batch-size", "4", "--log-every", "1", "--checkpoint-every", "0"]


def write_classes(root, per_class, names=tuple(COLOURS), size=(20, 14)):
    """``root/<class>/<i>.png``: small images of each class's colour (RGBA, so they are converted)."""
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGBA", size, (*COLOURS[name], 255)).save(root / name / f"{i}.png")


@pytest.fixture
def classes(tmp_path):
    root = tmp_path / "classes"
    write_classes(root / "train", 3)
    write_classes(root / "test", 1, names=("sky", "red_apples"))  # a split without every class
    return root


def test_class_folders_give_labels_names_and_captions_spread_over_the_classes(classes):
    assert describe_source(classes) == "folder"
    assert held_out_split(classes) == "test" and has_test_split(classes)
    train = load_dataset(classes, split="train", size=8)
    assert train.class_names == ["green-leaves", "red_apples", "sky"] and train.num_classes == 3
    items = [train[i] for i in range(len(train))]
    # items alternate between classes, so --n takes from every one of them
    assert [item["label"] for item in items[:3]] == [0, 1, 2]
    assert [item["text"] for item in items[:3]] == ["green leaves", "red apples", "sky"]
    for item in items:  # each item is its class's colour: the label belongs to the image
        r, g, b = (item["image"][c].mean().item() for c in range(3))
        assert max((r, g, b)) == {0: g, 1: r, 2: b}[item["label"]]
    summary = train.report.summary()
    assert "labels and captions from the 3 class folders (green-leaves 3, red_apples 3, sky 3)" in summary
    test = load_dataset(classes, split="test", size=8)  # the class index is the same in every split
    assert test.class_names == train.class_names
    assert sorted(item["label"] for item in (test[0], test[1])) == [1, 2]
    assert len(load_dataset(classes, split="train", size=8, n=2)) == 2


def test_loose_images_load_unlabelled_for_unconditional_trainers_and_text_trainers_refuse_them(tmp_path, capsys):
    flat = tmp_path / "flat"
    write_classes(tmp_path / "tmp", 3)
    flat.mkdir()
    for i, path in enumerate(sorted((tmp_path / "tmp").rglob("*.png"))):
        path.rename(flat / f"{i}.png")
    (flat / "sub").mkdir()
    Image.new("RGB", (9, 9), (1, 2, 3)).save(flat / "sub" / "deeper.jpg")  # loose images make it unlabelled
    ds = load_dataset(flat, size=8)
    assert len(ds) == 10 and ds.num_classes == 0 and ds.captioned is False and ds[0]["text"] == ""
    assert held_out_split(flat) == "train" and not has_test_split(flat)
    assert "no class folders: images without captions or labels" in ds.report.summary()
    with pytest.raises(ValueError, match="has no captions .* which ldm needs: add a metadata.jsonl"):
        require_captions(ds, "ldm")
    assert t2i(["train", "dcgan", "--data", str(flat), "--g-base", "8", "--d-base", "8",
                "--out", str(tmp_path / "dcgan"), *TINY]) == 0
    assert (tmp_path / "dcgan" / "model").is_dir()
    assert t2i(["train", "tgan", "--data", str(flat), "--clip", "shapes-clip", "--out", str(tmp_path / "tgan"),
                *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has no captions" in err and "which tgan needs" in err and not (tmp_path / "tgan" / "model").exists()


def test_cgan_trains_on_class_folders_and_names_its_classes(classes, tmp_path, capsys):
    out = tmp_path / "cgan"
    assert t2i(["train", "cgan", "--data", str(classes), "--g-base", "8", "--d-base", "8", "--out", str(out),
                *TINY]) == 0
    assert "labels and captions from the 3 class folders" in capsys.readouterr().out
    from gan_baselines.registry import load_generator

    generator = load_generator(out / "model")
    assert generator.class_names == ["green-leaves", "red_apples", "sky"]
    # t2i sample takes the classes by name as well as by number, the same images for the same seed
    for labels, folder in (("sky,red_apples", "by_name"), ("2,1", "by_number")):
        assert t2i(["sample", "--model", str(out / "model"), "--labels", labels, "--n", "2",
                    "--out", str(tmp_path / folder)]) == 0
    by_name, by_number = ((tmp_path / f / "metadata.jsonl").read_text() for f in ("by_name", "by_number"))
    assert by_name == by_number and '"text": "sky"' in by_name and '"label": 1' in by_name
    grids = [Image.open(tmp_path / folder / "grid.png").tobytes() for folder in ("by_name", "by_number")]
    assert grids[0] == grids[1]
    assert t2i(["sample", "--model", str(out / "model"), "--labels", "clouds", "--out", str(tmp_path / "x")]) == 2
    assert "'clouds' is neither a number nor one of the model's classes (green-leaves, red_apples, sky)" in \
        capsys.readouterr().err
    # t2i eval scores it on the held-out class folders as it scores a text model: each image's class is drawn
    assert t2i(["eval", "--model", str(out / "model"), "--prompts", str(classes), "--clip", "shapes-clip",
                "--metrics", "r-precision,clip-score", "--out", str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert scores["r-precision"]["n_images"] == 2 and scores["r-precision"]["n_captions"] == 2
    other = tmp_path / "other"
    write_classes(other, 1, names=("sky",))
    (other / "clouds").mkdir()
    Image.new("RGB", (8, 8), (250, 250, 250)).save(other / "clouds" / "0.png")
    capsys.readouterr()
    assert t2i(["eval", "--model", str(out / "model"), "--prompts", str(other), "--clip", "shapes-clip",
                "--metrics", "r-precision", "--out", str(tmp_path / "eval2")]) != 0
    assert "held-out captions ['clouds'] name none of its classes" in capsys.readouterr().err


def test_columns_are_refused_on_a_folder_without_metadata(classes):
    with pytest.raises(ValueError, match="no metadata.jsonl, so no columns: drop --caption-column"):
        load_dataset(classes, caption_column="caption")


def test_a_folder_without_images_is_not_a_dataset(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="not a recognised dataset: no images in it"):
        describe_source(tmp_path / "empty")


def test_datasets_imagefolder_without_text_is_captioned_by_its_class_names(classes, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    saved = tmp_path / "saved"
    datasets.load_dataset("imagefolder", data_dir=str(classes)).save_to_disk(str(saved))
    ds = load_dataset(saved, split="train", size=8)
    assert ds.class_names == ["green-leaves", "red_apples", "sky"] and ds.captioned
    assert {(ds[i]["label"], ds[i]["text"]) for i in range(len(ds))} == {
        (0, "green leaves"), (1, "red apples"), (2, "sky")}
    assert "captions from the 'label' column's 3 class names" in ds.report.summary()
    plain = datasets.Dataset.from_dict({"image": [Image.new("RGB", (8, 8))] * 2},
                                       features=datasets.Features({"image": datasets.Image()}))
    plain.save_to_disk(str(tmp_path / "plain"))
    ds = load_dataset(tmp_path / "plain", size=8)
    assert not ds.captioned and ds[0]["text"] == ""
    with pytest.raises(ValueError, match="no 'caption' column"):  # a column named but absent is still an error
        load_dataset(saved, split="train", caption_column="caption")


def test_validate_reads_every_split_of_class_folders(classes, capsys):
    assert t2i(["data", "validate", str(classes)]) == 0
    out = capsys.readouterr().out
    assert f"{classes / 'train'}: 9 items checked" in out and f"{classes / 'test'}: 2 items checked" in out
    assert "OK: no problems found" in out


def test_images_beside_the_split_folders_are_named_not_dropped_silently(classes, tmp_path):
    """Regression: images at the top of a folder with train/ test/ were left out without a word."""
    Image.new("RGB", (8, 8), "white").save(classes / "stray.png")
    notes = " ".join(load_dataset(classes, size=8).report.notes)
    assert f"1 image(s) at the top of {classes} lie outside its splits (test/, train/)" in notes
    assert "e.g. stray.png" in notes
    captioned = tmp_path / "captioned"  # the same with metadata.jsonl in each split
    for split in ("train", "test"):
        (captioned / split).mkdir(parents=True)
        Image.new("RGB", (8, 8), "red").save(captioned / split / "a.png")
        (captioned / split / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "red"}) + "\n")
    assert not load_dataset(captioned, size=8).report.notes
    Image.new("RGB", (8, 8), "white").save(captioned / "b.jpg")
    assert "outside its splits (test/, train/)" in " ".join(load_dataset(captioned, split="test", size=8).report.notes)


def test_caption_files_beside_the_images_caption_them(tmp_path, capsys):
    """photo.png + photo.txt (kohya's sd-scripts, Reed et al.'s CUB text files: one caption per line): the folder was
    read as images without captions, so no text trainer took it."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for name, colour in (("a", "red"), ("b", "green"), ("c", "blue"), ("d", "white"), ("e", "black")):
        Image.new("RGB", (8, 8), colour).save(flat / f"{name}.png")
    (flat / "a.txt").write_text("a red square\n\na square, red\n")  # two captions
    (flat / "b.caption").write_text("a green square")  # the other extension kohya uses
    (flat / "c.txt").write_text("a blue square")
    (flat / "d.txt").write_text("  \n")  # empty: reported, skipped
    ds = load_dataset(flat, size=8)  # e.png has none: reported, skipped
    assert ds.captioned and ds.caption_lists == [["a red square", "a square, red"], ["a green square"],
                                                 ["a blue square"]]
    summary = ds.report.summary()
    assert "captions from the caption files beside the images" in summary and "a table lies" not in summary
    assert ds.report.counts == {"bad_row": 1, "empty_caption": 1}
    assert "e.png  (no caption file e.txt beside it, while other images have one" in summary
    assert t2i(["train", "clip", "--preset", "t2i-tiny", "--data", str(flat), *TINY[:2], "--batch-size", "2",
                "--out", str(tmp_path / "clip")]) == 0
    capsys.readouterr()

    classes = tmp_path / "classes"  # class folders still label; the files caption
    write_classes(classes, 2)
    for name in COLOURS:
        for i in range(2):
            (classes / name / f"{i}.txt").write_text(f"picture {i} of {name}")
    ds = load_dataset(classes, size=8)
    assert ds.class_names == sorted(COLOURS) and ds.labels[:3] == [0, 1, 2]
    assert ds.captions[:3] == ["picture 0 of green-leaves", "picture 0 of red_apples", "picture 0 of sky"]
    assert "; labels from the 3 class folders" in ds.report.summary()


def test_shards_of_every_split(classes, tmp_path, capsys):
    """`t2i data shards --split all` converts each split into its own folder (it converted one split only)."""
    from train.data import main as data_main

    assert data_main(["shards", str(classes), "--split", "all", "--out", str(tmp_path / "sh")]) == 0
    said = capsys.readouterr().out
    assert "wrote 9 samples" in said and f"give --data {tmp_path / 'sh'} to any trainer" in said
    train, test = (load_dataset(tmp_path / "sh" / split, size=8) for split in ("train", "test"))
    assert sorted(item["label"] for item in test) == [1, 2]  # the class index of the folders, in each split
    assert sorted(item["text"] for item in train) == sorted(["green leaves", "red apples", "sky"] * 3)
    # regression: the folder it wrote was "not a recognised dataset"; now it is read as its splits
    from t2i.data import has_test_split, held_out_split

    written = tmp_path / "sh"
    assert [sorted(i["text"] for i in load_dataset(written, split=s, size=8)) for s in ("train", "test")] == \
        [sorted(i["text"] for i in part) for part in (train, test)]
    assert held_out_split(written) == "test" and has_test_split(written)
    with pytest.raises(ValueError, match=r"holds the shard splits \['test', 'train'\], not 'validation'"):
        load_dataset(written, split="validation", size=8)
