"""What the app's arena tab does, without the UI: battles, votes, the leaderboard, the auto-judge, export.

A battle: one prompt and seed, two different models drawn at random from the app's text-conditional
generators, shown as "Model A" and "Model B" with their names hidden until the vote. The vote goes
to ``OUTPUTS/arena.sqlite`` (``t2i.arena.store.VoteStore``: one transaction per vote, so concurrent
voters lose nothing; a battle takes one vote). The leaderboard is ``t2i.arena.ratings``'
Bradley-Terry fit with bootstrap intervals. The auto-judge plays battles on held-out shapes prompts
judged by the shapes evaluator (``t2i.arena.judge``) and stores them with judge="auto".

Kept apart from ``apps/app.py`` so it can be tested without a browser.

    python -c "from apps.arena import demo; demo()"
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from apps.catalog import model_names
from apps.models import AppModels, RequestError, check_prompt, upscaled, whole_number
from gan_baselines.registry import load_generator
from t2i.arena import DuplicateVote, Vote, VoteStore, export_votes, format_table, leaderboard
from t2i.arena.judge import auto_judge
from t2i.arena.ratings import HEADER, table_rows
from t2i.arena.store import FORMATS, JUDGES, OUTCOMES
from t2i.generator import GenerationError, Generator
from t2i.provenance import TrainedOn, joined_apart, trained_on, unknown_words, unseen_next

DB_NAME = "arena.sqlite"  # the votes' file under the app's outputs folder
SHOWN = ("all",) + JUDGES  # whose votes the leaderboard counts
VERDICT = {"a": "Model A is better", "b": "Model B is better", "tie": "a tie", "both_bad": "both are bad"}


@dataclass
class Arena:
    contenders: dict[str, Generator]  # name -> text-conditional generator
    store: VoteStore  # the votes
    exports: Path  # folder for exported vote files (under the app's outputs, so they can be downloaded)
    display_size: int = 128  # images are upscaled (nearest) to this many pixels
    max_auto_battles: int = 200  # battles one auto-judge request may play
    rounds: int = 200  # bootstrap resamplings of the leaderboard's intervals
    rng: random.Random = field(default_factory=random.Random)  # draws the two models of a battle
    _evaluator: Any = None  # the shapes evaluator, loaded on the first auto-judge
    trained: dict[str, TrainedOn] = field(default_factory=dict)  # name -> its training captions' words (no entry: unknown)

    def __post_init__(self) -> None:
        if len(self.contenders) < 2:
            raise ValueError(f"the arena needs at least two text-conditional models, got {sorted(self.contenders)}")
        for name, g in self.contenders.items():
            if g.conditioning != "text":
                raise ValueError(f"arena models take prompts; {name!r} is conditioned on {g.conditioning!r}")

    @classmethod
    def from_app(cls, cfg, models: AppModels) -> "Arena":
        """The app's text GAN and diffusion model plus ``cfg.arena``'s models; label-only ones are left out."""
        extra = [s.strip() for s in cfg.arena.split(",") if s.strip()]
        specs = [cfg.gan, cfg.diffusion] + extra
        generators = [models.gan, models.diffusion] + [load_generator(s) for s in extra]
        names = model_names(specs)
        contenders = {n: g for n, g in zip(names, generators) if g.conditioning == "text"}
        trained = {n: models.trained.get(n) or trained_on(spec) for n, spec in zip(names, specs) if n in contenders}
        return cls(contenders, VoteStore(Path(cfg.outputs) / DB_NAME), Path(cfg.outputs) / "exports",
                   display_size=cfg.display_size, trained=trained)

    def _display(self, image: Image.Image) -> Image.Image:
        return upscaled(image, self.display_size)

    # ---- a battle and its vote ------------------------------------------------------
    def battle(self, prompt: Any, seed: Any) -> tuple[dict[str, Any], Image.Image, Image.Image]:
        """Two different models drawn at random answer ``prompt`` with ``seed``: (battle, image A, image B).
        The battle (names included) stays on the server until the vote."""
        check_prompt(prompt)
        prompt, seed = " ".join(prompt.split()), whole_number("seed", seed, 0, 2**31 - 1)
        model_a, model_b = self.rng.sample(sorted(self.contenders), 2)
        try:
            image_a = self.contenders[model_a].generate(prompts=[prompt], seed=seed)[0]
            image_b = self.contenders[model_b].generate(prompts=[prompt], seed=seed)[0]
        except GenerationError as err:
            raise RequestError(str(err)) from None
        battle = {"battle_id": uuid.uuid4().hex, "prompt": prompt, "seed": seed, "model_a": model_a, "model_b": model_b,
                  "warning": self.vocabulary_warning(prompt, (model_a, model_b))}
        return battle, self._display(image_a), self._display(image_b)

    def vocabulary_warning(self, prompt: str, models: tuple[str, str]) -> str:
        """One line when the prompt has words the battle's models never saw in training, else words their captions
        never join, else wording they never have, naming neither model (the battle is anonymous until the vote);
        "" otherwise, or when their training captions are unknown."""
        trained = [self.trained.get(m, TrainedOn()) for m in models]
        checks = [(lambda t: {repr(w) for w in unknown_words(prompt, t.words)},
                   "Words outside the training captions", "a model may ignore them"),
                  (lambda t: {f"{u!r} with {v!r}" for u, v in joined_apart(prompt, t.apart)},
                   "Words no training caption joins", "a model may draw them wrong"),
                  (lambda t: {f"{v!r} right after {u!r}" for u, v in unseen_next(prompt, t.never_next)},
                   "Wording no training caption has", "a model may draw it wrong")]
        for find, what, effect in checks:
            found = [find(t) for t in trained]
            groups = [(sorted(found[0] & found[1]), "neither model"), (sorted(found[0] ^ found[1]), "one of the two")]
            parts = [f"{', '.join(items[:6])}{' ...' if len(items) > 6 else ''} ({who})" for items, who in groups
                     if items]
            if parts:
                return f"{what}: {'; '.join(parts)}; {effect}."
        return ""

    def vote(self, battle: dict[str, Any] | None, outcome: str) -> tuple[str, Vote]:
        """Store the vote on ``battle``; (the reveal text, the vote). A battle takes one vote."""
        if not battle:
            raise RequestError("Start a battle first: there is nothing to vote on.")
        if outcome not in OUTCOMES:
            raise RequestError(f"The vote must be one of {list(OUTCOMES)}; got {outcome!r}.")
        vote = Vote(battle["battle_id"], time.time(), battle["prompt"], battle["seed"],
                    battle["model_a"], battle["model_b"], outcome, "human")
        try:
            self.store.add(vote)
        except DuplicateVote as err:
            raise RequestError(str(err)) from None
        reveal = (f"**Model A** was **{vote.model_a}**, **Model B** was **{vote.model_b}**; you voted: "
                  f"{VERDICT[outcome]}. Seed {vote.seed}: `t2i sample --model NAME --prompt \"...\" --seed {vote.seed}` "
                  "re-makes either image.")
        return reveal, vote

    # ---- leaderboard, auto-judge, export ------------------------------------------------
    def votes(self, shown: str = "all") -> list[Vote]:
        if shown not in SHOWN:
            raise RequestError(f"The leaderboard shows one of {list(SHOWN)}; got {shown!r}.")
        return self.store.votes(None if shown == "all" else shown)

    def leaderboard(self, shown: str = "all") -> list[list[Any]]:
        """The leaderboard's rows (``t2i.arena.ratings.HEADER``'s columns), best first."""
        return table_rows(leaderboard(self.votes(shown), rounds=self.rounds))

    def auto_judge(self, n: Any, seed: Any, progress: Callable[[str], None] | None = None) -> str:
        """Play ``n`` evaluator-judged battles, store them (judge="auto"); a summary for the user."""
        n = whole_number("number of battles", n, 1, self.max_auto_battles)
        seed = whole_number("seed", seed, 0, 2**31 - 1)
        if self._evaluator is None:
            from t2i.evaluators.shapes import ShapesEvaluator

            self._evaluator = ShapesEvaluator.from_pretrained()
        votes = auto_judge(self.contenders, n, seed, evaluator=self._evaluator, progress=progress)
        self.store.add_many(votes)
        auto = self.store.votes("auto")
        return (f"The shapes evaluator played {n} battles on held-out one-object shapes prompts (seed {seed}); "
                f"{len(auto)} auto-judged votes in all. Ratings from the auto-judged votes only:\n\n"
                + format_table(leaderboard(auto, rounds=self.rounds)))

    def export(self, fmt: str) -> Path:
        """Every vote to a new ``exports/votes-<id>.<fmt>`` file (CSV or JSONL)."""
        if fmt not in FORMATS:
            raise RequestError(f"Export as one of {list(FORMATS)}; got {fmt!r}.")
        return export_votes(self.store.votes(), self.exports / f"votes-{uuid.uuid4().hex[:12]}.{fmt}")


def demo() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        contenders = {n: load_generator(n) for n in ("shapes-tgan", "shapes-cvae")}
        arena = Arena(contenders, VoteStore(Path(d) / DB_NAME), Path(d) / "exports", rng=random.Random(0))
        battle, _, _ = arena.battle("a small red circle in the center", 0)
        print(arena.vote(battle, "a")[0])
        print(HEADER, arena.leaderboard(), sep="\n")
