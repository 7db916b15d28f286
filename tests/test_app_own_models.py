"""Users bring their own models (issue 16, item 6): the app names them by what they are, scores them by the
CLIP they were trained with (raw scores, never a silent 0.0), and warns beside the images when a prompt has
words the model's training captions never held; ``t2i sample`` warns on stderr. Models without a record:
no warning."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from apps.catalog import FALLBACK_CLIP, choose_scorers, describe, model_names
from apps.models import AppModels
from t2i.data.shapes import vocabulary
from t2i.provenance import (PAIR_STATISTICS, RECORD, TrainedOn, caption_words, outside_captions_warning, shapes_pairs,
                            trained_on, unknown_words)

from .app_fixtures import build_tiny_models

OFF = "a photo of a cat"
CLEAN = "a small red circle in the center"
SIZED = "a small red circle above a large blue square"  # known words; shapes' two-object captions carry no sizes
SHAPES_PAIRS = {kind: shapes_pairs(kind) for kind in PAIR_STATISTICS}  # what no shapes caption shows
# the diffusion built-ins, trained with --reworded-captions (the rewordings join and follow words otherwise)
SHAPES_LDM = TrainedOn("shapes", "shapes-clip", vocabulary(), reworded=True,
                       **{kind: shapes_pairs(kind, reworded=True) for kind in PAIR_STATISTICS})


@pytest.fixture(scope="module")
def app_config(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("own_models"))


@pytest.fixture(scope="module")
def models(app_config):
    return AppModels.load(app_config)


# ----------------------------------------------------------------------------- the record
def test_the_trainer_records_its_captions_words_and_clip(app_config):
    run = app_config.gan.removesuffix("/model")
    record = json.loads((Path(run) / RECORD).read_text())
    assert record["data"] == "shapes" and record["captions"] == 32 and set(record["words"]) == vocabulary()
    assert {kind: {tuple(pair) for pair in record[kind]} for kind in PAIR_STATISTICS} == SHAPES_PAIRS
    assert ["above", "small"] in record["apart"] and ["above", "yellow"] in record["never_next"]
    assert record["clip"] == app_config.clip  # the tiny CLIP, by absolute path
    shapes = TrainedOn("shapes", app_config.clip, vocabulary(), **SHAPES_PAIRS)
    assert trained_on(app_config.gan) == trained_on(run) == shapes


def test_builtins_know_the_shapes_grammar_and_their_clip():
    for name in ("shapes-ldm", "shapes-ldm-fast", "shapes-ldm-6"):  # a record, a teacher, a teacher's teacher
        assert trained_on(name) == SHAPES_LDM, name
    assert trained_on("shapes-cvae") == TrainedOn("shapes", "shapes-clip", vocabulary(), **SHAPES_PAIRS)  # configs
    assert trained_on("shapes-tgan") == TrainedOn(  # a record: every scene's captions reworded (its second run)
        "shapes", "shapes-clip", vocabulary(), reworded=True, reworded_scenes="all",
        **{kind: shapes_pairs(kind, reworded=True, reworded_scenes="all") for kind in PAIR_STATISTICS})
    assert unknown_words(OFF, vocabulary()) == ["photo", "cat"]  # "of" is in the grammar ("to the left of")
    assert unknown_words("A Small RED circle, in the center.", vocabulary()) == []


def test_a_model_without_a_record_gets_no_warning(app_config, tmp_path):
    assert trained_on(app_config.diffusion) == TrainedOn()  # a bare pipeline folder
    assert trained_on("org/not-downloaded") == TrainedOn() and trained_on(tmp_path / "missing") == TrainedOn()
    assert unknown_words(OFF, None) == [] and outside_captions_warning(OFF, "x", TrainedOn()) is None


def test_a_fine_tune_knows_its_base_words_and_its_own(tmp_path):
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "t2i_lora.json").write_text(json.dumps({"family": "ldm", "base": "shapes-ldm"}))
    assert trained_on(lora) == SHAPES_LDM  # older: the base's
    (lora / RECORD).write_text(json.dumps({"data": "cats/", "clip": None, "base": "shapes-ldm", "words": ["cat"]}))
    assert trained_on(lora) == TrainedOn("cats/", "shapes-clip", vocabulary() | {"cat"})  # no pairs recorded: None
    (lora / RECORD).write_text(json.dumps({"data": "shards/", "clip": None, "base": "shapes-ldm", "words": None}))
    assert trained_on(lora).words is None  # its own captions were streamed: unknown, so no warnings


def test_an_older_fine_tune_on_other_data_gets_no_false_alarm_and_its_own_clip(tmp_path):
    """Regression (the emoji recipe's runs, made before records): a run with only config.json, fine-tuned
    from shapes-ldm on another folder with a replacing --clip, was warned with shapes words ("never saw
    'cat', 'face'" for its own captions) and scored by shapes-clip."""
    run = tmp_path / "ft"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"init": "shapes-ldm", "data": "emoji/", "clip": "runs/emoji-clip"}))
    assert trained_on(run) == TrainedOn("emoji/", "runs/emoji-clip", None)
    (run / "config.json").write_text(json.dumps({"init": "shapes-ldm", "data": "shapes", "clip": ""}))
    assert trained_on(run) == SHAPES_LDM  # the base's data


