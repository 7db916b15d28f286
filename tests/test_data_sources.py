"""Issue 16, data: `datasets` sources (save_to_disk folder, local builder script, hub name offline),
several captions per image, resize modes and random flips."""

import importlib.util
import json
import random
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from t2i.data import load_dataset, random_choices, shapes
from t2i.data.transforms import RESIZE_MODES, fit, item_rng
from t2i.runtime.data import RunLoader
from train.cli import main as t2i

datasets = pytest.importorskip("datasets")

TINY = ["--steps", "2", "--batch-size", "8", "--n", "16", "--log-every", "1", "--checkpoint-every", "0"]
SCRIPT = '''
"""A tiny image-caption dataset builder: images and captions.json next to this script."""
import json
from pathlib import Path

import datasets

HERE = Path(__file__).parent


class TinyShapes(datasets.GeneratorBasedBuilder):
    VERSION = datasets.Version("1.0.0")

    def _info(self):
        return datasets.DatasetInfo(features=datasets.Features(
            {"image": datasets.Image(), "caption": datasets.Sequence(datasets.Value("string"))}))

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN)]

    def _generate_examples(self):
        for i, captions in enumerate(json.loads((HERE / "captions.json").read_text())):
            yield i, {"image": str(HERE / f"{i}.png"), "caption": captions}
'''


@pytest.fixture(scope="module")
def scenes():
    recs = shapes.make_scenes(16, seed=0)
    return [shapes.render(r) for r in recs], [[r["caption"], f"picture {i}"] for i, r in enumerate(recs)]


@pytest.fixture(scope="module")
def saved(scenes, tmp_path_factory):
    """A save_to_disk DatasetDict: an Image column and a list-of-captions column."""
    images, captions = scenes
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Sequence(datasets.Value("string"))})
    table = datasets.Dataset.from_dict({"image": images, "text": captions}, features=features)
    root = tmp_path_factory.mktemp("saved") / "tiny"
    datasets.DatasetDict({"train": table, "test": table.select(range(4))}).save_to_disk(str(root))
    return root


@pytest.fixture(scope="module")
def script(scenes, tmp_path_factory):
    images, captions = scenes
    root = tmp_path_factory.mktemp("script")
    for i, img in enumerate(images):
        img.save(root / f"{i}.png")
    (root / "captions.json").write_text(json.dumps(captions))
    (root / "my_dataset.py").write_text(SCRIPT)
    return root / "my_dataset.py"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return tmp_path / "hf-cache"


