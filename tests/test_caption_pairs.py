"""Prompts that join words no training caption joins (``t2i.provenance.apart_pairs``): "a small red circle above a
large blue square" has only known words, but shapes' two-object captions carry no sizes, so the built-in models
drew its relation inverted in most images with no warning; and prompts worded as no caption is
(``never_next_pairs``: "cyan cross above yellow triangle", articles left out, all correct 1.00 -> 0.43). Such
prompts now get the warning an unknown word gets, in ``t2i sample``, the app and the arena; a prompt in the
captions' form gets none."""

from __future__ import annotations

import json

import train.sample
from t2i.data.shapes import grammar_captions, make_scenes, parse_caption
from t2i.provenance import (TrainedOn, apart_pairs, caption_pairs, joined_apart, never_next_pairs,
                            outside_captions_warning, shapes_pairs, trained_on, unseen_next, write_record)

SIZED = "a small red circle above a large blue square"


def test_pairs_apart_are_those_independence_would_join_often_and_no_caption_does():
    captions = ["a big dog on grass"] * 100 + ["a small cat in a box"] * 100 + ["a tiny bird"] * 5 + ["a wet fish"] * 5
    apart = apart_pairs(captions)
    assert ("big", "small") in apart and ("cat", "dog") in apart and ("box", "grass") in apart
    assert ("big", "dog") not in apart and ("a", "big") not in apart  # joined in every caption that holds them
    assert not {pair for pair in apart if {"tiny", "wet", "bird", "fish"} & set(pair)}  # 5 x 5 / 210: too rare
    assert apart_pairs(captions[:5] + captions[100:105]) == frozenset()  # 5 x 5 / 10 = 2.5 < 20: no evidence
    assert apart_pairs([]) == frozenset() and apart_pairs(["one caption"] * 50) == frozenset()


def test_never_next_pairs_are_those_chance_would_put_side_by_side_often_and_no_caption_does():
    captions = ["a big dog"] * 150 + ["the small cat"] * 150
    never = never_next_pairs(captions)  # 900 words; 'a' is followed 150 times; 'small' is 1 word in 6
    assert ("a", "small") in never and ("a", "dog") in never and ("big", "cat") in never
    assert ("a", "big") not in never and ("big", "dog") not in never  # how the captions are worded
    assert ("dog", "a") not in never  # 'dog' ends its caption: never followed, so no evidence
    assert never_next_pairs(captions[:10] + captions[150:160]) == frozenset() and never_next_pairs([]) == frozenset()


def test_the_shapes_grammar_pairs_are_what_its_training_captions_show():
    assert all(parse_caption(c) for c in grammar_captions())  # every caption it enumerates is the spec's
    apart = shapes_pairs("apart")
    assert {("above", "small"), ("above", "large"), ("large", "small"), ("in", "to"), ("left", "right")} <= apart
    assert ("above", "red") not in apart and ("large", "red") not in apart and ("left", "top") not in apart
    sampled = [scene["caption"] for scene in make_scenes(4000, seed=3)]  # what a trainer's captions are
    assert apart_pairs(sampled) == apart  # the statistical rule on real captions finds the grammar's pairs exactly


def test_no_spec_caption_is_warned_and_a_sized_two_object_prompt_is():
    trained = trained_on("shapes-cvae")  # trained on the captions alone
    held_out = [scene["caption"] for scene in make_scenes(300, seed=1, split="novel")]
    assert [c for c in held_out if outside_captions_warning(c, "shapes-tgan", trained)] == []
    assert joined_apart(SIZED, trained.apart) == [("small", "above"), ("small", "large"), ("above", "large")]
    partial = ["a small circle in the top left", "a red circle in the center", "a small red circle"]  # partial captions
    assert [c for c in partial if outside_captions_warning(c, "shapes-tgan", trained)] == []
    assert outside_captions_warning(SIZED, "shapes-tgan", trained) == (
        "shapes-tgan's training captions (shapes) never join 'small' with 'above' or 'large', nor 'above' with "
        "'large': it was never shown such a scene and will likely draw it wrong; leave out one word of each pair")
    three = outside_captions_warning("a red circle above a blue square below a green cross", "m", trained)
    assert "never join 'above' with 'below'" in three  # three objects: two relations, never in one caption
    assert "never saw 'cat'" in outside_captions_warning("a small cat above a red square", "m", trained)  # words first
    assert joined_apart(SIZED, None) == [] and outside_captions_warning(SIZED, "m", TrainedOn()) is None


