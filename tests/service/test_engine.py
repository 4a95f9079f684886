"""SteeringEngine on the demo bundle: base ranking kept exactly, steering arithmetic against the ONNX
graphs, exact steered top-k against brute force on 1000 random cases (also on ML-1M), explain, refusals."""

import numpy as np
import onnxruntime as ort
import pytest
from threadpoolctl import threadpool_info
from steerrec.service.config import ServiceConfig
from steerrec.service.engine import (
    EngineError,
    SteeringEngine,
    UnknownItem,
    UnknownUser,
)
from steerrec.service.neurons import NeuronCatalog, UnknownNeuron
from steerrec.service.steering import SpecError

from steerrec.bundle import (
    NEURONS,
    SAE_DECODER,
    SAE_ENCODER,
    SAE_WEIGHTS,
    BundleWriter,
    NeuronRecord,
)

from ._steer_helpers import (
    copy_bundle,
    genre_slug,
    labelled_engine,
    plain_engine,
    reference_top_k,
)


@pytest.fixture(scope="module")
def engine():
    return labelled_engine()


@pytest.fixture(scope="module")
def graphs(engine):
    return read_graphs(engine)


def read_graphs(engine):
    """The bundle's own ONNX graphs and weights, read independently of the engine."""
    enc = ort.InferenceSession(str(engine.bundle.path(SAE_ENCODER)), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(engine.bundle.path(SAE_DECODER)), providers=["CPUExecutionProvider"])
    weights = engine.bundle.npz(SAE_WEIGHTS)
    users, items, bias = engine.bundle.factors()
    z_items = enc.run(["z"], {"x": items})[0]
    z_users = enc.run(["z"], {"x": users})[0]
    directions = weights["W_dec"].astype(np.float64) * float(weights["scale"])
    return {"enc": enc, "dec": dec, "users": users, "items": items, "bias": bias, "z_items": z_items,
            "z_users": z_users, "directions": directions}


def test_the_per_request_decoder_runs_on_one_thread(engine):
    # ONNX Runtime's default pool keeps a second thread spinning through each tiny decode.
    assert engine.decoder.get_session_options().intra_op_num_threads == 1


def test_numpy_blas_runs_on_one_thread_once_an_engine_is_loaded(engine):
    # OpenBLAS's worker threads made the one-pass ranking slower and dearer (runtime.set_cpu_threads).
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas), blas


def seen(engine, row):
    return engine.seen_indices[engine.seen_indptr[row]:engine.seen_indptr[row + 1]]


def test_no_steer_is_the_base_model_ranking_exactly(engine, graphs):
    rng = np.random.default_rng(0)
    for row in rng.choice(len(engine.user_ids), size=300, replace=False):
        for k, exclude in ((20, True), (100, False)):
            rec = engine.recommend(engine.user_ids[row], k, exclude_seen=exclude)
            scores = graphs["items"].astype(np.float64) @ graphs["users"][row].astype(np.float64) + graphs["bias"]
            expected = reference_top_k(scores, seen(engine, row) if exclude else [], k)
            assert rec.rows.tolist() == expected
            np.testing.assert_allclose(rec.scores, scores[expected], rtol=1e-12, atol=1e-12)


def test_steered_user_keeps_the_error_term(engine, graphs):
    """u' = u + dec(z') - dec(z) with the bundle's decoder graph, for every op."""
    rng = np.random.default_rng(1)
    live = np.flatnonzero(~engine.stats.dead)
    for _ in range(50):
        row = int(rng.integers(len(engine.user_ids)))
        specs = [f"{int(rng.choice(live))}:{op}{rng.uniform(0.1, 3):.3f}" for op in rng.choice(list("+-=*"), size=3)]
        steers, _, _ = engine.parse(specs)
        u_steered, touched = engine.steered_user(row, steers)
        z_steered = engine.steered_code(row, touched)
        z = graphs["z_users"][row:row + 1]
        x_hat = graphs["dec"].run(["x_hat"], {"z": np.vstack([z_steered[None].astype(np.float32), z])})[0]
        expected = graphs["users"][row].astype(np.float64) + (x_hat[0].astype(np.float64) - x_hat[1])
        np.testing.assert_allclose(u_steered, expected, atol=2e-5)