def cache_as_hub_dataset(script) -> None:
    """Leave the datasets cache as one online load of hub dataset 't2i-test/tiny_shapes' (org___name/config/
    version/commit), built by ``script``'s builder; the name then loads offline."""
    spec = importlib.util.spec_from_file_location("tiny_shapes_script", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.TinyShapes(repo_id="t2i-test/tiny_shapes", dataset_name="tiny_shapes", hash="0" * 40).download_and_prepare()


def _train(family: str, data: str, out, *extra: str) -> int:
    models = {"clip": ["--preset", "t2i-tiny", "--eval-n", "0"], "dcgan": ["--g-base", "8", "--d-base", "8"]}
    return t2i(["train", family, "--data", data, *models[family], *TINY, *extra, "--out", str(out)])


def test_validate_checks_every_split_of_a_saved_dataset_dict_and_reports_its_conversions(tmp_path, capsys,
                                                                                         monkeypatch):
    """Regression: `t2i data validate` on a save_to_disk DatasetDict checked its train split only, and its decode
    check of `datasets` rows reported no conversions (transparent drawings said nothing) and no crops."""
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    wide = [Image.new("RGBA", (30, 10)) for _ in range(3)]
    table = datasets.Dataset.from_dict({"image": wide, "text": ["a", "b", "c"]}, features=features)
    datasets.DatasetDict({"train": table, "test": table.select(range(2))}).save_to_disk(str(tmp_path / "d"))
    assert t2i(["data", "validate", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert ":train: 3 items checked, 0 skipped, 3 converted" in out and ":test: 2 items checked" in out
    assert "RGBA -> RGB, transparent pixels onto black (--background): 3 (" in out
    assert "not square: 3 of 3 images (width / height 3.00 to 3.00)" in out
    white = load_dataset(tmp_path / "d", split="test", check="decode", background="white", resize="pad")
    assert white.report.conversions == {"RGBA -> RGB, transparent pixels onto white (--background)": 2}
    assert white.report.shapes.summary() == ""  # pad cuts nothing
    assert white[0]["image"].min() == 1.0  # all transparent: white
    # a trainer's default header check decodes nothing, but counts the shapes of a spread sample of rows
    assert "not square: 3 of 3 images" in load_dataset(tmp_path / "d").report.summary()
    from t2i.data import hf as hf_source

    monkeypatch.setattr(hf_source, "SHAPES_SAMPLE", 2)
    assert "not square: 2 of 2 sampled images" in load_dataset(tmp_path / "d").report.summary()


@pytest.mark.slow
def test_save_to_disk_folder_loads_and_trains(saved, tmp_path):
    ds = load_dataset(saved, size=16)
    assert len(ds) == 16 and ds[0]["image"].shape == (3, 16, 16) and ds[3]["text"] == ds.captions[3]
    assert len(load_dataset(saved, split="test")) == 4
    with pytest.raises(ValueError, match=r"without split 'novel'; its splits are \['train', 'test'\]"):
        load_dataset(saved, split="novel")
    with pytest.raises(ValueError, match=r"no 'img' column .*\['image', 'text'\]"):
        load_dataset(saved, image_column="img")
    assert _train("clip", str(saved), tmp_path / "clip") == 0
    assert _train("dcgan", str(saved), tmp_path / "dcgan", "--random-flip", "0.5", "--resize", "random-crop") == 0
    assert json.loads((tmp_path / "dcgan" / "config.json").read_text())["resize"] == "random-crop"
    assert t2i(["data", "validate", str(saved)]) == 0  # decodes every image of the train split


@pytest.mark.slow
def test_ldm_fine_tunes_on_a_saved_dataset_and_its_cache_refuses_random_images(saved, tmp_path, capsys):
    from t2i.diffusion.testing import make_sd_folder

    sd = make_sd_folder(tmp_path / "sd")
    ldm = ["train", "ldm", "--data", str(saved), "--init", str(sd), "--size", "16", *TINY, "--sample-steps", "2",
           "--sample-prompts", "a red circle"]
    assert t2i([*ldm, "--resize", "pad", "--out", str(tmp_path / "ft")]) == 0
    assert t2i([*ldm, "--cache", "--out", str(tmp_path / "cached")]) == 0  # two captions per image: both cached
    assert t2i([*ldm, "--cache", "--random-flip", "0.5", "--out", str(tmp_path / "flip")]) == 2  # a flip: frozen
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars of loading the model
    assert "a latent cache keeps one prepared copy" in err and "--random-flip" in err
    assert "--cache false" in err


@pytest.mark.slow
def test_a_local_dataset_script_and_its_hub_name_train_offline(script, cache, tmp_path):
    ds = load_dataset(script, caption_column="caption", size=16)
    assert len(ds) == 16 and ds.caption_lists[1] == [ds.captions[1], "picture 1"]
    assert _train("clip", str(script), tmp_path / "clip", "--caption-column", "caption") == 0
    assert _train("dcgan", str(script), tmp_path / "dcgan", "--caption-column", "caption") == 0

    cache_as_hub_dataset(script)
    hub = load_dataset("hf:t2i-test/tiny_shapes", caption_column="caption", size=16)
    assert hub.captions == ds.captions and torch.equal(hub[5]["image"], ds[5]["image"])
    assert len(load_dataset("t2i-test/tiny_shapes", caption_column="caption")) == 16  # plain org/name too
    assert _train("clip", "hf:t2i-test/tiny_shapes", tmp_path / "hub-clip", "--caption-column", "caption") == 0


def test_an_uncached_hub_name_offline_is_one_line(cache, tmp_path, capsys):
    assert _train("dcgan", "hf:t2i-test/not_cached", tmp_path / "x") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'t2i-test/not_cached'" in err and "HF_HUB_OFFLINE" in err


def _folder_with_captions(root, n_captions=3):
    root.mkdir()
    shapes.render(shapes.make_scenes(1)[0]).save(root / "a.png")
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png",
                                                     "text": [f"caption {k}" for k in range(n_captions)]}) + "\n")
    return root


