"""Hard negatives (NegCLIP): the perturbers, the loss against hand-computed values, the order metric."""

import json
import math
import random

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

import train.clip
import train.eval_clip
from t2i.clip.evaluate import encode_dataset, encode_texts
from t2i.clip.loss import NegClipLoss, order_accuracy
from t2i.clip.negatives import (OBJECT_KINDS, check_kinds, object_replacements, rule_negatives, sample_negatives,
                                shapes_negatives)
from t2i.clip.order import order_sensitivity, order_summary
from t2i.clip.testing import make_tiny_clip, tiny_clip
from t2i.data import load_dataset
from t2i.data.shapes import parse_caption


@pytest.mark.parametrize("caption, kind, expected", [
    ("a blue square above a yellow triangle", "swap_noun_phrases", "a yellow triangle above a blue square"),
    ("a blue square above a yellow triangle", "swap_modifiers", "a yellow square above a blue triangle"),
    ("a blue square above a yellow triangle", "swap_nouns", "a blue triangle above a yellow square"),
    ("a cat on a mat", "swap_noun_phrases", "a mat on a cat"),
    ("a man riding a horse", "swap_noun_phrases", "a horse riding a man"),
    ("a photo of a small dog on a large sofa", "swap_noun_phrases", "a photo of a large sofa on a small dog"),
    ("a photo of a small dog on a large sofa", "swap_modifiers", "a photo of a large dog on a small sofa"),
    ("a red car and a blue bus", "swap_modifiers", "a blue car and a red bus"),
    ("a red car and a blue bus", "swap_nouns", "a red bus and a blue car"),
    ("The cat is on the mat.", "swap_noun_phrases", "the mat is on The cat."),
    ("a white cross to the left of a green circle", "swap_noun_phrases",
     "a green circle to the left of a white cross"),
])
def test_rule_perturber_on_hand_written_captions(caption, kind, expected):
    assert rule_negatives(caption)[kind] == expected


@pytest.mark.parametrize("caption, kind", [
    ("a cat next to a dog", "swap_noun_phrases"),  # symmetric link: the swap means the same
    ("a cat next to a dog", "swap_nouns"),  # no modifiers: a noun swap is the same phrase swap
    ("a red car and a blue bus", "swap_noun_phrases"),  # "and" is symmetric
    ("a dog", "swap_noun_phrases"),  # one phrase: nothing to swap
    ("a dog", "swap_modifiers"),
    ("a red cube on a red cube", "swap_noun_phrases"),  # swapping equal phrases changes nothing
    ("a red cube on a red cube", "swap_modifiers"),
    ("a red cube on a red cube", "swap_nouns"),
    ("hello", "shuffle"),
    ("dog dog dog", "shuffle"),
])
def test_rule_perturber_leaves_alone_what_it_cannot_change_in_meaning(caption, kind):
    assert rule_negatives(caption)[kind] is None


def test_shuffle_is_a_different_order_of_the_same_words():
    out = rule_negatives("a small dog on a large sofa", random.Random(3))["shuffle"]
    assert sorted(out.split()) == sorted("a small dog on a large sofa".split())
    assert out != "a small dog on a large sofa"


def test_shapes_perturber_from_scene_labels():
    two = parse_caption("a blue square above a yellow triangle")
    assert shapes_negatives(two) == {
        "swap_objects": "a yellow triangle above a blue square",
        "flip_relation": "a blue square below a yellow triangle",
        "swap_colours": "a yellow square above a blue triangle",
        "swap_shapes": "a blue triangle above a yellow square",
        "replace_colour": None, "replace_shape": None, "replace_size": None, "replace_position": None}
    same_colour = shapes_negatives(parse_caption("a red circle to the left of a red cross"))
    assert same_colour["swap_colours"] is None  # exchanging equal colours changes nothing
    assert same_colour["flip_relation"] == "a red circle to the right of a red cross"
    one = shapes_negatives(parse_caption("a large red circle in the top left"), random.Random(0))
    assert one["swap_objects"] is None
    for kind, key in (("replace_colour", "colour"), ("replace_shape", "shape"), ("replace_size", "size"),
                      ("replace_position", "position")):
        changed = parse_caption(one[kind])["objects"][0]
        assert {k: v for k, v in changed.items() if k != key} == {
            k: v for k, v in parse_caption("a large red circle in the top left")["objects"][0].items() if k != key}
        assert changed[key] != parse_caption("a large red circle in the top left")["objects"][0][key]


