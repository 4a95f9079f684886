"""Labels, slugs and statuses on a hand-built catalogue whose neurons we know the meaning of."""

import re

import numpy as np
import pytest
from steerrec.training.interpret import alignment as AL
from steerrec.training.interpret import concepts as CO
from steerrec.training.interpret import labels as LB

from steerrec.bundle import SLUG_PATTERN, NeuronRecord

N = 120


def catalogue():
    """40 Horror (20 from the 1980s: 10 slashers, 10 zombie films), 40 Comedy, 40 Drama."""
    genre = [["Horror"]] * 40 + [["Comedy"]] * 40 + [["Drama"]] * 40
    sub = [["Horror/Slasher"]] * 10 + [["Horror/Zombie"]] * 10 + [["Horror/Ghost"]] * 20 + \
          [["Comedy/Satire"]] * 40 + [["Drama/Family"]] * 40
    decade = [["1980s"]] * 20 + [["1990s"]] * 20 + ([["1980s"]] * 5 + [["1990s"]] * 15) * 2 + [["2000s"]] * 40
    meta = {"title": [f"item {i}" for i in range(N)],
            "facets": {"genre": genre, "subgenre": sub, "decade": decade}}
    popularity = np.arange(N)[::-1] % 37 + 1
    return meta, popularity


def codes(popularity):
    rng = np.random.default_rng(0)
    z = np.zeros((N, 9), np.float32)
    z[:40, 0] = 5 + rng.random(40)              # broad Horror, strongest and complete
    z[40:43, 0] = 1.0
    z[:20, 1] = 6 + rng.random(20)              # 1980s Horror only
    z[45:47, 1] = 0.5
    z[rng.choice(40, 25, replace=False), 2] = 3  # a weaker Horror neuron, with drama mixed in
    z[80:90, 2] = 2.5
    z[rng.choice(N, 30, replace=False), 3] = 1 + rng.random(30)  # no concept: mixed
    # latent 4 never fires: dead
    z[40:80, 5] = 4 + rng.random(40)            # Comedy
    # latent 6 fires on users only (see users below)
    z[:10, 7] = 7                               # slashers only
    z[:, 8] = np.log(popularity) * (rng.random(N) < 0.9)  # follows popularity, any genre
    users = np.zeros((5, 9), np.float32)
    users[:, 6] = 1.0
    return z, users


def aligned():
    """The catalogue's metadata, concepts, alignment, live latents and popularity correlations."""
    meta, pop = catalogue()
    z, users = codes(pop)
    cm = CO.item_concepts(meta, pop, min_support=5)
    al = AL.align(z, cm.matrix_IC)
    alive = (z > 0).any(0) | (users > 0).any(0)
    return meta, cm, al, alive, AL.pearson(z, np.log1p(pop).astype(float))


@pytest.fixture(scope="module")
def labelled():
    meta, cm, al, alive, pop_corr = aligned()
    namings, slugs = LB.label_neurons(al, cm, CO.narrower_than(cm), alive, LB.LabelConfig(), pop_corr)
    records = LB.build_records(namings, slugs, al, cm, np.zeros(9, int), [str(i) for i in range(N)],
                               meta["title"], LB.LabelConfig())
    return namings, slugs, records


def test_statuses(labelled):
    namings, _, _ = labelled
    assert [n.status for n in namings] == ["ok", "ok", "ok", "low_confidence", "dead", "ok", "low_confidence",
                                           "ok", "ok"]


def test_the_best_horror_neuron_owns_the_plain_slug(labelled):
    namings, slugs, _ = labelled
    assert (namings[0].label, slugs[0]) == ("Horror", "horror")
    assert (namings[5].label, slugs[5]) == ("Comedy", "comedy")


def test_an_anchored_neuron_owns_its_concept_slug_when_its_label_names_it():
    _, cm, al, alive, _ = aligned()
    horror, comedy = cm.index("genre", "Horror"), cm.index("genre", "Comedy")
    # Neuron 2 (the weaker Horror one) was trained as the Horror anchor: it takes `horror` from 0.
    namings, slugs = LB.label_neurons(al, cm, CO.narrower_than(cm), alive, LB.LabelConfig(), anchors={2: horror})
    assert (namings[2].label, slugs[2]) == ("Horror", "horror") and slugs[0] == "horror-2"
    # An anchor whose label does not name its concept (neuron 3 is mixed) takes nothing.
    _, slugs = LB.label_neurons(al, cm, CO.narrower_than(cm), alive, LB.LabelConfig(), anchors={3: comedy})
    assert slugs[5] == "comedy" and slugs[3] == "n3"


