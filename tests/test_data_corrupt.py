"""The corrupted-data suite: every layout with every kind of bad file or row, 0 crashes, every problem
reported (with line numbers for metadata lines), and every trainer prints the bad-data report.

Regressions of issue 14: a CSV row with more fields than the header crashed (TypeError), a shapes
folder with an appended user row without ``objects`` crashed (AttributeError), one bad UTF-8 byte
rejected a whole metadata file, and trainers dropped bad rows silently."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from t2i.data import load_dataset, shapes
from t2i.data.bad_data import BadDataError
from train.data import main as data_main

from .support.corrupt_data import write_zoo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return write_zoo(tmp_path_factory.mktemp("zoo"))


def problems(report) -> dict[str, int]:
    return {k: v for k, v in report.counts.items() if k != "converted"}


def every_item(dataset) -> list[dict]:
    """Iterate like a trainer (DataLoader, batches) and check every tensor."""
    items = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lazily found bad files warn; the report counts them
        for batch in DataLoader(dataset, batch_size=4):
            assert batch["image"].shape[1:] == (3, 16, 16) and torch.isfinite(batch["image"]).all()
            assert batch["image"].min() >= 0 and batch["image"].max() <= 1
            items += batch["text"]
    return items


def test_imagefolder_zoo_decoded_up_front(zoo):
    ds = load_dataset(zoo["folder"], size=16, check="decode")
    assert problems(ds.report) == zoo["folder_problems"]
    assert len(ds) == zoo["folder_usable"] and ds.report.converted == zoo["folder_converted"]
    assert len(every_item(ds)) == len(ds)
    details = " ".join(f"{path} ({detail})" for kept in ds.report.examples.values() for path, detail in kept)
    assert "metadata.jsonl:45 (not UTF-8 text" in details  # the bad line, by number (24 good + 18 file rows + 3)
    assert "leaves the dataset folder" in details and "not a regular file" in details
    assert "... and 6 more" in ds.report.summary()  # a trainer's print shows 5 per kind


def test_imagefolder_zoo_header_check_finds_truncated_files_while_iterating(zoo):
    ds = load_dataset(zoo["folder"], size=16)  # cheap check: the truncated PNG passes its header
    before = problems(ds.report)
    assert before.get("truncated", 0) == 0
    texts = every_item(ds)
    assert len(texts) == len(ds)  # the truncated file's slot is filled by the next good item
    assert problems(ds.report) == zoo["folder_problems"]


def test_strict_refuses_the_zoo_with_the_whole_report(zoo):
    with pytest.raises(BadDataError, match="strict mode") as err:
        load_dataset(zoo["folder"], size=16, strict=True)
    for kind in zoo["folder_problems"]:
        assert f"{kind}: " in str(err.value)


def test_csv_zoo_extra_fields_bad_utf8_and_absolute_paths(zoo):
    ds = load_dataset(zoo["csv"], size=16, check="decode")
    assert problems(ds.report) == zoo["csv_problems"] and len(ds) == zoo["csv_usable"]
    texts = every_item(ds)
    assert "a quoted caption, with a comma" in texts and "an absolute path is fine in a CSV" in texts
    assert "after the bad line" in texts  # only the bad line is dropped
    summary = ds.report.summary()
    assert "data.csv:23" in summary and "4 fields, the header has 3" in summary and "data.csv:28" in summary


def test_shards_zoo(zoo):
    ds = load_dataset(zoo["shards"], size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = list(ds)
    assert len(items) == zoo["shard_usable"] and problems(ds.report) == zoo["shard_problems"]


def test_missing_columns_name_the_option(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    shapes.render(shapes.make_scenes(1)[0]).save(folder / "a.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "caption": "a red circle"}) + "\n")
    with pytest.raises(ValueError, match=r"no 'text' column \(set --caption-column, or caption_column=... in load_dataset, to columns found: \['caption', "):
        load_dataset(folder)
    assert load_dataset(folder, caption_column="caption")[0]["text"] == "a red circle"
    (tmp_path / "d.csv").write_text("path,title\nf/a.png,a red circle\n")
    with pytest.raises(ValueError, match=r"no 'filepath' column \(set --image-column, or image_column=... in load_dataset"):
        load_dataset(tmp_path / "d.csv")


def test_shapes_folder_with_a_user_row_without_objects(tmp_path):
    """Regression: AttributeError on an appended row with no ``objects``."""
    folder = shapes.write_dataset(tmp_path / "s", 6, progress=False)
    shapes.render(shapes.make_scenes(1, seed=3)[0]).save(folder / "mine.png")
    with open(folder / "metadata.jsonl", "a") as fh:
        fh.write(json.dumps({"file_name": "mine.png", "text": "my own picture"}) + "\n")
        fh.write(json.dumps({"file_name": "mine.png", "text": "broken objects", "objects": "a circle"}) + "\n")
    ds = load_dataset(folder)
    assert len(ds) == 7 and ds.report.counts == {"bad_row": 1}
    assert ds.records[-1] == {"caption": "my own picture", "objects": [], "relation": None, "image_size": 32}
    assert len(ds.records[0]["objects"]) >= 1


def test_validate_command_reports_the_zoo_without_crashing(zoo, capsys):
    for source in (zoo["folder"], zoo["csv"], zoo["shards"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert data_main(["validate", str(source)]) == 1
    out = capsys.readouterr().out
    assert "metadata.jsonl:" in out and "data.csv:23" in out and "FOUND" in out


class _StopBeforeTraining(Exception):
    pass


def test_every_trainer_prints_the_bad_data_report(zoo, tmp_path, capsys, monkeypatch):
    """Every trainer hands its dataset to run.dataloader, which prints the report before the first step
    (the loop is stopped there: what is checked is the wiring, not the training)."""
    import train.ae
    import train.cgan
    import train.clip
    import train.dcgan
    import train.gan
    import train.ldm
    import train.tgan
    import train.vae
    import train.vae_kl
    from t2i.clip.testing import make_tiny_clip
    from t2i.diffusion.first_stage import build_vae
    from t2i.runtime import Run

    def stop(self, loader):
        raise _StopBeforeTraining
        yield  # a generator, like Run.loop

    monkeypatch.setattr(Run, "loop", stop)
    clip = make_tiny_clip(tmp_path / "clip")
    build_vae("f4-test", sample_size=16).save_pretrained(str(tmp_path / "first_stage"))
    common = ["--data", str(zoo["folder"]), "--size", "16", "--steps", "1", "--batch-size", "4"]
    small_gan = ["--g-base", "8", "--d-base", "8", "--latent-dim", "8"]
    runs = {
        "ae": (train.ae.main, ["--variant", "plain", "--hidden", "16"]),
        "vae": (train.vae.main, ["--hidden", "16"]),
        "cvae": (train.vae.main, ["--conditioning", "label", "--hidden", "16"]),
        "gan": (train.gan.main, ["--hidden", "16", "--layers", "1", "--latent-dim", "8"]),
        "dcgan": (train.dcgan.main, small_gan),
        "cgan": (train.cgan.main, small_gan),
        "tgan": (train.tgan.main, [*small_gan, "--clip", str(clip)]),
        "clip": (train.clip.main, ["--model", str(clip), "--eval-n", "0"]),
        "vae-kl": (train.vae_kl.main, ["--arch", "f4-test"]),
        "ldm": (train.ldm.main, ["--vae", str(tmp_path / "first_stage"), "--clip", str(clip), "--unet", "test",
                                 "--cache", "true"]),  # the report travels with the latent cache
    }
    for name, (main, extra) in runs.items():
        with pytest.raises(_StopBeforeTraining):
            main([*common, *extra, "--out", str(tmp_path / name)])
        out = capsys.readouterr().out
        assert "bad-data report" in out and "too_large: 2" in out and "metadata.jsonl:" in out, name


@pytest.mark.slow
def test_a_trainer_reports_files_found_bad_while_training(zoo, tmp_path, capsys):
    """The truncated PNG passes the header check; the run reports it at the end, and trains to the end."""
    import train.ae

    common = ["--data", str(zoo["folder"]), "--size", "16", "--batch-size", "8", "--log-every", "1",
              "--checkpoint-every", "0", "--variant", "plain", "--hidden", "16"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train.ae.main([*common, "--steps", "4", "--out", str(tmp_path / "ae")]) == 0  # a whole epoch
    out = capsys.readouterr().out
    assert "bad-data report" in out and "bad data found during training" in out and "img/truncated.png" in out
    assert (tmp_path / "ae" / "model" / "model.safetensors").is_file()


def test_vae_kl_on_a_folder_without_test_split(zoo, tmp_path, capsys):
    """Regression: vae-kl trained, then crashed looking for a test split a single folder does not have."""
    import train.vae_kl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train.vae_kl.main(["--data", str(zoo["folder"]), "--size", "16", "--steps", "1", "--batch-size", "4",
                                  "--arch", "f4-test", "--scale-images", "8", "--eval-images", "8",
                                  "--checkpoint-every", "0", "--out", str(tmp_path / "v")]) == 0
    assert "no test split" in capsys.readouterr().out
    assert json.loads((tmp_path / "v" / "vae_metrics.json").read_text())["test_psnr_db"] > 0