def test_several_captions_are_drawn_per_epoch_reproducibly(tmp_path):
    root = _folder_with_captions(tmp_path / "f")

    def draws(seed, start_epoch=0):
        loader = RunLoader(load_dataset(root, seed=seed, draw_caption=True), micro=1, num_processes=1, rank=0,
                           seed=seed, shuffle=True, num_workers=0, collate_fn=None, pin_memory=False)
        loader.load_state_dict({"epoch": start_epoch, "batch": 0})
        it = loader.batches()
        return [next(it)["text"][0] for _ in range(12 - start_epoch)]

    first = draws(0)
    assert len(set(first)) == 3  # one caption per access, drawn anew each epoch
    assert draws(0) == first and draws(0, start_epoch=5) == first[5:]  # same seed, and a resumed run: same draws
    assert draws(1) != first
    assert [load_dataset(root)[0]["text"] for _ in range(3)] == ["caption 0"] * 3  # evaluation: the first
    assert random_choices(load_dataset(root, draw_caption=True)) == ["several captions per image"]


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_latent_cache_draws_the_captions_the_loader_draws(tmp_path, on_disk):
    """Regression (issue 16 recipe): the cache refused several captions per image; it now keeps them all and
    draws one per access by the loader's own rule, epoch by epoch; in memory or on disk (--cache-dir)."""
    from t2i.diffusion.disk_cache import cache_fingerprint, open_cache_dir
    from t2i.diffusion.testing import make_tiny_pipeline
    from t2i.diffusion.training import build_latent_cache

    root = _folder_with_captions(tmp_path / "f")
    loader = load_dataset(root, seed=3, draw_caption=True, size=16)
    data, vae = load_dataset(root, seed=3, draw_caption=True, size=16), make_tiny_pipeline().vae
    folder = None
    if on_disk:
        fingerprint = cache_fingerprint(data, str(root), {"seed": 3, "draw_caption": True, "size": 16}, vae)
        folder = open_cache_dir(tmp_path / "cache", fingerprint)
    cached = build_latent_cache(data, vae, "cpu", folder=folder)
    seen = set()
    for epoch in range(6):
        loader.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(loader)):
            text = cached.texts[cached[i]["text_id"]]
            assert text == loader[i]["text"]
            seen.add(text)
    assert len(seen) == 3 * len(loader)  # every caption of every image drawn at some epoch


