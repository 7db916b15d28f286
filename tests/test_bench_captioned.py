"""`t2i bench` on any captioned data (issue 16): the held-out sets drawn from the split `t2i eval` reads, the
evaluation CLIP's measures beside the real images' figures, the families and data it refuses, and
`t2i bench --data FOLDER --quick` end to end on a tiny captioned folder (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from t2i.bench.captioned import CaptionedScorer, captioned_sets, training_source
from t2i.bench.families import parse_families
from t2i.bench.report import render_report
from t2i.bench.scoring import EvalSet, RealSet, measures
from t2i.metrics.captioned import HeldOut, score_captioned
from train.bench import main as bench

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 210), "yellow": (220, 200, 40)}
PATTERNS = ("horizontal stripes", "vertical stripes", "a block")
SMALL_BATCHES = [f"--{name}-options=--batch-size=8" for name in ("tgan", "cvae", "ldm", "vae-kl")]


def pattern_image(colour: str, pattern: str, seed: int, size: int = 32) -> Image.Image:
    """``colour`` stripes (4 px, either way) or a block on grey, shifted and lightly noised by ``seed``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(80, 100, (size, size, 3)).astype(np.uint8)
    offset = int(rng.integers(0, 8))
    if pattern == "a block":
        pixels[4 + offset:20 + offset, 6 + offset // 2:22 + offset // 2] = COLOURS[colour]
    else:
        stripes = ((np.arange(size) + offset) // 4) % 2 == 0
        if pattern == "horizontal stripes":
            pixels[stripes] = COLOURS[colour]
        else:
            pixels[:, stripes] = COLOURS[colour]
    return Image.fromarray(pixels)


def write_split(folder, count: int, first_seed: int) -> None:
    """``count`` captioned images, colour and pattern cycling, in imagefolder layout."""
    folder.mkdir(parents=True)
    rows = []
    for i in range(count):
        colour, pattern = list(COLOURS)[i % len(COLOURS)], PATTERNS[(i // len(COLOURS)) % len(PATTERNS)]
        pattern_image(colour, pattern, first_seed + i).save(folder / f"{i:03d}.png")
        rows.append({"file_name": f"{i:03d}.png", "text": f"{colour} {pattern}"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def stripes(tmp_path_factory):
    """40 training and 20 held-out images of 12 captions (4 colours x 3 patterns), at 32 px."""
    root = tmp_path_factory.mktemp("captioned") / "stripes"
    write_split(root / "train", 40, first_seed=0)
    write_split(root / "test", 20, first_seed=1000)
    return root


def refusal(argv: list[str]) -> str:
    with pytest.raises(SystemExit) as err:
        bench(argv)
    message = str(err.value.code)
    assert message.startswith("t2i bench: ") and "\n" not in message
    return message


def test_captioned_data_takes_the_text_families_and_refuses_the_label_ones(stripes, tmp_path):
    assert [f.name for f in parse_families("", str(stripes))] == ["tgan", "cvae", "ldm"]
    message = refusal([f"--data={stripes}", "--families=tgan,cgan", f"--out={tmp_path}", f"--work={tmp_path}"])
    assert "cgan" in message and "tgan,cvae,ldm" in message
    assert "cvae-label" in refusal([f"--data={stripes}", "--families=cvae-label", f"--out={tmp_path}"])
    assert [f.name for f in parse_families("", "digits")] == ["cgan", "cvae-label", "ldm"]  # unchanged


def test_captioned_data_that_cannot_be_benchmarked_is_refused_in_one_line(stripes, tmp_path):
    assert "not found" in refusal([f"--data={tmp_path / 'missing'}", "--quick"])
    assert "single split" in refusal([f"--data={stripes / 'train'}", "--quick"])  # its held-out data = its training
    message = refusal([f"--data={stripes}", "--quick", f"--work={tmp_path}"])  # 40 training images, batches of 64+
    assert "40 items" in message and "cvae (128)" in message and "--cvae-options=--batch-size=40" in message
    assert "fewer than --eval-prompts" in refusal([f"--data={stripes}", "--quick", "--eval-prompts=16",
                                                   f"--work={tmp_path}"] + SMALL_BATCHES)
    assert "--evaluator" in refusal([f"--data={stripes}", "--quick", "--evaluator=shapes-evaluator"])


def test_eval_and_validation_sets_are_disjoint_draws_of_the_held_out_split(stripes):
    sets = captioned_sets(str(stripes), 12, 2, 8, 0, seed=5)
    test = [json.loads(line)["text"] for line in (stripes / "test" / "metadata.jsonl").read_text().splitlines()]
    assert len(sets.eval.prompts) == 12 and len(sets.validation.prompts) == 8
    assert sets.candidates == sorted(set(test))  # every held-out caption read is an R-precision candidate
    real = [pattern_image(t.split()[0], t.split(" ", 1)[1], 1000 + i) for i, t in enumerate(test)]
    index = {np.asarray(im).tobytes(): i for i, im in enumerate(real)}

    def items(eval_set: EvalSet) -> list[int]:  # the held-out item behind each condition, found by its pixels
        pixels = (eval_set.real * 255).round().byte().permute(0, 2, 3, 1).numpy()
        return [index[p.tobytes()] for p in pixels]

    eval_items, val_items = items(sets.eval), items(sets.validation)
    assert not set(eval_items) & set(val_items) and len(set(eval_items + val_items)) == 20
    assert [test[i] for i in eval_items] == sets.eval.prompts  # each caption with its own real image
    assert sets.eval.images_per_prompt == 2 and sets.validation.images_per_prompt == 1
    assert torch.equal(sets.reference.images, sets.eval.real) and sets.floor is sets.reference
    again = captioned_sets(str(stripes), 12, 2, 8, 0, seed=5)
    assert again.eval.prompts == sets.eval.prompts and torch.equal(again.eval.real, sets.eval.real)
    assert captioned_sets(str(stripes), 12, 2, 8, 0, seed=6).eval.prompts != sets.eval.prompts
    with pytest.raises(ValueError, match="at least 4"):
        captioned_sets(str(stripes), 12, 2, 3, 0, seed=5)


def test_scorer_measures_match_t2i_eval_and_its_floor_is_the_real_images_figure():
    from t2i.clip.testing import tiny_clip

    torch.manual_seed(0)
    model = tiny_clip(seed=3)
    reals = torch.rand(8, 3, 32, 32)
    captions = [f"caption {i}" for i in range(8)]
    pool = captions + [f"other caption {i}" for i in range(30)]
    eval_set = EvalSet("eval", captions, images_per_prompt=2, real=reals)
    scorer = CaptionedScorer((model, None, "tiny"), pool, seed=0)
    generated = torch.rand(16, 3, 32, 32)
    out = scorer.score(generated, eval_set)
    r = out["details"]["measures"]["r-precision"]
    assert r["num_candidates"] == 38  # the true caption + every other caption read, not only the eval set's
    expected, expected_floor = score_captioned(["r-precision", "clip-score", "clip-fid", "clip-kid"], generated,
                                               HeldOut(reals, captions), model, "tiny", 2, distractors=pool)
    assert out["r_precision"] == expected["r-precision"]["r_precision"]  # the measures `t2i eval` computes
    assert out["clip_score"] == expected["clip-score"]["clip_score"]
    assert out["clip_fid"] == expected["clip-fid"]["clip_fid"] and out["clip_kid"] == expected["clip-kid"]["clip_kid"]
    assert 0 <= out["r_precision"] <= 1 and 0 <= out["clip_score"] <= 100 and out["diversity_ratio"] > 0
    floor = scorer.floor(RealSet(reals, captions, [False] * 8, [-1] * 8))
    assert floor["r_precision"] == r["real"]["r_precision"]  # the ceiling printed beside the generated figure
    assert floor["clip_score"] == expected["clip-score"]["real"]["clip_score"]
    assert floor["clip_fid"] == expected_floor["clip-fid"]["clip_fid"]  # real half A against real half B
    assert "diversity_ratio" not in floor  # one image per caption
    assert set(scorer.score(generated, eval_set, distribution=False)) == {"n", "details", "r_precision", "clip_score"}


def test_resize_and_background_reach_every_run_and_the_held_out_reals(stripes, tmp_path):
    """Regression: the bench read captioned data centre-cropped on black with no way to say otherwise, so wide
    drawings on transparency (icons, clip art) lost their ends and vanished on black, in training and in the
    reals alike. --resize / --background now reach every trainer's argv and the held-out reals."""
    from t2i.bench.config import BenchConfig, resolve
    from t2i.bench.families import FAMILIES
    from train.bench import trainer_argv

    folder = tmp_path / "wide" / "test"
    folder.mkdir(parents=True)
    rows = []
    for i in range(8):  # 32 x 16, opaque grey in the middle, transparent elsewhere
        image = Image.new("RGBA", (32, 16), (0, 0, 0, 0))
        image.paste((100, 100, 100, 255), (8, 4, 24, 12))
        image.save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": f"drawing {i % 4}"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    default = captioned_sets(str(tmp_path / "wide"), 4, 2, 4, 0, seed=0, size=8).eval.real
    padded = captioned_sets(str(tmp_path / "wide"), 4, 2, 4, 0, seed=0, size=8, resize="pad",
                            background="white").eval.real
    assert default[:, :, 0, 0].max() == 0 and padded[:, :, 0, 0].min() == 1  # a white letterbox row on top
    cfg = resolve(BenchConfig(data=str(stripes), quick=True, resize="pad", background="white"))
    ldm = FAMILIES["ldm"]
    assert {"--resize=pad", "--background=white"} <= set(trainer_argv(cfg, ldm, 1e-4, 0, "clip", "vae"))
    plain = resolve(BenchConfig(data=str(stripes), quick=True))
    assert not [a for a in trainer_argv(plain, ldm, 1e-4, 0, "clip", "vae") if "resize" in a or "background" in a]
    assert "drawn square on black" in refusal(["--data=shapes", "--quick", "--background=white"])


def test_report_of_captioned_data_has_its_measures_and_no_shapes_columns():
    summary = {k: {"mean": v, "std": 0.0, "n": 1} for k, v in
               (("r_precision", 0.25), ("clip_score", 30.0), ("clip_fid", 0.5), ("clip_kid", 0.01))}
    results = {"command": "t2i bench --data mydata", "config": {"data": "mydata", "size": 32, "seeds": 1, "trials": 2},
               "machine": {"cpu": "cpu", "cores": 2, "threads": 1, "device": "cpu", "torch": "x", "python": "3",
                           "date": "today"}, "budget": {"kind": "flops", "value": 1e9}, "notes": [],
               "eval": {"conditions": 12, "images_per_prompt": 2, "images": 24, "seed": 0, "reference_images": 12},
               "floor": {"r_precision": 0.9, "clip_score": 40.0, "clip_fid": 0.1, "clip_kid": 0.0},
               "families": {"tgan": {"summary": summary, "cost": {}, "lr": 2e-4, "trials": [
                   {"lr": 2e-4, "validation": {"r_precision": 0.25, "clip_fid": 0.5}, "selected": True},
                   {"lr": 4e-4, "validation": {"r_precision": 0.125, "clip_fid": 0.7}}]}}}
    text = render_report(results, {})
    quality = text.split("## Quality")[1].split("## Cost")[0]
    assert "| model | R-precision ^ | CLIP FID v | CLIP KID v | CLIP score ^ |" in quality
    assert "| real vs real (floor) | 0.900 | 0.100 |" in quality
    assert "prompt acc." not in quality and "domain FID" not in quality
    assert "| model | lr | R-precision | CLIP FID | selected |" in text  # the tuning trials, on the headline
    assert "nan" not in text.lower() and "evaluation CLIP" in text
    assert measures("mydata").metric == "r_precision" and measures("shapes").metric == "acc_all"
    assert "Above the real images" not in text  # below the real images: nothing to warn of
    # Regression: on stamp class folders a collapsed text GAN (one picture per class) scored R-precision 0.671
    # against the real images' 0.350, and the report called the real figure the ceiling and led with it.
    summary.update(r_precision={"mean": 0.95, "std": 0.0, "n": 1}, diversity_ratio={"mean": 0.1, "std": 0.0, "n": 1})
    warned = render_report(results, {}).split("## Quality")[1].split("## Cost")[0]
    assert "**Above the real images:** tgan (R-precision 0.950 against 0.900; diversity ratio 0.100, CLIP FID 0.500 " \
           "(real 0.100))" in warned


def test_a_stored_diffusion_study_is_not_reused_for_other_validation_items(stripes, tmp_path):
    """Captioned validation items are drawn after the eval ones among the first --reference-images held-out items:
    changing either changes them, so --reuse must not read back a study made on others."""
    from t2i.bench.config import BenchConfig, resolve
    from train.bench import Bench

    def study(**changes):
        cfg = resolve(BenchConfig(data=str(stripes), quick=True, reuse=True, work=str(tmp_path), out=str(tmp_path),
                                  tgan_options="--batch-size=8", cvae_options="--batch-size=8",
                                  ldm_options="--batch-size=8", vae_kl_options="--batch-size=8", **changes))
        bench = Bench(cfg, [], {})
        return bench.sets.validation.prompts, bench.study_fingerprint("model", ["--lr=1"])

    prompts, fingerprint = study()
    other_prompts, other = study(eval_prompts=11)  # validation = items 11..18 of the draw, not 12..19
    assert other_prompts != prompts and other != fingerprint
    assert study(reference_images=20)[1] != fingerprint  # the first 20 read instead of the first 200
    assert study(eval_seed=1234) == (prompts, fingerprint)  # the same settings (1234 is the default): read back


def test_the_ladder_keys_off_the_headline_of_captioned_data():
    """Diffusion's R-precision rises 0 -> 0.2 -> 0.6 against a flat 0.3: it crosses at 2 ** 1.25 (the hand-computed
    example of tests/test_bench_sweep.py); the Pareto front ranks on R-precision, CLIP FID is lower-is-better."""
    from t2i.bench.scoring import HEADLINE
    from t2i.bench.sweep import CROSSED, sweep_summary

    def family(values: list[float]) -> dict:
        stages = [{"flops": f, "metrics": {"r_precision": v, "clip_fid": 1 - v, "clip_score": 20 + v}}
                  for f, v in zip((1.0, 2.0, 4.0), values)]
        return {"seeds": {"0": {"stages": stages}}, "rungs": [{"flops": st["flops"], "cpu_hours": None}
                                                             for st in stages],
                "summary": {"r_precision": {"mean": values[-1], "std": 0.0, "n": 1}},
                "cost": {"gflop_per_image": 0.1, "ms_per_image": 1.0}}

    fams = {"tgan": family([0.3, 0.3, 0.3]), "ldm": family([0.0, 0.2, 0.6])}
    higher = {k: v[1] for k, v in HEADLINE.items()}
    sweep = sweep_summary(fams, "ldm", None, measures("mydata").crossover, higher, n_boot=20, threads=1)
    assert sweep["metric"] == "r_precision"
    by_metric = {c["metric"]: c for c in sweep["crossovers"]}
    assert set(by_metric) == {"r_precision", "clip_fid", "clip_score"}  # diversity was not recorded
    for metric in ("r_precision", "clip_fid"):  # CLIP FID = 1 - R-precision here: the same crossing, lower wins
        assert by_metric[metric]["status"] == CROSSED and by_metric[metric]["budget"] == pytest.approx(2 ** 1.25)
    assert [p["quality"] for p in sweep["sampling_points"]] == [0.3, 0.6]


@pytest.mark.slow
def test_bench_quick_on_a_captioned_folder(stripes, tmp_path):
    """The smallest run the quick path allows (about 50 s of CPU on one core): batches of 8 and a budget that
    buys the first stage one step at half of latent diffusion's share; one sampler at 2 steps."""
    out = tmp_path / "bench"
    argv = [f"--data={stripes}", "--quick", f"--out={out}", f"--work={tmp_path / 'work'}", "--budget-flops=1.5e9",
            "--first-stage-share=0.5", "--samplers=ddim", "--sampler-steps=2", "--guidance=1,3",
            "--sample-steps=2"] + SMALL_BATCHES
    assert bench(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["families"]) == {"tgan", "cvae", "ldm"}
    floor = results["floor"]
    assert 0 <= floor["r_precision"] <= 1 and floor["clip_fid"] >= 0 and "acc_all" not in floor
    for name, fam in results["families"].items():
        summary = fam["summary"]
        assert 0 <= summary["r_precision"]["mean"] <= 1, name
        assert 0 <= summary["clip_score"]["mean"] <= 100, name
        assert summary["clip_fid"]["mean"] >= 0 and summary["clip_kid"]["mean"] > -1, name
        assert not {"acc_all", "domain_fid", "digit_acc"} & set(summary), name
        slack = fam["step_flops"] + fam.get("first_stage", {}).get("step_flops", 0)  # the same budget rule
        assert results["budget"]["value"] - slack < fam["cost"]["train_flops"] <= results["budget"]["value"]
        assert fam["seeds"]["0"]["details"]["measures"]["r-precision"]["num_candidates"] == 12  # every test caption
    assert results["diffusion"]["select_metric"] == "r_precision"
    assert results["eval"]["conditions"] == 12 and results["eval"]["validation_conditions"] == 8
    report = (out / "report.md").read_text()
    for label in ("R-precision", "CLIP score", "CLIP FID", "CLIP KID"):
        assert label in report, label
    assert "prompt acc." not in report and "domain FID" not in report and "nan" not in report.lower()
    assert any("evaluation CLIP" in n for n in results["notes"])
    for name in ("grid.png", "quality_vs_budget.png", "guidance.png", "quality_vs_steps.png", "cost_vs_quality.png"):
        assert (out / name).stat().st_size > 0, name


def test_a_table_with_its_own_columns_and_a_held_out_table_of_its_own(stripes, tmp_path):
    """Regression: a Flickr8k-style user (``image,caption`` tables, ``train.csv`` and ``test.csv`` beside
    ``Images/``) could not bench: the bench took no columns and refused a single-split source."""
    from t2i.bench.config import BenchConfig, resolve
    from t2i.bench.families import FAMILIES
    from train.bench import trainer_argv

    root = tmp_path / "tables"
    (root / "Images").mkdir(parents=True)
    held_out = []
    for split, folder in (("train", stripes / "train"), ("test", stripes / "test")):
        lines = ["image,caption"]
        for row in map(json.loads, (folder / "metadata.jsonl").read_text().splitlines()):
            name = f"{split}-{row['file_name']}"
            Image.open(folder / row["file_name"]).save(root / "Images" / name)
            lines += [f"{name},{row['text']}", f"{name},a picture of {row['text']}"]  # two rows per image
            held_out += [row["text"]] * (split == "test")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    train, test = str(root / "train.csv"), str(root / "test.csv")
    assert "--held-out test.csv" in refusal([f"--data={train}", "--quick", "--image-column=image",
                                            "--caption-column=caption"])
    columns = {"image_column": "image", "caption_column": "caption"}
    sets = captioned_sets(train, 12, 2, 8, 0, seed=5, held_out_source=test, **columns)
    assert set(sets.eval.prompts + sets.validation.prompts) <= set(held_out)  # the held-out table's first captions
    assert sets.candidates == sorted(set(held_out))
    assert sets.notes[0].startswith(f"held-out split {test} (20 items read")  # a single-split source, named as given
    assert training_source(train) == train and training_source(str(stripes)) == f"{stripes}'s train split"
    cfg = resolve(BenchConfig(data=train, held_out=test, quick=True, **columns))
    assert {"--image-column=image", "--caption-column=caption"} <= set(trainer_argv(cfg, FAMILIES["tgan"], 1e-4, 0,
                                                                                  "clip", None))
    assert "drop them" in refusal(["--data=shapes", "--quick", f"--held-out={test}"])


def test_class_folders_take_the_label_families_asked_for_the_held_out_classes(tmp_path):
    """Regression: on one's own class folders the bench refused cgan and cvae-label ("they need class labels"),
    so the classic class-conditional GAN could not be compared with diffusion on them."""
    from train.bench import train_split_has_classes
    from t2i.bench.config import BenchConfig

    root = tmp_path / "classes"
    for split, count in (("train", 16), ("test", 8)):
        for i in range(count):
            colour = list(COLOURS)[i % len(COLOURS)]
            (root / split / colour).mkdir(parents=True, exist_ok=True)
            pattern_image(colour, "a block", i).save(root / split / colour / f"{i}.png")
    assert train_split_has_classes(BenchConfig(data=str(root)))
    names = [f.name for f in parse_families("cgan,tgan,cvae-label,ldm", str(root), classes=True)]
    assert names == ["cgan", "tgan", "cvae-label", "ldm"]
    with pytest.raises(ValueError, match="need class labels: class folders"):
        parse_families("cgan", str(root))  # data without classes
    sets = captioned_sets(str(root), 4, 2, 4, 0, seed=0)
    classes = sorted(COLOURS)  # the folders' names, sorted: the labels the trainers give them
    assert [classes[label] for label in sets.eval.labels] == sets.eval.prompts  # caption = the class's name
    assert sets.validation.labels is not None
    from train.bench import Bench

    cfg = resolve_quick(root, families="cgan,tgan", held_out=str(root / "test"))
    with pytest.raises(ValueError, match="numbered as the training items' only within one source"):
        Bench(cfg, [], {})


def resolve_quick(data, **fields):
    from t2i.bench.config import BenchConfig, resolve

    return resolve(BenchConfig(data=str(data), quick=True, **fields))