def test_caption_words_of_user_data_and_streams():
    class Folder:  # what the user-data loaders hold: every caption of every image
        caption_lists = [["A Cat on a mat"], ["a dog", "the dog's bone"]]

    assert caption_words("my/folder", Folder()) == {"a", "cat", "on", "mat", "dog", "the", "s", "bone"}
    assert caption_words("shapes", None) == vocabulary()
    assert caption_words("data-{000..009}.tar", iter(())) is None


# ----------------------------------------------------------------------------- the app
def test_the_app_names_models_by_what_they_are(app_config, models):
    from apps.app import about_models, build_app

    assert (models.gan_name, models.diffusion_name) == ("tgan", "ldm")  # the folders' names, not "shapes-ldm"
    result = models.generate(CLEAN, "", 0, 1, "ddim", 2, 2.0, False)
    assert "tgan (`tgan`)" in result["summary"] and "ldm (`ldm`" in result["summary"]
    about = about_models(models)
    assert "**tgan** (family `tgan`" in about and "**ldm** (family `ldm`" in about and "shapes-ldm" not in about
    labels = {c["props"].get("label") for c in build_app(app_config, models=models).config["components"]}
    assert {"tgan (tgan)", "ldm (ldm)"} <= labels
    assert model_names(["shapes-ldm", "runs/a/model", "x/runs/a", "b/ldm"]) == ["shapes-ldm", "a", "a-2", "ldm"]
    assert describe("shapes-ldm", "shapes-ldm", "ldm").startswith("**shapes-ldm** (family `ldm`: latent diffusion")


def test_off_vocabulary_prompt_is_warned_beside_the_images(models):
    warned = models.generate(OFF, "", 0, 1, "ddim", 2, 2.0, False)
    assert len(warned["warnings"]) == 1  # the tgan has a record; the bare ldm folder has none: no false alarm
    assert "tgan never saw 'photo', 'cat'" in warned["warning"] and "(shapes)" in warned["warning"]
    clean = models.generate(CLEAN, "", 0, 1, "ddim", 2, 2.0, False)
    assert clean["warnings"] == [] and clean["warning"] == ""


def test_a_prompt_joining_words_no_caption_joins_is_warned_beside_the_images(models):
    """Regression: "a small red circle above a large blue square" (known words, but sizes joined with a relation,
    which no shapes caption does) drew the relation inverted in most images, with no warning."""
    warned = models.generate(SIZED, "", 0, 1, "ddim", 2, 2.0, False)
    assert len(warned["warnings"]) == 1 and warned["warnings"][0] in warned["warning"]
    assert warned["warnings"][0].startswith(
        "tgan's training captions (shapes) never join 'small' with 'above' or 'large', nor 'above' with 'large'")
    assert models.generate("a red circle above a blue square", "", 0, 1, "ddim", 2, 2.0, False)["warnings"] == []


def test_two_models_given_the_same_advice_get_one_warning(models):
    """Regression: the built-in pair (both trained on shapes) showed the same warning twice, grammar and all."""
    both = AppModels(gan=models.gan, diffusion=models.diffusion, scorer=models.scorer, gan_name="tgan",
                     diffusion_name="ldm", trained={"tgan": models.trained["tgan"], "ldm": models.trained["tgan"]})
    assert both.warnings(OFF) == [outside_captions_warning(OFF, "tgan and ldm", models.trained["tgan"], plural=True)]
    assert both.warnings(OFF)[0].startswith(
        "tgan and ldm never saw 'photo', 'cat' in their training captions (shapes): they will draw what they know")
    assert "never join 'small' with 'above' or 'large', nor 'above' with 'large': they were never shown" in (
        both.warnings(SIZED)[0])
    assert both.warnings(CLEAN) == []
    apart = AppModels(gan=models.gan, diffusion=models.diffusion, scorer=models.scorer, gan_name="tgan",
                      diffusion_name="ldm", trained={"tgan": models.trained["tgan"], "ldm": TrainedOn(data="other")})
    assert [w.split(" ")[0] for w in apart.warnings(OFF)] == ["tgan"]  # the other model's record knows no words
    # records apart in the rewordings only (the built-ins since the rewordings): one line where the advice is the same
    worded = dataclasses.replace(models.trained["tgan"], reworded=True)
    assert worded != models.trained["tgan"]
    apart = AppModels(gan=models.gan, diffusion=models.diffusion, scorer=models.scorer, gan_name="tgan",
                      diffusion_name="ldm", trained={"tgan": models.trained["tgan"], "ldm": worded})
    assert apart.warnings(OFF) == both.warnings(OFF) and len(apart.warnings(OFF)) == 1
    worded_only = apart.warnings("red circle blue square")  # the grammar, and for ldm its rewordings too
    assert [w.split("'")[0] for w in worded_only] == ["tgan", "ldm"] and "; also" in worded_only[1]


