"""Score a saved generator, or a folder of generated images, with any metrics (t2i eval).

Two sources of images:
- ``--model M --prompts P``: any saved generator (``gan_baselines.registry.load_generator``),
  called exactly like ``t2i sample``: condition ``i`` with seed ``--seed + i``, ``--n`` images
  each, so ``t2i sample`` with the same arguments writes the very images scored here;
- ``--images DIR``: already generated images, a folder with ``metadata.jsonl`` (``file_name``,
  ``text``; optional ``label``, ``novel``), e.g. the output of ``t2i sample``.

``--prompts`` is a text file (one prompt per line), a ``.jsonl`` file (``text`` and/or
``label``, optional ``novel``), ``shapes:SPLIT:N`` (N captions of a shapes split, e.g.
``shapes:novel:200``) or ``digits:N`` (labels 0..9 in turn). The data (shapes, digits or
other) is recognised from the prompts; ``--metrics auto`` picks what fits it: prompt
accuracy (shapes) or the digits classifier's scores, domain FID/KID, precision/recall,
density/coverage against real images of the same data, diversity when ``--n`` >= 2, CLIP
score with ``--clip``, FID/KID/IS with local Inception weights. Next to every distribution
metric the **real-vs-real floor** (a second real sample against the first) says what a
perfect generator would score with this many images. Writes ``OUT/metrics.json`` and
``OUT/grid.png`` (and, for shapes, ``OUT/judgements.jsonl``). ``t2i eval clip ...`` evaluates a
CLIP model instead (``train/eval_clip.py``).

Any captioned data: ``--prompts`` may be a captioned source (a folder with metadata.jsonl, a
.csv/.tsv, shards, a datasets folder or hf:NAME; ``--real-split``, default its test split or, for
a single-split source such as ``mydata/test``, all of it): its captions are the prompts (the first
``--real-n``), its images the reals, read as ``--model`` was trained (``--resize``, ``--background``
and the columns of its run's config.json; else of ``--clip``'s run; ``auto``). Judged by ``--clip``,
an evaluation CLIP trained on the training split only (``t2i train clip --data mydata --out
runs/eval-clip``), ``--metrics auto`` gives (``t2i.metrics.captioned``): r-precision (own caption ranked first among 100 held-out
captions, Xu et al. 2018, 95% interval) beside the real images' R-precision (the ceiling),
clip-score beside the real images', clip-fid/clip-kid (FID/KID on the CLIP's image embeddings)
beside the real-vs-real floor (two disjoint halves of the reals), clip-retrieval R@1/5/10. The grid
shows each real image next to the generated ones, with the caption. A class-conditional model (``cgan``) is
scored the same way on class folders (``t2i.data.folder``: each image captioned by its class's name): it draws the
class of each held-out image. Metric names take - or _.

    t2i eval --images /tmp/samples --out /tmp/eval
    t2i eval --model shapes-tgan --prompts shapes:novel:100 --n 2 --out /tmp/eval-tgan
    t2i eval --model runs/ldm --prompts mydata/test --clip runs/eval-clip --n 1 --out runs/eval-ldm \\
        --metrics r_precision,clip_score,clip_fid,clip_kid
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from t2i.config import config_to_dict, parse_config
from t2i.metrics import METRICS, compute, inception_available

DISTRIBUTION = ("domain-fid", "domain-kid", "precision-recall", "density-coverage", "fid", "kid")


@dataclass
class EvalConfig:
    model: str = ""  # a saved generator folder or built-in name (or use --images)
    images: str = ""  # a folder of generated images with metadata.jsonl (instead of --model)
    prompts: str = ""  # with --model: a .txt/.jsonl file, shapes:SPLIT:N, digits:N, or a captioned source (held-out split)
    metrics: str = "auto"  # comma-separated metric names (- or _), or auto (what fits the data)
    n: int = 1  # images per prompt (with --model)
    seed: int = 0  # seed of the first prompt; prompt i uses seed + i, as in t2i sample (also: R-precision draws)
    out: str = "runs/eval"  # output folder: metrics.json, grid.png
    real_n: int = 1000  # real images for distribution metrics (digits: at most 355); a captioned source: its first N items
    real_split: str = "auto"  # split of the real images; auto: shapes novel if every prompt is novel, else test (a single-split source: all of it)
    clip: str = ""  # the evaluation CLIP: an open_clip folder, a t2i train clip run or built-in name (not the generators' own)
    image_column: str = ""  # a captioned source's image column ("" = as --model (else --clip) was trained, else its default)
    caption_column: str = ""  # a captioned source's caption column ("" = as in training, else its default)
    resize: str = "auto"  # a captioned source's images to square: center-crop | pad | stretch (auto = as in training, else center-crop)
    background: str = "auto"  # a captioned source's colour under transparent pixels: black | white (auto = as in training, else black)
    candidates: int = 100  # r-precision: the true caption + (candidates - 1) others of the held-out split
    inception_weights: str = ""  # local FID Inception weights file for fid/kid/inception-score ($T2I_INCEPTION_WEIGHTS)
    device: str = "cpu"  # device of the generator (and the evaluation CLIP)


def captioned_source(spec: str) -> bool:
    """Whether ``--prompts`` names a captioned dataset (its captions are prompts, its images reals)."""
    if not spec or spec.startswith(("shapes:", "digits:")) or Path(spec).suffix.lower() in (".txt", ".jsonl"):
        return False
    from t2i.data import describe_source

    try:
        describe_source(spec)
    except ValueError:
        return False
    return True


def metric_names(text: str) -> list[str]:
    return [m.strip().replace("_", "-") for m in text.split(",") if m.strip()]


def read_prompts(spec: str) -> tuple[list[str] | None, list[int] | None, list[bool] | None]:
    """Prompts, labels and novel flags from a file or a ``shapes:SPLIT:N`` / ``digits:N`` spec."""
    if spec.startswith("shapes:"):
        from t2i.data.shapes import prompts as shapes_prompts

        parts = spec.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise SystemExit(f"t2i eval: --prompts {spec!r}: expected shapes:SPLIT:N, e.g. shapes:novel:200")
        captions = [c for c, _ in shapes_prompts(int(parts[2]), seed=0, split=parts[1])]
        return captions, None, [parts[1] == "novel"] * len(captions)
    if spec.startswith("digits:"):
        count = spec.split(":")[1]
        if not count.isdigit():
            raise SystemExit(f"t2i eval: --prompts {spec!r}: expected digits:N, e.g. digits:100")
        return None, [i % 10 for i in range(int(count))], None
    path = Path(spec)
    if not path.is_file():
        raise SystemExit(f"t2i eval: --prompts {spec!r} is neither a file nor shapes:SPLIT:N / digits:N nor a "
                         "captioned source (a folder with metadata.jsonl, a .csv, shards, a datasets folder, hf:NAME)")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts = [r.get("text") for r in rows]
        labels = [r.get("label") for r in rows]
        novel = [r.get("novel") for r in rows]
        return (texts if all(texts) else None, labels if all(x is not None for x in labels) else None,
                novel if all(x is not None for x in novel) else None)
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise SystemExit(f"t2i eval: {path} holds no prompts (one per line)")
    return prompts, None, None


def generate(generator: Any, prompts: list[str] | None, labels: list[int] | None, n: int,
             seed: int) -> tuple[list[Image.Image], list[str], list[int] | None]:
    """Condition i from seed + i, n images each (the contract's rule, as ``t2i sample``) -> images, texts, labels."""
    from t2i.generator import generate_conditions

    conditions = prompts if prompts is not None else labels
    images = generate_conditions(generator, conditions, seed=seed, n=n, progress="generating")
    texts = [prompts[i] if prompts is not None else str(labels[i]) for i in range(len(conditions)) for _ in range(n)]
    return images, texts, [label for label in labels for _ in range(n)] if labels is not None else None


def class_labels(generator: Any, captions: list[str], model: str) -> list[int]:
    """The class index of each caption of held-out class folders (captioned by their names, ``t2i.data.folder``),
    by the class-conditional generator's ``class_names``."""
    from t2i.data.folder import class_caption

    index = {class_caption(name): k for k, name in enumerate(generator.class_names)}
    unknown = sorted({c for c in captions if c not in index})
    if unknown:
        raise SystemExit(f"t2i eval: {model} is class-conditional, and the held-out captions {unknown[:5]} name none "
                         f"of its classes ({', '.join(generator.class_names)}): give class folders of the same classes")
    return [index[c] for c in captions]


def read_image_folder(folder: Path) -> tuple[list[Image.Image], list[str], list[int] | None, list[bool] | None, int]:
    """Images, texts, labels, novel flags and images per prompt (from ``image_index``, as t2i sample writes)."""
    meta = folder / "metadata.jsonl"
    if not meta.is_file():
        raise SystemExit(f"t2i eval: --images {folder} has no metadata.jsonl (rows with file_name and text)")
    rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"t2i eval: {meta} is empty")
    images = []
    for r in rows:
        try:
            with Image.open(folder / r["file_name"]) as im:
                images.append(im.convert("L" if im.mode in ("L", "1") else "RGB"))
        except (OSError, KeyError) as err:
            raise SystemExit(f"t2i eval: cannot read the image of row {r} in {meta}: {err}") from None
    labels = [r["label"] for r in rows] if all("label" in r for r in rows) else None
    novel = [bool(r["novel"]) for r in rows] if all("novel" in r for r in rows) else None
    per_prompt = 1 + max(int(r.get("image_index", 0)) for r in rows)
    return images, [r.get("text", "") for r in rows], labels, novel, per_prompt


