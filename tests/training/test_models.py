"""Base models: the ALS step is the exact weighted least-squares solution, NCF's fast scoring
equals its pairwise network, frozen scorers pass gradients to their inputs, and training learns."""

import numpy as np
import pytest
import torch
from steerrec.training import evaluate
from steerrec.training.data import load_dataset
from steerrec.training.data.schema import InteractionData
from steerrec.training.data.split import random_holdout
from steerrec.training.models import NCFConfig, load_model
from steerrec.training.models.mf import (
    MatrixFactorization,
    MFConfig,
    _ALSSolver,
    bm25_weights,
    fit_mf,
)
from steerrec.training.models.ncf import NCF, fit_ncf

from steerrec.bundle import Bundle


@pytest.fixture(scope="module")
def small_split():
    data = load_dataset("synthetic", n_users=400, n_items=150, seed=2)
    return random_holdout(data, 0.2, seed=0)


def test_als_user_step_equals_direct_weighted_least_squares():
    rng = np.random.default_rng(0)
    n_users, n_items, d = 7, 9, 3
    dense = rng.random((n_users, n_items)) < 0.4
    dense[:, 0] = True
    u, i = np.nonzero(dense)
    data = InteractionData("t", [str(x) for x in range(n_users)], [str(x) for x in range(n_items)], u, i,
                           np.ones(len(u), np.float32))
    cfg = MFConfig(dim=d, alpha=2.0, reg=0.7, reg_exponent=1.0, weighting="bm25", device="cpu")
    solver = _ALSSolver(data, cfg, torch.device("cpu"))
    model = MatrixFactorization(n_users, n_items, d, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.bias.copy_(torch.randn(n_items))
    Q, b = model.item.detach().numpy().astype(np.float64), model.bias.detach().numpy().astype(np.float64)
    solver.sweep(model)
    w = np.zeros((n_users, n_items))
    w[u, i] = bm25_weights(u, i, n_users, n_items, cfg.bm25_k1, cfg.bm25_b)
    counts = dense.sum(1) + n_items / (1 + cfg.alpha)
    lam = cfg.reg * (counts / counts.mean())
    for user in range(n_users):
        c = 1 + cfg.alpha * w[user]
        p = dense[user].astype(float)
        A = Q.T @ (c[:, None] * Q) + lam[user] * np.eye(d)
        x = np.linalg.solve(A, Q.T @ (c * (p - b)))
        np.testing.assert_allclose(model.user[user].detach().numpy(), x, rtol=1e-4, atol=1e-5)


def test_ncf_fast_scoring_equals_pairwise_network():
    model = NCF(5, 6, NCFConfig(dim=8, hidden=(8, 4)))
    users = torch.arange(5)
    full = model.score_users(model.user[users])
    uu, ii = torch.meshgrid(users, torch.arange(6), indexing="ij")
    pairs = model.score_pairs(model.user[uu.flatten()], model.item[ii.flatten()], ii.flatten()).reshape(5, 6)
    torch.testing.assert_close(full, pairs, rtol=1e-5, atol=1e-6)


def test_frozen_scorer_passes_gradients_to_embeddings_only():
    model = NCF(3, 4, NCFConfig(dim=8, hidden=(8,))).frozen()
    u = model.user.detach()[:2].clone().requires_grad_(True)
    v = model.item.detach()[:2].clone().requires_grad_(True)
    model.score_pairs(u, v, torch.arange(2)).sum().backward()
    assert u.grad is not None and u.grad.abs().sum() > 0 and v.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())


def _popularity_recall(split):
    pop = split.train.item_popularity().astype(np.float32)
    users = evaluate.evaluated_users(split)

    class Pop(MatrixFactorization):
        pass

    m = Pop(split.train.n_users, split.train.n_items, 1)
    with torch.no_grad():
        m.user.zero_()
        m.bias.copy_(torch.from_numpy(pop))
    return evaluate.evaluate(m, split)["recall@20"], users


def test_mf_solvers_and_ncf_beat_popularity(small_split):
    pop_recall, _ = _popularity_recall(small_split)
    for fit, cfg in [
        (fit_mf, MFConfig(dim=16, epochs=8, progress=False, reg=5.0)),
        (fit_mf, MFConfig(dim=16, solver="bpr", epochs=40, lr=0.02, batch_size=1024, progress=False)),
        (fit_ncf, NCFConfig(dim=16, hidden=(16, 8), epochs=15, lr=0.005, batch_size=1024, progress=False)),
    ]:
        model, _result = fit(small_split.train, cfg)
        recall = evaluate.evaluate(model, small_split)["recall@20"]
        assert recall > pop_recall * 1.1, (type(model).__name__, cfg, recall, pop_recall)


def test_training_is_reproducible_and_early_stopping_keeps_the_best(small_split):
    cfg = MFConfig(dim=8, epochs=6, progress=False, reg=5.0)
    a, _ = fit_mf(small_split.train, cfg)
    b, _ = fit_mf(small_split.train, cfg)
    torch.testing.assert_close(a.user, b.user)
    values = iter([0.1, 0.3, 0.2, 0.25, 0.15])
    _model, result = fit_mf(small_split.train, MFConfig(dim=8, epochs=10, patience=3, progress=False),
                            validate=lambda m: next(values))
    assert result.best_epoch == 2 and result.epochs_run == 5


def test_evaluation_never_recommends_training_items(small_split):
    model, _ = fit_mf(small_split.train, MFConfig(dim=8, epochs=3, progress=False))
    users = np.arange(small_split.train.n_users)
    indptr, indices = small_split.train.csr()
    tops = evaluate.top_k_items(model, users, (indptr, indices), 20)
    for u in users:
        assert not set(tops[u]) & set(indices[indptr[u]: indptr[u + 1]])


def test_bundle_roundtrip_rebuilds_the_same_scorer(tmp_path, small_split):
    from steerrec.training.export import export_base_model

    for model, _ in [fit_mf(small_split.train, MFConfig(dim=8, epochs=2, progress=False)),
                     fit_ncf(small_split.train, NCFConfig(dim=8, hidden=(8,), epochs=1, progress=False))]:
        out = export_base_model(tmp_path / model.kind, small_split, model, {"dim": 8, "hidden": [8]}, {})
        again, model = load_model(Bundle.open(out)), model.cpu()  # trained on CUDA when present
        with torch.no_grad():
            torch.testing.assert_close(again.score_users(again.user_embeddings()[:5]),
                                       model.score_users(model.user_embeddings()[:5]))
