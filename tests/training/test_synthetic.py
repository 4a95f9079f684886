"""The embedded default dataset: deterministic, planted concepts in metadata, realistic skew."""

import numpy as np
from steerrec.training.data import load_dataset
from steerrec.training.data.synthetic import GENRES


def test_same_seed_same_data_and_other_seed_differs():
    a = load_dataset("synthetic", n_users=300, n_items=200, seed=3)
    b = load_dataset("synthetic", n_users=300, n_items=200, seed=3)
    c = load_dataset("synthetic", n_users=300, n_items=200, seed=4)
    assert np.array_equal(a.user, b.user) and np.array_equal(a.item, b.item)
    assert a.items.titles == b.items.titles
    assert not (len(a) == len(c) and np.array_equal(a.item, c.item))


def test_planted_concepts_are_in_the_metadata_and_hierarchical():
    d = load_dataset("synthetic")
    facets = d.items.facets
    assert set(facets) == {"genre", "subgenre", "decade"}
    assert {g for gs in facets["genre"] for g in gs} == set(GENRES)
    for genres, (sub,) in zip(facets["genre"], facets["subgenre"]):
        parent, child = sub.split("/")
        assert parent == genres[0] and child in GENRES[parent]
    assert len({s for (s,) in facets["subgenre"]}) == 3 * len(GENRES)


def test_popularity_is_skewed_and_users_follow_their_tastes():
    d = load_dataset("synthetic")
    pop = np.sort(d.item_popularity())[::-1]
    # a heavy head: the top 10% of items take a far larger share than a uniform catalogue would
    assert pop[: len(pop) // 10].sum() / pop.sum() > 0.3
    # a user's interactions concentrate on their favourite genre well above its catalogue share
    main_genre = np.array([g[0] for g in d.items.facets["genre"]])
    fav = np.array(d.user_meta["favourite_genre"])
    share_fav = np.mean(main_genre[d.item] == fav[d.user])
    assert share_fav > 0.45


def test_decade_taste_is_planted_like_a_genre():
    """Users have favourite decades: a user's interactions fall in their favourite decade far more
    often than that decade's share of the catalogue (era is a taste, not a nudge)."""
    d = load_dataset("synthetic")
    decade = np.array([x for (x,) in d.items.facets["decade"]])
    fav = np.array(d.user_meta["favourite_decade"])
    catalogue_share = {k: np.mean(decade == k) for k in set(decade)}
    expected = np.mean([catalogue_share[f] for f in fav[d.user]])
    assert np.mean(decade[d.item] == fav[d.user]) > 1.3 * expected
