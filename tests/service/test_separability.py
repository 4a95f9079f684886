"""`steerrec bench separability`: the probe's bound, the AUC, and the filter's rates as served."""

import itertools

import numpy as np
import pytest
from steerrec.service.separability import (
    READOUT_CANDIDATES,
    auc,
    fpr_at_recall,
    logistic_probe,
    names_concept,
    neuron_readouts,
    probe_filters,
    run_separability,
)
from steerrec.service.steering_bench import Ranker

from steerrec.bundle import SAE_WEIGHTS
from steerrec.cli import main

from ._steer_helpers import genre_slug, labelled_bundle, labelled_engine, plain_engine


def test_a_label_names_its_genres_but_not_its_qualifier():
    assert names_concept("Comedy", "Comedy") and names_concept("Comedy (1980s)", "Comedy")
    assert names_concept("Children's & Animation", "Children's")
    assert names_concept("Children's & Animation", "Animation")
    assert names_concept("Children's & Animation (1990s)", "Animation")
    assert not names_concept("Drama (1980s)", "1980s")
    assert not names_concept("Comedy-Drama", "Drama") and not names_concept("mixed #3", "Comedy")


def test_probe_separates_separable_data_and_cannot_separate_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) > 0.3
    scores = logistic_probe(x, y)
    assert fpr_at_recall(scores, y, 1.0) == 0.0 and auc(scores, y) == 1.0
    labels = rng.random(400) < 0.3  # independent of x: nothing to find
    scores = logistic_probe(x, labels)
    assert abs(auc(scores, labels) - 0.5) < 0.1
    assert fpr_at_recall(scores, labels, 1.0) > 0.8


def test_probe_reaches_the_penalised_optimum_on_heavy_tailed_nearly_separable_data():
    # Rows of very different norms (as a recommender's item factors have) make full Newton steps
    # overshoot: the undamped fit wandered off to AUC 0.63 on this data.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 32)) * np.exp(2.0 * rng.normal(size=(2000, 1)))
    s = x @ rng.normal(size=32)
    y = s > np.quantile(s, 0.86)
    scores = logistic_probe(x, y, l2=1e-2)
    assert auc(scores, y) > 0.999
    standardised = np.hstack([(x - x.mean(0)) / x.std(0), np.ones((len(x), 1))])
    w = np.linalg.lstsq(standardised, scores, rcond=None)[0]
    p = 0.5 * (1.0 + np.tanh(0.5 * scores))
    gradient = standardised.T @ (p - y) + 1e-2 * w  # of the penalised log-loss: zero at the optimum
    assert np.abs(gradient).max() < 1e-6 * len(x)


def test_fpr_at_recall_keeps_the_requested_share_of_positives():
    scores = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    y = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 0], bool)  # positives at 9, 7, 6, 4, 1
    assert fpr_at_recall(scores, y, 0.6) == 1 / 5  # threshold 6: negative 8 above it
    assert fpr_at_recall(scores, y, 0.8) == 2 / 5  # threshold 4: negatives 8 and 5
    assert fpr_at_recall(scores, y, 1.0) == 4 / 5  # threshold 1: all but 0


def test_auc_equals_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, size=60).astype(float)  # many ties
    y = rng.random(60) < 0.4
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p, n in itertools.product(scores[y], scores[~y])]
    assert auc(scores, y) == pytest.approx(np.mean(pairs), abs=1e-12)


def test_filter_rates_are_those_of_the_served_filter():
    engine = labelled_engine()
    results = {r.concept: r for r in run_separability(engine, "genre", ["Horror", "Comedy"])}
    genres = engine.bundle.item_metadata()["facets"]["genre"]
    for genre, r in results.items():
        member = np.array([genre in g for g in genres])
        dropped = np.zeros(len(member), bool)
        _, filters, _ = engine.parse(filter=[genre_slug(engine, genre)])
        dropped[engine.filtered_rows(filters)[0]] = True
        assert (r.items, r.filter_recall, r.filter_fpr) == (member.sum(), dropped[member].mean(), dropped[~member].mean())
        assert r.labelled >= 1 and r.union_recall >= r.filter_recall
        # The demo's planted genres are linear directions of its embeddings: the probe finds them.
        assert r.probe_auc > 0.95 and r.probe_fpr[0.95] < 0.1


