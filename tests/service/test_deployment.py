"""The Ray Serve deployment in local testing mode (in-process, no Ray cluster): the same service
behind handle calls, and the application builder's argument checking."""

import pytest
from ray import serve
from steerrec.service.deployment import SteerRecDeployment, build_app
from steerrec.service.engine import UnknownUser
from steerrec.service.steering import SpecError

from ._steer_helpers import genre_slug, labelled_bundle, labelled_engine


@pytest.fixture(scope="module")
def handle():
    # Local testing mode runs the replica in this process; serve.shutdown() is not called because
    # it would start a Ray cluster just to find nothing to stop.
    return serve.run(build_app({"bundle": str(labelled_bundle()), "settings": {"max_k": 50}, "metrics": "none"}),
                     name="steerrec-test", route_prefix=None, _local_testing_mode=True)


def test_recommend_through_the_handle(handle):
    engine = labelled_engine()
    horror = genre_slug(engine, "Horror")
    body = handle.recommend.remote(engine.user_ids[4], 7, steer=[f"{horror}:+2"]).result()
    rec = engine.recommend(engine.user_ids[4], 7, steer=[f"{horror}:+2"])
    assert [i["id"] for i in body["items"]] == [engine.item_ids[r] for r in rec.rows]
    assert body["steers"][0]["slug"] == horror and len(body["request_id"]) == 32


def test_settings_reach_the_replica(handle):
    with pytest.raises(SpecError, match="between 1 and 50"):
        handle.recommend.remote(labelled_engine().user_ids[0], 51).result()


def test_errors_surface_through_the_handle(handle):
    with pytest.raises(UnknownUser):
        handle.recommend.remote("nobody").result()


def test_health_and_explain(handle):
    health = handle.healthz.remote().result()
    assert health["status"] == "ok" and health["engine"]["neuron_labels"] is True
    engine = labelled_engine()
    out = handle.explain.remote(engine.user_ids[0], engine.item_ids[0]).result()
    assert out["sum_of_parts"] == pytest.approx(out["score"], abs=1e-6)


def test_builder_options_and_refusals():
    app = build_app({"bundle": "b", "num_replicas": 2, "max_ongoing_requests": 100, "num_cpus": 1})
    deployment = app._bound_deployment
    assert deployment.num_replicas == 2 and deployment.max_ongoing_requests == 100
    assert deployment.ray_actor_options["num_cpus"] == 1.0
    assert SteerRecDeployment.max_ongoing_requests > 5  # Serve's default collapses at concurrency 32
    # Serve's per-request logging costs throughput at concurrency 32: warnings only unless asked for
    quiet = deployment._deployment_config.logging_config
    assert quiet["enable_access_log"] is False and quiet["log_level"] == "WARNING"
    logged = build_app({"bundle": "b", "access_log": True})._bound_deployment._deployment_config.logging_config
    assert logged["enable_access_log"] is True and logged["log_level"] == "INFO"
    with pytest.raises(ValueError, match="unknown application args"):
        build_app({"bundle": "b", "replicas": 2})
    with pytest.raises(ValueError, match="'bundle'"):
        build_app({})