def test_activation_scale_is_the_mean_positive_activation(engine, graphs):
    both = np.vstack([graphs["z_users"], graphs["z_items"]]).astype(np.float64)
    positive = both > 0
    live = positive.any(axis=0)
    expected = (both * positive).sum(axis=0)[live] / positive.sum(axis=0)[live]
    np.testing.assert_allclose(engine.scale[live], expected, rtol=1e-5)
    assert np.all(engine.scale > 0) and (engine.stats.dead == ~live).all()


def random_request(engine, rng):
    live = np.flatnonzero(~engine.stats.dead)
    slugs = [engine.catalog.slug(int(j)) for j in live]

    def target():
        j = int(rng.integers(len(live)))
        return slugs[j] if slugs[j] and rng.random() < 0.5 else str(live[j])

    steers = [f"{target()}:{rng.choice(list('+-=*'))}{rng.uniform(0, 4):.3f}" for _ in range(rng.integers(0, 5))]
    filters = [target() if rng.random() < 0.3 else f"{target()}:>{rng.uniform(0, 2):.3f}"
               for _ in range(rng.integers(0, 3))]
    promotes = []
    for _ in range(rng.integers(0, 3)):
        value = f"{rng.choice(['+', '-'])}{rng.uniform(0, 3):.3f}"
        item = engine.item_ids[int(rng.integers(len(engine.item_ids)))]
        promotes.append(f"{item}@{target()}:{value}" if rng.random() < 0.5 else f"{target()}:{value}")
    return steers, filters, promotes


def as_list(entry) -> list[str]:
    return [str(v) for v in entry] if isinstance(entry, list) else [str(entry)]


def random_excludes(engine, rng) -> list[str]:
    """Mostly none; else one or two metadata values, in the metadata's spelling or upper-cased."""
    facets = engine.bundle.item_metadata()["facets"]
    excludes = []
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        facet = str(rng.choice(sorted(facets)))
        value = str(rng.choice(sorted({v for entry in facets[facet] for v in as_list(entry)})))
        excludes.append(f"{facet}:{value.upper() if rng.random() < 0.3 else value}")
    return excludes


def reference(engine, graphs, row, steers, filters, promotes, k, exclude_seen, excludes=()):
    """Brute force over the whole catalogue on explicitly steered item vectors."""
    parsed_steers, parsed_filters, parsed_promotes = engine.parse(steers, filters, promotes)
    u_steered, _ = engine.steered_user(row, parsed_steers)
    vectors = graphs["items"].astype(np.float64).copy()
    for p in parsed_promotes:
        rows = [engine.item_row[p.item]] if p.item is not None else np.flatnonzero(graphs["z_items"][:, p.neuron] > 0)
        vectors[rows] += p.value * engine.scale[p.neuron] * graphs["directions"][p.neuron]
    excluded = [seen(engine, row)] if exclude_seen else []
    for f in parsed_filters:
        excluded.append(np.flatnonzero(graphs["z_items"][:, f.neuron] > f.threshold * engine.scale[f.neuron]))
    facets = engine.bundle.item_metadata()["facets"]
    for spec in excludes:
        facet, value = spec.split(":", 1)
        excluded.append(np.flatnonzero([value.lower() in [v.lower() for v in as_list(e)] for e in facets[facet]]))
    excluded = np.concatenate(excluded) if excluded else np.zeros(0, np.int64)
    return reference_top_k(vectors @ u_steered + graphs["bias"], excluded, k)


