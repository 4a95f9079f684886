"""The prediction-aware loss: the frozen recommender should score reconstructed embeddings as it
scores the originals (Arviv et al.), on observed pairs and on sampled negatives.

Negatives come in two kinds: uniform ones, and "hard" ones drawn from each user's top-ranked
unseen items. Top lists are decided among high scores, so that is where reconstruction error
must be smallest for the reconstructed model to rank like the original.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..models.base import Recommender


class PairSampler:
    """Draws (user, item) pairs: a third observed interactions, a third from each user's top
    unseen items under the base model, a third uniform."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_items: int, candidates_UC: Tensor,
                 device: torch.device):
        counts = np.diff(indptr)
        self.users = torch.from_numpy(np.repeat(np.arange(len(counts)), counts)).to(device)
        self.items = torch.from_numpy(indices.astype(np.int64)).to(device)
        self.candidates = candidates_UC.to(device)
        self.n_users, self.n_items = len(counts), n_items
        self.device = device

    def sample(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        third = n // 3
        pos = torch.randint(0, len(self.users), (third,), generator=gen).to(self.device)
        hard_u = torch.randint(0, self.n_users, (third,), generator=gen).to(self.device)
        hard_c = torch.randint(0, self.candidates.shape[1], (third,), generator=gen).to(self.device)
        rest = n - 2 * third
        neg_u = torch.randint(0, self.n_users, (rest,), generator=gen).to(self.device)
        neg_i = torch.randint(0, self.n_items, (rest,), generator=gen).to(self.device)
        users = torch.cat([self.users[pos], hard_u, neg_u])
        items = torch.cat([self.items[pos], self.candidates[hard_u, hard_c], neg_i])
        return users, items


def prediction_loss(model: Recommender, user_BD: Tensor, item_BD: Tensor, user_hat_BD: Tensor,
                    item_hat_BD: Tensor, item_idx_B: Tensor, score_var: float) -> Tensor:
    """Mean squared score difference, divided by the variance of the original scores so that beta
    does not depend on the recommender's score scale. Gradients reach the SAE through the frozen
    scorer (MF's dot product or NCF's MLP)."""
    with torch.no_grad():
        target = model.score_pairs(user_BD, item_BD, item_idx_B)
    pred = model.score_pairs(user_hat_BD, item_hat_BD, item_idx_B)
    return (pred - target).pow(2).mean() / score_var
