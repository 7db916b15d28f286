"""The arena's votes: one SQLite file, safe under concurrent writers, exportable as CSV or JSONL.

One row per battle (its id is unique, so a battle gets one vote however often its button is
pressed). SQLite in WAL mode lets readers run while one writer commits; every call opens its own
connection (connections are never shared between threads or processes) and every vote is one
``BEGIN IMMEDIATE`` transaction that waits up to ``timeout_s`` for the write lock, so concurrent
voters queue instead of failing or overwriting each other.

    python -c "from t2i.arena.store import demo; demo()"
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator, Sequence

OUTCOMES = ("a", "b", "tie", "both_bad")  # model A better, model B better, as good, both bad
JUDGES = ("human", "auto")  # a person's vote, or the evaluator's (auto-judge)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    battle_id TEXT NOT NULL UNIQUE,
    time REAL NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER NOT NULL,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ({", ".join(repr(o) for o in OUTCOMES)})),
    judge TEXT NOT NULL CHECK (judge IN ({", ".join(repr(j) for j in JUDGES)})),
    CHECK (model_a <> model_b)
)
"""


@dataclasses.dataclass(frozen=True)
class Vote:
    """One battle and its verdict."""

    battle_id: str  # unique id of the battle (uuid4 hex)
    time: float  # when the vote was cast, seconds since the epoch (UTC)
    prompt: str  # the prompt both models were given
    seed: int  # the seed both models were given (t2i sample --prompt P --seed S re-makes each image)
    model_a: str  # the model shown as "Model A"
    model_b: str  # the model shown as "Model B"
    outcome: str  # one of OUTCOMES
    judge: str = "human"  # one of JUDGES

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {list(OUTCOMES)}, got {self.outcome!r}")
        if self.judge not in JUDGES:
            raise ValueError(f"judge must be one of {list(JUDGES)}, got {self.judge!r}")
        if self.model_a == self.model_b:
            raise ValueError(f"a battle needs two different models, got {self.model_a!r} twice")


def new_vote(prompt: str, seed: int, model_a: str, model_b: str, outcome: str, judge: str = "human") -> Vote:
    """A vote for a new battle: a fresh battle id, the current time."""
    return Vote(uuid.uuid4().hex, time.time(), prompt, int(seed), model_a, model_b, outcome, judge)


class DuplicateVote(ValueError):
    """The battle already has a vote."""


class VoteStore:
    """Votes in one SQLite file (WAL mode); one connection per call, one transaction per vote."""

    FIELDS = tuple(f.name for f in dataclasses.fields(Vote))

    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
            db.execute(SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves; timeout: wait for the write lock
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")  # a committed vote survives a power cut
            yield db
        finally:
            db.close()

    def add(self, vote: Vote) -> Vote:
        """Record one vote in its own transaction; ``DuplicateVote`` if its battle already has one."""
        self.add_many([vote])
        return vote

    def add_many(self, votes: Sequence[Vote]) -> int:
        """Record votes in one transaction (all or none); the number written."""
        rows = [tuple(getattr(v, f) for f in self.FIELDS) for v in votes]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
            try:
                db.executemany(f"INSERT INTO votes ({', '.join(self.FIELDS)}) VALUES ({', '.join('?' * len(self.FIELDS))})",
                               rows)
            except sqlite3.IntegrityError as err:
                db.execute("ROLLBACK")
                if "battle_id" in str(err):
                    raise DuplicateVote("this battle already has a vote; start a new battle to vote again") from None
                raise ValueError(f"vote refused by the database: {err}") from None
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return len(rows)

    def votes(self, judge: str | None = None) -> list[Vote]:
        """Every vote in the order cast; ``judge`` ("human"/"auto") keeps only that judge's."""
        if judge is not None and judge not in JUDGES:
            raise ValueError(f"judge must be one of {list(JUDGES)} or None, got {judge!r}")
        query = f"SELECT {', '.join(self.FIELDS)} FROM votes" + (" WHERE judge = ?" if judge else "") + " ORDER BY id"
        with self._connect() as db:
            return [Vote(*row) for row in db.execute(query, (judge,) if judge else ())]

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]


# ---- export and import ----------------------------------------------------------------
FORMATS = ("csv", "jsonl")


def export_votes(votes: Sequence[Vote], path: str | Path) -> Path:
    """Write votes as CSV (a header row) or JSONL (one object a line), chosen by the file's suffix."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"export to a .csv or .jsonl file, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            writer = csv.writer(fh)
            writer.writerow(VoteStore.FIELDS)
            writer.writerows([getattr(v, f) for f in VoteStore.FIELDS] for v in votes)
        else:
            for v in votes:
                fh.write(json.dumps(dataclasses.asdict(v), ensure_ascii=False) + "\n")
    return path


def read_votes(path: str | Path) -> list[Vote]:
    """Votes from a file written by ``export_votes`` (CSV or JSONL)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(fh))
            return [Vote(**{**r, "time": float(r["time"]), "seed": int(r["seed"])}) for r in rows]
        if path.suffix.lower() == ".jsonl":
            return [Vote(**json.loads(line)) for line in fh if line.strip()]
    raise ValueError(f"read votes from a .csv or .jsonl file, got {path.name!r}")


def demo() -> None:
    with tempfile.TemporaryDirectory() as d:
        store = VoteStore(Path(d) / "arena.sqlite")
        for outcome in OUTCOMES:
            store.add(new_vote("a small red circle in the center", 0, "shapes-ldm", "shapes-tgan", outcome))
        print(len(store), "votes;", export_votes(store.votes(), Path(d) / "votes.csv").read_text().splitlines()[:2])
