"""User data: imagefolder, CSV/TSV, WebDataset shards, bad-data handling, `t2i data validate`."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from t2i.data import load_dataset, shapes
from t2i.data.bad_data import BadDataError
from t2i.data.shards import write_shards
from train.data import main as data_main


def stripes(w: int, h: int) -> Image.Image:
    """Red left third, blue middle third, green right third."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 3] = (255, 0, 0)
    arr[:, w // 3: 2 * w // 3] = (0, 0, 255)
    arr[:, 2 * w // 3:] = (0, 255, 0)
    return Image.fromarray(arr)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_folder(root: Path, rows: list[dict], images: dict[str, Image.Image | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(img, bytes):
            (root / name).write_bytes(img)
        else:
            img.save(root / name)
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def bad_folder(tmp_path) -> Path:
    """6 good images plus a corrupt PNG, a truncated PNG, a missing file and an empty caption."""
    recs = shapes.make_scenes(7, seed=0, size=64)
    images = {f"img/{i}.png": shapes.render(r) for i, r in enumerate(recs)}
    rows = [{"file_name": f"img/{i}.png", "text": r["caption"]} for i, r in enumerate(recs[:6])]
    images["img/corrupt.png"] = b"\x89PNG\r\n\x1a\n this is not image data"
    whole = png_bytes(shapes.render(recs[6]))
    images["img/truncated.png"] = whole[: len(whole) // 2]
    images["img/empty.png"] = shapes.render(recs[6])
    rows += [{"file_name": "img/corrupt.png", "text": "a corrupt file"},
             {"file_name": "img/truncated.png", "text": "a truncated file"},
             {"file_name": "img/missing.png", "text": "a missing file"},
             {"file_name": "img/empty.png", "text": "   "}]
    return write_folder(tmp_path / "bad", rows, images)


def test_folder_resize_crop_and_split_layout(tmp_path):
    images = {"a.png": stripes(96, 48), "b.jpg": stripes(30, 30).resize((40, 40)), "c.png": stripes(48, 96)}
    rows = [{"file_name": n, "text": f"caption {n}", "label": i} for i, n in enumerate(images)]
    write_folder(tmp_path / "f" / "train", rows, images)
    write_folder(tmp_path / "f" / "test", rows[:1], {"a.png": images["a.png"]})
    ds = load_dataset(tmp_path / "f", size=16)
    assert len(ds) == 3 and ds.channels == 3 and ds.num_classes == 3 and ds.records is None
    wide = ds[0]["image"]  # (3, 16, 16): the centre crop of a 2:1 image is mostly the blue middle
    assert wide.shape == (3, 16, 16) and wide[2, :, 4:12].min() > 0.9 and wide[0, :, 4:12].max() < 0.1
    assert ds[2]["image"].shape == (3, 16, 16) and ds[1]["text"] == "caption b.jpg" and ds[1]["label"] == 1
    assert len(load_dataset(tmp_path / "f", split="test")) == 1
    with pytest.raises(ValueError, match="no split 'novel'"):
        load_dataset(tmp_path / "f", split="novel")
    with pytest.raises(ValueError, match="data source .*not found"):
        load_dataset(tmp_path / "nowhere")


def test_csv_and_tsv(tmp_path):
    (tmp_path / "pics").mkdir()
    for i in range(3):
        stripes(20 + i, 20).save(tmp_path / "pics" / f"{i}.png")
    (tmp_path / "d.csv").write_text("filepath,title\n" + "".join(f"pics/{i}.png,photo {i}\n" for i in range(3)))
    ds = load_dataset(tmp_path / "d.csv", size=8)
    assert [ds[i]["text"] for i in range(3)] == ["photo 0", "photo 1", "photo 2"] and ds[0]["label"] == -1
    absolute = tmp_path / "pics" / "2.png"
    (tmp_path / "d.tsv").write_text(f"filepath\ttitle\n{absolute}\ta tab, with a comma\n")
    assert load_dataset(tmp_path / "d.tsv")[0]["text"] == "a tab, with a comma"
    (tmp_path / "e.csv").write_text("img;cap\npics/1.png;semicolons\n")
    ds = load_dataset(tmp_path / "e.csv", image_column="img", caption_column="cap", sep=";")
    assert ds[0]["text"] == "semicolons"
    with pytest.raises(ValueError, match=r"no 'filepath' or 'title' column .* columns found: \['cap', 'img'\]"):
        load_dataset(tmp_path / "e.csv", sep=";")
    with pytest.raises(ValueError, match="unknown option"):
        load_dataset(tmp_path / "d.csv", shuffle_buffer=3)


def test_conversions(tmp_path):
    images = {"rgba.png": Image.new("RGBA", (8, 8), (200, 100, 0, 128)),
              "grey.png": Image.new("L", (8, 8), 77),
              "g16.png": Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16)),
              "pal.png": Image.new("RGB", (8, 8), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE),
              "float.tif": Image.new("F", (8, 8), 0.5)}
    rows = [{"file_name": n, "text": n} for n in images]
    ds = load_dataset(write_folder(tmp_path / "c", rows, images), size=8)
    got = {ds[i]["text"]: (ds[i]["image"][:, 4, 4] * 255).round().tolist() for i in range(len(ds))}
    assert got["rgba.png"] == [100, 50, 0]  # composited on black: alpha 128/255
    assert got["grey.png"] == [77, 77, 77]
    assert got["g16.png"] == [127, 127, 127]  # 16-bit scaled by 255/65535
    assert got["pal.png"] == [10, 200, 30]
    assert "float.tif" not in got and ds.report.counts == {"converted": 4, "unsupported": 1}
    details = {Path(path).name: detail for path, detail in ds.report.examples["converted"]}
    assert details["grey.png"] == "L -> RGB" and "onto black (--background)" in details["rgba.png"]  # names the option
    white = load_dataset(tmp_path / "c", size=8, background="white")
    assert dict(white.report.examples["converted"])["rgba.png"].endswith("onto white (--background)")


def test_report_counts_conversions_per_rule_and_the_images_a_crop_cuts(tmp_path, capsys):
    """Regression: the report listed every converted file (hundreds of lines for a folder of transparent
    drawings, each saying "black by default" even under --background white), and said nothing when the
    default centre crop cut the ends off images far from square (a 4:1 drawing lost 75% of its width)."""
    images = {f"wide{i}.png": Image.new("RGBA", (40, 10)) for i in range(6)}
    images |= {"tall.png": Image.new("LA", (10, 30)), "square.png": Image.new("RGB", (20, 19))}
    folder = write_folder(tmp_path / "d", [{"file_name": n, "text": n} for n in images], images)
    ds = load_dataset(folder, size=8, background="white")
    report = ds.report.summary()
    assert "RGBA -> RGB, transparent pixels onto white (--background): 6 (" in report and "... and 3 more)" in report
    assert "LA -> RGB, transparent pixels onto white (--background): 1 (tall.png)" in report
    assert "wide5.png" not in report  # three examples per rule, not every file
    assert "not square: 7 of 8 images (width / height 0.33 to 4.00)" in report and "(up to 75%)" in report
    assert "--resize pad keeps whole images" in report
    assert "not square" not in load_dataset(folder, size=8, resize="pad").report.summary()  # nothing is cut
    assert data_main(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "not square: 7 of 8" in out and "wide5.png" not in out
    assert data_main(["validate", str(folder), "--strict"]) == 1 and "wide5.png" in capsys.readouterr().out

    # validate reads as the run will (it said "black" and counted centre-crop cuts whatever the run would use)
    assert data_main(["validate", str(folder), "--background", "white", "--resize", "pad"]) == 0
    out = capsys.readouterr().out
    assert "onto white (--background): 6" in out and "not square" not in out
    shards = tmp_path / "shards"
    assert data_main(["shards", str(folder), "--out", str(shards)]) == 0  # streamed data reports crops too
    assert data_main(["validate", str(shards)]) == 0 and "not square: 7 of 8" in capsys.readouterr().out

    rotated = Image.new("RGB", (40, 10))  # stored wide, shown tall: EXIF orientation 6 (a phone photo)
    exif = rotated.getexif()
    exif[0x0112] = 6
    (tmp_path / "photo").mkdir()
    rotated.save(tmp_path / "photo" / "p.jpg", exif=exif)
    (tmp_path / "photo" / "metadata.jsonl").write_text(json.dumps({"file_name": "p.jpg", "text": "a photo"}) + "\n")
    assert "(width / height 0.25 to 0.25)" in load_dataset(tmp_path / "photo", size=8).report.summary()

    from t2i.runtime import Run, RunConfig

    wide = {f"w{i}.png": Image.new("RGB", (40, 10)) for i in range(2)}  # nothing converted, only cut
    cropped = load_dataset(write_folder(tmp_path / "w", [{"file_name": n, "text": n} for n in wide], wide), size=8)
    Run(RunConfig(out=str(tmp_path / "run"), steps=1, batch_size=2), "x").dataloader(cropped)
    assert "bad-data report" in capsys.readouterr().out  # a trainer says so before its first step


def test_background_white_shows_dark_drawings_on_transparency(tmp_path):
    """Regression: alpha was always composited on black, so a dark glyph on a transparent canvas (a symbolic
    icon, line art) loaded as an all-black image; --background white keeps it visible, also around a pad."""
    glyph = Image.new("RGBA", (16, 8), (0, 0, 0, 0))
    glyph.paste((20, 20, 20, 255), (6, 2, 10, 6))  # a dark square in the middle, transparent around it
    folder = write_folder(tmp_path / "icons", [{"file_name": "g.png", "text": "a dark square"}], {"g.png": glyph})
    black = load_dataset(folder, size=8)[0]["image"]
    assert black.max() <= 20 / 255 + 1e-6  # nothing to see on black
    white = load_dataset(folder, size=8, background="white", resize="pad")[0]["image"]  # 16 x 8 -> 8 x 4 centred
    assert white[:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # the letterbox and the transparent pixels: white
    assert white[:, 4, 4].max() < 0.5  # the glyph: dark on white
    with pytest.raises(ValueError, match="drawn on black"):
        load_dataset("shapes", n=4, background="white")
    with pytest.raises(ValueError, match="background must be one of"):
        load_dataset(folder, background="grey")


def test_background_reaches_trainers_and_evaluation_and_is_left_out_at_black(tmp_path):
    from t2i.data import evaluation_options, training_options
    from t2i.metrics.captioned import load_held_out
    from t2i.runtime import RunConfig

    assert "background" not in training_options(RunConfig())  # old latent-cache fingerprints stay valid
    assert training_options(RunConfig(background="white"))["background"] == "white"
    assert evaluation_options(RunConfig(background="white"))["background"] == "white"
    with pytest.raises(ValueError, match="background must be one of"):
        RunConfig(background="grey").validate()
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    folder = write_folder(tmp_path / "held", [{"file_name": "c.png", "text": "nothing"}], {"c.png": clear})
    held_out, _ = load_held_out(str(folder), size=8, background="white")  # t2i eval --background white
    assert held_out.images.min() == 1.0


def test_bad_data_is_skipped_reported_and_strict_fails(bad_folder):
    ds = load_dataset(bad_folder)  # header check: corrupt, missing and empty caption found now
    assert len(ds) == 7 and ds.report.problems == 3
    assert {k: ds.report.counts[k] for k in ("corrupt", "missing", "empty_caption")} == \
        {"corrupt": 1, "missing": 1, "empty_caption": 1}
    text = ds.report.summary()
    assert "img/corrupt.png" in text and "img/missing.png" in text and "img/empty.png" in text
    # a short training run to the end of the epoch: the truncated PNG is replaced, then reported
    model = torch.nn.Linear(3 * 32 * 32, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = 0
    with pytest.warns(UserWarning, match="truncated"):
        for batch in DataLoader(ds, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0)):
            loss = model(batch["image"].flatten(1)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(batch["text"])
    assert seen == 7 and ds.report.counts["truncated"] == 1 and ds.report.problems == 4
    with pytest.raises(BadDataError, match="strict mode: bad data found") as err:
        load_dataset(bad_folder, strict=True)
    for line in ("missing: 1", "corrupt: 1", "truncated: 1", "empty_caption: 1", "img/truncated.png"):
        assert line in str(err.value)
    decoded = load_dataset(bad_folder, check="decode")  # decode up front: all four found at once
    assert len(decoded) == 6 and decoded.report.problems == 4


def test_bad_data_through_worker_processes(bad_folder):
    ds = load_dataset(bad_folder)
    texts = [t for b in DataLoader(ds, batch_size=2, num_workers=2) for t in b["text"]]
    assert len(texts) == 7 and "a truncated file" not in texts


def test_validate_command(bad_folder, tmp_path, capsys):
    assert data_main(["validate", str(bad_folder)]) == 1
    out = capsys.readouterr().out
    assert "4 skipped" in out and "truncated: 1" in out and "img/truncated.png" in out
    clean = shapes.write_dataset(tmp_path / "clean", 10, progress=False)
    assert data_main(["validate", str(clean)]) == 0
    Image.new("L", (8, 8)).save(clean / "images" / "00000.png")  # grey: converted, not a problem
    assert data_main(["validate", str(clean)]) == 0 and data_main(["validate", str(clean), "--strict"]) == 1
    assert data_main(["validate", str(tmp_path / "nowhere")]) == 2


def make_shards(folder: Path, n: int = 10, per_shard: int = 4) -> list[Path]:
    items = [(png_bytes(shapes.render(r)), r["caption"]) for r in shapes.make_scenes(n, seed=1)]
    return write_shards(items, folder, per_shard=per_shard)


def test_shards_stream_resume_and_workers(tmp_path):
    paths = make_shards(tmp_path / "sh")
    captions = [r["caption"] for r in shapes.make_scenes(10, seed=1)]
    for source in (paths[0].parent, str(paths[0].parent / "shard-{00000..00002}.tar")):
        ds = load_dataset(source)
        items = list(ds)
        assert [it["text"] for it in items] == captions and [it["index"] for it in items] == list(range(10))
        assert items[0]["image"].shape == (3, 32, 32) and items[0]["label"] == -1
    assert [it["text"] for it in load_dataset(paths[1])] == captions[4:8]  # a single .tar
    assert [it["index"] for it in load_dataset(paths[0].parent, start=7)] == [7, 8, 9]  # resume offset
    assert [it["index"] for it in load_dataset(paths[0].parent, n=3)] == [0, 1, 2]
    shuffled = load_dataset(paths[0].parent, shuffle_buffer=5, seed=3)
    order = [it["text"] for it in shuffled]
    assert sorted(order) == sorted(captions) and order != captions
    assert [it["text"] for it in shuffled] == order  # same (seed, epoch): same order
    shuffled.set_epoch(1)
    assert [it["text"] for it in shuffled] != order
    split = DataLoader(load_dataset(paths[0].parent, split_by_worker=True), batch_size=2, num_workers=2)
    assert sorted(int(i) for b in split for i in b["index"]) == list(range(10))  # each sample once
    whole = DataLoader(load_dataset(paths[0].parent), batch_size=5, num_workers=2)  # the runtime's contract
    assert sorted(int(i) for b in whole for i in b["index"]) == sorted(list(range(10)) * 2)


def test_shards_bad_samples(tmp_path):
    path = make_shards(tmp_path / "sh", n=4, per_shard=4)[0]
    with tarfile.open(path, "a") as tar:
        for name, blob in (("900.png", b"garbage"), ("900.txt", b"bad image"), ("901.txt", b"no image"),
                           ("902.png", png_bytes(stripes(9, 9))), ("902.txt", b"  ")):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    ds = load_dataset(path)
    with pytest.warns(UserWarning, match="skipping bad item") as seen:
        items = list(ds)
    assert len(items) == 4 and ds.report.problems == 3 and ds.report.checked == 7
    # the t2i command prints these as one line (a tester saw a site-packages path and a source line)
    from train.cli import _format_warning
    warning = next(w for w in seen if "skipping bad item" in str(w.message))
    shown = _format_warning(warning.message, warning.category, warning.filename, warning.lineno)
    assert shown == f"warning: {warning.message}\n" and warning.filename not in shown
    other = _format_warning(UserWarning("x"), UserWarning, "f.py", 3)
    assert other.startswith("f.py:3: UserWarning: x")
    assert ds.report.counts == {"corrupt": 1, "missing": 1, "empty_caption": 1}
    with pytest.raises(BadDataError, match="shard-00000.tar:900"), pytest.warns(UserWarning):
        load_dataset(path, strict=True)
    (tmp_path / "broken.tar").write_bytes(path.read_bytes()[:1500])  # cut mid-archive
    with pytest.warns(UserWarning):
        assert len(list(load_dataset(tmp_path / "broken.tar"))) <= 2


def test_shards_command_round_trip(tmp_path, capsys):
    folder = shapes.write_dataset(tmp_path / "s", 12, progress=False)
    assert data_main(["shards", str(folder), "--out", str(tmp_path / "sh"), "--per-shard", "5"]) == 0
    assert len(list((tmp_path / "sh").glob("*.tar"))) == 3
    streamed = list(load_dataset(tmp_path / "sh"))
    mapped = load_dataset(folder)
    assert [it["text"] for it in streamed] == mapped.captions
    assert torch.equal(streamed[4]["image"], mapped[4]["image"])
    assert data_main(["validate", str(tmp_path / "sh")]) == 0
    assert data_main(["shards", "shapes", "--n", "6", "--out", str(tmp_path / "generated")]) == 0  # pixels as PNG
    assert [it["text"] for it in load_dataset(tmp_path / "generated")] == load_dataset("shapes", n=6).captions
