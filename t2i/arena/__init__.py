"""The arena: two anonymous models answer one prompt, a person (or the evaluator) votes, ratings follow.

- ``store``: ``Vote`` and ``VoteStore``, the votes in one SQLite file (WAL, a transaction per vote,
  safe under concurrent voters); CSV / JSONL export and read-back.
- ``ratings``: Bradley-Terry ratings on the Elo scale (ties half a win each), bootstrap intervals,
  online Elo, the leaderboard.
- ``judge``: the auto-judge, battles on held-out shapes prompts judged by the shapes evaluator.

The UI is the app's arena tab (``apps/arena.py``); the command is ``t2i arena``.

    python -c "from t2i.arena.ratings import demo; demo()"
"""

from t2i.arena.ratings import Row, bootstrap, bradley_terry, format_table, leaderboard, online_elo
from t2i.arena.store import JUDGES, OUTCOMES, DuplicateVote, Vote, VoteStore, export_votes, new_vote, read_votes

__all__ = ["Vote", "VoteStore", "DuplicateVote", "OUTCOMES", "JUDGES", "new_vote", "export_votes", "read_votes",
           "Row", "bradley_terry", "bootstrap", "online_elo", "leaderboard", "format_table"]