def test_a_prompt_worded_as_no_caption_is_warned_with_the_captions_form():
    trained = trained_on("shapes-cvae")  # trained on the captions alone
    assert unseen_next("cyan cross above yellow triangle", trained.never_next) == [("above", "yellow")]
    assert unseen_next("small red triangle in top left", trained.never_next) == [("in", "top")]
    warning = outside_captions_warning("Cyan cross above yellow triangle.", "shapes-tgan", trained)
    assert warning.startswith("shapes-tgan's training captions (shapes) never put 'yellow' right after 'above' "
                              "(they read 'a {size} {colour} {shape} in the {position}' or")
    assert warning.endswith("it learnt their wording and will likely draw others wrong; word the prompt as they are")
    assert outside_captions_warning("A cyan cross above a yellow triangle.", "m", trained) is None  # case, stops
    assert unseen_next("cyan cross above yellow triangle", None) == []


def test_a_fine_tune_keeps_the_base_pairs_its_own_captions_never_join(tmp_path):
    class Stamps:  # the user-data loaders' captions: sizes above things, so that pair is now shown
        caption_lists = [["a small frog above a pond"]] * 80 + [["a large tree"]] * 60 + [["a blue car"]] * 60

    apart = caption_pairs("apart", "stamps/", Stamps(), base="shapes-ldm")
    assert ("above", "small") not in apart and ("above", "large") in apart and ("in", "to") in apart
    assert ("frog", "tree") in apart and ("blue", "frog") in apart  # its own pairs with a word the base never saw
    assert ("above", "blue") not in apart  # apart in its own captions, but both words the base's, which joins them
    write_record(tmp_path, "stamps/", Stamps(), base="shapes-ldm")
    assert trained_on(tmp_path).apart == apart
    assert ["above", "large"] in json.loads((tmp_path / "t2i_training.json").read_text())["apart"]
    assert caption_pairs("apart", "shards/", iter(()), base="shapes-ldm") is None  # streamed: unknown, no warnings


def test_a_fine_tune_keeps_the_base_wording_its_own_captions_never_have():
    class Worded:
        caption_lists = [["red above blue"]] * 150 + [["a big frog"]] * 150

    assert {("red", "above"), ("above", "blue"), ("a", "a")} <= shapes_pairs("never_next")
    wording = caption_pairs("never_next", "mine/", Worded(), base="shapes-ldm")
    assert ("red", "above") not in wording and ("above", "blue") not in wording  # the base's, which it now has
    assert ("a", "a") in wording  # the base's, which it never has
    assert ("big", "blue") in wording and ("big", "frog") not in wording  # its own, with a word the base never saw
    assert ("a", "blue") not in wording  # its own evidence, but both words the base's, which has them side by side