def test_object_replacements_change_one_attribute_of_one_object():
    from t2i.data.shapes import HELD_OUT_PAIRS

    caption = "a blue square above a green circle"
    two = parse_caption(caption)
    pairs = [(o["colour"], o["shape"]) for o in two["objects"]]
    seen = {kind: set() for kind in OBJECT_KINDS}
    for seed in range(200):
        out = object_replacements(two, random.Random(seed))
        for kind, key in (("replace_object_colour", "colour"), ("replace_object_shape", "shape")):
            changed = parse_caption(out[kind])
            assert changed["relation"] == "above"
            new = [(o["colour"], o["shape"]) for o in changed["objects"]]
            diffs = [(i, k) for i in range(2) for k in range(2) if new[i][k] != pairs[i][k]]
            assert len(diffs) == 1 and diffs[0][1] == (0 if key == "colour" else 1)  # one attribute of one object
            assert new[0] != new[1] and not set(new) & set(HELD_OUT_PAIRS)  # objects differ; no held-out pair added
            seen[kind].add(out[kind])
    # a green triangle is a held-out pair, so the green circle never becomes one; other shapes do, for both objects
    assert "a blue square above a green triangle" not in seen["replace_object_shape"]
    assert {"a blue circle above a green circle", "a blue cross above a green circle",
            "a blue square above a green cross"} <= seen["replace_object_shape"]
    assert "a green square above a green circle" in seen["replace_object_colour"]
    alike = {object_replacements(parse_caption("a red circle above a red square"), random.Random(s))["replace_object_shape"]
             for s in range(200)}
    assert alike == {"a red triangle above a red square", "a red cross above a red square",
                     "a red circle above a red triangle", "a red circle above a red cross"}  # never two red squares
    # a scene that already holds a held-out pair may get more of them (the novel split is all held-out pairs)
    novel = parse_caption("a yellow cross below a red circle")
    shapes = {object_replacements(novel, random.Random(s))["replace_object_shape"] for s in range(200)}
    assert "a yellow cross below a red square" in shapes
    assert object_replacements(parse_caption("a large red circle in the top left"), random.Random(0)) == {
        "replace_object_colour": None, "replace_object_shape": None}


def test_sample_negatives_masks_missing_slots_and_is_keyed_per_item():
    texts = ["a red cat on a blue mat", "a dog"]
    negs, valid = sample_negatives(texts, [None, None], "rules", 3, check_kinds([], "rules"), keys=["k0", "k1"])
    assert len(negs) == 6 and valid == [True, True, True, True, False, False]  # "a dog": only a shuffle
    assert negs[3] == "dog a" and negs[4:] == ["", ""]
    again, _ = sample_negatives(texts[:1], [None], "rules", 3, check_kinds([], "rules"), keys=["k0"])
    assert again == negs[:3]  # the same key gives the same draws, whatever else is in the batch
    with pytest.raises(ValueError, match="unknown negative kind"):
        check_kinds(["swap_objects"], "rules")


def _clip_loss_by_hand(image, text, negatives, valid, scale):
    """Per image: -log softmax over [its caption, every caption, every valid negative]; per caption over images."""
    total_i2t = total_t2i = 0.0
    b = image.shape[0]
    for i in range(b):
        columns = [scale * float(image[i] @ text[j]) for j in range(b)]
        columns += [scale * float(image[i] @ negatives[k]) for k in range(len(negatives)) if valid[k]]
        total_i2t += -(columns[i] - math.log(sum(math.exp(c) for c in columns)))
        rows = [scale * float(text[i] @ image[j]) for j in range(b)]
        total_t2i += -(rows[i] - math.log(sum(math.exp(r) for r in rows)))
    return (total_i2t / b + total_t2i / b) / 2


def test_negclip_loss_matches_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    image, text = (F.normalize(torch.randn(3, 5, generator=g), dim=-1) for _ in range(2))
    negatives = F.normalize(torch.randn(6, 5, generator=g), dim=-1)
    valid = torch.tensor([True, False, True, True, True, False])
    scale = torch.tensor(7.0)
    loss = NegClipLoss()(image, text, scale, negatives, valid)
    assert float(loss) == pytest.approx(_clip_loss_by_hand(image, text, negatives, valid.tolist(), 7.0), rel=1e-5)
    # no valid negative: exactly open_clip's ClipLoss
    none = NegClipLoss()(image, text, scale, negatives, torch.zeros(6, dtype=torch.bool))
    assert float(none) == pytest.approx(float(ClipLoss()(image, text, scale)), rel=1e-6)
    # negatives that match the images cost more than negatives pointing away from them
    near = NegClipLoss()(image, text, scale, image.repeat_interleave(2, 0), torch.ones(6, dtype=torch.bool))
    far = NegClipLoss()(image, text, scale, -image.repeat_interleave(2, 0), torch.ones(6, dtype=torch.bool))
    assert float(near) > float(far)