def test_a_narrower_neuron_gets_a_compound_label_and_the_weaker_a_numbered_slug(labelled):
    namings, slugs, _ = labelled
    assert (namings[1].label, slugs[1]) == ("Horror (1980s)", "horror-1980s")
    assert namings[2].label == "Horror" and slugs[2] == "horror-2"
    assert namings[2].confidence < namings[0].confidence


def test_a_subgenre_neuron_is_named_by_the_subgenre(labelled):
    namings, slugs, _ = labelled
    assert (namings[7].label, slugs[7]) == ("Horror/Slasher", "horror-slasher")


def test_unsupported_neurons_claim_no_concept(labelled):
    namings, slugs, records = labelled
    for i in (3, 4, 6):
        assert slugs[i] == f"n{i}"
        assert "Horror" not in namings[i].label and "Comedy" not in namings[i].label
    assert records[4]["kind"] == "dead" and records[4]["top_items"] == []
    assert records[3]["kind"] == "mixed" and "closest_concept" in records[3]


def test_popularity_neuron_is_found_by_correlation(labelled):
    namings, slugs, records = labelled
    assert (namings[8].label, slugs[8], records[8]["kind"]) == ("Popular", "popular", "popularity")
    assert namings[8].confidence >= 0.4


def test_slugs_are_unique_and_valid_and_records_fit_the_schema(labelled):
    _, slugs, records = labelled
    assert len(set(slugs)) == len(slugs)
    assert all(re.fullmatch(SLUG_PATTERN, s) for s in slugs)
    for rec in records:
        NeuronRecord.model_validate(rec)
        assert 0.0 <= rec["confidence"] <= 1.0
    assert records[0]["top_items"][0]["activation"] >= records[0]["top_items"][-1]["activation"]
    assert records[0]["concepts"][0] == {"facet": "genre", "concept": "Horror", "share": 1.0}
    assert records[0]["purity@10"] == 1.0 and records[0]["recall"] == 1.0


def test_slugs_that_look_like_neuron_ids_are_prefixed():
    meta = {"title": [str(i) for i in range(40)], "facets": {"tag": [["2000"]] * 20 + [["rock"]] * 20}}
    cm = CO.item_concepts(meta, np.ones(40), min_support=5)
    z = np.zeros((40, 2), np.float32)
    z[:20, 0] = 1 + np.arange(20)
    z[20:, 1] = 1 + np.arange(20)
    al = AL.align(z, cm.matrix_IC)
    _, slugs = LB.label_neurons(al, cm, CO.narrower_than(cm), np.ones(2, bool), LB.LabelConfig())
    assert slugs == ["tag-2000", "rock"]


def test_many_neurons_of_one_concept_get_distinct_slugs_in_rank_order():
    meta = {"title": [str(i) for i in range(60)], "facets": {"genre": [["Horror"]] * 30 + [["Comedy"]] * 30}}
    cm = CO.item_concepts(meta, np.ones(60), min_support=5)
    z = np.zeros((60, 4), np.float32)
    for j, n in enumerate([12, 30, 20, 25]):  # all pure Horror, covering more or fewer items
        z[:n, j] = np.linspace(2, 1, n)
    al = AL.align(z, cm.matrix_IC)
    _, slugs = LB.label_neurons(al, cm, CO.narrower_than(cm), np.ones(4, bool), LB.LabelConfig())
    assert slugs == ["horror-4", "horror", "horror-3", "horror-2"]  # the correlation decides among equals


def _label_alone(z: np.ndarray):
    """Labels of these neurons on the module's catalogue, with their correlations."""
    meta, pop = catalogue()
    cm = CO.item_concepts(meta, pop, min_support=5)
    al = AL.align(z, cm.matrix_IC)
    pop_corr = AL.pearson(z, np.log1p(pop).astype(float))
    namings, slugs = LB.label_neurons(al, cm, CO.narrower_than(cm), np.ones(z.shape[1], bool), LB.LabelConfig(),
                                      pop_corr)
    return namings, slugs, cm, al, pop_corr


