"""`t2i eval`: scoring a folder of images, the generator path with a rendering generator, errors."""

import json
import random

import pytest
from PIL import Image

from t2i.data import load_dataset
from t2i.data.shapes import make_scenes, parse_caption, render
from t2i.evaluators.audit import perturb
from t2i.generator import Generator, validate_request
from train.eval import generate, main


def write_folder(folder, images, rows):
    (folder / "images").mkdir(parents=True)
    for i, (im, row) in enumerate(zip(images, rows)):
        im.save(folder / f"images/{i:05d}.png")
        row["file_name"] = f"images/{i:05d}.png"
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    recs = make_scenes(40, seed=3, size=32, split="test")
    return recs, write_folder(tmp_path_factory.mktemp("gen"), [render(r) for r in recs],
                              [{"text": r["caption"]} for r in recs])


def test_eval_images_folder_of_real_renders(shapes_folder, tmp_path):
    _, folder = shapes_folder
    out = tmp_path / "eval"
    argv = ["--images", str(folder), "--out", str(out), "--real-n", "80",
            "--metrics", "prompt-accuracy,domain-fid,domain-kid,precision-recall,density-coverage"]
    assert main(argv) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["data"] == "shapes" and report["n_images"] == 40
    assert report["metrics"]["prompt-accuracy"]["all_correct"] == 1.0
    for name in ("domain-fid", "domain-kid", "precision-recall", "density-coverage"):
        assert report["metrics"][name]["features"] == "shapes-evaluator" and name in report["real_vs_real_floor"]
    assert "fid" not in report["metrics"]  # no Inception here: never reported as FID
    assert report["metrics"]["domain-fid"]["n_fake"] == report["real_vs_real_floor"]["domain-fid"]["n_fake"] == 40
    judgements = [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()]
    assert len(judgements) == 40 and all(j["all_correct"] for j in judgements)
    with Image.open(out / "grid.png") as grid:
        assert grid.size[0] > 32


def test_eval_rejects_images_with_wrong_prompts(shapes_folder, tmp_path):
    recs, folder = shapes_folder
    rng = random.Random(0)
    images = [Image.open(folder / f"images/{i:05d}.png").convert("RGB") for i in range(len(recs))]
    rows = [{"text": perturb(r, "colour", rng)} for r in recs]
    wrong = write_folder(tmp_path / "wrong", images, rows)
    assert main(["--images", str(wrong), "--out", str(tmp_path / "e"), "--metrics", "prompt-accuracy"]) == 0
    acc = json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"]["prompt-accuracy"]
    assert acc["all_correct"] == 0.0 and acc["all"]["colour"] == 0.0 and acc["all"]["shape"] == 1.0


def test_eval_digits_folder_auto_metrics(tmp_path):
    data = load_dataset("digits", split="test", size=32, n=60)
    images = [Image.fromarray(data.images[i, 0].numpy(), "L") for i in range(len(data))]
    rows = [{"text": data.captions[i], "label": int(data.labels[i])} for i in range(len(data))]
    folder = write_folder(tmp_path / "digits", images, rows)
    assert main(["--images", str(folder), "--out", str(tmp_path / "e"), "--real-n", "100"]) == 0
    report = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert report["data"] == "digits" and report["metrics"]["digits-score"]["accuracy"] >= 0.95
    assert {"domain-fid", "precision-recall", "diversity"} <= set(report["metrics"])  # 6 images per label


class RenderingGenerator(Generator):
    """A real generator of the contract for shapes prompts: draws what the caption says."""

    family, conditioning = "render", "text"

    def __init__(self):
        self.seeds = []

    def modules(self):
        return {}  # no networks: it renders

    def generate(self, prompts=None, labels=None, seed=0, num_images_per_prompt=1, **options):
        validate_request(prompts, labels, num_images_per_prompt, needs="text")
        images = []
        for i, p in enumerate(prompts):  # prompt i from seed + i, the contract's rule
            self.seeds.append(seed + i)
            rng = random.Random(seed + i)
            target = parse_caption(p)
            for _ in range(num_images_per_prompt):
                objects = []
                for k, o in enumerate(target["objects"]):
                    if target["relation"] is None:
                        fx, fy = {"top left": (8, 8), "top right": (24, 8), "bottom left": (8, 24),
                                  "bottom right": (24, 24), "center": (16, 16)}[o["position"]]
                    else:  # subject and other 16 px apart along the relation's axis
                        dx, dy = {"above": (0, -8), "below": (0, 8), "to the left of": (-8, 0),
                                  "to the right of": (8, 0)}[target["relation"]]
                        fx, fy = (16 + dx, 16 + dy) if k == 0 else (16 - dx, 16 - dy)
                    fx, fy = fx + rng.choice([-1, 0, 1]), fy + rng.choice([-1, 0, 1])
                    e = 16 if o["size"] == "large" else 9
                    objects.append(dict(o, centre=[fx, fy], bbox=[fx - e / 2, fy - e / 2, fx + e / 2, fy + e / 2]))
                images.append(render({"objects": objects, "image_size": 32}))
        return images


def test_generator_path_follows_the_sample_convention(tmp_path):
    gen = RenderingGenerator()
    prompts = [r["caption"] for r in make_scenes(6, seed=4, size=32, split="novel")]
    images, texts, labels = generate(gen, prompts, None, n=2, seed=10)
    assert gen.seeds == [10, 11, 12, 13, 14, 15] and len(images) == 12 and labels is None
    assert texts == [p for p in prompts for _ in range(2)]
    from train.eval import EvalConfig, score

    results, floor = score(["prompt-accuracy", "diversity"], "shapes", images, texts, None, [True] * 12, texts,
                           EvalConfig())
    assert results["prompt-accuracy"]["novel"]["all_correct"] == 1.0 and results["diversity"]["groups"] == 6


def test_eval_errors_say_what_is_allowed(shapes_folder, tmp_path, capsys):
    with pytest.raises(SystemExit, match="exactly one of --model"):
        main(["--out", str(tmp_path)])
    _, folder = shapes_folder
    with pytest.raises(SystemExit, match="unknown metric"):
        main(["--images", str(folder), "--metrics", "fidd", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="shapes:SPLIT:N"):
        main(["--model", "x", "--prompts", "shapes:novel", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="digits-score needs digits images"):
        main(["--images", str(folder), "--metrics", "digits-score", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:  # `t2i eval clip` goes to the CLIP evaluation
        main(["clip", "--help"])
    assert exit_info.value.code == 0 and "t2i eval clip" in capsys.readouterr().out