@pytest.mark.parametrize("scan_max_items", [ServiceConfig().scan_max_items, 0], ids=["one pass", "index search"])
@pytest.mark.parametrize("bundle", ["demo", "ml1m"])
def test_exact_steered_top_k_on_1000_random_cases(bundle, scan_max_items, request):
    root = labelled_engine().bundle.root if bundle == "demo" else request.getfixturevalue("ml1m_bundle")
    engine = SteeringEngine(root, ServiceConfig(scan_max_items=scan_max_items))
    assert engine.index.scans(0) == (scan_max_items > 0)
    graphs = read_graphs(engine)
    rng = np.random.default_rng(2)
    kinds = set()
    for case in range(1000):
        row = int(rng.integers(len(engine.user_ids)))
        steers, filters, promotes = random_request(engine, rng)
        excludes = random_excludes(engine, rng)
        k, exclude_seen = int(rng.integers(1, 101)), bool(rng.random() < 0.7)
        rec = engine.recommend(engine.user_ids[row], k, steers, filters, promotes, exclude_seen, excludes)
        expected = reference(engine, graphs, row, steers, filters, promotes, k, exclude_seen, excludes)
        assert rec.rows.tolist() == expected, (case, steers, filters, promotes, k, exclude_seen, excludes)
        kinds |= {name for name, used in (("steer", steers), ("filter", filters), ("promote", promotes),
                                          ("exclude", excludes)) if used}
    assert kinds == {"steer", "filter", "promote", "exclude"}


def test_boosting_a_genre_neuron_raises_its_share(engine):
    horror = genre_slug(engine, "Horror")
    genres = engine.bundle.item_metadata()["facets"]["genre"]
    share = lambda rec: np.mean(["Horror" in genres[r] for r in rec.rows])
    users = engine.user_ids[:200]
    before = np.mean([share(engine.recommend(u, 20)) for u in users])
    after = np.mean([share(engine.recommend(u, 20, steer=[f"{horror}:+5"])) for u in users])
    filtered = np.mean([share(engine.recommend(u, 20, filter=[horror])) for u in users])
    assert after > before + 0.2
    assert filtered < before


def test_filter_and_promote_report_what_they_touched(engine, graphs):
    rec = engine.recommend(engine.user_ids[0], 10, filter=["0:>0.5"], promote=[f"{engine.item_ids[5]}@0:+2"])
    threshold = 0.5 * engine.scale[0]
    assert rec.filters[0]["items_removed"] == int((graphs["z_items"][:, 0] > threshold).sum())
    assert rec.promotes[0]["items_affected"] == 1 and rec.promotes[0]["item"] == engine.item_ids[5]
    assert all(graphs["z_items"][r, 0] <= threshold for r in rec.rows)


def test_a_filter_reports_how_much_of_its_neurons_labelled_concept_it_removes(engine, graphs):
    genres = engine.bundle.item_metadata()["facets"]["genre"]
    for genre in ("Horror", "Comedy"):
        slug = genre_slug(engine, genre)
        j = engine.catalog.resolve(slug)
        member = np.array([genre in g for g in genres])
        dropped = graphs["z_items"][:, j] > 0
        echo = engine.recommend(engine.user_ids[0], 10, filter=[slug]).filters[0]
        assert (echo["items_removed"], echo["concept_items"], echo["concept_items_removed"]) == (
            dropped.sum(), member.sum(), (dropped & member).sum())
    unlabelled = next(j for j in range(engine.n_latents) if engine.catalog.label(j) == f"neuron {j}")
    echo = engine.recommend(engine.user_ids[0], 10, filter=[str(unlabelled)]).filters[0]
    assert echo["concept_items"] is None and echo["concept_items_removed"] is None


def test_exclude_rules_out_every_item_with_the_value_and_says_how_many(engine):
    genres = engine.bundle.item_metadata()["facets"]["genre"]
    horror = {i for i, g in enumerate(genres) if "Horror" in g}
    slug = genre_slug(engine, "Horror")
    for user in engine.user_ids[:50]:
        rec = engine.recommend(user, 50, steer=[f"{slug}:+8"], exclude=["genre:horror"])
        assert not horror & set(rec.rows.tolist())
        assert rec.excludes == [{"facet": "genre", "value": "Horror", "items_removed": len(horror)}]


