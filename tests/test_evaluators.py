"""The shipped evaluators on real data, their judging rules, save/load and deterministic training."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from t2i.data import load_dataset
from t2i.data.shapes import make_scenes, render
from t2i.evaluators.audit import perturb
from t2i.evaluators.digits import DigitsClassifier, score_samples
from t2i.evaluators.segment import find_blobs, position_of, relation_of, size_of
from t2i.evaluators.shapes import ShapesEvaluator, aggregate, prompt_accuracy
from t2i.metrics import frechet_from_features, kid_from_features


@pytest.fixture(scope="module")
def shapes_evaluator():
    return ShapesEvaluator.from_pretrained("shapes-evaluator")


@pytest.fixture(scope="module")
def digits_classifier():
    return DigitsClassifier.from_pretrained("digits-classifier")


@pytest.mark.parametrize("size", [32, 64])
def test_segmentation_measures_the_spec_attributes_exactly(size):
    for rec in make_scenes(150, seed=5, size=size, split="test"):
        blobs = find_blobs(np.asarray(render(rec)))
        assert len(blobs) == len(rec["objects"])
        for obj in rec["objects"]:  # the blob nearest to each drawn object
            b = min(blobs, key=lambda b: np.hypot(b.centre[0] - obj["centre"][0], b.centre[1] - obj["centre"][1]))
            assert b.colour == obj["colour"] and size_of(b.extent, size) == obj["size"]
            if obj["position"]:
                assert position_of(b.centre, size) == obj["position"]
        if rec["relation"]:
            a, o = (min(blobs, key=lambda b: np.hypot(b.centre[0] - x["centre"][0], b.centre[1] - x["centre"][1]))
                    for x in rec["objects"])
            assert relation_of(a.centre, o.centre) == rec["relation"]


@pytest.mark.parametrize("size,split", [(32, "test"), (64, "test"), (32, "novel")])
def test_shipped_evaluator_accepts_true_and_rejects_changed_prompts(shapes_evaluator, size, split):
    recs = make_scenes(120, seed=11, size=size, split=split)
    images = [render(r) for r in recs]
    truth = shapes_evaluator.judge(images, [r["caption"] for r in recs])
    assert np.mean([j["all_correct"] for j in truth]) >= 0.99
    rng = random.Random(0)
    changed, index = [], []
    for i, r in enumerate(recs):
        for attribute in (("colour", "shape", "size", "position") if r["relation"] is None
                          else ("colour", "shape", "relation")):
            changed.append(perturb(r, attribute, rng))
            index.append(i)
    wrong = shapes_evaluator.judge([images[i] for i in index], changed)
    assert np.mean([not j["all_correct"] for j in wrong]) >= 0.98


def test_predict_and_prompt_accuracy_groups(shapes_evaluator):
    recs = make_scenes(40, seed=2, size=32, split="test") + make_scenes(40, seed=2, size=32, split="novel")
    images = [render(r) for r in recs]
    pred = shapes_evaluator.predict(images[:1])[0]
    assert pred["objects"][0].keys() >= {"colour", "shape", "size", "position", "centre", "bbox", "shape_confidence"}
    acc = prompt_accuracy(images, [r["caption"] for r in recs], evaluator=shapes_evaluator)
    assert acc["seen"]["n"] == 40 and acc["novel"]["n"] == 40  # novel: named held-out pairs, by default
    assert acc["one"]["n"] + acc["two"]["n"] == 80 and acc["all_correct"] >= 0.98
    assert {"size", "position"} <= set(acc["one"]) and "relation" in acc["two"]
    flags = [True] * 80  # explicit flags override the default
    assert prompt_accuracy(images, [r["caption"] for r in recs], flags, shapes_evaluator)["novel"]["n"] == 80
    with pytest.raises(ValueError, match="not a shapes caption"):
        shapes_evaluator.judge(images[:1], ["a purple hexagon"])


def test_binding_fails_when_attributes_swap_between_objects(shapes_evaluator):
    scene = make_scenes(1, seed=0, size=32, split="test", p_two=1.0)[0]
    a, b = scene["objects"]
    if a["colour"] == b["colour"] or a["shape"] == b["shape"]:
        pytest.skip("needs two objects that differ in colour and shape")
    truth = scene["caption"]
    swapped = f"a {b['colour']} {a['shape']} {scene['relation']} a {a['colour']} {b['shape']}"  # colours exchanged
    right, wrong = shapes_evaluator.judge([render(scene)] * 2, [truth, swapped])
    assert right["binding"] and right["relation"] and right["all_correct"]
    assert not wrong["binding"] and wrong["relation"] and not wrong["all_correct"]
    assert "binding" in aggregate([right, wrong])["two"]


def test_relation_is_judged_on_the_named_objects_not_on_any_pair():
    """Regression: the pair was chosen on colour, shape and relation together, so clutter scored the relation."""
    from t2i.evaluators.shapes import judge_prediction, parse_caption

    def obj(colour, shape, x, y):
        return {"colour": colour, "shape": shape, "centre": [x, y]}

    target = parse_caption("a red circle to the left of a blue square")
    # the named objects in the wrong order, and two stray blobs in the named relation
    wrong = judge_prediction({"objects": [obj("red", "circle", 24, 16), obj("blue", "square", 8, 16),
                                          obj("green", "star", 2, 2), obj("yellow", "triangle", 30, 2)]}, target)
    assert wrong["binding"] and not wrong["relation"] and not wrong["all_correct"] and wrong["extra_objects"] == 2
    # a named object drawn twice: correct when one of the copies holds the relation (the spec's "exists")
    twice = judge_prediction({"objects": [obj("red", "circle", 24, 16), obj("blue", "square", 16, 16),
                                          obj("red", "circle", 8, 16)]}, target)
    assert twice["binding"] and twice["relation"] and twice["all_correct"]
    # nothing named is found: the relation of two stray blobs (largest first) is judged, no tie-break on it
    stray = judge_prediction({"objects": [obj("green", "star", 24, 16), obj("yellow", "triangle", 8, 16)]}, target)
    assert not stray["binding"] and not stray["relation"]


def test_extra_objects_are_reported_not_counted(shapes_evaluator):
    one = {"caption": "a small red circle in the top left", "relation": None, "image_size": 32, "objects": [
        {"colour": "red", "shape": "circle", "size": "small", "position": "top left", "centre": [8, 8],
         "bbox": [3.5, 3.5, 12.5, 12.5]},
        {"colour": "blue", "shape": "square", "size": "small", "position": None, "centre": [24, 24],
         "bbox": [19.5, 19.5, 28.5, 28.5]}]}
    j = shapes_evaluator.judge([render(one)], [one["caption"]])[0]
    assert j["all_correct"] and j["extra_objects"] == 1 and not j["count"]
    blank = Image.new("RGB", (32, 32))
    assert not shapes_evaluator.judge([blank], [one["caption"]])[0]["all_correct"]


def test_domain_features_are_standardised_and_notice_blur(shapes_evaluator):
    ext = shapes_evaluator.feature_extractor()
    a = load_dataset("shapes", split="test", n=500, seed=0).images.float() / 255
    b = load_dataset("shapes", split="test", n=500, seed=1).images.float() / 255
    blurred = torch.nn.functional.avg_pool2d(b, 3, stride=1, padding=1)  # same scenes, soft edges
    fa, fb, f_blur = ext(a).double(), ext(b).double(), ext(blurred).double()
    assert ext.name == "shapes-evaluator"
    live = fa.std(0) > 0  # units that never fire stay 0
    assert live.sum() > 100 and fa.mean(0).abs().mean() < 0.3 and 0.8 < fa.std(0)[live].mean() < 1.2  # standardised
    same, worse = frechet_from_features(fa, fb), frechet_from_features(fa, f_blur)
    assert worse > 1.5 * same  # same sample size, so the same bias
    kid_same, kid_blur = kid_from_features(fa, fb)[0], kid_from_features(fa, f_blur)[0]
    assert kid_blur > 10 * abs(kid_same)  # KID is unbiased: ~0 for two real samples


def test_save_load_round_trip(tmp_path, shapes_evaluator):
    folder = shapes_evaluator.save(tmp_path / "ev")
    again = ShapesEvaluator.from_pretrained(folder)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.features(x), shapes_evaluator.features(x))
    with pytest.raises(FileNotFoundError, match="built-in name"):
        ShapesEvaluator.from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a 'digits-classifier'"):
        DigitsClassifier.from_pretrained(folder)


def test_digits_classifier_accuracy_and_sample_scores(digits_classifier):
    data = load_dataset("digits", split="test", size=32)
    images, labels = data.images.float() / 255, data.labels.tolist()
    assert (digits_classifier.predict_proba(images).argmax(1) == data.labels).double().mean() >= 0.98
    scores = score_samples(images, labels, classifier=digits_classifier)
    assert scores["accuracy"] >= 0.98 and scores["class_coverage"] == 1.0
    assert scores["histogram_entropy"] == pytest.approx(np.log(10), abs=0.01) and sum(scores["histogram"]) == 355
    shifted = [(x + 1) % 10 for x in labels]
    assert score_samples(images, shifted, classifier=digits_classifier)["accuracy"] < 0.05
    collapsed = score_samples(images[:1].repeat(20, 1, 1, 1), classifier=digits_classifier)
    assert collapsed["class_coverage"] == 0.1 and collapsed["histogram_entropy"] == 0.0
    with pytest.raises(ValueError, match="digits in"):
        score_samples(images[:2], [3, 12], classifier=digits_classifier)


def test_training_entry_point_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    from train.evaluators import main

    tiny = ["--silhouette-objects", "24", "--silhouette-steps", "2", "--scene-images", "24", "--scene-steps", "2",
            "--digits-steps", "2", "--batch-size", "8", "--eval-n", "4"]
    for run in ("a", "b"):
        assert main(["--out", str(tmp_path / run)] + tiny) == 0
    for name in ("shapes-evaluator", "digits-classifier"):
        wa, wb = (load_file(tmp_path / run / name / "model.safetensors") for run in ("a", "b"))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
        assert "Measured right after training" in (tmp_path / "a" / name / "README.md").read_text()
