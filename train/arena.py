"""The arena from the command line: the leaderboard of a vote database, the auto-judge, vote export.

The database is the app's (``OUTPUTS/arena.sqlite``, ``outputs/app/arena.sqlite`` by default) or
any file; the auto-judge plays battles between any text-conditional models (folders, run folders,
built-in names) on held-out shapes prompts judged by the shapes evaluator, stores them with
judge="auto" and prints the leaderboard of the auto-judged votes.

    t2i arena leaderboard --db outputs/app/arena.sqlite
    t2i arena auto-judge --models shapes-ldm,shapes-tgan,shapes-cvae --n 30 --db /tmp/arena.sqlite
    t2i arena export --db outputs/app/arena.sqlite --out votes.csv
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Sequence

from t2i.arena import VoteStore, export_votes, format_table, leaderboard
from t2i.arena.ratings import BOTH_BAD
from t2i.config import parse_config

DEFAULT_DB = "outputs/app/arena.sqlite"  # the app's database with its default --outputs


@dataclasses.dataclass
class LeaderboardConfig:
    db: str = DEFAULT_DB  # the vote database (SQLite file)
    judge: str = "all"  # whose votes count: all, human or auto
    both_bad: str = "tie"  # "both bad" votes: tie (half a win each) or exclude
    rounds: int = 1000  # bootstrap resamplings for the 95% intervals
    seed: int = 0  # seed of the bootstrap


@dataclasses.dataclass
class AutoJudgeConfig:
    models: str = "shapes-ldm,shapes-tgan,shapes-cvae"  # comma-separated text-conditional models (two at least)
    n: int = 30  # battles to play
    seed: int = 0  # battle i uses held-out prompt i and seed + i; also draws the sides
    kind: str = "one"  # prompts with one object, two objects, or any
    db: str = DEFAULT_DB  # the vote database the auto-judged votes are added to
    rounds: int = 1000  # bootstrap resamplings for the 95% intervals


@dataclasses.dataclass
class ExportConfig:
    db: str = DEFAULT_DB  # the vote database
    out: str = "votes.csv"  # the file to write: .csv or .jsonl


def _existing(db: str) -> VoteStore:
    from pathlib import Path

    if not Path(db).is_file():
        raise FileNotFoundError(f"no vote database at {db}; give --db FILE (the app writes OUTPUTS/arena.sqlite)")
    return VoteStore(db)


def _print_board(votes, rounds: int, seed: int = 0, both_bad: str = "tie") -> None:
    print(format_table(leaderboard(votes, rounds=rounds, seed=seed, both_bad=both_bad)))
    print(f"\n{len(votes)} votes. Bradley-Terry ratings on the Elo scale (mean 1000; a tie counts half a win each, "
          f"'both bad' {'too' if both_bad == 'tie' else 'left out'}), 95% intervals from {rounds} bootstrap rounds.")


def leaderboard_main(argv: Sequence[str]) -> int:
    cfg = parse_config(LeaderboardConfig, argv, prog="t2i arena leaderboard", description=__doc__)
    if cfg.judge not in ("all", "human", "auto"):
        raise ValueError(f"judge must be one of ['all', 'human', 'auto'], got {cfg.judge!r}")
    if cfg.both_bad not in BOTH_BAD:
        raise ValueError(f"both_bad must be one of {list(BOTH_BAD)}, got {cfg.both_bad!r}")
    votes = _existing(cfg.db).votes(None if cfg.judge == "all" else cfg.judge)
    if not votes:
        print(f"no {'' if cfg.judge == 'all' else cfg.judge + ' '}votes in {cfg.db} yet")
        return 0
    _print_board(votes, cfg.rounds, cfg.seed, cfg.both_bad)
    return 0


def auto_judge_main(argv: Sequence[str]) -> int:
    from gan_baselines.registry import load_generator
    from t2i.arena.judge import KINDS, auto_judge

    cfg = parse_config(AutoJudgeConfig, argv, prog="t2i arena auto-judge", description=__doc__)
    if cfg.kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {cfg.kind!r}")
    names = [m.strip() for m in cfg.models.split(",") if m.strip()]
    votes = auto_judge({name: load_generator(name) for name in names}, cfg.n, cfg.seed, cfg.kind,
                       progress=lambda text: print(text, file=sys.stderr))
    store = VoteStore(cfg.db)
    store.add_many(votes)
    print(f"played {len(votes)} battles between {names}; added to {cfg.db}\n")
    _print_board(store.votes("auto"), cfg.rounds)
    return 0


def export_main(argv: Sequence[str]) -> int:
    cfg = parse_config(ExportConfig, argv, prog="t2i arena export", description=__doc__)
    votes = _existing(cfg.db).votes()
    print(f"wrote {len(votes)} votes to {export_votes(votes, cfg.out)}")
    return 0


ACTIONS = {"leaderboard": leaderboard_main, "auto-judge": auto_judge_main, "export": export_main}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if argv[0] not in ACTIONS:
        raise ValueError(f"t2i arena takes one of {list(ACTIONS)}, got {argv[0]!r} (see t2i arena --help)")
    return ACTIONS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
