"""A/B analysis: statistics against hand values and scipy, the events report, the offline
simulation with a fake ranker, and team-draft interleaving."""

import copy
import json
import math
import sys
import types

import numpy as np
import pytest
from scipy import stats
from steerrec.service.abtest.interleave import (
    TEAM_A,
    TEAM_B,
    Interleaving,
    attribute,
    outcome,
    simulate_interleaving,
    team_draft,
)
from steerrec.service.abtest.report import build_report, format_report, load_events
from steerrec.service.abtest.simulate import (
    TestSet,
    bootstrap_intervals,
    concept_mask,
    engine_ranker,
    load_test_set,
    simulate,
)
from steerrec.service.abtest.stats import (
    holm,
    sign_test,
    two_proportion_ztest,
    wilson_interval,
    z_quantile,
)
from steerrec.service.events import EventStore
from steerrec.service.experiments import Assignment, ExperimentSet

from steerrec.cli import main

from ._steer_helpers import require_demo

Z95 = 1.959963984540054

# -- statistics -----------------------------------------------------------------------------------


def test_wilson_interval_against_hand_computation_and_scipy():
    low, high = wilson_interval(10, 100)
    centre = (0.1 + Z95**2 / 200) / (1 + Z95**2 / 100)
    half = Z95 * math.sqrt(0.1 * 0.9 / 100 + Z95**2 / 40_000) / (1 + Z95**2 / 100)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (low, high) == pytest.approx((0.05522, 0.17437), abs=5e-5)  # published tables
    ref = stats.binomtest(10, 100).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    ref99 = stats.binomtest(37, 250).proportion_ci(confidence_level=0.99, method="wilson")
    assert wilson_interval(37, 250, 0.99) == pytest.approx((ref99.low, ref99.high), abs=1e-12)


def test_wilson_interval_edges():
    assert wilson_interval(0, 50) == pytest.approx((0.0, Z95**2 / (50 + Z95**2)), abs=1e-12)
    assert wilson_interval(50, 50) == pytest.approx((50 / (50 + Z95**2), 1.0), abs=1e-12)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)
    assert z_quantile(0.95) == pytest.approx(Z95, abs=1e-12)


def test_two_proportion_ztest_against_hand_and_scipy():
    # 30/200 treated against 20/210 control.
    z, p = two_proportion_ztest(30, 200, 20, 210)
    pooled = 50 / 410
    z_hand = (30 / 200 - 20 / 210) / math.sqrt(pooled * (1 - pooled) * (1 / 200 + 1 / 210))
    assert z == pytest.approx(z_hand, abs=1e-12)
    assert p == pytest.approx(2 * stats.norm.sf(abs(z_hand)), abs=1e-12)
    chi2, p_chi2, _, _ = stats.chi2_contingency([[30, 170], [20, 190]], correction=False)
    assert z**2 == pytest.approx(chi2, rel=1e-10)
    assert p == pytest.approx(p_chi2, rel=1e-10)
    assert z == pytest.approx(1.6938, abs=1e-4) and p == pytest.approx(0.09031, abs=1e-5)  # by hand
    assert two_proportion_ztest(20, 210, 30, 200).z == pytest.approx(-z)


def test_two_proportion_ztest_zero_counts():
    assert two_proportion_ztest(0, 100, 0, 120) == (0.0, 1.0)  # both all-zero: identical
    assert two_proportion_ztest(10, 10, 7, 7) == (0.0, 1.0)  # both all-one
    z, p = two_proportion_ztest(0, 100, 5, 100)
    assert z < 0 and p == pytest.approx(stats.chi2_contingency([[0, 100], [5, 95]], correction=False)[1])
    assert all(math.isnan(x) for x in two_proportion_ztest(3, 10, 0, 0))


def test_holm_and_sign_test():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.2, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    for wins, losses in [(12, 0), (7, 3), (5, 5), (60, 40), (1510, 1420), (0, 1)]:
        assert sign_test(wins, losses) == pytest.approx(stats.binomtest(wins, wins + losses).pvalue, rel=1e-9)
    assert sign_test(12, 0) == pytest.approx(2 * 0.5**12)
    assert sign_test(0, 0) == 1.0


# -- report ---------------------------------------------------------------------------------------

CONFIG = {"experiments": [{
    "name": "boost", "salt": "s",
    "arms": [{"name": "control", "weight": 1}, {"name": "horror", "weight": 1, "steer": ["horror:+3"]},
             {"name": "idle", "weight": 1}],
}]}


