"""Parent links between Matryoshka levels: co-activation lift and decoder cosine."""

import numpy as np
import pytest
from steerrec.training.interpret.hierarchy import (
    TreeConfig,
    coactivation,
    decoder_cosine,
    link_parents,
    tree_json,
)


def test_coactivation_is_the_correlation_of_activations():
    rng = np.random.default_rng(0)
    z = np.maximum(rng.normal(size=(50, 3)), 0)
    z[:, 2] = 0  # never varies
    co = coactivation(z)
    ref = np.corrcoef(z[:, 0], z[:, 1])[0, 1]
    assert co[0, 1] == pytest.approx(max(ref, 0.0), abs=1e-6)
    assert co[0, 0] == pytest.approx(1.0)
    assert co[0, 2] == 0.0 and co[2, 2] == 0.0


def test_a_neuron_firing_weakly_everywhere_is_not_everyones_parent():
    # p0 fires weakly on every row and strongly on rows 0-9; p1 strongly on rows 20-39 only.
    # The child fires on rows 20-29: inside p1's rows (and inside p0's, as every neuron is).
    z = np.zeros((100, 3))
    z[:, 0] = 0.1
    z[:10, 0] = 5.0
    z[20:40, 1] = 5.0
    z[20:30, 2] = 3.0
    co = coactivation(z)
    assert co[2, 1] > 0.5 and co[2, 0] == 0.0


def test_decoder_cosine():
    w = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    cos = decoder_cosine(w)
    assert cos[0, 1] == pytest.approx(1 / np.sqrt(2))
    assert cos[2, 0] == 0.0  # a zero direction has no angle


def test_children_link_to_the_earlier_neuron_they_refine():
    rng = np.random.default_rng(0)
    n = 400
    z = np.zeros((n, 5))
    z[:, 0] = 0.05                     # level 0: "Horror", weakly on every row
    z[:100, 0] = 2 + rng.random(100)
    z[100:250, 1] = 2 + rng.random(150)  # level 0: "Comedy"
    z[:30, 2] = 1 + rng.random(30)     # level 1: a Horror refinement
    z[120:160, 3] = 1 + rng.random(40)  # level 1: a Comedy refinement
    z[rng.choice(np.arange(250, n), 20, replace=False), 4] = 1.0  # level 1: related to neither
    w = rng.normal(size=(5, 8))
    w[4] = -np.abs(w[0]) - np.abs(w[1])  # points away from both parents
    level = np.array([0, 0, 1, 1, 1])
    alive = np.ones(5, bool)
    tree = link_parents(z, w, level, alive, TreeConfig(min_score=0.15))
    assert tree.parent_L.tolist() == [-1, -1, 0, 1, -1]  # the unrelated one stays a root
    assert tree.coactivation_L[2] == pytest.approx(np.corrcoef(z[:, 2], z[:, 0])[0, 1], abs=1e-5)
    assert tree.score_L[2] == pytest.approx(0.8 * tree.coactivation_L[2] + 0.2 * tree.cosine_L[2], abs=1e-5)
    # A dead neuron neither has nor is a parent.
    alive[0] = False
    assert link_parents(z, w, level, alive, TreeConfig(min_score=0.15)).parent_L[2] == -1


def test_tree_json_lists_live_nodes_with_children():
    z = np.zeros((4, 3))
    z[:2, 0] = z[:1, 1] = 1.0
    tree = link_parents(z, np.eye(3)[[0, 0, 2]] + 0.0, np.array([0, 1, 1]), np.array([True, True, False]),
                        TreeConfig(min_score=0.1))
    records = [{"id": 0, "slug": "a", "label": "A", "prefix": 0, "status": "ok", "confidence": 1.0},
               {"id": 1, "slug": "b", "label": "B", "prefix": 1, "status": "ok", "confidence": 1.0},
               {"id": 2, "slug": "n2", "label": "dead #2", "prefix": 1, "status": "dead", "confidence": 0.0}]
    out = tree_json(tree, records, [1, 3], TreeConfig(min_score=0.1))
    assert out["roots"] == [0]
    assert [n["id"] for n in out["nodes"]] == [0, 1]
    assert out["nodes"][0]["children"] == [1] and out["nodes"][1]["parent"] == 0