def test_t2i_sample_warns_of_a_sized_two_object_prompt(tmp_path, capsys):
    out = tmp_path / "out"
    assert train.sample.main(["--model", "shapes-tgan", "--prompt", SIZED, "--n", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    # its captions (every scene's reworded too) had two objects both small, never large: "large" is what it never saw
    assert ("t2i sample: warning: shapes-tgan's training captions (shapes) never join 'large' with 'small' or 'above'"
            in err)
    assert (out / "metadata.jsonl").is_file()  # a warning, never a refusal
    lines = train.sample.prompt_warnings("shapes-tgan", [SIZED, "a red circle above a blue square"])
    assert len(lines) == 1 and lines[0].startswith(f"1 of 2 prompts (e.g. {SIZED!r}): shapes-tgan's training captions "
                                                   "(shapes) never join 'large' with 'small' or 'above'")
    reworded = ["a red circle above a blue square", "green square right of white cross",
                "a small red circle above a small blue square"]  # the rewordings it was trained on
    assert train.sample.prompt_warnings("shapes-tgan", reworded) == []
    mixed = ["red circle blue square", "two red circles", "a red circle above a blue square", SIZED]
    unknown, other = train.sample.prompt_warnings("shapes-tgan", mixed)  # each kind named, not only the first
    assert unknown.startswith("1 of 4 prompts: shapes-tgan never saw 'two', 'circles'")
    assert other.startswith("2 of 4 prompts (e.g. 'red circle blue square'): shapes-tgan's training captions (shapes) "
                            "never put 'blue' right after 'circle'")


def test_the_pairs_are_shown_grouped_by_the_word_in_most_of_them():
    from t2i.provenance import grouped

    pairs = joined_apart("a small green square to the right of a large white cross", shapes_pairs("apart"))
    assert grouped(pairs) == "'small' with 'to', 'of' or 'large', nor 'large' with 'to' or 'of'"
    assert grouped([("a", "b")]) == "'a' with 'b'"
    four = [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]
    assert grouped(four) == "'a' with 'b', nor 'c' with 'd', nor 'e' with 'f', ..."


def test_a_model_trained_on_the_rewordings_is_warned_of_none_and_its_hint_names_them(tmp_path):
    """`--reworded-captions` trains on true rewordings (no articles, 'small' sizes, 'right of'); a model's record says
    so, a distilled student inherits it, and the wording hint then names the rewordings beside the grammar."""
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    teacher.mkdir(), student.mkdir()
    write_record(teacher, "shapes", make_scenes(8, seed=0), clip="shapes-clip", reworded=True)
    (student / "t2i_distill.json").write_text(json.dumps({"teacher": str(teacher)}))
    for trained in (trained_on(teacher), trained_on(student)):
        assert trained.reworded and trained.apart == shapes_pairs("apart", reworded=True)
        for prompt in ("cyan cross above yellow triangle", "a green cross right of a magenta circle",
                       "a small red circle above a small blue square", "small red triangle in top left"):
            assert outside_captions_warning(prompt, "m", trained) is None, prompt
        assert joined_apart(SIZED, trained.apart) == [("small", "large"), ("above", "large")]  # sizes: both small
        assert "; also without the articles" in outside_captions_warning("red circle blue square", "m", trained)
    assert not trained_on("shapes-cvae").reworded and trained_on("shapes-ldm-6").reworded  # the built-ins
    assert trained_on("shapes-tgan").reworded_scenes == "all" and trained_on("shapes-ldm-6").reworded_scenes == "all"
    assert "; also" not in outside_captions_warning("red circle blue square", "m", trained_on("shapes-cvae"))
    assert "; also" in outside_captions_warning("red circle blue square", "m", trained_on("shapes-ldm-6"))


def test_a_model_with_one_object_rewordings_is_warned_of_two_object_ones(tmp_path):
    """`t2i train tgan-attn --reworded-scenes one` rewords one-object captions only: its record says so, their wording
    is not warned of, the two-object rewordings it never saw still are, and the hint names only what it learnt."""
    write_record(tmp_path, "shapes", make_scenes(8, seed=0), clip="shapes-clip", reworded=True, reworded_scenes="one")
    trained = trained_on(tmp_path)
    assert trained.reworded and trained.reworded_scenes == "one"
    assert shapes_pairs("never_next", reworded=True) < trained.never_next < shapes_pairs("never_next")  # never next
    assert outside_captions_warning("small red triangle in top left", "m", trained) is None
    assert "never join 'small' with 'above'" in outside_captions_warning("a small red circle above a small blue square",
                                                                         "m", trained)
    warning = outside_captions_warning("red circle above blue square", "m", trained)
    assert warning is not None and "; also one object without the articles)" in warning


def test_a_student_reads_its_teacher_beside_it_in_a_scratch_root(tmp_path):
    """Regression: `t2i train defaults --builtin-root ROOT` installs a student naming its teacher by built-in name;
    its record was read through the shipped teacher, not the one trained beside it in ROOT."""
    teacher, student = tmp_path / "shapes-ldm-fast", tmp_path / "shapes-ldm-6"
    teacher.mkdir(), student.mkdir()
    write_record(teacher, "shapes", make_scenes(8, seed=0), clip="shapes-clip", reworded=False)
    (student / "t2i_distill.json").write_text(json.dumps({"teacher": "shapes-ldm-fast"}))
    assert trained_on("shapes-ldm-fast").reworded  # the shipped teacher learnt the rewordings; this one did not
    assert not trained_on(student).reworded and trained_on(student).apart == shapes_pairs("apart")
    assert trained_on("shapes-ldm-6").reworded  # the shipped student still reads the shipped teacher
    (tmp_path / "other").mkdir()  # a name that is no built-in is never looked for beside the model
    (student / "t2i_distill.json").write_text(json.dumps({"teacher": "other"}))
    assert trained_on(student) == TrainedOn()