@pytest.fixture
def event_files(tmp_path):
    """Two replicas' files. Control: users a, b, c (a twice); horror: users d, e."""
    one, two = EventStore(tmp_path / "r1.db"), EventStore(tmp_path / "r2.db")
    one.record_exposure("q1", "a", "boost", "control", ["i1", "i2"], ts=1)
    one.record_exposure("q2", "a", "boost", "control", ["i3"], ts=2)
    one.record_exposure("q3", "b", "boost", "control", ["i1"], ts=3)
    two.record_exposure("q4", "c", "boost", "control", ["i4"], ts=4)
    two.record_exposure("q5", "d", "boost", "horror", ["i5", "i6"], ts=5)
    two.record_exposure("q6", "e", "boost", "horror", ["i5"], ts=6)
    two.record_exposure("q1", "a", "boost", "control", ["i1", "i2"], ts=1)  # replayed into the other file
    one.record_exposure("q7", "f", "boost", "horror", ["i5"], ts=7, forced=True)  # QA: left out
    one.record_exposure("q8", "g", None, None, ["i5"], ts=8)  # no experiment: left out
    # Clicks. a clicks on both of its requests; q5 is clicked twice; feedback on q5 lands in the
    # file without its exposure (another replica); one orphan, one click on an item not shown.
    one.record_feedback("q1", "a", "i2", "click", ts=10)
    one.record_feedback("q2", "a", "i3", "click", ts=11)
    one.record_feedback("q5", "d", "i5", "click", ts=12)
    two.record_feedback("q5", "d", "i6", "click", ts=13)
    two.record_feedback("q5", "d", "i6", "click", ts=13)  # duplicate, ignored at write
    one.record_feedback("q6", "e", "i6", "click", ts=14)  # i6 was not shown in q6
    two.record_feedback("zz", "z", "i1", "click", ts=15)  # orphan
    two.record_feedback("q3", "b", "i1", "like", ts=16)  # another kind
    two.record_feedback("q7", "f", "i5", "click", ts=17)  # forced exposure
    for s in (one, two):
        s.close()
    return [tmp_path / "r1.db", tmp_path / "r2.db"]


def test_report_counts_by_user_against_hand_computation(event_files):
    exposures, feedback = load_events(event_files)
    assert len(exposures) == 8 and len(feedback) == 8
    report = build_report(exposures, feedback, ExperimentSet.from_dict(CONFIG))
    rows = {r.arm: r for r in report.rows}
    assert list(rows) == ["control", "horror", "idle"]
    c, h, idle = rows["control"], rows["horror"], rows["idle"]
    assert (c.exposures, c.users, c.clicks, c.units, c.converted, c.control) == (4, 3, 2, 3, 1, True)
    assert (h.exposures, h.users, h.clicks, h.units, h.converted) == (2, 2, 2, 2, 1)
    assert (idle.exposures, idle.units, idle.converted) == (0, 0, 0)
    assert c.rate == pytest.approx(1 / 3) and h.rate == pytest.approx(1 / 2)
    assert (c.ci_low, c.ci_high) == pytest.approx(wilson_interval(1, 3))
    assert h.lift == pytest.approx(0.5)
    z, p = two_proportion_ztest(1, 2, 1, 3)
    assert (h.z, h.p_value) == pytest.approx((z, p))
    assert h.p_holm == pytest.approx(p)  # idle has no units: only one test
    assert math.isnan(c.p_value) and math.isnan(idle.p_value) and math.isnan(idle.rate)
    assert report.notes == [
        "1 forced (QA override) exposures left out",
        "1 exposures outside any experiment left out",
        "1 'click' events with no logged exposure (orphaned) left out",
        "1 'click' events on items that were not shown left out",
    ]


def test_report_by_exposure_and_other_kind(event_files):
    exposures, feedback = load_events(event_files)
    rows = {r.arm: r for r in build_report(exposures, feedback, unit="exposure").rows}
    assert list(rows) == ["control", "horror"]  # no config: arms from the data, control by name
    assert (rows["control"].units, rows["control"].converted) == (4, 2)
    assert (rows["horror"].units, rows["horror"].converted) == (2, 1)
    assert rows["horror"].p_value == pytest.approx(two_proportion_ztest(1, 2, 2, 4).p_value)
    likes = {r.arm: r for r in build_report(exposures, feedback, kind="like").rows}
    assert (likes["control"].converted, likes["horror"].converted) == (1, 0)
    with pytest.raises(ValueError, match="no experiment named 'nope'"):
        build_report(exposures, feedback, ExperimentSet.from_dict(CONFIG), experiment="nope")