def test_order_accuracy_counts_own_valid_negatives():
    image = torch.eye(3)[:2]  # (2, 3)
    text = torch.eye(3)[:2]
    negatives = torch.stack([torch.eye(3)[2], torch.eye(3)[0], torch.eye(3)[0], torch.eye(3)[1]])  # K = 2
    valid = torch.tensor([True, True, True, False])
    # image 0: beats neg 0 (0 < 1), ties neg 1 (1 == 1: not a win); image 1: beats neg 2 (0 < 1); neg 3 (a tie) is invalid
    assert float(order_accuracy(image, text, negatives, valid)) == pytest.approx(2 / 3)


def test_order_sensitivity_on_a_tiny_model_matches_pairwise_scores():
    model = tiny_clip(seed=1)
    ds = load_dataset("shapes", split="test", n=24)
    feats, captions = encode_dataset(model, ds, progress=False)
    report = order_sensitivity(model, feats, captions, ds.records)
    assert set(report["kinds"]) >= {"swap_objects", "flip_relation", "replace_colour"}
    wins = {}
    for i, (caption, record) in enumerate(zip(captions, ds.records)):
        negatives = shapes_negatives(record, random.Random(0))
        true = float(feats[i] @ encode_texts(model, [caption])[0])
        for kind, negative in negatives.items():
            if negative is not None and kind in ("swap_objects", "flip_relation"):
                wins.setdefault(kind, []).append(true > float(feats[i] @ encode_texts(model, [negative])[0]))
    for kind, w in wins.items():
        assert report["kinds"][kind]["n"] == len(w)
        assert report["kinds"][kind]["accuracy"] == pytest.approx(sum(w) / len(w))
    assert report["num_two_object"] == sum(len(r["objects"]) == 2 for r in ds.records)
    # regression: the printed line gave rates without counts ("swap_noun_phrases 0.0%" was 0 of 6 stamp captions)
    summary = order_summary(report)
    assert f"swap_objects {100 * report['kinds']['swap_objects']['accuracy']:.1f}% of {len(wins['swap_objects'])}," \
        in summary and summary.endswith(f"of {report['num_two_object']}")