def kind_of(texts: list[str], labels: list[int] | None, images: list[Image.Image]) -> str:
    """shapes when every text is a shapes caption; digits for 1-channel or digit-labelled images; else other."""
    from t2i.data.shapes import parse_caption

    try:
        for t in texts:
            parse_caption(t)
        return "shapes"
    except ValueError:
        pass
    if images[0].mode == "L" or (labels is not None and all(0 <= x <= 9 for x in labels)):
        return "digits"
    return "other"


def real_images(kind: str, split: str, n: int, size: int, seed: int) -> torch.Tensor:
    from t2i.data import load_dataset

    if kind == "shapes":
        data = load_dataset("shapes", split=split, size=size, n=n, seed=seed)
    else:
        data = load_dataset("digits", split=split, size=size)
        data.images = data.images[torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed))[:n]]
    return data.images.float() / 255  # (n, C, S, S)


def auto_metrics(kind: str, cfg: EvalConfig, n_per_group: int) -> list[str]:
    names = {"shapes": ["prompt-accuracy"], "digits": ["digits-score"], "other": []}[kind]
    if kind != "other":
        names += ["domain-fid", "domain-kid", "precision-recall", "density-coverage"]
    if n_per_group >= 2 and kind != "other":
        names.append("diversity")
    if cfg.clip:
        names.append("clip-score")
    if inception_available(cfg.inception_weights or None):
        names += ["fid", "kid", "inception-score"]
    return names


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "clip":  # t2i eval clip ...: the CLIP evaluation entry point, through the dispatcher
        from train.cli import main as t2i_command

        return t2i_command(["eval", "clip", *argv[1:]])
    cfg = parse_config(EvalConfig, argv, prog="t2i eval", description=__doc__)
    if bool(cfg.model) == bool(cfg.images):
        raise SystemExit("t2i eval: give exactly one of --model (with --prompts) or --images DIR")
    if cfg.model and captioned_source(cfg.prompts):
        return evaluate_captioned(cfg)
    start = time.perf_counter()
    novel = None
    per_prompt = 1
    if cfg.images:
        images, texts, labels, novel, per_prompt = read_image_folder(Path(cfg.images))
    else:
        if not cfg.prompts:
            raise SystemExit("t2i eval: --model needs --prompts (a file, shapes:SPLIT:N or digits:N)")
        from gan_baselines.registry import load_generator

        prompts, labels, novel_prompts = read_prompts(cfg.prompts)
        generator = load_generator(cfg.model, device=cfg.device)
        if generator.conditioning == "label" and labels is None:
            raise SystemExit(f"t2i eval: {cfg.model} is class-conditional: give labels (a .jsonl or digits:N)")
        if generator.conditioning == "text" and prompts is None:
            raise SystemExit(f"t2i eval: {cfg.model} is text-conditional: give prompts")
        images, texts, labels = generate(generator, prompts if generator.conditioning == "text" else None,
                                         labels if generator.conditioning == "label" else None, cfg.n, cfg.seed)
        novel = [f for f in novel_prompts for _ in range(cfg.n)] if novel_prompts else None
    kind = kind_of(texts, labels, images)
    groups = labels if kind == "digits" and labels is not None else texts
    per_group = max(Counter(groups).values())
    names = auto_metrics(kind, cfg, per_group) if cfg.metrics == "auto" else metric_names(cfg.metrics)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise SystemExit(f"t2i eval: unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    from t2i.metrics.captioned import CAPTIONED_METRICS

    held_out_only = [m for m in names if m in CAPTIONED_METRICS and m != "clip-score"]
    if held_out_only:
        raise SystemExit(f"t2i eval: {held_out_only} need a held-out captioned split: give --model with --prompts "
                         "a captioned source (a folder with metadata.jsonl, a .csv, a datasets folder) and --clip")
    if not names:
        raise SystemExit("t2i eval: no metric fits these images (neither shapes nor digits): give --clip for "
                         "clip-score or --inception-weights for fid/kid/inception-score")
    for name, needed in (("prompt-accuracy", "shapes"), ("digits-score", "digits")):
        if name in names and kind != needed:
            raise SystemExit(f"t2i eval: {name} needs {needed} images, but these are {kind} "
                             f"(recognised from the prompts/labels)")

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results, floor = score(names, kind, images, texts, labels, novel, groups, cfg, out)
    from t2i.runtime.grids import save_grid

    # whole prompts per row when images come as [a0, a1, b0, b1] (--model, or t2i sample's image_index)
    n_each = cfg.n if cfg.model else per_prompt
    nrow = n_each * max(1, 8 // n_each) if 1 < n_each <= 16 else None
    shown = images[:64 // n_each * n_each] if nrow else images[:64]
    save_grid([im.convert("RGB") for im in shown], out / "grid.png", nrow=nrow)
    report = {"source": cfg.model or cfg.images, "data": kind, "n_images": len(images), "metrics": results,
              "real_vs_real_floor": floor, "seconds": round(time.perf_counter() - start, 1),
              "config": config_to_dict(cfg)}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"metrics": results, "real_vs_real_floor": floor}, indent=2))
    print(f"wrote {out / 'metrics.json'} and {out / 'grid.png'}")
    return 0


