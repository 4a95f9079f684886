"""The interface every base recommender offers to evaluation, the SAE and export."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np
from torch import Tensor, nn


@dataclass
class ModelConfig:
    """Fields shared by every base model."""

    dim: int = 64
    """Width of the user and item embeddings (what the SAE sees)."""
    seed: int = 0
    device: str = "auto"
    """"auto" (CUDA when present), "cpu" or "cuda[:N]"."""
    patience: int = 3
    """Early stopping: evaluations without improvement of the validation metric before stopping."""
    progress: bool = True
    """Show tqdm progress bars."""

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError("dim must be positive")
        if self.patience < 1:
            raise ValueError("patience must be >= 1")


class FitResult(NamedTuple):
    """What training reports into the bundle manifest."""

    epochs_run: int
    """Epochs (ALS sweeps) actually run."""
    best_epoch: int
    """Epoch whose weights were kept (1-based)."""
    seconds: float
    """Wall-clock training time."""
    history: list[dict]
    """One entry per validation: epoch, metric value, loss when known."""


Validator = Callable[["Recommender"], float]
"""Returns the validation metric (higher is better) of a model's current weights."""


class Recommender(nn.Module, ABC):
    """A trained scorer over user and item embeddings.

    ``score_pairs`` is differentiable in both embeddings: the prediction-aware SAE loss
    backpropagates through it with the model's own parameters frozen.
    """

    kind: ClassVar[str]
    dot_product: ClassVar[bool]
    """True when score = <user, item> + item_bias, so FAISS inner-product search ranks exactly."""

    n_users: int
    n_items: int

    @abstractmethod
    def user_embeddings(self) -> Tensor:
        """[n_users, dim]"""

    @abstractmethod
    def item_embeddings(self) -> Tensor:
        """[n_items, dim]"""

    def item_bias(self) -> Tensor | None:
        """[n_items] or None."""
        return None

    @abstractmethod
    def score_pairs(self, user_BD: Tensor, item_BD: Tensor, item_idx_B: Tensor) -> Tensor:
        """Scores of B (user, item) pairs given their embeddings: [B]."""

    def score_users(self, user_BD: Tensor, item_ID: Tensor | None = None) -> Tensor:
        """Scores of B users against every item: [B, n_items]."""
        items = self.item_embeddings() if item_ID is None else item_ID
        scores = user_BD @ items.T
        bias = self.item_bias()
        return scores if bias is None else scores + bias

    def frozen(self) -> Recommender:
        """Turns off gradients for the model's own parameters (inputs can still get them)."""
        self.eval()
        for param in self.parameters():
            param.requires_grad_(False)
        return self

    def extra_weights(self) -> dict[str, np.ndarray]:
        """Weights beyond the factors that a bundle must carry to rebuild the scorer."""
        return {}


@dataclass
class EarlyStopping:
    """Keeps the best state seen so far and says when to stop."""

    patience: int
    best: float = -np.inf
    best_epoch: int = 0
    stale: int = 0
    state: dict = field(default_factory=dict)

    def update(self, epoch: int, value: float, model: nn.Module) -> bool:
        """Records a validation result; returns True when training should stop."""
        if value > self.best:
            self.best, self.best_epoch, self.stale = value, epoch, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return self.stale >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.state:
            model.load_state_dict(self.state)
