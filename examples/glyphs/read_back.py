"""Does the judge CLIP read the requested character, and the requested face, in each picture?

R-precision among 100 random held-out captions (``t2i eval``) partly rewards a picture with the
right face and the wrong letter: most of its 99 distractors name another face. Here each question
changes one thing only, so the two are told apart. For a held-out caption "capital letter K, DejaVu
Serif bold italic" the judge ranks
- **character**: the captions of the same face for every character ("capital letter A, DejaVu Serif
  bold italic", ..., "digit 9, ..."; 62 candidates, chance 1.6%);
- **face**: the captions of the same character in every face and style ("capital letter K, DejaVu
  Sans bold", ...; 37 candidates, chance 2.7%);
- **both**: every (character, face) caption at once (2,294 candidates).
A hit is the requested caption ranked first. The real held-out images get the same questions: their
accuracy is what this judge can read at all (it mixes up "l", "I" and "1" as people do), the
ceiling for a generator. Images come from the generator contract (caption i from seed i), as in
``t2i eval``; intervals are 95% percentile bootstraps over captions.

    python examples/glyphs/read_back.py --data data/glyphs --judge runs/glyphs/judge-clip \
        --models shapes-ldm=shapes-ldm ldm=runs/glyphs/ldm --out benchmarks/glyphs/read_back.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

from t2i.metrics.intervals import bootstrap_mean

QUESTIONS = ("character", "face", "both")


def split_caption(caption: str) -> tuple[str, str]:
    """("capital letter K", "DejaVu Serif bold italic") from the first caption of an image."""
    character, sep, face = caption.partition(", ")
    if not sep or not face:
        raise ValueError(f"not a glyphs caption ('<character>, <face and style>'): {caption!r}")
    return character, face


def first_captions(folder: Path) -> list[str]:
    """The first caption of every row of ``folder/metadata.jsonl`` (make_dataset.py's layout)."""
    meta = folder / "metadata.jsonl"
    if not meta.is_file():
        raise SystemExit(f"error: {meta} not found: build the dataset with examples/glyphs/make_dataset.py --out DATA")
    rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"][0] if isinstance(r["text"], list) else r["text"] for r in rows]


def read_back(image_features: torch.Tensor, captions: Sequence[str], table: torch.Tensor, characters: Sequence[str],
              faces: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per image, 1.0 where the judge reads the requested character / face / both, and what it read.

    ``image_features`` ``(N, P)``; ``table`` ``(C, F, P)`` embeds the caption "<characters[c]>, <faces[f]>".
    Returns ``{"character": (N,), "face": (N,), "both": (N,), "read_character": (N,) ids into characters}``.
    """
    char_id = {c: i for i, c in enumerate(characters)}
    face_id = {f: i for i, f in enumerate(faces)}
    pairs = [split_caption(c) for c in captions]
    c_true = torch.tensor([char_id[c] for c, _ in pairs])  # (N,)
    f_true = torch.tensor([face_id[f] for _, f in pairs])  # (N,)
    img = torch.nn.functional.normalize(image_features.float(), dim=-1)  # (N, P)
    txt = torch.nn.functional.normalize(table.float(), dim=-1)  # (C, F, P)
    sim = torch.einsum("np,cfp->ncf", img, txt)  # (N, C, F)
    rows = torch.arange(len(pairs))
    read_character = sim[rows, :, f_true].argmax(1)  # (N,) among the requested face's captions
    read_face = sim[rows, c_true, :].argmax(1)  # (N,) among the requested character's captions
    read_pair = sim.flatten(1).argmax(1)  # (N,) among all captions, id c * F + f
    return {"character": (read_character == c_true).float(), "face": (read_face == f_true).float(),
            "both": (read_pair == c_true * len(faces) + f_true).float(), "read_character": read_character}


def summary(hits: dict[str, torch.Tensor], captions: Sequence[str], characters: Sequence[str], seed: int = 0,
            n_boot: int = 1000) -> dict[str, Any]:
    """Accuracy and 95% interval per question, and the five most frequent character misreadings."""
    out: dict[str, Any] = {"n_images": len(captions)}
    for q in QUESTIONS:
        mean, lo, hi = bootstrap_mean(hits[q], n_boot, seed)
        out[q] = {"accuracy": mean, "ci95": [lo, hi]}
    misread = Counter(f"{split_caption(c)[0]} -> {characters[int(r)]}"
                      for c, r, hit in zip(captions, hits["read_character"], hits["character"]) if not hit)
    out["top_misreadings"] = misread.most_common(5)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the glyphs folder (train/ and test/, make_dataset.py)")
    parser.add_argument("--split", default="test", help="whose captions are drawn and read back")
    parser.add_argument("--judge", required=True, help="the evaluation CLIP (trained on the training split only)")
    parser.add_argument("--models", nargs="*", default=[], help="NAME=FOLDER of each generator to read")
    parser.add_argument("--n", type=int, default=0, help="read N captions of the split, drawn by --seed (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="caption i is drawn from seed + i; bootstrap seed")
    parser.add_argument("--out", default="", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from gan_baselines.registry import load_generator
    from t2i.clip import load_clip
    from t2i.clip.model import image_size
    from t2i.generator import generate_conditions
    from t2i.metrics.captioned import load_held_out
    from t2i.metrics.clip_features import clip_extractor, clip_text_features

    bad = [spec for spec in args.models if "=" not in spec]
    if bad:
        raise SystemExit(f"error: --models takes NAME=FOLDER (e.g. ldm=runs/glyphs/ldm), got {bad[0]!r}")
    models = dict(spec.partition("=")[::2] for spec in args.models)  # name -> folder
    data = Path(args.data)
    every = [split_caption(c) for split in ("train", "test") for c in first_captions(data / split)]
    characters, faces = sorted({c for c, _ in every}), sorted({f for _, f in every})
    judge = load_clip(args.judge)
    held_out, _ = load_held_out(str(data), args.split, image_size(judge), args.n or None, args.seed)
    captions = held_out.captions
    texts = [f"{c}, {f}" for c in characters for f in faces]
    table = clip_text_features(judge, texts).reshape(len(characters), len(faces), -1)  # (C, F, P)
    extractor = clip_extractor(judge, args.judge)

    results: dict[str, Any] = {}
    for name, folder in [("real", None), *models.items()]:
        if folder is None:
            images = held_out.images
        else:
            images = generate_conditions(load_generator(folder), captions, seed=args.seed, progress=name)
        hits = read_back(extractor(images), captions, table, characters, faces)
        results[name] = summary(hits, captions, characters, args.seed)

    print(f"{len(captions)} {args.split} captions; {len(characters)} characters x {len(faces)} faces; judge {args.judge}")
    print("| images | character (chance 1/%d) | face (chance 1/%d) | both | most frequent misreadings |"
          % (len(characters), len(faces)))
    print("| --- | --- | --- | --- | --- |")
    for name, res in results.items():
        cells = [f"{res[q]['accuracy']:.3f} [{res[q]['ci95'][0]:.3f}, {res[q]['ci95'][1]:.3f}]" for q in QUESTIONS]
        misread = ", ".join(f"{m} ({k})" for m, k in res["top_misreadings"])
        print(f"| {name} | " + " | ".join(cells) + f" | {misread} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        report = {"data": str(data), "split": args.split, "judge": args.judge, "seed": args.seed,
                  "characters": len(characters), "faces": len(faces), "results": results, "models": models}
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
