"""The latent/text cache on disk (``t2i.diffusion.disk_cache``): the same values as the cache in memory,
resumed after an interruption without encoding its finished chunks again, reused once finished, and
refused when it was made from other data or models. Tiny pipeline, 16 px shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from t2i.data import load_dataset
from t2i.diffusion import disk_cache
from t2i.diffusion.disk_cache import cache_fingerprint, open_cache_dir, weights_digest
from t2i.diffusion.testing import make_tiny_pipeline
from t2i.diffusion.training import build_latent_cache, build_text_cache

OPTIONS = {"split": "train", "size": 16, "n": 20, "seed": 0}  # 20 items: chunks of 8, 8 and 4
CPU = torch.device("cpu")


class Interrupted(Exception):
    """Stands for Ctrl-C or a kill in the middle of a build."""


class Counting:
    """A model's ``encode`` (the VAE) or forward (the text encoder), counted, raising ``Interrupted`` on call
    ``fail_at`` (1-based; None = never)."""

    def __init__(self, model, fail_at: int | None = None):
        self.model, self.fail_at, self.calls = model, fail_at, 0

    def count(self) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise Interrupted

    def encode(self, x):
        self.count()
        return self.model.encode(x)

    def __call__(self, ids):
        self.count()
        return self.model(ids)


class Stream(torch.utils.data.IterableDataset):
    """Data of unknown length, as WebDataset shards are."""

    def __iter__(self):
        yield from ()


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline()


@pytest.fixture(scope="module")
def data():
    return load_dataset("shapes", **OPTIONS)


@pytest.fixture(scope="module")
def in_memory(pipe, data):
    cached = build_latent_cache(data, pipe.vae, CPU, batch_size=8)
    return cached, build_text_cache(cached.texts, pipe.tokenizer, pipe.text_encoder, CPU, batch_size=8)


def open_folder(folder, pipe, data, **options):
    fingerprint = cache_fingerprint(data, "shapes", {**OPTIONS, **options}, pipe.vae, pipe.text_encoder, pipe.tokenizer)
    return open_cache_dir(folder, fingerprint)


def build(folder, pipe, data, vae=None, text_encoder=None, log=print):
    cached = build_latent_cache(data, vae or pipe.vae, CPU, batch_size=8, folder=folder, log=log)
    states = build_text_cache(cached.texts, pipe.tokenizer, text_encoder or pipe.text_encoder, CPU, batch_size=8,
                              folder=folder, log=log)
    return cached, states


def assert_same_cache(got, expected):
    (cached, states), (reference, reference_states) = got, expected
    assert torch.equal(cached.moments, reference.moments) and cached.moments.dtype == torch.float32
    assert torch.equal(cached.text_ids, reference.text_ids) and cached.texts == reference.texts
    assert torch.equal(states, reference_states)
    for i in range(len(reference)):  # the items a training batch is made of
        a, b = cached[i], reference[i]
        assert a["text_id"] == b["text_id"] and torch.equal(a["moments"], b["moments"])


def test_the_cache_on_disk_holds_what_the_cache_in_memory_holds(tmp_path, pipe, data, in_memory):
    folder = open_folder(tmp_path / "cache", pipe, data)
    got = build(folder, pipe, data)
    assert_same_cache(got, in_memory)
    on_disk = np.load(folder / "moments.npy", mmap_mode="r")  # what another process maps
    assert on_disk.shape == (20, 8, 4, 4) and on_disk.dtype == np.float32
    assert np.array_equal(on_disk, in_memory[0].moments.numpy())
    assert np.load(folder / "text_states.npy", mmap_mode="r").shape == tuple(in_memory[1].shape)
    lines = (folder / "texts.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == in_memory[0].texts
    ids = torch.tensor([3, 0, len(got[1]) - 1])
    assert torch.equal(got[1][ids], in_memory[1][ids])  # ldm's per-batch lookup, "" last


def test_an_interrupted_build_resumes_after_its_last_finished_chunk(tmp_path, pipe, data, in_memory):
    folder = open_folder(tmp_path / "cache", pipe, data)
    with pytest.raises(Interrupted):  # killed while encoding the third chunk
        build(folder, pipe, data, vae=Counting(pipe.vae, fail_at=3))
    assert json.loads((folder / "latents.json").read_text())["items"] == 16
    lines = []
    vae = Counting(pipe.vae)
    with pytest.raises(Interrupted):  # the latents finish; killed in the second chunk of text states
        build(open_folder(folder, pipe, data), pipe, data, vae=vae,
              text_encoder=Counting(pipe.text_encoder, fail_at=2), log=lines.append)
    assert vae.calls == 1 and lines == [f"latent cache: resuming in {folder} at item 16 of 20 "
                                        "(its finished chunks are not encoded again)"]
    vae, text_encoder, lines = Counting(pipe.vae), Counting(pipe.text_encoder), []
    got = build(open_folder(folder, pipe, data), pipe, data, vae=vae, text_encoder=text_encoder, log=lines.append)
    rows = len(in_memory[1])
    assert vae.calls == 0 and text_encoder.calls == len(range(8, rows, 8))  # only the unfinished text rows
    assert lines[1] == f"text cache: resuming in {folder} at row 8 of {rows}"
    assert_same_cache(got, in_memory)

    vae, text_encoder, lines = Counting(pipe.vae), Counting(pipe.text_encoder), []
    again = build(open_folder(folder, pipe, data), pipe, data, vae=vae, text_encoder=text_encoder, log=lines.append)
    assert vae.calls == text_encoder.calls == 0  # finished: read as it is
    assert lines == [f"latent cache: reusing {folder} (20 items, {len(in_memory[0].texts)} captions), nothing encoded",
                     f"text cache: reusing {folder / 'text_states.npy'} ({rows} rows), nothing encoded"]
    assert_same_cache(again, in_memory)


def test_a_kill_between_writing_a_chunk_and_recording_it_loses_only_that_chunk(tmp_path, pipe, data, in_memory,
                                                                               monkeypatch):
    """The chunk's rows and new captions are on disk but its progress is not: they are written again, and the
    caption lines it appended are cut off, not read as part of the table."""
    folder = open_folder(tmp_path / "cache", pipe, data)
    save = disk_cache.save_progress
    calls = []

    def killed_on_the_second(path, progress):
        calls.append(progress)
        if len(calls) == 2:
            raise Interrupted
        save(path, progress)

    monkeypatch.setattr(disk_cache, "save_progress", killed_on_the_second)
    with pytest.raises(Interrupted):
        build(folder, pipe, data)
    monkeypatch.undo()
    recorded = json.loads((folder / "latents.json").read_text())
    assert recorded["items"] == 8 and len((folder / "texts.jsonl").read_text().splitlines()) > recorded["texts"]
    vae = Counting(pipe.vae)
    assert_same_cache(build(open_folder(folder, pipe, data), pipe, data, vae=vae), in_memory)
    assert vae.calls == 2  # the unrecorded chunk and the last one
    assert len((folder / "texts.jsonl").read_text().splitlines()) == len(in_memory[0].texts)


def test_a_cache_of_other_data_or_models_is_refused(tmp_path, pipe, data):
    folder = open_folder(tmp_path / "cache", pipe, data)
    build(folder, pipe, data)
    with pytest.raises(ValueError, match=r"\(it differs in data.seed\): give another --cache-dir or delete"):
        open_folder(folder, pipe, data, seed=1)
    other = make_tiny_pipeline(seed=1)
    fingerprint = cache_fingerprint(data, "shapes", OPTIONS, other.vae, pipe.text_encoder, pipe.tokenizer)
    with pytest.raises(ValueError, match=r"\(it differs in vae\)"):
        open_cache_dir(folder, fingerprint)
    fingerprint = cache_fingerprint(data, "shapes", OPTIONS, pipe.vae, other.text_encoder, pipe.tokenizer)
    with pytest.raises(ValueError, match=r"\(it differs in text_encoder.weights\)"):
        open_cache_dir(folder, fingerprint)
    fingerprint = cache_fingerprint(data, "shapes", OPTIONS, pipe.vae, pipe.text_encoder, pipe.tokenizer)
    with pytest.raises(ValueError, match=r"\(it differs in format\)"):
        open_cache_dir(folder, {**fingerprint, "format": disk_cache.FORMAT + 1})
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a cache .* give a new or empty folder"):
        open_folder(tmp_path / "notes", pipe, data)
    assert weights_digest(make_tiny_pipeline().vae) == weights_digest(pipe.vae)  # the weights, not the object
    with pytest.raises(ValueError, match="WebDataset shards are streamed: drop --cache-dir"):
        cache_fingerprint(Stream(), "data-{000..009}.tar", {}, pipe.vae)


def test_another_caption_table_gets_its_own_text_states(tmp_path, pipe, data, in_memory):
    """--partial-captions appends rows to the table: the states of the other table are not served for it."""
    folder = open_folder(tmp_path / "cache", pipe, data)
    cached, _ = build(folder, pipe, data)
    lines = []
    longer = build_text_cache(cached.texts + ["a red circle"], pipe.tokenizer, pipe.text_encoder, CPU, batch_size=8,
                              folder=folder, log=lines.append)
    assert lines[0].startswith(f"text cache: {folder} holds the text states of another caption table")
    expected = build_text_cache(cached.texts + ["a red circle"], pipe.tokenizer, pipe.text_encoder, CPU, batch_size=8)
    assert torch.equal(longer, expected) and len(longer) == len(in_memory[1]) + 1
