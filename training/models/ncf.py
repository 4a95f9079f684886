"""Neural collaborative filtering (NeuMF: GMF + MLP, He et al. 2017) as a non-linear scorer.

A user's embedding is the concatenation [GMF part | MLP part] (``dim`` = both halves), so the SAE
sees one vector per user and item as with MF; ``score_pairs`` splits it again and runs the
network, which lets the prediction-aware SAE loss backpropagate through the frozen MLP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.schema import InteractionData
from ..device import pick_device, seed_everything
from .base import EarlyStopping, FitResult, ModelConfig, Recommender, Validator


@dataclass
class NCFConfig(ModelConfig):
    hidden: tuple[int, ...] = (64, 32, 16)
    """MLP tower widths after the concatenated [user, item] MLP embeddings."""
    epochs: int = 20
    lr: float = 0.002
    batch_size: int = 4096
    negatives: int = 4
    """Uniform negatives per observed pair for the BCE loss."""
    weight_decay: float = 1e-6

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dim % 2:
            raise ValueError("NCF dim must be even: half GMF, half MLP")
        if self.negatives < 1 or self.epochs < 1:
            raise ValueError("negatives and epochs must be >= 1")


class NCF(Recommender):
    kind: ClassVar[str] = "ncf"
    dot_product: ClassVar[bool] = False

    def __init__(self, n_users: int, n_items: int, cfg: NCFConfig):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.half = cfg.dim // 2
        self.user = nn.Parameter(torch.randn(n_users, cfg.dim) * 0.05)
        self.item = nn.Parameter(torch.randn(n_items, cfg.dim) * 0.05)
        layers: list[nn.Module] = []
        width = 2 * self.half
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(self.half + width, 1)

    def user_embeddings(self) -> Tensor:
        return self.user

    def item_embeddings(self) -> Tensor:
        return self.item

    def score_pairs(self, user_BD: Tensor, item_BD: Tensor, item_idx_B: Tensor | None = None) -> Tensor:
        h = self.half
        gmf = user_BD[..., :h] * item_BD[..., :h]
        mlp = self.mlp(torch.cat([user_BD[..., h:], item_BD[..., h:]], dim=-1))
        return self.out(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def score_users(self, user_BD: Tensor, item_ID: Tensor | None = None) -> Tensor:
        items = self.item if item_ID is None else item_ID
        h = self.half
        first = self.mlp[0]
        # The first MLP layer is linear in [u, i]: split it so each side is projected once.
        w_u, w_i = first.weight[:, :h], first.weight[:, h:]
        pre = (user_BD[:, h:] @ w_u.T)[:, None, :] + (items[:, h:] @ w_i.T)[None, :, :] + first.bias
        mlp = self.mlp[1:](pre)
        gmf = user_BD[:, None, :h] * items[None, :, :h]
        return self.out(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def extra_weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.state_dict().items() if k not in ("user", "item")}


def fit_ncf(train: InteractionData, cfg: NCFConfig, validate: Validator | None = None,
            epochs: int | None = None) -> tuple[NCF, FitResult]:
    """BCE with ``cfg.negatives`` uniform negatives per positive, Adam, early stopping."""
    device = pick_device(cfg.device)
    gen = seed_everything(cfg.seed)
    model = NCF(train.n_users, train.n_items, cfg).to(device)
    indptr, cols = train.csr()
    users = torch.from_numpy(np.repeat(np.arange(train.n_users), np.diff(indptr))).to(device)
    items = torch.from_numpy(cols.astype(np.int64)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bce = nn.BCEWithLogitsLoss()
    stopper = EarlyStopping(cfg.patience)
    history: list[dict] = []
    n_epochs = epochs or cfg.epochs
    start = time.perf_counter()
    bar = tqdm(range(1, n_epochs + 1), desc="NCF", disable=not cfg.progress, leave=False)
    epoch = 0
    for epoch in bar:
        model.train()
        order = torch.randperm(len(users), generator=gen).to(device)
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s: s + cfg.batch_size]
            u = users[idx].repeat(cfg.negatives + 1)
            pos = items[idx]
            neg = torch.randint(0, train.n_items, (len(idx) * cfg.negatives,), generator=gen).to(device)
            i = torch.cat([pos, neg])
            label = torch.cat([torch.ones(len(idx)), torch.zeros(len(neg))]).to(device)
            loss = bce(model.score_pairs(model.user[u], model.item[i], i), label)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        entry = {"epoch": epoch, "loss": round(total / len(users), 5)}
        model.eval()
        if validate is not None:
            entry["valid"] = round(validate(model), 5)
            bar.set_postfix(loss=entry["loss"], valid=entry["valid"])
            history.append(entry)
            if stopper.update(epoch, entry["valid"], model):
                break
        else:
            history.append(entry)
    if validate is not None:
        stopper.restore(model)
    best = stopper.best_epoch if validate is not None else epoch
    return model, FitResult(epoch, best, time.perf_counter() - start, history)