def evaluate_captioned(cfg: EvalConfig) -> int:
    """``--prompts`` is a captioned source: generate for each held-out caption, score with the evaluation CLIP
    against the held-out images (``t2i.metrics.captioned``), write metrics.json and the real-vs-generated grid."""
    from gan_baselines.registry import load_generator
    from t2i.clip import load_clip
    from t2i.clip.model import image_size
    from t2i.data import as_trained
    from t2i.metrics.captioned import (CAPTIONED_METRICS, CaptionedOptions, check_held_out, load_held_out,
                                       score_captioned, summary_lines)
    from t2i.runtime.grids import save_captioned_rows

    start = time.perf_counter()
    names = list(CAPTIONED_METRICS) if cfg.metrics == "auto" else metric_names(cfg.metrics)
    other = [m for m in names if m not in CAPTIONED_METRICS]
    if other:
        raise SystemExit(f"t2i eval: {other} are not measures for a captioned source ({cfg.prompts}); choose from "
                         f"{list(CAPTIONED_METRICS)} (or auto); the shapes/digits metrics take shapes:SPLIT:N / digits:N")
    if not cfg.clip:
        raise SystemExit("t2i eval: measures on captioned data need --clip, an evaluation CLIP trained on the training "
                         "split only (e.g. `t2i train clip --data mydata --out runs/eval-clip`, then --clip runs/eval-clip)")
    try:
        model = load_clip(cfg.clip, device=cfg.device)
    except FileNotFoundError as err:
        raise SystemExit(f"t2i eval: --clip: {err}") from None
    options, note = as_trained(cfg.prompts, {"image_column": cfg.image_column, "caption_column": cfg.caption_column,
                                             "resize": cfg.resize, "background": cfg.background}, cfg.model, cfg.clip)
    if note:
        print(note)
    held_out, report = load_held_out(cfg.prompts, cfg.real_split, image_size(model), cfg.real_n or None, cfg.seed,
                                     **options)
    if report is not None and report.problems:
        print(report.summary(), file=sys.stderr)
    check_held_out(held_out)
    distinct = len(set(held_out.captions))
    print(f"held-out split {held_out.source}: {len(held_out.captions)} captioned images, {distinct} distinct captions")
    if "r-precision" in names and distinct < cfg.candidates:
        print(f"r-precision: {distinct} candidates per caption (all the distinct captions; fewer than {cfg.candidates})")
    generator = load_generator(cfg.model, device=cfg.device)
    if generator.conditioning == "label":  # class folders: each held-out caption is its class's name
        images, _, _ = generate(generator, None, class_labels(generator, held_out.captions, cfg.model), cfg.n, cfg.seed)
    elif generator.conditioning == "text":
        images, _, _ = generate(generator, held_out.captions, None, cfg.n, cfg.seed)
    else:
        raise SystemExit(f"t2i eval: {cfg.model} is unconditional; captioned prompts need a text-to-image generator "
                         "(or a class-conditional one on class folders)")
    options = CaptionedOptions(seed=cfg.seed, num_candidates=cfg.candidates)
    results, floor = score_captioned(names, images, held_out, model, cfg.clip, cfg.n, options)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    from torchvision.transforms.functional import to_pil_image

    rows = [(held_out.captions[i], [to_pil_image(held_out.images[i])] + images[i * cfg.n:(i + 1) * cfg.n][:4])
            for i in range(min(16, len(held_out.captions)))]
    save_captioned_rows(rows, out / "grid.png")
    report_json = {"source": cfg.model, "data": "captioned", "held_out": {
        "source": held_out.source, "n_items": len(held_out.captions), "distinct_captions": distinct},
        "n_images": len(images), "metrics": results, "real_vs_real_floor": floor,
        "seconds": round(time.perf_counter() - start, 1), "config": config_to_dict(cfg)}
    (out / "metrics.json").write_text(json.dumps(report_json, indent=2) + "\n")
    print("\n".join(summary_lines(results, floor)))
    print(f"wrote {out / 'metrics.json'} and {out / 'grid.png'}")
    return 0


