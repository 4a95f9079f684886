"""Matrix factorization with item bias: score(u, i) = <p_u, q_i> + b_i.

Two solvers share the model: weighted ALS (default; closed-form sweeps in torch) and BPR (Adam on
sampled triples). ``benchmarks/base_models.py`` compares them on the standard ML-1M split; ALS
with BM25 confidence weights and frequency-scaled regularisation wins there.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.schema import InteractionData
from ..device import pick_device, seed_everything
from .base import EarlyStopping, FitResult, ModelConfig, Recommender, Validator


@dataclass
class MFConfig(ModelConfig):
    solver: Literal["als", "bpr"] = "als"
    epochs: int = 30
    """Maximum ALS sweeps or BPR epochs (early stopping may end sooner)."""
    # --- ALS ---
    alpha: float = 3.0
    """Confidence of an observed interaction: c = 1 + alpha * weight (unobserved: c = 1)."""
    reg: float = 45.0
    """L2 strength (per row, before frequency scaling)."""
    reg_exponent: float = 1.0
    """Frequency scaling of the L2 term, (n_row + n_cols / (1 + alpha)) ** reg_exponent, normalised
    to mean 1 (Rendle et al., 'Revisiting the Performance of iALS', 2022)."""
    weighting: Literal["bm25", "none"] = "bm25"
    """Confidence weights: BM25 of the user-item matrix (rare items and short histories count
    more) or none (every observed pair weighs 1)."""
    bm25_k1: float = 100.0
    bm25_b: float = 0.5
    # --- BPR ---
    lr: float = 0.005
    batch_size: int = 8192
    bpr_reg: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.alpha < 0 or self.reg < 0:
            raise ValueError("alpha and reg must be >= 0")


class MatrixFactorization(Recommender):
    kind: ClassVar[str] = "mf"
    dot_product: ClassVar[bool] = True

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.user = nn.Parameter(torch.randn(n_users, dim, generator=generator) * 0.01)
        self.item = nn.Parameter(torch.randn(n_items, dim, generator=generator) * 0.01)
        self.bias = nn.Parameter(torch.zeros(n_items))

    def user_embeddings(self) -> Tensor:
        return self.user

    def item_embeddings(self) -> Tensor:
        return self.item

    def item_bias(self) -> Tensor:
        return self.bias

    def score_pairs(self, user_BD: Tensor, item_BD: Tensor, item_idx_B: Tensor) -> Tensor:
        return (user_BD * item_BD).sum(-1) + self.bias[item_idx_B]


def _sparse(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape, device) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        coo = torch.sparse_coo_tensor(
            torch.from_numpy(np.stack([rows, cols]).astype(np.int64)),
            torch.from_numpy(values.astype(np.float32)), shape,
        ).coalesce()
        return coo.to_sparse_csr().to(device)


def bm25_weights(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int, k1: float, b: float) -> np.ndarray:
    """BM25 weight of each observed (row, col) pair of a binary matrix, rescaled to mean 1."""
    df = np.bincount(cols, minlength=n_cols).astype(np.float64)
    idf = np.log(n_rows / (1.0 + df)).clip(min=1e-3)
    length = np.bincount(rows, minlength=n_rows).astype(np.float64)
    norm = k1 * (1 - b + b * length / length.mean())
    w = idf[cols] * (k1 + 1) / (norm[rows] + 1)
    return w / w.mean()


class _ALSSolver:
    """Closed-form weighted least squares sweeps on the device holding the factors.

    For each row (user or item) with the other side's factors Y fixed:
    (YᵀY + alpha Σ_obs w y yᵀ + λ I) x = Σ_obs (1 + alpha w) y - Σ_all b y - alpha Σ_obs w b y,
    where b is the item bias (zero when solving items, whose bias is their last coordinate).
    """

    def __init__(self, train: InteractionData, cfg: MFConfig, device: torch.device):
        indptr, cols = train.csr()
        rows = np.repeat(np.arange(train.n_users), np.diff(indptr))
        if cfg.weighting == "bm25":
            w = bm25_weights(rows, cols, train.n_users, train.n_items, cfg.bm25_k1, cfg.bm25_b)
        else:
            w = np.ones(len(rows))
        ones = np.ones(len(rows))
        shape_ui, shape_iu = (train.n_users, train.n_items), (train.n_items, train.n_users)
        self.R = _sparse(rows, cols, ones, shape_ui, device)
        self.W = _sparse(rows, cols, w, shape_ui, device)
        self.RT = _sparse(cols, rows, ones, shape_iu, device)
        self.WT = _sparse(cols, rows, w, shape_iu, device)
        self.cfg = cfg
        self.lam_user = self._reg(np.bincount(rows, minlength=train.n_users), train.n_items, device)
        self.lam_item = self._reg(np.bincount(cols, minlength=train.n_items), train.n_users, device)

    def _reg(self, counts: np.ndarray, n_other: int, device) -> Tensor:
        f = counts + n_other / (1.0 + self.cfg.alpha)
        f = f / f.mean()
        return torch.as_tensor(self.cfg.reg * f**self.cfg.reg_exponent, dtype=torch.float32, device=device)

    def _solve(self, fixed_MD: Tensor, R: Tensor, W: Tensor, lam_N: Tensor, bias_M: Tensor | None) -> Tensor:
        alpha = self.cfg.alpha
        d = fixed_MD.shape[1]
        outer = (fixed_MD[:, :, None] * fixed_MD[:, None, :]).reshape(len(fixed_MD), d * d)
        A = (alpha * (W @ outer)).reshape(-1, d, d) + fixed_MD.T @ fixed_MD
        A += lam_N[:, None, None] * torch.eye(d, device=fixed_MD.device)
        rhs = R @ fixed_MD + alpha * (W @ fixed_MD)
        if bias_M is not None:
            rhs -= (bias_M @ fixed_MD)[None, :] + alpha * (W @ (bias_M[:, None] * fixed_MD))
        return torch.linalg.solve(A, rhs)

    @torch.no_grad()
    def sweep(self, model: MatrixFactorization) -> None:
        model.user.copy_(self._solve(model.item, self.R, self.W, self.lam_user, model.bias))
        users1 = torch.cat([model.user, torch.ones_like(model.user[:, :1])], dim=1)
        solved = self._solve(users1, self.RT, self.WT, self.lam_item, None)
        model.item.copy_(solved[:, :-1])
        model.bias.copy_(solved[:, -1])


def _fit_bpr_epoch(model: MatrixFactorization, users: Tensor, items: Tensor,
                   opt: torch.optim.Optimizer, cfg: MFConfig, gen: torch.Generator) -> float:
    order = torch.randperm(len(users), generator=gen)
    total = 0.0
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start: start + cfg.batch_size]
        u, pos = users[idx], items[idx]
        neg = torch.randint(0, model.n_items, (len(idx),), generator=gen).to(u.device)
        pu, qi, qj = model.user[u], model.item[pos], model.item[neg]
        diff = model.score_pairs(pu, qi, pos) - model.score_pairs(pu, qj, neg)
        loss = -torch.nn.functional.logsigmoid(diff).mean()
        loss = loss + cfg.bpr_reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / len(users)


def fit_mf(train: InteractionData, cfg: MFConfig, validate: Validator | None = None,
           epochs: int | None = None) -> tuple[MatrixFactorization, FitResult]:
    """Trains MF on ``train``. With ``validate``, stops early and keeps the best epoch's weights;
    ``epochs`` overrides ``cfg.epochs`` (used to refit on all data for a chosen epoch count)."""
    device = pick_device(cfg.device)
    gen = seed_everything(cfg.seed)
    model = MatrixFactorization(train.n_users, train.n_items, cfg.dim, gen).to(device)
    n_epochs = epochs or cfg.epochs
    stopper = EarlyStopping(cfg.patience)
    history: list[dict] = []
    start = time.perf_counter()
    if cfg.solver == "als":
        solver = _ALSSolver(train, cfg, device)
        step = lambda: solver.sweep(model)
    else:
        indptr, cols = train.csr()
        users = torch.from_numpy(np.repeat(np.arange(train.n_users), np.diff(indptr))).to(device)
        items = torch.from_numpy(cols.astype(np.int64)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        step = lambda: _fit_bpr_epoch(model, users, items, opt, cfg, gen)
    bar = tqdm(range(1, n_epochs + 1), desc=f"MF ({cfg.solver})", disable=not cfg.progress, leave=False)
    epoch = 0
    for epoch in bar:
        loss = step()
        entry = {"epoch": epoch} | ({"loss": round(float(loss), 5)} if loss is not None else {})
        if validate is not None:
            entry["valid"] = round(validate(model), 5)
            bar.set_postfix(valid=entry["valid"])
            history.append(entry)
            if stopper.update(epoch, entry["valid"], model):
                break
        else:
            history.append(entry)
    if validate is not None:
        stopper.restore(model)
    best = stopper.best_epoch if validate is not None else epoch
    return model, FitResult(epoch, best, time.perf_counter() - start, history)
