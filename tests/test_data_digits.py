"""sklearn's bundled digits: split, labels, captions, upsampling, and `t2i data digits`."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from t2i.data import load_dataset
from t2i.data.digits import CLASS_NAMES, split_indices
from train.data import main as data_main


def test_fixed_stratified_split():
    targets = load_digits().target
    train, test = split_indices(targets, "train"), split_indices(targets, "test")
    assert len(train) == 1442 and len(test) == 355
    assert set(train).isdisjoint(test) and len(set(train) | set(test)) == len(targets)
    for c in range(10):  # every class gets 20% (rounded down) in test
        assert (targets[test] == c).sum() == (targets == c).sum() // 5
    with pytest.raises(ValueError, match="split must be one of"):
        split_indices(targets, "novel")


def test_items_labels_captions():
    ds = load_dataset("digits", split="test")
    assert len(ds) == 355 and ds.channels == 1 and ds.size == 32
    assert ds.num_classes == 10 and ds.class_names == CLASS_NAMES
    item = ds[17]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["text"] == f"a handwritten digit {item['label']}" and item["index"] == 17
    bunch = load_digits()
    original = bunch.images[split_indices(bunch.target, "test")[17]] / 16.0  # (8, 8)
    assert bunch.target[split_indices(bunch.target, "test")[17]] == item["label"]
    # a smooth upsampling: many grey levels, and averaging back down recovers the 8x8 digit
    assert len(torch.unique(item["image"])) > 40
    down = F.avg_pool2d(item["image"][None], 4)[0, 0].numpy()  # (8, 8)
    assert np.abs(down - original).mean() < 0.08


def test_size_channels_and_n():
    ds = load_dataset("digits", size=16, channels=3, n=12)
    assert len(ds) == 12 and ds[0]["image"].shape == (3, 16, 16)
    assert torch.equal(ds[0]["image"][0], ds[0]["image"][2])
    with pytest.raises(ValueError, match="n must be in"):
        load_dataset("digits", split="test", n=10_000)


def test_t2i_data_digits_writes_both_splits(tmp_path):
    assert data_main(["digits", "--out", str(tmp_path / "d"), "--size", "16"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "d" / "test" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 355 and rows[0]["text"] == f"a handwritten digit {rows[0]['label']}"
    assert len((tmp_path / "d" / "train" / "metadata.jsonl").read_text().splitlines()) == 1442
    folder = load_dataset(tmp_path / "d", split="test", size=16, channels=1)
    memory = load_dataset("digits", split="test", size=16)
    assert folder.num_classes == 10 and folder[5]["label"] == memory[5]["label"]
    assert torch.equal(folder[5]["image"], memory[5]["image"])  # PNG round trip is lossless
