"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008) of two arms' rankings.

Each round a fair coin picks which team drafts first; each team then adds its highest-ranked item
not yet in the merged list, and the item is credited to that team. A click is credited to the team
that contributed the clicked item; the arm with more credited clicks wins that impression. Because
both arms are shown to the same user at once, interleaving needs far fewer users than an A/B split
to detect a preference.

``simulate_interleaving`` replays the held-out test set: a user "clicks" every interleaved item
that is among their test items. The win rate of each arm is over impressions with a winner (ties
reported apart) and the two-sided sign test asks whether wins and losses differ from a coin flip.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..experiments import Assignment
from .simulate import Ranker, TestSet
from .stats import sign_test

TEAM_A, TEAM_B = 0, 1


class Interleaving(NamedTuple):
    items: np.ndarray
    """int64 [n]: the merged list shown, best first."""
    teams: np.ndarray
    """int8 [n]: TEAM_A (0) or TEAM_B (1), the team credited with each position."""


def team_draft(ranking_a: np.ndarray, ranking_b: np.ndarray, k: int,
               rng: np.random.Generator) -> Interleaving:
    """Merges two rankings into at most ``k`` distinct items. Within every round each team adds
    one item (the coin only decides the order), until a team runs out of new items; the other
    team then fills the remaining places."""
    rankings = (list(map(int, ranking_a)), list(map(int, ranking_b)))
    cursors = [0, 0]
    shown: set[int] = set()
    items: list[int] = []
    teams: list[int] = []

    def next_new(team: int) -> int | None:
        ranking = rankings[team]
        while cursors[team] < len(ranking) and ranking[cursors[team]] in shown:
            cursors[team] += 1
        return ranking[cursors[team]] if cursors[team] < len(ranking) else None

    while len(items) < k:
        first = int(rng.integers(2))
        added = False
        for team in (first, 1 - first):
            if len(items) >= k:
                break
            item = next_new(team)
            if item is None:
                continue
            shown.add(item)
            items.append(item)
            teams.append(team)
            added = True
        if not added:
            break
    return Interleaving(np.array(items, dtype=np.int64), np.array(teams, dtype=np.int8))


def attribute(interleaving: Interleaving, clicked: np.ndarray) -> tuple[int, int]:
    """(clicks credited to A, clicks credited to B) for the clicked item ids."""
    hit = np.isin(interleaving.items, np.asarray(clicked))
    return int(np.sum(hit & (interleaving.teams == TEAM_A))), int(np.sum(hit & (interleaving.teams == TEAM_B)))


def outcome(clicks_a: int, clicks_b: int) -> int:
    """+1 when A wins the impression, -1 when B wins, 0 for a tie (including no clicks)."""
    return (clicks_a > clicks_b) - (clicks_a < clicks_b)


class InterleavingResult(NamedTuple):
    arm_a: str
    arm_b: str
    users: int
    wins_a: int
    wins_b: int
    ties: int
    """Impressions with equal credit (no click at all included)."""
    clicks_a: int
    clicks_b: int
    win_rate_a: float
    """wins_a / (wins_a + wins_b); nan when no impression had a winner."""
    win_rate_b: float
    p_value: float
    """Two-sided exact sign test of wins_a against wins_b."""


def simulate_interleaving(rank: Ranker, arm_a: Assignment, arm_b: Assignment, test: TestSet, k: int = 20,
                          seed: int = 0, users: np.ndarray | None = None) -> InterleavingResult:
    """Interleaves both arms' top-k for every test user; each user's coin flips come from
    (seed, user), so a user's result does not depend on which other users are replayed."""
    users = test.users() if users is None else np.asarray(users, dtype=np.int64)
    wins = {1: 0, -1: 0, 0: 0}
    total_a = total_b = 0
    for u in users:
        u = int(u)
        merged = team_draft(rank(u, arm_a)[:k], rank(u, arm_b)[:k], k, np.random.default_rng([seed, u]))
        a, b = attribute(merged, test.indices[test.indptr[u]: test.indptr[u + 1]])
        wins[outcome(a, b)] += 1
        total_a, total_b = total_a + a, total_b + b
    decided = wins[1] + wins[-1]
    return InterleavingResult(
        arm_a=arm_a.arm, arm_b=arm_b.arm, users=len(users), wins_a=wins[1], wins_b=wins[-1], ties=wins[0],
        clicks_a=total_a, clicks_b=total_b,
        win_rate_a=wins[1] / decided if decided else float("nan"),
        win_rate_b=wins[-1] / decided if decided else float("nan"),
        p_value=sign_test(wins[1], wins[-1]))


def format_interleaving(r: InterleavingResult) -> str:
    from steerrec.table import markdown_table

    def rate(x: float) -> str:
        return "-" if np.isnan(x) else f"{x:.4f}"

    table = markdown_table(
        ["arm", "wins", "win rate", "credited clicks"],
        [[r.arm_a, r.wins_a, rate(r.win_rate_a), r.clicks_a], [r.arm_b, r.wins_b, rate(r.win_rate_b), r.clicks_b]])
    return (f"team-draft interleaving of {r.arm_a} and {r.arm_b} over {r.users} test users "
            f"({r.ties} ties)\n\n{table}\n\nsign test (ties dropped): p = {r.p_value:.4g}")