def test_scores_are_raw_and_say_which_clip_gave_them(models):
    class Negative:
        name = "my-clip"

        def score(self, images, prompts):
            return [-12.5] * len(images)

    own = AppModels(gan=models.gan, diffusion=models.diffusion, scorer=Negative())
    result = own.generate(CLEAN, "", 0, 2, "ddim", 2, 2.0, False)
    assert result["gan_scores"] == [-12.5, -12.5]  # never clamped to a silent 0.0
    assert "-12.5" in result["summary"] and "`my-clip`" in result["summary"] and "unclamped" in result["summary"]


def test_default_clip_is_the_one_each_model_was_trained_with():
    loads = []

    def load(reference):
        if reference == "hub/text-only":
            raise FileNotFoundError("hub/text-only is not a CLIP folder: expected open_clip_config.json")
        loads.append(reference)
        return f"scorer of {reference}"

    trained = {"a": TrainedOn(clip="clip-a"), "b": TrainedOn(clip="clip-a"), "c": TrainedOn()}
    scoring = choose_scorers("", trained, load=load)
    assert scoring.scorers == {"a": "scorer of clip-a", "b": "scorer of clip-a", "c": f"scorer of {FALLBACK_CLIP}"}
    assert loads == ["clip-a", FALLBACK_CLIP]  # each CLIP loaded once
    assert any("c records no CLIP" in n and "may not fit" in n for n in scoring.notes)
    assert any("do not compare" in n for n in scoring.notes)

    same = choose_scorers("", {"a": TrainedOn(clip="clip-a")}, load=load)
    assert same.notes == []  # the CLIP that fits: nothing to say
    given = choose_scorers("clip-z", {"a": TrainedOn(clip="clip-a"), "b": TrainedOn()}, load=load)
    assert set(given.scorers.values()) == {"scorer of clip-z"} and len(given.notes) == 1 and "--clip" in given.notes[0]
    text_only = choose_scorers("", {"a": TrainedOn(clip="hub/text-only")}, load=load)
    assert text_only.scorers["a"] == f"scorer of {FALLBACK_CLIP}" and "cannot score images" in text_only.notes[0]


def test_a_given_clip_that_is_the_recorded_one_by_another_path_gets_no_warning(tmp_path, monkeypatch):
    # regression: `--clip runs/clip` for a model that recorded /abs/runs/clip (or runs/clip/model) was "may not fit"
    (tmp_path / "runs" / "clip" / "model").mkdir(parents=True)
    (tmp_path / "runs" / "clip" / "model" / "open_clip_config.json").write_text("{}")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    load = lambda reference: f"scorer of {reference}"
    for recorded in (str(tmp_path / "runs" / "clip"), str(tmp_path / "runs" / "clip" / "model")):
        assert choose_scorers("runs/clip", {"a": TrainedOn(clip=recorded)}, load=load).notes == []
    assert "may not fit" in choose_scorers("other", {"a": TrainedOn(clip="runs/clip")}, load=load).notes[0]


def test_app_loads_the_recorded_clip_by_default(app_config):
    models = AppModels.load(dataclasses.replace(app_config, clip=""))
    assert models.scorer_of("tgan").name == app_config.clip  # the tgan's recorded CLIP
    assert models.scorer_of("ldm").name == FALLBACK_CLIP  # the bare pipeline records none: noted
    assert any("ldm records no CLIP" in n for n in models.scoring.notes)
    summary = models.generate(CLEAN, "", 0, 1, "ddim", 2, 2.0, False)["summary"]
    assert "ldm records no CLIP" in summary and "do not compare" in summary


# ----------------------------------------------------------------------------- t2i sample
def test_sample_warns_on_stderr_in_one_line(app_config, tmp_path, capsys):
    from train import sample

    assert sample.main(["--model", app_config.gan, "--prompt", OFF, "--out", str(tmp_path / "a")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and "'photo', 'cat'" in err[0]
    assert sample.main(["--model", app_config.gan, "--prompt", CLEAN, "--out", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err
    (tmp_path / "p.txt").write_text(f"{CLEAN}\n{OFF}\n")
    assert sample.main(["--model", app_config.gan, "--prompts", str(tmp_path / "p.txt"), "--out", str(tmp_path / "c")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and "1 of 2 prompts" in err[0]
    assert sample.main(["--model", app_config.diffusion, "--prompt", OFF, "--num-inference-steps", "1",
                        "--out", str(tmp_path / "d")]) == 0
    assert "warning" not in capsys.readouterr().err  # no record, no warning
