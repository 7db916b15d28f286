"""Image-to-image data in the layouts the papers' datasets ship, with images of any size and mode."""

import json

import pytest
import torch
from PIL import Image

from t2i.data.translation import has_split, load_held_out, load_translation

RED, BLUE = (200, 0, 0), (0, 0, 200)


def _pix2pix_layout(root, sizes={"train": 5, "test": 3}, half=(48, 48)):
    """facades/-like: train/ and test/ of side-by-side A|B JPEGs (A red, B blue), larger than the model."""
    for split, n in sizes.items():
        (root / split).mkdir(parents=True)
        for i in range(n):
            ab = Image.new("RGB", (2 * half[0], half[1]), RED)
            ab.paste(BLUE, (half[0], 0, 2 * half[0], half[1]))
            ab.save(root / split / f"{i}.jpg", quality=95)
    return root


def _cyclegan_layout(root):
    """horse2zebra/-like: trainA of RGBA drawings of several sizes, trainB of greyscale JPEGs, other names."""
    for name in ("trainA", "trainB", "testA", "testB"):
        (root / name).mkdir(parents=True)
    for i, size in enumerate([(40, 40), (64, 20), (20, 64), (33, 47), (90, 90)]):
        drawing = Image.new("RGBA", size, (0, 0, 0, 0))  # transparent around a green dot
        drawing.paste((0, 255, 0, 255), (size[0] // 2 - 2, size[1] // 2 - 2, size[0] // 2 + 2, size[1] // 2 + 2))
        drawing.save(root / ("testA" if i == 4 else "trainA") / f"drawing{i}.png")
    for i in range(7):
        Image.new("L", (50 + i, 60), 90 + 10 * i).save(root / ("testB" if i == 6 else "trainB") / f"photo{i}.jpg")
    return root


def test_pix2pix_layout_is_read_at_any_size_with_its_test_split(tmp_path):
    root = _pix2pix_layout(tmp_path / "facades")
    train = load_translation(root, size=32)
    assert (len(train), tuple(train.A.shape[1:])) == (5, (3, 32, 32)) and train.paired
    a, b = train[0]["A"].mean((1, 2)), train[0]["B"].mean((1, 2))  # each half is its own image
    assert a[0] > 0.7 and a[2] < 0.1 and b[2] > 0.7 and b[0] < 0.1
    assert has_split(root, "test") and not has_split(tmp_path, "test")
    held_out, split = load_held_out(root, size=32)
    assert (split, len(held_out), held_out.paired) == ("test", 3, True)


def test_cyclegan_layout_reads_both_domains_whole_and_reports_conversions(tmp_path):
    root = _cyclegan_layout(tmp_path / "drawing2photo")
    data = load_translation(root, size=32, unpaired=True, resize="pad", background="white")
    assert (len(data.A), len(data.B), data.paired) == (4, 6, False)  # no half thrown away
    assert tuple(data.A[0][:, 0, 0].tolist()) == (255, 255, 255)  # transparency and padding on white
    assert tuple(data.A[0][:, 16, 16].tolist())[1] > 200  # the green dot in the middle
    summary = data.report.summary()
    assert "RGBA -> RGB, transparent pixels onto white (--background): 4" in summary
    assert "L -> RGB: 6" in summary
    held_out, split = load_held_out(root, size=32, resize="pad", background="white")
    assert (split, len(held_out.A), len(held_out.B), held_out.paired) == ("test", 1, 1, False)
    assert (held_out.records[0]["file_name"], held_out.records_b[0]["file_name"]) == ("drawing4.png", "photo6.jpg")
    cropped = load_translation(root, size=32, unpaired=True)  # the default centre crop cuts the tall ones
    assert "not square: 7 of 10 images" in cropped.report.summary()  # 3 drawings, 4 photos of 50-53 x 60
    with pytest.raises(ValueError, match="same file names for paired data"):
        load_translation(root, size=32)  # pix2pix needs partners


def test_a_bad_file_skips_its_pair_whole_and_strict_refuses(tmp_path):
    root = tmp_path / "pairs"
    for side in ("A", "B"):
        (root / side).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40, 40), RED if side == "A" else BLUE).save(root / side / f"{i}.png")
    (root / "B" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    data = load_translation(root, size=32)
    assert len(data) == 3 and data.report.problems == 1 and "2.png" in data.report.summary()
    assert all(float(data[i]["B"][2].mean()) > 0.7 for i in range(3))  # partners stayed together
    with pytest.raises(ValueError, match="strict mode"):
        load_translation(root, size=32, strict=True)


def test_random_flip_flips_a_pair_together(tmp_path):
    root = tmp_path / "pairs"
    for side in ("A", "B"):
        (root / side).mkdir(parents=True)
        half = Image.new("RGB", (32, 32), (0, 0, 0))
        half.paste((255, 255, 255), (0, 0, 16, 32))  # the left half white
        half.save(root / side / "0.png")
    data = load_translation(root, size=32, random_flip=1.0)
    item = data[0]
    assert float(item["A"][:, :, 16:].mean()) == 1.0 and torch.equal(item["A"], item["B"])  # both flipped
    assert float(load_translation(root, size=32)[0]["A"][:, :, :16].mean()) == 1.0  # no flip asked: as is


def test_pix2pix_and_cyclegan_train_on_the_papers_layouts_and_translate_reads_as_trained(tmp_path, capsys):
    from train import cyclegan, pix2pix
    from train import translate as translate_cmd

    tiny = ["--batch-size", "2", "--g-base", "4", "--d-base", "4", "--steps", "1", "--log-every", "1",
            "--sample-every", "0", "--checkpoint-every", "0", "--eval-n", "4"]
    root = _pix2pix_layout(tmp_path / "facades")
    assert pix2pix.main(tiny + ["--data", str(root), "--n", "0", "--resize", "pad", "--background", "white",
                                "--out", str(tmp_path / "p2p")]) == 0
    report = json.loads((tmp_path / "p2p" / "eval.json").read_text())
    assert report["split"] == "test" and 0 < report["psnr"] < 100
    config = json.loads((tmp_path / "p2p" / "model" / "config.json").read_text())
    assert (config["resize"], config["background"]) == ("pad", "white")
    tall = Image.new("RGBA", (20, 60), (0, 0, 0, 0))  # a user's input: another size, transparent
    tall.save(tmp_path / "tall.png")
    capsys.readouterr()
    assert translate_cmd.main(["--model", str(tmp_path / "p2p"), "--input", str(tmp_path / "tall.png"),
                               "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "as the model's training data was: --resize pad --background white" in said
    assert "transparent pixels onto white" in said
    assert Image.open(tmp_path / "out" / "tall.png").size == (32, 32)
    assert translate_cmd.main(["--model", str(tmp_path / "p2p"), "--input", str(tmp_path / "tall.png"),
                               "--out", str(tmp_path / "out2"), "--resize", "stretch", "--background", "black"]) == 0
    assert "as asked: --resize stretch --background black" in capsys.readouterr().out

    unpaired = _cyclegan_layout(tmp_path / "drawing2photo")
    assert cyclegan.main(tiny + ["--data", str(unpaired), "--n", "0", "--out", str(tmp_path / "cg")]) == 0
    said = capsys.readouterr().out
    assert "4 A and 6 B images (unpaired)" in said and "bad-data report" in said
    assert json.loads((tmp_path / "cg" / "eval.json").read_text())["split"] == "test"
    no_split = tmp_path / "flat"
    (no_split / "A").mkdir(parents=True)
    (no_split / "B").mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), RED).save(no_split / "A" / f"a{i}.png")
        Image.new("RGB", (32, 32), BLUE).save(no_split / "B" / f"b{i}.png")
    assert cyclegan.main(tiny + ["--data", str(no_split), "--n", "0", "--out", str(tmp_path / "cg-flat")]) == 0
    assert "has no test split" in capsys.readouterr().out
    assert json.loads((tmp_path / "cg-flat" / "eval.json").read_text())["split"] == "train"


def test_data_validate_reads_an_image_to_image_folder_split_by_split(tmp_path, capsys):
    from train import data

    root = _cyclegan_layout(tmp_path / "drawing2photo")
    (root / "trainB" / "photo9.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    assert data.main(["validate", str(root), "--resize", "pad", "--background", "white"]) == 1
    said = capsys.readouterr().out
    assert "(train split): image-to-image, 4 A images and 6 B images" in said and "photo9.jpg" in said
    assert "(test split): image-to-image, 1 A images and 1 B images" in said
    assert "transparent pixels onto white" in said and "not square" not in said  # pad keeps whole images
    assert data.main(["validate", str(_pix2pix_layout(tmp_path / "facades"))]) == 0
    assert "(test split): image-to-image, 3 pairs" in capsys.readouterr().out


def test_translate_reads_a_pix2pix_test_file_of_any_size_as_its_a_half():
    """A 96 x 48 A|B file (pix2pix's datasets are 512 x 256) for a 32 px model: its A half, resized; it was
    centre-cropped whole (half sketch, half target) when only 2S x S files counted as pairs."""
    from gan_baselines.translation_eval import translator_input

    ab = Image.new("RGB", (96, 48), RED)
    ab.paste(BLUE, (48, 0, 96, 48))
    x, note = translator_input(ab, 32, resize="center-crop")
    assert x.shape == (3, 32, 32) and float(x[2].max()) < 0.1  # no blue: only the A half
    assert "read as an A|B pair (96x48)" in note and "resized from 48x48 to 32x32" in note


def test_validate_names_the_splits_of_an_image_to_image_folder(tmp_path, capsys):
    """Regression: `t2i data validate DIR --split val` on a pix2pix folder ended in an internal KeyError."""
    from train import data

    root = _pix2pix_layout(tmp_path / "facades")
    assert data.main(["validate", str(root), "--split", "val"]) == 2
    assert "has the splits ['train', 'test'] (test is read from test/ or val/" in capsys.readouterr().err


def test_image_to_image_folders_take_every_format_pillow_opens(tmp_path):
    """Regression: the image-to-image loaders and `t2i translate` took five fixed extensions, so a TIFF or GIF
    that every other user folder reads was silently left out of a domain."""
    root = _cyclegan_layout(tmp_path / "drawing2photo")
    Image.new("RGB", (40, 40), (10, 20, 30)).save(root / "trainB" / "scan.tif")
    Image.new("P", (40, 40)).save(root / "trainB" / "icon.gif")
    (root / "trainB" / ".hidden.png").write_bytes(b"not an image")  # hidden files stay out, as in every folder
    (root / "trainB" / "notes.txt").write_text("not an image")
    data = load_translation(root, size=32, unpaired=True)
    assert len(data.B) == 8 and not data.report.problems  # 6 photos + the TIFF + the GIF
    from train.translate import _inputs

    assert {p.name for p in _inputs(root / "trainB")} >= {"scan.tif", "icon.gif"}