def _columns(width: int, height: int) -> Image.Image:
    """Column x has red value 30 * x (distinct, exact to check); green and blue 0."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, :, 0] = 30 * np.arange(width, dtype=np.uint8)[None, :]
    return Image.fromarray(arr)


def red(img: Image.Image) -> np.ndarray:
    return np.asarray(img)[:, :, 0]


def test_resize_modes_on_a_non_square_image_give_the_expected_pixels():
    wide = _columns(8, 4)  # red values 0, 30, ..., 210 across
    assert (red(fit(wide, 4, "center-crop")) == [60, 90, 120, 150]).all()  # the middle four columns
    offsets = set()
    for k in range(40):  # the short side already fits: a window of four whole columns
        out = red(fit(wide, 4, "random-crop", random.Random(k)))
        left = random.Random(k).randint(0, 4)
        assert (out == 30 * np.arange(left, left + 4)).all()
        offsets.add(left)
    assert offsets == {0, 1, 2, 3, 4}
    padded = np.asarray(fit(wide, 8, "pad"))  # 8 x 4 centred on an 8 x 8 black square
    assert (padded[:2] == 0).all() and (padded[6:] == 0).all() and (padded[2:6, :, 0] == red(wide)).all()
    stretched = red(fit(_columns(4, 2), 4, "stretch"))  # rows doubled, columns unchanged
    assert stretched.shape == (4, 4) and (stretched == [0, 30, 60, 90]).all()
    assert all(fit(_columns(6, 10), 5, mode).size == (5, 5) for mode in RESIZE_MODES)  # any size, tall too


def test_random_flip_one_flips_and_crops_reach_the_loaders(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    _columns(8, 4).save(root / "a.png")
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "columns"}) + "\n")
    plain = load_dataset(root, size=4)[0]["image"][0] * 255  # (4, 4) red channel
    flipped = load_dataset(root, size=4, random_flip=1.0)[0]["image"][0] * 255
    assert torch.equal(plain.round()[0], torch.tensor([60.0, 90, 120, 150]))
    assert torch.equal(flipped, plain.flip(-1))
    crop = load_dataset(root, size=4, resize="random-crop", seed=3)
    left = item_rng(3, 0, 0).randint(0, 4)
    assert torch.equal((crop[0]["image"][0, 0] * 255).round(), 30 * torch.arange(left, left + 4.0))
    with pytest.raises(ValueError, match="resize must be one of"):
        load_dataset(root, resize="squash")


def test_random_flip_is_refused_on_shapes_data(tmp_path, capsys):
    with pytest.raises(ValueError, match="left/right"):
        load_dataset("shapes", n=8, random_flip=0.5)
    assert t2i(["train", "dcgan", "--random-flip", "0.5", *TINY, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--random-flip is refused on 'shapes'" in err
    assert t2i(["data", "shapes", "--out", str(tmp_path / "s"), "--n", "4"]) in (0, None)
    with pytest.raises(ValueError, match="captions name positions"):  # a folder written by `t2i data shapes`
        load_dataset(tmp_path / "s", random_flip=0.5)


def test_random_crops_and_flips_repeat_in_workers_and_on_resume(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    rows = []
    for i in range(4):
        _columns(8, 4 + i).save(root / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": [f"image {i}", f"picture {i}"]}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")

    def batches(workers, start_epoch=0, n=6):
        ds = load_dataset(root, size=4, resize="random-crop", random_flip=0.5, draw_caption=True, seed=7)
        loader = RunLoader(ds, micro=2, num_processes=1, rank=0, seed=7, shuffle=True, num_workers=workers,
                           collate_fn=None, pin_memory=False)
        loader.load_state_dict({"epoch": start_epoch, "batch": 0})
        it = loader.batches()
        return [next(it) for _ in range(n)]

    plain, in_worker, resumed = batches(0), batches(1), batches(0, start_epoch=1, n=4)
    for a, b in zip(plain, in_worker):
        assert torch.equal(a["image"], b["image"]) and a["text"] == b["text"]
    for a, b in zip(plain[2:], resumed):  # two batches per epoch: epoch 1 starts at the third
        assert torch.equal(a["image"], b["image"]) and a["text"] == b["text"]
    same_item = [b["image"][k] for b in plain for k, i in enumerate(b["index"]) if i == 0]
    assert any(not torch.equal(same_item[0], x) for x in same_item[1:])  # a new crop/flip each epoch


# every trainer that reads images or captions, 2 steps on a `datasets` source; "CLIP", "VAE" and "TEACHER" are
# filled in by the test (the image-to-image trainers read A/B folders and cgan needs labels: not here)
EVERY_TRAINER = {
    "ae": ["--variant", "conv", "--widths", "4,8"],
    "vae": ["--arch", "conv", "--widths", "4,8", "--latent-dim", "2"],
    "cvae": ["--conditioning", "text", "--text-encoder", "CLIP", "--arch", "conv", "--widths", "4,8"],
    "gan": ["--hidden", "16"],
    "dcgan": ["--g-base", "4", "--d-base", "4"],
    "tgan": ["--g-base", "4", "--d-base", "4", "--eval-n", "2", "--clip", "CLIP"],
    "tgan-attn": ["--clip", "CLIP", "--eval-n", "2"],
    "clip": ["--preset", "t2i-tiny", "--eval-n", "0"],
    "vae-kl": ["--arch", "f4-test", "--eval-images", "2"],
    "ldm": ["--vae", "VAE", "--clip", "CLIP", "--unet", "test", "--sample-steps", "2", "--sample-prompts", "a red circle",
            "--first-stage-check", "2"],
    "distill": ["--teacher", "TEACHER", "--sample-steps", "2", "--sample-prompts", "a red circle"],
    "prior": ["--clip", "CLIP", "--layers", "1", "--heads", "2", "--head-dim", "8", "--eval-n", "4", "--gallery", "2",
              "--n-boot", "2", "--sample-steps", "2"],
    "unclip": ["--clip", "CLIP", "--unet", "test"],
}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """The tiny CLIP, first stage and teacher pipeline the trainers above are given."""
    from t2i.clip.testing import make_tiny_clip
    from t2i.diffusion.first_stage import build_vae
    from t2i.diffusion.testing import make_tiny_pipeline

    root = tmp_path_factory.mktemp("parts")
    build_vae("f4-test", sample_size=32).save_pretrained(str(root / "vae"))
    make_tiny_pipeline(size=32).save_pretrained(str(root / "teacher"))
    return {"CLIP": str(make_tiny_clip(root / "clip")), "VAE": str(root / "vae"), "TEACHER": str(root / "teacher")}


@pytest.fixture(scope="module")
def shards(saved, tmp_path_factory):
    """The saved DatasetDict's train split as WebDataset shards (`t2i data shards`)."""
    from train.data import main as data_main

    root = tmp_path_factory.mktemp("shards") / "tiny"
    assert data_main(["shards", str(saved), "--out", str(root)]) == 0
    return root