@pytest.mark.parametrize(("spec", "problem"), [
    ("genre", "not of the form FACET:VALUE"),
    ("genres:Horror", "unknown facet 'genres'; facets: "),
    ("genre:Horor", "no item has genre='Horor'; did you mean Horror?"),
])
def test_a_bad_exclude_is_a_spec_error_naming_it(engine, spec, problem):
    with pytest.raises(SpecError) as info:
        engine.recommend(engine.user_ids[0], 5, exclude=[spec])
    assert (info.value.parameter, info.value.value) == ("exclude", spec) and info.value.problem.startswith(problem)
    with pytest.raises(SpecError, match="9 given; at most 8 per request"):
        engine.recommend(engine.user_ids[0], 5, exclude=["genre:Horror"] * 9)


def test_a_qualified_label_counts_the_items_with_both_concepts(engine):
    records = [r.model_copy() for r in engine.bundle.neurons()]
    facets = {"genre": [["Horror"], ["Horror", "Comedy"], ["Comedy"], "Horror"],
              "decade": [["1980s"], ["1980s"], ["1980s"], ["1990s"]]}
    both = NeuronRecord(**{**records[0].model_dump(), "concept": {"facet": "genre", "name": "horror"},
                           "qualifier": {"facet": "decade", "name": "1980s"}})
    other_facet = NeuronRecord(**{**records[1].model_dump(), "concept": {"facet": "popularity", "name": "Popular"}})
    catalog = NeuronCatalog(engine.n_latents, [both, other_facet, *records[2:]], engine.stats,
                            engine.catalog.items_by_neuron, engine.item_ids[:4], engine.titles[:4], facets)
    assert catalog.labelled_items(0).tolist() == [True, True, False, False]  # Horror of the 1980s, any case
    assert catalog.labelled_items(1) is None  # no popularity facet in the metadata


def test_an_alias_resolves_to_its_neuron_and_is_found_by_search(engine):
    records = [r.model_copy() for r in engine.bundle.neurons()]
    records[3] = NeuronRecord(**{**records[3].model_dump(), "aliases": ["made-up-genre"]})
    catalog = NeuronCatalog(engine.n_latents, records, engine.stats, engine.catalog.items_by_neuron,
                            engine.item_ids, engine.titles, {})
    assert catalog.resolve("made-up-genre") == catalog.resolve("Made-Up-Genre") == 3
    assert catalog.resolve(records[3].slug) == 3
    total, hits = catalog.search("made-up-genre", 5, 0)
    assert (total, hits[0]["id"], hits[0]["aliases"]) == (1, 3, ["made-up-genre"])
    assert catalog.summary(0)["aliases"] == []
    with pytest.raises(UnknownNeuron, match="did you mean made-up-genre"):
        catalog.resolve("made-up-genr")


def test_promoted_item_score_moves_by_the_decoder_direction(graphs):
    engine = SteeringEngine(labelled_engine().bundle.root, ServiceConfig(max_k=2000))
    user, row = engine.user_ids[3], 3
    base = engine.recommend(user, 1000, exclude_seen=False)
    target = int(base.rows[500])
    promoted = engine.recommend(user, 1000, promote=[f"{engine.item_ids[target]}@4:+2"], exclude_seen=False)
    before = base.scores[base.rows.tolist().index(target)]
    after = promoted.scores[promoted.rows.tolist().index(target)]
    u = graphs["users"][row].astype(np.float64)
    assert after - before == pytest.approx(2 * engine.scale[4] * graphs["directions"][4] @ u, rel=1e-9)


