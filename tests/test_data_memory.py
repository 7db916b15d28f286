"""User images are decoded and resized once per process and kept (unless crops are random): the items are the
same pixels, flips and captions as reading every file on every access."""

import json

import pytest
import torch
from PIL import Image

import t2i.data.folder as folder
from t2i.data import load_dataset
from t2i.data.bad_data import load_image


def write_folder(root, n=6):
    root.mkdir()
    rows = []
    for i in range(n):  # non-square RGBA gradients: conversion, resize and flip all change the pixels
        image = Image.new("RGBA", (10 + i, 7), (0, 0, 0, 0))
        for x in range(image.width):
            for y in range(3, 7):
                image.putpixel((x, y), (20 * x, 30 * i, 10 * y, 255))
        image.save(root / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": [f"image {i}", f"picture {i}"]}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("resize", ["center-crop", "pad", "stretch"])
def test_kept_images_are_the_pixels_flips_and_captions_of_a_fresh_read(tmp_path, resize):
    root = write_folder(tmp_path / "f")
    options = dict(size=4, resize=resize, random_flip=0.5, draw_caption=True, seed=3, background="white")
    ds = load_dataset(root, **options)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for j in range(len(ds)):
            item = ds[j]
            rng = ds.augment.rng(j)  # what every access did before: draw the caption, decode, fit, maybe flip
            text = ds.augment.caption(ds.caption_lists[j], rng)
            fresh = load_image(ds.rows[j].path, 4, 3, augment=ds.augment, rng=rng)[0]
            assert item["text"] == text and torch.equal(item["image"], fresh), (epoch, j)
    for path in root.glob("*.png"):  # kept: the files are not read again
        path.unlink()
    assert torch.equal(ds[2]["image"], ds[2]["image"]) and not ds.report.problems


def test_random_crops_and_a_full_memory_read_the_file_each_time(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "f", n=2)
    crops = load_dataset(root, size=4, resize="random-crop")
    crops[0]
    monkeypatch.setattr(folder, "MEMORY_BYTES", 3 * 4 * 4)  # room for one 4 x 4 RGB image
    small = load_dataset(root, size=4)
    small[0], small[1]
    assert not getattr(crops, "_memory", {}) and list(small._memory) == [0]
    (root / "0.png").unlink()
    with pytest.warns(UserWarning):
        assert crops[0]["index"] == 1  # read again: the deleted file is reported and the next item given
    assert small[0]["index"] == 0  # kept in memory