def test_a_broad_neuron_leaning_to_a_subgenre_keeps_the_genre():
    """Fires on every Horror film, most on the 10 slashers: its top 10 are all slashers, but its
    activation follows Horror over the catalogue better than Horror/Slasher (point-biserial)."""
    z = np.zeros((N, 2), np.float32)
    z[:40, 0] = 2.0 + np.linspace(0, 0.1, 40)
    z[:10, 0] = 3.0                               # slashers strongest
    z[:10, 1] = 3.0 + np.linspace(0, 0.1, 10)     # slashers only: a sub-genre neuron
    namings, slugs, cm, al, _ = _label_alone(z)
    horror, slasher = cm.index("genre", "Horror"), cm.index("subgenre", "Horror/Slasher")
    assert al.point_biserial[0, horror] > al.point_biserial[0, slasher]
    assert al.score[0, slasher] >= al.score[0, horror] - 0.15  # purity alone would refine it
    assert (namings[0].label, namings[0].primary, namings[0].qualifier) == (
        "Horror (mostly Horror/Slasher)", horror, slasher)
    assert namings[0].lean and slugs[0] == "horror"
    assert (namings[1].label, slugs[1]) == ("Horror/Slasher", "horror-slasher")


def test_a_popularity_neuron_whose_top_items_share_a_genre_is_labelled_popular():
    """Follows log popularity over the whole catalogue; its 20 strongest items happen to be Comedy,
    enough for a Comedy label by purity alone (score >= 0.5)."""
    _, pop = catalogue()
    z = np.log1p(pop).astype(np.float32)[:, None].repeat(2, 1)
    comedy = np.arange(40, 80)
    top = comedy[np.argsort(-pop[comedy], kind="stable")[:20]]
    z[top, 0] += 0.6
    z[40:80, 1] += 3.0  # a Comedy neuron that also follows popularity: stays Comedy
    namings, slugs, cm, al, pop_corr = _label_alone(z)
    c = cm.index("genre", "Comedy")
    assert al.score[0, c] >= 0.5 and pop_corr[0] >= 2 * al.point_biserial[0, c]
    assert (namings[0].label, slugs[0]) == ("Popular", "popular")
    assert namings[0].confidence == pytest.approx(pop_corr[0], abs=1e-6)
    assert pop_corr[1] >= 0.4 and namings[1].label == "Comedy"


def _two_genre_catalogue(pure_animation: bool):
    """40 Children's films (the first 10 also Animation), 20 more Animation films, 20 Drama; neuron 0
    fires on the 10 Children's-and-Animation films, neuron 1 on Drama, neuron 2 (when asked) on
    every Animation film."""
    genre = [["Children's", "Animation"]] * 10 + [["Children's"]] * 30 + [["Animation"]] * 20 + [["Drama"]] * 20
    meta = {"title": [str(i) for i in range(80)], "facets": {"genre": genre}}
    cm = CO.item_concepts(meta, np.ones(80), min_support=5)
    z = np.zeros((80, 3), np.float32)
    z[:10, 0] = np.linspace(3, 2, 10)
    z[60:, 1] = np.linspace(3, 2, 20)
    if pure_animation:
        z[np.r_[40:60, :10], 2] = np.linspace(3, 2, 30)  # Animation-only films first
    al = AL.align(z, cm.matrix_IC)
    alive = (z > 0).any(0)
    namings, slugs = LB.label_neurons(al, cm, CO.narrower_than(cm), alive, LB.LabelConfig())
    records = LB.build_records(namings, slugs, al, cm, np.zeros(3, int), meta["title"], meta["title"],
                               LB.LabelConfig())
    return namings, slugs, records


def test_a_two_genre_neuron_answers_to_the_plain_slug_no_one_else_owns():
    namings, slugs, records = _two_genre_catalogue(pure_animation=False)
    assert namings[0].label in ("Children's & Animation", "Animation & Children's")
    assert sorted([slugs[0], *records[0]["aliases"]]) == ["animation", "childrens"]
    assert records[1]["aliases"] == [] and slugs[1] == "drama"
    for rec in records:
        NeuronRecord.model_validate(rec)


def test_no_alias_for_a_plain_slug_another_neuron_owns():
    namings, slugs, records = _two_genre_catalogue(pure_animation=True)
    assert (namings[2].label, slugs[2]) == ("Animation", "animation")
    assert slugs[0] == "childrens" and records[0]["aliases"] == []
