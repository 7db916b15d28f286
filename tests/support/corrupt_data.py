"""A zoo of broken user data for the corrupted-data suite: every layout, every kind of bad file.

``write_zoo(root)`` writes an imagefolder (``metadata.jsonl``), the same rows as a CSV, and
WebDataset shards, each mixing good images with every problem the loaders must survive, and
returns what a correct loader must report. Nothing here is big on disk: the "huge" and
"bomb" images are valid PNG headers that *claim* enormous sizes (and a real 3000 x 2000 photo
that must load).
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from t2i.data import shapes


def png_bytes(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save)
    return buf.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` (valid CRC) with a 1-pixel IDAT: a decompression-bomb header."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1), (255, 0, 0))))
    ihdr = data.index(b"IHDR")  # length(4) 'IHDR' width(4) height(4) ... crc(4)
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    body = bytes(data[ihdr:ihdr + 4 + 13])
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return bytes(data)


def good_images(n: int, size: int = 24) -> list[tuple[Image.Image, str]]:
    return [(shapes.render(r, size), r["caption"]) for r in shapes.make_scenes(n, seed=5, size=size)]


def _bad_files(root: Path) -> dict[str, tuple[str, str]]:
    """Write every bad or unusual image under root/img; name -> (expected kind, caption)."""
    img = root / "img"
    img.mkdir(parents=True, exist_ok=True)
    scene = shapes.render(shapes.make_scenes(1, seed=9)[0], 32)
    whole = png_bytes(scene)
    files: dict[str, tuple[bytes | Image.Image | None, str]] = {
        "truncated.png": (whole[: len(whole) // 2], "truncated"),
        "zero.png": (b"", "corrupt"),
        "text.png": (b"hello, I am not an image\n" * 4, "corrupt"),
        "huge_header.png": (png_claiming_size(9000, 9000), "too_large"),  # 81 M pixels: over MAX_PIXELS
        "bomb.png": (png_claiming_size(30000, 30000), "too_large"),  # 900 M pixels: Pillow's bomb error
        "float.tif": (Image.new("F", (8, 8), 0.5), "unsupported"),
        "cmyk.jpg": (scene.convert("CMYK"), "converted"),
        "deep16.png": (Image.fromarray(np.full((16, 16), 40000, np.uint16)), "converted"),
        "palette.png": (scene.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "converted"),
        "palette_alpha.png": (None, "converted"),
        "rgba.png": (scene.convert("RGBA"), "converted"),
        "la.png": (scene.convert("LA"), "converted"),
        "bilevel.png": (scene.convert("1"), "converted"),
        "big_photo.jpg": (scene.resize((3000, 2000)), "ok"),  # large but allowed: must load and resize
        "animated.gif": (None, "converted"),
    }
    out = {}
    for name, (content, kind) in files.items():
        path = img / name
        if name == "palette_alpha.png":
            pal = scene.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
            pal.info["transparency"] = 0
            pal.save(path, transparency=0)
        elif name == "animated.gif":
            frames = [scene, scene.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
            frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif name.endswith(".jpg"):
            content.save(path, quality=90)
        else:
            content.save(path)
        out[f"img/{name}"] = (kind, f"a picture named {name}")
    (img / "folder.png").mkdir(exist_ok=True)  # a folder where an image should be
    out["img/folder.png"] = ("corrupt", "a folder named like an image")
    if os.name == "posix":
        if not (img / "zero_device.png").is_symlink():
            (img / "zero_device.png").symlink_to("/dev/zero")  # reading it would never end
        out["img/zero_device.png"] = ("corrupt", "a link to /dev/zero")
        if not (img / "pipe.png").exists():
            os.mkfifo(img / "pipe.png")  # opening it would block forever
        out["img/pipe.png"] = ("corrupt", "a named pipe")
    return out


def write_zoo(root: Path, n_good: int = 24) -> dict:
    """Write ``root/folder`` (imagefolder), ``root/data.csv`` and ``root/shards``; return the expectations."""
    folder = root / "folder"
    folder.mkdir(parents=True, exist_ok=True)
    goods = good_images(n_good)
    rows: list[bytes] = []
    for i, (im, caption) in enumerate(goods):
        im.save(folder / f"good_{i:02d}.png")
        rows.append(json.dumps({"file_name": f"good_{i:02d}.png", "text": caption, "label": i % 3}).encode())
    bad = _bad_files(folder)
    for k, (name, (_, caption)) in enumerate(bad.items()):
        rows.append(json.dumps({"file_name": name, "text": caption, "label": k % 3}).encode())
    (root / "outside.png").write_bytes(png_bytes(goods[0][0]))  # a real image outside the dataset folder
    row_problems = [  # (raw line, expected kind)
        (b'{"file_name": "good_00.png", "text": "no closing brace"', "bad_row"),  # invalid JSON
        (b'[1, 2, 3]', "bad_row"),  # JSON, not an object
        (b'{"file_name": "good_01.png", "text": "caf\xe9 au lait"}', "bad_row"),  # Latin-1 byte: not UTF-8
        (json.dumps({"text": "no file name", "label": 0}).encode(), "bad_row"),
        (json.dumps({"file_name": "", "text": "empty file name"}).encode(), "bad_row"),
        (json.dumps({"file_name": 7, "text": "file name is a number"}).encode(), "bad_row"),
        (json.dumps({"file_name": "../outside.png", "text": "leaves the folder"}).encode(), "bad_row"),
        (json.dumps({"file_name": "/etc/passwd", "text": "an absolute path elsewhere"}).encode(), "bad_row"),
        (json.dumps({"file_name": "good_02.png", "label": 0}).encode(), "empty_caption"),  # no text key
        (json.dumps({"file_name": "good_03.png", "text": ["", " "], "label": 0}).encode(), "empty_caption"),  # several captions, none usable
        (json.dumps({"file_name": "good_04.png", "text": 12, "label": 0}).encode(), "empty_caption"),
        (json.dumps({"file_name": "good_05.png", "text": "  ", "label": 0}).encode(), "empty_caption"),
        (json.dumps({"file_name": "good_06.png", "text": "label is text", "label": "seven"}).encode(), "bad_row"),
        (json.dumps({"file_name": "good_07.png", "text": "negative label", "label": -2}).encode(), "bad_row"),
        (json.dumps({"file_name": "good_08.png", "text": "no label while the others have one"}).encode(), "bad_row"),
        (json.dumps({"file_name": "missing.png", "text": "no such file", "label": 1}).encode(), "missing"),
    ]
    lines = rows + [line for line, _ in row_problems] + [b"", b"   "]  # blank lines are skipped silently
    (folder / "metadata.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")  # with a byte-order mark
    expected: dict[str, int] = {}
    for kind, _ in bad.values():
        if kind not in ("ok", "converted"):
            expected[kind] = expected.get(kind, 0) + 1
    for _, kind in row_problems:
        expected[kind] = expected.get(kind, 0) + 1
    n_usable = n_good + sum(kind in ("ok", "converted") for kind, _ in bad.values())
    converted = sum(kind == "converted" for kind, _ in bad.values())

    # the same good rows as a CSV, plus its own problems
    own_rows = (1, 3, 5)  # images whose only good row is one of the special rows below (one row per image)
    csv_lines = ["filepath,title,label"] + [f"folder/good_{i:02d}.png,{c},{i % 3}" for i, (_, c) in enumerate(goods)
                                            if i not in own_rows]
    csv_lines += [
        "folder/good_00.png,a caption, with an unquoted comma,1",  # 4 fields, header has 3
        'folder/good_01.png,"a quoted caption, with a comma",1',  # fine
        "folder/good_02.png",  # too few fields: no caption (and no label)
        f"{(folder / 'good_03.png').resolve()},an absolute path is fine in a CSV,2",
        "folder/nowhere.png,missing file,0",
    ]
    csv_bytes = ("\n".join(csv_lines) + "\n").encode()
    csv_bytes += b"folder/good_04.png,na\xefve caption in latin-1,0\n"  # bad UTF-8 on its own line
    csv_bytes += b"folder/good_05.png,after the bad line,0\n"
    (root / "data.csv").write_bytes(b"\xef\xbb\xbf" + csv_bytes)
    csv_expected = {"bad_row": 2, "empty_caption": 1, "missing": 1}
    csv_usable = n_good  # good_00's and good_02's bad rows name images that have a good row too

    # shards: good samples and broken ones
    shard_dir = root / "shards"
    shard_dir.mkdir(exist_ok=True)
    whole = png_bytes(goods[2][0].resize((64, 64)))
    members = []
    for i, (im, caption) in enumerate(goods[:8]):
        members += [(f"{i:06d}.png", png_bytes(im)), (f"{i:06d}.txt", caption.encode())]
    members += [("000100.png", b"garbage"), ("000100.txt", b"corrupt image"),
                ("000101.txt", b"caption without image"),
                ("000102.png", png_bytes(goods[0][0])), ("000102.txt", b"\xff\xfe not utf-8"),
                ("000103.png", png_claiming_size(30000, 30000)), ("000103.txt", b"a bomb"),
                ("000104.png", png_bytes(goods[1][0])), ("000104.txt", b"bad label"), ("000104.cls", b"x"),
                ("000105.png", whole[: len(whole) // 3]), ("000105.txt", b"truncated")]
    with tarfile.open(shard_dir / "shard-00000.tar", "w") as tar:
        for name, blob in members:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    shard_expected = {"corrupt": 1, "missing": 1, "empty_caption": 1, "too_large": 1, "bad_row": 1, "truncated": 1}
    return {"folder": folder, "csv": root / "data.csv", "shards": shard_dir,
            "folder_problems": expected, "folder_usable": n_usable, "folder_converted": converted,
            "csv_problems": csv_expected, "csv_usable": csv_usable,
            "shard_problems": shard_expected, "shard_usable": 8}
