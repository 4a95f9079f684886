"""`steerrec bench steering`: its batch ranking is the service's own answer, boosting a genre's
neuron raises that genre's share, and filtering drops the neuron's items."""

import numpy as np
import pytest
from steerrec.service.steering_bench import (
    Ranker,
    SteeringBenchConfig,
    best_strength,
    run_steering_bench,
)

from steerrec.cli import main

from ._steer_helpers import labelled_bundle, labelled_engine, plain_engine


def test_batch_ranking_equals_the_engines_recommendations():
    engine = labelled_engine()
    users = np.array([0, 5, 17, 123])
    ranker = Ranker(engine, users, 20)
    slug = engine.catalog.slug(int(np.flatnonzero([engine.catalog.slug(j) == "horror"
                                                  for j in range(engine.n_latents)])[0]))
    j = engine.catalog.resolve(slug)
    steered = engine.user_factors[users].astype(np.float64) + 3 * engine.scale[j] * engine.directions[j]
    batch = ranker.top(steered)
    for row, u in enumerate(users):
        served = engine.recommend(engine.user_ids[u], 20, steer=[f"{slug}:+3"]).rows
        assert batch[row].tolist() == list(served)
    _, filters, _ = engine.parse(filter=[slug])
    dropped, _ = engine.filtered_rows(filters)
    batch = ranker.top(engine.user_factors[users].astype(np.float64), dropped)
    for row, u in enumerate(users):
        assert batch[row].tolist() == list(engine.recommend(engine.user_ids[u], 20, filter=[slug]).rows)


def test_boost_raises_the_genre_share_and_filter_lowers_it():
    cfg = SteeringBenchConfig(values=["Horror", "Comedy"], strengths=(1.0, 12.0), users=300)
    results = {r.concept: r for r in run_steering_bench(labelled_engine(), cfg)}
    for genre in ("Horror", "Comedy"):
        r = results[genre]
        assert r.neuron is not None
        shares = [r.base_share] + [r.boosted[v][0] for v in cfg.strengths]
        assert shares == sorted(shares) and shares[-1] > 0.9 and r.base_share < 0.3
        assert r.boosted[12.0][1] >= 0.9 and r.boosted[1.0][1] < 0.5
        assert r.filtered[0] < r.base_share / 3 and r.filtered[2] < 0  # filtering costs recall
    assert best_strength(list(results.values()), cfg) == (12.0, 2)


def test_unlabelled_bundle_is_refused_with_the_command_to_run():
    with pytest.raises(ValueError, match="no neurons.json; run `steerrec interpret --bundle"):
        run_steering_bench(plain_engine(), SteeringBenchConfig())


def test_command_prints_the_table(capsys):
    args = ["bench", "steering", "--bundle", str(labelled_bundle()), "--users", "200", "--strengths", "2,4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| Horror " in out and "+4 users>=0.8" in out
    assert "genre values reach >= 80% of the top-20 for >= 90% of users at strength +" in out


def test_a_missing_bundle_is_one_line_naming_it(capsys, tmp_path):
    assert main(["bench", "steering", "--bundle", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"steerrec bench: error: {tmp_path / 'nope'}: bundle directory does not exist"
