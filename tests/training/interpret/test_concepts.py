"""Concept matrices from metadata: facets, derived popularity quintiles and decades, slugs."""

import re

import numpy as np
import pytest
from steerrec.training.interpret import concepts as CO

from steerrec.bundle import SLUG_PATTERN, BundleError


@pytest.mark.parametrize("name,slug", [("Children's", "childrens"), ("Sci-Fi", "sci-fi"),
                                       ("Horror/Slasher", "horror-slasher"), ("Film-Noir", "film-noir"),
                                       ("  Hip Hop!! ", "hip-hop"), ("Café Tacvba", "cafe-tacvba"),
                                       ("drum & bass", "drum-and-bass"), ("1990s", "1990s")])
def test_slugify(name, slug):
    assert CO.slugify(name) == slug
    assert re.fullmatch(SLUG_PATTERN, slug)


def test_popularity_quintiles_are_balanced_and_ordered():
    pop = np.array([50, 0, 7, 7, 7, 3, 100, 1, 2, 9])
    cm = CO.popularity_quintiles(pop)
    assert [c.slug for c in cm.concepts] == ["popular", "popularity-20-40", "popularity-40-60",
                                             "popularity-60-80", "niche"]
    assert cm.support_C.tolist() == [2, 2, 2, 2, 2]
    assert (cm.matrix_IC.sum(1) == 1).all()
    assert np.flatnonzero(cm.matrix_IC[:, 0]).tolist() == [0, 6]  # the two most popular
    assert np.flatnonzero(cm.matrix_IC[:, 4]).tolist() == [1, 7]  # the two least popular


def test_decades_from_year():
    assert CO.decades_from_year([1994, None, float("nan"), 2000, 1969.0]) == [("1990s",), (), (), ("2000s",),
                                                                           ("1960s",)]


def test_item_concepts_reads_every_facet_adds_derived_ones_and_drops_rare_concepts():
    meta = {"title": list("abcdef"),
            "facets": {"genre": [["Horror"], ["Horror", "Comedy"], ["Comedy"], ["Horror"], ["Drama"], []]},
            "year": [1981, 1985, 1992, None, 1999, 1998]}
    cm = CO.item_concepts(meta, np.arange(6), min_support=2)
    names = [(c.facet, c.name) for c in cm.concepts]
    assert names[:2] == [("genre", "Horror"), ("genre", "Comedy")]  # Drama (1 item) dropped
    assert ("decade", "1990s") in names and ("decade", "1980s") in names
    assert sum(c.facet == "popularity" for c in cm.concepts) == 5
    assert cm.matrix_IC[:, cm.index("genre", "Horror")].tolist() == [True, True, False, True, False, False]
    assert cm.matrix_IC[:, cm.index("decade", "1990s")].tolist() == [False, False, True, False, True, True]


def test_a_decade_facet_is_not_duplicated_from_years():
    meta = {"title": ["a", "b"], "facets": {"decade": [["1990s"], ["1990s"]]}, "year": [1990, 1991]}
    cm = CO.item_concepts(meta, np.array([1, 2]), min_support=1)
    assert [c.name for c in cm.concepts if c.facet == "decade"] == ["1990s"]


def test_malformed_facet_names_the_file():
    with pytest.raises(BundleError, match="item_metadata.json: facet 'genre' has 1 rows for 2 items"):
        CO.item_concepts({"title": ["a", "b"], "facets": {"genre": [["x"]]}}, np.array([1, 2]))


def test_narrower_than_finds_subgenres_under_genres():
    meta = {"title": list("abcdefg"),
            "facets": {"genre": [["Horror"]] * 5 + [["Comedy"]] * 2,
                       "subgenre": [["Horror/Slasher"]] * 3 + [["Horror/Zombie"]] * 2 + [["Comedy/Satire"]] * 2}}
    cm = CO.item_concepts(meta, np.arange(7), min_support=1)
    nar = CO.narrower_than(cm)
    horror, slasher = cm.index("genre", "Horror"), cm.index("subgenre", "Horror/Slasher")
    assert nar[slasher, horror] and not nar[horror, slasher]
    # Comedy/Satire holds exactly Comedy's items: equal sets are not a refinement either way.
    assert not nar[cm.index("subgenre", "Comedy/Satire"), cm.index("genre", "Comedy")]


def test_user_concepts_from_categorical_columns():
    cm = CO.user_concepts({"gender": ["F", "M", "M", None]}, 4, min_support=1)
    assert [c.name for c in cm.concepts] == ["M", "F"]
    assert cm.matrix_IC.sum(0).tolist() == [2, 1]
    with pytest.raises(BundleError, match="one value per user"):
        CO.user_concepts({"gender": ["F"]}, 4)


def test_spellings_with_one_slug_are_one_concept_and_slugs_are_unique_across_facets():
    meta = {"title": list("abcde"),
            "facets": {"tag": [["hip-hop"], ["hip hop"], ["hip-hop", "Hip Hop"], ["horror"], []],
                       "genre": [["Horror"], ["Horror"], [], [], []]}}
    cm = CO.item_concepts(meta, np.arange(5), min_support=1)
    tags = [c for c in cm.concepts if c.facet == "tag"]
    assert [(c.name, c.slug) for c in tags] == [("hip-hop", "hip-hop"), ("horror", "horror")]
    assert cm.matrix_IC[:, 0].tolist() == [True, True, True, False, False]
    genre = [c for c in cm.concepts if c.facet == "genre"]
    assert genre[0].slug == "genre-horror"
    slugs = [c.slug for c in cm.concepts]
    assert len(set(slugs)) == len(slugs)
