"""Training loop shared by every SAE architecture."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..device import pick_device, seed_everything
from ..evaluate import top_k_items
from ..models.base import Recommender
from . import SAEConfig, SparseAutoencoder, build_sae
from .anchors import anchor_loss, check_anchorable, exposure_weights
from .prediction import PairSampler, prediction_loss


@dataclass
class SAETrainConfig:
    steps: int = 3000
    """Optimizer steps."""
    batch_size: int = 1024
    """Embedding rows per step, drawn uniformly from users and items together."""
    lr: float = 1e-2
    """Peak Adam learning rate (linear warm-up over 5% of steps, cosine decay to 10%)."""
    beta: float = 1.0
    """Weight of the prediction-aware loss (0 turns it off)."""
    pairs_per_step: int = 1536
    """(user, item) pairs per step for the prediction-aware loss: a third observed, a third among
    each user's top unseen items, a third uniform negatives."""
    hard_candidates: int = 50
    """Depth of the per-user top lists that hard negatives come from."""
    dead_after: int = 0
    """A latent is dead once it has not fired for this many rows (0: one pass over the rows)."""
    anchor_facet: str = ""
    """Item facet whose values each get an anchored latent (the first ones), taught to fire on
    exactly that value's items (anchors.py); empty: none, a fully unsupervised SAE."""
    anchor_weight: float = 1.0
    """Weight of the anchor loss."""
    device: str = "auto"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.pairs_per_step < 2:
            raise ValueError("steps >= 1, batch_size >= 2 and pairs_per_step >= 2 are required")
        if self.beta < 0 or self.lr <= 0 or self.anchor_weight < 0:
            raise ValueError("beta and anchor_weight must be >= 0 and lr > 0")


class TrainedSAE(NamedTuple):
    sae: SparseAutoencoder
    """On CPU, in eval mode, calibrated."""
    seconds: float
    """Wall-clock training time."""
    history: list[dict]
    """Loss terms every 10% of training."""
    dead_fraction_train: float
    """Latents that had not fired for ``dead_after`` rows when training ended."""


def normalization_stats(x_ND: Tensor) -> tuple[Tensor, float]:
    """Dataset-level statistics: the mean row, and one scale making E||x - mean||^2 = d."""
    mean = x_ND.mean(0)
    scale = float(((x_ND - mean).pow(2).sum(-1).mean() / x_ND.shape[1]).sqrt())
    return mean, scale


def _lr_factor(step: int, total: int) -> float:
    warm = max(1, total // 20)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def train_sae(model: Recommender, arch: str, cfg: SAEConfig, tcfg: SAETrainConfig,
              train_csr: tuple[np.ndarray, np.ndarray], anchors_IC: np.ndarray | None = None) -> TrainedSAE:
    """Trains one SAE on the model's user and item embeddings together; ``anchors_IC`` (bool,
    items x concepts) anchors latent c to concept c."""
    device = pick_device(tcfg.device)
    gen = seed_everything(tcfg.seed)
    model = model.to(device).frozen()
    users = model.user_embeddings().detach()
    items = model.item_embeddings().detach()
    rows = torch.cat([users, items])
    mean, scale = normalization_stats(rows)
    sae = build_sae(arch, cfg, rows.shape[1], mean, scale).to(device)
    rows_n = sae.normalize(rows)
    with torch.no_grad():
        candidates = top_k_items(model, np.arange(model.n_users), train_csr, tcfg.hard_candidates)
    sampler = PairSampler(*train_csr, model.n_items, torch.from_numpy(candidates), device)
    if anchors_IC is not None:
        check_anchorable(sae, anchors_IC.shape[1])
        anchors = torch.from_numpy(anchors_IC).to(device)
        anchor_weights = torch.from_numpy(exposure_weights(candidates, model.n_items)).to(device)
        items_n = sae.normalize(items)
    with torch.no_grad():
        pu, pi = sampler.sample(65536, gen)
        score_var = float(model.score_pairs(users[pu], items[pi], pi).var().clamp(min=1e-8))

    opt = torch.optim.Adam(sae.parameters(), lr=tcfg.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, tcfg.steps))
    dead_after = tcfg.dead_after or len(rows)
    since_fired = torch.zeros(sae.n_latents, device=device)
    history: list[dict] = []
    warmup = max(1, tcfg.steps // 20)  # running statistics settle before the prediction loss starts
    start = time.perf_counter()
    bar = tqdm(range(tcfg.steps), desc=f"SAE {arch}", disable=not tcfg.progress, leave=False)
    sae.train()
    for step in bar:
        x = rows_n[torch.randint(0, len(rows_n), (tcfg.batch_size,), generator=gen).to(device)]
        out = sae.forward_train(x)
        dead = since_fired > dead_after
        terms: dict[str, Tensor] = {"recon": sae.reconstruction_loss(x, out)}
        terms |= sae.sparsity_losses(x, out, dead.float())
        if tcfg.beta > 0 and step >= warmup:
            # Encoded with the inference rule: pair batches are skewed towards active users and
            # popular items, and a batch rule would hand them a different share of latents.
            pu, pi = sampler.sample(tcfg.pairs_per_step, gen)
            both = sae(torch.cat([users[pu], items[pi]]))
            terms["pred"] = tcfg.beta * prediction_loss(
                model, users[pu], items[pi], both[: len(pu)], both[len(pu):], pi, score_var)
        if anchors_IC is not None and step >= warmup:
            terms["anchor"] = tcfg.anchor_weight * anchor_loss(sae, items_n, anchors, anchor_weights)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        sae.normalize_decoder()
        with torch.no_grad():
            fired = (out.z_BF > 0).any(0)
            since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + len(x))
        if step % max(1, tcfg.steps // 10) == 0 or step == tcfg.steps - 1:
            entry = {"step": step + 1} | {k: round(float(v.detach()), 5) for k, v in terms.items()}
            entry["dead"] = int(dead.sum())
            history.append(entry)
            bar.set_postfix({k: v for k, v in entry.items() if k != "step"})
    sae.eval()
    with torch.no_grad():
        sae.calibrate(rows_n)
    seconds = time.perf_counter() - start
    dead_fraction = float((since_fired > dead_after).float().mean())
    return TrainedSAE(sae.cpu(), seconds, history, dead_fraction)