def test_report_flags_users_in_two_arms_and_missing_control(tmp_path):
    store = EventStore(tmp_path / "e.db")
    store.record_exposure("1", "u", "x", "a", ["i"])
    store.record_exposure("2", "u", "x", "b", ["i"])
    report = build_report(list(store.exposures()), list(store.feedback()))
    assert "x: no control arm (no config and no arm named 'control'); no tests" in report.notes
    assert "x: 1 users were exposed in more than one arm (weights or salt changed mid-experiment?); they count in each" in report.notes


def test_report_command_prints_the_table(event_files, tmp_path, capsys):
    config = tmp_path / "exp.json"
    config.write_text(json.dumps(CONFIG))
    assert main(["ab", "report", "--events", *map(str, event_files), "--experiments", str(config)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("| experiment | arm")
    control = next(line for line in lines if "control (control)" in line)
    assert "| 1/3 " in control and "0.3333" in control
    horror = next(line for line in lines if "| horror " in line)
    assert "+50.0%" in horror and "| 1/2 " in horror
    assert "- 1 'click' events with no logged exposure (orphaned) left out" in out
    assert main(["ab", "report", "--events", str(tmp_path / "missing.db")]) == 2


def test_format_report_of_nothing():
    assert format_report(build_report([], [])) == "no exposures"


# -- simulate -------------------------------------------------------------------------------------

# Users 0..3; user 0: items 1, 4 plus one outside the catalogue; user 1: item 2; user 2: nothing
# (not evaluated); user 3: only two items outside the catalogue (evaluated, never hit).
TEST = TestSet(indptr=np.array([0, 2, 3, 3, 3]), indices=np.array([1, 4, 2]), unrankable=np.array([1, 0, 0, 2]))
HORROR = np.array([False, False, False, False, True, True])
CONTROL = Assignment("boost", "control", control=True)
BOOST = Assignment("boost", "horror", steer=["horror:+3"])


def fake_rank(user, arm):
    return np.array([4, 5]) if arm.steer else np.array([0, 1, 2, 3, 4, 5])  # the boost filters to horror


def test_simulate_against_hand_computed_recall_and_ndcg():
    sim = simulate(fake_rank, [CONTROL, BOOST], TEST, k=3, mask=HORROR, concept="genre=Horror", n_bootstrap=200)
    assert sim.users == 3
    control, boost = sim.arms
    d = 1 / math.log2(3)
    idcg3 = 1 + d + 0.5
    # control top-3 [0, 1, 2]: user 0 hits item 1 at rank 2 of min(3, 2 + 1) = 3 relevant; user 1
    # hits item 2 at rank 3 of 1; user 3 nothing.
    assert control.recall.mean == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert control.ndcg.mean == pytest.approx((d / idcg3 + 0.5 + 0) / 3)
    # boost [4, 5]: user 0 hits item 4 at rank 1.
    assert boost.recall.mean == pytest.approx((1 / 3) / 3)
    assert boost.ndcg.mean == pytest.approx((1 / idcg3) / 3)
    assert (control.share.mean, boost.share.mean) == (0.0, 1.0)
    assert (control.mean_returned, boost.mean_returned) == (3.0, 2.0)
    # Paired differences: the share moves by exactly 1 for every user, so its interval is a point.
    assert tuple(boost.d_share) == pytest.approx((1.0, 1.0, 1.0))
    assert boost.d_recall.mean == pytest.approx(boost.recall.mean - control.recall.mean)
    assert control.d_recall is None
    for iv in (control.recall, control.ndcg, boost.recall):
        assert iv.low <= iv.mean <= iv.high


def test_simulate_without_concept_or_bootstrap_and_user_subset():
    sim = simulate(fake_rank, [CONTROL, BOOST], TEST, k=3, n_bootstrap=0, users=np.array([1, 2]))
    assert sim.users == 1  # user 2 has no test item
    assert sim.arms[0].recall.mean == 1.0 and math.isnan(sim.arms[0].recall.low)
    assert sim.arms[0].share is None and sim.arms[1].d_share is None
    with pytest.raises(ValueError, match="duplicate"):
        simulate(lambda u, a: np.array([1, 1]), [CONTROL], TEST, k=3, n_bootstrap=0)


def test_bootstrap_interval_matches_the_normal_approximation():
    values = np.random.default_rng(1).normal(0.3, 0.2, size=(1, 2000))
    iv = bootstrap_intervals(values, n_bootstrap=2000, confidence=0.95, seed=0)[0]
    half = Z95 * values.std() / math.sqrt(2000)
    assert iv.mean == pytest.approx(values.mean())
    assert iv.high - iv.mean == pytest.approx(half, rel=0.1)
    assert iv.mean - iv.low == pytest.approx(half, rel=0.1)
    again = bootstrap_intervals(values, n_bootstrap=2000, confidence=0.95, seed=0)[0]
    assert again == iv


def test_concept_mask():
    meta = {"facets": {"genre": [["Horror"], ["Comedy", "horror"], "Drama", []]}}
    assert concept_mask(meta, "genre=Horror").tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="FACET=VALUE"):
        concept_mask(meta, "Horror")
    with pytest.raises(ValueError, match=r"no facet 'decade'.*\['genre'\]"):
        concept_mask(meta, "decade=1990s")
    with pytest.raises(ValueError, match="no item has genre=Western"):
        concept_mask(meta, "genre=Western")


def test_load_test_set_from_the_demo_bundle():
    test = load_test_set(require_demo())
    assert test.indptr.shape == (3001,) and test.unrankable.shape == (3000,)
    assert len(test.users()) == int(np.sum(np.diff(test.indptr) + test.unrankable > 0))


def test_engine_ranker_accepts_the_engine_result_shapes():
    class Recommendation:
        def __init__(self, rows):
            self.rows = rows

    calls = []

    class Engine:
        def __init__(self, shape):
            self.shape = shape

        def recommend(self, user, k, steer, filter, promote, exclude_seen=True):
            calls.append((user, k, steer, filter, promote, exclude_seen))
            idx = np.arange(k)[::-1]
            return (idx, np.zeros(k)) if self.shape == "tuple" else Recommendation(idx)

    arm = Assignment("e", "a", steer=["x:+1"], filter=["y"], promote=["z:+2"])
    assert engine_ranker(Engine("tuple"), 3)(7, arm).tolist() == [2, 1, 0]
    assert engine_ranker(Engine("object"), 3, user_ids=[f"u{i}" for i in range(10)])(7, arm).tolist() == [2, 1, 0]
    assert calls == [(7, 3, ["x:+1"], ["y"], ["z:+2"], True), ("u7", 3, ["x:+1"], ["y"], ["z:+2"], True)]


class StandInEngine:
    """The base model ranking, with a crude "boost" (horror first) for any steered arm; it knows
    only the slug "horror", like an engine whose bundle lacks other neurons."""

    def __init__(self, root):
        from steerrec.bundle import Bundle

        bundle = Bundle.open(root)
        self.users_UD, self.items_ID, self.bias_I = bundle.factors()
        self.indptr, self.indices = bundle.train_interactions()
        self.user_row = {u: i for i, u in enumerate(bundle.user_ids())}
        self.horror = concept_mask(bundle.item_metadata(), "genre=Horror")

    def parse(self, steer=(), filter=(), promote=()):
        for spec in [*steer, *filter, *promote]:
            if spec.split(":")[0] != "horror":
                raise ValueError(f"unknown neuron {spec.split(':')[0]!r}")

    def recommend(self, user, k, steer, filter, promote, exclude_seen=True):
        row = self.user_row[user]
        scores = self.users_UD[row] @ self.items_ID.T + self.bias_I
        if exclude_seen:
            scores[self.indices[self.indptr[row]: self.indptr[row + 1]]] = -np.inf
        if steer:
            scores = scores + 100 * self.horror
        top = np.argsort(-scores, kind="stable")[:k]
        return types.SimpleNamespace(rows=top, scores=scores[top])


def test_simulate_command_with_a_stand_in_engine(monkeypatch, tmp_path, capsys):
    """The CLI wiring on the demo bundle, with a stand-in for the steering engine."""
    monkeypatch.setitem(sys.modules, "steerrec.service.engine", types.SimpleNamespace(SteeringEngine=StandInEngine))
    config = tmp_path / "exp.json"
    config.write_text(json.dumps(CONFIG))
    args = ["ab", "simulate", "--bundle", str(require_demo()), "--experiments", str(config), "--users", "150",
            "--bootstrap", "50", "--k", "10"]
    assert main(args + ["--concept", "genre=horror"]) == 0
    out = capsys.readouterr().out
    assert "150 test users, top-10" in out
    horror = next(line for line in out.splitlines() if line.startswith("| horror "))
    assert "1.0000 [1.0000, 1.0000]" in horror  # every boosted list is all horror
    control = next(line for line in out.splitlines() if line.startswith("| control (control) "))
    assert "1.0000" not in control.split("|")[4]
    assert main(args + ["--interleave", "control,horror"]) == 0
    out = capsys.readouterr().out
    assert "team-draft interleaving of control and horror over 150 test users" in out
    assert main(args + ["--interleave", "control,nope"]) == 2
    assert "arms: ['control', 'horror', 'idle']" in capsys.readouterr().err

    bad = copy.deepcopy(CONFIG)
    bad["experiments"][0]["arms"][2]["steer"] = ["comedy:+2"]
    config.write_text(json.dumps(bad))
    assert main(args) == 2
    assert "experiments[0].arms[2] (boost:idle): unknown neuron 'comedy'" in capsys.readouterr().err


# -- interleaving ---------------------------------------------------------------------------------


def test_team_draft_alternates_without_duplicates():
    rng = np.random.default_rng(0)
    for trial in range(200):
        a, b = rng.permutation(50), rng.permutation(50)
        merged = team_draft(a, b, 20, np.random.default_rng(trial))
        assert len(merged.items) == 20 and len(set(merged.items.tolist())) == 20
        for r in range(10):  # every round: one item from each team, in either order
            assert sorted(merged.teams[2 * r: 2 * r + 2].tolist()) == [TEAM_A, TEAM_B]
        # Each pick is its team's best item not shown before.
        shown = set()
        for item, team in zip(merged.items.tolist(), merged.teams.tolist()):
            ranking = (a, b)[team].tolist()
            assert item == next(x for x in ranking if x not in shown)
            shown.add(item)


def test_team_draft_is_deterministic_with_a_seed_and_uses_the_coin():
    a, b = np.arange(30), np.arange(30)[::-1]
    first = team_draft(a, b, 10, np.random.default_rng(42))
    again = team_draft(a, b, 10, np.random.default_rng(42))
    assert first.items.tolist() == again.items.tolist() and first.teams.tolist() == again.teams.tolist()
    orders = {tuple(team_draft(a, b, 10, np.random.default_rng(s)).teams.tolist()) for s in range(20)}
    assert len(orders) > 1


def test_team_draft_when_a_list_runs_out():
    merged = team_draft(np.array([1, 2]), np.array([2, 3, 4, 5, 6]), 6, np.random.default_rng(3))
    assert sorted(merged.items.tolist()) == [1, 2, 3, 4, 5, 6]
    merged = team_draft(np.array([1, 2]), np.array([1, 2]), 10, np.random.default_rng(3))
    assert sorted(merged.items.tolist()) == [1, 2] and sorted(merged.teams.tolist()) == [TEAM_A, TEAM_B]


def test_attribution_and_outcome():
    shown = Interleaving(np.array([10, 20, 30, 40]), np.array([TEAM_A, TEAM_B, TEAM_B, TEAM_A], dtype=np.int8))
    assert attribute(shown, np.array([20, 40, 99])) == (1, 1)
    assert attribute(shown, np.array([20, 30])) == (0, 2)
    assert (outcome(1, 1), outcome(0, 2), outcome(3, 1), outcome(0, 0)) == (0, -1, 1, 0)


def test_simulated_interleaving_prefers_the_arm_that_ranks_test_items():
    n_users, n_items = 12, 40
    rng = np.random.default_rng(5)
    truth = [rng.choice(n_items, size=3, replace=False) for _ in range(n_users)]
    test = TestSet(np.concatenate([[0], np.cumsum([3] * n_users)]), np.concatenate(truth), np.zeros(n_users, int))
    good, bad = Assignment("e", "good"), Assignment("e", "bad")

    def rank(user, arm):
        rest = np.setdiff1d(np.arange(n_items), truth[user])
        return np.concatenate([truth[user], rest]) if arm.arm == "good" else rest

    result = simulate_interleaving(rank, good, bad, test, k=10, seed=0)
    assert (result.wins_a, result.wins_b, result.ties) == (12, 0, 0)
    assert (result.clicks_a, result.clicks_b) == (36, 0)
    assert (result.win_rate_a, result.win_rate_b) == (1.0, 0.0)
    assert result.p_value == pytest.approx(2 * 0.5**12)
    same = simulate_interleaving(rank, good, good, test, k=10, seed=0)
    assert same.wins_a + same.wins_b + same.ties == 12
    assert same.clicks_a + same.clicks_b == 36