def test_two_step_negclip_run_logs_order_accuracy_and_reports_order(tmp_path):
    tiny = make_tiny_clip(tmp_path / "tiny", seed=3)
    out = tmp_path / "run"
    assert train.clip.main(["--model", str(tiny), "--data", "shapes", "--n", "64", "--batch-size", "16",
                            "--steps", "2", "--log-every", "1", "--hard-negatives", "shapes", "--p-two", "0.75",
                            "--partial-captions", "0.5", "--hard-negative-images", "0.25",
                            "--eval-n", "24", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["order_acc"] <= 1 for r in rows)
    order = json.loads((out / "eval.json").read_text())["splits"]["test"]["order"]
    assert order["perturber"] == "auto" and "swap_objects" in order["kinds"]


def test_negclip_resume_gives_the_same_weights(tmp_path):
    tiny = make_tiny_clip(tmp_path / "tiny", seed=3)
    common = ["--model", str(tiny), "--data", "shapes", "--n", "48", "--batch-size", "8", "--eval-n", "0",
              "--hard-negatives", "shapes", "--negatives-per-caption", "3"]
    train.clip.main(common + ["--steps", "4", "--checkpoint-every", "0", "--out", str(tmp_path / "straight")])
    train.clip.main(common + ["--steps", "2", "--checkpoint-every", "1", "--out", str(tmp_path / "resumed")])
    train.clip.main(common + ["--steps", "4", "--checkpoint-every", "1", "--resume", "latest",
                              "--out", str(tmp_path / "resumed")])
    from safetensors.torch import load_file

    a, b = (load_file(str(tmp_path / run / "model" / "open_clip_model.safetensors")) for run in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rule_negatives_on_a_user_caption_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "mine"
    folder.mkdir()
    rows = []
    for i, text in enumerate(["a red cat on a blue mat", "a green dog under a white table", "a yellow sun",
                              "a small bird above a large tree"]):
        Image.new("RGB", (32, 32), (40 * i, 90, 200 - 40 * i)).save(folder / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": text}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    tiny = make_tiny_clip(tmp_path / "tiny", seed=3)
    out = tmp_path / "run"
    train.clip.main(["--model", str(tiny), "--data", str(folder), "--batch-size", "4", "--steps", "2",
                     "--hard-negatives", "auto", "--eval-n", "0", "--out", str(out)])
    assert (out / "model" / "open_clip_model.safetensors").is_file()
    train.eval_clip.main(["--model", str(out / "model"), "--data", str(folder), "--split", "train",
                          "--out", str(tmp_path / "eval")])
    order = json.loads((tmp_path / "eval" / "eval.json").read_text())["splits"]["train"]["order"]
    assert order["kinds"]["swap_noun_phrases"]["n"] == 3  # "a yellow sun" has no relation
    assert order["kinds"]["shuffle"]["n"] == 4


def test_bad_negative_options_are_clear_errors(tmp_path):
    tiny = make_tiny_clip(tmp_path / "tiny", seed=3)
    base = ["--model", str(tiny), "--steps", "1", "--out", str(tmp_path / "bad")]
    with pytest.raises(ValueError, match="hard_negatives must be one of"):
        train.clip.main(base + ["--hard-negatives", "yes"])
    with pytest.raises(ValueError, match="needs --loss clip"):
        train.clip.main(base + ["--hard-negatives", "shapes", "--loss", "siglip"])
    with pytest.raises(ValueError, match="p-two is a shapes option"):
        train.clip.main(base + ["--data", "digits", "--p-two", "0.9"])


def test_swapped_scene_is_a_true_render_of_the_swapped_caption():
    from t2i.clip.negatives import swapped_scene
    from t2i.data.shapes import make_scenes, render
    from t2i.evaluators.shapes import prompt_accuracy

    scenes = make_scenes(20, seed=4, split="test", p_two=1.0)
    twins = [swapped_scene(s) for s in scenes]
    assert all(t["caption"] == shapes_negatives(s)["swap_objects"] for s, t in zip(scenes, twins))
    assert prompt_accuracy([render(t) for t in twins], [t["caption"] for t in twins])["all_correct"] == 1.0
    assert prompt_accuracy([render(s) for s in scenes], [t["caption"] for t in twins])["two"]["relation"] == 0.0
    with pytest.raises(ValueError, match="two-object"):
        swapped_scene(make_scenes(1, seed=4, split="test", p_two=0.0)[0])


def test_swapped_twins_fill_the_last_slots_of_a_batch():
    from t2i.data.shapes import make_scenes

    scenes = make_scenes(8, seed=1, split="train", p_two=0.5)
    pixels = torch.zeros(8, 3, 32, 32)
    captions = [s["caption"] for s in scenes]
    out_pixels, out_captions, out_scenes = train.clip.add_swapped_twins(pixels, captions, list(scenes), 0.25)
    two = [j for j in range(6) if len(scenes[j]["objects"]) == 2][:2]
    for slot, j in zip((6, 7), two):
        assert out_captions[slot] == shapes_negatives(scenes[j])["swap_objects"] and out_pixels[slot].sum() > 0
    assert out_captions[:6] == captions[:6] and torch.equal(out_pixels[:6], pixels[:6])
    assert pixels.sum() == 0  # the batch it was given is left alone


def test_partial_captions_leave_out_one_attribute_and_get_matching_negatives():
    from t2i.clip.negatives import one_object_caption, partial_scene

    scene = {"caption": "a large red circle in the top left", "relation": None,
             "objects": [{"colour": "red", "shape": "circle", "size": "large", "position": "top left"}]}
    seen = set()
    for seed in range(30):
        partial = partial_scene(scene, random.Random(seed))
        obj = partial["objects"][0]
        assert [k for k in ("size", "colour", "position") if obj[k] is None] != [] and obj["shape"] == "circle"
        assert sum(obj[k] is None for k in ("size", "colour", "position")) == 1
        assert partial["caption"] == one_object_caption(**obj)
        negatives = shapes_negatives(partial, random.Random(seed))
        for kind, key in (("replace_size", "size"), ("replace_colour", "colour"), ("replace_position", "position")):
            assert (negatives[kind] is None) == (obj[key] is None)
        seen.add(partial["caption"])
    assert seen == {"a red circle in the top left", "a large circle in the top left", "a large red circle"}
    assert scene["objects"][0]["size"] == "large"  # the record itself is left alone
    with pytest.raises(ValueError, match="one-object"):
        partial_scene(parse_caption("a red circle above a blue square"), random.Random(0))