def test_probe_filter_is_the_fewest_probe_items_that_empty_enough_lists():
    engine = labelled_engine()
    genres = engine.bundle.item_metadata()["facets"]["genre"]
    ranker = Ranker(engine, 300, 20)
    embedding = np.hstack([engine.index.vectors, engine.index.bias[:, None]])

    def users_with_none(member, dropped_rows):
        top = ranker.top(ranker.base_UD, dropped_rows)
        shown = member.copy()
        shown[dropped_rows] = False
        return (~shown[top]).all(1).mean()

    for r in probe_filters(engine, "genre", ["Horror", "Comedy"], k=20, users=300, none_share=0.96):
        member = np.array([r.concept in g for g in genres])
        order = np.argsort(-logistic_probe(embedding, member), kind="stable")
        assert users_with_none(member, order[:r.dropped]) == r.none >= 0.96
        assert users_with_none(member, order[:r.dropped - 1]) < 0.96  # one item fewer is not enough
        dropped = np.zeros(len(member), bool)
        dropped[order[:r.dropped]] = True
        assert (r.recall, r.fpr) == (dropped[member].mean(), dropped[~member].mean())
        assert r.recall_change == ranker.recall(ranker.top(ranker.base_UD, order[:r.dropped])) / ranker.base_recall - 1
        _, filters, _ = engine.parse(filter=[genre_slug(engine, r.concept)])
        assert r.filter_none == users_with_none(member, engine.filtered_rows(filters)[0])
        neurons = {j: engine.catalog.items_by_neuron.row(j)[0] for j in range(engine.n_latents)}
        candidates = {j: users_with_none(member, rows) for j, rows in neurons.items()
                      if member[rows].sum() >= member.sum() / 2}
        assert r.best_none == max(candidates.values()) == candidates[r.best_neuron]
        fprs = {j: np.isin(np.arange(len(member)), neurons[j])[~member].mean() for j in candidates}
        assert r.best_fpr == fprs[r.best_neuron] == min(fprs[j] for j, none in candidates.items() if none == r.best_none)
        assert filters[0].neuron not in candidates or r.best_none >= r.filter_none
        # Planted genres are linear directions: the probe empties the lists dropping little else.
        assert r.fpr < 0.05


def test_a_neurons_filter_drops_a_head_of_its_readout_order_at_every_threshold():
    """The read-out is the encoder's pre-activation, so what `filter=J:>T` drops is the items whose
    read-out passes a cut-off: the bound the read-out columns rely on."""
    engine = labelled_engine()
    readouts = neuron_readouts(engine)
    w = engine.bundle.npz(SAE_WEIGHTS)
    x = (engine.index.vectors.astype(np.float64) - w["mean"]) / float(w["scale"])
    assert np.allclose(readouts, (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    rng = np.random.default_rng(2)
    for j in rng.choice(engine.n_latents, 12, replace=False):
        for threshold in (0.0, 0.5, 2.0):
            _, filters, _ = engine.parse(filter=[f"{j}:>{threshold:g}"])
            dropped = np.zeros(len(readouts), bool)
            dropped[engine.filtered_rows(filters)[0]] = True
            if dropped.any() and not dropped.all():
                assert readouts[dropped, j].min() > readouts[~dropped, j].max()


def test_best_readout_is_the_cheapest_of_the_best_separating_neurons():
    engine = labelled_engine()
    genres = engine.bundle.item_metadata()["facets"]["genre"]
    readouts = neuron_readouts(engine)
    ranker = Ranker(engine, 60, 20)

    def none_left(member, rows):
        top = ranker.top(ranker.base_UD, rows)
        shown = member.copy()
        shown[rows] = False
        return (~shown[top]).all(1).mean()

    results = {r.concept: r for r in run_separability(engine, "genre", ["Horror", "Comedy"])}
    for r in probe_filters(engine, "genre", ["Horror", "Comedy"], k=20, users=60, none_share=0.96):
        member = np.array([r.concept in g for g in genres])
        aucs = [auc(readouts[:, j], member) for j in range(engine.n_latents)]
        assert results[r.concept].readout_auc == max(aucs) == aucs[results[r.concept].readout_neuron]
        fprs = {}
        for j in np.argsort(aucs)[::-1][:READOUT_CANDIDATES]:
            order = np.argsort(-readouts[:, j], kind="stable")
            n = next(n for n in range(len(order) + 1) if none_left(member, order[:n]) >= 0.96)  # linear search
            fprs[j] = np.isin(np.flatnonzero(~member), order[:n]).mean()
        assert r.readout_fpr == min(fprs.values()) == fprs[r.readout_neuron]


def test_unlabelled_bundle_is_refused():
    with pytest.raises(ValueError, match="no neurons.json; run `steerrec interpret --bundle"):
        run_separability(plain_engine())


def test_command_prints_the_table(capsys):
    assert main(["bench", "separability", "--bundle", str(labelled_bundle())]) == 0
    out = capsys.readouterr().out
    assert "| Horror " in out and "probe FPR @ recall 0.99" in out and "cannot do much better" in out
    assert "probe: users with none" in out and "leaves >= 0.96 of the users with none" in out
    assert "| best neuron: users with none | best neuron: FPR |" in out and "| best read-out: FPR |" in out
    assert "| best read-out AUC |" in out
