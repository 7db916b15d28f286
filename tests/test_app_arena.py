"""The app's arena: battle -> vote -> reveal -> leaderboard, without a browser and through gradio_client."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import random
from pathlib import Path

import pytest

from apps.arena import DB_NAME, Arena, model_names
from apps.models import AppModels, RequestError
from t2i.arena import VoteStore, read_votes

from .app_fixtures import build_tiny_models

PROMPT = "a small red circle in the center"


@pytest.fixture(scope="module")
def app_config(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("arena_models"))


@pytest.fixture(scope="module")
def models(app_config):
    return AppModels.load(app_config)


@pytest.fixture
def arena(app_config, models, tmp_path):
    cfg = dataclasses.replace(app_config, outputs=str(tmp_path / "outputs"))
    made = Arena.from_app(cfg, models)
    made.rng, made.rounds = random.Random(0), 50
    return made


def test_contenders_are_the_apps_text_models(arena, tmp_path):
    assert list(arena.contenders) == ["tgan", "ldm", "shapes-cvae"]  # --gan, --diffusion, --arena
    assert arena.store.path == tmp_path / "outputs" / DB_NAME
    assert model_names(["shapes-ldm", "runs/a/model", "x/runs/a", "b/ldm"]) == ["shapes-ldm", "a", "a-2", "ldm"]


def test_battle_vote_reveal_leaderboard(arena):
    assert arena.leaderboard() == []
    battle, image_a, image_b = arena.battle("  " + PROMPT + " ", 3)
    assert battle["model_a"] != battle["model_b"] and {battle["model_a"], battle["model_b"]} <= set(arena.contenders)
    assert battle["prompt"] == PROMPT and battle["seed"] == 3 and image_a.size == image_b.size == (128, 128)
    reveal, vote = arena.vote(battle, "a")
    assert battle["model_a"] in reveal and battle["model_b"] in reveal and "Model A is better" in reveal
    assert (vote.model_a, vote.model_b, vote.outcome, vote.judge) == (battle["model_a"], battle["model_b"], "a", "human")
    rows = arena.leaderboard()
    assert [r[1] for r in rows] == [battle["model_a"], battle["model_b"]]  # the winner first
    assert rows[0][5:9] == [1, 1, 0, 0] and rows[1][5:9] == [1, 0, 0, 1]  # battles, wins, ties, losses
    with pytest.raises(RequestError, match="already has a vote"):
        arena.vote(battle, "b")  # one vote per battle, however often the button is pressed
    assert len(arena.store) == 1
    for _ in range(5):  # every model gets drawn sooner or later
        battle, _, _ = arena.battle(PROMPT, 0)
        arena.vote(battle, "tie")
    assert arena.leaderboard("auto") == [] and len(arena.leaderboard("human")) >= 2


@pytest.mark.parametrize("call,match", [
    (lambda a: a.battle("", 0), "empty"),
    (lambda a: a.battle(["a"], 0), "must be text"),
    (lambda a: a.battle("x" * 1001, 0), "at most 1000"),
    (lambda a: a.battle(PROMPT, -1), "seed"),
    (lambda a: a.vote(None, "a"), "Start a battle first"),
    (lambda a: a.vote({"battle_id": "x"}, "left"), "must be one of"),
    (lambda a: a.leaderboard("robots"), "shows one of"),
    (lambda a: a.auto_judge(0, 0), "number of battles"),
    (lambda a: a.export("xlsx"), "Export as one of"),
])
def test_bad_requests_get_a_message(arena, call, match):
    with pytest.raises(RequestError, match=match):
        call(arena)


def test_auto_judge_and_export(arena):
    summary = arena.auto_judge(6, 0)
    assert "6 battles" in summary and "| rank | model |" in summary
    auto = arena.store.votes("auto")
    assert len(auto) == 6 and all(v.prompt.startswith("a ") for v in auto)
    assert len(arena.leaderboard("auto")) == 3 and arena.leaderboard("human") == []
    for fmt in ("csv", "jsonl"):
        path = arena.export(fmt)
        assert path.parent == arena.exports and read_votes(path) == arena.store.votes()


@pytest.mark.slow
def test_gradio_client_arena_twenty_voters(app_config, models):
    """Twenty clients battle and vote at once through the server: every vote is stored, names come only
    with the vote, the leaderboard and the export answer."""
    from gradio_client import Client

    from apps.app import build_app, launch

    cfg = dataclasses.replace(app_config, outputs=str(Path(app_config.outputs).parent / "arena_outputs"))
    demo = build_app(cfg, models=models)
    launch(demo, cfg, prevent_thread_lock=True, quiet=True)
    base = f"http://127.0.0.1:{cfg.port}/"
    outcomes = ["a", "b", "tie", "both_bad"]
    try:
        api = Client(base, verbose=False).view_api(print_info=False, return_format="dict")
        assert {"/arena_battle", "/arena_vote_a", "/arena_vote_both_bad", "/arena_leaderboard", "/arena_auto_judge",
                "/arena_export"} <= set(api["named_endpoints"])

        def play(i):
            client = Client(base, verbose=False)  # its own session: its own battle state
            shown = client.predict(PROMPT, i, False, api_name="/arena_battle")
            reveal = client.predict("all", api_name=f"/arena_vote_{outcomes[i % 4]}")
            return shown, reveal

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(play, range(20)))
        votes = VoteStore(Path(cfg.outputs) / DB_NAME).votes()
        assert len(votes) == 20 and sorted(v.seed for v in votes) == list(range(20))
        names = {"tgan", "ldm", "shapes-cvae"}
        for (shown, (reveal, table, *_)), i in zip(answers, range(20)):
            assert not any(n in str(shown) for n in names)  # the battle's answer hides the names
            vote = next(v for v in votes if v.seed == i)
            assert f"**{vote.model_a}**" in reveal and f"**{vote.model_b}**" in reveal
            assert vote.outcome == outcomes[i % 4]
        client = Client(base, verbose=False)
        with pytest.raises(Exception, match="Start a battle first"):
            client.predict("all", api_name="/arena_vote_a")
        table = client.predict("human", api_name="/arena_leaderboard")
        assert {row[1] for row in table["data"]} == names and sum(row[5] for row in table["data"]) == 40
        exported = client.predict("jsonl", api_name="/arena_export")
        assert read_votes(Path(exported)) == votes
    finally:
        demo.close()


def test_battle_warns_of_words_outside_the_training_captions_without_naming_a_model(arena):
    """Regression (issue 16): the arena showed no off-vocabulary warning, though the text-to-image tab did."""
    from t2i.provenance import TrainedOn

    shapes_words = frozenset("a small large red blue circle square in the center".split())
    arena.trained = {"tgan": TrainedOn(words=shapes_words), "ldm": TrainedOn(words=shapes_words | {"cat"}),
                     "shapes-cvae": TrainedOn()}  # the last: no record, so never a warning
    prompt = "a photo of a cat"
    assert arena.vocabulary_warning(prompt, ("tgan", "ldm")) == (
        "Words outside the training captions: 'of', 'photo' (neither model); 'cat' (one of the two); "
        "a model may ignore them.")
    assert arena.vocabulary_warning(prompt, ("shapes-cvae", "tgan")).startswith(
        "Words outside the training captions: 'cat', 'of', 'photo' (one of the two)")
    assert arena.vocabulary_warning(PROMPT, ("tgan", "ldm")) == ""
    assert arena.vocabulary_warning(prompt, ("shapes-cvae", "shapes-cvae")) == ""
    apart = frozenset({("above", "small"), ("above", "in")})  # known words that no caption of one model joins
    arena.trained["ldm"] = TrainedOn(words=shapes_words | {"above"}, apart=apart)
    assert arena.vocabulary_warning("a small red circle above a blue square", ("tgan", "ldm")).startswith(
        "Words outside the training captions: 'above' (one of the two)")  # unknown words come first
    arena.trained["tgan"] = TrainedOn(words=shapes_words | {"above"}, apart=apart - {("above", "in")})
    assert arena.vocabulary_warning("a small red circle above a blue square", ("tgan", "ldm")) == (
        "Words no training caption joins: 'small' with 'above' (neither model); a model may draw them wrong.")
    assert arena.vocabulary_warning("a red circle above a blue square", ("tgan", "ldm")) == ""
    arena.trained["ldm"] = TrainedOn(words=shapes_words | {"above"}, never_next=frozenset({("above", "blue")}))
    assert arena.vocabulary_warning("red circle above blue square", ("tgan", "ldm")) == (
        "Wording no training caption has: 'blue' right after 'above' (one of the two); a model may draw it wrong.")
    battle, _, _ = arena.battle(prompt, 0)  # the battle carries it, and it names no model (anonymous until the vote)
    assert battle["warning"] == arena.vocabulary_warning(prompt, (battle["model_a"], battle["model_b"])) != ""
    assert not any(name in battle["warning"] for name in arena.contenders)
