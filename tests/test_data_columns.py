"""`--image-column` / `--caption-column` (RunConfig): user data with its own column names trains (issue 16)."""

import json

import pytest

from t2i.data import load_dataset, shapes
from t2i.data.shards import write_shards
from t2i.runtime.config import RunConfig
from t2i.runtime.identity import identity_of
from train.cli import main as t2i

TINY = ["--steps", "2", "--batch-size", "8", "--n", "16", "--log-every", "1", "--checkpoint-every", "0"]


@pytest.fixture(scope="module")
def image_caption_csv(tmp_path_factory):
    """A CSV with `image,caption` columns (not open_clip's filepath,title), 16 shapes scenes."""
    root = tmp_path_factory.mktemp("csv")
    lines = ["image,caption"]
    for i, scene in enumerate(shapes.make_scenes(16, seed=0)):
        shapes.render(scene).save(root / f"{i}.png")
        lines.append(f"{i}.png,{scene['caption']}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root / "data.csv"


def test_clip_trains_on_an_image_caption_csv(image_caption_csv, tmp_path):
    out = tmp_path / "clip"
    assert t2i(["train", "clip", "--preset", "t2i-tiny", "--data", str(image_caption_csv), "--image-column", "image",
                "--caption-column", "caption", "--eval-n", "0", *TINY, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert json.loads((out / "config.json").read_text())["caption_column"] == "caption"


def test_dcgan_trains_on_an_image_caption_csv(image_caption_csv, tmp_path):
    out = tmp_path / "dcgan"
    assert t2i(["train", "dcgan", "--data", str(image_caption_csv), "--image-column", "image", "--caption-column",
                "caption", "--g-base", "8", "--d-base", "8", *TINY, "--out", str(out)]) == 0
    assert (out / "model" / "model.safetensors").is_file()


def test_a_wrong_column_is_one_line_listing_the_columns(image_caption_csv, tmp_path, capsys):
    assert t2i(["train", "dcgan", "--data", str(image_caption_csv), "--image-column", "picture",
                *TINY, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no 'picture' or 'title' column" in err and "['caption', 'image']" in err and "--image-column" in err


def test_columns_reach_folders_and_shards_and_are_refused_for_shapes(tmp_path):
    scene = shapes.make_scenes(1, seed=1)[0]
    folder = tmp_path / "folder"
    folder.mkdir()
    shapes.render(scene).save(folder / "a.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"img": "a.png", "caption": scene["caption"]}) + "\n")
    assert load_dataset(folder, image_column="img", caption_column="caption")[0]["text"] == scene["caption"]

    shapes.render(scene).save(tmp_path / "a.jpg")
    shards = write_shards([((tmp_path / "a.jpg").read_bytes(), scene["caption"], "jpg")], tmp_path / "shards")
    items = list(load_dataset(shards[0], image_column="jpg", caption_column="txt"))
    assert [item["text"] for item in items] == [scene["caption"]]
    with pytest.raises(ValueError, match=r"no 'caption' member .* one of its members: \['jpg', 'txt'\]"):
        load_dataset(shards[0], caption_column="caption")
    assert t2i(["data", "validate", str(shards[0]), "--image-column", "jpg", "--caption-column", "txt"]) == 0
    assert t2i(["data", "validate", str(folder), "--image-column", "img", "--caption-column", "caption"]) == 0
    with pytest.raises(ValueError, match="name columns of user data"):
        load_dataset("shapes", caption_column="caption")


def test_columns_are_part_of_the_identity_but_old_runs_keep_theirs():
    assert "image_column" not in RunConfig.resumable and "caption_column" not in RunConfig.resumable
    default = identity_of(RunConfig(), "x")
    assert "image_column" not in default.settings  # the identity of a run from before the option existed
    assert identity_of(RunConfig(caption_column="caption"), "x").config_hash != default.config_hash
