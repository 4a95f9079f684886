"""On the embedded synthetic catalogue, the demo's Matryoshka SAE recovers the planted concepts:
every genre has a neuron of the first prefix whose top-20 items are >= 90% that genre, and the
sub-genres appear in later prefixes. Activations come from the exported ONNX encoder, as served."""

import numpy as np
import onnxruntime as ort
import pytest

from steerrec.bundle import SAE_ENCODER, Bundle
from steerrec.commands.demo import DEMO_SAE, DEMO_SAE_STEPS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_sae(tmp_path_factory):
    from steerrec.training.pipeline import DataSpec, run_train
    from steerrec.training.sae.pipeline import run_sae
    from steerrec.training.sae.trainer import SAETrainConfig

    path, _ = run_train(DataSpec(dataset="synthetic"), tmp_path_factory.mktemp("demo") / "bundle", "mf",
                        progress=False)
    run = run_sae(path, "matryoshka", dict(DEMO_SAE), SAETrainConfig(steps=DEMO_SAE_STEPS, progress=False))
    bundle = Bundle.open(path)
    _, items, _ = bundle.factors()
    encoder = ort.InferenceSession(str(bundle.path(SAE_ENCODER)), providers=["CPUExecutionProvider"])
    z_IF = encoder.run(None, {"x": items})[0]
    return bundle, z_IF, run.metrics


def best_purity(z_IF: np.ndarray, has_I: np.ndarray, neurons: range, top: int = 20) -> float:
    best = 0.0
    for j in neurons:
        if (z_IF[:, j] > 0).sum() >= top:
            best = max(best, float(has_I[np.argsort(-z_IF[:, j], kind="stable")[:top]].mean()))
    return best


def concept_masks(bundle: Bundle, facet: str) -> dict[str, np.ndarray]:
    values = bundle.item_metadata()["facets"][facet]
    names = sorted({v for vs in values for v in vs})
    return {name: np.array([name in vs for vs in values]) for name in names}


def test_every_genre_has_a_pure_neuron_in_the_first_prefix(demo_sae):
    bundle, z_IF, _ = demo_sae
    first = bundle.manifest.sae["prefixes"][0]
    genres = concept_masks(bundle, "genre")
    assert len(genres) == 8
    purity = {g: best_purity(z_IF, has, range(first)) for g, has in genres.items()}
    assert min(purity.values()) >= 0.9, purity


def test_sub_genres_appear_in_later_prefixes(demo_sae):
    bundle, z_IF, _ = demo_sae
    prefixes = bundle.manifest.sae["prefixes"]
    subs = concept_masks(bundle, "subgenre")
    later = {s: best_purity(z_IF, has, range(prefixes[0], prefixes[-1])) for s, has in subs.items()}
    found_later = [s for s, p in later.items() if p >= 0.9]
    # At least half the sub-genres get their own neuron beyond the first prefix, where the genres
    # sit (15 to 17 of 24 in runs with different base-model seeds).
    assert len(found_later) >= len(subs) // 2, later


def test_demo_sae_is_faithful_and_mostly_alive(demo_sae):
    _, _, m = demo_sae
    # Measured 0.880 to 0.883 / 0.929 to 0.930 and RBO 0.868 to 0.872 (SAE seeds 0 to 4). Users mix
    # genre, decade and blockbuster tastes (issue 9 planted the last two as tastes), more than k = 6
    # latents cover; k = 8 reconstructs better (0.904 / 0.941) but isolates fewer sub-genres.
    assert m["ev_users"] >= 0.87 and m["ev_items"] >= 0.92
    assert m["rbo@30"] >= 0.85 and abs(m["recall@20_change"]) <= 0.02
    assert m["dead_fraction"] <= 0.15
    assert m["l0"] == pytest.approx(DEMO_SAE["k"], abs=0.05)
    ev_by_prefix = [m["ev_items_by_prefix"][str(p)] for p in DEMO_SAE["prefixes"]]
    assert ev_by_prefix == sorted(ev_by_prefix)  # each prefix reconstructs alone, better as it grows