def score(names: list[str], kind: str, images: list[Image.Image], texts: list[str], labels: list[int] | None,
          novel: list[bool] | None, groups: list[Any], cfg: EvalConfig,
          out: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every requested metric on the images, and the real-vs-real floor of the distribution metrics.

    With ``out``, prompt accuracy also writes ``out/judgements.jsonl`` (one judgement per image).
    """
    results: dict[str, Any] = {}
    floor: dict[str, Any] = {}
    extractor = None
    if kind == "shapes":
        from t2i.evaluators.shapes import ShapesEvaluator, aggregate

        evaluator = ShapesEvaluator.from_pretrained()
        extractor = evaluator.feature_extractor()
    elif kind == "digits":
        from t2i.evaluators.digits import DigitsClassifier

        classifier = DigitsClassifier.from_pretrained()
        extractor = classifier.feature_extractor()
    needs_features = [m for m in names if m in DISTRIBUTION[:4] or m == "diversity"]
    if needs_features and extractor is None:
        raise SystemExit(f"t2i eval: {needs_features} need the shapes or digits evaluator features; "
                         f"these images are neither (use fid/kid with --inception-weights, or clip-score)")
    fake = extractor(images) if needs_features else None
    real = real2 = f_real = f_real2 = None
    if any(m in DISTRIBUTION for m in names):
        # the real set, and an independent second real set of the same distribution for the floor
        split = cfg.real_split
        if split == "auto":
            split = "novel" if kind == "shapes" and novel and all(novel) else "test"
        size = images[0].size[0]
        real = real_images(kind, split, cfg.real_n, size, seed=cfg.seed)
        real2 = real_images(kind, split if kind == "shapes" else "train", cfg.real_n, size, seed=cfg.seed + 1)
        real2 = real2[:len(images)]  # as many as the generated images: FID's bias depends on the count
        if needs_features:
            f_real, f_real2 = extractor(real), extractor(real2)
    for name in tqdm(names, desc="metrics", unit="metric"):
        if name == "prompt-accuracy":  # = compute(name, ...), keeping the per-image judgements
            judgements = evaluator.judge(images, texts)
            for j, flag in zip(judgements, novel or []):
                j["novel"] = bool(flag)
            results[name] = aggregate(judgements)
            if out is not None:
                (out / "judgements.jsonl").write_text("".join(
                    json.dumps(dict(j, text=t)) + "\n" for j, t in zip(judgements, texts)))
        elif name == "digits-score":
            results[name] = compute(name, images=images, requested_labels=labels, classifier=classifier)
        elif name in ("domain-fid", "domain-kid", "precision-recall", "density-coverage"):
            results[name] = dict(compute(name, real=f_real, fake=fake), features=extractor.name)
            floor[name] = dict(compute(name, real=f_real, fake=f_real2), features=extractor.name)
        elif name == "diversity":
            results[name] = dict(compute(name, fake=fake, groups=groups), features=extractor.name)
        elif name in ("fid", "kid"):
            w = cfg.inception_weights or None
            results[name] = compute(name, real=real, fake=images, inception_weights=w)
            floor[name] = compute(name, real=real, fake=real2, inception_weights=w)
        elif name == "inception-score":
            results[name] = compute(name, images=images, inception_weights=cfg.inception_weights or None,
                                    splits=min(10, len(images)))
        elif name == "clip-score":
            if not cfg.clip:
                raise SystemExit("t2i eval: clip-score needs --clip (an open_clip folder or built-in name)")
            from t2i.clip import get_tokenizer, load_clip

            model = load_clip(cfg.clip)
            results[name] = compute(name, images=images, prompts=texts, model=model, tokenizer=get_tokenizer(model),
                                    model_name=cfg.clip)
    return results, floor


if __name__ == "__main__":
    raise SystemExit(main())
