"""Concept anchors: the facet's values become anchored latents, the loss is the exact weighted hinge
plus the decoder tie, bad requests are refused by name, and on the synthetic catalogue an anchored
SAE's latent c, read through the exported encoder, is a filter for genre c, labelled and served as
such."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from steerrec.bundle import SAE_ENCODER, SAE_WEIGHTS, Bundle
from steerrec.commands.demo import DEMO_SAE
from steerrec.training.data.schema import ItemCatalog
from steerrec.training.sae import build_sae, make_sae_config
from steerrec.training.sae.anchors import (MARGIN, UNEXPOSED_WEIGHT, anchor_concepts, anchor_loss,
                                           check_anchorable, exposure_weights)
from steerrec.training.sae.trainer import SAETrainConfig, normalization_stats


def catalog(genres):
    return ItemCatalog(titles=[f"t{i}" for i in range(len(genres))], facets={"genre": genres})


def test_anchor_concepts_keep_values_with_enough_items_sorted():
    genres = [("Drama",)] * 5 + [("Comedy", "Drama")] * 5 + [("Western",)] * 4
    names, matrix = anchor_concepts(catalog(genres), "genre")
    assert names == ["Comedy", "Drama"]  # Western has 4 items, under the minimum of 5
    assert matrix.shape == (14, 2)
    assert matrix[:, 0].tolist() == [False] * 5 + [True] * 5 + [False] * 4
    assert matrix[:, 1].tolist() == [True] * 10 + [False] * 4


def test_anchor_concepts_name_what_is_missing():
    with pytest.raises(ValueError, match=r"anchor facet 'decade' is not in the item metadata \(facets: genre\)"):
        anchor_concepts(catalog([("Drama",)] * 5), "decade")
    with pytest.raises(ValueError, match="the dataset has no item metadata"):
        anchor_concepts(None, "genre")
    with pytest.raises(ValueError, match="no value of facet 'genre' has 5 items or more"):
        anchor_concepts(catalog([("Drama",)] * 4), "genre")


def test_exposure_weights_count_candidate_lists():
    candidates = np.array([[0, 1], [0, 2], [0, 1]])
    weights = exposure_weights(candidates, 5)
    mean_exposed = (3 + 2 + 1) / 3
    expected = UNEXPOSED_WEIGHT + np.array([3, 2, 1, 0, 0]) / mean_exposed
    assert np.allclose(weights, expected)


def small_sae(arch="matryoshka", **options):
    rows = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    mean, scale = normalization_stats(rows)
    cfg = make_sae_config(arch, n_latents=16, **options)
    return build_sae(arch, cfg, 6, mean, scale), rows


def test_anchor_loss_is_the_weighted_hinge_plus_the_decoder_tie():
    sae, rows = small_sae(prefixes=(8, 16))
    with torch.no_grad():
        sae.threshold.fill_(0.5)
    x = sae.normalize(rows[:10])
    anchors = torch.zeros(10, 2, dtype=torch.bool)
    anchors[:4, 0] = True
    anchors[3:7, 1] = True
    weights = torch.linspace(0.5, 2.0, 10)
    got = anchor_loss(sae, x, anchors, weights)

    pre = ((x - sae.b_dec) @ sae.W_enc + sae.b_enc)[:, :2].detach().numpy()
    a, w, theta = anchors.numpy(), weights.numpy(), 0.5
    expected = 0.0
    for c in range(2):
        short = np.maximum(theta * (1 + MARGIN) - pre[:, c], 0) / theta
        over = np.maximum(pre[:, c] - theta * (1 - MARGIN), 0) / theta
        pos = (short ** 2 * w)[a[:, c]].sum() / w[a[:, c]].sum()
        neg = (over ** 2 * w)[~a[:, c]].sum() / w[~a[:, c]].sum()
        dec, enc = sae.W_dec[c].detach().numpy(), sae.W_enc[:, c].detach().numpy()
        tie = 1 - dec @ enc / (np.linalg.norm(dec) * np.linalg.norm(enc))
        expected += (pos + neg + tie) / 2
    assert float(got.detach()) == pytest.approx(expected, rel=1e-5)


def test_anchor_loss_vanishes_once_every_margin_holds_and_rows_are_tied():
    sae, _ = small_sae(prefixes=(8, 16))
    axis = torch.eye(6)[0]
    x = torch.cat([axis * 2 + 0.1 * torch.eye(6)[1:4], -axis * 2 + 0.1 * torch.eye(6)[1:4]])
    anchors = torch.tensor([[True], [True], [True], [False], [False], [False]])
    with torch.no_grad():
        sae.threshold.fill_(1.0)
        sae.b_dec.zero_()
        sae.W_enc[:, 0] = axis
        sae.b_enc[0] = 1.0  # positives at 3, negatives at -1: far past threshold 1 +- MARGIN
        sae.W_dec[0] = axis
    assert float(anchor_loss(sae, x, anchors, torch.ones(6)).detach()) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        sae.b_enc[0] = 0.0  # positives at 2 still pass 1.25; negatives at -2 stay under 0.75
        sae.W_dec[0] = torch.eye(6)[1]
    assert float(anchor_loss(sae, x, anchors, torch.ones(6)).detach()) == pytest.approx(1.0)  # untied: cosine 0


def test_anchors_need_a_threshold_and_room_in_the_first_prefix():
    relu, _ = small_sae("relu")
    with pytest.raises(ValueError, match="anchors need a thresholded SAE \\(matryoshka or batchtopk\\), not relu"):
        check_anchorable(relu, 2)
    matryoshka, _ = small_sae(prefixes=(4, 16))
    with pytest.raises(ValueError, match=r"5 anchored concepts do not fit in the first prefix \(4 latents\)"):
        check_anchorable(matryoshka, 5)
    check_anchorable(matryoshka, 4)


def test_sae_command_passes_anchor_options_to_training():
    import argparse

    from steerrec.commands.sae import register, split_options

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["sae", "--bundle", "b", "--set", "anchor_facet=genre", "--set", "anchor_weight=4"])
    sae_options, train = split_options(args)
    assert "anchor_facet" not in sae_options
    cfg = SAETrainConfig(**train)
    assert (cfg.anchor_facet, cfg.anchor_weight) == ("genre", 4)


@pytest.mark.slow
def test_anchored_latents_filter_their_genre_on_the_synthetic_catalogue(tmp_path):
    from steerrec.training.pipeline import DataSpec, run_train
    from steerrec.training.sae.pipeline import run_sae

    path, _ = run_train(DataSpec(dataset="synthetic"), tmp_path / "bundle", "mf", progress=False)
    run = run_sae(path, "matryoshka", dict(DEMO_SAE),
                  SAETrainConfig(steps=1500, anchor_facet="genre", anchor_weight=4, progress=False))
    bundle = Bundle.open(path)
    names = run.metrics["anchors"]["concepts"]
    assert run.metrics["anchors"]["facet"] == "genre" and len(names) == 8
    _, items, _ = bundle.factors()
    encoder = ort.InferenceSession(str(bundle.path(SAE_ENCODER)), providers=["CPUExecutionProvider"])
    fires_IC = encoder.run(None, {"x": items})[0][:, : len(names)] > 0
    genres = bundle.item_metadata()["facets"]["genre"]
    for c, name in enumerate(names):
        has = np.array([name in g for g in genres])
        recall, fpr = fires_IC[has, c].mean(), fires_IC[~has, c].mean()
        assert recall >= 0.94 and fpr <= 0.06, (name, recall, fpr)  # plain SAE: Horror 0.77, Documentary FPR 0.08
    weights = np.load(bundle.path(SAE_WEIGHTS))
    dec, enc = weights["W_dec"][: len(names)], weights["W_enc"][:, : len(names)].T
    cosine = (dec * enc).sum(1) / (np.linalg.norm(dec, axis=1) * np.linalg.norm(enc, axis=1))
    assert cosine.min() >= 0.9, cosine

    # Interpretation names each anchored latent for its genre, gives it the plain slug, and marks the
    # anchor; the service passes the mark on in /neurons/{id}.
    from steerrec.service.engine import SteeringEngine
    from steerrec.slugs import slugify
    from steerrec.training.interpret.pipeline import run_interpret

    records = run_interpret(path).records
    for c, name in enumerate(names):
        assert records[c]["anchor"] == {"facet": "genre", "name": name}
        assert records[c]["concept"]["name"] == name
    assert all("anchor" not in r for r in records[len(names):])
    engine = SteeringEngine(path)
    assert [engine.catalog.slug_to_id[slugify(name)] for name in names] == list(range(len(names)))
    assert engine.catalog.detail(0)["extra"]["anchor"] == {"facet": "genre", "name": names[0]}