@pytest.mark.slow
@pytest.mark.parametrize("source", ["saved", "hub", "shards"])
@pytest.mark.parametrize("trainer", sorted(EVERY_TRAINER))
def test_every_trainer_trains_on_a_saved_folder_a_hub_name_and_shards(trainer, source, saved, script, cache, parts,
                                                                     shards, tmp_path):
    """Regression (shards): vae-kl (the bench's first stage) and unclip stopped with an internal error on a stream."""
    if source == "hub":
        cache_as_hub_dataset(script)
        data, columns = "hf:t2i-test/tiny_shapes", ["--caption-column", "caption"]
    else:
        data, columns = str(saved if source == "saved" else shards), []
    options = [parts.get(o, o) for o in EVERY_TRAINER[trainer]]
    if source == "shards" and trainer == "tgan-attn":
        options += ["--hard-negatives", "0"]  # they need the captions up front; a stream is refused, naming this
    out = tmp_path / "run"
    assert t2i(["train", trainer, "--data", data, *columns, *options, *TINY, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["step"] == 2
    record = out / "t2i_training.json"
    if record.is_file():  # a text model's record of its data: both captions of every image were read
        record = json.loads(record.read_text())
        assert record["data"] == data
        assert "picture" in record["words"] if source != "shards" else record["words"] is None  # a stream: unknown


def test_a_missing_split_of_a_cached_hub_dataset_names_its_splits(script, cache):
    cache_as_hub_dataset(script)
    # it said "offline a hub dataset loads only from the datasets cache", of a dataset that was in the cache
    with pytest.raises(ValueError, match=r"^hub dataset 't2i-test/tiny_shapes' has no split 'test'; "
                                         r"its splits are \['train'\]$"):
        load_dataset("hf:t2i-test/tiny_shapes", split="test", caption_column="caption")