def test_explain_parts_sum_to_the_score(engine):
    for row in range(0, 60, 7):
        user = engine.user_ids[row]
        for steer in ([], ["1:+2", "2:*0.5"]):
            rec = engine.recommend(user, 3, steer=steer)
            item = engine.item_ids[int(rec.rows[0])]
            out = engine.explain(user, item, steer)
            assert out["score"] == pytest.approx(rec.scores[0], abs=1e-9)
            assert out["sum_of_parts"] == pytest.approx(out["score"], abs=1e-6)
            contributions = [n["contribution"] for n in out["neurons"]]
            assert contributions == sorted(contributions, key=abs, reverse=True)
            assert {"decoder_constant", "error_term", "item_bias"} == set(out["parts"])


def test_unknown_user_item_and_neuron(engine):
    with pytest.raises(UnknownUser, match="not in this bundle"):
        engine.recommend("no-such-user")
    with pytest.raises(UnknownItem):
        engine.explain(engine.user_ids[0], "no-such-item")
    with pytest.raises(SpecError, match="unknown item id"):
        engine.recommend(engine.user_ids[0], promote=["no-such-item@0:+1"])
    with pytest.raises(SpecError, match="at most"):
        engine.recommend(engine.user_ids[0], steer=["0:+1"] * 9)
    with pytest.raises(SpecError) as err:
        engine.recommend(engine.user_ids[0], k=0)
    assert err.value.parameter == "k"


def test_without_neurons_json_targets_are_indices_and_labels_generic():
    engine = plain_engine()
    assert not engine.bundle.has(NEURONS)
    assert engine.catalog.label(12) == "neuron 12" and engine.catalog.slug(12) is None
    assert engine.recommend(engine.user_ids[0], 5, steer=["12:+1"]).steers[0]["label"] == "neuron 12"
    with pytest.raises(SpecError, match="no neurons.json"):
        engine.recommend(engine.user_ids[0], 5, steer=["horror:+1"])


def test_popularity_fallback_behind_its_flag():
    engine = SteeringEngine(plain_engine().bundle.root, ServiceConfig(popularity_fallback=True))
    rec = engine.recommend("brand-new-user", 5)
    assert rec.fallback == "popularity"
    counts = np.bincount(engine.seen_indices, minlength=len(engine.item_ids))
    assert rec.rows.tolist() == np.argsort(-counts, kind="stable")[:5].tolist()
    with pytest.raises(UnknownUser, match="fallback"):
        engine.recommend("brand-new-user", 5, steer=["0:+1"])


def test_refuses_models_without_a_dot_product():
    path = copy_bundle("ncf")
    writer = BundleWriter.open(path)
    writer.manifest.model.dot_product = False
    writer.manifest.model.kind = "ncf"
    writer.commit()
    with pytest.raises(EngineError, match="does not score by a dot product"):
        SteeringEngine(path)


def test_refuses_a_bundle_without_an_sae():
    path = copy_bundle("no-sae")
    writer = BundleWriter.open(path)
    for name in (SAE_ENCODER, SAE_DECODER, SAE_WEIGHTS, "sae_config.json"):
        writer.remove(name)
    writer.commit()
    with pytest.raises(EngineError, match="steerrec sae"):
        SteeringEngine(path)


def test_refuses_a_corrupt_bundle():
    path = copy_bundle("corrupt")
    with open(path / "item_factors.npy", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(EngineError, match="sha256"):
        SteeringEngine(path)


def test_parsed_specs_are_remembered_but_errors_are_not(engine, monkeypatch):
    from steerrec.service import engine as engine_module

    specs = ["3:+2", "5:=1.5", "7:*0.5"]
    first = engine.parse(specs, ["3"], ["5:+1"])
    assert engine.parse(specs, ["3"], ["5:+1"]) == first
    assert all(a is b for a, b in zip(engine.parse(specs)[0], first[0]))  # the same objects, not re-parsed
    for _ in range(2):  # a bad spec is refused every time
        with pytest.raises(SpecError, match="missing operator"):
            engine.parse(["3:2"])
    monkeypatch.setattr(engine_module, "PARSED_SPECS", 4)
    for v in range(10):
        assert engine.parse([f"3:+{v}"])[0][0].value == v
    assert len(engine._specs) <= 4
